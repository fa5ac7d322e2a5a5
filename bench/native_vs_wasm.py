"""The same filters as Wasm and as native Envoy modules, side by side in one run.

    .venv/bin/python bench/native_vs_wasm.py                          # every load, 7 rounds
    .venv/bin/python bench/native_vs_wasm.py --rounds 9 --seconds 5
    .venv/bin/python bench/native_vs_wasm.py --only sysbench

Per load, one server and one Envoy (`--concurrency 1`, same bootstrap) per
variant, all running for the whole measurement; only the filter chain differs:

    pgbench -S -M simple, then -M prepared (PostgreSQL):
        tcp_proxy         tcp_proxy alone
        sdk floor native  examples/bytes-counter native: the SDK's own cost per
                          read (enter, chunk list, one counter), no decoder
        postgres wasm     filters/postgres, build/postgres.wasm
        postgres native   filters/postgres, build/libpostgres.so
        lua wasm          examples/lua/pg-statements on the Wasm Lua runtime
        lua native        the same script on the native Lua runtime
    sysbench oltp_point_select (MariaDB):
        tcp_proxy, sdk floor native, mysql wasm, mysql native

Every round runs the load once against each Envoy, the order rotating every
round (bench/ratio.py's `alternate`, the runner of every bench here), after one
warm-up round. Per variant: the median over rounds of the Envoy process's user
CPU per transaction (/proc utime via psutil, divided by the transactions the
load reports), what that adds to tcp_proxy's ("added": the difference of the
medians; "paired": the median of the differences within each round, which
cancels load that drifts over minutes), the median TPS and its ratio to
tcp_proxy's. User CPU per transaction is the steady figure on a shared machine;
single TPS ratios swing by +-10 % here. Targets (issue 14): native postgres and
native mysql add at most 1 us, native Lua at most 3 us.

The Lua rows run pg-statements with one loop appended that makes its per-type
metrics while the script loads (both builds get it): Envoy 1.40 lets a native
module define metrics only then, and the example makes them on first use.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ratio import Run, alternate, pgbench_count, sysbench_count  # noqa: E402

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec  # noqa: E402
from wirelab.harness.filters import resolve_filter  # noqa: E402
from wirelab.paths import examples_dir, filters_dir  # noqa: E402

# Added Envoy user CPU per transaction each native variant must stay under (us).
TARGETS = {"postgres native": 1.0, "mysql native": 1.0, "lua native": 3.0}
# The verbs of API.md's CommandComplete: pg-statements' `statements` and
# `statement_latency_us` tag values.
PG_VERBS = ("select", "insert", "update", "delete", "merge", "copy", "fetch", "move", "begin",
            "commit", "rollback", "savepoint", "ddl", "prepared_txn", "other")
DEFINE_AT_LOAD = (
    "\n-- bench/native_vs_wasm.py: make the per-type metrics while the script loads\n"
    f"for _, verb in ipairs({{{', '.join(repr(v).replace(chr(39), chr(34)) for v in PG_VERBS)}}})"
    " do\n  local _ = statements[verb], latency[verb]\nend\n")


@dataclass
class Row:
    variant: str
    user_us: float
    tps: float
    paired: float = 0.0  # median over rounds of (this - tcp_proxy in the same round), us


def _spec(project: Path, target: str) -> FilterSpec:
    return resolve_filter(project, build_target=target).spec


def _lua_project(tmp: Path) -> Path:
    """examples/lua/pg-statements with its metrics made at load time."""
    dst = tmp / "pg-statements"
    shutil.copytree(examples_dir() / "lua" / "pg-statements", dst,
                    ignore=shutil.ignore_patterns("build"))
    script = dst / "filter.lua"
    script.write_text(script.read_text() + DEFINE_AT_LOAD)
    return dst


def _chosen(variants: dict[str, list[FilterSpec]], only: list[str] | None
            ) -> dict[str, list[FilterSpec]]:
    """tcp_proxy and the variants asked for (all without --variant)."""
    return {name: specs for name, specs in variants.items()
            if not only or name == "tcp_proxy" or name in only}


def _measure(upstream: tuple[str, int], variants: dict[str, list[FilterSpec]],
             command: Callable[[int], Sequence[str]],
             parse: Callable[[str], tuple[int, float]], rounds: int,
             env: dict[str, str] | None) -> list[Row]:
    with ExitStack() as stack:
        envoys = {name: stack.enter_context(
            EnvoyProcess([ListenerSpec("db", upstream, specs)], concurrency=1))
            for name, specs in variants.items()}
        done: list[Run] = []

        def show(run: Run) -> None:
            if run.index < 0:
                return
            done.append(run)
            if len(done) % len(envoys) == 0:
                last = {r.variant: r.envoy_user_us for r in done[-len(envoys):]}
                print(f"  round {run.index + 1:2}: " + "  ".join(
                    f"{n} {last[n]:.2f}" for n in envoys), flush=True)

        runs = alternate(envoys, command, parse, runs=rounds, warmup=1, env=env, on_run=show)
        for name, envoy in envoys.items():  # a filter that failed would measure nothing
            failed = {k: v for k, v in envoy.stats.snapshot().counters.items()
                      if k.endswith(("script_errors", "decoder_errors")) and v}
            if failed:
                print(f"  WARNING {name}: {failed}")
    measured = [r for r in runs if r.index >= 0]
    base = {r.index: r.envoy_user_us for r in measured if r.variant == "tcp_proxy"}
    return [Row(name,
                statistics.median(r.envoy_user_us for r in measured if r.variant == name),
                statistics.median(r.value for r in measured if r.variant == name),
                statistics.median(r.envoy_user_us - base[r.index]
                                  for r in measured if r.variant == name))
            for name in variants]


def _table(title: str, rows: list[Row]) -> list[str]:
    base = rows[0]
    lines = [f"{title}", f"{'variant':16} {'user us/txn':>11} {'added':>7} {'paired':>7} "
             f"{'TPS':>8} {'TPS ratio':>9}  target (added)"]
    for row in rows:
        added = row.user_us - base.user_us
        goal = TARGETS.get(row.variant)
        verdict = "" if goal is None else (
            f"<= {goal:g} us: {'met' if added <= goal else 'MISSED'}")
        lines.append(f"{row.variant:16} {row.user_us:11.2f} "
                     f"{'' if row is base else f'{added:+.2f}':>7} "
                     f"{'' if row is base else f'{row.paired:+.2f}':>7} {row.tps:8.0f} "
                     f"{row.tps / base.tps:9.3f}  {verdict}")
    return lines


def _pgbench(args: argparse.Namespace, tmp: Path) -> list[list[str]]:
    from wirelab.servers import PostgresServer

    variants = {
        "tcp_proxy": [],
        "sdk floor native": [_spec(examples_dir() / "bytes-counter", "native")],
        "postgres wasm": [_spec(filters_dir() / "postgres", "wasm")],
        "postgres native": [_spec(filters_dir() / "postgres", "native")],
    }
    lua = _lua_project(tmp)
    variants["lua wasm"] = [_spec(lua, "wasm")]
    variants["lua native"] = [_spec(lua, "native")]
    variants = _chosen(variants, args.variant)
    tables = []
    with PostgresServer(tls=False) as pg:
        print(f"PostgreSQL {pg.version} ({pg.bin_dir})")
        subprocess.run(["pgbench", "-i", "-s", "1", "-q"], env=pg.env(), check=True,
                       capture_output=True, timeout=300)
        for mode in ("simple", "prepared"):
            if args.only and f"pgbench-{mode}" not in args.only:
                continue
            load = f"pgbench -n -S -M {mode} -c {args.clients} -j 2 -T {args.seconds}"
            print(f"== {load} ==")

            def command(port: int, mode: str = mode) -> list[str]:
                return ["pgbench", "-h", pg.host, "-p", str(port), "-U", pg.user, "-n", "-S",
                        "-M", mode, "-c", str(args.clients), "-j", "2", "-T", str(args.seconds),
                        pg.database]

            rows = _measure((pg.host, pg.port), variants, command, pgbench_count, args.rounds,
                            {"PGPASSWORD": pg.password})
            tables.append(_table(load, rows))
            print("\n".join(tables[-1]))
    return tables


def _sysbench(args: argparse.Namespace) -> list[list[str]]:
    from wirelab.servers import MariaDBServer

    variants = {
        "tcp_proxy": [],
        "sdk floor native": [_spec(examples_dir() / "bytes-counter", "native")],
        "mysql wasm": [_spec(filters_dir() / "mysql", "wasm")],
        "mysql native": [_spec(filters_dir() / "mysql", "native")],
    }
    variants = _chosen(variants, args.variant)
    with MariaDBServer(tls=False) as my:
        def base(port: int) -> list[str]:
            return ["sysbench", "oltp_point_select", "--db-driver=mysql",
                    "--mysql-host=127.0.0.1", f"--mysql-port={port}", f"--mysql-user={my.user}",
                    f"--mysql-password={my.password}", f"--mysql-db={my.database}",
                    "--mysql-ssl=off", "--tables=1", "--table-size=10000"]

        subprocess.run(base(my.port) + ["prepare"], check=True, capture_output=True)

        def command(port: int) -> list[str]:
            return base(port) + [f"--threads={args.clients}", f"--time={args.seconds}",
                                 "--events=0", "--report-interval=0", "run"]

        load = f"sysbench oltp_point_select --threads={args.clients} --time={args.seconds}"
        print(f"== {load} ==")
        rows = _measure((my.host, my.port), variants, command, sysbench_count, args.rounds, None)
    table = _table(load, rows)
    print("\n".join(table))
    return [table]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7, help="measured rounds (one run per variant)")
    ap.add_argument("--seconds", type=int, default=5, help="length of one run")
    ap.add_argument("--clients", type=int, default=4, help="pgbench -c / sysbench --threads")
    ap.add_argument("--only", action="append", default=None,
                    choices=("pgbench-simple", "pgbench-prepared", "sysbench"),
                    help="run only this load (repeatable)")
    ap.add_argument("--variant", action="append", default=None, metavar="NAME",
                    help="run only this variant beside tcp_proxy, e.g. 'postgres native' "
                         "(repeatable; more rounds in the same time)")
    args = ap.parse_args(argv)
    wanted_pg = not args.only or any(o.startswith("pgbench") for o in args.only)
    wanted_my = not args.only or "sysbench" in args.only
    missing = [tool for tool, wanted in (("pgbench", wanted_pg), ("sysbench", wanted_my))
               if wanted and shutil.which(tool) is None]
    if missing:
        print(f"not installed: {', '.join(missing)} (apt-get install postgresql-client sysbench)",
              file=sys.stderr)
        return 2
    tables: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="native_vs_wasm_") as tmp:
        if wanted_pg:
            tables += _pgbench(args, Path(tmp))
        if wanted_my:
            tables += _sysbench(args)
    print(f"\n== summary: Envoy --concurrency 1, 1 warm-up + {args.rounds} rounds, "
          f"medians, shared CPUs ==")
    for t in tables:
        print("\n".join(t) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
