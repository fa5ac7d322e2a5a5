"""pgbench -S through Envoy: tcp_proxy alone vs + the pg-statements Lua filter.

    python bench/lua_pgbench.py                      # simple and prepared, 5 runs each
    python bench/lua_pgbench.py --mode prepared --runs 7 --seconds 5

One PostgreSQL (plaintext, so the filter sees the traffic), `pgbench -i -s 1`
once, then for each query mode the alternating runner of bench/ratio.py: two
Envoys side by side (tcp_proxy alone; the Lua filter then tcp_proxy), one
warm-up run each, then alternating measured runs with the same clients and
threads. Prints TPS per run, the medians and their ratio; the target is
>= 0.90. Afterwards it prints the filtered Envoy's own counters for one run
(messages seen) so the cost per message can be worked out:

    cost/message ~= (1/TPS_filtered - 1/TPS_baseline) * clients / messages_per_txn
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ratio import compare, pgbench_tps, pin, split_cpus  # noqa: E402

from wirelab.paths import examples_dir  # noqa: E402
from wirelab.servers import PostgresServer  # noqa: E402

TARGET = 0.90


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("simple", "prepared", "both"), default="both")
    ap.add_argument("--runs", type=int, default=5, help="measured runs per side")
    ap.add_argument("--seconds", type=int, default=5, help="pgbench -T")
    ap.add_argument("--clients", type=int, default=4, help="pgbench -c")
    ap.add_argument("--threads", type=int, default=2, help="pgbench -j")
    ap.add_argument("--concurrency", type=int, default=1, help="Envoy worker threads")
    ap.add_argument("--pin", action="store_true",
                    help="Envoys on their own CPU(s), the load and the server on the rest")
    ap.add_argument("--filter", default=str(examples_dir() / "lua" / "pg-statements"),
                    help="filter project directory (default: the pg-statements example)")
    args = ap.parse_args(argv)
    if shutil.which("pgbench") is None:
        print("pgbench is absent: apt-get install postgresql-contrib (or postgresql-client)",
              file=sys.stderr)
        return 2

    modes = ("simple", "prepared") if args.mode == "both" else (args.mode,)
    ratios: dict[str, float] = {}
    with PostgresServer(tls=False) as pg:
        envoy_cpus, load_cpus = split_cpus(args.concurrency) if args.pin else (None, None)
        if load_cpus:
            pin(pg.pid, load_cpus)
        env = pg.env()
        subprocess.run(["pgbench", "-i", "-s", "1", "-q"], env=env, check=True,
                       capture_output=True)
        for mode in modes:
            print(f"== pgbench -S -M {mode} ==")

            def command(port: int, mode: str = mode) -> list[str]:
                return ["pgbench", "-h", pg.host, "-p", str(port), "-U", pg.user, "-n", "-S",
                        "-M", mode, "-c", str(args.clients), "-j", str(args.threads),
                        "-T", str(args.seconds), pg.database]

            result = compare(upstream=(pg.host, pg.port), filters=[args.filter],
                             command=command, parse=pgbench_tps, runs=args.runs,
                             env={"PGPASSWORD": pg.password}, concurrency=args.concurrency,
                             listener="postgres", envoy_cpus=envoy_cpus, load_cpus=load_cpus)
            ratios[mode] = result.ratio
            base, filt = result.median("baseline"), result.median("filtered")
            # pgbench -S: one SELECT per transaction; cost per transaction on the
            # serialised path (one Envoy worker), split over the messages decoded.
            extra_us = (1 / filt - 1 / base) * 1e6 * min(args.clients, args.concurrency)
            print(f"extra time per transaction in the worker ~ {extra_us:.1f} us "
                  f"(1/TPS difference x {min(args.clients, args.concurrency)} worker(s))")
    print("== summary ==")
    for mode, r in ratios.items():
        verdict = "meets" if r >= TARGET else "BELOW"
        print(f"-M {mode:8} ratio {r:.3f} ({verdict} the {TARGET:.2f} target)"
              f" placement={'pinned' if args.pin else 'shared'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
