"""Connection churn: many short connections (connect, one query, close), for
tests/e2e/test_connection_churn.py and bench/soak.py.

PostgreSQL's churn is `pgbench -C` (a new connection per transaction, a
one-statement script); MySQL's is pymysql in a few threads. Both return how
many connections completed and how many failed; the server's own session
counters give the truth to compare the filters' counts with.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Churn:
    connections: int  # completed: connected, queried, closed
    failed: int
    seconds: float


def pg_churn(env: dict[str, str], connections: int, clients: int, workdir: Path) -> Churn:
    """`pgbench -C`: `connections` connections, each one SELECT, over `clients`
    concurrent clients. `env` as from Lab.pg_env()."""
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        raise FileNotFoundError("pgbench is not installed: apt-get install postgresql-contrib")
    if connections % clients:
        raise ValueError(f"{connections} connections do not divide among {clients} clients")
    script = workdir / "one_select.sql"
    script.write_text("SELECT 1;\n")
    env = {**env, "PGSSLMODE": "disable", "PGGSSENCMODE": "disable"}
    start = time.perf_counter()
    proc = subprocess.run(
        [pgbench, "-n", "-C", "-c", str(clients), "-j", str(min(clients, 2)),
         "-t", str(connections // clients), "-f", str(script)],
        env=env, capture_output=True, text=True, timeout=3600)
    out = proc.stdout + proc.stderr
    done = re.search(r"number of transactions actually processed: (\d+)", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if proc.returncode != 0 or done is None:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {out.strip()[-1500:]}")
    n = int(done.group(1))
    return Churn(n, (connections - n) + (int(failed.group(1)) if failed else 0),
                 time.perf_counter() - start)


def mysql_churn(kwargs: dict[str, Any], connections: int, threads: int) -> Churn:
    """pymysql: `connections` connections, each `SELECT 1`, over `threads` threads.
    Without TLS (`ssl_disabled`): the filter must see inside, and pymysql would
    otherwise load the system's CA store for every connection (~100 ms)."""
    import pymysql

    done, failed = [0] * threads, [0] * threads
    errors: list[str] = []

    def work(k: int, count: int) -> None:
        for _ in range(count):
            try:
                conn = pymysql.connect(**kwargs, connect_timeout=30, ssl_disabled=True)
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT 1")
                        if cur.fetchone() != (1,):
                            raise RuntimeError("SELECT 1 did not return 1")
                finally:
                    conn.close()
                done[k] += 1
            except Exception as exc:  # counted: a churn run reports failures, it does not stop
                failed[k] += 1
                if len(errors) < 5:
                    errors.append(repr(exc))

    share = [connections // threads + (1 if i < connections % threads else 0)
             for i in range(threads)]
    start = time.perf_counter()
    pool = [threading.Thread(target=work, args=(i, share[i])) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        print("mysql churn errors:", *errors, sep="\n  ")
    return Churn(sum(done), sum(failed), time.perf_counter() - start)


def _mappings(pid: int) -> list[tuple[int, int, str, int]]:
    """(start, end, permissions, resident bytes) of every mapping of `pid`."""
    out: list[tuple[int, int, str, int]] = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if len(head) >= 2 and "-" in head[0] and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                out.append((lo, hi, head[1], 0))
            elif line.startswith("Rss:") and out:
                lo, hi, perms, _ = out[-1]
                out[-1] = (lo, hi, perms, int(head[1]) * 1024)
    return out


def wasm_memory(pid: int) -> int:
    """Resident bytes of the process's Wasm linear memories. V8 reserves each
    memory with its guard region as one inaccessible mapping of several GiB
    and makes the pages in use accessible from its start, which splits off a
    read-write mapping that ends where the rest of the reservation begins: the
    resident pages of those read-write mappings are the VMs' memory."""
    maps = _mappings(pid)
    ends = {hi: (perms, rss) for lo, hi, perms, rss in maps}
    total = 0
    for lo, hi, perms, _ in maps:
        if perms == "---p" and hi - lo >= 4 << 30 and lo in ends:
            before_perms, rss = ends[lo]
            if before_perms.startswith("rw"):
                total += rss
    return total
