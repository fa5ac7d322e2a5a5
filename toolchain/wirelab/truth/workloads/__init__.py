"""The registry of workloads: one per driver (and query mode), named as the matrix rows."""

from __future__ import annotations

from functools import partial

from . import cli_tools, my_python, pg_python, programs
from .base import Observed, Target, Workload

_PG = "postgres"
_MY = "mysql"

# Seen with PostgreSQL 15 and 18: BEGIN and END parsed once as named prepared
# statements and executed 20 times per connection show calls = 1 each.
_PGSS_PREPARED_UTILITY = ("pg_stat_statements counts a utility statement (BEGIN, END) run "
                          "from a named prepared statement once per connection, not per "
                          "execution")

WORKLOADS: tuple[Workload, ...] = (
    Workload("psql", _PG, "cli", "multi-statement -c, a script with BEGIN/COMMIT and an error, "
             "\\copy in and out", cli_tools.psql_run, cli_tools.psql_missing),
    *(Workload(f"pgbench-{mode}", _PG, "cli", f"pgbench TPC-B, -M {mode}, 2 clients x 20",
               partial(cli_tools.pgbench_run, mode=mode), cli_tools.pgbench_missing,
               cli_tools.pgbench_setup,
               {"other": _PGSS_PREPARED_UTILITY} if mode == "prepared" else {})
      for mode in ("simple", "extended", "prepared")),
    Workload("psycopg", _PG, "python", "autocommit on/off, pipeline, COPY, executemany, "
             "named cursors (to the end, closed early), an error",
             pg_python.psycopg_run, pg_python.psycopg_missing),
    Workload("asyncpg", _PG, "python", "prepared fetchval/fetchrow, cursors with prefetch "
             "(to the end, closed early), copy_records_to_table, executemany",
             pg_python.asyncpg_run, pg_python.asyncpg_missing),
    Workload("node-pg", _PG, "node", "named statements, pg-cursor (to the end, closed early), "
             "pg-query-stream, transactions", partial(programs.node_run, "pg_workload.js"),
             partial(programs.node_missing, "pg-query-stream")),
    Workload("pgjdbc", _PG, "java", "prepareThreshold switch to a named statement, a batch, "
             "setFetchSize(50) on 300 rows, a cursor closed early, commit/rollback",
             partial(programs.java_run, "pgjdbc", "PgJdbcWorkload"),
             partial(programs.java_missing, "pgjdbc")),
    Workload("mariadb-cli", _MY, "cli", "-e with several statements, a script with "
             "transactions", cli_tools.mariadb_cli_run, cli_tools.mariadb_cli_missing),
    Workload("sysbench", _MY, "cli", "oltp_read_write, 2 threads, 30 events (prepared)",
             cli_tools.sysbench_run, cli_tools.sysbench_missing, cli_tools.sysbench_setup),
    Workload("pymysql", _MY, "python", "multi-statements, SSCursor, commit/rollback",
             my_python.pymysql_run, my_python.pymysql_missing),
    Workload("mysql-connector-c", _MY, "python", "prepared cursor, C extension",
             partial(my_python.connector_run, pure=False),
             partial(my_python.connector_missing, pure=False)),
    Workload("mysql-connector-pure", _MY, "python", "prepared cursor, pure Python",
             partial(my_python.connector_run, pure=True),
             partial(my_python.connector_missing, pure=True)),
    Workload("mysql2", _MY, "node", "query, execute (prepared), multipleStatements",
             partial(programs.node_run, "mysql2_workload.js"),
             partial(programs.node_missing, "mysql2")),
    Workload("mariadb-java", _MY, "java", "pipelined batch of 60, server prepared statements "
             "and batch, rewriteBatchedStatements", partial(programs.java_run, "mariadb-java",
                                                            "MariaDbWorkload"),
             partial(programs.java_missing, "mariadb-java")),
)


def by_name(names: list[str] | tuple[str, ...] | None = None,
            protocol: str | None = None) -> list[Workload]:
    """Workloads filtered by name and protocol; unknown names raise ValueError."""
    known = {w.name: w for w in WORKLOADS}
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise ValueError(f"unknown driver(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [known[n] for n in names] if names else list(WORKLOADS)
    return [w for w in chosen if protocol is None or w.protocol == protocol]


__all__ = ["WORKLOADS", "Observed", "Target", "Workload", "by_name"]
