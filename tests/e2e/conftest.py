"""Fixtures shared by the e2e tests."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def build_bundled_filter(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Builds a copy of filters/<name> (without its build/ folder); returns the .wasm."""
    from wirelab.build import build_project
    from wirelab.paths import filters_dir
    from wirelab.project import Project

    def build(name: str) -> Path:
        src = tmp_path_factory.mktemp("filters") / name
        shutil.copytree(filters_dir() / name, src, ignore=shutil.ignore_patterns("build"))
        return build_project(Project.load(src)).wasm

    return build


@pytest.fixture(scope="session")
def require_mariadb() -> None:
    """Skips a test whose lab needs MariaDB when its server is not installed."""
    from wirelab.servers import ServerError, mariadb

    try:
        mariadb.find_binary("mariadbd")
    except ServerError as exc:
        pytest.skip(f"MariaDB is absent (apt-get install mariadb-server): {exc}")


@pytest.fixture(scope="session")
def pgbench_tables() -> Callable[[object], dict[str, str]]:
    """pgbench_tables(server): pgbench's tables (scale 1) created in a PostgresServer;
    returns the libpq environment of a plaintext direct session. Skips the test when
    pgbench is absent, or pg_stat_statements, which pgbench runs are held against."""

    def init(server) -> dict[str, str]:
        if shutil.which("pgbench") is None:
            pytest.skip("pgbench is absent: apt-get install postgresql-client")
        if not server.pg_stat_statements:
            pytest.skip("this PostgreSQL build has no pg_stat_statements "
                        "(apt-get install postgresql-contrib)")
        env = {**server.env(), "PGSSLMODE": "disable", "PGGSSENCMODE": "disable"}
        subprocess.run(["pgbench", "-i", "-s", "1", "-q"], env=env, check=True,
                       capture_output=True, timeout=120)
        return env

    return init
