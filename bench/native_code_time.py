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
native` builds it, and feeds one connection the two reads of a pgbench -S
transaction N times.

Modules: filters/postgres, and examples/lua/pg-statements on the native Lua
runtime (with the loop bench/native_vs_wasm.py appends, which makes its
metrics while the script loads). Prints, per module and query mode,
nanoseconds per transaction (best of --repeat runs) and the callbacks into
Envoy per transaction. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
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
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="native-code-time-") as tmp:
        t = Path(tmp)
        harness = build_harness(t / "native_code_time")
        mods = [("filters/postgres", module(filters_dir() / "postgres", t / "pg.json"),
                 t / "pg.json"),
                ("lua pg-statements", module(_lua_project(t), t / "lua.json"), t / "lua.json")]
        print(f"pgbench -S transactions fed to native modules by a stand-in Envoy "
              f"(best of {args.repeat} x {args.txns})")
        print(f"{'module':18s} {'mode':9s} {'ns/txn':>8s} {'calls out/txn':>14s}")
        for name, so, config in mods:
            for mode in MODES:
                reads = write_reads(mode, t / f"reads-{mode}")
                out = subprocess.run([str(harness), str(so), str(config), str(reads),
                                      str(args.txns), str(args.repeat)],
                                     capture_output=True, text=True, timeout=600, check=True)
                ns, calls = out.stdout.split()
                print(f"{name:18s} {mode:9s} {float(ns):8.0f} {int(calls):14d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
