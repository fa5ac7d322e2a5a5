"""Envoy's failure policies with a Wasm filter that traps mid-connection
(tests/fixtures/trap_filter/trap.c: a client read containing "TRAP" executes
`unreachable`), in real Envoy in front of an echo server.

What Envoy 1.40 does, and these tests pin down:
- every policy: the connection whose callback trapped is closed, and the trap
  is logged once at error level ("Function: proxy_on_downstream_data failed:
  Uncaught RuntimeError: unreachable");
- FAIL_OPEN: later connections flow, without the (dead) filter;
- FAIL_CLOSED: later connections are refused;
- FAIL_RELOAD: after a back-off the next connection gets a fresh VM (the
  filter's per-VM start counter and V8's `created` move by one,
  `vm_reload_success` counts it) and the filter sees traffic again.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "trap_filter" / "trap.c"
TRAP_LOG = "Function: proxy_on_downstream_data failed: Uncaught RuntimeError: unreachable"


@pytest.fixture(scope="module")
def trap_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trap") / "trap.wasm"
    proc = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-mexec-model=reactor",
         "-O2", "-s", "-Wl,--export=malloc", "-Wl,--export=free", "-o", str(out), str(FIXTURE)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def roundtrip(port: int, payload: bytes) -> bytes | None:
    """Sends `payload` on a new connection, returns the echo (None when Envoy
    refuses or drops the connection before the echo is back)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                data = s.recv(65536)
                if not data:
                    return None
                got += data
            return got
    except OSError:
        return None


def trap_one_connection(port: int) -> bytes:
    """A connection that works, then traps the filter: returns what arrived
    after the trapping read (up to the close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"hello")
        assert s.recv(5) == b"hello"
        s.sendall(b"xTRAPx")
        after = b""
        try:
            while data := s.recv(65536):
                after += data
        except OSError:
            pass
        return after


def start(trap_wasm: Path, echo_port: int, policy: str) -> EnvoyProcess:
    spec = FilterSpec("trap", trap_wasm, {}, failure_policy=policy)
    return EnvoyProcess([ListenerSpec("t", ("127.0.0.1", echo_port), [spec])])


def trap_logs(envoy: EnvoyProcess) -> int:
    """Times the trap was logged (Envoy flushes its log file on an interval)."""
    deadline = time.monotonic() + 20
    while TRAP_LOG not in envoy.log_tail(100_000) and time.monotonic() < deadline:
        time.sleep(0.2)
    return envoy.log_tail(100_000).count(TRAP_LOG)


def reads(envoy: EnvoyProcess) -> int:
    return envoy.stats.snapshot().value("trap.reads.direction=client") or 0


def test_fail_open_closes_the_trapping_connection_and_lets_later_ones_through(
        trap_wasm: Path, echo_server) -> None:
    with start(trap_wasm, echo_server.port, "FAIL_OPEN") as envoy:
        assert roundtrip(envoy.port("t"), b"before") == b"before"
        seen = reads(envoy)
        assert trap_one_connection(envoy.port("t")) == b""
        for i in range(5):
            assert roundtrip(envoy.port("t"), b"after %d" % i) == b"after %d" % i
        # Only the trapping connection's first read reached the filter since.
        assert reads(envoy) == seen + 1
        assert trap_logs(envoy) == 1


def test_fail_closed_refuses_every_later_connection(trap_wasm: Path, echo_server) -> None:
    with start(trap_wasm, echo_server.port, "FAIL_CLOSED") as envoy:
        assert roundtrip(envoy.port("t"), b"before") == b"before"
        assert trap_one_connection(envoy.port("t")) == b""
        assert [roundtrip(envoy.port("t"), b"after") for _ in range(5)] == [None] * 5
        assert trap_logs(envoy) == 1


def test_fail_reload_gives_the_next_connection_a_fresh_vm(trap_wasm: Path, echo_server) -> None:
    with start(trap_wasm, echo_server.port, "FAIL_RELOAD") as envoy:
        assert roundtrip(envoy.port("t"), b"before") == b"before"
        before = envoy.stats.snapshot()
        assert trap_one_connection(envoy.port("t")) == b""
        # Envoy backs off before reloading: connections in that window close.
        deadline = time.monotonic() + 30
        while roundtrip(envoy.port("t"), b"again") != b"again":
            assert time.monotonic() < deadline, envoy.log_tail(40)
            time.sleep(0.2)
        fresh = envoy.stats.snapshot()
        for i in range(3):
            assert roundtrip(envoy.port("t"), b"more %d" % i) == b"more %d" % i
        delta = envoy.stats.delta(before, envoy.stats.snapshot())
        assert delta["trap.vm_starts"] == 1
        assert delta["wasm.envoy.wasm.runtime.v8.created"] == 1
        assert delta["wasm.trap.vm_reload_success"] == 1
        # The fresh VM's filter sees the traffic: one client read per roundtrip.
        assert reads(envoy) - (fresh.value("trap.reads.direction=client") or 0) == 3
        assert trap_logs(envoy) == 1
