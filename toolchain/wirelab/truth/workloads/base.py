"""What a workload is: a driver, a protocol, a program and how to get the driver."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    """Where a workload connects (Envoy's listener, or a recorder in front of it)."""

    host: str
    port: int
    user: str
    password: str
    database: str


@dataclass(frozen=True)
class Observed:
    """What the client saw. `rows` is the number of rows it received from SELECT and
    FETCH; None when the client cannot tell (then the server's figure stands in)."""

    rows: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Workload:
    """One cell row of the matrix.

    `setup(conn)` receives a direct DB-API connection (psycopg for PostgreSQL,
    PyMySQL for MariaDB) to the workload's own fresh database and creates what
    the workload needs; `run(target)` drives the real client through the proxy.
    `missing()` returns None when the driver is present, else one line that says
    what is absent and how to get it.
    """

    name: str
    protocol: str
    language: str
    covers: str
    run: Callable[[Target], Observed]
    missing: Callable[[], str | None]
    setup: Callable[[Any, Target], None] | None = None
    # figure -> why the server's own statistics cannot be its truth for this workload
    not_comparable: dict[str, str] = field(default_factory=dict)


def run_json(argv: list[str], env: dict[str, str] | None = None, timeout: float = 180,
             cwd: str | None = None) -> Observed:
    """Run a driver program that prints one JSON object ({"rows": n, ...}) last."""
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("{")]
    if not lines:
        raise RuntimeError(f"{argv[0]} printed no JSON result: {proc.stdout[-500:]}")
    doc = json.loads(lines[-1])
    return Observed(rows=doc.pop("rows", None), detail=doc)
