"""The conversation format and the recording relay, against real sockets."""

from __future__ import annotations

import json
import socket

import pytest

from wirelab.conversation import Conversation
from wirelab.errors import WirelabError
from wirelab.record import Recorder, parse_hostport
from wirelab.testing.tcp import TcpServer


def _greet(conn: socket.socket) -> None:
    """A server that speaks first and hangs up."""
    conn.sendall(b"220 hello\r\n")


def _exchange(port: int, messages: list[bytes]) -> list[bytes]:
    replies = []
    with socket.create_connection(("127.0.0.1", port)) as s:
        for m in messages:
            s.sendall(m)
            got = b""
            while len(got) < len(m):
                got += s.recv(65536)
            replies.append(got)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b""
    return replies


def test_relay_forwards_and_records_every_read(tmp_path):
    server = TcpServer()
    out = tmp_path / "echo.jsonl"
    try:
        with Recorder(upstream=("127.0.0.1", server.port), out=out, protocol="tcp") as rec:
            assert _exchange(rec.port, [b"hello", b"\x00\x01binary\xff"]) == [
                b"hello",
                b"\x00\x01binary\xff",
            ]
            assert _exchange(rec.port, [b"second"]) == [b"second"]
    finally:
        server.close()

    conv = Conversation.load(out)
    assert conv.protocol == "tcp"
    assert conv.meta["upstream"] == f"127.0.0.1:{server.port}"
    c0, c1 = conv.connections
    assert [(e.ev, e.dir, e.data) for e in c0.events] == [
        ("open", None, b""),
        ("data", "client", b"hello"),
        ("data", "server", b"hello"),
        ("data", "client", b"\x00\x01binary\xff"),
        ("data", "server", b"\x00\x01binary\xff"),
        ("close", None, b""),
    ]
    assert c0.closed_by == "client"
    assert c0.src.startswith("127.0.0.1:")
    assert c0.dst == f"127.0.0.1:{rec.port}"
    assert c1.bytes("client") == b"second" and c1.bytes("server") == b"second"
    times = [e.t for e in conv.events]
    assert times == sorted(times)
    assert conv.total_bytes() == 2 * (5 + 9 + 6)


def test_server_close_is_recorded(tmp_path):
    server = TcpServer(_greet)
    try:
        with Recorder(upstream=("127.0.0.1", server.port), out=tmp_path / "g.jsonl") as rec:
            with socket.create_connection(("127.0.0.1", rec.port)) as s:
                got = b""
                while chunk := s.recv(100):
                    got += chunk
            assert got == b"220 hello\r\n"
    finally:
        server.close()
    (conn,) = Conversation.load(tmp_path / "g.jsonl").connections
    assert conn.bytes("server") == b"220 hello\r\n"
    assert conn.closed_by == "server"


def test_stop_cuts_open_connections(tmp_path):
    server = TcpServer()
    try:
        rec = Recorder(upstream=("127.0.0.1", server.port), out=tmp_path / "c.jsonl").start()
        s = socket.create_connection(("127.0.0.1", rec.port))
        s.sendall(b"x")
        assert s.recv(10) == b"x"
        conv = rec.stop(grace=0.2)
        s.close()
    finally:
        server.close()
    assert conv.connections[0].closed_by == "recorder"


def test_round_trip_and_short_form(tmp_path):
    conv = Conversation(protocol="postgres", meta={"note": "hand-written"})
    conv.open(0, 0.0, "10.0.0.1:5555", "10.0.0.2:5432")
    conv.data(0, 0.5, "client", b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
    conv.close(0, 1.25, "server")
    path = conv.save(tmp_path / "x.jsonl")
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {
        "format": "wirelab-conversation",
        "version": 1,
        "protocol": "postgres",
        "meta": {"note": "hand-written"},
    }
    assert json.loads(lines[2]) == {
        "t": 0.5, "conn": 0, "ev": "data", "dir": "client", "data": "AAAACATSFi8="
    }
    assert Conversation.load(path).events == conv.events
    # A data line without "ev" is accepted.
    short = Conversation.parse([lines[0], '{"t": 0, "conn": 3, "ev": "open"}',
                                '{"t": 0, "conn": 3, "dir": "server", "data": "AQI="}'])
    assert short.events[1].data == b"\x01\x02" and short.events[1].conn == 3


@pytest.mark.parametrize(
    "lines, fragment",
    [
        (['{"format": "pcap"}'], "is not a wirelab conversation"),
        (['{"format": "wirelab-conversation", "version": 9}'], "version 9 is not supported"),
        (['{"format": "wirelab-conversation", "version": 1}', "{oops"], ":2: invalid JSON"),
        (
            ['{"format": "wirelab-conversation", "version": 1}', '{"t": 0, "ev": "data"}'],
            'needs "dir"',
        ),
        (
            ['{"format": "wirelab-conversation", "version": 1}', '{"t": -1, "ev": "open"}'],
            "non-negative",
        ),
        (
            ['{"format": "wirelab-conversation", "version": 1}',
             '{"t": 0, "conn": 0, "ev": "open"}',
             '{"t": 0.1, "conn": 1, "dir": "client", "data": "AQI="}'],
            r'f.jsonl:3: data event for connection 1, which was never opened; add '
            r'\{"t": 0.1, "conn": 1, "ev": "open"\} before it',
        ),
        (
            ['{"format": "wirelab-conversation", "version": 1}',
             '{"t": 0, "conn": 0, "ev": "open"}', '{"t": 0.2, "conn": 0, "ev": "open"}'],
            "f.jsonl:3: connection 0 is opened twice",
        ),
    ],
)
def test_bad_files_name_the_problem(lines, fragment):
    with pytest.raises(WirelabError, match=fragment):
        Conversation.parse(lines, source="f.jsonl")


def test_parse_hostport():
    assert parse_hostport("10.1.2.3:5432") == ("10.1.2.3", 5432)
    assert parse_hostport(":6000") == ("127.0.0.1", 6000)
    assert parse_hostport("7000") == ("127.0.0.1", 7000)
    with pytest.raises(WirelabError, match="HOST:PORT"):
        parse_hostport("db:http")


# --- `wirelab record` as scripts run it: in the background, stopped by a signal --------


def _start_recorder(upstream_port: int, out, ignore_sigint: bool):
    import re
    import signal
    import subprocess
    import sys

    def background_job() -> None:  # what a shell does to `cmd &` in a script
        if ignore_sigint:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    proc = subprocess.Popen(
        [sys.executable, "-m", "wirelab", "record", "--listen", "127.0.0.1:0",
         "--upstream", f"127.0.0.1:{upstream_port}", "-o", str(out), "--protocol", "tcp"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=background_job)
    first = proc.stderr.readline()
    port = re.search(r"recording 127\.0\.0\.1:(\d+)", first)
    assert port, first
    return proc, int(port.group(1))


@pytest.mark.parametrize(("stop_with", "ignore_sigint"),
                         [("SIGTERM", False), ("SIGINT", True)])
def test_a_signal_mid_conversation_leaves_a_replayable_file(tmp_path, stop_with, ignore_sigint):
    import signal

    from wirelab.paths import examples_dir
    from wirelab.replay import replay
    from wirelab.testing import load_filter

    server = TcpServer()
    out = tmp_path / "cut.jsonl"
    proc, port = _start_recorder(server.port, out, ignore_sigint)
    try:
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"ping-1")
        assert client.recv(100) == b"ping-1"
        # Written as it happens: the file already holds the exchange.
        assert [e.ev for e in Conversation.load(out).events] == ["open", "data", "data"]
        proc.send_signal(getattr(signal, stop_with))  # the client is still connected
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
        client.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    assert "wrote" in proc.stderr.read()
    conv = Conversation.load(out)
    assert [(e.ev, e.dir, e.data, e.by) for e in conv.events] == [
        ("open", None, b"", None),
        ("data", "client", b"ping-1", None),
        ("data", "server", b"ping-1", None),
        ("close", None, b"", "recorder"),
    ]
    import shutil

    project = tmp_path / "tcp-bytes"  # a copy: the checkout stays untouched
    shutil.copytree(examples_dir() / "lua" / "tcp-bytes", project,
                    ignore=shutil.ignore_patterns("build"))
    host = load_filter(project)
    result = replay(host.path, conv, host=host)
    assert result.unclosed == []
    assert host.metrics.counter("lua.tcpbytes.bytes.direction=client") == 6
    assert host.metrics.counter("lua.tcpbytes.bytes.direction=server") == 6
