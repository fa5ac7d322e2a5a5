"""The PostgreSQL statement tracker (filters/protocols/postgres_tracker.c), one
scenario per rule, in the emulator: through the postgres filter (its
statement, row and transaction counters) and through the Lua runtime (the
envoy_on_statement / envoy_on_transaction events, logged by a recorder script).

Each scenario is what a server answers a client action, built with
wirelab.testing.postgres; the expected counts are what PostgreSQL's own
statistics count for that traffic (pg_stat_statements calls,
pg_stat_database xact_commit / xact_rollback; rows the client received).
Every scenario also runs with each read split into 1-byte reads and must
give identical metrics and events.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from wirelab.build import build_project
from wirelab.build.lua import build_runtime
from wirelab.emulator import Emulator
from wirelab.paths import filters_dir
from wirelab.project import Project
from wirelab.testing import nonzero_stats
from wirelab.testing import postgres as pg

RECORDER = textwrap.dedent("""\
    local function b(v) return v and 1 or 0 end
    function envoy_on_statement(conn, s)
      print(string.format("stmt %s failed=%d%s prepared=%d returned=%s affected=%s "
        .. "fetches=%d latency=%s sql=%s",
        s.kind, b(s.failed), s.failed and (" sqlstate=" .. s.sqlstate) or "", b(s.prepared),
        tostring(s.rows_returned), tostring(s.rows_affected), s.fetches,
        tostring(s.latency_us), s.sql))
    end
    function envoy_on_transaction(conn, t)
      print(string.format("txn %s implicit=%d statements=%d latency=%d",
        t.outcome, b(t.implicit), t.statements, t.latency_us))
    end
""")

# Stats that come from the tracker's events.
TRACKED = ("statements", "rows_", "transactions", "statement_latency_us", "transaction_latency_us")


@pytest.fixture(scope="module")
def filter_wasm() -> Path:
    return build_project(Project.load(filters_dir() / "postgres")).wasm


@pytest.fixture(scope="module")
def runtime() -> Path:
    return build_runtime()


@dataclass
class Talk:
    """A conversation after login: client reads, server reads, clock steps."""

    steps: list[tuple[str, bytes | float]] = field(default_factory=list)

    def client(self, *msgs: bytes) -> Talk:
        self.steps.append(("c", b"".join(msgs)))
        return self

    def server(self, *msgs: bytes) -> Talk:
        self.steps.append(("s", b"".join(msgs)))
        return self

    def wait(self, ms: float) -> Talk:
        self.steps.append(("t", ms))
        return self


def _drive(host: Emulator, talk: Talk, split: bool) -> None:
    conn = host.connect()
    conn.downstream(pg.startup("u", "d"))
    conn.upstream(pg.login_reply())
    for kind, data in talk.steps:
        if kind == "t":
            host.advance(data)  # type: ignore[arg-type]
            continue
        send: Callable[[bytes], None] = conn.downstream if kind == "c" else conn.upstream
        assert isinstance(data, bytes)
        if split:
            for i in range(len(data)):
                send(data[i:i + 1])
        else:
            send(data)
    conn.close()
    host.assert_no_traps()


@dataclass
class Outcome:
    stats: dict[str, int]
    histograms: dict[str, object]
    events: list[str]


def run(filter_wasm: Path, runtime: Path, talk: Talk, split: bool = False) -> Outcome:
    host = Emulator.load(filter_wasm, plugin_config={"stat_prefix": "t", "metrics_flush_ms": 0,
                                                     "slow_threshold_ms": 0})
    _drive(host, talk, split)
    stats = {k: v for k, v in nonzero_stats(host).items()
             if k.startswith(TRACKED) and not k.startswith("statements_parse")}
    lua = Emulator.load(runtime, plugin_config={"script": RECORDER, "protocol": "postgres",
                                                "stat_prefix": "r", "metrics_flush_ms": 0})
    _drive(lua, talk, split)
    assert lua.metrics.counter("lua.r.script_errors") == 0
    events = [m for m in lua.logs.at("info") if m.startswith(("stmt ", "txn "))]
    return Outcome(stats, host.metrics.as_dict()["histograms"], events)


def check(filter_wasm: Path, runtime: Path, talk: Talk, stats: dict[str, int],
          events: list[str]) -> None:
    got = run(filter_wasm, runtime, talk)
    assert got.events == events
    assert got.stats == stats
    # The same bytes, one byte per read: the same metrics and events.
    split = run(filter_wasm, runtime, talk, split=True)
    assert split.events == got.events
    assert split.stats == got.stats
    assert split.histograms == got.histograms


def lat(**counts: int) -> dict[str, int]:
    return {f"statement_latency_us.type={k}#count": v for k, v in counts.items()}


SELECT_X = "SELECT $1::int * 2"


# ---- portals: a statement counts once, when its portal finishes ------------------


def test_prepared_fetchval_with_a_row_limit_counts_one_select_each(filter_wasm, runtime):
    """asyncpg stmt.fetchval() outside a transaction: Execute with max_rows=1 is
    answered PortalSuspended, the Sync ends the implicit transaction and the
    portal with it. pg_stat_statements: 3 calls. The Parse/Describe-only
    batch that prepared it is an implicit transaction of its own."""
    talk = Talk().client(pg.parse(SELECT_X, "s1"), pg.describe("S", "s1"), pg.sync())
    talk.server(pg.parse_complete(), pg.typed("t", b"\0\x01\0\0\0\x17"),
                pg.row_description(["x"]), pg.ready("I"))
    for i in range(3):
        talk.client(pg.bind("", "s1", [i]), pg.execute("", max_rows=1), pg.sync()).wait(2)
        talk.server(pg.bind_complete(), pg.data_row([2 * i]), pg.portal_suspended(),
                    pg.ready("I"))
    stmt = (f"stmt select failed=0 prepared=1 returned=1 affected=0 fetches=1"
            f" latency=2000 sql={SELECT_X}")
    check(filter_wasm, runtime, talk, {
        "statements": 3, "statements_select": 3, "rows_returned": 3,
        "transactions": 4, "transactions_commit": 4, **lat(select=3),
    }, ["txn commit implicit=1 statements=0 latency=0",
        stmt, "txn commit implicit=1 statements=1 latency=2000"] * 1
       + [stmt, "txn commit implicit=1 statements=1 latency=2000"] * 2)


def test_suspended_portal_in_a_block_ends_at_the_next_bind(filter_wasm, runtime):
    """asyncpg fetchrow() inside a transaction: the unnamed portal survives the
    Sync (status T); the next Bind of the unnamed portal replaces it, and that
    is when its execution ends."""
    talk = (Talk().client(pg.parse(SELECT_X, "s1"), pg.sync())
            .server(pg.parse_complete(), pg.ready("I"))
            .client(pg.query("BEGIN")).server(pg.command_complete("BEGIN"), pg.ready("T"))
            .client(pg.bind("", "s1"), pg.execute("", 1), pg.sync()).wait(1)
            .server(pg.bind_complete(), pg.data_row(["a"]), pg.portal_suspended(), pg.ready("T"))
            .wait(4)
            .client(pg.bind("", "s1"), pg.execute("", 1), pg.sync()).wait(1)
            .server(pg.bind_complete(), pg.data_row(["b"]), pg.portal_suspended(), pg.ready("T"))
            .client(pg.query("COMMIT")).server(pg.command_complete("COMMIT"), pg.ready("I")))
    check(filter_wasm, runtime, talk, {
        "statements": 4, "statements_select": 2, "statements_other": 2, "rows_returned": 2,
        "transactions": 2, "transactions_commit": 2, "transaction_latency_us#count": 1,
        **lat(begin=1, select=2, commit=1),
    }, [
        "txn commit implicit=1 statements=0 latency=0",
        "stmt begin failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0 sql=BEGIN",
        f"stmt select failed=0 prepared=1 returned=1 affected=0 fetches=1"
        f" latency=5000 sql={SELECT_X}",
        f"stmt select failed=0 prepared=1 returned=1 affected=0 fetches=1"
        f" latency=1000 sql={SELECT_X}",
        "stmt commit failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0 sql=COMMIT",
        "txn commit implicit=0 statements=4 latency=6000",
    ])


def test_cursor_with_prefetch_is_one_execution_of_several_fetches(filter_wasm, runtime):
    """pgJDBC setFetchSize(2) / asyncpg cursor(prefetch=2) on a 5-row SELECT: a
    named portal re-Executed until CommandComplete. One call; rows summed over
    the fetches (DataRows for the suspended ones, the tag for the last)."""
    talk = (Talk().client(pg.query("BEGIN")).server(pg.command_complete("BEGIN"), pg.ready("T"))
            .client(pg.parse("SELECT g FROM generate_series(1, 5) g"),
                    pg.bind("C_1"), pg.execute("C_1", 2), pg.sync()).wait(1)
            .server(pg.parse_complete(), pg.bind_complete(), pg.data_row([1]), pg.data_row([2]),
                    pg.portal_suspended(), pg.ready("T"))
            .client(pg.execute("C_1", 2), pg.sync()).wait(1)
            .server(pg.data_row([3]), pg.data_row([4]), pg.portal_suspended(), pg.ready("T"))
            .client(pg.execute("C_1", 2), pg.sync()).wait(1)
            .server(pg.data_row([5]), pg.command_complete("SELECT 1"), pg.ready("T"))
            .client(pg.close("P", "C_1"), pg.sync())
            .server(pg.close_complete(), pg.ready("T"))
            .client(pg.query("COMMIT")).server(pg.command_complete("COMMIT"), pg.ready("I")))
    check(filter_wasm, runtime, talk, {
        "statements": 3, "statements_select": 1, "statements_other": 2, "rows_returned": 5,
        "transactions": 1, "transactions_commit": 1, "transaction_latency_us#count": 1,
        **lat(begin=1, select=1, commit=1),
    }, [
        "stmt begin failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0 sql=BEGIN",
        "stmt select failed=0 prepared=1 returned=5 affected=0 fetches=3 latency=3000 "
        "sql=SELECT g FROM generate_series(1, 5) g",
        "stmt commit failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0 sql=COMMIT",
        "txn commit implicit=0 statements=3 latency=3000",
    ])


def test_cursor_closed_before_its_end_counts_at_the_close(filter_wasm, runtime):
    """pg-cursor / pgJDBC closing a cursor early: no CommandComplete ever; the
    Close ends the portal (the server's ExecutorEnd, one call)."""
    talk = (Talk().client(pg.query("BEGIN")).server(pg.command_complete("BEGIN"), pg.ready("T"))
            .client(pg.parse("SELECT * FROM big"), pg.bind("C_2"), pg.execute("C_2", 2),
                    pg.sync()).wait(3)
            .server(pg.parse_complete(), pg.bind_complete(), pg.data_row([1]), pg.data_row([2]),
                    pg.portal_suspended(), pg.ready("T"))
            .wait(5).client(pg.close("P", "C_2"), pg.sync()).wait(1)
            .server(pg.close_complete(), pg.ready("T"))
            .client(pg.query("ROLLBACK")).server(pg.command_complete("ROLLBACK"), pg.ready("I")))
    check(filter_wasm, runtime, talk, {
        "statements": 3, "statements_select": 1, "statements_other": 2, "rows_returned": 2,
        "transactions": 1, "transactions_rollback": 1, "transaction_latency_us#count": 1,
        **lat(begin=1, select=1, rollback=1),
    }, [
        "stmt begin failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0 sql=BEGIN",
        "stmt select failed=0 prepared=1 returned=2 affected=0 fetches=1 latency=8000 "
        "sql=SELECT * FROM big",
        "stmt rollback failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0 sql=ROLLBACK",
        "txn rollback implicit=0 statements=3 latency=9000",
    ])


def test_sql_cursors_fetch_and_move(filter_wasm, runtime):
    """psycopg named cursors: DECLARE, FETCH FORWARD n (rows returned, kind
    fetch), MOVE (kind move, no rows sent), CLOSE."""
    talk = (Talk().client(pg.query("BEGIN")).server(pg.command_complete("BEGIN"), pg.ready("T"))
            .client(pg.query('DECLARE "c" CURSOR FOR SELECT g FROM generate_series(1, 9) g'))
            .server(pg.command_complete("DECLARE CURSOR"), pg.ready("T"))
            .client(pg.query('FETCH FORWARD 4 FROM "c"'))
            .server(pg.row_description(["g"]), *[pg.data_row([i]) for i in range(4)],
                    pg.command_complete("FETCH 4"), pg.ready("T"))
            .client(pg.query('MOVE 2 FROM "c"'))
            .server(pg.command_complete("MOVE 2"), pg.ready("T"))
            .client(pg.query('FETCH FORWARD 4 FROM "c"'))
            .server(pg.row_description(["g"]), *[pg.data_row([i]) for i in range(3)],
                    pg.command_complete("FETCH 3"), pg.ready("T"))
            .client(pg.query('CLOSE "c"'))
            .server(pg.command_complete("CLOSE CURSOR"), pg.ready("T"))
            .client(pg.query("COMMIT")).server(pg.command_complete("COMMIT"), pg.ready("I")))
    out = run(filter_wasm, runtime, talk)
    assert out.stats == {
        "statements": 7, "statements_other": 7, "rows_returned": 7, "transactions": 1,
        "transactions_commit": 1, "transaction_latency_us#count": 1,
        **lat(begin=1, other=2, fetch=2, move=1, commit=1),
    }
    assert [e.split(" sql=")[0] for e in out.events] == [
        "stmt begin failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0",
        "stmt other failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0",
        "stmt fetch failed=0 prepared=0 returned=4 affected=0 fetches=1 latency=0",
        "stmt move failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0",
        "stmt fetch failed=0 prepared=0 returned=3 affected=0 fetches=1 latency=0",
        "stmt other failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0",
        "stmt commit failed=0 prepared=0 returned=0 affected=0 fetches=1 latency=0",
        "txn commit implicit=0 statements=7 latency=0",
    ]
    assert run(filter_wasm, runtime, talk, split=True).events == out.events


# ---- pipelines and errors -----------------------------------------------------------


def test_pipeline_error_skips_to_sync_and_fails_one_statement(filter_wasm, runtime):
    """psycopg pipeline: three statements before one Sync; the second fails, the
    server skips the third. One statement counted, one failed (not counted by
    pg_stat_statements), the implicit transaction rolls back; the next batch runs."""
    talk = Talk().client(
        pg.parse("SELECT 1"), pg.bind(), pg.execute(),
        pg.parse("UPDATE t SET v = 1"), pg.bind(), pg.execute(),
        pg.parse("DELETE FROM t"), pg.bind(), pg.execute(), pg.sync(),
        pg.parse("INSERT INTO t VALUES (1)"), pg.bind(), pg.execute(), pg.sync()).wait(2)
    talk.server(pg.parse_complete(), pg.bind_complete(), pg.data_row([1]),
                pg.command_complete("SELECT 1"), pg.parse_complete(), pg.bind_complete(),
                pg.error("ERROR", "40P01", "deadlock"), pg.ready("I")).wait(1)
    talk.server(pg.parse_complete(), pg.bind_complete(), pg.command_complete("INSERT 0 1"),
                pg.ready("I"))
    check(filter_wasm, runtime, talk, {
        "statements": 2, "statements_select": 1, "statements_insert": 1, "rows_returned": 1,
        "rows_affected": 1, "transactions": 2, "transactions_commit": 1,
        "transactions_rollback": 1, **lat(select=1, update=1, insert=1),
    }, [
        "stmt select failed=0 prepared=1 returned=1 affected=0 fetches=1 latency=2000 sql=SELECT 1",
        "stmt update failed=1 sqlstate=40P01 prepared=1 returned=0 affected=0 fetches=1 latency=0 "
        "sql=UPDATE t SET v = 1",
        "txn rollback implicit=1 statements=1 latency=2000",
        "stmt insert failed=0 prepared=1 returned=0 affected=1 fetches=1 latency=1000 "
        "sql=INSERT INTO t VALUES (1)",
        "txn commit implicit=1 statements=1 latency=1000",
    ])


def test_pipeline_deeper_than_the_queue_recovers(filter_wasm, runtime):
    """50 Executes before one Sync (deeper than the 32-request queue): every
    statement counted, the 18 beyond the queue untimed; the next request is
    tracked exactly again."""
    talk = Talk().client(pg.parse("UPDATE t SET v = v + 1", "u"),
                         *[pg.bind("", "u") + pg.execute() for _ in range(50)], pg.sync())
    talk.server(pg.parse_complete(), *[pg.bind_complete() + pg.command_complete("UPDATE 1")
                                       for _ in range(50)], pg.ready("I"))
    talk.client(pg.bind("", "u"), pg.execute("", 1), pg.sync()).wait(1)
    talk.server(pg.bind_complete(), pg.command_complete("UPDATE 1"), pg.ready("I"))
    out = run(filter_wasm, runtime, talk)
    assert out.stats == {
        "statements": 51, "statements_update": 51, "rows_affected": 51, "transactions": 2,
        "transactions_commit": 2, **lat(update=33),
    }
    assert len(out.events) == 53
    assert out.events[-2] == ("stmt update failed=0 prepared=1 returned=0 affected=1 fetches=1 "
                              "latency=1000 sql=UPDATE t SET v = v + 1")
    assert run(filter_wasm, runtime, talk, split=True).events == out.events


# ---- transactions -----------------------------------------------------------------------


def test_multi_statement_query_is_one_implicit_transaction(filter_wasm, runtime):
    """psql -c "INSERT ...; UPDATE ...; SELECT ...": one Query, three statements,
    one implicit transaction (xact_commit +1)."""
    talk = (Talk().client(pg.query("INSERT INTO t VALUES (1); UPDATE t SET v = 2; SELECT v FROM t"))
            .wait(1).server(pg.command_complete("INSERT 0 1")).wait(2)
            .server(pg.command_complete("UPDATE 3"), pg.row_description(["v"]), pg.data_row([2]))
            .wait(1).server(pg.command_complete("SELECT 1"), pg.ready("I")))
    sql = "INSERT INTO t VALUES (1); UPDATE t SET v = 2; SELECT v FROM t"
    check(filter_wasm, runtime, talk, {
        "statements": 3, "statements_insert": 1, "statements_update": 1, "statements_select": 1,
        "rows_affected": 4, "rows_returned": 1, "transactions": 1, "transactions_commit": 1,
        **lat(insert=1, update=1, select=1),
    }, [
        f"stmt insert failed=0 prepared=0 returned=0 affected=1 fetches=1 latency=1000 sql={sql}",
        f"stmt update failed=0 prepared=0 returned=0 affected=3 fetches=1 latency=2000 sql={sql}",
        f"stmt select failed=0 prepared=0 returned=1 affected=0 fetches=1 latency=1000 sql={sql}",
        "txn commit implicit=1 statements=3 latency=4000",
    ])


def test_multi_statement_query_with_begin_commit_is_explicit(filter_wasm, runtime):
    talk = (Talk().client(pg.query("BEGIN; INSERT INTO t VALUES (1); COMMIT")).wait(2)
            .server(pg.command_complete("BEGIN"), pg.command_complete("INSERT 0 1"),
                    pg.command_complete("COMMIT"), pg.ready("I")))
    out = run(filter_wasm, runtime, talk)
    assert out.stats == {
        "statements": 3, "statements_insert": 1, "statements_other": 2, "rows_affected": 1,
        "transactions": 1, "transactions_commit": 1, "transaction_latency_us#count": 1,
        **lat(begin=1, insert=1, commit=1),
    }
    assert out.events[-1] == "txn commit implicit=0 statements=3 latency=2000"


def test_rollback_to_savepoint_is_no_rollback(filter_wasm, runtime):
    talk = (Talk().client(pg.query("BEGIN")).server(pg.command_complete("BEGIN"), pg.ready("T"))
            .client(pg.query("SAVEPOINT a")).server(pg.command_complete("SAVEPOINT"), pg.ready("T"))
            .client(pg.query("SELECT 1/0")).server(pg.error("ERROR", "22012"), pg.ready("E"))
            .client(pg.query("ROLLBACK TO SAVEPOINT a"))
            .server(pg.command_complete("ROLLBACK"), pg.ready("T"))
            .client(pg.query("COMMIT")).server(pg.command_complete("COMMIT"), pg.ready("I")))
    out = run(filter_wasm, runtime, talk)
    assert out.stats == {
        "statements": 4, "statements_other": 4, "transactions": 1, "transactions_commit": 1,
        "transaction_latency_us#count": 1,
        **lat(begin=1, savepoint=1, select=1, rollback=1, commit=1),
    }
    assert out.events[2].startswith("stmt select failed=1 sqlstate=22012 prepared=0")
    assert out.events[-1] == "txn commit implicit=0 statements=4 latency=0"


def test_commit_of_a_failed_block_is_a_rollback(filter_wasm, runtime):
    """The server answers COMMIT of a failed transaction with the ROLLBACK tag."""
    talk = (Talk().client(pg.query("BEGIN")).server(pg.command_complete("BEGIN"), pg.ready("T"))
            .client(pg.query("INSERT INTO nope VALUES (1)"))
            .server(pg.error("ERROR", "42P01"), pg.ready("E"))
            .client(pg.query("COMMIT")).server(pg.command_complete("ROLLBACK"), pg.ready("I")))
    out = run(filter_wasm, runtime, talk)
    assert out.stats == {
        "statements": 2, "statements_other": 2, "transactions": 1, "transactions_rollback": 1,
        "transaction_latency_us#count": 1, **lat(begin=1, insert=1, rollback=1),
    }
    assert out.events[-1] == "txn rollback implicit=0 statements=2 latency=0"


def test_an_open_transaction_rolls_back_when_the_connection_ends(filter_wasm, runtime):
    talk = Talk().client(pg.query("BEGIN")).server(pg.command_complete("BEGIN"), pg.ready("T"))
    out = run(filter_wasm, runtime, talk)
    assert out.stats == {"statements": 1, "statements_other": 1, "transactions": 1,
                         "transactions_rollback": 1, "transaction_latency_us#count": 1,
                         **lat(begin=1)}
    assert out.events[-1] == "txn rollback implicit=0 statements=1 latency=0"


# ---- messages that are no statements ------------------------------------------------------


def test_copy_in_and_out(filter_wasm, runtime):
    talk = (Talk().client(pg.query("COPY t FROM STDIN")).server(pg.copy_in_response())
            .client(pg.copy_data(b"1\n2\n3\n"), pg.copy_done())
            .server(pg.command_complete("COPY 3"), pg.ready("I"))
            .client(pg.query("COPY t TO STDOUT"))
            .server(pg.copy_out_response(), pg.copy_data(b"1\n"), pg.copy_data(b"2\n"),
                    pg.copy_done(), pg.command_complete("COPY 2"), pg.ready("I")))
    check(filter_wasm, runtime, talk, {
        "statements": 2, "statements_other": 2, "rows_affected": 3, "rows_returned": 2,
        "transactions": 2, "transactions_commit": 2, **lat(copy=2),
    }, [
        "stmt copy failed=0 prepared=0 returned=0 affected=3 fetches=1"
        " latency=0 sql=COPY t FROM STDIN",
        "txn commit implicit=1 statements=1 latency=0",
        "stmt copy failed=0 prepared=0 returned=2 affected=0 fetches=1"
        " latency=0 sql=COPY t TO STDOUT",
        "txn commit implicit=1 statements=1 latency=0",
    ])


def test_function_call_empty_query_notice_and_notification(filter_wasm, runtime):
    """A fast-path FunctionCall and an empty Query are no statements for
    pg_stat_statements, but each runs in a transaction of its own."""
    talk = (Talk().client(pg.function_call(1598, [])).server(pg.function_call_response("x"),
                                                             pg.ready("I"))
            .client(pg.query("")).server(pg.empty_query(), pg.ready("I"))
            .client(pg.query("SELECT 1"))
            .server(pg.notice("WARNING", "01000"), pg.notification("ch", "hi"),
                    pg.row_description(["x"]), pg.data_row([1]), pg.command_complete("SELECT 1"),
                    pg.ready("I")))
    check(filter_wasm, runtime, talk, {
        "statements": 1, "statements_select": 1, "rows_returned": 1, "transactions": 3,
        "transactions_commit": 3, **lat(select=1),
    }, [
        "txn commit implicit=1 statements=0 latency=0",
        "txn commit implicit=1 statements=0 latency=0",
        "stmt select failed=0 prepared=0 returned=1 affected=0 fetches=1 latency=0 sql=SELECT 1",
        "txn commit implicit=1 statements=1 latency=0",
    ])


def test_kind_of_a_suspended_statement_comes_from_its_sql(filter_wasm, runtime):
    """No CommandComplete names it: WITH ... SELECT is a select, by its text."""
    sql = "WITH x AS (SELECT 1 AS a) SELECT a FROM x"
    talk = (Talk().client(pg.parse(sql, "w"), pg.bind("", "w"), pg.execute("", 1), pg.sync())
            .server(pg.parse_complete(), pg.bind_complete(), pg.data_row([1]),
                    pg.portal_suspended(), pg.ready("I")))
    check(filter_wasm, runtime, talk, {
        "statements": 1, "statements_select": 1, "rows_returned": 1, "transactions": 1,
        "transactions_commit": 1, **lat(select=1),
    }, [
        f"stmt select failed=0 prepared=1 returned=1 affected=0 fetches=1 latency=0 sql={sql}",
        "txn commit implicit=1 statements=1 latency=0",
    ])


def test_more_suspended_portals_than_the_table_holds_still_count_once_each(filter_wasm, runtime):
    """Six cursors open at once (the tracker holds 4): the oldest ends early
    when a fifth suspends, every execution still counts exactly once, with all
    of its rows."""
    talk = Talk().client(pg.query("BEGIN")).server(pg.command_complete("BEGIN"), pg.ready("T"))
    talk.client(pg.parse("SELECT g FROM generate_series(1, 9) g", "g"), pg.sync())
    talk.server(pg.parse_complete(), pg.ready("T"))
    for i in range(6):
        talk.client(pg.bind(f"c{i}", "g"), pg.execute(f"c{i}", 2), pg.sync())
        talk.server(pg.bind_complete(), pg.data_row([1]), pg.data_row([2]),
                    pg.portal_suspended(), pg.ready("T"))
    talk.client(pg.query("COMMIT")).server(pg.command_complete("COMMIT"), pg.ready("I"))
    out = run(filter_wasm, runtime, talk)
    assert out.stats == {
        "statements": 8, "statements_select": 6, "statements_other": 2, "rows_returned": 12,
        "transactions": 1, "transactions_commit": 1, "transaction_latency_us#count": 1,
        **lat(begin=1, select=6, commit=1),
    }
    assert out.events[-1] == "txn commit implicit=0 statements=8 latency=0"
    assert run(filter_wasm, runtime, talk, split=True).events == out.events


def test_more_named_statements_than_remembered_keep_their_tags(filter_wasm, runtime):
    """20 named statements (16 remembered): statements that end with a
    CommandComplete are counted by its tag all the same."""
    talk = Talk()
    for i in range(20):
        talk.client(pg.parse(f"INSERT INTO t VALUES ({i})", f"s{i}"), pg.sync())
        talk.server(pg.parse_complete(), pg.ready("I"))
    for i in range(20):
        talk.client(pg.bind("", f"s{i}"), pg.execute(), pg.sync())
        talk.server(pg.bind_complete(), pg.command_complete("INSERT 0 1"), pg.ready("I"))
    out = run(filter_wasm, runtime, talk)
    assert out.stats == {
        "statements": 20, "statements_insert": 20, "rows_affected": 20, "transactions": 40,
        "transactions_commit": 40, **lat(insert=20),
    }
    # The SQL of the 4 pushed out of the table is unknown; the rest is kept.
    assert sum(e.endswith(" sql=") for e in out.events if e.startswith("stmt ")) == 4
