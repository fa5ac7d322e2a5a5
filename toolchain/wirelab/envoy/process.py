"""Run one Envoy process for the length of a `with` block."""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

import port_for

from ..errors import EnvoyError
from .binary import envoy_path, startup_reason
from .render import render_bootstrap
from .specs import ListenerSpec
from .stats import StatsClient

# Envoy's startup inventory (version, every linked extension, header map sizes):
# ~100 info lines from server.cc that never explain a failure.
# The entries are indented under two headers; the other startup lines stay.
_STARTUP_INVENTORY = re.compile(
    r"\]\[info\]\[main\] \[source/server/server\.cc:\d+\] "
    r"(?:  |statically linked extensions:|HTTP header map info:)")


def useful_log_lines(text: str) -> list[str]:
    """Envoy's log without its startup inventory."""
    return [ln for ln in text.splitlines() if ln.strip() and not _STARTUP_INVENTORY.search(ln)]


_FILTER_ERROR = re.compile(r"\]\[(?:error|critical)\]\[wasm\] .*?wasm log (?:[^:]*: )?(?P<msg>.*)$")


def filter_errors(text: str) -> list[str]:
    """The error lines filters logged (a Lua error: message, file and line) in Envoy's log."""
    return [m.group("msg") for ln in text.splitlines() if (m := _FILTER_ERROR.search(ln))]


def _free_port(taken: set[int]) -> int:
    while True:
        port = port_for.select_random()
        if port not in taken:
            taken.add(port)
            return port


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook so Envoy gets SIGTERM if this process dies without cleanup
    (SIGKILL, a crash). Linux only, and only from the main thread: the kernel ties
    the signal to the forking *thread*, and a worker thread may end long before."""
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def setup() -> None:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return setup


def _terminate(proc: subprocess.Popen, grace: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def listener_port(ports: Mapping[str, int], listener_name: str) -> int:
    """The port of the listener named so; EnvoyError naming the listeners if there is none."""
    try:
        return ports[listener_name]
    except KeyError:
        raise EnvoyError(
            f"no listener named {listener_name!r}: the listeners are {sorted(ports)}"
        ) from None


class EnvoyProcess:
    """Envoy with `listeners` on free ports; admin on 127.0.0.1.

        with EnvoyProcess([ListenerSpec("db", ("127.0.0.1", 5432), [f])]) as envoy:
            connect("127.0.0.1", envoy.port("db"))
            envoy.stats.wait_for("tcp.app.connections", 1)

    The config and log live in a temporary directory (or `workdir`); a temporary
    directory is removed on exit, after the log has been read into memory so
    `log_tail()` keeps working.
    """

    def __init__(
        self,
        listeners: list[ListenerSpec],
        concurrency: int = 1,
        log_level: str = "info",
        stats_flush_interval_ms: int = 200,
        startup_timeout: float = 30.0,
        workdir: str | Path | None = None,
        stop_timeout: float = 10.0,
    ):
        self.listeners = list(listeners)
        self.concurrency = concurrency
        self.log_level = log_level
        self.stats_flush_interval_ms = stats_flush_interval_ms
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self._workdir = Path(workdir) if workdir else None
        self._own_dir = False
        self._proc: subprocess.Popen | None = None
        self._ports: dict[str, int] = {}
        self._final_log: str | None = None
        self.admin_port = 0
        self.config_path = Path()
        self.log_path = Path()
        self.stats: StatsClient

    # --- lifecycle ------------------------------------------------------------
    def __enter__(self) -> EnvoyProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self._proc is not None:
            raise EnvoyError("this EnvoyProcess is already running: use a new one per `with` block")
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="wirelab-envoy-"))
            self._own_dir = True
        self._workdir.mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        self.admin_port = _free_port(taken)
        specs = []
        for spec in self.listeners:
            port = spec.port or _free_port(taken)
            taken.add(port)
            self._ports[spec.name] = port
            specs.append(ListenerSpec(spec.name, spec.upstream, spec.filters, port))
        self.config_path = self._workdir / "envoy.yaml"
        self.log_path = self._workdir / "envoy.log"
        self.config_path.write_text(self._bootstrap(specs))
        self.stats = StatsClient(self.admin_url, self.log_tail)
        cmd = [
            str(envoy_path()), "-c", str(self.config_path),
            # No shared memory or domain socket: several Envoys can run side by side.
            "--disable-hot-restart", "--use-dynamic-base-id",
            "--concurrency", str(self.concurrency),
            "-l", self.log_level, "--log-path", str(self.log_path),
            # Envoy buffers its log file for 10 s by default; log_tail() wants it now.
            "--file-flush-interval-msec", "100",
        ]
        out = open(self._workdir / "envoy.out", "wb")  # noqa: SIM115 - owned by the child
        try:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_with_parent(),
            )
        finally:
            out.close()
        # If the caller forgets to stop (or the interpreter dies), still end Envoy.
        self._finalizer = weakref.finalize(self, _terminate, self._proc, 2.0)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _bootstrap(self, specs: list[ListenerSpec]) -> str:
        """The bootstrap to run (listeners have their ports by now); subclasses swap it."""
        return render_bootstrap(
            specs, self.admin_port, self.stats_flush_interval_ms, self.concurrency
        )

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EnvoyError(
                    f"Envoy exited at startup (code {self._proc.returncode}): "
                    f"{startup_reason(self._all_output())}"
                )
            try:
                with urllib.request.urlopen(self.admin_url + "/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise EnvoyError(
            f"Envoy was not ready after {self.startup_timeout:g} s: "
            f"{startup_reason(self._all_output())} (log: {self.log_path})"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout`; safe to call twice."""
        if self._proc is not None:
            _terminate(self._proc, self.stop_timeout)
            self._finalizer.detach()
        if self._own_dir and self._workdir is not None and self._workdir.exists():
            self._final_log = self._all_output()
            shutil.rmtree(self._workdir, ignore_errors=True)

    # --- what callers read ----------------------------------------------------
    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise EnvoyError("Envoy is not running: use EnvoyProcess in a `with` block")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def port(self, listener_name: str) -> int:
        return listener_port(self._ports, listener_name)

    def _all_output(self) -> str:
        if self._final_log is not None:
            return self._final_log
        parts = []
        assert self._workdir is not None
        for name in ("envoy.out", "envoy.log"):
            path = self._workdir / name
            if path.is_file():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def log_tail(self, n: int = 60) -> str:
        if self._final_log is None and not self.log_path.is_file():
            return ""
        text = self._final_log if self._final_log is not None else self.log_path.read_text(
            errors="replace"
        )
        return "\n".join(deque(useful_log_lines(text), maxlen=n))

