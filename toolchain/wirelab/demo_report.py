"""The demo's closing screen: what each filter counted, and where to look next."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .top.render import fmt_us


def render_summary(figures: dict[str, Any]) -> Group:
    parts: list[Any] = []
    phases = Text("phases: ", style="bold")
    phases.append("  ".join(f"{p['phase']} {p.get('seconds', 0):g}s"
                            for p in figures["phases"]))
    parts.append(phases)
    for name, g in figures["filters"].items():
        table = Table(title=f"{name}: what the filter counted", title_justify="left",
                      box=box.SIMPLE_HEAD)
        table.add_column("statement type")
        table.add_column("count", justify="right")
        table.add_column("p50", justify="right")
        table.add_column("p99", justify="right")
        for kind in sorted(set(g["statements"]) | set(g["latency_us"])):
            lat = g["latency_us"].get(kind, {})
            table.add_row(kind, f"{g['statements'].get(kind, 0):,}", fmt_us(lat.get("p50")),
                          fmt_us(lat.get("p99")))
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(g["errors"].items())) or "none"
        label = "SQLSTATE class" if g["protocol"] == "postgres" else "error code"
        parts.append(table)
        parts.append(Text(
            f"  errors by {label}: {errors}\n  slow statements {g['slow_statements']}, "
            f"commits {g['commits']}, rollbacks {g['rollbacks']}, "
            f"bytes c→s {g['bytes']['client']:,}, s→c {g['bytes']['server']:,}\n"))
    prom = figures.get("prometheus")
    if prom:
        parts.append(Text(f"Prometheus: {prom}/graph — e.g. "
                          "rate(postgres_statements_select[30s]) or "
                          "wirelab:postgres_statement_latency_us:p99"))
    parts.append(Text(f"Envoy admin: {figures['admin']}/stats/prometheus"))
    return Group(*parts)
