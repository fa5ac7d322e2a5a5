"""`wirelab stats`: Envoy's stats as a table, JSON or Prometheus text."""

from __future__ import annotations

import fnmatch
import json
from typing import Any

from rich import box
from rich.table import Table

from .envoy import Snapshot, StatsClient
from .envoy.stats import PREFIX


def _selected(names: list[str], match: str | None, everything: bool) -> list[str]:
    """Filter metrics by default (the `wasmcustom.` ones, shown without the prefix)."""
    if everything:
        chosen = [n for n in names if PREFIX + n not in names]
    else:
        chosen = [n[len(PREFIX):] for n in names if n.startswith(PREFIX)]
    if match:
        pattern = match if any(c in match for c in "*?[") else f"*{match}*"
        chosen = [n for n in chosen if fnmatch.fnmatchcase(n, pattern)]
    return sorted(set(chosen))


def snapshot_dict(snap: Snapshot, match: str | None = None, everything: bool = False) -> dict:
    return {
        "counters": {
            n: snap.counters[n] for n in _selected(list(snap.counters), match, everything)
        },
        "gauges": {n: snap.gauges[n] for n in _selected(list(snap.gauges), match, everything)},
        "histograms": {
            n: snap.histograms[n].as_dict()
            for n in _selected(list(snap.histograms), match, everything)
        },
    }


def render_table(snap: Snapshot, match: str | None = None, everything: bool = False,
                 nonzero: bool = False) -> Table:
    data = snapshot_dict(snap, match, everything)
    if nonzero:
        data = {
            "counters": {n: v for n, v in data["counters"].items() if v},
            "gauges": {n: v for n, v in data["gauges"].items() if v},
            "histograms": {n: h for n, h in data["histograms"].items() if h["count"]},
        }
    table = Table(title="Envoy stats", title_justify="left", box=box.SIMPLE_HEAD)
    # Full names: they carry the tags, and a cut name is a different metric.
    table.add_column("stat", overflow="fold", ratio=3)
    table.add_column("type")
    table.add_column("value", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p99", justify="right")
    for name, value in data["counters"].items():
        table.add_row(name, "counter", f"{value:,}", "", "")
    for name, value in data["gauges"].items():
        table.add_row(name, "gauge", f"{value:,}", "", "")
    for name, h in data["histograms"].items():
        q = h["quantiles"]
        table.add_row(name, "histogram", f"{h['count']:,} samples", _q(q, 50.0), _q(q, 99.0))
    if not table.rows:
        table.caption = "no metrics matched" if match else "no filter metrics yet"
    return table


def _q(quantiles: dict[float, Any], p: float) -> str:
    v = quantiles.get(p)
    return "" if v is None else f"{v:g}"


def prometheus_text(client: StatsClient, match: str | None = None,
                    everything: bool = False) -> str:
    """Prometheus text: the filters' series (like the table), or with `everything`
    Envoy's own `envoy_*` series too. With `match`, only the series whose line (name
    and labels) contains it or matches it as a glob. Each kept series keeps its
    `# TYPE` line."""
    return select_prometheus(client._get("/stats/prometheus"), match, everything)


def select_prometheus(text: str, match: str | None = None, everything: bool = False) -> str:
    if everything and not match:
        return text
    pattern = (match if any(c in match for c in "*?[") else f"*{match}*") if match else "*"
    alt = pattern.replace(".", "_")  # metric names are sanitised; labels are not
    keep: list[str] = []
    pending_type = ""
    for line in text.splitlines():
        if line.startswith("#"):
            pending_type = line
            continue
        if not line.strip():
            continue
        # Envoy exports its own stats as envoy_*, a filter's without that prefix.
        if not everything and line.startswith("envoy_"):
            continue
        if fnmatch.fnmatchcase(line, pattern) or fnmatch.fnmatchcase(line, alt):
            if pending_type:
                keep.append(pending_type)
                pending_type = ""
            keep.append(line)
    return "\n".join(keep) + ("\n" if keep else "")


def as_json(snap: Snapshot, match: str | None, everything: bool) -> str:
    return json.dumps(snapshot_dict(snap, match, everything), indent=2, sort_keys=True)
