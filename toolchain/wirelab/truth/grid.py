"""The driver x figure grid: `filter/server` in each cell, mismatches in red."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from .matrix import FIGURES, LUA_FIGURES, Cell


def grid(cells: Sequence[Cell], protocol: str) -> Table:
    """One table for one protocol's cells (C filter and Lua rows)."""
    names: list[str] = []
    for fig in FIGURES[protocol]:
        if any(f.name == fig for c in cells for f in c.figures):
            names.append(fig)
    table = Table(title=f"{protocol}: filter / server (red: differs)", show_lines=False)
    table.add_column("driver", no_wrap=True)
    table.add_column("filter", no_wrap=True)
    for n in names:
        table.add_column(n, justify="right", no_wrap=True)
    for cell in cells:
        row = [cell.workload, cell.filter]
        if cell.skipped or cell.error:
            why = f"skipped: {cell.skipped}" if cell.skipped else f"error: {cell.error}"
            colour = "yellow" if cell.skipped else "red"
            table.add_row(*row, f"[{colour}]{why}[/]", *[""] * (len(names) - 1))
            continue
        got = {f.name: f for f in cell.figures}
        for n in names:
            f = got.get(n)
            if n in cell.not_comparable:
                row.append("[dim]n/a[/]")
            elif f is None:
                row.append("" if n not in LUA_FIGURES or not cell.filter.startswith("lua")
                           else "-")
            elif f.ok:
                row.append(f"[green]{f.filter}[/]")
            else:
                row.append(f"[bold red]{f.filter}/{f.server}[/]")
        table.add_row(*row)
    return table


def summary(cells: Sequence[Cell]) -> list[str]:
    """One line per differing cell: `driver filter: figure filter=X server=Y, ...`."""
    lines = []
    for c in cells:
        if c.error:
            lines.append(f"{c.workload} [{c.filter}]: error: {c.error}")
        elif c.mismatches():
            figs = ", ".join(f"{f.name} filter={f.filter} server={f.server}"
                             for f in c.mismatches())
            lines.append(f"{c.workload} [{c.filter}]: {figs}")
    return lines


def notes(cells: Sequence[Cell]) -> list[str]:
    """Why a figure shows n/a, once per (workload, figure)."""
    seen: dict[tuple[str, str], str] = {}
    for c in cells:
        for fig, why in c.not_comparable.items():
            seen.setdefault((c.workload, fig), why)
    return [f"{w} {fig}: n/a, {why}" for (w, fig), why in seen.items()]
