"""Soak: bulk transfers and connection churn through real Envoy with the
shipped filters (filters/postgres, filters/mysql as Wasm), printing figures.

    .venv/bin/python bench/soak.py                       # what `make soak` runs
    .venv/bin/python bench/soak.py --only bulk --pg-mib 256
    .venv/bin/python bench/soak.py --only churn --connections 20000 --checkpoint 2000
    .venv/bin/python bench/soak.py --lua ...   # the Lua runtime (two examples) too

Bulk: PostgreSQL COPY TO STDOUT and COPY FROM STDIN of --pg-mib each (default
1024), MySQL result rows and LOAD DATA LOCAL INFILE of --my-mib each (default
64) plus rows of 17, 20 and 33 MiB and a 20 MiB query (payloads over one
16 MiB packet). Each transfer runs straight to the server and through Envoy;
the sha256 of what the client received (or the server's digest of what it
stored) must match, and the filter's copy_bytes / rows / bytes counters must
equal what moved.

Churn: --connections short connections per filter (connect, SELECT 1, close),
with Envoy's RSS and the Wasm VMs' resident memory after the first
--checkpoint connections and after all of them.

Figures, not assertions about time: the exit status is 1 only when bytes,
counters or connection counts disagree (or memory drifts more than 5 %).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wirelab.envoy.stats import server_bytes_window
from wirelab.harness import Lab
from wirelab.paths import examples_dir
from wirelab.testing import bulk, churn

ROOT = Path(__file__).resolve().parents[1]
PG = "postgres.soak."
MY = "mysql.soak."
problems: list[str] = []


def check(ok: bool, what: str) -> str:
    if not ok:
        problems.append(what)
    return "ok" if ok else "MISMATCH"


def settle(lab: Any, prefix: str) -> dict[str, int]:
    lab.stats.wait_for(prefix + "sessions_active", 0, timeout=120)
    return lab.delta()


def memory_line(lab: Any) -> str:
    m = bulk.envoy_memory(lab)
    return f"{m.mib()}, wasm {churn.wasm_memory(lab.envoy.pid) / bulk.MIB:.1f} MiB"


def byte_counters(delta: dict[str, int], prefix: str, listener: str) -> bool:
    client = delta.get(prefix + "bytes.direction=client", 0)
    low, high = server_bytes_window(delta, listener)
    server = delta.get(prefix + "bytes.direction=server", 0)
    return client == delta.get(f"tcp.{listener}.downstream_cx_rx_bytes_total") and \
        low <= server <= high


def rate(t: bulk.Transfer) -> str:
    return f"{t.bytes / bulk.MIB / max(t.seconds, 1e-9):.0f} MiB/s"


def soak_pg(lab: Any, mib: int) -> None:
    direct_info, via_info = lab.pg_conninfo(direct=True), lab.pg_conninfo()
    print(f"\nPostgreSQL COPY, {mib} MiB each way; Envoy before: {memory_line(lab)}")
    direct = bulk.pg_copy_out(direct_info, mib)
    lab.mark()
    via = bulk.pg_copy_out(via_info, mib)
    d = settle(lab, PG)
    print(f"  COPY TO STDOUT: {via.bytes:,} bytes, {via.rows:,} rows; direct {rate(direct)}, "
          f"via Envoy {rate(via)}; sha256 {check(via.same_data(direct), 'pg copy out sha256')}; "
          f"copy_bytes.server {d.get(PG + 'copy_bytes.direction=server'):,} "
          f"{check(d.get(PG + 'copy_bytes.direction=server') == via.bytes, 'pg copy_bytes out')}; "
          f"bytes {check(byte_counters(d, PG, 'postgres'), 'pg bytes out')}")
    print(f"  Envoy after COPY TO: {memory_line(lab)}")
    direct = bulk.pg_copy_in(direct_info, "soak_direct", mib)
    stored_direct = bulk.pg_table_digest(direct_info, "soak_direct")
    lab.mark()
    via = bulk.pg_copy_in(via_info, "soak_via", mib)
    d = settle(lab, PG)
    stored = bulk.pg_table_digest(direct_info, "soak_via")
    print(f"  COPY FROM STDIN: {via.bytes:,} bytes, {via.rows:,} rows; direct {rate(direct)}, "
          f"via Envoy {rate(via)}; stored digest "
          f"{check(stored == stored_direct and via.same_data(direct), 'pg copy in digest')}; "
          f"copy_bytes.client {d.get(PG + 'copy_bytes.direction=client'):,} "
          f"{check(d.get(PG + 'copy_bytes.direction=client') == via.bytes, 'pg copy_bytes in')}; "
          f"bytes {check(byte_counters(d, PG, 'postgres'), 'pg bytes in')}")
    print(f"  Envoy after COPY FROM: {memory_line(lab)}")


def soak_mysql(lab: Any, mib: int, tmp: Path) -> None:
    direct_args, via_args = lab.mysql_cli_args(direct=True), lab.mysql_cli_args()
    bulk.mysql_allow_big_packets(direct_args)
    print(f"\nMySQL, {mib} MiB of rows and of LOAD DATA; Envoy before: {memory_line(lab)}")
    sizes = [17, 20, 33]
    direct_rows = bulk.mysql_select_rows(direct_args, mib)
    direct_big = bulk.mysql_select_big(direct_args, sizes)
    lab.mark()
    rows = bulk.mysql_select_rows(via_args, mib)
    big = bulk.mysql_select_big(via_args, sizes)
    d = settle(lab, MY)
    print(f"  result rows: {rows.bytes:,} bytes, {rows.rows:,} rows, direct {rate(direct_rows)}, "
          f"via Envoy {rate(rows)}; sha256 {check(rows.same_data(direct_rows), 'mysql rows')}")
    print(f"  rows of {sizes} MiB: {big.bytes:,} bytes; sha256 "
          f"{check(big.same_data(direct_big), 'mysql big rows')}; rows_returned "
          f"{d.get(MY + 'rows_returned'):,} "
          f"{check(d.get(MY + 'rows_returned') == rows.rows + len(sizes), 'mysql rows_returned')}"
          f"; bytes {check(byte_counters(d, MY, 'mysql'), 'mysql bytes out')}; decoder_errors "
          f"{d.get(MY + 'decoder_errors', 0)}, protocol_errors {d.get(MY + 'protocol_errors', 0)}")
    check(d.get(MY + "decoder_errors", 0) == d.get(MY + "protocol_errors", 0) == 0, "mysql errors")
    infile = tmp / "rows.tsv"
    size = bulk.write_infile(infile, mib)
    sql = tmp / "big.sql"
    bulk.mysql_load_data(direct_args, infile, "soak_direct")
    bulk.write_big_insert(sql, "soak_big_direct", 20)
    bulk.mysql_script(direct_args, sql)
    lab.mark()
    start = time.perf_counter()
    bulk.mysql_load_data(via_args, infile, "soak_via")
    seconds = time.perf_counter() - start
    bulk.write_big_insert(sql, "soak_big_via", 20)
    bulk.mysql_script(via_args, sql)
    d = settle(lab, MY)
    same = bulk.mysql_table_digest(direct_args, "soak_via") == \
        bulk.mysql_table_digest(direct_args, "soak_direct")
    same_big = bulk.mysql_table_digest(direct_args, "soak_big_via") == \
        bulk.mysql_table_digest(direct_args, "soak_big_direct")
    affected = d.get(MY + "rows_affected")
    print(f"  LOAD DATA LOCAL INFILE: {size:,} bytes in {seconds:.1f} s via Envoy; stored digest "
          f"{check(same, 'mysql load data')}; 20 MiB INSERT {check(same_big, 'mysql big insert')}"
          f"; rows_affected {affected:,} "
          f"{check(affected == bulk.mysql_rows_for(mib) + 1, 'mysql rows_affected')}; "
          f"local_infile_requests {d.get(MY + 'local_infile_requests')}; bytes "
          f"{check(byte_counters(d, MY, 'mysql'), 'mysql bytes in')}")
    print(f"  Envoy after: {memory_line(lab)}")


def churn_run(lab: Any, kind: str, total: int, checkpoint: int, tmp: Path) -> None:
    prefix = PG if kind == "postgres" else MY

    def run(n: int) -> churn.Churn:
        if kind == "postgres":
            return churn.pg_churn(lab.pg_env(), n, clients=4, workdir=tmp)
        return churn.mysql_churn(lab.mysql_kwargs(), n, threads=4)

    pid = lab.envoy.pid
    import psutil

    proc = psutil.Process(pid)
    lab.mark()
    first = run(checkpoint)
    lab.stats.wait_for(prefix + "sessions_active", 0, timeout=120)
    rss1, wasm1 = proc.memory_info().rss, churn.wasm_memory(pid)
    rest = run(total - checkpoint)
    lab.stats.wait_for(prefix + "sessions_active", 0, timeout=120)
    rss2, wasm2 = proc.memory_info().rss, churn.wasm_memory(pid)
    d = lab.delta()
    done = first.connections + rest.connections
    failed = first.failed + rest.failed
    drift_rss = (rss2 - rss1) / rss1 * 100
    drift_wasm = (wasm2 - wasm1) / wasm1 * 100 if wasm1 else 0.0
    secs = first.seconds + rest.seconds
    print(f"  {kind}: {done:,} connections in {secs:.0f} s ({done / secs:.0f}/s), failed {failed} "
          f"{check(failed == 0 and done == total, kind + ' churn failures')}; sessions "
          f"{d.get(prefix + 'sessions'):,}, tcp_proxy downstream_cx_total "
          f"{d.get(f'tcp.{kind}.downstream_cx_total'):,}, sessions_active "
          f"{lab.stats.snapshot().value(prefix + 'sessions_active')}")
    print(f"    Envoy RSS after {checkpoint:,}: {rss1 / bulk.MIB:.1f} MiB, after {total:,}: "
          f"{rss2 / bulk.MIB:.1f} MiB ({drift_rss:+.2f} %) "
          f"{check(abs(drift_rss) <= 5, kind + ' rss drift')}; Wasm memory "
          f"{wasm1 / bulk.MIB:.1f} -> {wasm2 / bulk.MIB:.1f} MiB ({drift_wasm:+.2f} %) "
          f"{check(abs(drift_wasm) <= 5, kind + ' wasm drift')}")


def run(lab: Any, args: argparse.Namespace, tmp: Path) -> None:
    bulk.pg_copy_out(lab.pg_conninfo(), 1)  # warm-up: the VMs, the first connection
    bulk.mysql_select_rows(lab.mysql_cli_args(), 1)
    names = ", ".join(f.spec.name for f in lab.filters)
    print(f"Envoy with {names} (Wasm), idle: {memory_line(lab)}")
    if args.only in (None, "bulk"):
        soak_pg(lab, args.pg_mib)
        soak_mysql(lab, args.my_mib, tmp)
    if args.only in (None, "churn"):
        print(f"\nChurn: {args.connections:,} connections per listener, "
              "connect + SELECT 1 + close")
        churn_run(lab, "postgres", args.connections, args.checkpoint, tmp)
        churn_run(lab, "mysql", args.connections, args.checkpoint, tmp)
    print(f"\nEnvoy at the end: {memory_line(lab)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--pg-mib", type=int, default=1024)
    ap.add_argument("--my-mib", type=int, default=64)
    ap.add_argument("--connections", type=int, default=100_000)
    ap.add_argument("--checkpoint", type=int, default=10_000)
    ap.add_argument("--only", choices=["bulk", "churn"])
    ap.add_argument("--lua", action="store_true",
                    help="add the Lua runtime: examples/lua/pg-statements and mysql-slow-queries")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="wirelab-soak-") as tmpdir:
        tmp = Path(tmpdir)
        filters = [ROOT / "filters" / "postgres", ROOT / "filters" / "mysql"]
        if args.lua:
            for name in ("pg-statements", "mysql-slow-queries"):
                shutil.copytree(examples_dir() / "lua" / name, tmp / name,
                                ignore=shutil.ignore_patterns("build"))
                filters.append(tmp / name)
        with Lab(postgres=True, mysql=True, filters=filters,
                 filter_config={"stat_prefix": "soak"}) as lab:
            run(lab, args, tmp)
    if problems:
        print("\nPROBLEMS: " + "; ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
