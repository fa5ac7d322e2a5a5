"""envoy_on_statement / envoy_on_transaction in the Lua runtime: their order
beside envoy_on_pg_message / envoy_on_mysql_result and envoy_on_close, errors
confined to one callback, and the tracker running when only one of them is
defined. What the events count is specified in test_postgres_tracker.py and
test_mysql_tracker.py."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from wirelab.build.lua import build_runtime
from wirelab.emulator import Emulator
from wirelab.testing import mysql as my
from wirelab.testing import postgres as pg


@pytest.fixture(scope="module")
def runtime() -> Path:
    return build_runtime()


def load(runtime: Path, script: str, protocol: str = "postgres") -> Emulator:
    cfg = {"script": textwrap.dedent(script), "stat_prefix": "t", "protocol": protocol,
           "metrics_flush_ms": 0}
    return Emulator.load(runtime, plugin_config=cfg)


def logged_in(host: Emulator) -> Any:
    conn = host.connect()
    conn.downstream(pg.startup("u", "d"))
    conn.upstream(pg.login_reply())
    return conn


def infos(host: Emulator) -> list[str]:
    return [m for m in host.logs.at("info") if not m.startswith("lua: ")]


def test_statements_follow_their_messages_and_precede_close(runtime: Path) -> None:
    host = load(runtime, """
        envoy_pg_message_types = { server = "CZ" }
        function envoy_on_pg_message(conn, msg) print("msg " .. msg.name) end
        function envoy_on_statement(conn, s) print("stmt " .. s.kind) end
        function envoy_on_transaction(conn, t) print("txn " .. t.outcome) end
        function envoy_on_close(conn) print("close") end
    """)
    conn = logged_in(host)
    conn.downstream(pg.query("BEGIN"))
    conn.upstream(pg.command_complete("BEGIN") + pg.ready("T"))
    conn.downstream(pg.query("INSERT INTO t VALUES (1)"))
    conn.upstream(pg.command_complete("INSERT 0 1") + pg.ready("T"))
    conn.close()  # the server rolls the open transaction back
    host.assert_no_traps()
    assert infos(host) == [
        "msg ReadyForQuery",  # the login's
        "msg CommandComplete", "stmt begin", "msg ReadyForQuery",
        "msg CommandComplete", "stmt insert", "msg ReadyForQuery",
        "txn rollback", "close",
    ]


def test_an_error_aborts_one_statement_callback_only(runtime: Path) -> None:
    host = load(runtime, """
        local n = 0
        function envoy_on_statement(conn, s)
          n = n + 1
          if n == 1 then error("boom") end
          print("stmt " .. s.kind .. " " .. s.rows_returned)
        end
    """)
    conn = logged_in(host)
    conn.downstream(pg.query("SELECT 1; SELECT 2"))
    conn.upstream(pg.row_description(["a"]) + pg.data_row([1]) + pg.command_complete("SELECT 1")
                  + pg.row_description(["a"]) + pg.data_row([2]) + pg.command_complete("SELECT 1")
                  + pg.ready("I"))
    conn.close()
    host.assert_no_traps()
    assert infos(host) == ["stmt select 1"]
    assert host.metrics.counter("lua.t.script_errors") == 1


def test_transactions_alone_run_the_tracker(runtime: Path) -> None:
    host = load(runtime, """
        function envoy_on_transaction(conn, t)
          print(string.format("txn %s implicit=%s statements=%d", t.outcome, tostring(t.implicit),
                              t.statements))
        end
    """)
    conn = logged_in(host)
    conn.downstream(pg.query("SELECT 1/0"))
    conn.upstream(pg.error("ERROR", "22012") + pg.ready("I"))
    conn.downstream(pg.parse("SELECT 1", "s") + pg.sync())
    conn.upstream(pg.parse_complete() + pg.ready("I"))
    conn.close()
    host.assert_no_traps()
    assert infos(host) == ["txn rollback implicit=true statements=0",
                           "txn commit implicit=true statements=0"]


def test_statement_tables_are_plain_and_kept(runtime: Path) -> None:
    host = load(runtime, """
        kept = {}
        function envoy_on_statement(conn, s) kept[#kept + 1] = s end
        function envoy_on_close(conn)
          for _, s in ipairs(kept) do
            print(s.kind, s.failed, s.sqlstate, s.prepared, s.fetches, s.sql)
          end
        end
    """)
    conn = logged_in(host)
    conn.downstream(pg.parse("UPDATE t SET v = 1") + pg.bind() + pg.execute() + pg.sync())
    conn.upstream(pg.parse_complete() + pg.bind_complete() + pg.error("ERROR", "40001")
                  + pg.ready("I"))
    conn.close()
    host.assert_no_traps()
    assert infos(host) == ["update true 40001 true 1 UPDATE t SET v = 1"]


# ---- MySQL ------------------------------------------------------------------------------


def my_logged_in(host: Emulator) -> Any:
    conn = host.connect()
    conn.upstream(my.greeting())
    conn.downstream(my.handshake_response("u", "d"))
    conn.upstream(my.ok(seq=2))
    return conn


def test_mysql_statements_follow_their_result_and_precede_close(runtime: Path) -> None:
    host = load(runtime, """
        function envoy_on_mysql_result(conn, r) print("result " .. r.command) end
        function envoy_on_statement(conn, s)
          print(string.format("stmt %s failed=%s counted=%s code=%s", s.kind, tostring(s.failed),
                              tostring(s.counted), tostring(s.err_code)))
        end
        function envoy_on_transaction(conn, t) print("txn " .. t.outcome) end
        function envoy_on_close(conn) print("close") end
    """, "mysql")
    more = my.SERVER_STATUS_AUTOCOMMIT | my.SERVER_MORE_RESULTS_EXISTS
    conn = my_logged_in(host)
    conn.downstream(my.com_query("BEGIN; INSERT INTO t VALUES (1); COMMIT"))
    conn.upstream(my.answer(my.ok(status=more), my.ok(affected_rows=1, status=more), my.ok()))
    # a duplicate key fails while running (Com_insert counts it); a typo is rejected by
    # the parser (nothing counts it)
    conn.downstream(my.com_query("INSERT INTO t VALUES (1)"))
    conn.upstream(my.err(1062, "23000", "Duplicate entry"))
    conn.downstream(my.com_query("SELEC 1"))
    conn.upstream(my.err(1064, "42000", "syntax"))
    # a cursor still open when the connection ends is reported then, before envoy_on_close
    conn.downstream(my.com_stmt_prepare("SELECT v FROM t"))
    conn.upstream(my.prepare_ok(1, ["v"]))
    conn.downstream(my.com_stmt_execute(1, cursor=my.CURSOR_TYPE_READ_ONLY))
    conn.upstream(my.cursor_opened(["v"]))
    conn.close()
    host.assert_no_traps()
    assert infos(host) == [
        # each statement at its own result, the command's result when all are in
        "stmt begin failed=false counted=true code=nil",
        "stmt insert failed=false counted=true code=nil",
        "stmt commit failed=false counted=true code=nil", "txn commit", "result query",
        # a failed statement ends with its command's result (the ERR)
        "result query", "stmt insert failed=true counted=true code=1062",
        "result query", "stmt unknown failed=true counted=false code=1064",
        "result stmt_prepare", "result stmt_execute",
        "stmt select failed=false counted=true code=nil", "close",
    ]


def test_mysql_transactions_alone_run_the_tracker(runtime: Path) -> None:
    host = load(runtime, """
        function envoy_on_transaction(conn, t)
          print(string.format("txn %s statements=%d", t.outcome, t.statements))
        end
    """, "mysql")
    conn = my_logged_in(host)
    for sql in ("START TRANSACTION", "UPDATE t SET v = 2", "ROLLBACK"):
        conn.downstream(my.com_query(sql))
        conn.upstream(my.ok())
    conn.close()
    host.assert_no_traps()
    assert infos(host) == ["txn rollback statements=3"]
