"""Bulk transfers for the byte-exactness checks (tests/e2e/test_bulk_transfer.py,
bench/soak.py): each function moves a known, deterministic volume of data
through one connection and returns what the client saw (bytes and sha256), so
a run through Envoy can be compared with the same run straight to the server.

    out = pg_copy_out(lab.pg_conninfo(), mib=64)            # server -> client
    inn = pg_copy_in(lab.pg_conninfo(), "bulk_in", mib=64)  # client -> server
    assert pg_table_digest(direct, "bulk_in") == ...

MySQL goes through the `mariadb` command-line client (a C client that streams
rows and handles packets over 16 MiB, and LOAD DATA LOCAL INFILE).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
# One COPY row of the generated data: the row number, a tab, 30 md5 digests.
PG_ROW_SQL = "SELECT i, repeat(md5(i::text), 30) FROM generate_series(1, {n}) AS s(i)"
PG_ROW_BYTES = 1 + 1 + 960 + 1  # at least: a row number, a tab, the text, a newline
MYSQL_ROW_BYTES = 1 + 1 + 992 + 1  # the same in the client's output (31 digests)


@dataclass(frozen=True)
class Transfer:
    """What a client received (or sent): byte count, sha256, rows, seconds."""

    bytes: int
    sha256: str
    rows: int = 0
    seconds: float = 0.0

    def same_data(self, other: Transfer) -> bool:
        return (self.bytes, self.sha256, self.rows) == (other.bytes, other.sha256, other.rows)


def _plain(conninfo: dict[str, Any]) -> dict[str, Any]:
    # The filter must see inside: no TLS, no GSS encryption.
    return {**conninfo, "sslmode": "disable", "gssencmode": "disable"}


# ---- PostgreSQL -----------------------------------------------------------------


def pg_rows_for(mib: int) -> int:
    return max(1, -(-mib * MIB // PG_ROW_BYTES))  # enough rows for >= mib MiB


def pg_copy_out(conninfo: dict[str, Any], mib: int) -> Transfer:
    """COPY (generated rows) TO STDOUT: the CopyData payloads the client got."""
    import psycopg

    n = pg_rows_for(mib)
    h, total, rows = hashlib.sha256(), 0, 0
    start = time.perf_counter()
    with psycopg.connect(**_plain(conninfo), autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ({PG_ROW_SQL.format(n=n)}) TO STDOUT") as copy:
            for block in copy:
                h.update(block)
                total += len(block)
        rows = cur.rowcount
    return Transfer(total, h.hexdigest(), rows, time.perf_counter() - start)


def pg_lines(mib: int, block_rows: int = 256) -> Iterator[bytes]:
    """The COPY text the client sends: deterministic lines of ~1 KB, in blocks."""
    n = pg_rows_for(mib)
    for first in range(1, n + 1, block_rows):
        last = min(n, first + block_rows - 1)
        yield b"".join(b"%d\t%s\n" % (i, hashlib.md5(b"%d" % i).hexdigest().encode() * 30)
                       for i in range(first, last + 1))


def pg_copy_in(conninfo: dict[str, Any], table: str, mib: int) -> Transfer:
    """COPY table FROM STDIN with pg_lines(mib): what the client sent."""
    import psycopg

    h, total = hashlib.sha256(), 0
    start = time.perf_counter()
    with psycopg.connect(**_plain(conninfo), autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS {table}")
        cur.execute(f"CREATE UNLOGGED TABLE {table} (i int, v text)")
        with cur.copy(f"COPY {table} FROM STDIN") as copy:
            for block in pg_lines(mib):
                copy.write(block)
                h.update(block)
                total += len(block)
        rows = cur.rowcount
    return Transfer(total, h.hexdigest(), rows, time.perf_counter() - start)


def pg_table_digest(conninfo: dict[str, Any], table: str, drop: bool = True) -> tuple[int, ...]:
    """What the server stored: rows, the sum of row numbers and of text lengths,
    and an order-independent sum of md5-derived values (computed by the server)."""
    import psycopg

    with psycopg.connect(**_plain(conninfo), autocommit=True) as conn:
        row = conn.execute(
            f"SELECT count(*), sum(i), sum(length(v)), "
            f"sum(('x' || substr(md5(i::text || v), 1, 12))::bit(48)::bigint) FROM {table}"
        ).fetchone()
        if drop:
            conn.execute(f"DROP TABLE {table}")
    return tuple(int(x or 0) for x in row)


# ---- MySQL / MariaDB --------------------------------------------------------------


def mariadb_client() -> str:
    found = shutil.which("mariadb") or shutil.which("mysql")
    if not found:
        raise FileNotFoundError("the mariadb client is not installed: "
                                "apt-get install mariadb-client")
    return found


def _cli(args: list[str], sql: str | None = None, stdin: Path | None = None,
         hash_output: bool = True, timeout: float = 1800) -> Transfer:
    """Runs the mariadb client; hashes its stdout as it streams."""
    cmd = [mariadb_client(), *args, "--batch", "--raw", "--quick", "--skip-column-names",
           "--max-allowed-packet=1G", "--local-infile=1"]
    if sql is not None:
        cmd += ["-e", sql]
    h, total, lines = hashlib.sha256(), 0, 0
    start = time.perf_counter()
    with (open(stdin, "rb") if stdin else open(os.devnull, "rb")) as inp:
        proc = subprocess.Popen(cmd, stdin=inp, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        for chunk in iter(lambda: proc.stdout.read(1 << 20), b""):
            if hash_output:
                h.update(chunk)
            total += len(chunk)
            lines += chunk.count(b"\n")
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        rc = proc.wait(timeout=timeout)
    if rc != 0:
        raise RuntimeError(f"mariadb client failed ({rc}): {err.strip()[-500:]}")
    return Transfer(total, h.hexdigest(), lines, time.perf_counter() - start)


def mysql_rows_for(mib: int) -> int:
    return max(1, -(-mib * MIB // MYSQL_ROW_BYTES))


def mysql_select_rows(cli_args: list[str], mib: int) -> Transfer:
    """A result set of ~`mib` MiB of generated rows (MariaDB's sequence engine)."""
    n = mysql_rows_for(mib)
    sql = (f"SELECT seq, REPEAT(MD5(seq), 31) "
           f"FROM seq_1_to_{n}")
    return _cli(cli_args, sql)


def mysql_select_big(cli_args: list[str], sizes_mib: list[int]) -> Transfer:
    """One row per size, each a value of that many MiB: rows over 16 MiB travel
    as several packets (0xffffff-byte payloads and a continuation)."""
    parts = " UNION ALL ".join(
        f"SELECT {i}, REPEAT(CHAR(65 + {i}), {size * MIB + i})" for i, size in enumerate(sizes_mib))
    return _cli(cli_args, parts)


def write_big_insert(path: Path, table: str, size_mib: int) -> int:
    """A SQL file whose INSERT statement is one COM_QUERY of more than
    `size_mib` MiB (several packets from the client). Returns its byte count."""
    value = (b"0123456789abcdef" * (size_mib * MIB // 16 + 1))[:size_mib * MIB + 7]
    sql = (f"CREATE TABLE IF NOT EXISTS {table} (id INT, v LONGBLOB);\n"
           f"INSERT INTO {table} VALUES (1, '").encode() + value + b"');\n"
    path.write_bytes(sql)
    return len(sql)


def write_infile(path: Path, mib: int) -> int:
    """A tab-separated file of ~1 KB lines for LOAD DATA LOCAL INFILE."""
    n = mysql_rows_for(mib)
    with path.open("wb") as f:
        for first in range(1, n + 1, 1024):
            f.write(b"".join(b"%d\t%s\n" % (i, hashlib.md5(b"%d" % i).hexdigest().encode() * 31)
                             for i in range(first, min(n, first + 1023) + 1)))
    return path.stat().st_size


def mysql_script(cli_args: list[str], path: Path) -> Transfer:
    """Runs the SQL file `path` (e.g. write_big_insert's) through the client."""
    return _cli(cli_args, stdin=path)


def mysql_load_data(cli_args: list[str], path: Path, table: str) -> Transfer:
    sql = (f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id INT, v TEXT) ENGINE=InnoDB; "
           f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table}")
    return _cli(cli_args, sql)


def mysql_table_digest(cli_args: list[str], table: str, column: str = "v",
                       drop: bool = True) -> tuple[int, ...]:
    """Rows, total length and a server-side CRC sum of `table`."""
    sql = (f"SELECT COUNT(*), COALESCE(SUM(LENGTH({column})), 0), "
           f"COALESCE(SUM(CRC32({column})), 0) FROM {table}")
    if drop:
        sql += f"; DROP TABLE {table}"
    out = subprocess.run([mariadb_client(), *cli_args, "--batch", "--skip-column-names", "-e", sql],
                         capture_output=True, text=True, check=True, timeout=600).stdout
    return tuple(int(x) for x in out.split())


def mysql_allow_big_packets(cli_args: list[str], size: int = 1 << 30) -> None:
    """Raises the server's max_allowed_packet (new sessions get it)."""
    subprocess.run([mariadb_client(), *cli_args, "-e", f"SET GLOBAL max_allowed_packet = {size}"],
                   capture_output=True, check=True, timeout=60)


# ---- Envoy's memory ---------------------------------------------------------------


@dataclass(frozen=True)
class EnvoyMemory:
    rss: int        # resident set of the Envoy process (Wasm VMs' linear memory included)
    allocated: int  # server.memory_allocated: bytes tcmalloc has handed out
    heap: int       # server.memory_heap_size

    def mib(self) -> str:
        return (f"rss {self.rss / MIB:.1f} MiB, allocated {self.allocated / MIB:.1f} MiB, "
                f"heap {self.heap / MIB:.1f} MiB")


def envoy_memory(lab: Any) -> EnvoyMemory:
    import psutil

    snap = lab.stats.snapshot()
    return EnvoyMemory(psutil.Process(lab.envoy.pid).memory_info().rss,
                       int(snap.value("server.memory_allocated") or 0),
                       int(snap.value("server.memory_heap_size") or 0))
