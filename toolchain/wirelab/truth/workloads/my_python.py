"""MySQL/MariaDB workloads in Python: PyMySQL and mysql-connector-python (C and pure)."""

from __future__ import annotations

import importlib.util

from .base import Observed, Target


def pymysql_missing() -> str | None:
    if importlib.util.find_spec("pymysql") is None:
        return "PyMySQL is absent: pip install pymysql"
    return None


def pymysql_run(t: Target) -> Observed:
    """Multi-statement queries (CLIENT_MULTI_STATEMENTS), an unbuffered SSCursor,
    plain statements, a committed and a rolled-back transaction."""
    import pymysql
    from pymysql.constants import CLIENT

    conn = pymysql.connect(host=t.host, port=t.port, user=t.user, password=t.password,
                           database=t.database, client_flag=CLIENT.MULTI_STATEMENTS,
                           autocommit=True, ssl_disabled=True)
    rows = 0
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1; SELECT 2; INSERT INTO sink VALUES (1, 'a'); "
                        "UPDATE sink SET v = 'b' WHERE id = 1")
            while True:
                rows += len(cur.fetchall())
                if not cur.nextset():
                    break
            for i in range(5):
                cur.execute("SELECT v FROM items WHERE id = %s", (i + 1,))
                rows += len(cur.fetchall())
            cur.execute("INSERT INTO sink VALUES (%s, %s)", (2, "c"))
            cur.execute("REPLACE INTO sink VALUES (3, 'r')")
        with conn.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute("SELECT id, v FROM items")
            for _ in cur:
                rows += 1
        conn.begin()
        with conn.cursor() as cur:
            cur.execute("UPDATE items SET v = 'u' WHERE id <= 5")
        conn.commit()
        conn.begin()
        with conn.cursor() as cur:
            cur.execute("DELETE FROM sink WHERE id = 2")
        conn.rollback()
    finally:
        conn.close()
    return Observed(rows=rows)


def connector_missing(pure: bool) -> str | None:
    if importlib.util.find_spec("mysql.connector") is None:
        return "mysql-connector-python is absent: pip install mysql-connector-python"
    if pure:
        return None
    try:
        import mysql.connector.connection_cext  # noqa: F401
    except ImportError as exc:
        # 26.x wheels link OpenSSL 3.2, newer than Debian 12's 3.0; 9.x loads
        return (f"mysql-connector-python's C extension does not load ({exc}): "
                "pip install 'mysql-connector-python>=9,<10'")
    return None


def connector_run(t: Target, pure: bool) -> Observed:
    """A prepared cursor (COM_STMT_PREPARE/EXECUTE/CLOSE), commit and rollback with
    autocommit off, a plain cursor."""
    import mysql.connector

    conn = mysql.connector.connect(host=t.host, port=t.port, user=t.user, password=t.password,
                                   database=t.database, use_pure=pure, ssl_disabled=True)
    rows = 0
    try:
        cur = conn.cursor(prepared=True)
        for i in range(5):
            cur.execute("SELECT v FROM items WHERE id = %s", (i + 1,))
            rows += len(cur.fetchall())
        cur.execute("INSERT INTO sink VALUES (%s, %s)", (1, "a"))
        conn.commit()
        cur.execute("UPDATE items SET v = %s WHERE id = %s", ("z", 2))
        conn.rollback()
        cur.close()
        plain = conn.cursor()
        plain.execute("SELECT id FROM items WHERE id <= 50")
        rows += len(plain.fetchall())
        plain.execute("DELETE FROM sink WHERE id = 1")
        conn.commit()
        plain.close()
    finally:
        conn.close()
    return Observed(rows=rows)
