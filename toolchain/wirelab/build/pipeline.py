"""The language-independent part of a build: cache check, compile, validate, stamp."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BuildError
from ..wasmfile import debug_path
from . import cache, validate, zig


@dataclass(frozen=True)
class BuildResult:
    wasm: Path
    bytes: int
    cached: bool
    seconds: float
    # Compiler warnings as `file:line: message` (empty when cached); not in as_dict.
    warnings: tuple[str, ...] = ()
    # "wasm", or "native" (then `wasm` holds the path of the lib<name>.so).
    target: str = "wasm"

    @property
    def output(self) -> Path:
        return self.wasm

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "wasm": str(self.wasm),
            "bytes": self.bytes,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
        }
        if self.target != "wasm":
            out = {"target": self.target, self.target: out.pop("wasm"), **out}
        return out


@dataclass
class CompilePlan:
    """One compiler invocation producing one module."""

    root: Path  # the project: compiler cwd, and diagnostics are shown relative to it
    output: Path
    sources: list[Path]  # compiled
    flags: list[str]  # everything but the compiler and `-o`
    inputs: list[Path] = field(default_factory=list)  # hashed, beyond `sources`
    material: list[str] = field(default_factory=list)  # more hashed text (versions, modes)
    target: str = "wasm"
    # Checks the freshly compiled file (default: the proxy-wasm import/export check).
    check: Callable[[Path], None] | None = None

    def digest(self) -> str:
        material = [f"zig={zig.zig_version()}", *self.flags, *self.material]
        material += [f"src={s}" for s in self.sources]
        return cache.input_hash([*self.sources, *self.inputs], material)


def run(plan: CompilePlan, force: bool = False) -> BuildResult:
    """Build `plan.output` unless its inputs are unchanged; validate what was built."""
    started = time.monotonic()
    digest = plan.digest()
    if not force and cache.is_fresh(plan.output, digest):
        return BuildResult(
            plan.output, plan.output.stat().st_size, True, time.monotonic() - started,
            target=plan.target,
        )
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    cache.clear_stamp(plan.output)
    # Compile beside the output and rename, so a failed build never leaves a
    # half-written module where Envoy or the emulator would pick it up.
    tmp = plan.output.with_name(f".{plan.output.name}.{os.getpid()}.tmp")
    argv = [*zig.compiler_command(), *plan.flags, "-o", str(tmp), *map(str, plan.sources)]
    try:
        proc = zig.compile_wasm(argv, tmp, plan.root, plan.sources)
        if plan.target == "wasm":  # a native .so keeps its symbols where it is
            zig.split_debug(tmp, debug_path(plan.output))
        try:
            if plan.check is not None:
                plan.check(tmp)
            else:
                validate.validate(tmp)
        except BuildError as exc:
            where = _shown(plan)
            lines = str(exc).splitlines()
            raise BuildError("\n".join(f"{where}: {ln}" for ln in lines)) from None
        os.replace(tmp, plan.output)
    finally:
        tmp.unlink(missing_ok=True)
    cache.write_stamp(plan.output, digest)
    warnings = zig.parse_diagnostics(
        proc.stderr + proc.stdout, plan.root, plan.sources, severity="warning"
    )
    return BuildResult(
        plan.output,
        plan.output.stat().st_size,
        False,
        time.monotonic() - started,
        tuple(str(w) for w in warnings),
        target=plan.target,
    )


def _shown(plan: CompilePlan) -> str:
    try:
        return str(plan.output.relative_to(plan.root))
    except ValueError:
        return str(plan.output)
