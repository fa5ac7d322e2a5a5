"""The mysql filter's statement tracker in the emulator, one scenario per rule.

Each scenario is a conversation built from wirelab.testing.mysql encoders: the
client's action, the server's answer as MariaDB 10.11 sends it, and the exact
stats the filter must report. The verb counters follow MariaDB's Com_* status
(measured on 10.11, see filters/mysql/README.md): one count per statement of a
multi-statement query, failed statements counted unless the parser rejected
them (1064), nothing counted for statements the server skipped after an error,
COM_STMT_EXECUTE counted under its prepared statement's verb. Every scenario
must also give the same stats when each read is cut into single bytes or into
random pieces.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wirelab.build import build_project
from wirelab.conversation import Conversation
from wirelab.paths import filters_dir
from wirelab.project import Project
from wirelab.replay import replay
from wirelab.testing import mysql as my
from wirelab.testing import nonzero_stats

CONFIG = {"stat_prefix": "t"}
MORE = my.SERVER_STATUS_AUTOCOMMIT | my.SERVER_MORE_RESULTS_EXISTS
# the decoder's cap on pending runs (filters/protocols/mysql.h WL_MYSQL_PENDING_MAX_RUNS)
MAX_RUNS = 65536

Exchange = tuple[float, str, bytes]


@pytest.fixture(scope="module")
def wasm() -> Path:
    return build_project(Project.load(filters_dir() / "mysql")).wasm


def session(exchanges: list[Exchange], caps: int = my.DEFAULT_CAPABILITIES) -> Conversation:
    """Login (with `caps`), then the exchanges at their times (seconds), then the client closes."""
    conv = Conversation(protocol="mysql")
    conv.open(0, 0.0, "10.0.0.1:40000", "10.0.0.2:3306")
    conv.data(0, 0.001, "server", my.greeting(capabilities=caps))
    conv.data(0, 0.002, "client", my.handshake_response("app", "shop", capabilities=caps))
    conv.data(0, 0.003, "server", my.ok(seq=2))
    t = 0.003
    for at, direction, data in exchanges:
        t = at
        conv.data(0, at, direction, data)  # type: ignore[arg-type]
    conv.close(0, t + 0.001, "client")
    return conv


def stats(wasm: Path, conv: Conversation, chunking: str = "recorded") -> dict[str, int]:
    result = replay(wasm, conv, chunking=chunking, seed=5, plugin_config=CONFIG)
    assert result.traps == []
    assert result.host.modifications == []
    got = nonzero_stats(result.host)
    for key in ("sessions", "login_attempts", "login_successes", "bytes.direction=client",
                "bytes.direction=server"):
        got.pop(key, None)
    return got


def cmd_lat(**counts: int) -> dict[str, int]:
    """Samples of command_duration_us, by command: one per answered command."""
    return {f"command_duration_us.command={k}#count": v for k, v in counts.items()}


def verb_lat(**counts: int) -> dict[str, int]:
    """Samples of statement_duration_us, by verb: one per finished statement."""
    return {f"statement_duration_us.verb={k}#count": v for k, v in counts.items()}


def check(wasm: Path, conv: Conversation, expected: dict[str, int]) -> None:
    """Exact stats, the same whether reads come as recorded, byte by byte or at random."""
    assert stats(wasm, conv) == expected
    assert stats(wasm, conv, "1") == expected
    assert stats(wasm, conv, "random") == expected


# ------------------------------------------------------------------ pipelining


def test_sixty_command_batch_written_before_any_answer_then_more_statements(wasm: Path) -> None:
    # MariaDB Connector/J's batch: every INSERT written, then the answers read
    batch = b"".join(my.com_query(f"INSERT INTO t VALUES ({i})") for i in range(60))
    answers = [my.ok(affected_rows=1) for _ in range(60)]
    conv = session([
        (0.010, "client", batch),
        (0.020, "server", b"".join(answers[:30])),
        (0.030, "server", b"".join(answers[30:])),
        (0.040, "client", my.com_query("SELECT id FROM t")),
        (0.041, "server", my.resultset(["id"], [["1"], ["2"]])),
        (0.050, "client", my.com_query("COMMIT")),
        (0.051, "server", my.ok()),
    ])
    expected = {
        "commands.command=query": 62, "queries_parsed": 62,
        "statements.verb=insert": 60, "statements.verb=select": 1, "statements.verb=commit": 1,
        "rows_affected": 60, "rows_returned": 2, "result_sets": 1, "transactions_committed": 1,
        **cmd_lat(query=62), **verb_lat(insert=60, select=1, commit=1),
    }
    check(wasm, conv, expected)
    # each INSERT timed from when the server could start it (the batch's read, or the
    # answer before it) to the read that answered it: the first of each read of answers
    # waited for that read, the others were answered within it
    result = replay(wasm, conv, plugin_config=CONFIG)
    h = result.host.metrics.histogram("mysql.t.statement_duration_us.verb=insert")
    assert sorted(h.samples) == [0] * 58 + [10000] * 2


def test_hundred_thousand_identical_commands_outstanding_are_followed(wasm: Path) -> None:
    n = 100_000
    conv = session([
        (0.010, "client", my.com_ping() * n),
        (0.020, "server", my.ok() * n),
        (0.030, "client", my.com_query("SELECT 1")),
        (0.031, "server", my.resultset(["1"], [["1"]])),
    ])
    got = stats(wasm, conv)
    assert got == {
        "commands.command=ping": n, "commands.command=query": 1, "queries_parsed": 1,
        "statements.verb=select": 1, "rows_returned": 1, "result_sets": 1,
        **cmd_lat(ping=n, query=1), **verb_lat(select=1),
    }


def test_past_the_pending_cap_commands_are_unattributed_and_decoding_recovers(wasm: Path) -> None:
    # 100,000 commands that cannot share a run (ping, select, ping, ...): the first
    # MAX_RUNS are followed, the rest counted as unattributed and their answers
    # skipped; the statements after them are counted again
    n = 100_000
    pairs = n // 2
    conv = session([
        (0.010, "client", (my.com_ping() + my.com_query("SELECT 1")) * pairs),
        (0.020, "server", (my.ok() + my.resultset(["1"], [["1"]])) * pairs),
        (0.030, "client", my.com_query("UPDATE t SET v = 1")),
        (0.031, "server", my.ok(affected_rows=3)),
        (0.040, "client", my.com_query("SELECT 2")),
        (0.041, "server", my.resultset(["2"], [["2"]])),
    ])
    got = stats(wasm, conv)
    lost = n - MAX_RUNS
    followed_selects = MAX_RUNS // 2
    assert got == {
        "commands.command=ping": pairs, "commands.command=query": pairs + 2,
        "queries_parsed": pairs + 2, "commands_unattributed": lost,
        "statements.verb=select": followed_selects + 1, "statements.verb=update": 1,
        "rows_returned": followed_selects + 1, "result_sets": followed_selects + 1,
        "rows_affected": 3,
        **cmd_lat(ping=MAX_RUNS // 2, query=followed_selects + 2),
        **verb_lat(select=followed_selects + 1, update=1),
    }


# ---------------------------------------------------------- multi-statements


def test_multi_statement_split_respects_quotes_and_comments(wasm: Path) -> None:
    sql = ("SELECT 'a;b', \"c;d\", `e;f` FROM t WHERE x = 'it\\'s;';"
           " /* ; */ INSERT INTO t VALUES (';') ; -- ; comment\n"
           "UPDATE t SET a = 1 # ; hash comment\n;"
           "/*!40101 DELETE FROM t WHERE a = 2 */; REPLACE INTO t VALUES (1)")
    conv = session([
        (0.010, "client", my.com_query(sql)),
        (0.011, "server", my.answer(
            my.resultset(["a", "b", "c"], [["a;b", "c;d", "1"]], status=MORE),
            my.ok(affected_rows=1, status=MORE), my.ok(affected_rows=2, status=MORE),
            my.ok(affected_rows=3, status=MORE), my.ok(affected_rows=2))),
    ])
    check(wasm, conv, {
        "commands.command=query": 1, "queries_parsed": 1,
        "statements.verb=select": 1, "statements.verb=insert": 1,
        "statements.verb=update": 1, "statements.verb=delete": 1, "statements.verb=replace": 1,
        "rows_returned": 1, "result_sets": 1, "rows_affected": 8,
        **cmd_lat(query=1), **verb_lat(select=1, insert=1, update=1, delete=1, replace=1),
    })


def test_procedure_body_is_one_statement_and_call_owns_its_result_sets(wasm: Path) -> None:
    # MariaDB: CREATE PROCEDURE without DELIMITER is one statement (Com_create_procedure
    # +1); CALL answers with the procedure's result sets and then its own OK
    sql = ("CREATE PROCEDURE p() BEGIN DECLARE x INT; SET x = 1; "
           "IF x = 1 THEN SELECT CASE WHEN x THEN 'y' END; END IF; INSERT INTO t VALUES (x); END;"
           " CALL p(); SELECT 3")
    conv = session([
        (0.010, "client", my.com_query(sql)),
        (0.011, "server", my.answer(
            my.ok(status=MORE), my.resultset(["c"], [["y"]], status=MORE),
            my.ok(affected_rows=1, status=MORE), my.resultset(["3"], [["3"]]))),
    ])
    check(wasm, conv, {
        "commands.command=query": 1, "queries_parsed": 1,
        "statements.verb=other": 2, "statements.verb=select": 1,
        "rows_returned": 2, "result_sets": 2, "rows_affected": 1,
        **cmd_lat(query=1), **verb_lat(other=2, select=1),
    })


def test_transaction_in_one_multi_statement(wasm: Path) -> None:
    conv = session([
        (0.010, "client", my.com_query("BEGIN; INSERT INTO t VALUES (1); COMMIT")),
        (0.011, "server", my.answer(
            my.ok(status=MORE | my.SERVER_STATUS_IN_TRANS),
            my.ok(affected_rows=1, status=MORE | my.SERVER_STATUS_IN_TRANS), my.ok())),
        (0.020, "client", my.com_query("START TRANSACTION; ROLLBACK WORK")),
        (0.021, "server", my.answer(my.ok(status=MORE | my.SERVER_STATUS_IN_TRANS), my.ok())),
    ])
    check(wasm, conv, {
        "commands.command=query": 2, "queries_parsed": 2,
        "statements.verb=begin": 2, "statements.verb=insert": 1, "statements.verb=commit": 1,
        "statements.verb=rollback": 1, "rows_affected": 1,
        "transactions_committed": 1, "transactions_rolled_back": 1,
        **cmd_lat(query=2), **verb_lat(begin=2, insert=1, commit=1, rollback=1),
    })


def test_execution_error_mid_multi_statement_stops_it(wasm: Path) -> None:
    # INSERT ran, the SELECT failed at execution (Com_select +1), the UPDATE never ran
    conv = session([
        (0.010, "client", my.com_query("INSERT INTO t VALUES (1); SELECT * FROM nosuch;"
                                       " UPDATE t SET v = 2")),
        (0.011, "server", my.answer(my.ok(affected_rows=1, status=MORE),
                                    my.err(1146, "42S02", "Table 'shop.nosuch' doesn't exist"))),
    ])
    check(wasm, conv, {
        "commands.command=query": 1, "queries_parsed": 1,
        "statements.verb=insert": 1, "statements.verb=select": 1, "rows_affected": 1,
        "errors.code=1146": 1,
        **cmd_lat(query=1), **verb_lat(insert=1, select=1),
    })


def test_parse_error_mid_multi_statement_is_not_counted(wasm: Path) -> None:
    # MariaDB counts nothing for a statement its parser rejects (1064)
    conv = session([
        (0.010, "client", my.com_query("SELECT 1; SELEC 2; SELECT 3")),
        (0.011, "server", my.answer(my.resultset(["1"], [["1"]], status=MORE),
                                    my.err(1064, "42000", "You have an error in your SQL syntax"))),
    ])
    check(wasm, conv, {
        "commands.command=query": 1, "queries_parsed": 1,
        "statements.verb=select": 1, "rows_returned": 1, "result_sets": 1,
        "errors.code=1064": 1,
        **cmd_lat(query=1), **verb_lat(select=1),
    })


def test_trailing_comment_is_an_empty_statement(wasm: Path) -> None:
    # "SELECT 1; -- done": MariaDB answers two results (Com_select +1, Com_empty_query +1)
    conv = session([
        (0.010, "client", my.com_query("SELECT 1; -- done")),
        (0.011, "server", my.answer(my.resultset(["1"], [["1"]], status=MORE), my.ok())),
        (0.020, "client", my.com_query("SELECT 2;  \n")),
        (0.021, "server", my.resultset(["2"], [["2"]])),
    ])
    check(wasm, conv, {
        "commands.command=query": 2, "queries_parsed": 2,
        "statements.verb=select": 2, "statements.verb=other": 1,
        "rows_returned": 2, "result_sets": 2,
        **cmd_lat(query=2), **verb_lat(select=2, other=1),
    })


def test_without_multi_statements_the_text_is_not_split(wasm: Path) -> None:
    # the server rejects "SELECT 1; SELECT 2" as one statement (1064): nothing counted
    caps = my.DEFAULT_CAPABILITIES & ~my.MULTI_STATEMENTS
    conv = session([
        (0.010, "client", my.com_query("SELECT 1; SELECT 2")),
        (0.011, "server", my.err(1064, "42000", "syntax")),
        (0.020, "client", my.com_query("SELECT 1")),
        (0.021, "server", my.resultset(["1"], [["1"]])),
    ], caps=caps)
    check(wasm, conv, {
        "commands.command=query": 2, "queries_parsed": 2,
        "statements.verb=select": 1, "rows_returned": 1, "result_sets": 1,
        "errors.code=1064": 1,
        **cmd_lat(query=2), **verb_lat(select=1),
    })


def test_multi_statement_over_16_mib_is_split_across_packets(wasm: Path) -> None:
    big = "x" * (0xFFFFFF + 100)
    payload = bytes([my.COM_QUERY]) + f"INSERT INTO t VALUES ('{big};'); SELECT 1".encode()
    first, rest = payload[:0xFFFFFF], payload[0xFFFFFF:]
    head = (0xFFFFFF).to_bytes(3, "little") + b"\x00"
    conv = session([
        (0.010, "client", head + first + my.packet(rest, seq=1)),
        (0.011, "server", my.answer(my.ok(affected_rows=1, status=MORE),
                                    my.resultset(["1"], [["1"]]), seq=2)),
    ])
    got = stats(wasm, conv)
    assert got == {
        "commands.command=query": 1, "queries_parsed": 1,
        "statements.verb=insert": 1, "statements.verb=select": 1,
        "rows_affected": 1, "rows_returned": 1, "result_sets": 1,
        **cmd_lat(query=1), **verb_lat(insert=1, select=1),
    }


# ------------------------------------------------------ prepared statements


def test_prepared_select_with_cursor_fetches_is_one_statement(wasm: Path) -> None:
    conv = session([
        (0.010, "client", my.com_stmt_prepare("SELECT v FROM t")),
        (0.011, "server", my.prepare_ok(1, ["v"])),
        (0.020, "client", my.com_stmt_execute(1, cursor=my.CURSOR_TYPE_READ_ONLY)),
        (0.021, "server", my.cursor_opened(["v"])),
        (0.030, "client", my.com_stmt_fetch(1, 2)),
        (0.031, "server", my.fetched([[1], [2]], last=False)),
        (0.040, "client", my.com_stmt_fetch(1, 2)),
        (0.041, "server", my.fetched([[3]], last=True)),
        (0.050, "client", my.com_stmt_close(1)),
    ])
    check(wasm, conv, {
        "commands.command=stmt_prepare": 1, "commands.command=stmt_execute": 1,
        "commands.command=stmt_fetch": 2, "commands.command=stmt_close": 1,
        "prepared_statements.type=prepared": 1, "prepared_statements.type=executed": 1,
        "prepared_statements.type=closed": 1,
        "statements.verb=select": 1, "rows_returned": 3, "result_sets": 3,
        **cmd_lat(stmt_prepare=1, stmt_execute=1, stmt_fetch=2), **verb_lat(select=1),
    })
    # the statement runs from its EXECUTE to the fetch that sent the last row
    result = replay(wasm, conv, plugin_config=CONFIG)
    h = result.host.metrics.histogram("mysql.t.statement_duration_us.verb=select")
    assert h.samples == [21000]


def test_cursor_closed_before_its_end_is_reported_at_reset(wasm: Path) -> None:
    conv = session([
        (0.010, "client", my.com_stmt_prepare("SELECT v FROM t")),
        (0.011, "server", my.prepare_ok(4, ["v"])),
        (0.020, "client", my.com_stmt_execute(4, cursor=my.CURSOR_TYPE_READ_ONLY)),
        (0.021, "server", my.cursor_opened(["v"])),
        (0.030, "client", my.com_stmt_fetch(4, 1)),
        (0.031, "server", my.fetched([[1]], last=False)),
        (0.040, "client", my.com_stmt_reset(4)),
        (0.041, "server", my.ok()),
    ])
    check(wasm, conv, {
        "commands.command=stmt_prepare": 1, "commands.command=stmt_execute": 1,
        "commands.command=stmt_fetch": 1, "commands.command=stmt_reset": 1,
        "prepared_statements.type=prepared": 1, "prepared_statements.type=executed": 1,
        "statements.verb=select": 1, "rows_returned": 1, "result_sets": 2,
        **cmd_lat(stmt_prepare=1, stmt_execute=1, stmt_fetch=1, stmt_reset=1), **verb_lat(select=1),
    })


def test_prepared_insert_long_data_bulk_and_failed_execution(wasm: Path) -> None:
    # SEND_LONG_DATA and RESET are not statements; an EXECUTE failing at execution
    # still counts (MariaDB: Com_insert +1 for a duplicate key); BULK_EXECUTE is one
    conv = session([
        (0.010, "client", my.com_stmt_prepare("INSERT INTO t VALUES (?)")),
        (0.011, "server", my.prepare_ok(2, params=1)),
        (0.020, "client", my.com_stmt_send_long_data(2, 0, b"blob")),
        (0.021, "client", my.com_stmt_execute(2)),
        (0.022, "server", my.ok(affected_rows=1)),
        (0.030, "client", my.com_stmt_reset(2)),
        (0.031, "server", my.ok()),
        (0.040, "client", my.com_stmt_execute(2)),
        (0.041, "server", my.err(1062, "23000", "Duplicate entry")),
        (0.050, "client", my.com_stmt_bulk_execute(2)),
        (0.051, "server", my.ok(affected_rows=3)),
    ])
    check(wasm, conv, {
        "commands.command=stmt_prepare": 1, "commands.command=stmt_send_long_data": 1,
        "commands.command=stmt_execute": 2, "commands.command=stmt_reset": 1,
        "commands.command=stmt_bulk_execute": 1,
        "prepared_statements.type=prepared": 1, "prepared_statements.type=executed": 1,
        "statements.verb=insert": 3, "rows_affected": 4, "errors.code=1062": 1,
        **cmd_lat(stmt_prepare=1, stmt_execute=2, stmt_reset=1, stmt_bulk_execute=1),
        **verb_lat(insert=3),
    })


def test_reset_connection_forgets_prepared_statements(wasm: Path) -> None:
    # after COM_RESET_CONNECTION the id means nothing to the server (it answers
    # 1243 Unknown prepared statement handler, an execution error)
    conv = session([
        (0.010, "client", my.com_stmt_prepare("DELETE FROM t")),
        (0.011, "server", my.prepare_ok(9)),
        (0.020, "client", my.com_reset_connection()),
        (0.021, "server", my.ok()),
        (0.030, "client", my.com_stmt_execute(9)),
        (0.031, "server", my.err(1243, "HY000", "Unknown prepared statement handler")),
    ])
    check(wasm, conv, {
        "commands.command=stmt_prepare": 1, "commands.command=reset_connection": 1,
        "commands.command=stmt_execute": 1,
        "prepared_statements.type=prepared": 1,
        "statements.verb=other": 1, "errors.code=1243": 1,
        **cmd_lat(stmt_prepare=1, reset_connection=1, stmt_execute=1), **verb_lat(other=1),
    })
