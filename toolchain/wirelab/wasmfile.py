"""The section layout of a Wasm binary: strip custom sections, read the name section.

A build links one module with its names (and, for C, DWARF) and keeps it as
`build/<name>.debug.wasm`; `build/<name>.wasm` is the same module without its
custom sections, which is what Envoy loads. The emulator reads the names back to
show C function names in traps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_MAGIC = b"\0asm\x01\0\0\0"
_CUSTOM, _IMPORT, _CODE = 0, 2, 10


def debug_path(module: Path) -> Path:
    """Where the build keeps the module's linked original: build/<name>.debug.wasm."""
    return module.with_name(module.stem + ".debug.wasm")


@dataclass(frozen=True)
class Section:
    id: int
    start: int  # offset of the section's payload in the file
    end: int
    name: str = ""  # custom sections


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _name(data: bytes, pos: int) -> tuple[str, int]:
    size, pos = _uleb(data, pos)
    return data[pos:pos + size].decode("utf-8", "replace"), pos + size


def sections(data: bytes) -> list[Section]:
    if data[:8] != _MAGIC:
        raise ValueError("not a Wasm module (bad magic or version)")
    out, pos = [], 8
    while pos < len(data):
        sid = data[pos]
        size, body = _uleb(data, pos + 1)
        end = body + size
        name = _name(data, body)[0] if sid == _CUSTOM else ""
        out.append(Section(sid, body, end, name))
        pos = end
    return out


def strip_custom_sections(data: bytes) -> bytes:
    """The module without names, debug info or producers: the code is untouched."""
    keep = [_MAGIC]
    pos = 8
    for sec in sections(data):
        header_start = pos
        pos = sec.end
        if sec.id != _CUSTOM:
            keep.append(data[header_start:sec.end])
    return b"".join(keep)


def code_section(data: bytes) -> bytes:
    return next((data[s.start:s.end] for s in sections(data) if s.id == _CODE), b"")


def code_start(data: bytes) -> int:
    """File offset of the code section's payload (DWARF addresses count from there)."""
    return next((s.start for s in sections(data) if s.id == _CODE), 0)


def function_names(data: bytes) -> dict[int, str]:
    """Function index -> name, from the `name` custom section (empty when absent)."""
    for sec in sections(data):
        if sec.id != _CUSTOM or sec.name != "name":
            continue
        pos = _name(data, sec.start)[1]
        while pos < sec.end:
            sub = data[pos]
            size, body = _uleb(data, pos + 1)
            pos = body + size
            if sub != 1:  # 1: function names
                continue
            count, p = _uleb(data, body)
            names = {}
            for _ in range(count):
                index, p = _uleb(data, p)
                names[index], p = _name(data, p)
            return names
    return {}
