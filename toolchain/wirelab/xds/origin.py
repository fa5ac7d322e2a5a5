"""A small HTTP origin for blobs: what an object store's HTTP endpoint is to a fleet."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Quiet(SimpleHTTPRequestHandler):
    served: list[str]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        del format, args

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
        self.served.append(self.path)
        super().do_GET()


class BlobOrigin:
    """Serves `directory` read-only on 127.0.0.1 (GET/HEAD) from a thread.

        with BlobOrigin(export_dir) as origin:
            origin.url   # http://127.0.0.1:PORT ; blobs at /blobs/<sha256>.wasm
    """

    def __init__(self, directory: str | Path, port: int = 0):
        # Paths requested, in order: which blobs the fleet fetched.
        self.served: list[str] = []
        handler = functools.partial(
            type("_Handler", (_Quiet,), {"served": self.served}),
            directory=str(Path(directory).absolute()))
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="wirelab-blob-origin")

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BlobOrigin:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> BlobOrigin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
