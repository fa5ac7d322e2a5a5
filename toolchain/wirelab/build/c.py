"""The C language path: the project's sources plus the SDK and protocol decoders.

One source, two targets: `wasm` links the SDK's proxy-wasm backend
(filters/sdk/wasm/) into build/<name>.wasm, `native` its dynamic-modules
backend (filters/sdk/native/) into build/lib<name>.so. The SDK's own top-level
*.c files are host-independent and go into both.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from .. import paths
from ..project import Project
from . import cache
from .pipeline import BuildResult, CompilePlan, run
from .zig import NATIVE_FLAGS, TARGET_FLAGS


def sdk_sources(target: str = "wasm") -> list[Path]:
    """The SDK's host-independent files plus the backend of `target`."""
    sdk = paths.sdk_dir()
    return sorted(sdk.glob("*.c")) + sorted((sdk / target).glob("*.c"))


def library_sources(protocol: str, target: str = "wasm") -> list[Path]:
    """C files a filter links: the SDK, plus the decoder of the project's protocol.

    `protocol = "postgres"` compiles filters/protocols/postgres*.c, "mysql"
    mysql*.c; every project gets the shared wire*.c. Only the protocol a
    project names is compiled, so one decoder never breaks another's builds.
    """
    proto = paths.protocols_dir()
    decoders = sorted(proto.glob(f"{protocol}*.c")) if protocol != "tcp" else []
    return sdk_sources(target) + sorted(proto.glob("wire*.c")) + decoders


def plan_for(project: Project, target: str = "wasm") -> CompilePlan:
    sdk = paths.sdk_dir()
    include_dirs = [*project.include_paths, sdk, sdk / target, paths.protocols_dir()]
    base = NATIVE_FLAGS if target == "native" else TARGET_FLAGS
    flags = [*base, *(f"-I{d}" for d in include_dirs), *project.manifest.cflags]
    # A header beside the sources is found by `#include "x.h"` without any -I,
    # so the whole project tree's headers are inputs, not only include_dirs'.
    inputs: list[Path] = [h for h in cache.headers_under(project.root)
                          if project.build_dir not in h.parents]
    for d in project.include_paths:
        inputs += cache.headers_under(d)
    inputs += cache.files_under(paths.sdk_dir()) + cache.headers_under(paths.protocols_dir())
    check = None
    if target == "native":
        from . import native

        config = json.dumps(dict(project.manifest.config), separators=(",", ":"))
        check = functools.partial(native.validate, config_json=config)
    return CompilePlan(
        root=project.root,
        output=project.output_path(target),
        sources=[*project.source_paths, *library_sources(project.manifest.protocol, target)],
        flags=flags,
        inputs=inputs,
        material=["language=c", f"target={target}"],
        target=target,
        check=check,
    )


def build_c(project: Project, force: bool = False, target: str = "wasm") -> BuildResult:
    return run(plan_for(project, target), force=force)
