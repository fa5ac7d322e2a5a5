"""pgbench -S through Envoy: tcp_proxy alone vs the postgres filter + tcp_proxy.

    .venv/bin/python bench/postgres_pgbench.py                 # -M simple and prepared
    .venv/bin/python bench/postgres_pgbench.py --mode prepared --runs 7 --seconds 5
    .venv/bin/python bench/postgres_pgbench.py --config '{"tags": {"database": true}}'

One plaintext PostgreSQL (the embedded 18 unless --pg-bin names another
install), `pgbench -i -s 1` once (directly, not through Envoy), then for each
query mode the alternating runner of bench/ratio.py: two Envoys side by side
in front of the same server (tcp_proxy alone; filters/postgres then
tcp_proxy), one warm-up run each, then alternating measured runs of
`pgbench -n -S -c 4 -j 2 -T 5 -M <mode>`. Prints TPS and Envoy CPU per
transaction for every run, the medians, the ratio median(filtered) /
median(baseline), and a last line `RESULT ...` per mode. Target (issue 5):
ratio >= 0.97.

What one `-S` transaction costs the filter: a client read (Query, or
Bind/Execute/Sync with -M prepared; Parse/Bind/Describe/Execute/Sync with
-M extended) and a server read (RowDescription, DataRow, CommandComplete,
ReadyForQuery): two Wasm entries, two ranged buffer reads, one clock read,
one statement-latency sample, and one batched increment per counter touched.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ratio import compare, pgbench_tps, placement  # noqa: E402

from wirelab.servers import PostgresServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.97


def main(argv: list[str] | None = None, *, default_filter: Path | None = None,
         target: float = TARGET) -> int:
    """`default_filter` / `target`: what runs without --filter, and the ratio it
    must reach (bench/lua_pgbench.py runs this with the Lua example)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mode", choices=("simple", "extended", "prepared", "both"), default="both",
                    help="pgbench -M; 'both' runs simple then prepared")
    ap.add_argument("--runs", type=int, default=5, help="measured runs per side")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up runs per side")
    ap.add_argument("--seconds", type=int, default=5, help="pgbench -T")
    ap.add_argument("--clients", type=int, default=4, help="pgbench -c")
    ap.add_argument("--threads", type=int, default=2, help="pgbench -j")
    ap.add_argument("--concurrency", type=int, default=1, help="Envoy worker threads")
    ap.add_argument("--pin", action="store_true",
                    help="Envoys on their own CPU(s), pgbench and PostgreSQL on the rest")
    ap.add_argument("--pg-bin", default=None, help="PostgreSQL bin directory (default: embedded)")
    ap.add_argument("--filter", action="append", default=None,
                    help="filter project or .wasm (repeatable; default filters/postgres)")
    ap.add_argument("--config", type=json.loads, default=None,
                    help="JSON merged over the filter projects' plugin config")
    args = ap.parse_args(argv)
    if shutil.which("pgbench") is None:
        print("pgbench is absent: apt-get install postgresql-client", file=sys.stderr)
        return 2
    filters = args.filter or [str(default_filter or ROOT / "filters" / "postgres")]
    modes = ("simple", "prepared") if args.mode == "both" else (args.mode,)
    ratios: dict[str, float] = {}
    pairs: dict[str, float] = {}
    commands: dict[str, str] = {}
    with PostgresServer(Path(args.pg_bin) if args.pg_bin else None, tls=False) as pg:
        print(f"PostgreSQL {pg.version} ({pg.bin_dir})")
        envoy_cpus, load_cpus = placement(args.pin, args.concurrency, pg.pid)
        subprocess.run(["pgbench", "-i", "-s", "1", "-q"], env=pg.env(), check=True,
                       capture_output=True, timeout=300)
        for mode in modes:
            print(f"== pgbench -S -M {mode} ==")

            def command(port: int, mode: str = mode) -> list[str]:
                return ["pgbench", "-h", pg.host, "-p", str(port), "-U", pg.user, "-n", "-S",
                        "-M", mode, "-c", str(args.clients), "-j", str(args.threads),
                        "-T", str(args.seconds), pg.database]

            result = compare(upstream=(pg.host, pg.port), filters=filters, command=command,
                             parse=pgbench_tps, runs=args.runs, warmup=args.warmup,
                             env={"PGPASSWORD": pg.password}, concurrency=args.concurrency,
                             filter_config=args.config, listener="postgres",
                             envoy_cpus=envoy_cpus, load_cpus=load_cpus)
            ratios[mode], commands[mode] = result.ratio, result.command
            pairs[mode] = result.pair_ratio
    config = f" config={json.dumps(args.config)}" if args.config else ""
    config += " placement=pinned" if args.pin else " placement=shared"
    print("== summary ==")
    for mode, r in ratios.items():
        verdict = "meets" if r >= target else "BELOW"
        print(f"RESULT pgbench -S -M {mode} -c {args.clients} -j {args.threads} "
              f"-T {args.seconds}{config} ratio={r:.3f} pair_ratio={pairs[mode]:.3f} "
              f"({verdict} the {target:.2f} target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
