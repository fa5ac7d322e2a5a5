"""The dashboard's figures: Envoy snapshots reduced per (protocol, stat_prefix), kept
over a sliding window, turned into rates and latency percentiles.

Percentiles come from Envoy's own histogram buckets (`histogram_buckets=detailed`:
log-linear, two significant digits): the bucket counts at the window's start are
subtracted from the newest, and a percentile is read from what happened inside
the window only. Inside a bucket its n samples are taken as spread evenly, at
(j+1)/(n+1) of its width, which is how Envoy's own percentiles read them, so a
window that holds every sample gives Envoy's cumulative percentile.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

from ..envoy import Snapshot
from .names import PROTOCOLS, Protocol, parse

Buckets = Counter  # (lower_bound, width) -> samples


@dataclass
class Group:
    """One filter instance's totals at one moment."""

    proto: str
    prefix: str
    statements: Counter = field(default_factory=Counter)       # type -> count
    latency: dict[str, Buckets] = field(default_factory=dict)  # type -> buckets
    errors: Counter = field(default_factory=Counter)           # class/code -> count
    sessions: int = 0
    bytes_client: int = 0
    bytes_server: int = 0
    commits: int = 0
    rollbacks: int = 0
    slow: int = 0

    @property
    def protocol(self) -> Protocol:
        return PROTOCOLS[self.proto]


def reduce(snap: Snapshot) -> dict[tuple[str, str], Group]:
    """Group a snapshot's filter stats by (protocol, stat_prefix)."""
    groups: dict[tuple[str, str], Group] = {}

    def group(proto: str, prefix: str) -> Group:
        key = (proto, prefix)
        if key not in groups:
            groups[key] = Group(proto, prefix)
        return groups[key]

    for name, value in snap.counters.items():
        s = parse(name)
        if s is None or s.proto not in PROTOCOLS or name.startswith("wasmcustom."):
            continue
        p, g = PROTOCOLS[s.proto], group(s.proto, s.prefix)
        if s.metric in p.type_counters and not s.tags:
            g.statements[p.type_counters[s.metric]] += value
        elif p.type_tag_counter and s.metric == p.type_tag_counter[0] and s.tag(
                p.type_tag_counter[1]):
            g.statements[s.tag(p.type_tag_counter[1])] += value
        elif s.metric == p.errors[0] and s.tag(p.errors[1]):
            g.errors[s.tag(p.errors[1])] += value
        elif s.metric == "bytes" and s.tag("direction") == "client":
            g.bytes_client += value
        elif s.metric == "bytes" and s.tag("direction") == "server":
            g.bytes_server += value
        elif s.metric == p.commits and not s.tags:
            g.commits += value
        elif s.metric == p.rollbacks and not s.tags:
            g.rollbacks += value
        elif s.metric == "slow_statements" and not s.tags:
            g.slow += value
    for name, value in snap.gauges.items():
        s = parse(name)
        if (s is not None and s.proto in PROTOCOLS and not name.startswith("wasmcustom.")
                and s.metric == "sessions_active" and not s.tags):
            group(s.proto, s.prefix).sessions = value
    for name, hist in snap.histograms.items():
        s = parse(name)
        if s is None or s.proto not in PROTOCOLS or name.startswith("wasmcustom."):
            continue
        p = PROTOCOLS[s.proto]
        metric, key = p.latency
        if s.metric != metric or not s.tag(key):
            continue
        kind = s.tag(key)
        # PostgreSQL's counters know five types; its histograms know the verb
        # (begin, commit, ddl, ...), which the counters count as `other`.
        if p.type_counters and kind not in p.type_counters.values():
            kind = "other"
        g = group(s.proto, s.prefix)
        buckets = g.latency.setdefault(kind, Counter())
        for lower, width, n in hist.buckets:
            buckets[(lower, width)] += n
    return groups


def quantile(buckets: Buckets, q: float) -> float | None:
    """The q-quantile (0..1) of bucketed samples, or None when there are none."""
    items = sorted((k, n) for k, n in buckets.items() if n > 0)
    total = sum(n for _, n in items)
    if total == 0:
        return None
    index = min(math.floor(q * total), total - 1)
    seen = 0
    for (lower, width), n in items:
        if index < seen + n:
            return lower + (index - seen + 1) / (n + 1) * width
        seen += n
    return None  # unreachable: index < total


def _minus(new: Buckets, old: Buckets | None) -> Buckets:
    if not old:
        return Counter(new)
    diff = Counter({k: n - old.get(k, 0) for k, n in new.items()})
    if any(n < 0 for n in diff.values()):
        return Counter(new)  # Envoy restarted or the stat was reset: start over
    return diff


@dataclass
class Frame:
    t: float
    groups: dict[tuple[str, str], Group]


@dataclass
class TypeRow:
    type: str
    total: int
    rate: float
    p50: float | None
    p99: float | None
    samples: int          # latency samples inside the window


@dataclass
class GroupView:
    proto: str
    prefix: str
    label: str
    error_label: str
    sessions: int
    statements: int
    rate: float
    trend: list[float]
    rows: list[TypeRow]
    errors: list[tuple[str, int, int]]  # (class/code, total, inside the window)
    error_rate: float
    bytes_client_rate: float
    bytes_server_rate: float
    commits: int
    rollbacks: int
    slow: int


class Window:
    """Frames of the last `seconds`; rates over the last `rate_seconds`."""

    def __init__(self, seconds: float = 30.0, rate_seconds: float = 5.0, trend_points: int = 30):
        self.seconds = seconds
        self.rate_seconds = rate_seconds
        self.trend_points = trend_points
        self.frames: deque[Frame] = deque()
        self.trends: dict[tuple[str, str], deque[float]] = {}

    def add(self, t: float, snap: Snapshot) -> None:
        self.frames.append(Frame(t, reduce(snap)))
        # Keep one frame at or before the window's start: it is the baseline.
        while len(self.frames) > 2 and self.frames[1].t <= t - self.seconds:
            self.frames.popleft()
        for key in self.frames[-1].groups:
            trend = self.trends.setdefault(key, deque(maxlen=self.trend_points))
            trend.append(self._rate(key, lambda g: sum(g.statements.values()), 2.0))

    def _then(self, seconds: float) -> Frame:
        """The newest frame at least `seconds` old, else the oldest one."""
        now = self.frames[-1].t
        older = [f for f in self.frames if f.t <= now - seconds + 1e-6]
        return older[-1] if older else self.frames[0]

    def _rate(self, key: tuple[str, str], value, seconds: float | None = None) -> float:
        new, old = self.frames[-1], self._then(seconds or self.rate_seconds)
        if old is new or old.t >= new.t:
            return 0.0
        g_new, g_old = new.groups.get(key), old.groups.get(key)
        if g_new is None:
            return 0.0
        delta = value(g_new) - (value(g_old) if g_old else 0)
        return max(delta, 0) / (new.t - old.t)

    def views(self) -> list[GroupView]:
        if not self.frames:
            return []
        newest, first = self.frames[-1], self.frames[0]
        out = []
        for key in sorted(newest.groups):
            g = newest.groups[key]
            base = first.groups.get(key) if first is not newest else None
            p = g.protocol
            types = list(p.type_counters.values()) or sorted(
                set(g.statements) | set(g.latency))
            rows = []
            for kind in types:
                window = _minus(g.latency.get(kind, Counter()),
                                base.latency.get(kind) if base else None)
                rows.append(TypeRow(
                    kind, g.statements.get(kind, 0),
                    self._rate(key, lambda x, k=kind: x.statements.get(k, 0)),
                    quantile(window, 0.50), quantile(window, 0.99), sum(window.values())))
            errors = [(code, n, n - (base.errors.get(code, 0) if base else 0))
                      for code, n in sorted(g.errors.items(), key=lambda kv: (-kv[1], kv[0]))
                      if n]
            out.append(GroupView(
                proto=g.proto, prefix=g.prefix, label=p.label, error_label=p.error_label,
                sessions=g.sessions, statements=sum(g.statements.values()),
                rate=self._rate(key, lambda x: sum(x.statements.values())),
                trend=list(self.trends.get(key, ())), rows=rows, errors=errors,
                error_rate=self._rate(key, lambda x: sum(x.errors.values())),
                bytes_client_rate=self._rate(key, lambda x: x.bytes_client),
                bytes_server_rate=self._rate(key, lambda x: x.bytes_server),
                commits=g.commits, rollbacks=g.rollbacks, slow=g.slow))
        return out
