"""Same load through Envoy with tcp_proxy alone and through Envoy with filters.

The reusable half of every "filter overhead" benchmark:

    from ratio import compare, sysbench_tps

    result = compare(
        upstream=(my.host, my.port),
        filters=["filters/mysql"],
        command=lambda port: ["sysbench", "oltp_point_select", f"--mysql-port={port}", ...],
        parse=sysbench_tps,
        runs=5,
    )
    print(result.ratio)

Two Envoys run side by side for the whole comparison, in front of the same
server: `baseline` (the listener's only network filter is tcp_proxy) and
`filtered` (the given filters, then tcp_proxy). Both have the same concurrency,
stats flush interval and bootstrap; only the filter chain differs. Runs
alternate (baseline, filtered, baseline, ...; the order flips every pair so
neither side always runs second) after one warm-up run of each, and the ratio
is median(filtered) / median(baseline) of the measured runs. A throughput
(higher is better) is what `parse` must return.

Placement: by default every process (load, server, both Envoys) shares all
CPUs, so the filter's CPU competes with the database's and the load's and the
ratio measures CPU cost. `split_cpus(concurrency)` gives the Envoys their own
CPUs and the load and the server the rest, the way Envoy is deployed (a
sidecar or proxy tier with its own CPU budget) and the way Envoy's own tuning
guides benchmark it; then the ratio measures what the filter costs the
database's clients. Pass `envoy_cpus` / `load_cpus` to `compare` and pin the
server with `pin(server_pid, load_cpus)`.

Throughput on a shared machine is noisy, so every run also records the CPU
time the Envoy process used (user + system, from /proc via psutil) divided by
the operations it carried (throughput x wall time of the run): the filter's
cost shows up there directly, in microseconds of Envoy CPU per operation.
"""

from __future__ import annotations

import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec

VARIANTS = ("baseline", "filtered")


@dataclass
class Run:
    variant: str  # "baseline" or "filtered"
    index: int    # 0-based measured run number (warm-up runs are -1)
    value: float  # throughput parsed from the command's output
    envoy_cpu_us: float = 0.0  # Envoy CPU (user + system) per operation, microseconds
    envoy_user_us: float = 0.0  # the user-space part (filters run there; the kernel's
    #                             socket work, the noisiest part, does not)


@dataclass
class Result:
    runs: list[Run] = field(default_factory=list)
    command: str = ""  # one filtered run's command line, as a person would paste it
    unit: str = "tps"

    def values(self, variant: str) -> list[float]:
        return [r.value for r in self.runs if r.variant == variant and r.index >= 0]

    def median(self, variant: str) -> float:
        return statistics.median(self.values(variant))

    def cpu_median(self, variant: str, user_only: bool = False) -> float:
        return statistics.median(
            r.envoy_user_us if user_only else r.envoy_cpu_us
            for r in self.runs if r.variant == variant and r.index >= 0)

    @property
    def ratio(self) -> float:
        return self.median("filtered") / self.median("baseline")

    @property
    def pair_ratio(self) -> float:
        """Median of filtered/baseline within each measured pair: the two runs of
        a pair are seconds apart, so load that drifts over minutes cancels."""
        base = {r.index: r.value for r in self.runs if r.variant == "baseline" and r.index >= 0}
        filt = {r.index: r.value for r in self.runs if r.variant == "filtered" and r.index >= 0}
        return statistics.median(filt[i] / base[i] for i in base if i in filt)


def sysbench_tps(output: str) -> float:
    """`transactions: N (X per sec.)` from a sysbench 1.0 summary."""
    m = re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec\.\)", output)
    if not m:
        raise ValueError(f"no sysbench transaction rate in output:\n{output[-2000:]}")
    return float(m.group(1))


def pgbench_tps(output: str) -> float:
    """`tps = X (without initial connection time)` from pgbench (15+), or the older form."""
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", output) or \
        re.search(r"tps = ([\d.]+) \(excluding connections establishing\)", output)
    if not m:
        raise ValueError(f"no pgbench tps in output:\n{output[-2000:]}")
    return float(m.group(1))


def pgbench_count(output: str) -> tuple[int, float]:
    """(transactions processed, tps) from a pgbench summary."""
    n = re.search(r"number of transactions actually processed: (\d+)", output)
    if not n:
        raise ValueError(f"no pgbench summary in output:\n{output[-1500:]}")
    return int(n.group(1)), pgbench_tps(output)


def sysbench_count(output: str) -> tuple[int, float]:
    """(transactions, per second) from a sysbench 1.0 summary."""
    m = re.search(r"transactions:\s+(\d+)\s+\(([\d.]+) per sec\.\)", output)
    if not m:
        raise ValueError(f"no sysbench summary in output:\n{output[-1500:]}")
    return int(m.group(1)), float(m.group(2))


def split_cpus(envoy_count: int) -> tuple[list[int], list[int]]:
    """(Envoy CPUs, load+server CPUs): the last `envoy_count` CPUs this process
    may use go to Envoy, the rest to the load and the server."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= envoy_count:
        raise SystemExit(f"--pin needs more than {envoy_count} CPUs (have {len(cpus)})")
    return cpus[-envoy_count:], cpus[:-envoy_count]


def pin(pid: int, cpus: Sequence[int]) -> None:
    """Every thread of `pid` and of its descendants onto `cpus`. Processes and
    threads created later inherit the placement from their parent."""
    root = psutil.Process(pid)
    for proc in [root, *root.children(recursive=True)]:
        try:
            for thread in proc.threads():
                os.sched_setaffinity(thread.id, set(cpus))
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass


def placement(pinned: bool, envoy_count: int,
              server_pid: int) -> tuple[list[int] | None, list[int] | None]:
    """The scripts' --pin: (Envoy CPUs, load CPUs) from `split_cpus`, with the
    server already moved onto the load's; (None, None) to share every CPU."""
    if not pinned:
        return None, None
    envoy_cpus, load_cpus = split_cpus(envoy_count)
    pin(server_pid, load_cpus)
    return envoy_cpus, load_cpus


def _resolve(filters: Sequence[FilterSpec | str | Path],
             config: Mapping[str, Any] | None) -> list[FilterSpec]:
    """FilterSpecs as given; project directories and .wasm files built/resolved
    as `wirelab.harness.Lab` does (`config` merged over each project's)."""
    from wirelab.harness.filters import resolve_filter

    out = []
    for f in filters:
        if isinstance(f, FilterSpec):
            out.append(f)
        elif isinstance(f, str) and f.startswith("probe:"):
            out.append(_probe(int(f.split(":", 1)[1])))
        else:
            out.append(resolve_filter(f, dict(config) if config else None).spec)
    return out


def _probe(level: int) -> FilterSpec:
    """`--filter probe:N`: the cost-probe filter of bench/wasm_cost.py at PROBE_LEVEL N
    (0: the data callbacks do nothing; 2: + a 5-byte buffer read per read; see
    tests/fixtures/cost_probe/probe.c), the floor every Wasm filter pays."""
    import tempfile

    from wasm_cost import build_probe

    wasm = build_probe(level, Path(tempfile.mkdtemp(prefix="wirelab-probe-")))
    return FilterSpec(f"probe{level}", wasm, "", failure_policy="FAIL_OPEN")


def _run_once(argv: Sequence[str], env: Mapping[str, str] | None, timeout: float,
              cpus: Sequence[int] | None = None) -> str:
    preexec = (lambda: os.sched_setaffinity(0, set(cpus))) if cpus else None
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **env} if env else None, preexec_fn=preexec)
    if proc.returncode != 0:
        raise RuntimeError(f"load command failed (exit {proc.returncode}): "
                           f"{shlex.join(argv)}\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return proc.stdout


def alternate(
    envoys: Mapping[str, EnvoyProcess],
    command: Callable[[int], Sequence[str]],
    parse: Callable[[str], float | tuple[int, float]],
    *,
    runs: int,
    warmup: int = 1,
    env: Mapping[str, str] | None = None,
    listener: str = "db",
    timeout: float = 600.0,
    load_cpus: Sequence[int] | None = None,
    on_run: Callable[[Run], None] | None = None,
) -> list[Run]:
    """The same load against each running Envoy, round after round.

    Round i runs every variant once, the order rotated by i (so with two
    variants: baseline, filtered, then filtered, baseline, ...; with more,
    every variant takes every position equally often). `parse(stdout)` returns
    the throughput, or (transactions, throughput) when the load reports its
    count (then CPU per transaction divides by that count instead of
    throughput x wall time). Warm-up rounds come first and get index -1.
    """
    names = list(envoys)
    procs = {n: psutil.Process(e.pid) for n, e in envoys.items()}
    out: list[Run] = []
    for i in range(-warmup, runs):
        k = i % len(names)
        for variant in names[k:] + names[:k]:
            argv = command(envoys[variant].port(listener))
            (user0, sys0), t0 = _cpu(procs[variant]), time.monotonic()
            parsed = parse(_run_once(argv, env, timeout, load_cpus))
            (user1, sys1), wall = _cpu(procs[variant]), time.monotonic() - t0
            if isinstance(parsed, tuple):
                ops, value = float(parsed[0]), parsed[1]
            else:
                ops, value = parsed * wall, parsed
            ops = max(ops, 1e-9)
            run = Run(variant, max(i, -1), value,
                      (user1 - user0 + sys1 - sys0) / ops * 1e6, (user1 - user0) / ops * 1e6)
            out.append(run)
            if on_run:
                on_run(run)
    return out


def compare(
    upstream: tuple[str, int],
    filters: Sequence[FilterSpec | str | Path],
    command: Callable[[int], Sequence[str]],
    parse: Callable[[str], float],
    *,
    runs: int = 5,
    warmup: int = 1,
    env: Mapping[str, str] | None = None,
    filter_config: Mapping[str, Any] | None = None,
    concurrency: int = 1,
    listener: str = "db",
    unit: str = "tps",
    timeout: float = 600.0,
    out: Callable[[str], None] = print,
    envoy_cpus: Sequence[int] | None = None,
    load_cpus: Sequence[int] | None = None,
) -> Result:
    """Run `command(port)` against both Envoys, alternating; return every run.

    `command(port)` builds the load's argv for a listener port on 127.0.0.1;
    `parse(stdout)` returns the throughput. `env` is added to the load's
    environment (e.g. PGPASSWORD). Each run is printed through `out`.
    `envoy_cpus` / `load_cpus` pin both Envoys / the load (see `split_cpus`).
    """
    specs = _resolve(filters, filter_config)
    if not specs:
        raise ValueError("compare() needs at least one filter: the baseline is tcp_proxy alone")
    result = Result(unit=unit)
    base = EnvoyProcess([ListenerSpec(listener, upstream, [])], concurrency=concurrency)
    filt = EnvoyProcess([ListenerSpec(listener, upstream, specs)], concurrency=concurrency)
    with base, filt:
        ports = {"baseline": base.port(listener), "filtered": filt.port(listener)}
        if envoy_cpus:
            pin(base.pid, envoy_cpus)
            pin(filt.pid, envoy_cpus)
        result.command = shlex.join(command(ports["filtered"]))
        out(f"load: {result.command}")
        out(f"filters: {', '.join(f'{s.name} ({s.wasm})' for s in specs)}; "
            f"Envoy concurrency {concurrency}; {warmup} warm-up + {runs} measured runs per side")
        out("placement: " + (f"Envoys on CPUs {list(envoy_cpus)}, load on {list(load_cpus or [])}"
                             if envoy_cpus else "every process on every CPU"))
        def show(run: Run) -> None:
            tag = "warm-up" if run.index < 0 else f"run {run.index + 1}"
            out(f"  {tag:8} {run.variant:9} {run.value:12.1f} {unit}   "
                f"Envoy CPU {run.envoy_cpu_us:7.2f} us/op (user {run.envoy_user_us:6.2f})")

        result.runs = alternate({"baseline": base, "filtered": filt}, command, parse,
                                runs=runs, warmup=warmup, env=env, listener=listener,
                                timeout=timeout, load_cpus=load_cpus, on_run=show)
    out(f"median baseline (tcp_proxy)     {result.median('baseline'):12.1f} {unit}  "
        f"{_fmt(result.values('baseline'))}")
    out(f"median filtered (+filters)      {result.median('filtered'):12.1f} {unit}  "
        f"{_fmt(result.values('filtered'))}")
    out(f"Envoy CPU per op (median)       baseline {result.cpu_median('baseline'):.2f} us, "
        f"filtered {result.cpu_median('filtered'):.2f} us; user-space only: baseline "
        f"{result.cpu_median('baseline', True):.2f} us, "
        f"filtered {result.cpu_median('filtered', True):.2f} us")
    out(f"ratio filtered / baseline       {result.ratio:12.3f}   "
        f"(median of per-pair ratios {result.pair_ratio:.3f})")
    return result


def _cpu(proc: psutil.Process) -> tuple[float, float]:
    """CPU seconds (user, system) of the process and its threads so far."""
    t = proc.cpu_times()
    return t.user, t.system


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


if __name__ == "__main__":
    sys.exit("bench/ratio.py is a library: run bench/mysql_sysbench.py (or another bench)")
