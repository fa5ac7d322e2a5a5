"""Fixtures shared by unit and e2e tests: small, generic, real."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from wirelab.testing.tcp import TcpServer

pytest_plugins = ["pytester"]

# CI replays the same fuzz examples every run (a failure there is reproducible
# from the log); local runs keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def echo_server() -> Iterator[TcpServer]:
    """A TCP server on 127.0.0.1 that sends back every byte it receives."""
    with TcpServer() as server:
        yield server


def _roundtrip(port: int, payload: bytes, host: str = "127.0.0.1") -> bytes:
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got


@pytest.fixture
def roundtrip() -> Callable[..., bytes]:
    """roundtrip(port, payload): one connection, send, read len(payload) back, close."""
    return _roundtrip


@pytest.fixture(scope="session")
def envoy_probe_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/envoy_probe/probe.c compiled with Zig's clang (raw proxy-wasm ABI)."""
    out = tmp_path_factory.mktemp("probe") / "probe.wasm"
    cmd = [
        sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-mexec-model=reactor",
        "-O2", "-s", "-Wl,--export=malloc", "-Wl,--export=free",
        "-o", str(out), str(FIXTURES / "envoy_probe" / "probe.c"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def bytes_counter_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/bytes-counter built by wirelab's own build, in a copy outside the checkout."""
    from wirelab.build import build_project
    from wirelab.paths import examples_dir
    from wirelab.project import Project

    src = tmp_path_factory.mktemp("examples") / "bytes-counter"
    shutil.copytree(examples_dir() / "bytes-counter", src, ignore=shutil.ignore_patterns("build"))
    return build_project(Project.load(src)).wasm
