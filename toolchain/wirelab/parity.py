"""Parity with Envoy: the same filter, the same conversation, the same metrics.

    emu = run_in_emulator("build/f.wasm", conv, {"stat_prefix": "x"})
    env = run_in_envoy("build/f.wasm", conv, {"stat_prefix": "x"})
    assert compare(emu, env) == []

`run_in_envoy` starts a real Envoy (listener -> the Wasm filter -> tcp_proxy)
whose upstream is a scripted server on loopback, connects a scripted client to
the listener, and plays the conversation's events in their recorded order: the
side that sent a chunk sends it, the other side reads exactly those bytes
before the next event starts, and connections close as recorded (who closed
first). Both sides' bytes are checked, so a filter that changed traffic fails.

Both runners return `Metrics.as_dict()` shape with the filter's own names:
`{"counters": {...}, "gauges": {...}, "histograms": {name: {"count", "sum"}}}`.
`compare` checks counters and gauges exactly and histograms by sample count
only: Envoy measures real time while the emulator replays recorded time, so
sums differ by design.

Envoy is free to coalesce or split reads differently from the recording (and
does), so only metrics that depend on the byte stream, not on read
boundaries, can be compared; pass the others in `ignore`. Metrics a filter
changes in proxy_on_vm_start/proxy_on_configure differ too: Envoy 1.40 starts
concurrency + 2 plugin instances (two on the main thread), the emulator one
per worker.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conversation import Conversation
from .envoy import EnvoyProcess, FilterSpec, ListenerSpec
from .envoy.stats import PREFIX, Snapshot
from .errors import WirelabError
from .replay import replay

MetricsDict = dict[str, dict[str, Any]]
KINDS = ("counters", "gauges", "histograms")
# The emulator's plugin name; Envoy's plugin gets the same one.
PLUGIN_NAME = "wirelab"


class ParityError(WirelabError):
    """The scripted peer could not play a conversation through Envoy."""


def _config(plugin_config: bytes | str | dict | None) -> dict[str, Any] | str:
    if plugin_config is None:
        return {}
    if isinstance(plugin_config, bytes):
        return plugin_config.decode()
    return plugin_config


def _load(conversation: Conversation | str | Path) -> Conversation:
    if isinstance(conversation, Conversation):
        return conversation
    return Conversation.load(conversation)


# --- the emulator side ----------------------------------------------------------


@dataclass
class EmulatorRun:
    metrics: MetricsDict
    traps: list[str]
    unclosed: list[int]


def run_in_emulator(
    wasm: str | Path,
    conversation: Conversation | str | Path,
    plugin_config: bytes | str | dict | None = None,
) -> EmulatorRun:
    """`replay()` with recorded read boundaries and the policy Envoy gets (FAIL_CLOSED)."""
    result = replay(wasm, _load(conversation), plugin_config=plugin_config,
                    plugin_name=PLUGIN_NAME, failure_policy="FAIL_CLOSED")
    return EmulatorRun(result.metrics.as_dict(), result.traps, result.unclosed)


# --- the Envoy side -------------------------------------------------------------


def _custom(snap: Snapshot) -> MetricsDict:
    """The filter's metrics only, under the names the filter defined."""

    def strip(table: dict[str, Any]) -> dict[str, Any]:
        return {k[len(PREFIX):]: v for k, v in table.items() if k.startswith(PREFIX)}

    return {
        "counters": strip(snap.counters),
        "gauges": strip(snap.gauges),
        "histograms": {k: {"count": h.count, "sum": h.sum}
                       for k, h in strip(snap.histograms).items()},
    }


@dataclass
class _Pair:
    """One conversation connection: our client's socket and our server's socket."""

    client: socket.socket
    server: socket.socket
    closed: bool = False

    def side(self, name: str) -> socket.socket:
        return self.client if name == "client" else self.server


@dataclass
class ScriptedPeer:
    """Plays a conversation's two sides through a proxy listening on `proxy_port`;
    `upstream` is the listening socket the proxy connects to."""

    upstream: socket.socket
    proxy_port: int
    timeout: float = 20.0
    pairs: dict[int, _Pair] = field(default_factory=dict)

    def play(self, conv: Conversation) -> None:
        deadline = time.monotonic() + self.timeout
        for e in conv.events:
            pair = self.pairs.get(e.conn)
            if e.ev == "open" or pair is None:
                if pair is not None:
                    raise ParityError(f"connection {e.conn} is opened twice in the conversation")
                pair = self.pairs[e.conn] = self._open(e.conn, deadline)
                if e.ev == "open":
                    continue
            if pair.closed:
                raise ParityError(f"connection {e.conn} has events after its close")
            if e.ev == "data":
                if not e.data:
                    continue  # an empty read is no event on a socket
                other = "server" if e.dir == "client" else "client"
                _transfer(pair.side(e.dir or "client"), pair.side(other), e.data, deadline,
                          f"connection {e.conn}, {e.dir} -> {other}")
            elif e.ev == "close":
                first = "server" if e.by == "server" else "client"
                second = "client" if first == "server" else "server"
                # The first side closes; Envoy passes the FIN on; the peer sees EOF
                # and closes too, as a recorded peer did.
                pair.side(first).close()
                _expect_eof(pair.side(second), deadline, f"connection {e.conn} ({second})")
                pair.side(second).close()
                pair.closed = True

    @property
    def open_connections(self) -> int:
        return sum(not p.closed for p in self.pairs.values())

    def close_all(self) -> None:
        for pair in self.pairs.values():
            if not pair.closed:
                pair.client.close()
                pair.server.close()
                pair.closed = True

    def _open(self, conn: int, deadline: float) -> _Pair:
        client = socket.create_connection(("127.0.0.1", self.proxy_port), timeout=self.timeout)
        # tcp_proxy connects upstream as soon as it has the downstream connection,
        # and opens are played one at a time, so this accept is this connection's.
        self.upstream.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            server, _ = self.upstream.accept()
        except TimeoutError:
            client.close()
            raise ParityError(
                f"connection {conn}: Envoy did not connect upstream (timed out)") from None
        for s in (client, server):
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Pair(client, server)


def _transfer(sender: socket.socket, receiver: socket.socket, data: bytes, deadline: float,
              what: str) -> None:
    """Send `data` and read exactly it on the other side. Sending and reading
    interleave so a message larger than every buffer on the way cannot deadlock."""
    view = memoryview(data)
    sent = 0
    got = bytearray()
    while len(got) < len(data):
        left = deadline - time.monotonic()
        if left <= 0:
            raise ParityError(f"{what}: {len(got)} of {len(data)} bytes arrived before timeout")
        writers = [sender] if sent < len(data) else []
        readable, writable, _ = select.select([receiver], writers, [], left)
        if writable:
            try:
                sent += sender.send(view[sent:sent + 65536])
            except BlockingIOError:
                pass
            except OSError as exc:
                raise ParityError(f"{what}: send failed ({exc}): Envoy closed early") from None
        if readable:
            try:
                chunk = receiver.recv(len(data) - len(got))
            except BlockingIOError:
                continue
            except OSError as exc:
                raise ParityError(f"{what}: receive failed ({exc})") from None
            if not chunk:
                raise ParityError(
                    f"{what}: the connection closed after {len(got)} of {len(data)} bytes")
            if chunk != data[len(got):len(got) + len(chunk)]:
                raise ParityError(f"{what}: bytes changed on the way through Envoy")
            got += chunk


def _expect_eof(sock: socket.socket, deadline: float, what: str) -> None:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ParityError(f"{what}: no end of stream from Envoy before timeout")
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            continue
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            continue
        except ConnectionResetError:
            return  # a reset also ends the stream
        if not chunk:
            return
        raise ParityError(f"{what}: {len(chunk)} unexpected bytes instead of end of stream")


class EnvoyRig:
    """One Envoy with one listener -> the filter -> tcp_proxy -> a scripted server.

        with EnvoyRig(wasm, config) as rig:
            metrics = rig.run(conversation)

    Envoy's stats are cumulative, so use one rig per conversation when gauges
    must start at zero (`run_in_envoy` does).
    """

    def __init__(self, wasm: str | Path, plugin_config: bytes | str | dict | None = None,
                 stats_flush_interval_ms: int = 50, timeout: float = 30.0):
        self.wasm = Path(wasm)
        self.plugin_config = _config(plugin_config)
        self.flush_s = stats_flush_interval_ms / 1000
        self.timeout = timeout
        self._upstream = socket.create_server(("127.0.0.1", 0), backlog=64)
        # a lib<name>.so is the native build: Envoy's dynamic_modules filter
        target = "native" if self.wasm.suffix == ".so" else "wasm"
        spec = FilterSpec(PLUGIN_NAME, self.wasm, self.plugin_config,
                          failure_policy="FAIL_CLOSED", target=target)
        listener = ListenerSpec("parity", ("127.0.0.1", self._upstream.getsockname()[1]),
                                [spec])
        self.envoy = EnvoyProcess([listener], stats_flush_interval_ms=stats_flush_interval_ms)

    def __enter__(self) -> EnvoyRig:
        try:
            self.envoy.start()
        except BaseException:
            self._upstream.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.envoy.stop()
        self._upstream.close()

    def run(self, conversation: Conversation | str | Path) -> MetricsDict:
        """Play the conversation; return the filter's metrics once Envoy is done
        with it. Connections the conversation leaves open stay open until then,
        as they do in the emulator."""
        conv = _load(conversation)
        peer = ScriptedPeer(self._upstream, self.envoy.port("parity"), self.timeout)
        try:
            try:
                peer.play(conv)
            except ParityError as exc:
                raise ParityError(f"{exc}\n--- Envoy log (tail) ---\n{self.envoy.log_tail()}"
                                  ) from None
            return self._settled(len(peer.pairs), peer.open_connections)
        finally:
            peer.close_all()

    def _settled(self, total: int, still_open: int) -> MetricsDict:
        """Wait until Envoy has destroyed every closed connection (so close, done
        and delete callbacks ran) and two snapshots a few stats flushes apart
        agree (histograms only move on a flush)."""
        port = self.envoy.port("parity")
        active = f"listener.127.0.0.1_{port}.downstream_cx_active"
        destroyed = f"listener.127.0.0.1_{port}.downstream_cx_destroy"
        deadline = time.monotonic() + self.timeout
        last: MetricsDict | None = None
        while True:
            snap = self.envoy.stats.snapshot()
            done = (snap.gauges.get(active) == still_open
                    and snap.counters.get(destroyed, 0) == total - still_open)
            current = _custom(snap)
            if done and current == last:
                return current
            last = current if done else None
            if time.monotonic() > deadline:
                raise ParityError(
                    f"Envoy did not settle: {active}={snap.gauges.get(active)} "
                    f"(want {still_open}), {destroyed}={snap.counters.get(destroyed)} "
                    f"(want {total - still_open})\n--- Envoy log (tail) ---\n"
                    f"{self.envoy.log_tail()}")
            time.sleep(4 * self.flush_s)


def run_in_envoy(
    wasm: str | Path,
    conversation: Conversation | str | Path,
    plugin_config: bytes | str | dict | None = None,
) -> MetricsDict:
    """Play `conversation` through a fresh Envoy running the filter (a .wasm, or
    a native lib<name>.so); its metrics."""
    with EnvoyRig(wasm, plugin_config) as rig:
        return rig.run(conversation)


# --- comparing ------------------------------------------------------------------


def compare(emulator: MetricsDict, envoy: MetricsDict, ignore: tuple[str, ...] = ()
            ) -> list[str]:
    """Every disagreement as one line; empty when the metrics agree.

    Every metric must be defined on both sides. Counters and gauges must be
    equal; a gauge is compared as Envoy stores it, an unsigned 64-bit number
    (the emulator reports -3 where Envoy's stats say 18446744073709551613).
    Histograms compare sample counts only. Names in `ignore` are skipped.
    """
    out: list[str] = []
    for kind in KINDS:
        emu, env = emulator.get(kind, {}), envoy.get(kind, {})
        label = kind[:-1]
        for name in sorted(set(emu) | set(env)):
            if name in ignore:
                continue
            if name not in env:
                out.append(f"{label} {name}: defined in the emulator, not in Envoy")
            elif name not in emu:
                out.append(f"{label} {name}: defined in Envoy, not in the emulator")
            elif kind == "histograms":
                a, b = emu[name]["count"], env[name]["count"]
                if a != b:
                    out.append(f"histogram {name}: emulator {a} samples, Envoy {b}")
            else:
                a, b = emu[name], env[name]
                if kind == "gauges":
                    a, b = a % 2**64, b % 2**64
                if a != b:
                    out.append(f"{label} {name}: emulator {emu[name]}, Envoy {env[name]}")
    return out


__all__ = [
    "EmulatorRun", "EnvoyRig", "ParityError", "ScriptedPeer", "compare", "run_in_emulator",
    "run_in_envoy",
]
