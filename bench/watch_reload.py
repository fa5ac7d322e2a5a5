"""Save → new metric visible, through `wirelab up --watch`'s ECDS path.

A lab with one Envoy takes a Lua filter and a C filter from an export
directory; a watcher rebuilds a filter when its source is saved and publishes
it. Each round adds a counter to the Lua script (then to the C source) and
times from the write to the counter appearing in Envoy's admin API.

    PYTHONPATH=toolchain python bench/watch_reload.py [--rounds 3]

Target on the reference machine: ≤ 2 s for both.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from wirelab.harness import Lab
from wirelab.paths import examples_dir
from wirelab.testing.lua import statement_counter_script, write_lua_project
from wirelab.xds.watch import Change, Watcher

C_ANCHOR = '    m->connections = wl_counter("tcp.%s.connections_total", prefix);\n'


def stat_exists(admin: str, name: str) -> bool:
    # Envoy keeps a Wasm metric `x` as `wasmcustom.x`.
    with urllib.request.urlopen(f"{admin}/stats?filter=^wasmcustom.{name}$", timeout=5) as resp:
        return bool(resp.read().strip())


def time_edit(admin: str, write, stat: str, timeout: float = 60.0) -> float:
    started = time.monotonic()
    write()
    while not stat_exists(admin, stat):
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{stat} did not appear within {timeout:g} s")
        time.sleep(0.01)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wirelab-bench-watch-"))
    try:
        lua = write_lua_project(work / "lua", statement_counter_script(), name="bench-lua",
                                stat_prefix="benchlua", metrics_flush_ms=0)
        c = work / "c"
        shutil.copytree(examples_dir() / "bytes-counter", c, ignore=shutil.ignore_patterns("build"))
        c_source = (c / "filter.c").read_text()
        targets = [str(lua), str(c)]
        changes: list[Change] = []
        # What `wirelab up --watch` runs.
        with Lab(postgres=True, filters=targets, xds=True) as lab:
            def publish() -> tuple[str, list[str]]:
                result = lab.republish()
                return result.version, result.changed

            watcher = Watcher(targets, publish, changes.append).start()
            admin = lab.admin_url
            lua_times, c_times = [], []
            try:
                for i in range(args.rounds):
                    script = statement_counter_script(*(f"added_{j}" for j in range(i + 1)))
                    lua_times.append(time_edit(
                        admin, lambda s=script: (lua / "filter.lua").write_text(s),
                        f"lua.benchlua.added_{i}"))
                    line = C_ANCHOR + f'    wl_counter("tcp.%s.added_{i}", prefix);\n'
                    c_source = c_source.replace(C_ANCHOR, line, 1)
                    c_times.append(time_edit(
                        admin, lambda s=c_source: (c / "filter.c").write_text(s),
                        f"tcp.bytes_counter.added_{i}"))
            finally:
                watcher.stop()
        errors = [ch.error for ch in changes if ch.error]
        if errors:
            raise SystemExit(f"a rebuild failed: {errors[0]}")
        print(f"rounds: {args.rounds}")
        print(f"Lua edit: save -> new metric visible: median {statistics.median(lua_times):.2f} s "
              f"(each: {', '.join(f'{t:.2f}' for t in lua_times)})")
        print(f"C edit:   save -> new metric visible: median {statistics.median(c_times):.2f} s "
              f"(each: {', '.join(f'{t:.2f}' for t in c_times)})")
        print("rebuild+publish per save: "
              + ", ".join(f"{ch.seconds:.2f} s" for ch in changes))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
