"""Run workloads through Envoy with the shipped filters and set each figure beside the
server's own.

    with ProtocolLab("postgres") as plab:
        run = plab.run(workload)            # one Run: server figures, filter figures
        run.cells()                         # one Cell per filter (C filter, Lua example)

One lab per protocol: the server, Envoy with the shipped C filter and (when given)
the shipped Lua example that counts statements on the same listener, so both see
the same bytes. Each workload gets a fresh database; the server's figures are deltas
over the workload alone.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..harness import Lab
from ..paths import examples_dir, filters_dir
from ..record import Recorder
from .figures import (
    MY_FIGURES,
    MY_VERBS,
    PG_FIGURES,
    PG_KINDS,
    lua_statement_figures,
    my_filter_figures,
    pg_filter_figures,
)
from .workloads import Observed, Target, Workload

FIGURES = {"postgres": PG_FIGURES, "mysql": MY_FIGURES}
LUA_FIGURES = {"postgres": (*PG_KINDS, "other"), "mysql": MY_VERBS}


@dataclass(frozen=True)
class LuaCounter:
    """A Lua example (examples/lua/<example>) that counts statements as
    `lua.<prefix>.statements.<label>=<kind>`."""

    example: str
    prefix: str
    label: str = "type"


# The shipped Lua examples that count statements, by protocol: every workload of the
# protocol also gets a cell for its Lua example.
LUA_COUNTERS: dict[str, LuaCounter] = {
    "postgres": LuaCounter("pg-statements", "pgstmt"),
    "mysql": LuaCounter("mysql-statements", "mystmt", "verb"),
}


@dataclass
class Figure:
    name: str
    server: int
    filter: int

    @property
    def ok(self) -> bool:
        return self.server == self.filter


@dataclass
class Cell:
    """One workload seen by one filter: every figure, server beside filter."""

    workload: str
    protocol: str
    filter: str  # "filter" (the shipped C filter) or "lua:<example>"
    figures: list[Figure] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None
    not_comparable: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.skipped is None and self.error is None and all(f.ok for f in self.figures)

    def mismatches(self) -> list[Figure]:
        return [f for f in self.figures if not f.ok]

    def as_dict(self) -> dict[str, Any]:
        return {"workload": self.workload, "protocol": self.protocol, "filter": self.filter,
                "ok": self.ok, "skipped": self.skipped, "error": self.error,
                "figures": {f.name: {"server": f.server, "filter": f.filter, "ok": f.ok}
                            for f in self.figures},
                "not_comparable": self.not_comparable}


@dataclass
class Run:
    """One workload run: the server's figures and each filter's."""

    workload: Workload
    server: dict[str, int] = field(default_factory=dict)
    filters: dict[str, dict[str, int]] = field(default_factory=dict)
    observed: Observed | None = None
    recording: Path | None = None
    skipped: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    # figure -> why the server cannot be its truth (the workload's and the server's own)
    not_comparable: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.not_comparable = {**self.workload.not_comparable, **self.not_comparable}

    def cells(self) -> list[Cell]:
        out = []
        names = list(self.filters) or ["filter"]
        for name in names:
            cell = Cell(self.workload.name, self.workload.protocol, name,
                        skipped=self.skipped, error=self.error)
            got = self.filters.get(name, {})
            protocol = self.workload.protocol
            for fig in (LUA_FIGURES[protocol] if name.startswith("lua:")
                        else FIGURES[protocol]):
                if fig in self.not_comparable:
                    cell.not_comparable[fig] = self.not_comparable[fig]
                elif fig in self.server and fig in got:
                    cell.figures.append(Figure(fig, self.server[fig], got[fig]))
            out.append(cell)
        return out


class ProtocolLab:
    """A lab for one protocol: server, Envoy, the shipped filter, optionally the Lua example.

    `lua=False` leaves the Lua example out. Filters are built from copies in a temp
    directory, so an installed (read-only) wirelab works too.
    """

    def __init__(self, protocol: str, *, lua: bool = True, pg_bin: str | Path | None = None):
        if protocol not in FIGURES:
            raise ValueError(f"protocol must be postgres or mysql, not {protocol!r}")
        self.protocol = protocol
        self.lua = LUA_COUNTERS.get(protocol) if lua else None
        self.pg_bin = pg_bin
        self._tmp = tempfile.TemporaryDirectory(prefix="wirelab-truth-")
        self.lab: Lab | None = None
        self.truth: Any = None
        self.specs: dict[str, Any] = {}

    def __enter__(self) -> ProtocolLab:
        root = Path(self._tmp.name)
        dirs = [self._copy(filters_dir() / self.protocol, root / self.protocol)]
        if self.lua is not None:
            dirs.append(self._copy(examples_dir() / "lua" / self.lua.example,
                                   root / self.lua.example))
        pg = self.protocol == "postgres"
        try:
            self.lab = Lab(postgres=pg, mysql=not pg, filters=dirs, pg_bin=self.pg_bin,
                           tls=False).start()
            server = self.lab.postgres if pg else self.lab.mysql
            if pg:
                from .pg_server import PgTruth

                self.truth = PgTruth(server)
            else:
                from .my_server import MyTruth

                self.truth = MyTruth(server)
        except BaseException:
            self.close()
            raise
        names = ["filter"] + ([f"lua:{self.lua.example}"] if self.lua is not None else [])
        self.specs = {n: f.spec for n, f in zip(names, self.lab.filters, strict=True)}
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.truth is not None:
            self.truth.close()
            self.truth = None
        if self.lab is not None:
            self.lab.close()
            self.lab = None
        self._tmp.cleanup()

    @staticmethod
    def _copy(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("build"))
        return dst

    @property
    def server(self) -> Any:
        assert self.lab is not None
        return self.lab.postgres if self.protocol == "postgres" else self.lab.mysql

    def _target(self, port: int) -> Target:
        s = self.server
        return Target(s.host, port, s.user, s.password, self.truth.db)

    def figures_of(self, delta: dict[str, int]) -> dict[str, dict[str, int]]:
        """Every filter's figures from counters (Envoy's deltas or the emulator's)."""
        out = {"filter": (pg_filter_figures(delta) if self.protocol == "postgres"
                          else my_filter_figures(delta))}
        if self.lua is not None:
            out[f"lua:{self.lua.example}"] = lua_statement_figures(
                delta, self.lua.prefix, self.protocol, self.lua.label)
        return out

    def _settle(self) -> None:
        """Every connection of the workload closed and its counts reached Envoy."""
        assert self.lab is not None
        port = self.lab.port(self.protocol)
        self.lab.stats.wait_for(f"listener.127.0.0.1_{port}.downstream_cx_active", 0, 30)
        self.lab.stats.wait_for(f"{self.protocol}.{self.protocol}.sessions_active", 0, 30)

    def run(self, workload: Workload, record_to: Path | None = None) -> Run:
        """Run one workload; `record_to` puts a recorder in front of Envoy and saves
        the conversation there."""
        run = Run(workload)
        if workload.protocol != self.protocol:
            raise ValueError(f"{workload.name} is a {workload.protocol} workload")
        run.skipped = workload.missing()
        if run.skipped:
            return run
        assert self.lab is not None
        self.truth.prepare(workload.name, workload.setup)
        self.truth.begin()
        self.lab.mark()
        envoy_port = self.lab.port(self.protocol)
        try:
            if record_to is None:
                run.observed = workload.run(self._target(envoy_port))
            else:
                with Recorder(upstream=("127.0.0.1", envoy_port), out=record_to,
                              protocol=self.protocol, meta={"workload": workload.name}) as rec:
                    run.observed = workload.run(self._target(rec.port))
                run.recording = record_to
        except Exception as exc:  # the workload's own failure is the cell's result
            run.error = f"{type(exc).__name__}: {exc}"
        self._settle()
        run.server = self.truth.end()
        run.not_comparable.update(self.truth.not_comparable)
        run.filters = self.figures_of(self.lab.delta())
        if run.observed is not None:
            run.detail["client_rows"] = run.observed.rows
            run.detail.update(run.observed.detail)
        if self.protocol == "postgres":
            run.detail["pg_stat_statements"] = [list(r) for r in self.truth.statements()]
        return run
