"""The mysql filter in real Envoy in front of a real MariaDB.

Truth check: the filter's statement counters must equal MariaDB's own `Com_*`
status deltas for the same workload, and its byte counters Envoy's tcp_proxy
byte counts.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec, StatsClient

pytestmark = pytest.mark.e2e

COM = ("Com_select", "Com_insert", "Com_update", "Com_delete", "Com_commit", "Com_rollback",
       "Com_stmt_prepare", "Com_stmt_execute", "Com_stmt_close")


@pytest.fixture(scope="module")
def mysql_wasm(build_bundled_filter: Callable[[str], Path]) -> Path:
    return build_bundled_filter("mysql")


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
            # histograms move only at Envoy's stats flush: wait for it
            stats.wait_for("mysql.app.statement_duration_us.verb=select", 16)
            stats.wait_for("mysql.app.bytes.direction=client",
                           snap.counter("tcp.mysql.downstream_cx_rx_bytes_total"))
            stats.wait_for("mysql.app.bytes.direction=server",
                           snap.counter("tcp.mysql.downstream_cx_tx_bytes_total"))


# ---------------------------------------------------------------- sysbench truth check

SYSBENCH_COM = ("Com_select", "Com_insert", "Com_update", "Com_delete", "Com_begin",
                "Com_commit", "Com_rollback", "Com_stmt_execute")


@pytest.fixture(scope="module")
def sysbench_lab(mysql_wasm: Path):
    """MariaDB with sysbench's table (prepared directly), Envoy + filter in front."""
    if not shutil.which("sysbench"):
        pytest.skip("sysbench is absent: apt-get install sysbench")
    pytest.importorskip("pymysql", reason="pymysql is absent: pip install pymysql")
    with _server() as my:
        subprocess.run(_sysbench(my, my.port, "oltp_read_write") + ["prepare"], check=True,
                       capture_output=True, timeout=120)
        spec = FilterSpec("mysql", mysql_wasm, {"stat_prefix": "sb"})
        with EnvoyProcess([ListenerSpec("mysql", (my.host, my.port), [spec])]) as envoy:
            yield my, envoy


def _sysbench(my, port: int, test: str) -> list[str]:
    return ["sysbench", test, "--db-driver=mysql", "--mysql-host=127.0.0.1",
            f"--mysql-port={port}", f"--mysql-user={my.user}",
            f"--mysql-password={my.password}", f"--mysql-db={my.database}",
            "--mysql-ssl=off", "--tables=1", "--table-size=1000"]


def _global_status(my, names: tuple[str, ...]) -> dict[str, int]:
    """Com_* counters on a direct connection. SHOW GLOBAL STATUS moves only
    Com_show_status, so nothing of ours needs subtracting from `names`."""
    import pymysql

    conn = pymysql.connect(**my.connect_kwargs())
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Com\\_%'")
        rows = dict(cur.fetchall())
    conn.close()
    return {k: int(rows[k]) for k in names}


# oltp_read_write per event (sysbench's oltp_common.lua defaults): BEGIN, 10 point
# selects, 4 range selects, 2 UPDATEs, 1 DELETE, 1 INSERT, COMMIT, all prepared.
@pytest.mark.parametrize(("test", "events", "per_event"), [
    ("oltp_point_select", 2000, {"select": 1}),
    ("oltp_read_write", 150, {"begin": 1, "select": 14, "update": 2, "delete": 1,
                              "insert": 1, "commit": 1}),
])
def test_sysbench_statement_counts_match_mariadb(sysbench_lab, test: str, events: int,
                                                 per_event: dict[str, int]) -> None:
    my, envoy = sysbench_lab
    stats = envoy.stats
    before_stats = stats.snapshot()
    before = _global_status(my, SYSBENCH_COM)
    run = subprocess.run(_sysbench(my, envoy.port("mysql"), test)
                         + ["--threads=2", f"--events={events}", "--time=0", "run"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    stats.wait_for("mysql.sb.sessions_active", 0)
    after = _global_status(my, SYSBENCH_COM)
    com = {k: after[k] - before[k] for k in SYSBENCH_COM}
    delta = StatsClient.delta(before_stats, stats.snapshot())

    def c(name: str) -> int:
        return delta.get(f"mysql.sb.{name}", 0)

    # the filter against MariaDB's own counters
    assert c("statements.verb=select") == com["Com_select"]
    assert c("statements.verb=insert") == com["Com_insert"]
    assert c("statements.verb=update") == com["Com_update"]
    assert c("statements.verb=delete") == com["Com_delete"]
    assert c("statements.verb=begin") == com["Com_begin"]
    assert c("statements.verb=commit") == com["Com_commit"]
    assert c("transactions_committed") == com["Com_commit"]
    assert c("statements.verb=rollback") == com["Com_rollback"]
    # Com_stmt_execute counts attempts, `executed` the ones answered without
    # error (a rare deadlock, 1213, which sysbench ignores and retries)
    assert c("commands.command=stmt_execute") == com["Com_stmt_execute"]
    failed = sum(v for k, v in delta.items() if k.startswith("mysql.sb.errors.code="))
    assert c("prepared_statements.type=executed") + failed == com["Com_stmt_execute"]
    # and both against what sysbench was asked to do, unless a deadlock made it
    # roll back and retry a transaction (then Com_rollback > 0)
    if com["Com_rollback"] == 0 and failed == 0:
        for verb, n in per_event.items():
            assert c(f"statements.verb={verb}") == n * events, verb
    assert c("statements.verb=other") == 0
    assert c("decoder_errors") == 0 and c("protocol_errors") == 0
    assert c("sessions") == 2 and c("login_successes") == 2
    total = sum(c(f"statements.verb={v}") for v in per_event)
    stats.wait_for("mysql.sb.command_duration_us.command=stmt_execute",
                   _hist(before_stats, "mysql.sb.command_duration_us.command=stmt_execute")
                   + total)
    stats.wait_for("mysql.sb.statement_duration_us.verb=select",
                   _hist(before_stats, "mysql.sb.statement_duration_us.verb=select")
                   + c("statements.verb=select"))


def _hist(snap, name: str) -> int:
    h = snap.histograms.get(name)
    return h.count if h else 0
