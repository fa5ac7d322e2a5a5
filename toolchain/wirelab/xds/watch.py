"""`wirelab up --watch`: rebuild a filter when its sources change and publish it through ECDS.

The lab's Envoy reads its filters from an export directory (the same files
`wirelab xds export` writes); a save triggers build → emulator check →
publish, and Envoy swaps the filter in without touching the listener.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import WirelabError
from ..project import MANIFEST, Project

SOURCE_SUFFIXES = (".c", ".h", ".lua", ".toml")


def watched_files(target: str | Path) -> list[Path]:
    """The files whose change means a new build of the project at `target`."""
    path = Path(target)
    if path.suffix in (".wasm", ".so"):
        return [path]
    try:
        project = Project.load(path)
    except WirelabError:
        return [path / MANIFEST]
    files = [project.root / MANIFEST, *project.source_paths]
    if project.script_path:
        files.append(project.script_path)
    for d in [project.root, *project.include_paths]:
        files += [p for p in d.rglob("*") if p.suffix in SOURCE_SUFFIXES
                  and "build" not in p.relative_to(project.root).parts]
    return sorted(set(files))


def _stamp(files: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for f in files:
        try:
            st = f.stat()
            out.append((str(f), st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append((str(f), 0, -1))
    return tuple(out)


@dataclass
class Change:
    """One rebuild: what triggered it, how long it took, what was published (or why not)."""

    files: list[str]
    seconds: float
    version: str | None = None
    changed: tuple[str, ...] = ()
    error: str | None = None


class Watcher:
    """Polls the projects' sources; on a change calls `publish()` and reports a Change."""

    def __init__(self, targets: Sequence[str | Path], publish: Callable[[], tuple[str, list[str]]],
                 report: Callable[[Change], None], interval: float = 0.05):
        self.targets = [Path(t) for t in targets]
        self.publish = publish
        self.report = report
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._files = self._all_files()
        self._last = _stamp(self._files)

    def _all_files(self) -> list[Path]:
        return sorted({f for t in self.targets for f in watched_files(t)})

    def poll(self) -> Change | None:
        """Check once; rebuild and publish if anything changed."""
        now = _stamp(self._files)
        if now == self._last:
            return None
        changed = [a[0] for a, b in zip(now, self._last, strict=False) if a != b]
        started = time.monotonic()
        self._last = now
        try:
            version, names = self.publish()
            change = Change(changed, time.monotonic() - started, version, tuple(names))
        except WirelabError as exc:
            change = Change(changed, time.monotonic() - started, error=str(exc))
        # A new source file (or a manifest edit) may change what is watched.
        self._files = self._all_files()
        self._last = _stamp(self._files)
        self.report(change)
        return change

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def start(self) -> Watcher:
        self._thread = threading.Thread(target=self.run, daemon=True, name="wirelab-watch")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
