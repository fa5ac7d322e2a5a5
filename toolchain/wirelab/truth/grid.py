"""The driver x figure grid: the server's figures and each filter's, differences in red."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.markup import escape
from rich.table import Table

from .matrix import FIGURES, Cell

# column headers short enough for the whole grid to fit 120 columns
_SHORT = {"select": "sel", "insert": "ins", "update": "upd", "delete": "del",
          "rows_returned": "rows_ret", "rows_affected": "rows_aff", "rollback": "rollbk",
          "sessions": "sess", "decoder_errors": "dec_err", "stmt_prepare": "prep",
          "stmt_execute": "exec", "stmt_close": "close", "replace": "repl"}


def grid(cells: Sequence[Cell], protocol: str) -> Table:
    """One table for one protocol: per driver a `srv` (server) row, then one row per filter
    (`C`, `lua`) whose figures are green where they equal the server's, red where not."""
    names = [fig for fig in FIGURES[protocol]
             if any(f.name == fig or fig in c.not_comparable for c in cells for f in c.figures)]
    table = Table(title=f"{protocol}: filter figures against the server's (red: differs)",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=(0, 0, 0, 1))
    table.add_column("driver", no_wrap=True, min_width=max(len(c.workload) for c in cells))
    table.add_column("by", no_wrap=True)
    for n in names:
        header = _SHORT.get(n, n)
        table.add_column(header, justify="right", no_wrap=True, min_width=len(header))
    last = None
    for cell in cells:
        first = cell.workload != last
        last = cell.workload
        label = cell.workload if first else ""
        if cell.skipped or cell.error:
            if first:
                why = f"skipped: {cell.skipped}" if cell.skipped else f"error: {cell.error}"
                colour = "yellow" if cell.skipped else "red"
                table.add_row(label, "", f"[{colour}]{escape(why)}[/]", *[""] * (len(names) - 1))
            continue
        got = {f.name: f for f in cell.figures}
        if first:
            table.add_row(label, "srv", *[
                "n/a" if n in cell.not_comparable else str(got[n].server) if n in got else ""
                for n in names], style="dim")
        row = ["", "lua" if cell.filter.startswith("lua:") else "C"]
        for n in names:
            f = got.get(n)
            if n in cell.not_comparable:
                row.append(f"[dim]{got[n].filter if n in got else 'n/a'}[/]")
            elif f is None:
                row.append("")
            else:
                row.append(f"[green]{f.filter}[/]" if f.ok else f"[bold red]{f.filter}[/]")
        table.add_row(*row, end_section=cell is cells[-1] or cells[cells.index(cell) + 1]
                      .workload != cell.workload)
    return table


def summary(cells: Sequence[Cell]) -> list[str]:
    """One line per differing cell: `driver filter: figure filter=X server=Y, ...`."""
    lines = []
    for c in cells:
        if c.error:
            lines.append(f"{c.workload} ({c.filter}): error: {c.error}")
        elif c.mismatches():
            figs = ", ".join(f"{f.name} filter={f.filter} server={f.server}"
                             for f in c.mismatches())
            lines.append(f"{c.workload} ({c.filter}): {figs}")
    return lines


def notes(cells: Sequence[Cell]) -> list[str]:
    """Why a figure shows n/a, once per (workload, figure)."""
    seen: dict[tuple[str, str], str] = {}
    for c in cells:
        for fig, why in c.not_comparable.items():
            seen.setdefault((c.workload, fig), why)
    return [f"{w} {fig}: n/a, {why}" for (w, fig), why in seen.items()]
