"""`wirelab build`: compile a filter project to `build/<name>.wasm` and/or `build/lib<name>.so`.

    result = build_project(Project.load(path))                    # the Wasm module
    result = build_project(project, target="native")             # the Envoy dynamic module
    results = build_targets(project)                              # the manifest's `targets`
    result.wasm, result.bytes, result.cached, result.seconds, result.as_dict()

Each language has a builder `(project, force) -> BuildResult` in BUILDERS; the
C builder compiles with Zig's clang, then every module is validated against
the imports and exports Envoy 1.40 accepts (see `abi`). Nothing is printed.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import BuildError
from ..project import TARGETS, Project
from .c import build_c
from .lua import build_lua
from .pipeline import BuildResult, CompilePlan, run

Builder = Callable[[Project, bool], BuildResult]


BUILDERS: dict[str, Builder] = {"c": build_c, "lua": build_lua}
# Languages that build to each non-Wasm target.
NATIVE_BUILDERS: dict[str, Callable[[Project, bool], BuildResult]] = {
    "c": lambda project, force: build_c(project, force, target="native"),
    "lua": lambda project, force: build_lua(project, force, target="native"),
}


def build_project(project: Project, force: bool = False, target: str = "wasm") -> BuildResult:
    """Build one target of `project` unless its inputs are unchanged (or `force`)."""
    from .tagkeys import check_tag_keys

    if target not in TARGETS:
        raise BuildError(f"unknown target {target!r}: use {' or '.join(TARGETS)}")
    check_tag_keys(project)  # before compiling: the rule holds for every build
    table = NATIVE_BUILDERS if target == "native" else BUILDERS
    builder = table.get(project.manifest.language)
    if builder is None:
        if target == "native" and project.manifest.language in BUILDERS:
            raise BuildError(
                f"{project.name}: a {project.manifest.language} project builds to Wasm only "
                "for now; use --target wasm"
            )
        raise BuildError(
            f"{project.name}: no builder for language {project.manifest.language!r} "
            f"(supported: {', '.join(sorted(BUILDERS))})"
        )
    return builder(project, force)


def build_targets(
    project: Project, targets: list[str] | None = None, force: bool = False
) -> list[BuildResult]:
    """Build every target named (default: the manifest's `targets`), in a stable order."""
    wanted = targets or project.manifest.targets
    return [build_project(project, force, t) for t in TARGETS if t in wanted]


__all__ = [
    "BUILDERS", "TARGETS", "BuildResult", "CompilePlan", "build_project", "build_targets", "run",
]
