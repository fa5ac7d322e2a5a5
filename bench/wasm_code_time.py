"""How long the postgres filter's own Wasm code runs per pgbench -S transaction.

    .venv/bin/python bench/wasm_code_time.py
    .venv/bin/python bench/wasm_code_time.py --rev 9d0b50e       # and an older revision beside it
    .venv/bin/python bench/wasm_code_time.py --txns 500000 --repeat 9

The Envoy CPU that `postgres_pgbench.py` reports per transaction mixes two
things: the filter's own code, and Envoy's side of the host calls the filter
makes (entering the module for each read, the buffer read that re-enters it
through `malloc`, clock reads, the histogram sample). This separates the first.

It compiles filters/postgres (its sources, filters/protocols/postgres.c and the
SDK, with the same Zig flags as `wirelab build`) together with
`bench/wasm_code_time.c`, which stands in for Envoy: the proxy-wasm host
functions answer from module memory (the buffer read still allocates through
the module's `malloc` and copies, as Envoy does) and a driver feeds one
connection the two reads of a pgbench -S transaction N times in one call.
wasmtime (Cranelift, an optimising compiler like Envoy's TurboFan) runs it.

Prints, per query mode and revision: nanoseconds per transaction (best of
--repeat runs), and the host calls per transaction the filter makes, each of
which costs Envoy about a microsecond (bench/README.md, `wasm_cost.py`). Nothing
here is a test.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from importlib import metadata
from io import BytesIO
from pathlib import Path

import wasmtime

from wirelab.build.zig import TARGET_FLAGS, compile_wasm, compiler_command
from wirelab.project import Project
from wirelab.testing import postgres as pg

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).with_suffix(".c")
MODES = ("simple", "prepared")


def reads(mode: str) -> tuple[bytes, bytes, bytes, bytes]:
    """(opening client read, opening server read, transaction client read, server read)"""
    setup_client, setup_server, client, server = pg.pgbench_select(mode)
    return pg.startup("u", "d") + setup_client, pg.login_reply() + setup_server, client, server


def build(filters: Path, out: Path) -> Path:
    """The filter + decoder + SDK (without wl_host.c) + the harness, as one module,
    compiled like `wirelab build` does but keeping function names (no -s)."""
    project = Project.load(filters / "postgres")
    # The harness answers what wl_host.c and wl_properties.c would ask Envoy. Older
    # revisions keep the proxy-wasm glue in sdk/, newer ones in sdk/wasm/.
    stubbed = {"wl_host.c", "wl_properties.c"}
    sdk_dirs = (filters / "sdk", filters / "sdk" / "wasm")
    sdk = [p for d in sdk_dirs for p in sorted(d.glob("*.c")) if p.name not in stubbed]
    decoder = sorted((filters / "protocols").glob("postgres*.c"))  # + the tracker, when present
    sources = [*sdk, *decoder, *project.source_paths, HARNESS]
    includes = [f"-I{d}" for d in (*sdk_dirs, filters / "protocols", project.root)]
    flags = [f for f in TARGET_FLAGS if f != "-s"]
    compile_wasm([*compiler_command(), *flags, *includes, "-o", str(out), *map(str, sources)],
                 out, project.root, sources)
    return out


def checkout(rev: str, into: Path) -> Path:
    """filters/ as of git revision `rev`."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "filters"],
                          capture_output=True, check=True, timeout=120).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "filters"


ENGINE = wasmtime.Engine()


class Harness:
    def __init__(self, module: wasmtime.Module, config: dict) -> None:
        linker = wasmtime.Linker(ENGINE)
        linker.define_wasi()
        self.store = wasmtime.Store(ENGINE)
        self.store.set_wasi(wasmtime.WasiConfig())
        self.instance = linker.instantiate(self.store, module)
        self.x = self.instance.exports(self.store)
        self.x["_initialize"](self.store)
        self.config = json.dumps(config).encode()

    def _put(self, slot: int, data: bytes) -> None:
        ptr = self.x["bench_set_read"](self.store, slot, len(data))
        self.x["memory"].write(self.store, data, ptr)

    def open(self, reads: tuple[bytes, bytes, bytes, bytes]) -> None:
        for slot, data in enumerate(reads):
            self._put(slot, data)
        buf = self.x["malloc"](self.store, len(self.config) + 1)
        self.x["memory"].write(self.store, self.config, buf)
        if not self.x["bench_open"](self.store, buf, len(self.config)):
            raise SystemExit("the filter refused its configuration")

    def run(self, n: int) -> tuple[float, float]:
        """(seconds, host calls) for n transactions."""
        t0 = time.perf_counter()
        calls = self.x["bench_run"](self.store, n)
        return time.perf_counter() - t0, calls


def measure(wasm: Path, mode: str, txns: int, repeat: int, config: dict) -> tuple[float, float]:
    """(best ns per transaction, calls out per transaction). Each of the `repeat`
    runs gets a fresh instance: one instance can stay slow throughout (where
    its memory landed), so repeating runs inside one instance is not enough."""
    module = wasmtime.Module.from_file(ENGINE, str(wasm))
    best, calls = float("inf"), 0.0
    for _ in range(repeat):
        h = Harness(module, config)
        h.open(reads(mode))
        h.run(min(txns, 20000))  # warm caches
        best = min(best, h.run(txns)[0])
        calls = h.run(1000)[1] / 1000
    return best / txns * 1e9, calls


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rev", action="append", default=[],
                    help="also measure filters/ at this git revision (repeatable)")
    ap.add_argument("--txns", type=int, default=200000, help="transactions per run")
    ap.add_argument("--repeat", type=int, default=7, help="runs per measurement (best is kept)")
    ap.add_argument("--config", type=json.loads, default={},
                    help="plugin configuration JSON (default: the filter's defaults)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wasm-code-time-") as tmp:
        variants = [("working tree", build(ROOT / "filters", Path(tmp) / "head.wasm"))]
        for rev in args.rev:
            src = checkout(rev, Path(tmp) / rev)
            variants.append((rev, build(src, Path(tmp) / f"{rev}.wasm")))
        print(f"pgbench -S transactions fed to filters/postgres inside one Wasm call "
              f"(wasmtime {metadata.version('wasmtime')}, best of {args.repeat} x {args.txns})")
        print(f"{'revision':16s} {'mode':9s} {'ns/txn':>8s} {'calls out/txn':>14s}")
        for name, wasm in variants:
            for mode in MODES:
                ns, calls = measure(wasm, mode, args.txns, args.repeat, args.config)
                print(f"{name:16s} {mode:9s} {ns:8.0f} {calls:14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
