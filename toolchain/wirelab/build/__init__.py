"""`wirelab build`: compile a filter project to `build/<name>.wasm`.

    result = build_project(Project.load(path))
    result.wasm, result.bytes, result.cached, result.seconds, result.as_dict()

Each language has a builder `(project, force) -> BuildResult` in BUILDERS; the
C builder compiles with Zig's clang, then every module is validated against
the imports and exports Envoy 1.40 accepts (see `abi`). Nothing is printed.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import BuildError
from ..project import Project
from .c import build_c
from .lua import build_lua
from .pipeline import BuildResult, CompilePlan, run

Builder = Callable[[Project, bool], BuildResult]


BUILDERS: dict[str, Builder] = {"c": build_c, "lua": build_lua}


def build_project(project: Project, force: bool = False) -> BuildResult:
    """Build `project` unless its inputs are unchanged (or `force`)."""
    from .tagkeys import check_tag_keys

    check_tag_keys(project)  # before compiling: the rule holds for every build
    builder = BUILDERS.get(project.manifest.language)
    if builder is None:
        raise BuildError(
            f"{project.name}: no builder for language {project.manifest.language!r} "
            f"(supported: {', '.join(sorted(BUILDERS))})"
        )
    return builder(project, force)


__all__ = ["BUILDERS", "BuildResult", "CompilePlan", "build_project", "run"]
