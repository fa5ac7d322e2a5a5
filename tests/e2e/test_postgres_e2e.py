"""The postgres filter in real Envoy in front of a real PostgreSQL.

Truth check: statement and row counters must equal what PostgreSQL's own
pg_stat_statements recorded for the same workload, logins what
pg_stat_database.sessions recorded, and the byte counters Envoy's tcp_proxy
byte counts.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pg_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from wirelab.build import build_project
    from wirelab.paths import filters_dir
    from wirelab.project import Project

    src = tmp_path_factory.mktemp("filters") / "postgres"
    shutil.copytree(filters_dir() / "postgres", src, ignore=shutil.ignore_patterns("build"))
    return build_project(Project.load(src)).wasm


def _server():
    servers = pytest.importorskip("wirelab.servers", reason="wirelab.servers is not available")
    try:
        return servers.PostgresServer(tls=True)
    except servers.ServerError as exc:
        pytest.skip(f"no PostgreSQL with TLS: {exc}")


def _direct(pg):
    import psycopg

    return psycopg.connect(**pg.conninfo(), sslmode="disable", autocommit=True)


def _statements(pg) -> tuple[int, int, int]:
    """(calls, rows of SELECTs, rows of other statements) since the reset, without
    our own pg_stat_statements queries and the TLS session's `SELECT 4242`
    (normalised to `SELECT $1`), which the filter cannot see."""
    with _direct(pg) as conn:
        rows = conn.execute(
            "SELECT query, calls, rows FROM pg_stat_statements "
            "WHERE query NOT ILIKE '%pg\\_stat%' AND query <> 'SELECT $1'"
        ).fetchall()
    calls = sum(r[1] for r in rows)
    selected = sum(r[2] for r in rows if r[0].lstrip().upper().startswith("SELECT"))
    other = sum(r[2] for r in rows if not r[0].lstrip().upper().startswith("SELECT"))
    return calls, selected, other


def _db_sessions(pg) -> int:
    """pg_stat_database.sessions of the test database, after flushing our stats."""
    with _direct(pg) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        return conn.execute("SELECT sessions FROM pg_stat_database "
                            "WHERE datname = current_database()").fetchone()[0]


def _sessions_baseline(pg) -> tuple[int, int]:
    """(sessions now, sessions one reading connection adds)."""
    first = _db_sessions(pg)
    second = _db_sessions(pg)
    return second, second - first


def _dml_calls(pg) -> int:
    """pg_stat_statements calls of SELECT/INSERT/UPDATE/DELETE since the reset."""
    with _direct(pg) as conn:
        return conn.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
            "WHERE query NOT ILIKE '%pg\\_stat%' "
            "AND upper(split_part(ltrim(query), ' ', 1)) "
            "IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')"
        ).fetchone()[0]


def _workload(pg, port: int) -> None:
    import psycopg

    info = {**pg.conninfo(port=port), "sslmode": "disable", "gssencmode": "disable"}
    with psycopg.connect(**info, autocommit=True, prepare_threshold=3) as conn:
        conn.execute("CREATE TABLE e2e (id int, v text)")
        for i in range(10):
            conn.execute("INSERT INTO e2e VALUES (%s, %s)", (i, "v"))
        for _ in range(3):
            conn.execute("SELECT * FROM e2e WHERE id < %s", (5,)).fetchall()
        conn.execute("UPDATE e2e SET v = 'u' WHERE id < 3")
        conn.execute("DELETE FROM e2e WHERE id = 9")
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
        with conn.transaction():
            conn.execute("INSERT INTO e2e VALUES (100, 't')")
            conn.execute("SELECT count(*) FROM e2e").fetchall()
        with pytest.raises(RuntimeError), conn.transaction():
            conn.execute("INSERT INTO e2e VALUES (101, 'r')")
            raise RuntimeError("roll back")
        with conn.pipeline():
            for i in range(3):
                conn.execute("INSERT INTO e2e VALUES (%s, 'p')", (200 + i,))
        with conn.cursor().copy("COPY e2e FROM STDIN") as cp:
            for i in range(20):
                cp.write_row((300 + i, "c"))
        conn.execute("DROP TABLE e2e")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**{**info, "password": "wrong"})
    tls = {**info, "sslmode": "require"}
    with psycopg.connect(**tls, autocommit=True) as conn:
        conn.execute("SELECT 4242").fetchall()


def test_counts_match_pg_stat_statements(pg_wasm: Path) -> None:
    pytest.importorskip("psycopg", reason="psycopg is absent: pip install 'psycopg[binary]'")
    with _server() as pg:
        if not pg.pg_stat_statements:
            pytest.skip("this PostgreSQL build has no pg_stat_statements "
                        "(apt-get install postgresql-contrib)")
        spec = FilterSpec("postgres", pg_wasm, {"stat_prefix": "app", "slow_threshold_ms": 0})
        with EnvoyProcess([ListenerSpec("pg", (pg.host, pg.port), [spec])]) as envoy:
            with _direct(pg) as conn:
                conn.execute("SELECT pg_stat_statements_reset()")
            _workload(pg, envoy.port("pg"))
            calls, selected_rows, other_rows = _statements(pg)
            stats = envoy.stats
            stats.wait_for("tcp.pg.downstream_cx_total", 3)
            stats.wait_for("postgres.app.sessions_active", 0)
            snap = stats.snapshot()

            def c(name: str) -> int:
                return snap.counter(f"postgres.app.{name}")

            # CREATE, 10 INSERT, 3 SELECT, UPDATE, DELETE, BEGIN INSERT SELECT COMMIT,
            # BEGIN INSERT ROLLBACK, 3 pipelined INSERT, COPY, DROP: 28. After the
            # ROLLBACK psycopg sends DEALLOCATE ALL, which has a CommandComplete
            # but is not tracked by pg_stat_statements.
            assert calls == 28
            assert c("statements") == calls + 1
            assert c("rows_returned") == selected_rows == 15 + 1
            assert c("rows_affected") == other_rows == 10 + 3 + 1 + 1 + 1 + 3 + 20
            assert c("statements_insert") == 15 and c("statements_select") == 4
            assert c("statements_other") == 8
            # explicit: one COMMIT, one ROLLBACK. Implicit (one per simple Query or
            # Sync, as PostgreSQL counts them): CREATE, 10 INSERTs plus the Parse +
            # Sync that prepares the INSERT at its 4th run (prepare_threshold=3),
            # 3 SELECTs, UPDATE, DELETE, DEALLOCATE ALL, the pipeline (one Sync),
            # COPY, DROP: 21 committed; SELECT 1/0 rolled back.
            assert c("transactions_commit") == 1 + 21 and c("transactions_rollback") == 1 + 1
            assert c("errors_by_class.class=22") == 1
            assert c("login_failures_by_sqlstate.sqlstate=28P01") == 1
            assert c("sessions_encrypted") == 1 and c("sessions_unencrypted") == 1
            assert c("copy_in") == 1 and c("decoder_errors") == 0
            # Envoy's own byte counts settle as the connections close: poll both.
            deadline = time.monotonic() + 10
            while True:
                snap = stats.snapshot()
                pairs = [(snap.counter(f"postgres.app.bytes.direction={d}"),
                          snap.counter(f"tcp.pg.downstream_cx_{x}_bytes_total"))
                         for d, x in (("client", "rx"), ("server", "tx"))]
                if all(a == b for a, b in pairs) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert pairs[0][0] == pairs[0][1] and pairs[1][0] == pairs[1][1], pairs
            stats.wait_for("postgres.app.statement_latency_us.type=insert", 15)


def test_pgbench_counts_match_pg_stat_statements(pg_wasm: Path) -> None:
    import subprocess

    if shutil.which("pgbench") is None:
        pytest.skip("pgbench is absent: apt-get install postgresql-client")
    with _server() as pg:
        if not pg.pg_stat_statements:
            pytest.skip("this PostgreSQL build has no pg_stat_statements "
                        "(apt-get install postgresql-contrib)")
        env = {**pg.env(), "PGSSLMODE": "disable", "PGGSSENCMODE": "disable"}
        subprocess.run(["pgbench", "-i", "-s", "1", "-q"], env=env, check=True,
                       capture_output=True, timeout=120)
        for mode in ("simple", "extended", "prepared"):
            spec = FilterSpec("postgres", pg_wasm, {"stat_prefix": mode})
            with EnvoyProcess([ListenerSpec("pg", (pg.host, pg.port), [spec])]) as envoy:
                with _direct(pg) as conn:
                    conn.execute("SELECT pg_stat_statements_reset()")
                before, reader = _sessions_baseline(pg)
                proxied = {**env, "PGPORT": str(envoy.port("pg"))}
                subprocess.run(["pgbench", "-n", "-c", "2", "-j", "1", "-t", "40", "-M", mode],
                               env=proxied, check=True, capture_output=True, timeout=300)
                # Backends report their session at exit; each reading connection
                # adds `reader` itself.
                deadline = time.monotonic() + 10
                while (sessions := _db_sessions(pg) - before - reader) != 3:
                    if time.monotonic() > deadline:
                        break
                    before += reader
                    time.sleep(0.2)
                calls, selected_rows, _ = _statements(pg)
                dml = _dml_calls(pg)
                envoy.stats.wait_for(f"postgres.{mode}.sessions_active", 0)
                snap = envoy.stats.snapshot()

                def c(name: str, mode: str = mode, snap=snap) -> int:
                    return snap.counter(f"postgres.{mode}.{name}")

                # 2 clients x 40 TPC-B transactions of 7 statements, plus pgbench's
                # 2 setup SELECTs. pg_stat_statements counts BEGIN/END run as
                # prepared statements only once per connection (-M prepared), so
                # the exact check against it is on SELECT/INSERT/UPDATE/DELETE.
                assert c("statements") == 2 * 40 * 7 + 2, mode
                if mode != "prepared":
                    assert c("statements") == calls, mode
                assert c("statements") - c("statements_other") == dml == 2 * 40 * 5 + 2, mode
                assert c("statements_update") == 2 * 40 * 3, mode
                assert c("statements_insert") == 2 * 40, mode
                assert c("transactions_commit") - c("transactions") == 0, mode
                assert c("rows_returned") == selected_rows, mode
                assert c("decoder_errors") == 0 and c("errors") == 0, mode
                envoy.stats.wait_for(f"postgres.{mode}.transaction_latency_us", 80)
                # pg_stat_database.sessions saw pgbench's 3 logins, as the filter did.
                assert c("sessions") == sessions == 3, mode
