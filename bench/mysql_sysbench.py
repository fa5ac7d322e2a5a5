"""sysbench through Envoy: tcp_proxy alone vs the mysql filter + tcp_proxy.

    .venv/bin/python bench/mysql_sysbench.py [--test oltp_point_select] [--runs 5]
        [--seconds 5] [--threads 4] [--table-size 10000] [--filter filters/mysql]
        [--config '{"metrics_flush_ms": 100}']

Starts a plaintext MariaDB, prepares the sysbench table once (directly, not
through Envoy), then runs `sysbench <test> run` alternately through both Envoys
(see ratio.py) and prints TPS per run and median(filtered) / median(baseline).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ratio import compare, placement, sysbench_tps  # noqa: E402

from wirelab.servers import MariaDBServer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def sysbench_args(my: MariaDBServer, port: int, test: str, table_size: int) -> list[str]:
    return [
        "sysbench", test, "--db-driver=mysql", "--mysql-host=127.0.0.1",
        f"--mysql-port={port}", f"--mysql-user={my.user}", f"--mysql-password={my.password}",
        f"--mysql-db={my.database}", "--mysql-ssl=off", "--tables=1",
        f"--table-size={table_size}",
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--test", default="oltp_point_select")
    ap.add_argument("--runs", type=int, default=5, help="measured runs per side")
    ap.add_argument("--warmup", type=int, default=1, help="warm-up runs per side")
    ap.add_argument("--seconds", type=int, default=5, help="length of one run")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--table-size", type=int, default=10000)
    ap.add_argument("--concurrency", type=int, default=1, help="Envoy worker threads")
    ap.add_argument("--pin", action="store_true",
                    help="Envoys on their own CPU(s), the load and the server on the rest")
    ap.add_argument("--filter", action="append", default=None,
                    help="filter project or .wasm (repeatable; default filters/mysql)")
    ap.add_argument("--config", type=json.loads, default=None,
                    help="JSON merged over the filter projects' plugin config")
    args = ap.parse_args(argv)
    if not shutil.which("sysbench"):
        print("sysbench is not installed: apt-get install sysbench", file=sys.stderr)
        return 2
    filters = args.filter or [str(ROOT / "filters" / "mysql")]
    with MariaDBServer(tls=False) as my:
        envoy_cpus, load_cpus = placement(args.pin, args.concurrency, my.pid)
        prep = sysbench_args(my, my.port, args.test, args.table_size) + ["prepare"]
        subprocess.run(prep, check=True, capture_output=True, text=True)

        def command(port: int) -> list[str]:
            return sysbench_args(my, port, args.test, args.table_size) + [
                f"--threads={args.threads}", f"--time={args.seconds}", "--events=0",
                "--report-interval=0", "run",
            ]

        result = compare((my.host, my.port), filters, command, sysbench_tps,
                         runs=args.runs, warmup=args.warmup, concurrency=args.concurrency,
                         filter_config=args.config, envoy_cpus=envoy_cpus,
                         load_cpus=load_cpus)
    config = f" config={json.dumps(args.config)}" if args.config else ""
    config += " placement=pinned" if args.pin else " placement=shared"
    print(f"RESULT {args.test} threads={args.threads}{config} ratio={result.ratio:.3f} "
          f"pair_ratio={result.pair_ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
