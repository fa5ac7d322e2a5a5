"""The C language path: the project's sources plus the SDK and protocol decoders."""

from __future__ import annotations

from pathlib import Path

from .. import paths
from ..project import Project
from . import cache
from .pipeline import BuildResult, CompilePlan, run
from .zig import TARGET_FLAGS


def library_sources(protocol: str) -> list[Path]:
    """C files a filter links: the SDK, plus the decoder of the project's protocol.

    `protocol = "postgres"` compiles filters/protocols/postgres*.c, "mysql"
    mysql*.c; every project gets the shared wire*.c. Only the protocol a
    project names is compiled, so one decoder never breaks another's builds.
    """
    proto = paths.protocols_dir()
    decoders = sorted(proto.glob(f"{protocol}*.c")) if protocol != "tcp" else []
    return sorted(paths.sdk_dir().glob("*.c")) + sorted(proto.glob("wire*.c")) + decoders


def plan_for(project: Project) -> CompilePlan:
    include_dirs = [*project.include_paths, paths.sdk_dir(), paths.protocols_dir()]
    flags = [*TARGET_FLAGS, *(f"-I{d}" for d in include_dirs), *project.manifest.cflags]
    # A header beside the sources is found by `#include "x.h"` without any -I,
    # so the whole project tree's headers are inputs, not only include_dirs'.
    inputs: list[Path] = [h for h in cache.headers_under(project.root)
                          if project.build_dir not in h.parents]
    for d in project.include_paths:
        inputs += cache.headers_under(d)
    inputs += cache.files_under(paths.sdk_dir()) + cache.headers_under(paths.protocols_dir())
    return CompilePlan(
        root=project.root,
        output=project.wasm_path,
        sources=[*project.source_paths, *library_sources(project.manifest.protocol)],
        flags=flags,
        inputs=inputs,
        material=["language=c"],
    )


def build_c(project: Project, force: bool = False) -> BuildResult:
    return run(plan_for(project), force=force)
