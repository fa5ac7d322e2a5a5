"""A small threaded TCP server for tests: an echo upstream for a filter in Envoy,
or any other per-connection behaviour.

    from wirelab.testing.tcp import TcpServer

    with TcpServer() as upstream:                      # echoes every byte back
        listener = ListenerSpec("echo", upstream.address, [spec])
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable


def echo(conn: socket.socket) -> None:
    """Sends back every byte it receives until the client hangs up."""
    while data := conn.recv(1 << 16):
        conn.sendall(data)


class TcpServer:
    """Listens on 127.0.0.1 (a free port); runs `serve(conn)` in a thread of its own
    for each connection, so several clients talk at once, and closes the connection
    when `serve` returns."""

    def __init__(self, serve: Callable[[socket.socket], None] = echo) -> None:
        self._serve = serve
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self._sock.getsockname()[1]
        self.address = (self.host, self.port)
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:  # closed
                return
            self.connections += 1
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with conn:
            self._serve(conn)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> TcpServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
