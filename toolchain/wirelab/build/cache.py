"""Input hashing: rebuild only when something that reaches the compiler changed.

The hash covers every input file's path and bytes, the full argument list and
the compiler version, and is stored beside the output as `<name>.wasm.inputs`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

HEADER_SUFFIXES = (".h", ".inc")
SOURCE_SUFFIXES = (".c", ".h", ".inc", ".s", ".S")


def headers_under(directory: Path) -> list[Path]:
    """Every header below `directory` (recursively), in a stable order."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in HEADER_SUFFIXES and p.is_file())


def files_under(directory: Path, suffixes: Iterable[str] = SOURCE_SUFFIXES) -> list[Path]:
    wanted = tuple(suffixes)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in wanted and p.is_file())


def input_hash(files: Iterable[Path], material: Iterable[str]) -> str:
    h = hashlib.sha256()
    for item in material:
        h.update(b"m\0" + item.encode() + b"\0")
    for path in sorted(set(files)):
        h.update(b"f\0" + str(path).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def stamp_path(output: Path) -> Path:
    return output.with_name(output.name + ".inputs")


def is_fresh(output: Path, digest: str) -> bool:
    stamp = stamp_path(output)
    try:
        return output.is_file() and stamp.read_text().strip() == digest
    except OSError:
        return False


def write_stamp(output: Path, digest: str) -> None:
    stamp_path(output).write_text(digest + "\n")


def clear_stamp(output: Path) -> None:
    stamp_path(output).unlink(missing_ok=True)
