"""MariaDB's (or MySQL's) own figures: `SHOW GLOBAL STATUS` deltas on a direct connection.

`Com_*` count statements by kind and `Rows_sent` the rows sent to clients. Reading
the status moves `Com_show_status` and `Rows_sent` itself: the rows one reading
adds are measured (two reads in a row) and taken off.
"""

from __future__ import annotations

from typing import Any

from .figures import MY_VERBS
from .workloads.base import Target

_COM = {**{v: f"Com_{v}" for v in MY_VERBS}, "stmt_prepare": "Com_stmt_prepare",
        "stmt_execute": "Com_stmt_execute", "stmt_close": "Com_stmt_close"}


class MyTruth:
    def __init__(self, server: Any):
        self.server = server
        self.db = ""
        self._before: dict[str, int] = {}
        self.not_comparable: dict[str, str] = {}
        first = self._status()
        self.read_rows = self._status()["Rows_sent"] - first["Rows_sent"]

    def close(self) -> None:
        pass

    def _status(self) -> dict[str, int]:
        import pymysql

        conn = pymysql.connect(**self.server.connect_kwargs())
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS WHERE Variable_name LIKE 'Com\\_%' "
                            "OR Variable_name = 'Rows_sent'")
                return {k: int(v) for k, v in cur.fetchall()}
        finally:
            conn.close()

    def prepare(self, name: str, setup) -> Target:
        import pymysql

        self.db = f"truth_{name.replace('-', '_')}"
        s = self.server
        conn = pymysql.connect(**s.connect_kwargs(), autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.db}`")
                cur.execute(f"CREATE DATABASE `{self.db}`")
                cur.execute(f"USE `{self.db}`")
                cur.execute("CREATE TABLE items (id INT PRIMARY KEY, v VARCHAR(40))")
                cur.execute("INSERT INTO items WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL "
                            "SELECT n + 1 FROM s WHERE n < 300) SELECT n, CONCAT('v', n) FROM s")
                cur.execute("CREATE TABLE sink (id INT, v VARCHAR(40))")
            direct = Target(s.host, s.port, s.user, s.password, self.db)
            if setup is not None:
                setup(conn, direct)
        finally:
            conn.close()
        return direct

    def begin(self) -> None:
        self._before = self._status()

    def end(self) -> dict[str, int]:
        after = self._status()
        out = {fig: after.get(com, 0) - self._before.get(com, 0) for fig, com in _COM.items()}
        out["rows_returned"] = after["Rows_sent"] - self._before["Rows_sent"] - self.read_rows
        out["decoder_errors"] = 0
        return out
