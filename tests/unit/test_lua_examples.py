"""The Lua examples (examples/lua/*), built with `wirelab build` and replayed in the emulator."""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from wirelab.build import build_project
from wirelab.conversation import Conversation
from wirelab.paths import examples_dir
from wirelab.project import Project
from wirelab.replay import replay
from wirelab.testing import mysql as my
from wirelab.testing.postgres import startup
from wirelab.testing.postgres import typed as msg

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "conversations"


pytestmark = pytest.mark.usefixtures("runtime")  # every test needs the Lua runtime


def built(example: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    root = tmp_path / example
    shutil.copytree(examples_dir() / "lua" / example, root,
                    ignore=shutil.ignore_patterns("build"))
    project = Project.load(root)
    result = build_project(project)
    config = json.loads((project.build_dir / f"{project.name}.config.json").read_text())
    return result.wasm, config


# ---- PostgreSQL traffic, built by hand -------------------------------------------------


SERVER_HELLO = (
    msg(b"R", struct.pack(">I", 0))
    + msg(b"S", b"server_version\x0018.1\0")
    + msg(b"K", struct.pack(">II", 4242, 7))
    + msg(b"Z", b"I")
)


def error_response(code: str) -> bytes:
    return msg(b"E", b"SERROR\0VERROR\0C" + code.encode() + b"\0Msyntax error\0\0")


def pg_conversation() -> Conversation:
    conv = Conversation(protocol="postgres")
    conv.open(0, 0.0, "10.1.0.1:50000", "127.0.0.1:5432")
    conv.data(0, 0.001, "client", startup("alice", "shop"))
    conv.data(0, 0.002, "server", SERVER_HELLO)
    conv.open(1, 0.003, "10.1.0.2:50001", "127.0.0.1:5432")
    conv.data(1, 0.004, "client", startup("bob", "shop"))
    conv.data(1, 0.005, "server", SERVER_HELLO)
    # simple query: 2 ms
    conv.data(0, 0.010, "client", msg(b"Q", b"select 1\0"))
    conv.data(0, 0.012, "server", msg(b"T", b"\0\0") + msg(b"D", b"\0\0") +
              msg(b"C", b"SELECT 1\0") + msg(b"Z", b"I"))
    # two statements in one Query: 3 ms, then 2 ms from the first one's end
    # (timed from when the server could start it, as the postgres filter times it)
    conv.data(0, 0.020, "client", msg(b"Q", b"insert into t values (1); update t set a = 2\0"))
    conv.data(0, 0.023, "server", msg(b"C", b"INSERT 0 1\0"))
    conv.data(0, 0.025, "server", msg(b"C", b"UPDATE 2\0") + msg(b"Z", b"I"))
    # extended protocol: 4 ms
    conv.data(0, 0.030, "client", msg(b"P", b"\0select $1\0\0\0") + msg(b"B", b"\0\0\0\0\0\0\0\0")
              + msg(b"E", b"\0\0\0\0\0") + msg(b"S"))
    conv.data(0, 0.034, "server", msg(b"1") + msg(b"2") + msg(b"D", b"\0\0") +
              msg(b"C", b"SELECT 1\0") + msg(b"Z", b"I"))
    # a failing statement on the other connection
    conv.data(1, 0.040, "client", msg(b"Q", b"selec 1\0"))
    conv.data(1, 0.041, "server", error_response("42601") + msg(b"Z", b"I"))
    conv.data(0, 0.050, "client", msg(b"X"))
    conv.close(0, 0.051, "client")
    conv.close(1, 0.060, "server")
    return conv


@pytest.mark.parametrize("chunking", ["recorded", "1"])
def test_pg_statements_by_type_with_latency(tmp_path: Path, chunking: str) -> None:
    wasm, config = built("pg-statements", tmp_path)
    result = replay(wasm, pg_conversation(), chunking=chunking, plugin_config=config)
    m = result.metrics
    assert m.as_dict()["counters"] == {
        "lua.pgstmt.budget_exceeded": 0,
        "lua.pgstmt.decoder_errors": 0,
        "lua.pgstmt.errors": 1,
        "lua.pgstmt.errors_by_code.sqlstate=42601": 1,
        "lua.pgstmt.memory_exceeded": 0,
        "lua.pgstmt.script_errors": 0,
        "lua.pgstmt.statements.type=insert": 1,
        "lua.pgstmt.statements.type=select": 2,
        "lua.pgstmt.statements.type=update": 1,
    }
    assert m.histogram("lua.pgstmt.statement_latency_us.type=select").samples == [2000, 4000]
    assert m.histogram("lua.pgstmt.statement_latency_us.type=insert").samples == [3000]
    assert m.histogram("lua.pgstmt.statement_latency_us.type=update").samples == [2000]
    assert result.traps == []
    assert [lvl for lvl, _ in result.logs if lvl == "error"] == []


def test_pg_connections_per_user(tmp_path: Path) -> None:
    wasm, config = built("pg-connections-per-user", tmp_path)
    conv = pg_conversation()
    conv.open(2, 0.070, "10.1.0.3:50002", "127.0.0.1:5432")
    conv.data(2, 0.071, "client", startup("alice", "shop"))
    conv.data(2, 0.072, "server", SERVER_HELLO)
    result = replay(wasm, conv, plugin_config=config)
    m = result.metrics
    # connection 2 is still open: its count waits for the flush tick
    assert m.counter("lua.pgusers.connections.database=shop.user=alice") == 1
    result.host.advance(1000)
    assert m.counter("lua.pgusers.connections.database=shop.user=alice") == 2
    assert m.counter("lua.pgusers.connections.database=shop.user=bob") == 1
    # connection 2 was never closed; 0 and 1 were
    assert m.gauge("lua.pgusers.active_connections.database=shop.user=alice") == 1
    assert m.gauge("lua.pgusers.active_connections.database=shop.user=bob") == 0
    assert m.counter("lua.pgusers.script_errors") == 0
    assert result.traps == []


def test_pg_decoder_error_is_counted_and_traffic_flows(tmp_path: Path) -> None:
    wasm, config = built("pg-statements", tmp_path)
    conv = Conversation(protocol="postgres")
    conv.open(0, 0.0)
    conv.data(0, 0.001, "client", startup("alice", "shop"))
    conv.data(0, 0.002, "server", SERVER_HELLO)
    conv.data(0, 0.003, "client", b"\x01\xff\xff\xff\xffgarbage")
    conv.data(0, 0.004, "client", msg(b"Q", b"select 1\0"))
    conv.close(0, 0.005, "client")
    result = replay(wasm, conv, plugin_config=config)
    assert result.metrics.counter("lua.pgstmt.decoder_errors") == 1
    assert result.metrics.counter("lua.pgstmt.script_errors") == 0
    assert result.as_dict()["modified"] is False
    assert result.traps == []


# ---- MySQL: a conversation recorded from a real MariaDB ----------------------------------


def test_mysql_slow_query_log(tmp_path: Path) -> None:
    wasm, config = built("mysql-slow-queries", tmp_path)
    conv = Conversation.load(FIXTURES / "mysql" / "cli.jsonl")
    # Make the first SELECT slow: its answer arrives 250 ms later than recorded.
    events, shift = [], 0.0
    for e in conv.events:
        events.append(replace(e, t=e.t + shift))
        if not shift and e.ev == "data" and e.dir == "client" and e.data[5:11] == b"SELECT":
            shift = 0.25
    conv.events[:] = events
    config["settings"]["slow_ms"] = 200
    result = replay(wasm, conv, plugin_config=config)
    warn = [m for lvl, m in result.logs if lvl == "warn"]
    assert warn == [
        "slow query: 250 ms user=wirelab rows=5 sql=SELECT id, name FROM t ORDER BY id"
    ]
    m = result.metrics
    assert m.counter("lua.myslow.slow_queries.verb=select") == 1
    # Latency is exact: the emulator's clock follows the recorded timestamps.
    assert m.histogram("lua.myslow.query_latency_us.verb=select").samples == [250643, 87]
    assert m.histogram("lua.myslow.query_latency_us.verb=insert").samples == [1794]
    assert sorted(n.rsplit("=", 1)[1] for n in m.names() if "query_latency_us" in n) == [
        "begin", "delete", "insert", "other", "replace", "rollback", "select", "update"]
    assert m.counter("lua.myslow.query_errors") == 1  # the recording has one failing statement
    assert m.counter("lua.myslow.script_errors") == 0
    assert m.counter("lua.myslow.decoder_errors") == 0
    assert result.traps == []


# ---- MySQL: statements from the tracker, built by hand ------------------------------------


def mysql_conversation() -> Conversation:
    """One session: a multi-statement transaction, an execution error and a parse error
    in multi-statement queries, a prepared SELECT whose cursor is fetched twice, and
    two queries written before either answer (pipelined)."""
    more = my.SERVER_STATUS_AUTOCOMMIT | my.SERVER_MORE_RESULTS_EXISTS
    in_trans = more | my.SERVER_STATUS_IN_TRANS
    conv = Conversation(protocol="mysql")
    conv.open(0, 0.0, "10.0.0.1:40000", "10.0.0.2:3306")
    conv.data(0, 0.001, "server", my.greeting())
    conv.data(0, 0.002, "client", my.handshake_response("app", "shop"))
    conv.data(0, 0.003, "server", my.ok(seq=2))
    # BEGIN 1 ms, INSERT 2 ms, COMMIT 3 ms: each statement from the previous one's end
    conv.data(0, 0.010, "client", my.com_query("BEGIN; INSERT INTO t VALUES (1); COMMIT"))
    conv.data(0, 0.011, "server", my.ok(status=in_trans))
    conv.data(0, 0.013, "server", my.ok(affected_rows=1, status=in_trans, seq=2))
    conv.data(0, 0.016, "server", my.ok(seq=3))
    # the SELECT fails while running (Com_select +1); the UPDATE never runs
    conv.data(0, 0.020, "client", my.com_query(
        "INSERT INTO t VALUES (2); SELECT * FROM nosuch; UPDATE t SET v = 2"))
    conv.data(0, 0.024, "server", my.answer(
        my.ok(affected_rows=1, status=more),
        my.err(1146, "42S02", "Table 'shop.nosuch' doesn't exist")))
    # the parser rejects the second statement: not in Com_*
    conv.data(0, 0.030, "client", my.com_query("SELECT 1; SELEC 2"))
    conv.data(0, 0.031, "server", my.answer(
        my.resultset(["1"], [["1"]], status=more),
        my.err(1064, "42000", "You have an error in your SQL syntax")))
    # prepared SELECT with a cursor: one statement, EXECUTE to the last row (21 ms)
    conv.data(0, 0.040, "client", my.com_stmt_prepare("SELECT v FROM t"))
    conv.data(0, 0.041, "server", my.prepare_ok(1, ["v"]))
    conv.data(0, 0.050, "client", my.com_stmt_execute(1, cursor=my.CURSOR_TYPE_READ_ONLY))
    conv.data(0, 0.051, "server", my.cursor_opened(["v"]))
    conv.data(0, 0.060, "client", my.com_stmt_fetch(1, 2))
    conv.data(0, 0.061, "server", my.fetched([[1], [2]], last=False))
    conv.data(0, 0.070, "client", my.com_stmt_fetch(1, 2))
    conv.data(0, 0.071, "server", my.fetched([[3]], last=True))
    conv.data(0, 0.080, "client", my.com_stmt_close(1))
    # two DELETEs written together: the second is timed from the first one's answer
    conv.data(0, 0.090, "client", my.com_query("DELETE FROM t WHERE v = 1")
              + my.com_query("DELETE FROM t WHERE v = 2"))
    conv.data(0, 0.095, "server", my.ok(affected_rows=1))
    conv.data(0, 0.097, "server", my.ok(affected_rows=1))
    conv.data(0, 0.100, "client", my.com_quit())
    conv.close(0, 0.101, "client")
    return conv


@pytest.mark.parametrize("chunking", ["recorded", "1", "random"])
def test_mysql_statements_by_verb_with_latency_and_errors(tmp_path: Path, chunking: str) -> None:
    wasm, config = built("mysql-statements", tmp_path)
    result = replay(wasm, mysql_conversation(), chunking=chunking, seed=3, plugin_config=config)
    m = result.metrics
    assert m.as_dict()["counters"] == {
        "lua.mystmt.budget_exceeded": 0,
        "lua.mystmt.decoder_errors": 0,
        "lua.mystmt.errors": 2,
        "lua.mystmt.errors_by_code.code=1064": 1,
        "lua.mystmt.errors_by_code.code=1146": 1,
        "lua.mystmt.memory_exceeded": 0,
        "lua.mystmt.script_errors": 0,
        # Com_*: the failed SELECT counts, the rejected SELEC and the skipped UPDATE do not
        "lua.mystmt.statements.verb=begin": 1,
        "lua.mystmt.statements.verb=commit": 1,
        "lua.mystmt.statements.verb=delete": 2,
        "lua.mystmt.statements.verb=insert": 2,
        "lua.mystmt.statements.verb=select": 3,
        "lua.mystmt.transactions.outcome=commit": 1,
    }
    if chunking == "recorded":  # reads cut into pieces are read at the same times
        assert m.histogram("lua.mystmt.statement_latency_us.verb=begin").samples == [1000]
        assert m.histogram("lua.mystmt.statement_latency_us.verb=insert").samples == [2000, 4000]
        assert m.histogram("lua.mystmt.statement_latency_us.verb=commit").samples == [3000]
        assert m.histogram("lua.mystmt.statement_latency_us.verb=select").samples == [
            0, 1000, 21000]
        assert m.histogram("lua.mystmt.statement_latency_us.verb=delete").samples == [5000, 2000]
    assert result.traps == []
    assert [lvl for lvl, _ in result.logs if lvl == "error"] == []
