"""Where a Wasm filter's Envoy CPU goes: a ladder of raw-ABI probe filters.

    .venv/bin/python bench/wasm_cost.py                         # pgbench -S -M prepared
    .venv/bin/python bench/wasm_cost.py --load sysbench          # sysbench oltp_point_select
    .venv/bin/python bench/wasm_cost.py --rounds 12 --seconds 3 \
        --extra 'flush=filters/postgres:{"metrics_flush_ms":100}'     # an extra variant
    .venv/bin/python bench/wasm_cost.py --repeat 16 --only noop,+status,+get_bytes  # per call

One server (PostgreSQL, or MariaDB with --load sysbench) and one Envoy per
variant, all running side by side for the whole measurement (Envoy
--concurrency 1, same bootstrap; only the filter chain differs):

    tcp_proxy        tcp_proxy alone
    noop             tests/fixtures/cost_probe/probe.c, PROBE_LEVEL 0: the data
                     callbacks return CONTINUE and do nothing
    +status          + one proxy_get_buffer_status per read (a host call that
                     does not re-enter the module)
    +get_bytes       + one proxy_get_buffer_bytes of 5 bytes per read (the host
                     re-enters the module through its malloc, which returns a
                     static buffer)
    +clock           + one wasi clock_time_get per read
    +counter         + one proxy_increment_metric per read
    +histogram       + one proxy_record_metric (histogram) per read
    bytes-counter    examples/bytes-counter (SDK; one batched counter per read)
    postgres|mysql   filters/postgres (pgbench) or filters/mysql (sysbench)

Each round runs the load once against every Envoy, in an order that rotates
every round (so no variant is always first or last), and records the Envoy
process's user-space CPU time divided by the transactions the load reports.
The table gives the median over rounds per variant and the difference to the
row above. User CPU per transaction is the steady number on a shared machine;
TPS is printed but swings with the neighbours' load. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ratio import _resolve, alternate, pgbench_count, sysbench_count  # noqa: E402

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tests" / "fixtures" / "cost_probe" / "probe.c"
LADDER = [("noop", 0), ("+status", 1), ("+get_bytes", 2), ("+clock", 3), ("+counter", 4),
          ("+histogram", 5)]


def build_probe(level: int, out_dir: Path, repeat: int = 1) -> Path:
    out = out_dir / f"cost_probe_{level}_{repeat}.wasm"
    cmd = [sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-mexec-model=reactor",
           "-O2", "-s", f"-DPROBE_LEVEL={level}", f"-DPROBE_REPEAT={repeat}", "-o", str(out),
           str(PROBE)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--load", choices=("pgbench", "sysbench"), default="pgbench")
    ap.add_argument("--mode", default="prepared", help="pgbench -M (default prepared)")
    ap.add_argument("--rounds", type=int, default=8, help="measured rounds (one run per variant)")
    ap.add_argument("--seconds", type=int, default=3, help="length of one run")
    ap.add_argument("--clients", type=int, default=4, help="pgbench -c / sysbench --threads")
    ap.add_argument("--repeat", type=int, default=1,
                    help="each probe call this many times per read (prices one call precisely:"
                         " delta / repeat / reads per transaction)")
    ap.add_argument("--only", default=None,
                    help="comma-separated variant names to keep (tcp_proxy is always kept)")
    ap.add_argument("--extra", action="append", default=[],
                    help="NAME=PATH[:JSON] an extra variant (project dir or .wasm, config JSON)")
    args = ap.parse_args(argv)
    tool = "pgbench" if args.load == "pgbench" else "sysbench"
    if shutil.which(tool) is None:
        print(f"{tool} is not installed", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="wasm_cost_") as tmp, ExitStack() as stack:
        variants: list[tuple[str, list[FilterSpec]]] = [("tcp_proxy", [])]
        for name, level in LADDER:
            wasm = build_probe(level, Path(tmp), args.repeat)
            variants.append((name, [FilterSpec(f"cost_probe_{level}", wasm, {})]))
        variants.append(("bytes-counter", _resolve([ROOT / "examples" / "bytes-counter"], None)))
        proto = "postgres" if args.load == "pgbench" else "mysql"
        variants.append((proto, _resolve([ROOT / "filters" / proto], None)))
        for extra in args.extra:
            name, _, rest = extra.partition("=")
            path, _, cfg = rest.partition(":")
            variants.append((name, _resolve([ROOT / path], json.loads(cfg) if cfg else None)))
        if args.only:
            keep = {"tcp_proxy", *args.only.split(",")}
            variants = [v for v in variants if v[0] in keep]

        if args.load == "pgbench":
            from wirelab.servers import PostgresServer

            srv = stack.enter_context(PostgresServer(tls=False))
            subprocess.run(["pgbench", "-i", "-s", "1", "-q"], env=srv.env(), check=True,
                           capture_output=True, timeout=300)
            env = {**srv.env(), "PGPASSWORD": srv.password}

            def command(port: int) -> list[str]:
                return ["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", srv.user, "-n",
                        "-S", "-M", args.mode, "-c", str(args.clients), "-j", "2",
                        "-T", str(args.seconds), srv.database]
            parse = pgbench_count
            load = f"pgbench -S -M {args.mode} -c {args.clients} -j 2 -T {args.seconds}"
        else:
            from wirelab.servers import MariaDBServer

            srv = stack.enter_context(MariaDBServer(tls=False))
            env = None

            def sb(port: int) -> list[str]:
                return ["sysbench", "oltp_point_select", "--db-driver=mysql",
                        "--mysql-host=127.0.0.1", f"--mysql-port={port}",
                        f"--mysql-user={srv.user}", f"--mysql-password={srv.password}",
                        f"--mysql-db={srv.database}", "--mysql-ssl=off", "--tables=1",
                        "--table-size=10000"]
            subprocess.run(sb(srv.port) + ["prepare"], check=True, capture_output=True)

            def command(port: int) -> list[str]:
                return sb(port) + [f"--threads={args.clients}", f"--time={args.seconds}",
                                   "--events=0", "--report-interval=0", "run"]
            parse = sysbench_count
            load = f"sysbench oltp_point_select --threads={args.clients} --time={args.seconds}"

        envoys = {}
        for name, specs in variants:
            envoys[name] = stack.enter_context(
                EnvoyProcess([ListenerSpec("db", (srv.host, srv.port), specs)], concurrency=1))
        print(f"load: {load}; {len(envoys)} Envoys side by side (concurrency 1); "
              f"1 warm-up + {args.rounds} rounds")
        user: dict[str, list[float]] = {n: [] for n in envoys}
        total: dict[str, list[float]] = {n: [] for n in envoys}
        tps: dict[str, list[float]] = {n: [] for n in envoys}

        def record(run) -> None:
            if run.index < 0:
                return
            user[run.variant].append(run.envoy_user_us)
            total[run.variant].append(run.envoy_cpu_us)
            tps[run.variant].append(run.value)
            if all(len(v) == run.index + 1 for v in user.values()):
                print(f"  round {run.index + 1:2}: " + "  ".join(
                    f"{n} {user[n][-1]:.1f}" for n in envoys), flush=True)

        alternate(envoys, command, parse, runs=args.rounds, warmup=1, env=env, on_run=record)

    rep = f", probe calls x{args.repeat} per read" if args.repeat != 1 else ""
    print(f"\nEnvoy CPU per transaction, median of {args.rounds} rounds ({load}{rep})")
    print(f"{'variant':16} {'user us/op':>10} {'delta':>7} {'vs tcp_proxy':>12} "
          f"{'user+sys':>9} {'TPS':>8}")
    prev = base = None
    for name in envoys:
        u = statistics.median(user[name])
        d = "" if prev is None else f"{u - prev:+.2f}"
        b = "" if base is None else f"{u - base:+.2f}"
        print(f"{name:16} {u:10.2f} {d:>7} {b:>12} {statistics.median(total[name]):9.2f} "
              f"{statistics.median(tps[name]):8.0f}")
        prev = u
        base = u if base is None else base
    return 0


if __name__ == "__main__":
    sys.exit(main())
