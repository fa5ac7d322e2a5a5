"""`wirelab truth`: run the driver matrix and print the grid. The CLI only parses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..errors import WirelabError
from .grid import grid, notes, summary
from .matrix import Cell, ProtocolLab
from .workloads import by_name


def run_matrix(protocols: list[str], drivers: list[str] | None = None, *, lua: bool = True,
               pg_bin: str | Path | None = None, progress: Console | None = None,
               ) -> list[Cell]:
    """Every chosen workload of every chosen protocol, as cells."""
    cells: list[Cell] = []
    for protocol in protocols:
        try:
            workloads = by_name(drivers, protocol)
        except ValueError as exc:
            raise WirelabError(str(exc)) from None
        if not workloads:
            continue
        with ProtocolLab(protocol, lua=lua, pg_bin=pg_bin) as plab:
            for w in workloads:
                if progress is not None:
                    progress.print(f"[dim]running {w.name} ...[/]")
                cells.extend(plab.run(w).cells())
    return cells


def truth_command(postgres: bool, mysql: bool, drivers: tuple[str, ...], pg_bin: Path | None,
                  lua: bool, as_json: bool, out: Console, err: Console) -> int:
    """Run, print (grid or JSON), return the exit code: 1 on any differing figure."""
    protocols = [p for p, on in (("postgres", postgres), ("mysql", mysql)) if on] or [
        "postgres", "mysql"]
    cells = run_matrix(protocols, list(drivers) or None, lua=lua, pg_bin=pg_bin,
                       progress=None if as_json else err)
    if as_json:
        doc: dict[str, Any] = {"ok": all(c.ok or c.skipped for c in cells),
                               "cells": [c.as_dict() for c in cells]}
        out.print_json(json.dumps(doc))
    else:
        for protocol in protocols:
            mine = [c for c in cells if c.protocol == protocol]
            if mine:
                out.print(grid(mine, protocol))
        for line in notes(cells):
            out.print(line, style="dim", markup=False)
        lines = summary(cells)
        for line in lines:
            out.print(f"[red]differs:[/] {escape(line)}")
        if not lines:
            out.print("[green]every figure equals the server's[/]")
    return 0 if all(c.ok or c.skipped for c in cells) else 1
