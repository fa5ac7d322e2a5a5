"""Finding and killing a server's processes by the directory they work in.

The directory is what finds them all: PostgreSQL puts each backend in a
session of its own (so a process group misses them), and a killed
postmaster's orphans are no longer its descendants, but every server process
keeps its data directory (inside ours) as its working directory.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def processes_inside(directory: Path) -> list[int]:
    """Live (non-zombie) processes whose working directory is in `directory`."""
    root = str(directory)
    pids = []
    for proc in psutil.process_iter(["pid"]):
        try:
            cwd = proc.cwd()
            if (cwd == root or cwd.startswith(root + os.sep)) and \
                    proc.status() != psutil.STATUS_ZOMBIE:
                pids.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return pids


def kill_all(find: Callable[[], list[int]], timeout: float = 5.0) -> None:
    """SIGKILL what `find` returns until it returns nothing (or time runs out)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = find()
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)
