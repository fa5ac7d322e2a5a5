"""The mysql filter in real Envoy in front of a real MariaDB.

Truth check: the filter's statement counters must equal MariaDB's own `Com_*`
status deltas for the same workload, and its byte counters Envoy's tcp_proxy
byte counts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec

pytestmark = pytest.mark.e2e

COM = ("Com_select", "Com_insert", "Com_update", "Com_delete", "Com_commit", "Com_rollback",
       "Com_stmt_prepare", "Com_stmt_execute", "Com_stmt_close")


@pytest.fixture(scope="module")
def mysql_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from wirelab.build import build_project
    from wirelab.paths import filters_dir
    from wirelab.project import Project

    src = tmp_path_factory.mktemp("filters") / "mysql"
    shutil.copytree(filters_dir() / "mysql", src, ignore=shutil.ignore_patterns("build"))
    return build_project(Project.load(src)).wasm


def _server():
    servers = pytest.importorskip("wirelab.servers", reason="wirelab.servers is not available")
    try:
        servers.mariadb.find_binary("mariadbd")
    except servers.ServerError as exc:
        pytest.skip(f"MariaDB is absent: {exc}")
    return servers.MariaDBServer(tls=False)


def _com_status(my) -> dict[str, int]:
    import pymysql

    conn = pymysql.connect(**my.connect_kwargs())  # direct, not through Envoy
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Com\\_%'")
        rows = dict(cur.fetchall())
    conn.close()
    return {k: int(rows[k]) for k in COM}


def _workload(my, port: int) -> None:
    import mysql.connector
    import pymysql

    conn = pymysql.connect(**my.connect_kwargs(port=port), ssl_disabled=True)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS e2e (id INT PRIMARY KEY, v INT)")
        for i in range(20):
            cur.execute("INSERT INTO e2e VALUES (%s, %s)", (i, i))
        conn.commit()
        for i in range(10):
            cur.execute("SELECT v FROM e2e WHERE id = %s", (i,))
            cur.fetchall()
        cur.execute("UPDATE e2e SET v = v + 1 WHERE id < 5")
        cur.execute("DELETE FROM e2e WHERE id >= 15")
        conn.rollback()
        try:
            cur.execute("SELECT * FROM no_such_table")
        except pymysql.err.MySQLError:
            pass
    conn.close()
    conn = mysql.connector.connect(**my.connect_kwargs(port=port), use_pure=True,
                                   ssl_disabled=True)
    cur = conn.cursor(prepared=True)
    for i in range(5):
        cur.execute("SELECT v FROM e2e WHERE id = ?", (i,))
        cur.fetchall()
    cur.execute("UPDATE e2e SET v = ? WHERE id = ?", (0, 1))
    conn.commit()
    cur.close()
    conn.close()


def test_statement_counts_match_mariadb_com_status(mysql_wasm: Path) -> None:
    pytest.importorskip("pymysql", reason="pymysql is absent: pip install pymysql")
    pytest.importorskip("mysql.connector",
                        reason="mysql-connector-python is absent: "
                        "pip install mysql-connector-python")
    with _server() as my:
        spec = FilterSpec("mysql", mysql_wasm, {"stat_prefix": "app"})
        with EnvoyProcess([ListenerSpec("mysql", (my.host, my.port), [spec])]) as envoy:
            before = _com_status(my)
            _workload(my, envoy.port("mysql"))
            after = _com_status(my)
            com = {k: after[k] - before[k] for k in COM}
            stats = envoy.stats
            stats.wait_for("mysql.app.sessions", 2)
            stats.wait_for("mysql.app.sessions_active", 0)
            stats.wait_for("tcp.mysql.downstream_cx_total", 2)
            snap = stats.snapshot()

            def c(name: str) -> int:
                return snap.counter(f"mysql.app.{name}")

            assert c("statements.verb=insert") == com["Com_insert"] == 20
            assert c("statements.verb=update") == com["Com_update"] == 2
            assert c("statements.verb=delete") == com["Com_delete"] == 1
            assert c("statements.verb=commit") == com["Com_commit"] == 2
            assert c("statements.verb=rollback") == com["Com_rollback"] == 1
            assert c("prepared_statements.type=prepared") == com["Com_stmt_prepare"] == 2
            assert c("prepared_statements.type=executed") == com["Com_stmt_execute"] == 6
            assert c("prepared_statements.type=closed") == com["Com_stmt_close"] == 2
            # 10 text SELECTs, the failing one, 5 prepared executions
            assert c("statements.verb=select") == com["Com_select"] == 16
            assert c("errors.code=1146") == 1
            assert c("rows_returned") == 15
            assert c("rows_affected") == 20 + 5 + 5 + 1
            assert c("login_attempts") == 2 and c("login_successes") == 2
            assert c("decoder_errors") == 0 and c("protocol_errors") == 0
            assert snap.histogram("mysql.app.statement_duration_us.verb=select").count == 16
            stats.wait_for("mysql.app.bytes.direction=client",
                           snap.counter("tcp.mysql.downstream_cx_rx_bytes_total"))
            stats.wait_for("mysql.app.bytes.direction=server",
                           snap.counter("tcp.mysql.downstream_cx_tx_bytes_total"))
