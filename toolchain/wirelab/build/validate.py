"""Check a compiled module against what Envoy needs before Envoy ever sees it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import wasmtime

from ..errors import BuildError
from . import abi


@dataclass(frozen=True)
class ModuleInfo:
    imports: tuple[tuple[str, str], ...]
    exports: tuple[str, ...]


def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    # The Lua runtime uses Wasm exception handling for setjmp/longjmp.
    config.wasm_exceptions = True
    return wasmtime.Engine(config)


def inspect(wasm: bytes | Path) -> ModuleInfo:
    """List a module's imports and exports (raises BuildError if it does not parse)."""
    data = wasm.read_bytes() if isinstance(wasm, Path) else wasm
    try:
        module = wasmtime.Module(_engine(), data)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        raise BuildError(f"the compiled module is not valid WebAssembly: {first}") from None
    return ModuleInfo(
        imports=tuple((i.module, i.name or "") for i in module.imports),
        exports=tuple(e.name for e in module.exports),
    )


def problems(info: ModuleInfo) -> list[str]:
    """Every reason Envoy 1.40 would refuse this module, one line each."""
    found: list[str] = []
    exports = set(info.exports)
    if abi.ABI_VERSION_EXPORT not in exports:
        found.append(
            f"missing export {abi.ABI_VERSION_EXPORT} (Envoy rejects modules without an ABI "
            "version; include wirelab_filter.h and link the SDK)"
        )
    if "memory" not in exports:
        found.append("missing export memory (link with the default wasm-ld settings)")
    if not exports.intersection(abi.ALLOCATOR_EXPORTS):
        found.append("missing export malloc or proxy_on_memory_allocate (the SDK provides both)")
    for module, name in info.imports:
        if not abi.is_allowed_import(module, name):
            found.append(
                f"import {module}.{name} is not provided by Envoy 1.40 (remove the call or "
                "declaration that needs it; only proxy-wasm 0.2.1 host functions and WASI "
                "are available)"
            )
    return found


def validate(wasm: bytes | Path) -> ModuleInfo:
    """Raise BuildError naming every problem; return the module's interface if fine."""
    info = inspect(wasm)
    found = problems(info)
    if found:
        raise BuildError("\n".join(found))
    return info
