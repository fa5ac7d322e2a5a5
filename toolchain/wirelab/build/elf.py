"""The dynamic symbol table of an ELF64 little-endian file (a .so or Envoy itself).

    syms = dynamic_symbols(Path("build/libpg.so"))
    syms.undefined   # names the loader must find elsewhere
    syms.defined     # names the file exports (global or weak, with a section)

Only `.dynsym` is read (what `nm -D` lists), straight from the section
headers, so Envoy's 150 MB binary costs one mmap and a few thousand structs.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import BuildError

_SHT_DYNSYM = 11
_STB_GLOBAL, _STB_WEAK = 1, 2


@dataclass(frozen=True)
class DynamicSymbols:
    defined: frozenset[str]
    undefined: frozenset[str]


def dynamic_symbols(path: Path) -> DynamicSymbols:
    """Defined and undefined dynamic symbols of `path`; BuildError if it is not ELF64 LE."""
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        if m[:4] != b"\x7fELF" or m[4] != 2 or m[5] != 1:
            raise BuildError(f"{path} is not a 64-bit little-endian ELF file")
        shoff, = struct.unpack_from("<Q", m, 0x28)
        shentsize, shnum = struct.unpack_from("<HH", m, 0x3A)
        sections = [struct.unpack_from("<IIQQQQIIQQ", m, shoff + i * shentsize)
                    for i in range(shnum)]
        defined: set[str] = set()
        undefined: set[str] = set()
        for _name, typ, _flags, _addr, off, size, link, _info, _align, entsize in sections:
            if typ != _SHT_DYNSYM or not entsize:
                continue
            str_off = sections[link][4]
            for at in range(off + entsize, off + size, entsize):  # entry 0 is the null symbol
                st_name, st_info, _other, st_shndx = struct.unpack_from("<IBBH", m, at)
                if st_info >> 4 not in (_STB_GLOBAL, _STB_WEAK):
                    continue
                end = m.find(b"\0", str_off + st_name)
                name = m[str_off + st_name:end].decode("utf-8", "replace")
                if not name:
                    continue
                (undefined if st_shndx == 0 else defined).add(name)
        return DynamicSymbols(frozenset(defined), frozenset(undefined))
