"""PostgreSQL workloads in Python: psycopg 3 and asyncpg."""

from __future__ import annotations

import asyncio
import importlib.util

from .base import Observed, Target


def _absent(module: str, pip: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{module} is absent: pip install '{pip}'"
    return None


def psycopg_missing() -> str | None:
    return _absent("psycopg", "psycopg[binary]")


def psycopg_run(t: Target) -> Observed:
    """Autocommit on and off, a pipeline, COPY FROM STDIN, executemany, named
    (server-side) cursors read to the end and closed early, an error."""
    import psycopg

    info = {"host": t.host, "port": t.port, "user": t.user, "password": t.password,
            "dbname": t.database, "sslmode": "disable", "gssencmode": "disable"}
    rows = 0
    with psycopg.connect(**info, autocommit=True) as conn:
        rows += len(conn.execute("SELECT id, v FROM items WHERE id <= %s", (10,)).fetchall())
        conn.execute("INSERT INTO sink VALUES (%s, %s)", (1, "a"))
        with conn.pipeline():
            for i in range(5):
                conn.execute("INSERT INTO sink VALUES (%s, %s)", (100 + i, "p"))
            cur = conn.execute("SELECT count(*) FROM sink")
        rows += len(cur.fetchall())
        with conn.cursor().copy("COPY sink (id, v) FROM STDIN") as cp:
            for i in range(20):
                cp.write_row((300 + i, "c"))
        conn.cursor().executemany("INSERT INTO sink VALUES (%s, %s)",
                                  [(400 + i, "m") for i in range(10)])
        try:
            conn.execute("SELECT 1/0")
        except psycopg.errors.DivisionByZero:
            pass
        with conn.transaction(), conn.cursor(name="all_items") as named:
            named.itersize = 50
            for _ in named.execute("SELECT id, v FROM items"):
                rows += 1
    with psycopg.connect(**info) as conn:  # autocommit off: psycopg sends BEGIN
        conn.execute("UPDATE items SET v = 'u' WHERE id <= 5")
        rows += len(conn.execute("SELECT v FROM items WHERE id = 1").fetchall())
        conn.commit()
        conn.execute("DELETE FROM sink WHERE id = 1")
        conn.rollback()
        with conn.cursor(name="early") as named:
            named.execute("SELECT id FROM items ORDER BY id")
            rows += len(named.fetchmany(20))
        conn.commit()
    return Observed(rows=rows)


def asyncpg_missing() -> str | None:
    return _absent("asyncpg", "asyncpg")


def asyncpg_run(t: Target) -> Observed:
    """A prepared statement's fetchval/fetchrow (Executes with a row limit), a cursor
    with prefetch read to the end and one closed early, copy_records_to_table,
    executemany, fetch."""
    return asyncio.run(_asyncpg(t))


async def _asyncpg(t: Target) -> Observed:
    import asyncpg

    conn = await asyncpg.connect(host=t.host, port=t.port, user=t.user, password=t.password,
                                 database=t.database, ssl=False)
    rows = 0
    try:
        stmt = await conn.prepare("SELECT v FROM items WHERE id = $1")
        for i in range(1, 6):
            await stmt.fetchval(i)
            rows += 1
        for i in range(6, 8):
            await stmt.fetchrow(i)
            rows += 1
        async with conn.transaction():
            async for _ in conn.cursor("SELECT id FROM items", prefetch=50):
                rows += 1
        async with conn.transaction():
            cur = await conn.cursor("SELECT id FROM items WHERE id > $1", 100)
            rows += len(await cur.fetch(30))
        await conn.copy_records_to_table("sink", records=[(500 + i, "c") for i in range(20)],
                                         columns=["id", "v"])
        await conn.executemany("INSERT INTO sink VALUES ($1, $2)",
                               [(600 + i, "e") for i in range(5)])
        rows += len(await conn.fetch("SELECT id FROM items WHERE id <= $1", 10))
        await conn.execute("UPDATE sink SET v = 'x' WHERE id >= 600")
    finally:
        await conn.close()
    return Observed(rows=rows)
