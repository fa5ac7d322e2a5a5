"""Leftovers of a Python process that died without cleaning up (SIGKILL, OOM).

Every server directory holds an `owner` file naming the Python process that
made it. When a new server starts, directories whose owner is gone are
cleared: their processes killed, the directory removed. Directories of live
owners (parallel test workers) are never touched.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psutil

from ._pids import kill_all, processes_inside

OWNER_FILE = "owner"
PREFIXES = ("wirelab-pg-", "wirelab-my-", "wirelab-prom-")


def owner_stamp() -> str:
    me = psutil.Process()
    return f"{me.pid} {me.create_time():.3f}\n"


def write_owner(directory: Path) -> None:
    (directory / OWNER_FILE).write_text(owner_stamp())


def _owner_alive(stamp: str) -> bool:
    try:
        pid_text, created = stamp.split()
        proc = psutil.Process(int(pid_text))
        # A tolerance, not equality: a false "dead" would kill someone's live server.
        return abs(proc.create_time() - float(created)) < 1.0
    except (ValueError, psutil.Error):
        return False


def orphaned_dirs() -> list[Path]:
    found = []
    for base in {Path(tempfile.gettempdir()), Path("/tmp")}:
        try:
            entries = list(base.iterdir())
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(PREFIXES):
                continue
            try:
                stamp = (entry / OWNER_FILE).read_text()
            except OSError:
                continue  # being created right now, or not ours
            if not _owner_alive(stamp):
                found.append(entry)
    return found


def reap_orphans() -> list[Path]:
    """Kill and remove servers whose owning Python process is gone; returns their dirs."""
    dirs = orphaned_dirs()
    for directory in dirs:
        kill_all(lambda d=directory: processes_inside(d))
        shutil.rmtree(directory, ignore_errors=True)
    return dirs
