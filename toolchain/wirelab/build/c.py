"""The C language path: the project's sources plus the SDK and protocol decoders."""

from __future__ import annotations

from pathlib import Path

from .. import paths
from ..project import Project
from . import cache
from .pipeline import BuildResult, CompilePlan, run
from .zig import TARGET_FLAGS


def library_sources() -> list[Path]:
    """C files every filter links: the SDK and the protocol decoders.

    Unused decoder code costs nothing in the module: the linker drops every
    function a filter does not reach.
    """
    return sorted(paths.sdk_dir().glob("*.c")) + sorted(paths.protocols_dir().glob("*.c"))


def plan_for(project: Project) -> CompilePlan:
    include_dirs = [*project.include_paths, paths.sdk_dir(), paths.protocols_dir()]
    flags = [*TARGET_FLAGS, *(f"-I{d}" for d in include_dirs), *project.manifest.cflags]
    inputs: list[Path] = []
    for d in project.include_paths:
        inputs += cache.headers_under(d)
    inputs += cache.files_under(paths.sdk_dir()) + cache.files_under(paths.protocols_dir())
    return CompilePlan(
        root=project.root,
        output=project.wasm_path,
        sources=[*project.source_paths, *library_sources()],
        flags=flags,
        inputs=inputs,
        material=["language=c"],
    )


def build_c(project: Project, force: bool = False) -> BuildResult:
    return run(plan_for(project), force=force)
