"""PostgreSQL's own figures for one workload, in a database only that workload uses.

Statements: pg_stat_statements calls of top-level statements (what a client sends;
statements run inside functions are not on the wire), by the first keyword of the
statement text. Transactions: pg_stat_database.xact_commit / xact_rollback of the
workload's fresh database, read once every backend of it has exited (backends
flush their counts at exit), less the commit PostgreSQL runs at each login
(measured with a login that does nothing). Autovacuum is turned off for the
server's life: its workers' transactions would count in the same database.
"""

from __future__ import annotations

import re
import time
from typing import Any

from ..errors import WirelabError
from .figures import PG_ROWS_AFFECTED, PG_ROWS_RETURNED, pg_bucket, pg_kind
from .workloads.base import Target

# COPY ... TO STDOUT sends its rows to the client: they are rows returned
_COPY_OUT = re.compile(r"\bTO\s+STDOUT\b", re.IGNORECASE)


class PgTruth:
    """Reads the server's statistics on a direct connection to the lab's own database."""

    def __init__(self, server: Any):
        import psycopg

        self.server = server
        self.reader = psycopg.connect(**server.conninfo(), sslmode="disable", autocommit=True)
        if not self.reader.execute("SELECT count(*) FROM pg_extension "
                                   "WHERE extname = 'pg_stat_statements'").fetchone()[0]:
            raise WirelabError("this PostgreSQL has no pg_stat_statements (Debian: "
                               "apt-get install postgresql-contrib; or pass --pg-bin of a "
                               "build that ships it)")
        self._autovacuum_off()
        self.not_comparable: dict[str, str] = {}
        if int(self.reader.execute("SHOW server_version_num").fetchone()[0]) < 170000:
            # PostgreSQL 17 added es_total_processed; before it the rows of a portal
            # run by several Executes are those of its last Execute only
            self.not_comparable["rows_returned"] = (
                "pg_stat_statements before PostgreSQL 17 keeps only the last fetch's rows of "
                "a portal run by several Executes")
        self.db = ""
        self.login_commits = 0
        self._before: tuple[int, int, int] = (0, 0, 0)

    def close(self) -> None:
        self.reader.close()

    def _autovacuum_off(self) -> None:
        import psycopg

        self.reader.execute("ALTER SYSTEM SET autovacuum = off")
        self.reader.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 10
        while True:  # backends started after the reload see it
            with psycopg.connect(**self.server.conninfo(), sslmode="disable") as probe:
                if probe.execute("SHOW autovacuum").fetchone()[0] == "off":
                    return
            if time.monotonic() > deadline:
                raise WirelabError("autovacuum = off did not take effect within 10 s")
            time.sleep(0.05)

    # -- one workload ---------------------------------------------------------------
    def prepare(self, name: str, setup) -> Target:
        """A fresh database for `name`, set up by `setup(conn, direct_target)`; measures
        the login cost there. Returns the direct target (for setup tools)."""
        import psycopg

        self.db = f"truth_{name.replace('-', '_')}"
        self.reader.execute(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
        self.reader.execute(f'CREATE DATABASE "{self.db}"')
        s = self.server
        direct = Target(s.host, s.port, s.user, s.password, self.db)
        with psycopg.connect(**self._info(direct), autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 300) g")
            conn.execute("CREATE TABLE sink (id int, v text)")
            if setup is not None:
                setup(conn, direct)
        first = self._xacts()
        psycopg.connect(**self._info(direct)).close()
        after = self._xacts()
        self.login_commits = after[0] - first[0]
        return direct

    @staticmethod
    def _info(t: Target) -> dict[str, Any]:
        return {"host": t.host, "port": t.port, "user": t.user, "password": t.password,
                "dbname": t.database, "sslmode": "disable", "gssencmode": "disable"}

    def _xacts(self) -> tuple[int, int, int]:
        """(xact_commit, xact_rollback, sessions) once the database's backends are gone."""
        deadline = time.monotonic() + 15
        while self.reader.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                                  (self.db,)).fetchone()[0]:
            if time.monotonic() > deadline:
                raise WirelabError(f"backends of database {self.db} linger after 15 s")
            time.sleep(0.02)
        self.reader.execute("SELECT pg_stat_clear_snapshot()")
        return self.reader.execute(
            "SELECT xact_commit, xact_rollback, sessions FROM pg_stat_database "
            "WHERE datname = %s", (self.db,)).fetchone()

    def begin(self) -> None:
        self.reader.execute("SELECT pg_stat_statements_reset()")
        self._before = self._xacts()

    def end(self) -> dict[str, int]:
        commit, rollback, sessions = (a - b for a, b in
                                      zip(self._xacts(), self._before, strict=True))
        rows = self.reader.execute(
            "SELECT query, calls, rows FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s AND s.toplevel",
            (self.db,)).fetchall()
        out = {"select": 0, "insert": 0, "update": 0, "delete": 0, "other": 0,
               "rows_returned": 0, "rows_affected": 0}
        for query, calls, nrows in rows:
            kind = pg_kind(query)
            out[pg_bucket(kind)] += calls
            if kind in PG_ROWS_RETURNED or (kind == "copy" and _COPY_OUT.search(query)):
                out["rows_returned"] += nrows
            elif kind in PG_ROWS_AFFECTED:
                out["rows_affected"] += nrows
        out["commit"] = commit - self.login_commits * sessions
        out["rollback"] = rollback
        out["sessions"] = sessions
        out["decoder_errors"] = 0
        return out

    def statements(self) -> list[tuple[str, int, int]]:
        """(query, calls, rows) of the last workload, for a report's detail."""
        return self.reader.execute(
            "SELECT query, calls, rows FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s AND s.toplevel "
            "ORDER BY calls DESC, query", (self.db,)).fetchall()
