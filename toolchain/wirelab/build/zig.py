"""Drive Zig's clang (the `ziglang` wheel) and turn its output into short diagnostics."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

from ..errors import BuildError

TARGET_FLAGS: tuple[str, ...] = (
    "--target=wasm32-wasi",
    "-mexec-model=reactor",
    "-O2",
    # Names and DWARF are linked in; split_debug() moves them to build/<name>.debug.wasm
    # and leaves the module Envoy loads stripped (the code is the same as with -s).
    "-g",
)

# An Envoy dynamic module: a shared library for the host Envoy runs on. Only the
# SDK's envoy_dynamic_module_on_* hooks are exported (they carry default
# visibility); everything else stays inside the module.
# In Envoy, between two reads of a connection the kernel, Envoy and the
# database overwrite the caches, so a module pays for every cache line and
# branch table it touches (bench/native_code_time.py's "cold" column): link-time
# optimisation inlines the SDK, decoder and tracker into one another, and
# switches compile to compares instead of reads of a jump table.
NATIVE_FLAGS: tuple[str, ...] = (
    "--target=x86_64-linux-gnu",
    "-shared",
    "-fPIC",
    "-O2",
    "-fvisibility=hidden",
    "-flto",
    "-fno-jump-tables",
    "-s",
)

_CLANG_DIAG = re.compile(
    r"^(?P<file>[^\s:][^:\n]*):(?P<line>\d+):(?:(?P<col>\d+):)? "
    r"(?P<sev>fatal error|error|warning|note): (?P<msg>.*)$"
)
_LD_UNDEFINED = re.compile(r"wasm-ld: error: (?P<obj>\S+?): undefined symbol: (?P<sym>\S+)")
_LD_ERROR = re.compile(r"^(?:wasm-ld: )?error: (?P<msg>.*)$")
_MAX_DIAGNOSTICS = 20


@cache
def zig_version() -> str:
    try:
        return metadata.version("ziglang")
    except metadata.PackageNotFoundError:
        raise BuildError(
            "the Zig compiler is missing: install it with `pip install ziglang==0.17.1`"
        ) from None


def compiler_command() -> list[str]:
    zig_version()  # fail early, with the fix, when ziglang is absent
    return [sys.executable, "-m", "ziglang", "cc"]


@dataclass(frozen=True)
class Diagnostic:
    file: str
    line: int | None
    severity: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


def _display_path(raw: str, root: Path) -> str:
    path = Path(raw)
    if not path.is_absolute():
        path = (root / path).resolve()
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def parse_diagnostics(
    output: str, root: Path, sources: list[Path], severity: str = "error"
) -> list[Diagnostic]:
    """Errors (or, with severity="warning", warnings) from clang and wasm-ld.

    Paths are shown relative to `root` when inside it.
    """
    by_stem = {}
    for src in sources:
        by_stem.setdefault(src.stem, []).append(src)
    found: list[Diagnostic] = []
    for line in output.splitlines():
        m = _CLANG_DIAG.match(line)
        if m:
            sev = "error" if m["sev"] == "fatal error" else m["sev"]
            if sev == severity:
                found.append(
                    Diagnostic(_display_path(m["file"], root), int(m["line"]), sev, m["msg"])
                )
            continue
        if severity != "error":
            continue
        m = _LD_UNDEFINED.search(line)
        if m:
            # Zig compiles into its cache, so map the object back to its source.
            stem = Path(m["obj"]).stem
            owners = by_stem.get(stem, [])
            where = _display_path(str(owners[0]), root) if len(owners) == 1 else f"{stem}.o"
            found.append(
                Diagnostic(
                    where,
                    None,
                    "error",
                    f"undefined symbol: {m['sym']} (define it, or link the source that does)",
                )
            )
            continue
        m = _LD_ERROR.match(line.strip())
        if m:
            found.append(Diagnostic("link", None, "error", m["msg"]))
    return found[:_MAX_DIAGNOSTICS]


def compile_wasm(
    argv: list[str], output: Path, root: Path, sources: list[Path]
) -> subprocess.CompletedProcess[str]:
    """Run the compiler; raise BuildError with `file:line: message` lines on failure."""
    try:
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise BuildError(f"could not run the Zig compiler ({exc}): reinstall `ziglang`") from None
    if proc.returncode != 0 or not output.is_file():
        text = proc.stderr + proc.stdout
        diagnostics = parse_diagnostics(text, root, sources)
        if diagnostics:
            raise BuildError("\n".join(str(d) for d in diagnostics))
        tail = [ln for ln in text.strip().splitlines() if ln.strip()][-5:]
        detail = "; ".join(tail) if tail else f"exit status {proc.returncode}"
        raise BuildError(f"the compiler failed: {detail}")
    return proc


def split_debug(module: Path, debug: Path) -> None:
    """Keep `module` as it was linked in `debug`, then strip `module`'s custom sections."""
    from .. import wasmfile

    data = module.read_bytes()
    tmp = debug.with_name(f".{debug.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(debug)
    module.write_bytes(wasmfile.strip_custom_sections(data))
