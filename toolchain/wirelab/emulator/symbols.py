"""Trap backtraces with C function names, and file:line where debug info allows.

The build keeps `build/<name>.debug.wasm` beside the module Envoy loads: the same
code with its name section (and DWARF for C). Names come from it; file:line from
`llvm-symbolizer` when it is installed (it reads the DWARF). Everything is read
only when a trap happens.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cached_property
from pathlib import Path

from .. import wasmfile
from ..wasmfile import debug_path

_FUNC = re.compile(r"(?:<unknown>!)?<wasm function (\d+)>")


class Symbols:
    def __init__(self, module: Path):
        self.module = module
        self._known: dict[tuple[int, ...], list[str | None]] = {}  # a trap may repeat

    @cached_property
    def _debug(self) -> tuple[bytes, bytes] | None:
        """(the module that runs, its debug twin) when the twin has the same code."""
        try:
            running = self.module.read_bytes()
            debug = debug_path(self.module)
            twin = debug.read_bytes() if debug.is_file() else running
            if wasmfile.code_section(twin) != wasmfile.code_section(running):
                return None  # a stale debug file from another build
            return running, twin
        except (OSError, ValueError, IndexError):
            return None

    @cached_property
    def names(self) -> dict[int, str]:
        pair = self._debug
        return wasmfile.function_names(pair[1]) if pair else {}

    def _lines(self, offsets: list[int]) -> list[str | None]:
        pair = self._debug
        tool = shutil.which("llvm-symbolizer")
        debug = debug_path(self.module)
        if not pair or tool is None or not debug.is_file() or not offsets:
            return [None] * len(offsets)
        start = wasmfile.code_start(pair[0])  # DWARF addresses count from the code section
        addrs = [f"0x{max(0, off - start):x}" for off in offsets]
        try:
            out = subprocess.run([tool, f"--obj={debug}", *addrs], capture_output=True,
                                 text=True, timeout=20, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            return [None] * len(offsets)
        # One block per address (inlined frames add lines), blocks separated by a blank line.
        blocks = [b.splitlines() for b in out.strip("\n").split("\n\n")]
        lines: list[str | None] = []
        for block in blocks[:len(offsets)]:
            where = block[1] if len(block) > 1 else ""
            m = re.match(r"^(.*):(\d+):\d+$", where)
            lines.append(f"{Path(m.group(1)).name}:{m.group(2)}" if m and m.group(2) != "0"
                         else None)
        return lines + [None] * (len(offsets) - len(lines))

    def frames(self, frames: list[str], offsets: list[int]) -> list[str]:
        """wasmtime's frames with function names and, where known, file:line."""
        if not frames or (not self.names and self._debug is None):
            return frames
        if len(offsets) != len(frames):
            lines: list[str | None] = [None] * len(frames)
        else:
            key = tuple(offsets)
            if key not in self._known:
                self._known[key] = self._lines(offsets)
            lines = self._known[key]
        out = []
        for text, line in zip(frames, lines, strict=True):
            named = _FUNC.sub(lambda m: self.names.get(int(m.group(1)), m.group(0)), text)
            out.append(f"{named} ({line})" if line else named)
        return out
