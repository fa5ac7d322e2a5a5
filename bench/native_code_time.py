"""How long a native module's own code runs per pgbench -S transaction.

    .venv/bin/python bench/native_code_time.py
    .venv/bin/python bench/native_code_time.py --txns 500000 --repeat 9

The native twin of `wasm_code_time.py`. The Envoy CPU that
`native_vs_wasm.py` reports per transaction mixes the module's own code with
Envoy's side of the callbacks it makes (the buffer chunks, the histogram
sample), and on this shared machine it swings by a few microseconds from run
to run. This measures the first part alone: `bench/native_code_time.c`
stands in for Envoy (it exports the callbacks a wirelab module uses, answering
from static data), dlopens a module built exactly as `wirelab build --target
native` builds it, and feeds one connection the two reads of a transaction N times.

Modules: filters/postgres, examples/lua/pg-statements on the native Lua
runtime (with the loop bench/native_vs_wasm.py appends, which makes its
metrics while the script loads), and filters/mysql fed sysbench
oltp_point_select's prepared-statement execution. Prints, per module and query mode,
nanoseconds per transaction (best of --repeat runs) and the callbacks into
Envoy per transaction. Nothing here is a test.

Two figures per row. "warm": one connection, transactions back to back, so
the module's code and data stay in the CPU caches. "cold": --conns
connections take turns and the driver writes --evict-kib of other memory
before each transaction, as the kernel, Envoy and the database do between two
reads of a connection in a real proxy; only the module's calls are timed. In
Envoy (perf samples in the module's own code under pgbench) the module costs
about four times its warm figure: the cold one is what tracks it.

    .venv/bin/python bench/native_code_time.py --so old=/tmp/libpostgres-old.so

adds a row per filters/postgres build given (same configuration), for
comparing a change side by side.

    .venv/bin/python bench/native_code_time.py --cachegrind

adds two exact figures per row that no neighbour can disturb: the
instructions the module runs per transaction and the cache lines it has to
fetch from memory per cold transaction, counted by valgrind's callgrind
(simulated 32 KiB L1s and a 2 MiB last level, cold mode, only inside the
module's read and write hooks and what they call).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from native_vs_wasm import _lua_project  # noqa: E402

from wirelab.build import build_project  # noqa: E402
from wirelab.build.zig import compile_wasm, compiler_command  # noqa: E402
from wirelab.harness.filters import plugin_config_for  # noqa: E402
from wirelab.paths import filters_dir, sdk_dir  # noqa: E402
from wirelab.project import Project  # noqa: E402
from wirelab.testing import mysql as my  # noqa: E402
from wirelab.testing import postgres as pg  # noqa: E402

HARNESS = Path(__file__).with_suffix(".c")
MODES = ("simple", "prepared")


def build_harness(out: Path) -> Path:
    argv = [*compiler_command(), "--target=x86_64-linux-gnu", "-O2", "-rdynamic",
            f"-I{sdk_dir() / 'native'}", "-o", str(out), str(HARNESS), "-ldl"]
    compile_wasm(argv, out, HARNESS.parent, [HARNESS])
    return out


def write_reads(mode: str, into: Path) -> Path:
    setup_client, setup_server, client, server = pg.pgbench_select(mode)
    into.mkdir(parents=True, exist_ok=True)
    for name, data in (("open_client", pg.startup("u", "d") + setup_client),
                       ("open_server", pg.login_reply() + setup_server),
                       ("client", client), ("server", server)):
        (into / name).write_bytes(data)
    return into


def write_mysql_reads(into: Path) -> Path:
    """sysbench oltp_point_select's transaction: one COM_STMT_EXECUTE and its row."""
    into.mkdir(parents=True, exist_ok=True)
    sql = "SELECT c FROM sbtest1 WHERE id=?"
    for name, data in (("greeting", my.greeting()),
                       ("open_client", my.handshake_response("sbtest", "sbtest")),
                       ("open_server", my.ok(seq=2)),
                       ("open2_client", my.com_stmt_prepare(sql)),
                       ("open2_server", my.prepare_ok(1, ["c"], params=1)),
                       ("client", my.com_stmt_execute(1)),
                       ("server", my.binary_resultset(["c"], [[4993]]))):
        (into / name).write_bytes(data)
    return into


CG_TXNS = 2000  # per pass; the harness makes two passes (a warm-up and one measured)


def callgrind(harness: Path, so: Path, config: Path, reads: Path, conns: int, evict_kib: int,
              out: Path) -> tuple[float, float]:
    """Instructions and memory line fetches per cold transaction inside the module's hooks."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--cachegrind needs valgrind: apt-get install valgrind")
    subprocess.run(["valgrind", "--tool=callgrind", "--cache-sim=yes", "--I1=32768,8,64",
                    "--D1=32768,8,64", "--LL=2097152,16,64",
                    "--toggle-collect=envoy_dynamic_module_on_network_filter_read",
                    "--toggle-collect=envoy_dynamic_module_on_network_filter_write",
                    f"--callgrind-out-file={out}", str(harness), str(so), str(config),
                    str(reads), str(CG_TXNS), "1", str(conns), str(evict_kib)],
                   capture_output=True, check=True, timeout=900)
    events: list[str] = []
    totals: list[int] = []
    for line in out.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            totals = [int(v) for v in line.split()[1:]]
    count = dict(zip(events, totals, strict=False))
    txns = 2 * CG_TXNS
    return count["Ir"] / txns, (count["DLmr"] + count["DLmw"] + count["ILmr"]) / txns


def module(project_dir: Path, config_file: Path) -> Path:
    project = Project.load(project_dir)
    so = build_project(project, target="native").wasm
    config = plugin_config_for(project)
    config_file.write_text(config if isinstance(config, str) else json.dumps(config))
    return so


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--txns", type=int, default=200000, help="transactions per run")
    ap.add_argument("--repeat", type=int, default=7, help="runs per measurement (best is kept)")
    ap.add_argument("--conns", type=int, default=4, help="connections taking turns (cold)")
    ap.add_argument("--evict-kib", type=int, default=4096,
                    help="memory written before each cold transaction")
    ap.add_argument("--cachegrind", action="store_true",
                    help="also count instructions and memory fetches (valgrind callgrind)")
    ap.add_argument("--so", action="append", default=[], metavar="NAME=PATH",
                    help="another filters/postgres build to time beside it (repeatable)")
    args = ap.parse_args(argv)
    cold_txns = max(1, args.txns // 20)  # each cold transaction also pays the eviction
    with tempfile.TemporaryDirectory(prefix="native-code-time-") as tmp:
        t = Path(tmp)
        harness = build_harness(t / "native_code_time")
        pg_reads = [(mode, write_reads(mode, t / f"reads-{mode}")) for mode in MODES]
        my_reads = [("prepared", write_mysql_reads(t / "reads-mysql"))]
        mods = [("filters/postgres", module(filters_dir() / "postgres", t / "pg.json"),
                 t / "pg.json", pg_reads),
                ("lua pg-statements", module(_lua_project(t), t / "lua.json"), t / "lua.json",
                 pg_reads),
                ("filters/mysql", module(filters_dir() / "mysql", t / "my.json"), t / "my.json",
                 my_reads)]
        for extra in args.so:
            name, _, path = extra.partition("=")
            mods.insert(1, (name, Path(path), t / "pg.json", pg_reads))
        print(f"pgbench -S transactions fed to native modules by a stand-in Envoy (best of "
              f"{args.repeat}: warm {args.txns} on 1 connection; cold {cold_txns} on "
              f"{args.conns}, {args.evict_kib} KiB written before each)")
        print(f"{'module':18s} {'mode':9s} {'warm ns/txn':>11s} {'cold ns/txn':>11s} "
              f"{'calls out/txn':>14s}"
              + (f" {'instr/txn':>10s} {'mem lines/txn':>14s}" if args.cachegrind else ""))

        def run(so: Path, config: Path, reads: Path, *extra: int) -> list[str]:
            return subprocess.run([str(harness), str(so), str(config), str(reads),
                                   *map(str, extra)], capture_output=True, text=True,
                                  timeout=900, check=True).stdout.split()

        for name, so, config, reads_by_mode in mods:
            for mode, reads in reads_by_mode:
                warm, calls = run(so, config, reads, args.txns, args.repeat)
                cold, _ = run(so, config, reads, cold_txns, args.repeat, args.conns,
                              args.evict_kib)
                counted = ""
                if args.cachegrind:
                    instr, lines = callgrind(harness, so, config, reads, args.conns,
                                             args.evict_kib, t / "callgrind.out")
                    counted = f" {instr:10.0f} {lines:14.1f}"
                print(f"{name:18s} {mode:9s} {float(warm):11.0f} {float(cold):11.0f} "
                      f"{int(calls):14d}{counted}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
