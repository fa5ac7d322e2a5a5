"""Read Envoy's stats through its admin API: JSON snapshots and Prometheus text."""

from __future__ import annotations

import json
import math
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import EnvoyError

PREFIX = "wasmcustom."


@dataclass
class Histogram:
    """Envoy keeps log-linear buckets (two significant digits), so `count` is
    exact while `sum` adds each bucket's lower bound: exact for values with at
    most two significant digits, otherwise a lower bound within 10 %.
    `quantiles` maps a percentile (0..100) to its value."""

    count: int
    sum: float
    quantiles: dict[float, float] = field(default_factory=dict)
    buckets: list[tuple[float, float, int]] = field(default_factory=list)  # (lower, width, n)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "sum": self.sum, "quantiles": dict(self.quantiles)}


@dataclass
class Snapshot:
    """Every stat at one moment. A Wasm metric appears under both its Envoy name
    (`wasmcustom.x`) and the name the filter defined (`x`)."""

    counters: dict[str, int]
    gauges: dict[str, int]
    histograms: dict[str, Histogram]

    def counter(self, name: str) -> int:
        return _lookup(self.counters, name, "counter")

    def gauge(self, name: str) -> int:
        return _lookup(self.gauges, name, "gauge")

    def histogram(self, name: str) -> Histogram:
        return _lookup(self.histograms, name, "histogram")

    def value(self, name: str) -> int | None:
        """A counter's or gauge's value, a histogram's sample count, or None."""
        for table in (self.counters, self.gauges):
            if name in table:
                return table[name]
        if name in self.histograms:
            return self.histograms[name].count
        return None


@dataclass(frozen=True)
class Sample:
    """One line of /stats/prometheus."""

    name: str
    labels: dict[str, str]
    value: float


def _lookup(table: dict[str, Any], name: str, kind: str) -> Any:
    try:
        return table[name]
    except KeyError:
        close = [n for n in table if name.split(".")[-1] in n][:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise EnvoyError(f"Envoy has no {kind} named {name!r}{hint}") from None


def _aliased(pairs: dict[str, Any]) -> dict[str, Any]:
    out = dict(pairs)
    for name, value in pairs.items():
        if name.startswith(PREFIX):
            out.setdefault(name[len(PREFIX):], value)
    return out


def _histograms(doc: dict[str, Any]) -> dict[str, Histogram]:
    out: dict[str, Histogram] = {}
    for entry in doc.get("stats", []):
        h = entry.get("histograms")
        if not h:
            continue
        percentiles = h.get("supported_percentiles", [])
        for d in h.get("details", []):
            buckets = [(b["lower_bound"], b["width"], int(b["count"])) for b in d.get("totals", [])]
            quantiles = {
                float(p): v["cumulative"]
                for p, v in zip(percentiles, d.get("percentiles", []), strict=False)
                if v.get("cumulative") is not None and not _nan(v["cumulative"])
            }
            out[d["name"]] = Histogram(
                count=sum(n for _, _, n in buckets),
                sum=sum(lo * n for lo, _, n in buckets),
                quantiles=quantiles,
                buckets=buckets,
            )
    return out


def _nan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_prometheus(text: str) -> list[Sample]:
    """Parse Prometheus text exposition (the subset Envoy writes)."""
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = {
            k: re.sub(r"\\[\\\"n]", lambda e: _UNESCAPE[e.group(0)], v)
            for k, v in _LABEL.findall(m.group(2) or "")
        }
        samples.append(Sample(m.group(1), labels, float(m.group(3))))
    return samples


LOG_TAIL_MARK = "--- Envoy log (tail) ---"
# Envoy's own bookkeeping that moves whenever its admin API is polled.
_NOISE_PREFIXES = ("http.admin.", "listener.admin.", "filesystem.", "server.", "wasmcustom.")


def filter_delta(delta: dict[str, int]) -> dict[str, int]:
    """A stats delta without the admin API's own traffic, Envoy's server gauges and the
    `wasmcustom.` copies of filter metrics (shown under their plain names)."""
    return {k: v for k, v in delta.items() if not k.startswith(_NOISE_PREFIXES)}


class StatsClient:
    """Reads stats from an Envoy admin API at `admin_url` (http://127.0.0.1:PORT).

    `log_tail` (optional) supplies Envoy's log for error messages.
    """

    def __init__(self, admin_url: str, log_tail: Callable[[], str] | None = None):
        self.admin_url = admin_url.rstrip("/")
        self._log_tail = log_tail

    def _get(self, path: str) -> str:
        try:
            with urllib.request.urlopen(self.admin_url + path, timeout=10) as resp:
                return resp.read().decode()
        except (urllib.error.URLError, OSError) as exc:
            raise EnvoyError(
                f"Envoy's admin API at {self.admin_url} did not answer {path} ({exc}): "
                "is Envoy still running?"
            ) from None

    def _stats(self, kind: str, extra: str = "") -> dict[str, Any]:
        return json.loads(self._get(f"/stats?format=json&type={kind}{extra}"))

    def snapshot(self) -> Snapshot:
        # Gauges first: a filter drops its sessions gauge only after it has sent
        # its counters, so a gauge read before the counters can never show a
        # connection as ended while the counters still miss its deltas.
        gauges = {s["name"]: int(s["value"]) for s in self._stats("Gauges")["stats"]}
        counters = {s["name"]: int(s["value"]) for s in self._stats("Counters")["stats"]}
        hist = _histograms(self._stats("Histograms", "&histogram_buckets=detailed"))
        return Snapshot(_aliased(counters), _aliased(gauges), _aliased(hist))

    def counter(self, name: str) -> int:
        return self.snapshot().counter(name)

    def gauge(self, name: str) -> int:
        return self.snapshot().gauge(name)

    def histogram(self, name: str) -> dict[str, Any]:
        return self.snapshot().histogram(name).as_dict()

    @staticmethod
    def delta(before: Snapshot, after: Snapshot) -> dict[str, int]:
        """Counters and gauges whose value changed between two snapshots."""
        out = {}
        for b, a in ((before.counters, after.counters), (before.gauges, after.gauges)):
            for name, value in a.items():
                diff = value - b.get(name, 0)
                if diff:
                    out[name] = diff
        return out

    def wait_until(self, check: Callable[[Snapshot], bool], timeout: float = 10.0) -> Snapshot:
        """Poll snapshots until `check(snapshot)` holds or `timeout` passes; return the
        last one, so the caller's own assertion on it says what did not settle."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.snapshot()
            if check(snap) or time.monotonic() >= deadline:
                return snap
            time.sleep(0.05)

    def wait_for(self, name: str, value: int, timeout: float = 10.0) -> None:
        """Poll until the counter/gauge (or a histogram's sample count) equals `value`.

        Counters move as soon as a filter increments them; histograms only after
        Envoy's next stats flush, hence the polling.
        """
        __tracebackhide__ = True  # pytest shows the caller's line, not this one's source
        last = self.wait_until(lambda snap: snap.value(name) == value, timeout).value(name)
        if last == value:
            return
        seen = "does not exist" if last is None else f"is {last}"
        tail = f"\n{LOG_TAIL_MARK}\n{self._log_tail()}" if self._log_tail else ""
        raise EnvoyError(f"stat {name!r} {seen}, expected {value} after {timeout:g} s{tail}")

    def prometheus(self) -> list[Sample]:
        return parse_prometheus(self._get("/stats/prometheus"))


def server_bytes_window(counters: dict[str, int], listener: str) -> tuple[int, int]:
    """The range a filter's server→client byte count must fall in, for `listener`.

    A filter sees server bytes when tcp_proxy hands them to the client connection:
    never more than Envoy read from the server (`cluster.<listener>_upstream.
    upstream_cx_rx_bytes_total`), never less than the client's socket accepted
    (`tcp.<listener>.downstream_cx_tx_bytes_total`). The two ends are equal unless
    a client hangs up while the server is still sending (a failed login, a cancel).
    `counters` is a snapshot's counters or a delta between two snapshots.
    """
    low = counters.get(f"tcp.{listener}.downstream_cx_tx_bytes_total", 0)
    high = counters.get(f"cluster.{listener}_upstream.upstream_cx_rx_bytes_total", 0)
    return low, high
