"""How the dashboard looks: a rich Layout for a terminal, plain lines otherwise.

Sized for 80×24: a title line, one panel per (protocol, stat_prefix), a footer
(the phase a demo is in, the last slow-statement log line, the keys). A panel
shows fewer statement types when the terminal is short, busiest first.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.console import Group as RichGroup
from rich.layout import Layout
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .model import GroupView, TypeRow

SPARKS = "▁▂▃▄▅▆▇█"
PANEL_OVERHEAD = 5  # borders (2), summary line, table header, errors line


def sparkline(values: Sequence[float], width: int) -> str:
    values = list(values)[-width:]
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARKS[0] * len(values)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))]
                   for v in values)


def fmt_us(us: float | None) -> str:
    """Microseconds as a short duration: 850µs, 2.35ms, 1.20s."""
    if us is None:
        return "-"
    if us < 1000:
        return f"{us:.0f}µs"
    if us < 1_000_000:
        return f"{us / 1000:.3g}ms"
    return f"{us / 1_000_000:.3g}s"


def fmt_rate(r: float) -> str:
    return f"{r:.0f}" if r >= 100 else f"{r:.1f}"


def fmt_bytes(r: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if r < 1000 or unit == "GB":
            return f"{r:.0f}{unit}" if unit == "B" else f"{r:.1f}{unit}"
        r /= 1000
    return f"{r:.1f}GB"


@dataclass
class Status:
    """What the frame around the panels says."""

    source: str            # the admin URL
    window: float          # seconds
    paused: bool = False
    phase: str = ""        # a demo's current phase
    slow_log: str = ""     # the newest slow-statement log line
    note: str = ""


def _rows_shown(views: Sequence[GroupView], height: int) -> int:
    if not views:
        return 0
    free = height - 3 - PANEL_OVERHEAD * len(views)  # title, slow-log and footer lines
    return max(1, free // len(views))


def _ordered(rows: list[TypeRow], limit: int) -> list[TypeRow]:
    busy = sorted(rows, key=lambda r: (-r.rate, -r.total, r.type))
    return [r for r in busy[:limit]]


def group_panel(view: GroupView, max_rows: int, width: int) -> Panel:
    trend_w = max(6, min(24, width - 60))
    head = Text.assemble(
        ("sessions ", "dim"), (f"{view.sessions}", "bold"),
        ("  stmts ", "dim"), (f"{fmt_rate(view.rate)}/s ", "bold green"),
        (sparkline(view.trend, trend_w), "green"),
        ("  c→s ", "dim"), (f"{fmt_bytes(view.bytes_client_rate)}/s", "cyan"),
        ("  s→c ", "dim"), (f"{fmt_bytes(view.bytes_server_rate)}/s", "cyan"),
    )
    table = Table(box=None, padding=(0, 1), pad_edge=False, expand=True,
                  header_style="dim")
    table.add_column("type", ratio=2, no_wrap=True)
    table.add_column("/s", justify="right", ratio=1, no_wrap=True)
    table.add_column("total", justify="right", ratio=2, no_wrap=True)
    table.add_column("p50", justify="right", ratio=2, no_wrap=True)
    table.add_column("p99", justify="right", ratio=2, no_wrap=True)
    for row in _ordered(view.rows, max_rows):
        p99_style = "bold red" if row.p99 is not None and row.p99 >= 100_000 else ""
        table.add_row(row.type, fmt_rate(row.rate), f"{row.total}",
                      fmt_us(row.p50), Text(fmt_us(row.p99), style=p99_style))
    errs = Text.assemble(("errors ", "dim"), (f"{fmt_rate(view.error_rate)}/s", "bold red"
                                              if view.error_rate else "bold"))
    for code, total, _ in view.errors[:4]:
        errs.append(f"  {code}:", style="dim")
        errs.append(f"{total}", style="red")
    errs.append(f"  slow {view.slow}  commit {view.commits}  rollback {view.rollbacks}",
                style="dim")
    title = f"[bold]{view.label}[/] stat_prefix=[bold]{view.prefix}[/]"
    return Panel(RichGroup(head, table, errs), title=title, title_align="left",
                 box=box.ROUNDED, padding=(0, 1))


def dashboard(views: Sequence[GroupView], status: Status, width: int = 80,
              height: int = 24) -> Layout:
    """The whole screen."""
    layout = Layout()
    clock = time.strftime("%H:%M:%S")
    title = Text.assemble(("wirelab top", "bold magenta"), f"  {status.source}  ",
                          (f"p50/p99 over {status.window:g}s", "dim"), f"  {clock}")
    if status.paused:
        title.append("  PAUSED", style="bold reverse yellow")
    footer = Text(no_wrap=True, overflow="ellipsis")
    if status.phase:
        footer.append(f"▶ {status.phase}", style="bold yellow")
    elif status.note:
        footer.append(status.note, style="dim")
    slow = Text(no_wrap=True, overflow="ellipsis")
    if status.slow_log:
        slow.append("last slow: ", style="dim")
        slow.append(status.slow_log, style="red")
    keys = Text("q quit  p pause", style="dim", justify="right")
    rows = _rows_shown(views, height)
    panels = [Layout(group_panel(v, rows, width), size=PANEL_OVERHEAD + min(rows, len(v.rows)))
              for v in views]
    if not panels:
        panels = [Layout(Panel("no PostgreSQL or MySQL filter stats at this Envoy yet"))]
    footer_line = Table.grid(expand=True)
    footer_line.add_column(ratio=1)
    footer_line.add_column(justify="right", no_wrap=True)
    footer_line.add_row(footer, keys)
    # An empty Text is falsy, and a Layout without a renderable draws a placeholder box.
    slow = slow if slow.plain else Text(" ")
    layout.split_column(Layout(title, size=1), *panels, Layout(Text(" "), name="rest"),
                        Layout(slow, size=1), Layout(footer_line, size=1))
    return layout


def plain_lines(views: Sequence[GroupView], status: Status) -> list[str]:
    """One line per group, for logs and pipes (no colour, no cursor movement)."""
    clock = time.strftime("%H:%M:%S")
    out = []
    for v in views:
        types = " ".join(f"{r.type}={fmt_rate(r.rate)}/s({r.total})"
                         for r in _ordered(v.rows, len(v.rows)) if r.total or r.rate)
        p99 = " ".join(f"{r.type}={fmt_us(r.p99)}" for r in v.rows if r.p99 is not None)
        errs = " ".join(f"{c}:{n}" for c, n, _ in v.errors[:6])
        out.append(
            f"{clock} {v.proto}/{v.prefix} sessions={v.sessions} stmts={fmt_rate(v.rate)}/s "
            f"total={v.statements} [{types}] p99[{p99}] errors={sum(n for _, n, _ in v.errors)}"
            f"[{errs}] slow={v.slow} c->s={fmt_bytes(v.bytes_client_rate)}/s "
            f"s->c={fmt_bytes(v.bytes_server_rate)}/s")
    if not views:
        out.append(f"{clock} no PostgreSQL or MySQL filter stats at {status.source} yet")
    return out
