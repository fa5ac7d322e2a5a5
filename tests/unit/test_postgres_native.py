"""The PostgreSQL decoder and statement tracker compiled natively with
AddressSanitizer and UndefinedBehaviorSanitizer (tests/native/postgres/harness.c):
the same events (messages, statements, transactions) for every split of the
recorded conversations, one fetch per read, and no memory error on mutated or
random input."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from wirelab.conversation import Conversation
from wirelab.paths import protocols_dir

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "native" / "postgres" / "harness.c"
FIXTURES = ROOT / "fixtures" / "conversations" / "postgres"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (apt-get install gcc) - needed for the native harness")
    out = tmp_path_factory.mktemp("pgnative") / "harness"
    cmd = [gcc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           f"-I{protocols_dir()}", "-o", str(out), str(HARNESS),
           str(protocols_dir() / "postgres.c"), str(protocols_dir() / "postgres_tracker.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 and "sanitizer" in proc.stderr.lower():
        pytest.skip(f"gcc cannot link the sanitizers here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    return out


def stream(reads: list[tuple[int, bytes]]) -> bytes:
    return b"".join(bytes([d]) + struct.pack(">I", len(b)) + b for d, b in reads)


def run(harness: Path, data: bytes, mode: str = "asis") -> tuple[list[str], dict[str, int]]:
    proc = subprocess.run([str(harness), mode], input=data, capture_output=True, timeout=60)
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0 and "runtime error" not in err, err[-3000:]
    counts = dict(kv.split("=") for kv in err.strip().splitlines()[-1].split())
    return proc.stdout.decode().splitlines(), {k: int(v) for k, v in counts.items()}


def connections() -> list[tuple[str, list[tuple[int, bytes]]]]:
    out = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        conv = Conversation.load(path)
        for c in conv.connections:
            reads = [(0 if e.dir == "client" else 1, e.data) for e in c.events if e.ev == "data"]
            out.append((f"{path.stem}/{c.id}", reads))
    return out


CONNECTIONS = connections()


@pytest.mark.parametrize("name, reads", CONNECTIONS, ids=[n for n, _ in CONNECTIONS])
def test_events_do_not_depend_on_read_boundaries(harness: Path, name: str,
                                                 reads: list[tuple[int, bytes]]) -> None:
    data = stream(reads)
    events, counts = run(harness, data)
    assert events and not any(" error " in e for e in events)
    if name != "tls_session/0" and not name.startswith(("auth_failure", "cancel_request/1")):
        assert any(e.startswith("T stmt ") for e in events), name
    # One window fetch per read: headers and fields are parsed in place.
    big = sum(len(b) // 4096 for _, b in reads)
    assert counts["fetches"] <= counts["feeds"] + big
    for mode in ("split=1", "split=3", "split=7", "seed=1", "seed=2"):
        assert run(harness, data, mode)[0] == events, mode


def test_transcript_of_a_savepoint_transaction(harness: Path) -> None:
    reads = dict(CONNECTIONS)["transactions/0"]
    events, _ = run(harness, stream(reads))
    qcz = [e for e in events if e[2] in "QCZ"]
    tail = qcz[qcz.index("C Q len=16 sql=SELECT 1/0; trunc=0"):][:16]
    assert tail == [
        "C Q len=16 sql=SELECT 1/0; trunc=0",
        "S Z len=5 status=E",
        "C Q len=12 sql=COMMIT; trunc=0",
        "S C len=13 tag=ROLLBACK kind=rollback rows=0:0",
        "S Z len=5 status=I",
        "C Q len=23 sql=START TRANSACTION; trunc=0",
        "S C len=22 tag=START TRANSACTION kind=begin rows=0:0",
        "S Z len=5 status=T",
        "C Q len=28 sql=SELECT count(*) FROM t; trunc=0",
        "S C len=13 tag=SELECT 1 kind=select rows=1:1",
        "S Z len=5 status=T",
        "C Q len=9 sql=END; trunc=0",
        "S C len=11 tag=COMMIT kind=commit rows=0:0",
        "S Z len=5 status=I",
        "C Q len=18 sql=DROP TABLE t; trunc=0",
        "S C len=15 tag=DROP TABLE kind=ddl rows=0:0",
    ]
    errors = [e for e in events if e.startswith("S E ")]
    assert errors == ["S E len=65 sev=ERROR sqlstate=22012"]


def test_long_sql_is_truncated_and_the_body_skipped(harness: Path) -> None:
    sql = b"SELECT '" + b"x" * 100_000 + b"'"
    q = b"Q" + struct.pack(">I", len(sql) + 5) + sql + b"\0"
    params = b"user\0u\0\0"
    startup = struct.pack(">II", 8 + len(params), 196608) + params
    data = stream([(0, startup), (0, q[:3]), (0, q[3:70_000]), (0, q[70_000:] + b"S\0\0\0\4")])
    events, counts = run(harness, data)
    assert events[0] == "C startup v=196608 user=u database= app="
    assert events[1] == f"C Q len={len(sql) + 5} sql=SELECT '{'x' * 504} trunc=1"
    assert events[2] == "C S len=4"
    assert counts["fetches"] <= 6


def test_mutated_and_random_streams_are_memory_safe(harness: Path) -> None:
    rnd = random.Random(5)
    for i in range(150):
        _, reads = rnd.choice(CONNECTIONS)
        mutated = []
        for d, b in reads:
            buf = bytearray(b)
            if buf and rnd.random() < 0.3:
                for _ in range(rnd.randint(1, 4)):
                    buf[rnd.randrange(len(buf))] = rnd.randrange(256)
            mutated.append((d, bytes(buf)))
        if i % 5 == 0:
            mutated = [(rnd.randint(0, 1), rnd.randbytes(rnd.randint(0, 200)))
                       for _ in range(rnd.randint(1, 8))]
        events, _ = run(harness, stream(mutated), f"seed={i}")
        assert sum(" error " in e for e in events) <= 1
