"""`wirelab top`: poll Envoy's admin API once a second and draw the dashboard.

In a terminal: rich Live on the alternate screen, `q` quits, `p` pauses (the
screen freezes, polling stops). Otherwise (a pipe, CI): one plain line per
filter instance per refresh.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import sys
import termios
import threading
import time
import tty
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.live import Live

from ..envoy import StatsClient
from ..errors import WirelabError
from ..servers._process import tail
from .model import GroupView, Window
from .render import Status, dashboard, plain_lines

_SLOW = re.compile(r"((?:postgres|mysql)\.\S+?:? slow statement.*)$")


def last_slow_statement(envoy_log: Path | None) -> str:
    """The newest slow-statement line the filters logged (without Envoy's prefix)."""
    if envoy_log is None:
        return ""
    for line in reversed(tail(envoy_log, 400).splitlines()):
        m = _SLOW.search(line)
        if m:
            return m.group(1)
    return ""


class Top:
    """The dashboard's state: the stats window, pause, and what the footer says."""

    def __init__(self, client: StatsClient, *, window: float = 30.0,
                 envoy_log: Path | None = None,
                 phase: Callable[[], str] | None = None):
        self.client = client
        self.window = Window(seconds=window)
        self.envoy_log = envoy_log
        self.phase = phase or (lambda: "")
        self.paused = False

    def poll(self) -> list[GroupView]:
        self.window.add(time.monotonic(), self.client.snapshot())
        return self.window.views()

    def status(self) -> Status:
        return Status(source=self.client.admin_url, window=self.window.seconds,
                      paused=self.paused, phase=self.phase(),
                      slow_log=last_slow_statement(self.envoy_log))


@contextlib.contextmanager
def _keys() -> Iterator[Callable[[float], str]]:
    """A `read(timeout)` for single key presses when stdin is a terminal."""
    fd = sys.stdin.fileno() if sys.stdin and sys.stdin.isatty() else None
    if fd is None:
        yield lambda timeout: (time.sleep(timeout), "")[1]
        return
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read(timeout: float) -> str:
        ready, _, _ = select.select([fd], [], [], timeout)
        return os.read(fd, 32).decode(errors="ignore") if ready else ""

    try:
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def run_live(top: Top, console: Console, *, interval: float = 1.0,
             stop: threading.Event | None = None, duration: float | None = None) -> bool:
    """Draw until `q`, `stop` or `duration`; True when the user quit with `q`."""
    stop = stop or threading.Event()
    end = time.monotonic() + duration if duration else None
    views = top.poll()
    with _keys() as read, Live(console=console, screen=True, auto_refresh=False,
                               transient=False) as live:
        while not stop.is_set() and (end is None or time.monotonic() < end):
            size = console.size
            live.update(dashboard(views, top.status(), size.width, size.height), refresh=True)
            deadline = time.monotonic() + interval
            while (left := deadline - time.monotonic()) > 0 and not stop.is_set():
                key = read(min(left, 0.1)).lower()
                if "q" in key:
                    return True
                if "p" in key:
                    top.paused = not top.paused
                    live.update(dashboard(views, top.status(), size.width, size.height),
                                refresh=True)
            if not top.paused:
                views = top.poll()
    return False


def run_plain(top: Top, echo: Callable[[str], None], *, interval: float = 5.0,
              stop: threading.Event | None = None, duration: float | None = None,
              count: int | None = None) -> None:
    """Print plain lines every `interval` s until `stop`, `duration` or `count` refreshes."""
    stop = stop or threading.Event()
    end = time.monotonic() + duration if duration else None
    done = 0
    while True:
        views = top.poll()
        status = top.status()
        for line in plain_lines(views, status):
            echo(line)
        done += 1
        if count is not None and done >= count:
            return
        if stop.wait(interval) or (end is not None and time.monotonic() >= end):
            return


def client_from_state(state: dict) -> tuple[StatsClient, Path | None]:
    admin = state.get("admin")
    if not admin:
        raise WirelabError("the state file names no Envoy admin URL: start the lab with "
                           "`wirelab up --state FILE`")
    log = state.get("envoy_log")
    return StatsClient(admin), Path(log) if log else None
