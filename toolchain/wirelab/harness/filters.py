"""Turn what a user names as a filter (a project directory or a .wasm) into a FilterSpec."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..envoy import FilterSpec
from ..errors import BuildError, WirelabError


@dataclass
class ResolvedFilter:
    """A built filter and the traffic it is meant for (`tcp` = any listener)."""

    spec: FilterSpec
    protocol: str

    def applies_to(self, listener_protocol: str) -> bool:
        return self.protocol in ("tcp", listener_protocol)


def _spec_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_-]", "_", name)
    return cleaned if cleaned[:1].isalpha() else f"f_{cleaned}"


def plugin_config_for(project: Any) -> dict[str, Any] | str:
    """The plugin configuration a project's filter runs with.

    A builder may write `build/<name>.config.json` (the Lua runtime carries the
    script there); otherwise the manifest's `[config]` table is the config.
    """
    generated = project.build_dir / f"{project.name}.config.json"
    if generated.is_file():
        return generated.read_text()
    return dict(project.manifest.config)


def resolve_filter(
    target: str | Path,
    config: dict[str, Any] | None = None,
    failure_policy: str = "FAIL_OPEN",
    force_build: bool = False,
    build_target: str = "wasm",
) -> ResolvedFilter:
    """Build a project directory if its inputs changed, or take a .wasm / .so as is.

    `config` (a dict) is merged over the project's plugin configuration.
    `build_target` "native" builds and runs the project's lib<name>.so
    (Envoy's dynamic_modules filter) instead of its .wasm.
    """
    from ..build import build_project
    from ..project import Project

    path = Path(target)
    if path.suffix == ".so":
        if not path.is_file():
            raise WirelabError(f"filter {path} does not exist: build it with --target native")
        name = path.stem.removeprefix("lib")
        spec = FilterSpec(_spec_name(name), path, config or {}, target="native")
        return ResolvedFilter(spec, "tcp")
    if path.suffix == ".wasm":
        if not path.is_file():
            raise WirelabError(
                f"filter {path} does not exist: build it or give a project directory"
            )
        spec = FilterSpec(_spec_name(path.stem), path, config or {}, failure_policy=failure_policy)
        return ResolvedFilter(spec, "tcp")
    project = Project.load(path)
    try:
        build_project(project, force=force_build, target=build_target)
    except BuildError as exc:
        # With several --filter projects, `filter.c:31: ...` alone does not say which.
        raise BuildError(f"building filter project {project.name} ({project.root}) failed: "
                         f"{exc}") from None
    base = plugin_config_for(project)
    if config:
        merged = json.loads(base) if isinstance(base, str) else dict(base)
        merged.update(config)
        base = merged
    spec = FilterSpec(
        _spec_name(project.name), project.output_path(build_target), base,
        root_id=project.name, failure_policy=failure_policy, target=build_target,
        tag_keys=tuple(project.manifest.tag_keys),
    )
    return ResolvedFilter(spec, project.manifest.protocol)
