"""The Lua examples in real Envoy (V8) in front of real PostgreSQL and MariaDB.

One lab for the module: PostgreSQL + MariaDB, Envoy with all four examples
(tcp-bytes on both listeners, the two PostgreSQL examples on `postgres`, the
slow-query log on `mysql`). Every expected value is worked out from what the
client did; each test measures deltas from its own mark.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator

import pytest

from wirelab.envoy import Snapshot
from wirelab.harness import Lab
from wirelab.paths import examples_dir

pytestmark = pytest.mark.e2e

EXAMPLES = ("tcp-bytes", "pg-statements", "pg-connections-per-user", "mysql-slow-queries")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if shutil.which("psql") is None:
        pytest.skip("psql is absent (apt-get install postgresql-client)")
    root = tmp_path_factory.mktemp("lua-examples")
    dirs = []
    for name in EXAMPLES:
        shutil.copytree(examples_dir() / "lua" / name, root / name,
                        ignore=shutil.ignore_patterns("build"))
        dirs.append(str(root / name))
    with Lab(postgres=True, mysql=True, filters=dirs) as lab:
        yield lab


def flushed_mark(lab: Lab) -> Snapshot:
    """A mark taken after Envoy's stats flush caught up with earlier histogram samples."""
    time.sleep(3 * lab.stats_flush_interval_ms / 1000)
    return lab.mark()


def value0(snap: Snapshot, name: str) -> int:
    value = snap.value(name)
    return value or 0


def wait_closed(lab: Lab, listener: str, total: int) -> None:
    """Wait until `total` downstream connections were opened and all are closed."""
    lab.stats.wait_for(f"tcp.{listener}.downstream_cx_total", total)
    lab.stats.wait_for(f"listener.127.0.0.1_{lab.port(listener)}.downstream_cx_active", 0)


def psql(lab: Lab, sql: str, *, direct: bool = False, user: str | None = None,
         password: str | None = None) -> str:
    env = lab.pg_env(direct=direct)
    if user:
        env["PGUSER"] = user
    if password:
        env["PGPASSWORD"] = password
    proc = subprocess.run(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=0", "-f", "-"],
                          input=sql, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# ---- tcp-bytes ---------------------------------------------------------------------


def test_tcp_bytes_equal_tcp_proxy(lab: Lab) -> None:
    base = lab.mark()
    cx0 = base.counter("tcp.postgres.downstream_cx_total")
    # An SSLRequest (8 bytes) answered by 'N' (1 byte, the lab has no TLS), then close.
    with socket.create_connection(("127.0.0.1", lab.port("postgres"))) as s:
        s.sendall(struct.pack(">II", 8, 80877103))
        assert s.recv(1) == b"N"
    # A real psql session.
    assert psql(lab, "select 1;\nselect repeat('x', 5000);\n").splitlines()[0] == "1"
    wait_closed(lab, "postgres", cx0 + 2)
    snap = lab.stats.snapshot()
    rx = snap.counter("tcp.postgres.downstream_cx_rx_bytes_total")
    tx = snap.counter("tcp.postgres.downstream_cx_tx_bytes_total")
    rx0 = base.counter("tcp.postgres.downstream_cx_rx_bytes_total")
    tx0 = base.counter("tcp.postgres.downstream_cx_tx_bytes_total")
    client = snap.counter("lua.tcpbytes.bytes.direction=client")
    server = snap.counter("lua.tcpbytes.bytes.direction=server")
    d_client = client - base.counter("lua.tcpbytes.bytes.direction=client")
    d_server = server - base.counter("lua.tcpbytes.bytes.direction=server")
    assert d_client == rx - rx0
    assert d_server == tx - tx0 > 1 + 5000  # the 'N', then at least the 5000-byte row
    assert snap.counter("lua.tcpbytes.connections") - base.counter("lua.tcpbytes.connections") == 2
    # Whole-lab truth: every byte either listener carried, whatever the other tests did.
    my_rx = snap.counter("tcp.mysql.downstream_cx_rx_bytes_total")
    my_tx = snap.counter("tcp.mysql.downstream_cx_tx_bytes_total")
    lab.stats.wait_for("lua.tcpbytes.open_connections", 0)
    assert client == rx + my_rx
    assert server == tx + my_tx
    assert snap.counter("lua.tcpbytes.script_errors") == 0


def test_tcp_bytes_exact_for_a_handcrafted_connection(lab: Lab) -> None:
    base = lab.mark()
    cx0 = base.counter("tcp.postgres.downstream_cx_total")
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", lab.port("postgres"))) as s:
            s.sendall(struct.pack(">II", 8, 80877103))
            assert s.recv(1) == b"N"
    wait_closed(lab, "postgres", cx0 + 3)
    delta = lab.delta()
    assert delta["lua.tcpbytes.bytes.direction=client"] == 3 * 8
    assert delta["lua.tcpbytes.bytes.direction=server"] == 3 * 1
    assert delta["lua.tcpbytes.connections"] == 3
    assert delta["tcp.postgres.downstream_cx_rx_bytes_total"] == 24
    assert delta["tcp.postgres.downstream_cx_tx_bytes_total"] == 3
    # The PostgreSQL examples saw the SSLRequest and the 'N' and nothing else.
    assert "lua.pgstmt.decoder_errors" not in delta
    assert "lua.pgusers.decoder_errors" not in delta


# ---- pg-statements --------------------------------------------------------------------

PSQL_SCRIPT = """\
CREATE TABLE lua_e2e (id int PRIMARY KEY, v int);
INSERT INTO lua_e2e VALUES (1, 1);
INSERT INTO lua_e2e VALUES (2, 2);
INSERT INTO lua_e2e VALUES (3, 3), (4, 4);
SELECT v FROM lua_e2e WHERE id = 1;
SELECT v FROM lua_e2e WHERE id = 2;
SELECT count(*) FROM lua_e2e;
UPDATE lua_e2e SET v = v + 1 WHERE id < 3;
UPDATE lua_e2e SET v = 0 WHERE id = 99;
DELETE FROM lua_e2e WHERE id = 4;
SELECT * FROM no_such_table;
BEGIN;
SELECT 1;
COMMIT;
"""


def test_pg_statements_by_type(lab: Lab) -> None:
    import psycopg

    base = lab.mark()
    cx0 = base.counter("tcp.postgres.downstream_cx_total")
    out = psql(lab, PSQL_SCRIPT)
    assert out.splitlines() == ["1", "2", "4", "1"]
    # Extended protocol: psycopg sends Parse/Bind/Describe/Execute/Sync per execute,
    # and BEGIN before the first statement of a transaction (autocommit off).
    with psycopg.connect(**lab.pg_conninfo(), prepare_threshold=None) as conn:
        for i in (1, 2, 3):
            assert conn.execute("SELECT v FROM lua_e2e WHERE id = %s", (i,)).fetchone()
        conn.execute("INSERT INTO lua_e2e VALUES (%s, %s)", (10, 10))
        conn.commit()
        conn.execute("UPDATE lua_e2e SET v = %s WHERE id = %s", (5, 10))
        conn.rollback()
    psql(lab, "DROP TABLE lua_e2e;\n")
    wait_closed(lab, "postgres", cx0 + 3)

    expected = {
        # psql: 3 + 1 + 1 (the BEGIN block) selects; psycopg: 3
        "select": 3 + 1 + 3,
        "insert": 3 + 1,
        "update": 2 + 1,
        "delete": 1,
        "ddl": 2,          # CREATE TABLE, DROP TABLE
        "begin": 1 + 2,    # psql's BEGIN; psycopg's two implicit transactions
        "commit": 1 + 1,
        "rollback": 1,
    }
    delta = lab.delta()
    got = {k.split("type=", 1)[1]: v for k, v in delta.items()
           if k.startswith("lua.pgstmt.statements.type=")}
    assert got == expected
    assert delta["lua.pgstmt.errors"] == 1
    assert delta["lua.pgstmt.errors_by_code.sqlstate=42P01"] == 1
    assert "lua.pgstmt.script_errors" not in delta
    assert "lua.pgstmt.decoder_errors" not in delta
    # One latency sample per statement, per type, over the lab's whole life
    # (histograms arrive with Envoy's stats flush, so compare totals).
    snap = lab.stats.snapshot()
    for verb in expected:
        total = snap.counter(f"lua.pgstmt.statements.type={verb}")
        lab.stats.wait_for(f"lua.pgstmt.statement_latency_us.type={verb}", total)


# ---- pg-connections-per-user --------------------------------------------------------------


def test_pg_connections_per_user(lab: Lab) -> None:
    import psycopg

    pg = lab.postgres
    psql(lab, "DROP ROLE IF EXISTS lua_bob;\n"
              "CREATE ROLE lua_bob LOGIN PASSWORD 'bob-secret';\n"
              f"GRANT CONNECT ON DATABASE {pg.database} TO lua_bob;\n", direct=True)
    base = lab.mark()
    cx0 = base.counter("tcp.postgres.downstream_cx_total")
    user_tags = f"database={pg.database}.user={pg.user}"
    bob_tags = f"database={pg.database}.user=lua_bob"

    held = [psycopg.connect(**lab.pg_conninfo()) for _ in range(2)]
    held.append(psycopg.connect(**{**lab.pg_conninfo(), "user": "lua_bob",
                                   "password": "bob-secret"}))
    lab.stats.wait_for(f"lua.pgusers.active_connections.{user_tags}",
                       value0(base, f"lua.pgusers.active_connections.{user_tags}") + 2)
    lab.stats.wait_for(f"lua.pgusers.active_connections.{bob_tags}", 1)
    for _ in range(2):
        assert psql(lab, "select current_user;\n", user="lua_bob",
                    password="bob-secret").strip() == "lua_bob"
    for conn in held:
        conn.close()
    # A failed login is still a connection that named a user.
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**{**lab.pg_conninfo(), "user": "lua_bob", "password": "wrong"})
    wait_closed(lab, "postgres", cx0 + 6)

    delta = lab.delta()
    assert delta[f"lua.pgusers.connections.{user_tags}"] == 2
    assert delta[f"lua.pgusers.connections.{bob_tags}"] == 1 + 2 + 1
    snap = lab.stats.snapshot()
    assert snap.gauge(f"lua.pgusers.active_connections.{bob_tags}") == 0
    assert snap.gauge(f"lua.pgusers.active_connections.{user_tags}") == 0
    assert "lua.pgusers.script_errors" not in delta
    psql(lab, "DROP ROLE lua_bob;\n", direct=True)


# ---- mysql-slow-queries ---------------------------------------------------------------------


def test_mysql_slow_query_is_counted_and_logged(lab: Lab) -> None:
    import pymysql

    base = flushed_mark(lab)
    cx0 = base.counter("tcp.mysql.downstream_cx_total")
    slow_name = "lua.myslow.slow_queries.verb=select"
    hist = "lua.myslow.query_latency_us.verb=select"
    conn = pymysql.connect(**lab.mysql_kwargs(), autocommit=None)
    with conn.cursor() as cur:
        for _ in range(3):
            cur.execute("SELECT 1")
            assert cur.fetchall() == ((1,),)
        started = time.monotonic()
        cur.execute("SELECT SLEEP(0.3)")
        assert cur.fetchall() == ((0,),)
        assert time.monotonic() - started >= 0.3
        try:
            cur.execute("SELECT * FROM no_such_table")
        except pymysql.err.ProgrammingError:
            pass
    conn.close()
    wait_closed(lab, "mysql", cx0 + 1)

    delta = lab.delta()
    assert delta[slow_name] == 1
    assert {k for k in delta if k.startswith("lua.myslow.slow_queries")} == {slow_name}
    assert delta["lua.myslow.query_errors"] == 1
    assert "lua.myslow.script_errors" not in delta
    # 3 fast selects + the slow one + the failing one
    lab.stats.wait_for(hist, value0(base, hist) + 5)
    # Envoy writes its log file on a flush timer: give the line a moment to land.
    deadline = time.monotonic() + 5
    while True:
        lines = [ln for ln in lab.log_tail(5000).splitlines() if "slow query:" in ln]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(lines) == 1, lines
    user = lab.mysql.user
    assert f"user={user} rows=1 sql=SELECT SLEEP(0.3)" in lines[0]
    took_ms = int(lines[0].split("slow query: ", 1)[1].split(" ms", 1)[0])
    assert 300 <= took_ms
