"""PostgreSQL's own statistics, read on a direct connection, for tests that hold a
filter's counters against the server's figures for the same traffic.

    from wirelab.testing import pgstats

    pgstats.reset_statements(server)
    logins = pgstats.Sessions(server)
    ...  # the workload, through Envoy
    assert counter("sessions") == logins.since(expected=3)
    assert counter("statements_select") + ... == pgstats.statements(server).dml_calls

`server` is anything with a psycopg `conninfo()` (wirelab.servers.PostgresServer).
Every reading connection is a login of its own and runs statements of its own:
`Sessions` subtracts the first, `statements` leaves out the second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol


class Server(Protocol):
    def conninfo(self) -> dict[str, Any]: ...


def connect(server: Server) -> Any:
    """A direct autocommit psycopg connection (no TLS: the reader is not under test)."""
    import psycopg

    return psycopg.connect(**server.conninfo(), sslmode="disable", autocommit=True)


def reset_statements(server: Server) -> None:
    with connect(server) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")


def db_sessions(server: Server) -> int:
    """pg_stat_database.sessions of the server's database, after flushing our own stats."""
    with connect(server) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        return int(conn.execute("SELECT sessions FROM pg_stat_database "
                                "WHERE datname = current_database()").fetchone()[0])


class Sessions:
    """Logins pg_stat_database counts from its creation on, less this reader's own."""

    def __init__(self, server: Server) -> None:
        self.server = server
        first = db_sessions(server)
        self.before = db_sessions(server)
        self.reader = self.before - first  # what one reading connection adds

    def since(self, expected: int, timeout: float = 10.0) -> int:
        """Logins since the baseline, read until they reach `expected` or `timeout`
        passes (a backend reports its session when it exits): compare the result."""
        deadline = time.monotonic() + timeout
        while (sessions := db_sessions(self.server) - self.before - self.reader) != expected:
            if time.monotonic() > deadline:
                break
            self.before += self.reader
            time.sleep(0.2)
        return sessions


@dataclass(frozen=True)
class Statements:
    """pg_stat_statements since the last reset, by what a filter can compare."""

    calls: int          # every statement
    dml_calls: int      # SELECT / INSERT / UPDATE / DELETE
    rows_selected: int  # rows of SELECTs: the rows sent to clients
    rows_other: int     # rows of every other statement (written, copied)


def statements(server: Server, exclude: tuple[str, ...] = ()) -> Statements:
    """pg_stat_statements since the last reset, without the readers' pg_stat queries
    and the normalised statement texts in `exclude` (those a filter cannot see)."""
    with connect(server) as conn:
        rows = conn.execute(
            "SELECT query, calls, rows, upper(split_part(ltrim(query), ' ', 1)) "
            "IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE') FROM pg_stat_statements "
            "WHERE query NOT ILIKE '%%pg\\_stat%%' AND query <> ALL(%s::text[])",
            (list(exclude),)).fetchall()
    selects = [r for r in rows if r[0].lstrip().upper().startswith("SELECT")]
    return Statements(
        calls=sum(r[1] for r in rows),
        dml_calls=sum(r[1] for r in rows if r[3]),
        rows_selected=sum(r[2] for r in selects),
        rows_other=sum(r[2] for r in rows) - sum(r[2] for r in selects),
    )


def calls(server: Server, query: str) -> int:
    """pg_stat_statements calls of one statement text since the last reset."""
    with connect(server) as conn:
        row = conn.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                           "WHERE query = %s", (query,)).fetchone()
    return int(row[0])
