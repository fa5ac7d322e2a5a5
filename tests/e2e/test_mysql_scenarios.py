"""The mysql filter in real Envoy in front of MariaDB: one scenario per client
behaviour, each with the exact stat deltas that client's traffic must produce.

Every expected number below is worked out from what the client sends (the
statements written here, plus what each driver adds on its own, which MariaDB's
general log shows: pymysql sends `SET NAMES utf8mb4` on connect and
`SET AUTOCOMMIT = 0` unless autocommit=True; Connector/Python sends
`SET NAMES ...` and `SET @@session.autocommit = OFF`, a COM_PING from
`cursor()`, and a COM_STMT_RESET before every COM_STMT_EXECUTE; the mariadb CLI
in batch mode sends only the statements). Each scenario compares the *whole*
set of the filter's counters that moved, so an unexpected count fails too;
byte counters must equal tcp_proxy's, and latency histograms must hold one
sample per timed command / statement.

One lab (MariaDB + Envoy + filter) serves the module; scenarios are separated
by `lab.mark()` and end when `sessions_active` is back to its value. Tables
and the stored procedure are created on a direct connection (not through
Envoy) so they cost nothing in the counts.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wirelab.envoy.stats import server_bytes_window

pytestmark = pytest.mark.e2e

pymysql = pytest.importorskip("pymysql", reason="pymysql is absent: pip install pymysql")

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "mysql.app."
# tcp_proxy's stat_prefix is the listener name
TCP_RX = "tcp.mysql.downstream_cx_rx_bytes_total"
UNTIMED = ("quit", "stmt_close", "stmt_send_long_data")  # commands without an answer
FLUSH_S = 0.2  # the lab's stats flush interval (histograms move only then)


def _require_mariadb() -> None:
    from wirelab.servers import ServerError, mariadb

    try:
        mariadb.find_binary("mariadbd")
    except ServerError as exc:
        pytest.skip(f"MariaDB is absent: {exc}")


def _lab(flush_ms: int | None = 0, **kwargs: Any) -> Any:
    from wirelab.harness import Lab

    _require_mariadb()
    config: dict[str, Any] = {"stat_prefix": "app"}
    if flush_ms is not None:
        config["metrics_flush_ms"] = flush_ms
    return Lab(mysql=True, filters=[ROOT / "filters" / "mysql"], filter_config=config, **kwargs)


# The filter's two ways of reporting counters: every callback, or held in the
# filter and sent on a tick and when a connection ends (the default, 1000 ms).
# Both must give the same numbers.
@pytest.fixture(scope="module", params=[0, None], ids=["flush-per-callback", "flush-default"])
def lab(request: pytest.FixtureRequest) -> Iterator[Any]:
    with _lab(request.param) as lab:
        conn = pymysql.connect(**lab.mysql_kwargs(direct=True), autocommit=True)
        with conn.cursor() as cur:
            for table in ("cli", "pm", "prep", "loaded"):
                cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT)")
            cur.execute("INSERT INTO prep VALUES (1, 10), (2, 20), (3, 30)")
            cur.execute("CREATE PROCEDURE two_sets() BEGIN "
                        "SELECT 1 AS one; SELECT id, v FROM prep ORDER BY id; END")
        conn.close()
        yield lab


class Observed:
    """What one scenario did to the filter's stats."""

    def __init__(self, counters: dict[str, int], histograms: dict[str, int]):
        self.counters = counters        # counter/gauge deltas without PREFIX, bytes left out
        self.histograms = histograms    # sample-count deltas without PREFIX


def observe(lab: Any, action: Callable[[], None], expected: dict[str, int],
            sessions_active: int = 0) -> Observed:
    """Run `action`, wait until its connections are gone, check bytes against
    tcp_proxy and histogram sample counts against `expected`; return the deltas."""
    before = lab.mark()
    action()
    lab.stats.wait_for(PREFIX + "sessions_active", sessions_active)
    # Every byte the filter saw is one tcp_proxy forwarded, and the other way round.
    delta = lab.delta()
    assert delta.get(PREFIX + "bytes.direction=client", 0) == delta.get(TCP_RX, 0) > 0
    low, high = server_bytes_window(delta, "mysql")
    assert 0 < low <= delta.get(PREFIX + "bytes.direction=server", 0) <= high, (low, high, delta)
    counters = {k[len(PREFIX):]: v for k, v in delta.items()
                if k.startswith(PREFIX) and ".direction=" not in k}
    # Histograms: one sample per answered command and per statement.
    want_hist = _expected_histograms(expected)
    for name, n in want_hist.items():
        old = before.histograms.get(PREFIX + name)
        lab.stats.wait_for(PREFIX + name, (old.count if old else 0) + n)
    time.sleep(2 * FLUSH_S)  # let a late flush show any sample nobody expected
    after = lab.stats.snapshot()
    hist = {}
    for name, h in after.histograms.items():
        if not name.startswith(PREFIX):
            continue
        old = before.histograms.get(name)
        n = h.count - (old.count if old else 0)
        if n:
            hist[name[len(PREFIX):]] = n
    return Observed(counters, hist)


def _expected_histograms(expected: dict[str, int]) -> dict[str, int]:
    out = {}
    for name, n in expected.items():
        if name.startswith("commands.command=") and name.split("=")[1] not in UNTIMED:
            out["command_duration_us." + name.split(".", 1)[1]] = n
        elif name.startswith("statements.verb="):
            out["statement_duration_us." + name.split(".", 1)[1]] = n
    return out


def check(lab: Any, action: Callable[[], None], expected: dict[str, int],
          sessions_active: int = 0) -> None:
    got = observe(lab, action, expected, sessions_active)
    assert got.counters == expected
    assert got.histograms == _expected_histograms(expected)


def login(n: int = 1) -> dict[str, int]:
    return {"sessions": n, "login_attempts": n, "login_successes": n}


# ---------------------------------------------------------------- mariadb CLI

CLI_SQL = """
INSERT INTO cli VALUES (1, 1), (2, 2), (3, 3);
SELECT * FROM cli;
BEGIN;
UPDATE cli SET v = 10 WHERE id = 1;
COMMIT;
START TRANSACTION;
DELETE FROM cli WHERE id >= 2;
ROLLBACK;
SELECT * FROM no_such_table;
SELECT COUNT(*) FROM cli;
CREATE INDEX cli_v ON cli (v);
"""


def test_mariadb_cli_statements_errors_transactions(lab: Any) -> None:
    def action() -> None:
        # --force: go on after the error; stdin: batch mode, one COM_QUERY per statement
        proc = subprocess.run(["mariadb", *lab.mysql_cli_args(), "--force"], input=CLI_SQL,
                              capture_output=True, text=True, timeout=30)
        assert "ERROR 1146" in proc.stderr

    check(lab, action, {
        **login(),
        "commands.command=query": 11, "commands.command=quit": 1, "queries_parsed": 11,
        "statements.verb=insert": 1, "statements.verb=update": 1, "statements.verb=delete": 1,
        # SELECT * FROM cli, the failing SELECT, SELECT COUNT(*)
        "statements.verb=select": 3,
        "statements.verb=begin": 2, "statements.verb=commit": 1, "statements.verb=rollback": 1,
        "statements.verb=other": 1,  # CREATE INDEX
        "transactions_committed": 1, "transactions_rolled_back": 1,
        "errors.code=1146": 1,
        "result_sets": 2, "rows_returned": 3 + 1,
        "rows_affected": 3 + 1 + 2,  # INSERT 3, UPDATE 1, DELETE 2 (rolled back, still affected)
    })


# ---------------------------------------------------------------- pymysql (text protocol)

def test_pymysql_executemany_and_multi_statements(lab: Any) -> None:
    def action() -> None:
        conn = pymysql.connect(**lab.mysql_kwargs(),
                               client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
        with conn.cursor() as cur:
            # pymysql rewrites INSERT ... VALUES executemany into one multi-row INSERT
            cur.executemany("INSERT INTO pm (id, v) VALUES (%s, %s)", [(i, i) for i in range(5)])
            cur.execute("SELECT 1; SELECT id FROM pm WHERE id >= 2; UPDATE pm SET v = v + 1")
            sets = 1
            while cur.nextset():
                sets += 1
            assert sets == 3
        conn.commit()
        conn.close()

    check(lab, action, {
        **login(),
        # SET NAMES, SET AUTOCOMMIT = 0, INSERT, the multi-statement, COMMIT
        "commands.command=query": 5, "commands.command=quit": 1, "queries_parsed": 5,
        "statements.verb=other": 2, "statements.verb=insert": 1,
        # each statement of the multi-statement, as MariaDB's Com_select +2, Com_update +1
        "statements.verb=select": 2, "statements.verb=update": 1,
        "statements.verb=commit": 1, "transactions_committed": 1,
        "result_sets": 2, "rows_returned": 1 + 3,
        "rows_affected": 5 + 5,  # the INSERT, the UPDATE inside the multi-statement
    })


# ---------------------------------------------------------------- Connector/Python, binary protocol

def test_connector_prepared_statements(lab: Any) -> None:
    connector = pytest.importorskip("mysql.connector", reason="mysql-connector-python is absent")

    def action() -> None:
        conn = connector.connect(**lab.mysql_kwargs(), use_pure=True, ssl_disabled=True)
        cur = conn.cursor(prepared=True)  # COM_PING
        for i in range(3):  # one prepare, three executions
            cur.execute("UPDATE prep SET v = ? WHERE id = ?", (i, i + 1))
        # a new statement: the old one is closed, this one prepared and run twice
        cur.execute("SELECT v FROM prep WHERE id >= ?", (1,))
        assert len(cur.fetchall()) == 3
        cur.execute("SELECT v FROM prep WHERE id >= ?", (3,))
        assert len(cur.fetchall()) == 1
        conn.commit()
        cur.close()  # closes the SELECT statement
        conn.close()

    check(lab, action, {
        **login(),
        # SET NAMES, SET @@session.autocommit, COMMIT
        "commands.command=query": 3, "queries_parsed": 3, "commands.command=ping": 1,
        "commands.command=stmt_prepare": 2, "commands.command=stmt_reset": 5,
        "commands.command=stmt_execute": 5, "commands.command=stmt_close": 2,
        "commands.command=quit": 1,
        "prepared_statements.type=prepared": 2, "prepared_statements.type=executed": 5,
        "prepared_statements.type=closed": 2,
        "statements.verb=other": 2, "statements.verb=update": 3, "statements.verb=select": 2,
        "statements.verb=commit": 1, "transactions_committed": 1,
        "rows_affected": 3, "result_sets": 2, "rows_returned": 3 + 1,
    })


# ---------------------------------------------------------------- stored procedure, LOCAL INFILE

def test_stored_procedure_with_two_result_sets(lab: Any) -> None:
    def action() -> None:
        conn = pymysql.connect(**lab.mysql_kwargs(), autocommit=True)
        with conn.cursor() as cur:
            cur.execute("CALL two_sets()")
            assert cur.fetchall() == ((1,),)
            assert cur.nextset() and len(cur.fetchall()) == 3
            cur.nextset()  # the CALL's own OK
        conn.close()

    check(lab, action, {
        **login(),
        "commands.command=query": 2, "commands.command=quit": 1, "queries_parsed": 2,
        "statements.verb=other": 2,  # SET NAMES, CALL
        "result_sets": 2, "rows_returned": 1 + 3,
    })


def test_load_data_local_infile(lab: Any, tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("".join(f"{i},{i * 2}\n" for i in range(1, 5)))

    def action() -> None:
        conn = pymysql.connect(**lab.mysql_kwargs(), autocommit=True, local_infile=True)
        with conn.cursor() as cur:
            cur.execute(f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE loaded "
                        "FIELDS TERMINATED BY ','")
        conn.close()

    check(lab, action, {
        **login(),
        "commands.command=query": 2, "commands.command=quit": 1, "queries_parsed": 2,
        "statements.verb=other": 2,  # SET NAMES, LOAD DATA
        "local_infile_requests": 1, "rows_affected": 4,
    })


# ---------------------------------------------------------------- logins

def test_login_failures_by_reason(lab: Any) -> None:
    def action() -> None:
        for override in ({"password": "not-the-password"}, {"database": "no_such_db"}):
            with pytest.raises(pymysql.err.OperationalError):
                pymysql.connect(**{**lab.mysql_kwargs(), **override})

    check(lab, action, {
        "sessions": 2, "login_attempts": 2, "login_failures": 2,
        "login_failures_by_reason.reason=access_denied": 1, "errors.code=1045": 1,
        "login_failures_by_reason.reason=unknown_database": 1, "errors.code=1049": 1,
    })


def test_ping_init_db(lab: Any) -> None:
    def action() -> None:
        conn = pymysql.connect(**lab.mysql_kwargs(), autocommit=True)
        conn.ping(reconnect=False)
        conn.select_db("mysql")  # COM_INIT_DB
        conn.close()

    check(lab, action, {
        **login(),
        "commands.command=query": 1, "queries_parsed": 1, "statements.verb=other": 1,
        "commands.command=ping": 1, "commands.command=init_db": 1, "commands.command=quit": 1,
    })


def test_change_user(lab: Any) -> None:
    connector = pytest.importorskip("mysql.connector", reason="mysql-connector-python is absent")

    def action() -> None:
        kw = lab.mysql_kwargs()
        conn = connector.connect(**kw, use_pure=True, ssl_disabled=True)
        conn.cmd_change_user(username=kw["user"], password=kw["password"], database="mysql")
        conn.close()

    check(lab, action, {
        "sessions": 1, "login_attempts": 1,
        "login_successes": 2,  # the login, then COM_CHANGE_USER's OK
        # Connector/Python answers COM_CHANGE_USER for its default plugin
        # (caching_sha2_password), which MariaDB switches to mysql_native_password
        "auth_switch_request": 1,
        "commands.command=change_user": 1, "commands.command=quit": 1,
        # SET NAMES and SET autocommit after the login and again after the change
        "commands.command=query": 4, "queries_parsed": 4, "statements.verb=other": 4,
    })


# ---------------------------------------------------------------- the sessions_active gauge

def test_sessions_active_gauge(lab: Any) -> None:
    lab.stats.wait_for(PREFIX + "sessions_active", 0)
    first = pymysql.connect(**lab.mysql_kwargs(), autocommit=True)
    second = pymysql.connect(**lab.mysql_kwargs(), autocommit=True)
    lab.stats.wait_for(PREFIX + "sessions_active", 2)
    first.close()
    lab.stats.wait_for(PREFIX + "sessions_active", 1)
    second.close()
    lab.stats.wait_for(PREFIX + "sessions_active", 0)


# ---------------------------------------------------------------- Prometheus labels

def test_prometheus_labels_from_tag_keys(lab: Any) -> None:
    samples = lab.stats.prometheus()

    def value(name: str, **labels: str) -> float:
        want = {"stat_prefix": "app", **labels}
        found = [s.value for s in samples if s.name == name and s.labels == want]
        assert len(found) == 1, (name, want, [s for s in samples if s.name == name][:5])
        return found[0]

    snap = lab.stats.snapshot()
    for name, labels in (
        ("statements", {"verb": "select"}),
        ("commands", {"command": "query"}),
        ("errors", {"code": "1146"}),
        ("login_failures_by_reason", {"reason": "access_denied"}),
        ("prepared_statements", {"type": "executed"}),
        ("bytes", {"direction": "client"}),
        ("sessions", {}),
    ):
        stat = PREFIX + name + "".join(f".{k}={v}" for k, v in labels.items())
        assert value(f"mysql_{name}", **labels) == snap.counter(stat)
    assert not [s for s in samples if "verb=" in s.name or ".app." in s.name]


def test_database_and_user_tags_become_labels(lab: Any) -> None:
    """The `tags.database` / `tags.user` options: labels that follow COM_INIT_DB."""
    from wirelab.envoy import EnvoyProcess, ListenerSpec
    from wirelab.harness.filters import resolve_filter

    config = {"stat_prefix": "tagged", "tags": {"database": True, "user": True}}
    spec = resolve_filter(ROOT / "filters" / "mysql", config).spec
    my = lab.mysql
    with EnvoyProcess([ListenerSpec("mysql", (my.host, my.port), [spec])]) as envoy:
        conn = pymysql.connect(**my.connect_kwargs(port=envoy.port("mysql")), autocommit=True)
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            conn.select_db("mysql")
            cur.execute("SELECT 2")
            cur.execute("SELECT 3")
        conn.close()
        envoy.stats.wait_for("mysql.tagged.sessions_active", 0)
        base = "mysql.tagged.statements.verb=select"
        envoy.stats.wait_for(f"{base}.database=mysql.user={my.user}", 2)
        snap = envoy.stats.snapshot()
        assert snap.counter(f"{base}.database={my.database}.user={my.user}") == 1
        found = {(s.labels.get("database"), s.value) for s in envoy.stats.prometheus()
                 if s.name == "mysql_statements" and s.labels.get("verb") == "select"
                 and s.labels.get("user") == my.user and s.labels["stat_prefix"] == "tagged"}
        assert found == {(my.database, 1.0), ("mysql", 2.0)}


# ---------------------------------------------------------------- deferred counters

def test_deferred_counters_arrive_at_connection_end_or_tick(lab: Any) -> None:
    """metrics_flush_ms: counters wait in the filter, the gauge does not.

    Listener `lazy` (60 s, longer than this Envoy lives): only the connection's
    end can flush them. Listener `tick` (200 ms): they arrive while the
    connection is still open and idle (the tick)."""
    from wirelab.envoy import EnvoyProcess, ListenerSpec
    from wirelab.harness.filters import resolve_filter

    def spec(prefix: str, flush_ms: int) -> Any:
        return resolve_filter(ROOT / "filters" / "mysql",
                              {"stat_prefix": prefix, "metrics_flush_ms": flush_ms}).spec

    my = lab.mysql
    upstream = (my.host, my.port)
    with EnvoyProcess([ListenerSpec("lazy", upstream, [spec("lazy", 60000)]),
                       ListenerSpec("tick", upstream, [spec("tick", 200)])]) as envoy:
        conns = {}
        for name in ("lazy", "tick"):
            conns[name] = pymysql.connect(**my.connect_kwargs(port=envoy.port(name)),
                                          autocommit=True)
            with conns[name].cursor() as cur:
                for _ in range(3):
                    cur.execute("SELECT 1")
            envoy.stats.wait_for(f"mysql.{name}.sessions_active", 1)
        # idle connections: the tick flushes one listener's counters
        envoy.stats.wait_for("mysql.tick.statements.verb=select", 3)
        snap = envoy.stats.snapshot()
        assert snap.counter("mysql.tick.statements.verb=other") == 1  # SET NAMES
        assert snap.counter("mysql.tick.sessions") == 1
        assert snap.counter("mysql.lazy.statements.verb=select") == 0
        assert snap.counter("mysql.lazy.sessions") == 0
        conns["lazy"].close()
        envoy.stats.wait_for("mysql.lazy.sessions_active", 0)
        snap = envoy.stats.snapshot()
        assert snap.counter("mysql.lazy.statements.verb=select") == 3
        assert snap.counter("mysql.lazy.statements.verb=other") == 1
        assert snap.counter("mysql.lazy.sessions") == 1
        assert snap.counter("mysql.lazy.commands.command=quit") == 1
        conns["tick"].close()
        envoy.stats.wait_for("mysql.tick.commands.command=quit", 1)


# ---------------------------------------------------------------- TLS

def test_tls_session_is_counted_not_inspected() -> None:
    with _lab(tls=True) as lab:
        def action() -> None:
            conn = pymysql.connect(**lab.mysql_kwargs(), ssl={"ca": str(lab.mysql.ca_path)})
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchall() == ((1,),)
            conn.close()

        got = observe(lab, action, {})
        assert got.counters == {"sessions": 1, "login_attempts": 1, "upgraded_to_ssl": 1}
        assert got.histograms == {}

