"""Server processes that never outlive us.

Each server runs in its own session (so a terminal's Ctrl-C reaches us, not
it) with its working directory in the server's temp directory and its output
in a log file. Stopping signals the leader, waits, then kills every process
still working inside that directory. Backstops cover the paths where no
`with` block unwinds: an atexit hook, a SIGTERM handler that stops live
servers before letting the signal do its job, a parent-death signal so even a
SIGKILLed Python takes its servers with it, and (`_orphans`) the next start
removing directories whose owner died.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import psutil

from ._pids import kill_all, processes_inside
from ._users import RunAs

_PR_SET_PDEATHSIG = 1


class Closable(Protocol):
    def close(self) -> None: ...


_live: list[Closable] = []
# Re-entrant: the SIGTERM handler may run while the main thread holds it.
_lock = threading.RLock()
_handlers_installed = False


def register(obj: Closable) -> None:
    global _handlers_installed
    with _lock:
        _live.append(obj)
        if not _handlers_installed:
            _handlers_installed = True
            atexit.register(close_all)
            _install_sigterm_handler()


def unregister(obj: Closable) -> None:
    with _lock:
        if obj in _live:
            _live.remove(obj)


def close_all() -> None:
    with _lock:
        items = list(reversed(_live))
    for obj in items:
        try:
            obj.close()
        except Exception:  # noqa: BLE001 - best effort at exit; keep closing the rest
            pass


def _install_sigterm_handler() -> None:
    # Only the main thread may set handlers, and never override someone else's.
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def on_sigterm(signum: int, frame: object) -> None:
        close_all()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)


def _child_setup(death_signal: int | None) -> Callable[[], None] | None:
    if death_signal is None:
        return None

    parent = os.getpid()

    def setup() -> None:
        # Runs after the uid switch (which would clear it), just before exec.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)
        if os.getppid() != parent:  # parent died before prctl: do not start at all
            os._exit(1)

    return setup


def run_tool(argv: Sequence[str], *, run_as: RunAs | None, env: dict[str, str],
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a setup command (initdb, install-db) to completion as `run_as`."""
    return subprocess.run(
        list(argv), env=env, capture_output=True, text=True, timeout=timeout,
        start_new_session=True, cwd="/", **_user_kwargs(run_as),
        preexec_fn=_child_setup(signal.SIGKILL if _main_thread() else None),
    )


def _user_kwargs(run_as: RunAs | None) -> dict:
    if run_as is None:
        return {}
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}


def _main_thread() -> bool:
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits; only the main
    # thread lives as long as the process.
    return threading.current_thread() is threading.main_thread()


class ServerProcess:
    """One long-running server process and its process group."""

    def __init__(self, argv: Sequence[str], log_path: Path, *, run_as: RunAs | None,
                 env: dict[str, str], death_signal: int, cwd: Path):
        self.argv = list(argv)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, cwd=cwd, start_new_session=True, **_user_kwargs(run_as),
                preexec_fn=_child_setup(death_signal if _main_thread() else None),
            )
        self.pid = self.popen.pid
        self.cwd = Path(cwd).resolve()

    def exit_code(self) -> int | None:
        return self.popen.poll()

    def group_pids(self) -> list[int]:
        """Every live process of this server: the leader, its descendants, and
        any process working inside the server's directory."""
        found = set(processes_inside(self.cwd))
        try:
            leader = psutil.Process(self.pid)
            if leader.status() != psutil.STATUS_ZOMBIE:
                found.add(self.pid)
            for child in leader.children(recursive=True):
                if child.status() != psutil.STATUS_ZOMBIE:
                    found.add(child.pid)
        except psutil.Error:
            pass
        return sorted(found)

    def stop(self, first_signal: int, grace: float = 10.0) -> None:
        """Ask politely, then kill whatever is left; returns when none is left."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(first_signal)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        kill_all(self.group_pids)
        if self.popen.poll() is None:
            self.popen.wait(5)


def tail(path: Path, n: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-n:])
