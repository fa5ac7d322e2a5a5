"""Emulator throughput: replay a large synthetic conversation through a header-only probe.

    python bench/emulator_speed.py [--mb 32] [--read-kb 64]

Prints MB/s and µs per data callback. The probe (tests/fixtures/probe/header.c)
reads each 5-byte message header with a ranged get_buffer_bytes and skips
bodies, as the shipped decoders do.
"""

from __future__ import annotations

import argparse
import random
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from wirelab.conversation import Conversation
from wirelab.replay import replay

PROBE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "probe" / "header.c"


def build_probe(out_dir: Path) -> Path:
    out = out_dir / "header.wasm"
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi",
                    "-mexec-model=reactor", "-O2", "-s", "-Wl,--export=malloc",
                    "-Wl,--export=free", "-o", str(out), str(PROBE)], check=True)
    return out


def synthetic(total_mb: int, read_kb: int, seed: int = 1) -> tuple[Conversation, int]:
    """Query/response traffic: small client queries, server result sets of many rows."""
    rng = random.Random(seed)
    conv = Conversation(protocol="postgres", meta={"synthetic": True})
    conv.open(0, 0.0, "10.0.0.1:50000", "10.0.0.2:5432")
    t, total, messages = 0.0, 0, 0
    target = total_mb * 1_000_000
    while total < target:
        q = b"Q" + struct.pack(">I", 4 + 40) + b"s" * 40
        t += 0.0001
        conv.data(0, t, "client", q)
        total += len(q)
        messages += 1
        stream = bytearray()
        for _ in range(rng.randint(50, 400)):
            body = rng.randint(20, 4000)
            stream += b"D" + struct.pack(">I", body + 4) + b"r" * body
            messages += 1
        stream += b"Z\x00\x00\x00\x05I"
        messages += 1
        t += 0.001
        for i in range(0, len(stream), read_kb * 1024):
            conv.data(0, t, "server", bytes(stream[i:i + read_kb * 1024]))
        total += len(stream)
    conv.close(0, t + 0.001, "client")
    return conv, messages


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=32)
    ap.add_argument("--read-kb", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wasm = build_probe(Path(tmp))
        conv, messages = synthetic(args.mb, args.read_kb)
        result = replay(wasm, conv)
    mb = result.bytes / 1e6
    counters = result.metrics.as_dict()["counters"]
    seen = counters["hdr.messages.direction=client"] + counters["hdr.messages.direction=server"]
    assert seen == messages, (seen, messages)
    print(f"{mb:.1f} MB, {messages:,} messages, {result.reads:,} reads "
          f"({args.read_kb} KB server reads) in {result.seconds:.2f} s")
    print(f"throughput {mb / result.seconds:.1f} MB/s, "
          f"{result.seconds / result.reads * 1e6:.1f} µs per data callback, "
          f"{result.seconds / messages * 1e6:.2f} µs per message")


if __name__ == "__main__":
    main()
