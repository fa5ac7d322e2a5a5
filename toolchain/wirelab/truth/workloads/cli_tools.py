"""Command-line clients: psql, pgbench, the mariadb client, sysbench."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from .base import Observed, Target


def _tool_missing(tool: str, package: str) -> str | None:
    if shutil.which(tool) is None:
        return f"{tool} is absent: apt-get install {package}"
    return None


def _pg_env(t: Target) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(PGHOST=t.host, PGPORT=str(t.port), PGUSER=t.user, PGPASSWORD=t.password,
               PGDATABASE=t.database, PGSSLMODE="disable", PGGSSENCMODE="disable")
    return env


def _run(argv: list[str], env: dict[str, str] | None = None, stdin: str | None = None,
         timeout: float = 180) -> str:
    proc = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:2])} exited {proc.returncode}: "
                           f"{(proc.stderr or proc.stdout).strip()[-1500:]}")
    return proc.stdout


def psql_missing() -> str | None:
    return _tool_missing("psql", "postgresql-client")


def psql_run(t: Target) -> Observed:
    """Multi-statement -c (one simple Query), a script with a transaction and an
    error, \\copy in and out."""
    env = _pg_env(t)
    psql = ["psql", "-X", "-q", "-At"]
    _run([*psql, "-c", "SELECT id FROM items WHERE id <= 5; INSERT INTO sink VALUES (1, 'a'); "
          "UPDATE sink SET v = 'b' WHERE id = 1"], env)
    _run([*psql, "-v", "ON_ERROR_STOP=0", "-f", "-"], env,
         "BEGIN;\nINSERT INTO sink VALUES (2, 'b');\nDELETE FROM sink WHERE id = 1;\nCOMMIT;\n"
         "SELECT 1/0;\nSELECT count(*) FROM sink;\n")
    _run([*psql, "-c", "\\copy sink (id, v) FROM STDIN"], env,
         "".join(f"{i}\tc\n" for i in range(100, 130)))
    out = _run([*psql, "-c", "\\copy (SELECT id, v FROM items WHERE id <= 40) TO STDOUT"], env)
    return Observed(detail={"copy_out_lines": len(out.splitlines())})


def pgbench_missing() -> str | None:
    return _tool_missing("pgbench", "postgresql-contrib (Debian: postgresql-client)")


def pgbench_setup(conn: Any, direct: Target) -> None:
    _run(["pgbench", "-i", "-s", "1", "-q"], _pg_env(direct))


def pgbench_run(t: Target, mode: str) -> Observed:
    _run(["pgbench", "-n", "-c", "2", "-j", "1", "-t", "20", "-M", mode], _pg_env(t))
    return Observed()


def mariadb_cli_missing() -> str | None:
    if shutil.which("mariadb") is None and shutil.which("mysql") is None:
        return "the mariadb client is absent: apt-get install mariadb-client"
    return None


def _my_args(t: Target) -> list[str]:
    return ["--no-defaults", "--protocol=TCP", f"--host={t.host}", f"--port={t.port}",
            f"--user={t.user}", f"--password={t.password}", f"--database={t.database}",
            "--skip-ssl"]


def mariadb_cli_run(t: Target) -> Observed:
    """-e with several statements (the client splits them), a script in a transaction."""
    cli = shutil.which("mariadb") or "mysql"
    _run([cli, *_my_args(t), "-e", "SELECT id FROM items WHERE id <= 5; "
          "INSERT INTO sink VALUES (1, 'a'); UPDATE sink SET v = 'b' WHERE id = 1"])
    _run([cli, *_my_args(t)], stdin="BEGIN;\nINSERT INTO sink VALUES (2, 'b');\n"
         "DELETE FROM sink WHERE id = 1;\nCOMMIT;\nSTART TRANSACTION;\n"
         "REPLACE INTO sink VALUES (3, 'c');\nROLLBACK;\nSELECT count(*) FROM sink;\n")
    return Observed()


def sysbench_missing() -> str | None:
    return _tool_missing("sysbench", "sysbench")


def _sysbench(t: Target, test: str) -> list[str]:
    return ["sysbench", test, "--db-driver=mysql", f"--mysql-host={t.host}",
            f"--mysql-port={t.port}", f"--mysql-user={t.user}",
            f"--mysql-password={t.password}", f"--mysql-db={t.database}", "--mysql-ssl=off",
            "--tables=1", "--table-size=1000"]


def sysbench_setup(conn: Any, direct: Target) -> None:
    _run([*_sysbench(direct, "oltp_read_write"), "prepare"])


def sysbench_run(t: Target) -> Observed:
    _run([*_sysbench(t, "oltp_read_write"), "--threads=2", "--events=30", "--time=0", "run"])
    return Observed()
