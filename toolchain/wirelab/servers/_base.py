"""What every local server shares: the `with` lifecycle, its directory, its log."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from types import TracebackType

from . import _process
from ._orphans import reap_orphans
from ._ports import HOST
from ._process import ServerProcess, tail
from .errors import ServerError, last_lines


class LocalServer:
    """Base for PostgresServer / MariaDBServer; subclasses implement `_start`."""

    kind = "server"

    def __init__(self, *, tls: bool, port: int | None, user: str, password: str | None,
                 database: str):
        self.tls = tls
        self.host = HOST
        self._requested_port = port
        self.port = 0
        self.user = user
        self.password = password or secrets.token_hex(12)
        self.database = database
        self.version = ""
        self.ca_path: Path | None = None
        self.dir: Path | None = None
        self.log_path: Path | None = None
        self.process: ServerProcess | None = None
        self._final_log = ""
        self._closed = False

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self):
        if self.process is not None:
            raise RuntimeError(f"{self.kind} already started")
        _process.register(self)
        reap_orphans()
        try:
            self._start()
        except BaseException:
            # Ctrl-C during initdb or a failed readiness check: leave nothing behind.
            self.close()
            raise
        return self

    def _start(self) -> None:
        raise NotImplementedError

    def _stop_signal(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the server and its children, keep the log text, remove the directory."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.process is not None:
                self.process.stop(self._stop_signal())
        finally:
            if self.log_path is not None:
                self._final_log = tail(self.log_path, 500)
            if self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
            _process.unregister(self)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.exit_code() is None and not self._closed

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def log_tail(self, n: int = 50) -> str:
        """The last n lines the server wrote (also after it stopped)."""
        if self._closed or self.log_path is None:
            lines = self._final_log.splitlines()
            return "\n".join(lines[-n:])
        return tail(self.log_path, n)

    def _exited_on_taken_port(self, name: str, bind_failed: tuple[str, ...]) -> bool:
        """While starting: False if the server still runs, True if it exited because its
        port was taken (its log holds one of `bind_failed`); raises on any other exit."""
        code = self.process.exit_code()
        if code is None:
            return False
        log = self.log_tail()
        if any(marker in log for marker in bind_failed):
            return True
        raise ServerError(f"{name} exited with code {code} while starting: "
                          f"{last_lines(log)}", log)

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {self.version} {state}>"
