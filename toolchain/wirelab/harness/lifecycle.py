"""`wirelab up` and `wirelab down`: run a lab in the foreground or detached.

A detached lab is a child process in its own session that owns the Lab; it
writes the state file once everything is ready and tears everything down on
SIGTERM. `down` signals it and waits, then makes sure nothing it listed lives on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from ..errors import WirelabError
from .lab import Lab
from .state import read_state, write_state

_ALL_STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_on(signals: tuple[int, ...] = _ALL_STOPS) -> threading.Event:
    """An event the signals set. Installed before the lab says it is ready: a
    Ctrl-C (or `wirelab down`'s SIGTERM) right after that must stop it cleanly,
    not interrupt it half-way or kill it with its servers left running."""
    stop = threading.Event()
    for sig in signals:
        signal.signal(sig, lambda *_: stop.set())
    return stop


def _wait(stop: threading.Event, every_second: Callable[[], None] | None = None) -> None:
    while not stop.wait(1.0):
        if every_second is not None:
            every_second()


def run_foreground(lab_kwargs: dict[str, Any], on_ready: Callable[[Lab], None],
                   on_filter_error: Callable[[str], None] | None = None) -> None:
    """Start a lab, report it, and keep it up until Ctrl-C or SIGTERM; pass each error a
    filter logs in Envoy (a Lua error's message, file and line) to `on_filter_error`."""
    with Lab(**lab_kwargs) as lab:
        stop = _stop_on()
        on_ready(lab)
        seen = 0

        def report_new_errors() -> None:
            nonlocal seen
            errors = lab.filter_errors()
            for line in errors[seen:]:
                if on_filter_error is not None:
                    on_filter_error(line)
            seen = len(errors)

        _wait(stop, every_second=report_new_errors)


def _log_path(state: Path) -> Path:
    return state.with_name(state.name + ".log")


def start_detached(lab_kwargs: dict[str, Any], state: Path, timeout: float = 300.0) -> dict:
    """Start a lab in a background process; return its state once ready."""
    state = Path(state).resolve()
    if state.exists():
        old = read_state(state)
        if psutil.pid_exists(old.get("pids", {}).get("daemon") or -1):
            raise WirelabError(
                f"a lab is already running with state file {state}: "
                f"stop it with `wirelab down --state {state}`"
            )
        state.unlink()
    log = _log_path(state)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wirelab.harness.lifecycle", str(state), json.dumps(lab_kwargs)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.exists():
            return read_state(state)
        if proc.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines()
            said = [ln.removeprefix("wirelab: error: ") for ln in lines
                    if ln.startswith("wirelab: error: ")]
            if said:
                log.unlink(missing_ok=True)
                raise WirelabError(said[-1])
            detail = "\n".join(lines[-15:])
            raise WirelabError(f"the lab failed to start (log {log}):\n{detail}")
        time.sleep(0.2)
    proc.terminate()
    raise WirelabError(f"the lab was not ready after {timeout:g} s; its log is {log}")


def stop_detached(state: Path, timeout: float = 60.0) -> list[str] | None:
    """Stop the lab behind `state`; returns what had to be killed by force, or None
    when no lab was running (no state file, or its processes are gone)."""
    state = Path(state).resolve()
    if not state.exists():
        _log_path(state).unlink(missing_ok=True)
        return None
    data = read_state(state)
    pids: dict[str, int | None] = data.get("pids", {})
    if not any(pid and psutil.pid_exists(pid) for pid in pids.values()):
        state.unlink(missing_ok=True)
        _log_path(state).unlink(missing_ok=True)
        return None
    forced: list[str] = []
    daemon = pids.get("daemon")
    if daemon and psutil.pid_exists(daemon):
        os.kill(daemon, signal.SIGTERM)
        try:
            psutil.Process(daemon).wait(timeout)
        except psutil.TimeoutExpired:
            os.killpg(daemon, signal.SIGKILL)
            forced.append("daemon")
        except psutil.NoSuchProcess:
            pass
    for name, pid in pids.items():
        if name != "daemon" and pid and psutil.pid_exists(pid):
            try:
                proc = psutil.Process(pid)
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()
                forced.append(name)
            except psutil.NoSuchProcess:
                pass
    state.unlink(missing_ok=True)
    _log_path(state).unlink(missing_ok=True)
    return forced


def _daemon_main(state_arg: str, kwargs_json: str) -> None:
    state = Path(state_arg)
    kwargs = json.loads(kwargs_json)
    # A detached lab must outlive the terminal that started it.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        lab = Lab(**kwargs).start()
    except WirelabError as exc:
        # The parent turns this line into its own one-line error.
        print(f"wirelab: error: {exc}", flush=True)
        sys.exit(1)
    try:
        stop = _stop_on((signal.SIGINT, signal.SIGTERM))
        info = lab.state()
        info["pids"]["daemon"] = os.getpid()
        info["log"] = str(_log_path(state))
        info["connect"] = lab.connection_strings()
        write_state(state, info)
        print(f"lab ready; state in {state}", flush=True)
        _wait(stop)
    finally:
        state.unlink(missing_ok=True)
        lab.close()
    print("lab stopped", flush=True)


if __name__ == "__main__":
    _daemon_main(sys.argv[1], sys.argv[2])
