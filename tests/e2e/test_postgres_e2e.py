"""The postgres filter in real Envoy in front of a real PostgreSQL.

Truth check: statement and row counters must equal what PostgreSQL's own
pg_stat_statements recorded for the same workload, logins what
pg_stat_database.sessions recorded, and the byte counters Envoy's tcp_proxy
byte counts. Commits and rollbacks must equal pg_stat_database's xact_commit /
xact_rollback deltas of a database only the workload uses (pgbench in all
three query modes, and a mixed workload of commits, rollbacks, errors inside
and outside transactions, savepoints, pipelines and autocommit statements).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec
from wirelab.envoy.stats import server_bytes_window
from wirelab.testing import pgstats
from wirelab.truth.figures import PG_KINDS

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def pg_wasm(build_bundled_filter: Callable[[str], Path]) -> Path:
    return build_bundled_filter("postgres")


def _server():
    servers = pytest.importorskip("wirelab.servers", reason="wirelab.servers is not available")
    try:
        return servers.PostgresServer(tls=True)
    except servers.ServerError as exc:
        pytest.skip(f"no PostgreSQL with TLS: {exc}")


# The TLS session's `SELECT 4242` (normalised to `SELECT $1`): the filter cannot
# look inside TLS, so it is not in the server's figures the tests compare.
UNSEEN = ("SELECT $1",)


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
            pgstats.reset_statements(pg)
            _workload(pg, envoy.port("pg"))
            truth = pgstats.statements(pg, exclude=UNSEEN)
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
            assert truth.calls == 28
            assert c("statements") == truth.calls + 1
            assert c("rows_returned") == truth.rows_selected == 15 + 1
            assert c("rows_affected") == truth.rows_other == 10 + 3 + 1 + 1 + 1 + 3 + 20
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
            # Envoy's own byte counts settle as the connections close: poll them.
            def byte_counts(snap) -> tuple[tuple[int, int], tuple[int, int, int]]:
                client = (snap.counter("postgres.app.bytes.direction=client"),
                          snap.counter("tcp.pg.downstream_cx_rx_bytes_total"))
                low, high = server_bytes_window(snap.counters, "pg")
                return client, (low, snap.counter("postgres.app.bytes.direction=server"), high)

            def settled(snap) -> bool:
                client, (low, server, high) = byte_counts(snap)
                return client[0] == client[1] and low <= server <= high

            client, (low, server, high) = byte_counts(stats.wait_until(settled))
            assert client[0] == client[1], client
            # the wrong-password client may hang up while the server still sends
            assert low <= server <= high, (low, server, high)
            stats.wait_for("postgres.app.statement_latency_us.type=insert", 15)


def test_pgbench_counts_match_pg_stat_statements(pg_wasm: Path, pgbench_tables) -> None:
    import subprocess

    with _server() as pg:
        env = pgbench_tables(pg)
        for mode in ("simple", "extended", "prepared"):
            spec = FilterSpec("postgres", pg_wasm, {"stat_prefix": mode})
            with EnvoyProcess([ListenerSpec("pg", (pg.host, pg.port), [spec])]) as envoy:
                pgstats.reset_statements(pg)
                logins = pgstats.Sessions(pg)
                proxied = {**env, "PGPORT": str(envoy.port("pg"))}
                subprocess.run(["pgbench", "-n", "-c", "2", "-j", "1", "-t", "40", "-M", mode],
                               env=proxied, check=True, capture_output=True, timeout=300)
                sessions = logins.since(expected=3)
                truth = pgstats.statements(pg, exclude=UNSEEN)
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
                    assert c("statements") == truth.calls, mode
                assert (c("statements") - c("statements_other") == truth.dml_calls
                        == 2 * 40 * 5 + 2), mode
                assert c("statements_update") == 2 * 40 * 3, mode
                assert c("statements_insert") == 2 * 40, mode
                assert c("transactions_commit") - c("transactions") == 0, mode
                # one row per SELECT: each transaction's balance, pgbench's 2 setup queries
                assert c("rows_returned") == truth.rows_selected == 2 * 40 + 2, mode
                assert c("decoder_errors") == 0 and c("errors") == 0, mode
                envoy.stats.wait_for(f"postgres.{mode}.transaction_latency_us", 80)
                # pg_stat_database.sessions saw pgbench's 3 logins, as the filter did.
                assert c("sessions") == sessions == 3, mode


# ---------------------------------------------------------------- transactions: pg_stat_database

# The filter's transactions_commit / transactions_rollback against PostgreSQL's
# own xact_commit / xact_rollback of a database that only the workload uses, read
# by the driver matrix's reader (wirelab.truth.pg_server.PgTruth): autovacuum is
# off (its workers' transactions would count there too), the reader sits in
# another database, and every backend of the workload has exited (backends flush
# their stats on exit) before a read. PostgreSQL also counts one commit per login
# (InitPostgres reads the catalogs in a transaction), which no wire message shows:
# PgTruth measures that cost with a login that does nothing and takes it off.


class Truth:
    def __init__(self, lab, server) -> None:
        self.lab = lab
        self.server = server  # a PgTruth, prepared: its database is the workload's

    def info(self) -> dict:
        return {**self.lab.pg_conninfo(), "dbname": self.server.db, "sslmode": "disable",
                "gssencmode": "disable"}

    def env(self) -> dict[str, str]:
        return {**self.lab.pg_env(), "PGDATABASE": self.server.db, "PGSSLMODE": "disable",
                "PGGSSENCMODE": "disable"}


@pytest.fixture(scope="module")
def truth():
    import subprocess

    from wirelab.harness import Lab
    from wirelab.truth.pg_server import PgTruth

    with Lab(postgres=True, filters=[Path(__file__).resolve().parents[2] / "filters" / "postgres"],
             filter_config={"stat_prefix": "truth", "slow_threshold_ms": 0}, tls=False) as lab:
        if not lab.postgres.pg_stat_statements:
            pytest.skip("this PostgreSQL build has no pg_stat_statements")
        server = PgTruth(lab.postgres)

        def setup(conn, direct) -> None:
            conn.execute("CREATE TABLE mixed (id int PRIMARY KEY, v text)")
            env = {**lab.pg_env(), "PGDATABASE": direct.database, "PGPORT": str(direct.port),
                   "PGSSLMODE": "disable", "PGGSSENCMODE": "disable"}
            subprocess.run(["pgbench", "-i", "-s", "1", "-q"], env=env, check=True,
                           capture_output=True, timeout=120)

        try:
            server.prepare("e2e", setup)
            yield Truth(lab, server)
        finally:
            server.close()


def _dml(server: dict[str, int]) -> int:
    return sum(server[k] for k in PG_KINDS)


def _filter_deltas(t: Truth) -> dict[str, int]:
    t.lab.stats.wait_for("postgres.truth.sessions_active", 0)
    delta = t.lab.delta()
    return {k: delta.get(f"postgres.truth.{k}", 0) for k in (
        "transactions", "transactions_commit", "transactions_rollback", "sessions",
        "statements", "statements_other")}


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench_transactions_match_pg_stat_database(truth: Truth, mode: str) -> None:
    import subprocess

    truth.server.begin()
    truth.lab.mark()
    subprocess.run(["pgbench", "-n", "-c", "2", "-j", "1", "-t", "20", "-M", mode],
                   env=truth.env(), check=True, capture_output=True, timeout=120)
    server = truth.server.end()
    f = _filter_deltas(truth)
    # Worked out from pgbench: its setup connection's 2 SELECTs, 2 clients x 20
    # TPC-B transactions; -M prepared also prepares BEGIN (Parse + Sync) outside
    # a transaction once per client.
    assert f["transactions_commit"] == 2 + 40 + (2 if mode == "prepared" else 0), mode
    assert f["transactions_rollback"] == 0 and f["sessions"] == 3, mode
    # ... and PostgreSQL's own accounting agrees.
    assert (server["commit"], server["rollback"], server["sessions"]) == (
        f["transactions_commit"], f["transactions_rollback"], f["sessions"]), (mode, server, f)
    # Statements: pg_stat_statements counts BEGIN/END run as named prepared
    # statements once per connection, so -M prepared is compared on DML.
    assert f["statements"] - f["statements_other"] == _dml(server) == 2 + 40 * 5, mode
    if mode != "prepared":
        assert f["statements"] == _dml(server) + server["other"] == 2 + 40 * 7, mode


def test_mixed_workload_matches_pg_stat_database(truth: Truth) -> None:
    import asyncio
    import subprocess

    import psycopg

    asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is absent: pip install asyncpg")
    truth.server.begin()
    truth.lab.mark()
    ins = "INSERT INTO mixed VALUES (%s, %s)"
    with psycopg.connect(**truth.info(), autocommit=True) as conn:
        conn.execute(ins, (1, "a"), prepare=False)                        # C1
        conn.execute("SELECT count(*) FROM mixed").fetchall()             # C2
    # A connection of its own: psycopg answers a later ROLLBACK on a connection
    # holding prepared statements with DEALLOCATE ALL, at a moment of its choosing.
    with psycopg.connect(**truth.info(), autocommit=True) as conn:
        conn.execute("UPDATE mixed SET v = %s WHERE id = %s", ("u", 1),
                     prepare=True)                                        # C3 prepare, C4 run
    with psycopg.connect(**truth.info(), autocommit=True) as conn:
        conn.execute("INSERT INTO mixed VALUES (2, 'b'); "
                     "INSERT INTO mixed VALUES (3, 'c')")                 # C5: one Query
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")                                    # R1
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(ins, (1, "dup"), prepare=False)                  # R2
        with conn.pipeline():                                             # C6: one Sync
            conn.execute(ins, (4, "p"), prepare=False)
            conn.execute(ins, (5, "p"), prepare=False)
            conn.execute("UPDATE mixed SET v = %s WHERE id >= %s", ("q", 4), prepare=False)
        with pytest.raises(psycopg.errors.UniqueViolation), conn.pipeline():
            conn.execute(ins, (6, "p"), prepare=False)                    # R3: the pipeline
            conn.execute(ins, (1, "dup"), prepare=False)                  # fails here, the
            conn.execute(ins, (7, "p"), prepare=False)                    # rest is skipped
        for sql in ("BEGIN", "INSERT INTO mixed VALUES (8, 's')", "SAVEPOINT a"):
            conn.execute(sql)
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO mixed VALUES (1, 'dup')")
        for sql in ("ROLLBACK TO SAVEPOINT a", "INSERT INTO mixed VALUES (9, 's')",
                    "RELEASE SAVEPOINT a", "COMMIT"):                      # C7
            conn.execute(sql)
        for sql in ("BEGIN", "UPDATE mixed SET v = 'r'", "ROLLBACK"):    # R4
            conn.execute(sql)
        conn.execute("BEGIN")
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
        conn.execute("COMMIT")                                            # R5 (tag ROLLBACK)
        for sql in ("START TRANSACTION", "DELETE FROM mixed WHERE id = 9", "END"):  # C8
            conn.execute(sql)
        conn.execute("BEGIN; INSERT INTO mixed VALUES (10, 'x'); COMMIT")  # C9
        with conn.cursor().copy("COPY mixed FROM STDIN") as cp:           # C10
            cp.write(b"".join(b"%d\tc\n" % i for i in range(100, 105)))
    left_open = psycopg.connect(**truth.info(), autocommit=True)
    left_open.execute("BEGIN")
    left_open.execute("INSERT INTO mixed VALUES (200, 'o')")
    left_open.close()                                                     # R6: Terminate

    async def run_asyncpg() -> None:
        info = {**truth.lab.pg_conninfo(driver="asyncpg"), "database": truth.server.db}
        conn = await asyncpg.connect(**info, ssl=False)
        try:
            await conn.fetch("SELECT v FROM mixed WHERE id >= $1", 100)   # C11
            await conn.executemany("INSERT INTO mixed VALUES ($1, $2)",
                                   [(300, "a"), (301, "b"), (302, "c")])  # C12: one Sync
            async with conn.transaction():                                # C13
                await conn.execute("UPDATE mixed SET v = 'y' WHERE id = 300")
        finally:
            await conn.close()

    asyncio.run(run_asyncpg())
    subprocess.run(["psql", "-X", "-q", "-c", "SELECT 1; SELECT 2"], env=truth.env(),
                   check=True, capture_output=True, timeout=30)              # C14: one Query

    server = truth.server.end()
    f = _filter_deltas(truth)
    assert f["sessions"] == 6
    assert f["transactions_commit"] == 14 and f["transactions_rollback"] == 6, f
    assert (server["commit"], server["rollback"], server["sessions"]) == (
        f["transactions_commit"], f["transactions_rollback"], f["sessions"]), (server, f)
    # Completed statements (failed ones have no CommandComplete and no
    # pg_stat_statements entry): 1+1+1+2, pipeline 3, the failed pipeline's
    # first INSERT, 7 in the savepoint transaction, 3, 2, 3, 3, COPY, the open
    # transaction's 2, asyncpg 1+3+3, psql 2.
    assert f["statements"] == _dml(server) + server["other"] == \
        5 + 3 + 1 + 7 + 3 + 2 + 3 + 3 + 1 + 2 + 7 + 2, (f, truth.server.statements())
