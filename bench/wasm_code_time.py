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
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from importlib import metadata
from io import BytesIO
from pathlib import Path

import wasmtime

ROOT = Path(__file__).resolve().parents[1]
HARNESS = Path(__file__).with_suffix(".c")
# the flags `wirelab build` uses (toolchain/wirelab/build/zig.py), minus -s: names help profiling
FLAGS = ["--target=wasm32-wasi", "-mexec-model=reactor", "-O2"]


def typed(kind: bytes, body: bytes = b"") -> bytes:
    return kind + struct.pack(">I", len(body) + 4) + body


def startup(user: str, database: str) -> bytes:
    body = struct.pack(">I", 196608) + f"user\0{user}\0database\0{database}\0\0".encode()
    return struct.pack(">I", len(body) + 4) + body


ROWS = typed(b"T", b"\0\x01abalance\0" + b"\0" * 18) + typed(b"D", b"\0\x01\0\0\0\x05-2979")
DONE = typed(b"C", b"SELECT 1\0") + typed(b"Z", b"I")
HELLO = (typed(b"R", struct.pack(">I", 0)) + typed(b"K", struct.pack(">II", 7, 9))
         + typed(b"Z", b"I"))
SQL = b"SELECT abalance FROM pgbench_accounts WHERE aid = "
# (opening client read, opening server read, transaction client read, server read)
MODES = {
    "simple": (startup("u", "d"), HELLO, typed(b"Q", SQL + b"34283;\0"), ROWS + DONE),
    "prepared": (
        startup("u", "d") + typed(b"P", b"P_0\0" + SQL + b"$1;\0\0\0") + typed(b"S"),
        HELLO + typed(b"1") + typed(b"Z", b"I"),
        typed(b"B", b"\0P_0\0\0\0\0\x01\0\0\0\x0517458\0\x01\0\0") + typed(b"D", b"P\0")
        + typed(b"E", b"\0\0\0\0\0") + typed(b"S"),
        typed(b"2") + ROWS + DONE,
    ),
}


def build(filters: Path, out: Path) -> Path:
    """The filter + decoder + SDK (without wl_host.c) + the harness, as one module."""
    project = filters / "postgres"
    manifest = tomllib.loads((project / "wirelab.toml").read_text())
    sdk = [p for p in sorted((filters / "sdk").glob("*.c")) if p.name != "wl_host.c"]
    sources = [*sdk, filters / "protocols" / "postgres.c",
               *(project / s for s in manifest["sources"]), HARNESS]
    includes = [f"-I{d}" for d in (filters / "sdk", filters / "protocols", project)]
    cmd = [sys.executable, "-m", "ziglang", "cc", *FLAGS, *includes, "-o", str(out),
           *map(str, sources)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"build failed for {filters}:\n{done.stderr[-3000:]}")
    return out


def checkout(rev: str, into: Path) -> Path:
    """filters/ as of git revision `rev`."""
    data = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "filters"],
                          capture_output=True, check=True, timeout=120).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into / "filters"


class Harness:
    def __init__(self, wasm: Path, config: dict) -> None:
        engine = wasmtime.Engine()
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        self.instance = linker.instantiate(self.store, wasmtime.Module.from_file(engine, str(wasm)))
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
    h = Harness(wasm, config)
    h.open(MODES[mode])
    h.run(min(txns, 20000))  # warm caches
    best = min(h.run(txns)[0] for _ in range(repeat))
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
