"""A transparent TCP relay that records every read as a conversation event.

    with Recorder(upstream=("127.0.0.1", 5432), out="session.jsonl") as rec:
        run_a_client(port=rec.port)
    # the file is complete on exit

The file is written as the conversation happens, one flushed line per event,
so a recorder that is killed leaves everything it relayed up to then.

Each accepted client gets its own upstream connection and two pump threads
(client->server, server->client). Bytes are forwarded unchanged and in the
chunks they were read, so the recording keeps the real read boundaries. A FIN
from one side is passed on as a half-close, as a proxy with half-close does.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conversation import Closer, Conversation, ConversationWriter, Direction
from .errors import WirelabError

_READ = 65536


@dataclass
class RecorderStats:
    connections: int = 0
    active: int = 0
    client_bytes: int = 0
    server_bytes: int = 0


class _Relay:
    """One client connection and its upstream connection."""

    def __init__(self, rec: Recorder, conn_id: int, client: socket.socket, upstream: socket.socket):
        self.rec, self.id = rec, conn_id
        self.client, self.upstream = client, upstream
        self.first_closer: Closer | None = None
        self.lock = threading.Lock()
        self.pumps = [
            threading.Thread(target=self._pump, args=(client, upstream, "client"), daemon=True),
            threading.Thread(target=self._pump, args=(upstream, client, "server"), daemon=True),
        ]
        self.done = threading.Event()
        self.aborted = False
        self._left = 2

    def start(self) -> None:
        for p in self.pumps:
            p.start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: Direction) -> None:
        closer: Closer = direction
        try:
            while True:
                chunk = src.recv(_READ)
                if not chunk:
                    break
                self.rec._data(self.id, direction, chunk)
                dst.sendall(chunk)
        except OSError:
            pass  # a reset: this side is finished
        if self.aborted:
            closer = "recorder"
        with self.lock:
            if self.first_closer is None:
                self.first_closer = closer
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self._finish()

    def _finish(self) -> None:
        with self.lock:
            self._left -= 1
            last = self._left == 0
        if last:
            for s in (self.client, self.upstream):
                s.close()
            self.rec._closed(self.id, self.first_closer or "recorder")
            self.done.set()

    def abort(self) -> None:
        self.aborted = True
        for s in (self.client, self.upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class Recorder:
    """Relay `listen` -> `upstream`, recording into a Conversation (and `out`, as it goes)."""

    def __init__(
        self,
        listen: tuple[str, int] = ("127.0.0.1", 0),
        upstream: tuple[str, int] = ("127.0.0.1", 0),
        out: str | Path | None = None,
        protocol: str = "tcp",
        meta: dict[str, Any] | None = None,
    ):
        if not upstream[1]:
            raise WirelabError("the recorder needs an upstream port (--upstream HOST:PORT)")
        self.listen_addr, self.upstream_addr = listen, upstream
        self.out = Path(out) if out else None
        self.conversation = Conversation(protocol=protocol, meta=dict(meta or {}))
        self.conversation.meta.setdefault("upstream", f"{upstream[0]}:{upstream[1]}")
        self.stats = RecorderStats()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._relays: list[_Relay] = []
        self._sock: socket.socket | None = None
        self._bound: tuple[str, int] | None = None
        self._acceptor: threading.Thread | None = None
        self._writer: ConversationWriter | None = None
        self._t0 = 0.0

    # --- lifecycle ------------------------------------------------------------
    def start(self) -> Recorder:
        try:
            sock = socket.create_server(self.listen_addr, reuse_port=False)
        except OSError as exc:
            host, port = self.listen_addr
            raise WirelabError(
                f"cannot listen on {host}:{port}: {exc.strerror} (pick another --listen port)"
            ) from None
        sock.settimeout(0.1)  # lets the accept loop notice stop()
        self._sock = sock
        self._bound = sock.getsockname()[:2]
        self._t0 = time.monotonic()
        self.conversation.meta.setdefault("recorded_at", time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                       time.gmtime()))
        if self.out is not None:
            try:
                self._writer = self.conversation.writer(self.out)
            except OSError as exc:
                sock.close()
                raise WirelabError(
                    f"cannot write {self.out}: {exc.strerror} (pick another -o file)"
                ) from None
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()
        return self

    def stop(self, grace: float = 2.0) -> Conversation:
        """Stop accepting, let open connections finish for `grace` s, then cut them."""
        if self._sock is None:
            return self.conversation
        self._stopping.set()
        if self._acceptor:
            self._acceptor.join()
        self._sock.close()
        deadline = time.monotonic() + grace
        for relay in list(self._relays):
            relay.done.wait(max(0.0, deadline - time.monotonic()))
        for relay in list(self._relays):
            if not relay.done.is_set():
                relay.abort()
                relay.done.wait(5)
        self._sock = None
        if self._writer is not None:
            self._writer.close()
        return self.conversation

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._addr()[0]

    @property
    def port(self) -> int:
        return self._addr()[1]

    def _addr(self) -> tuple[str, int]:
        if self._bound is None:
            raise WirelabError("the recorder is not running (use it as `with Recorder(...)`)")
        return self._bound

    # --- threads ---------------------------------------------------------------
    def _now(self) -> float:
        return time.monotonic() - self._t0

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stopping.is_set():
            try:
                client, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self._open(client, addr)

    def _open(self, client: socket.socket, addr: tuple) -> None:
        try:
            upstream = socket.create_connection(self.upstream_addr, timeout=10)
            upstream.settimeout(None)
        except OSError:
            with self._lock:
                cid = self.stats.connections
                self.stats.connections += 1
                self.conversation.open(cid, self._now(), f"{addr[0]}:{addr[1]}", self._dst())
                self._written()
                self.conversation.close(cid, self._now(), "server")
                self._written()
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            cid = self.stats.connections
            self.stats.connections += 1
            self.stats.active += 1
            self.conversation.open(cid, self._now(), f"{addr[0]}:{addr[1]}", self._dst())
            self._written()
            relay = _Relay(self, cid, client, upstream)
            self._relays.append(relay)
        relay.start()

    def _dst(self) -> str:
        host, port = self._addr()
        return f"{host}:{port}"

    def _data(self, conn: int, direction: Direction, chunk: bytes) -> None:
        # Under the lock so event order in the file matches the order of reads.
        with self._lock:
            self.conversation.data(conn, self._now(), direction, chunk)
            self._written()
            if direction == "client":
                self.stats.client_bytes += len(chunk)
            else:
                self.stats.server_bytes += len(chunk)

    def _closed(self, conn: int, by: Closer) -> None:
        with self._lock:
            self.conversation.close(conn, self._now(), by)
            self._written()
            self.stats.active -= 1

    def _written(self) -> None:
        """Put the event just added in the file (called under the lock)."""
        if self._writer is not None:
            self._writer.write(self.conversation.events[-1])


def parse_hostport(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """'HOST:PORT', ':PORT' or 'PORT' -> (host, port)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise WirelabError(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:5432)")
    return host, int(port)
