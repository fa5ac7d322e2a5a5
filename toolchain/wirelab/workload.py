"""The demo's workload: real clients through Envoy in phases a viewer can follow.

    steady     OLTP: short transactions (point select, update, insert) on a few connections
    slow       the same, plus statements that sleep past the filters' slow threshold
    migration  a bad migration: DDL and backfills that fail (duplicate column, duplicate
               key, division by zero, a missing table) while OLTP goes on
    storm      a connection storm: many short-lived connections at once

Each phase runs on PostgreSQL (psycopg) and MySQL/MariaDB (pymysql) alike. The client
keeps its own count of what it sent and what failed, so the figures the filters
report can be checked against it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Phase:
    name: str
    title: str


PHASES = (
    Phase("steady", "steady OLTP: short transactions on 4 connections per database"),
    Phase("slow", "slow queries: 4 clients per database run 300 ms statements beside the "
                  "OLTP (watch p99 and the slow-statement log)"),
    Phase("migration", "a bad migration: ALTERs and backfills fail (errors by SQLSTATE "
                       "class / MySQL code)"),
    Phase("storm", "a connection storm: 24 clients per database connect, query, disconnect"),
)
SLOW_SECONDS = 0.3
OLTP_WORKERS = 4
STORM_WORKERS = 24
# Enough sleepers that slow statements are several % of the SELECTs: p99 shows them.
SLEEPERS = 4
ACCOUNTS = 1000


@dataclass
class ClientCounts:
    """What the clients did, per database."""

    statements: Counter = field(default_factory=Counter)   # kind -> statements sent
    errors: Counter = field(default_factory=Counter)       # SQLSTATE / MySQL code -> count
    connections: int = 0
    slow: int = 0           # slow statements that completed

    def as_dict(self) -> dict[str, Any]:
        return {"statements": dict(self.statements), "errors": dict(self.errors),
                "connections": self.connections, "slow_statements": self.slow}


class _Db:
    """One database's dialect: how to connect, and the statements of each phase."""

    name = ""

    def __init__(self, params: dict[str, Any]):
        self.params = params
        self.counts = ClientCounts()
        self.lock = threading.Lock()

    def connect(self) -> Any:
        raise NotImplementedError

    def error_code(self, exc: BaseException) -> str:
        raise NotImplementedError

    def sleep_sql(self) -> str:
        raise NotImplementedError

    def schema(self) -> list[str]:
        raise NotImplementedError

    def migration(self) -> list[str]:
        raise NotImplementedError

    def begin(self) -> str:
        return "BEGIN"

    def run(self, cur: Any, sql: str, kind: str, args: tuple = ()) -> bool:
        """Execute one statement; count it, and its error if it fails (False)."""
        with self.lock:
            self.counts.statements[kind] += 1
        try:
            cur.execute(sql, args or None)
            if cur.description is not None:
                cur.fetchall()
            return True
        except self.errors as exc:  # type: ignore[misc]
            with self.lock:
                self.counts.errors[self.error_code(exc)] += 1
            return False

    def opened(self) -> None:
        with self.lock:
            self.counts.connections += 1


class _Postgres(_Db):
    name = "postgres"

    def __init__(self, params: dict[str, Any]):
        super().__init__(params)
        import psycopg

        self.errors = psycopg.Error

    def connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(**self.params, autocommit=True)
        self.opened()
        return conn

    def error_code(self, exc: BaseException) -> str:
        return getattr(exc, "sqlstate", None) or "other"

    def sleep_sql(self) -> str:
        return f"SELECT pg_sleep({SLOW_SECONDS})"

    def schema(self) -> list[str]:
        return [
            "DROP TABLE IF EXISTS demo_history",
            "DROP TABLE IF EXISTS demo_accounts",
            "CREATE TABLE demo_accounts (id int PRIMARY KEY, balance int NOT NULL)",
            f"INSERT INTO demo_accounts SELECT g, 1000 FROM generate_series(1, {ACCOUNTS}) g",
            "CREATE TABLE demo_history (id bigserial PRIMARY KEY, account int, delta int, "
            "at timestamptz DEFAULT now())",
        ]

    def migration(self) -> list[str]:
        return [
            "ALTER TABLE demo_accounts ADD COLUMN balance int",           # 42701
            "INSERT INTO demo_accounts (id, balance) VALUES (1, 0)",      # 23505
            "UPDATE demo_accounts SET balance = balance / 0 WHERE id = 2",  # 22012
            "ALTER TABLE demo_accounts_v2 RENAME TO demo_accounts",       # 42P01
            "ALTER TABLE demo_accounts ALTER COLUMN balance SET NOT NULL",  # succeeds
        ]


class _MySQL(_Db):
    name = "mysql"

    def __init__(self, params: dict[str, Any]):
        super().__init__(params)
        import pymysql

        self.errors = pymysql.Error

    def connect(self) -> Any:
        import pymysql

        conn = pymysql.connect(**self.params, autocommit=True)
        self.opened()
        return conn

    def error_code(self, exc: BaseException) -> str:
        args = getattr(exc, "args", ())
        return str(args[0]) if args and isinstance(args[0], int) else "other"

    def sleep_sql(self) -> str:
        return f"SELECT SLEEP({SLOW_SECONDS})"

    def schema(self) -> list[str]:
        return [
            "DROP TABLE IF EXISTS demo_history",
            "DROP TABLE IF EXISTS demo_accounts",
            "CREATE TABLE demo_accounts (id int PRIMARY KEY, balance int NOT NULL)",
            "INSERT INTO demo_accounts (id, balance) WITH RECURSIVE s(n) AS "
            f"(SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {ACCOUNTS}) SELECT n, 1000 FROM s",
            "CREATE TABLE demo_history (id bigint AUTO_INCREMENT PRIMARY KEY, account int, "
            "delta int, at timestamp DEFAULT CURRENT_TIMESTAMP)",
        ]

    def migration(self) -> list[str]:
        return [
            "ALTER TABLE demo_accounts ADD COLUMN balance int",           # 1060
            "INSERT INTO demo_accounts (id, balance) VALUES (1, 0)",      # 1062
            "UPDATE demo_accounts SET nope = 1 WHERE id = 2",             # 1054
            "ALTER TABLE demo_accounts_v2 RENAME TO demo_accounts",       # 1146
            "ALTER TABLE demo_accounts MODIFY balance int NOT NULL",      # succeeds
        ]


def _oltp_once(db: _Db, cur: Any, rng: random.Random) -> None:
    a = rng.randint(1, ACCOUNTS)
    p = "%s"
    db.run(cur, f"SELECT balance FROM demo_accounts WHERE id = {p}", "select", (a,))
    db.run(cur, db.begin(), "begin")
    delta = rng.randint(-5, 5)
    db.run(cur, f"UPDATE demo_accounts SET balance = balance + {p} WHERE id = {p}", "update",
           (delta, a))
    db.run(cur, f"INSERT INTO demo_history (account, delta) VALUES ({p}, {p})", "insert",
           (a, delta))
    db.run(cur, "COMMIT", "commit")


class Workload:
    """Runs the phases over `duration` seconds; `on_phase` hears each one start."""

    def __init__(self, dbs: dict[str, dict[str, Any]], duration: float = 60.0,
                 on_phase: Callable[[Phase], None] = lambda p: None,
                 stop: threading.Event | None = None, seed: int = 1):
        makers = {"postgres": _Postgres, "mysql": _MySQL}
        self.dbs = [makers[kind](params) for kind, params in dbs.items()]
        self.duration = duration
        self.on_phase = on_phase
        self.stop = stop or threading.Event()
        self.seed = seed
        self.phase: Phase | None = None
        self.timeline: list[dict[str, Any]] = []
        self.failure: BaseException | None = None

    def counts(self) -> dict[str, dict[str, Any]]:
        return {db.name: db.counts.as_dict() for db in self.dbs}

    def setup(self) -> None:
        for db in self.dbs:
            conn = db.connect()
            try:
                cur = conn.cursor()
                for sql in db.schema():
                    cur.execute(sql)
            finally:
                conn.close()
        # The set-up is not part of the story the client counts tell.
        for db in self.dbs:
            db.counts = ClientCounts()

    def run(self) -> None:
        """Every phase in turn (returns early when `stop` is set)."""
        start = time.monotonic()
        oltp_stop = threading.Event()
        threads = [self._thread(self._oltp, db, oltp_stop, i)
                   for db in self.dbs for i in range(OLTP_WORKERS)]
        try:
            per_phase = self.duration / len(PHASES)
            for phase in PHASES:
                if self.stop.is_set():
                    break
                self.phase = phase
                t0 = time.monotonic()
                self.timeline.append({"phase": phase.name, "title": phase.title,
                                      "start_s": round(t0 - start, 1)})
                self.on_phase(phase)
                getattr(self, f"_{phase.name}")(t0 + per_phase)
                self.timeline[-1]["seconds"] = round(time.monotonic() - t0, 1)
        finally:
            oltp_stop.set()
            for t in threads:
                t.join(30)
        if self.failure is not None:
            raise self.failure

    # --- phases --------------------------------------------------------------------
    def _wait(self, until: float) -> None:
        self.stop.wait(max(0.0, until - time.monotonic()))

    def _steady(self, until: float) -> None:
        self._wait(until)

    def _slow(self, until: float) -> None:
        done = threading.Event()
        threads = [self._thread(self._sleeper, db, done, i)
                   for db in self.dbs for i in range(SLEEPERS)]
        self._wait(until)
        done.set()
        for t in threads:
            t.join(30)

    def _migration(self, until: float) -> None:
        done = threading.Event()
        threads = [self._thread(self._migrator, db, done, 0) for db in self.dbs]
        self._wait(until)
        done.set()
        for t in threads:
            t.join(30)

    def _storm(self, until: float) -> None:
        done = threading.Event()
        threads = [self._thread(self._stormer, db, done, i)
                   for db in self.dbs for i in range(STORM_WORKERS)]
        self._wait(until)
        done.set()
        for t in threads:
            t.join(30)

    # --- workers ---------------------------------------------------------------------
    def _thread(self, target: Callable[..., None], db: _Db, done: threading.Event,
                n: int) -> threading.Thread:
        def guarded() -> None:
            try:
                target(db, done, n)
            except BaseException as exc:  # noqa: BLE001 - reported by run()
                if self.failure is None:
                    self.failure = exc
                self.stop.set()

        t = threading.Thread(target=guarded, name=f"{db.name}-{target.__name__}-{n}",
                             daemon=True)
        t.start()
        return t

    def _over(self, done: threading.Event) -> bool:
        return done.is_set() or self.stop.is_set()

    def _oltp(self, db: _Db, done: threading.Event, n: int) -> None:
        rng = random.Random(self.seed * 1000 + n)
        conn = db.connect()
        try:
            cur = conn.cursor()
            while not self._over(done):
                _oltp_once(db, cur, rng)
                done.wait(0.02)
        finally:
            conn.close()

    def _sleeper(self, db: _Db, done: threading.Event, n: int) -> None:
        conn = db.connect()
        try:
            cur = conn.cursor()
            while not self._over(done):
                if db.run(cur, db.sleep_sql(), "select"):
                    with db.lock:
                        db.counts.slow += 1
                done.wait(0.05)
        finally:
            conn.close()

    def _migrator(self, db: _Db, done: threading.Event, n: int) -> None:
        conn = db.connect()
        try:
            cur = conn.cursor()
            while not self._over(done):
                for sql in db.migration():
                    db.run(cur, sql, "ddl" if not sql.startswith(("INSERT", "UPDATE"))
                           else sql.split()[0].lower())
                done.wait(0.25)
        finally:
            conn.close()

    def _stormer(self, db: _Db, done: threading.Event, n: int) -> None:
        rng = random.Random(self.seed * 7919 + n)
        while not self._over(done):
            conn = db.connect()
            try:
                cur = conn.cursor()
                db.run(cur, "SELECT 1", "select")
                done.wait(rng.uniform(0.2, 0.8))   # held open a moment: sessions pile up
            finally:
                conn.close()
