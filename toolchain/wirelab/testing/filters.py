"""Load a filter project into the emulator with the configuration it ships with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..emulator import Emulator


def load_filter(project_dir: str | Path = ".", config: dict[str, Any] | None = None,
                **emulator_options: Any) -> Emulator:
    """Build the project (only when its inputs changed) and load it into an Emulator.

    The plugin configuration is the one Envoy would get: the manifest's
    `[config]` (C) or `build/<name>.config.json` (Lua). `config` overrides
    top-level keys of it, e.g. `{"stat_prefix": "other"}`; for Lua projects
    the same keys are also overridden in the script's `settings`.
    Other keyword arguments go to `Emulator` (workers, failure_policy, ...).
    """
    from ..build import build_project
    from ..emulator import Emulator
    from ..harness.filters import plugin_config_for
    from ..project import Project

    project = Project.load(project_dir)
    built = build_project(project)
    base = plugin_config_for(project)
    plugin_config: dict[str, Any] = json.loads(base) if isinstance(base, str) else dict(base)
    if config:
        plugin_config.update(config)
        if isinstance(plugin_config.get("settings"), dict):
            plugin_config["settings"] = {**plugin_config["settings"], **config}
    return Emulator.load(built.wasm, plugin_config=plugin_config, **emulator_options)


def counters(emulator: Emulator, prefix: str = "") -> dict[str, int]:
    """The non-zero counters whose names start with `prefix`, with the prefix removed.

    `assert counters(host, "postgres.app.") == {"statements.type=select": 1}`
    checks every counter at once: a counter that moved unexpectedly fails it.
    """
    return {m.name[len(prefix):]: m.value for m in emulator.metrics
            if m.kind == "counter" and m.name.startswith(prefix) and m.value}


def nonzero_stats(emulator: Emulator, strip_segments: int = 2) -> dict[str, int]:
    """Every counter and gauge that is not zero, and every histogram's sample count
    (as `name#count`) when it has samples, with the first `strip_segments` dotted
    segments of each name removed (`postgres.app.` by default).

    Comparing this whole dict states a scenario's complete outcome.
    """
    d = emulator.metrics.as_dict()
    out: dict[str, int] = {}
    for kind in ("counters", "gauges"):
        for name, value in d[kind].items():
            if value:
                out[name.split(".", strip_segments)[-1]] = value
    for name, hist in d["histograms"].items():
        if hist["count"]:
            out[name.split(".", strip_segments)[-1] + "#count"] = hist["count"]
    return out
