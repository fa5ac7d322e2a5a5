"""The driver matrix's bookkeeping (wirelab.truth): statement kinds, filter figures,
cells and the grid. The matrix itself runs in tests/e2e/test_driver_matrix.py."""

from __future__ import annotations

from rich.console import Console

from wirelab.truth import WORKLOADS, Run, by_name
from wirelab.truth.figures import (
    MY_FIGURES,
    PG_FIGURES,
    lua_statement_figures,
    my_filter_figures,
    pg_bucket,
    pg_filter_figures,
    pg_kind,
)
from wirelab.truth.grid import grid, summary
from wirelab.truth.workloads import Observed, Workload


def test_statement_kind_is_the_first_keyword_of_the_normalised_text() -> None:
    assert pg_kind("SELECT v FROM items WHERE id = $1") == "select"
    assert pg_kind("  \n(select 1)") == "select"
    assert pg_kind("FETCH FORWARD 50 FROM c") == "fetch"
    assert pg_kind("commit;") == "commit"
    assert [pg_bucket(k) for k in ("insert", "fetch", "copy", "")] == [
        "insert", "other", "other", "other"]


def test_filter_counters_become_figures() -> None:
    delta = {"postgres.postgres.statements_select": 3, "postgres.postgres.rows_returned": 7,
             "postgres.postgres.transactions_commit": 2, "postgres.other.statements_select": 9}
    figures = pg_filter_figures(delta)
    assert list(figures) == list(PG_FIGURES)
    assert {k: v for k, v in figures.items() if v} == {"select": 3, "rows_returned": 7,
                                                        "commit": 2}
    my = my_filter_figures({"mysql.mysql.statements.verb=replace": 1,
                            "mysql.mysql.commands.command=stmt_execute": 4,
                            "mysql.mysql.prepared_statements.type=closed": 2})
    assert list(my) == list(MY_FIGURES)
    assert {k: v for k, v in my.items() if v} == {"replace": 1, "stmt_execute": 4,
                                                  "stmt_close": 2}


def test_lua_statement_types_fold_into_the_kinds() -> None:
    delta = {"lua.pgstmt.statements.type=select": 2, "lua.pgstmt.statements.type=begin": 3,
             "lua.pgstmt.statements.type=fetch": 4, "lua.pgstmt.errors": 1}
    assert lua_statement_figures(delta, "pgstmt") == {
        "select": 2, "insert": 0, "update": 0, "delete": 0, "other": 7}


def _run(server: dict[str, int], filters: dict[str, dict[str, int]], **kw) -> Run:
    w = Workload("demo", "postgres", "python", "a demo", lambda t: Observed(),
                 lambda: None, **kw)
    return Run(w, server=server, filters=filters)


def test_a_cell_differs_on_exactly_the_differing_figures() -> None:
    run = _run({"select": 10, "rows_returned": 347, "other": 4},
               {"filter": {"select": 2, "rows_returned": 347, "other": 80},
                "lua:pg-statements": {"select": 10, "other": 4}},
               not_comparable={"other": "the server counts it once per connection"})
    c_cell, lua_cell = run.cells()
    assert [(f.name, f.filter, f.server) for f in c_cell.mismatches()] == [("select", 2, 10)]
    assert not c_cell.ok and lua_cell.ok
    assert "other" not in {f.name for f in c_cell.figures}
    assert c_cell.not_comparable == {"other": "the server counts it once per connection"}
    assert summary(run.cells()) == ["demo (filter): select filter=2 server=10"]


def test_the_grid_shows_server_and_filter_rows() -> None:
    run = _run({"select": 10, "rows_returned": 347}, {"filter": {"select": 2,
                                                                 "rows_returned": 347}})
    console = Console(width=120, record=True, color_system=None)
    console.print(grid(run.cells(), "postgres"))
    lines = [ln.split() for ln in console.export_text().splitlines()]
    assert ["demo", "srv", "10", "347"] in lines and ["C", "2", "347"] in lines


def test_every_issue_driver_has_a_workload() -> None:
    names = {w.name for w in WORKLOADS}
    assert {"psql", "pgbench-simple", "pgbench-extended", "pgbench-prepared", "psycopg",
            "asyncpg", "node-pg", "pgjdbc", "mariadb-cli", "sysbench", "pymysql",
            "mysql-connector-c", "mysql-connector-pure", "mysql2", "mariadb-java"} <= names
    assert [w.name for w in by_name(["asyncpg", "mysql2"], "mysql")] == ["mysql2"]
