"""What to run in Envoy: listeners, each with a chain of Wasm filters."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EnvoyError

FAILURE_POLICIES = ("FAIL_OPEN", "FAIL_CLOSED", "FAIL_RELOAD")
# "wasm": envoy.filters.network.wasm running a .wasm; "native":
# envoy.filters.network.dynamic_modules loading a lib<name>.so (no VM, no
# failure_policy: a native module is trusted like Envoy's own filters).
FILTER_TARGETS = ("wasm", "native")
# Listener and filter names end up in stat names and cluster names; keeping them
# to this set means Envoy never rewrites them and the stats stay predictable.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise EnvoyError(
            f"{kind} name {name!r} is not allowed: use letters, digits, '-' or '_', "
            "starting with a letter"
        )


@dataclass
class FilterSpec:
    """One filter: `envoy.filters.network.wasm`, or with `target="native"`
    `envoy.filters.network.dynamic_modules` (then `wasm` is the lib<name>.so).

    `config` is the plugin configuration: a dict is sent as JSON, a str as is.
    """

    name: str
    wasm: Path
    config: dict[str, Any] | str = field(default_factory=dict)
    root_id: str = ""
    vm_id: str = ""
    failure_policy: str = "FAIL_OPEN"
    target: str = "wasm"
    tag_keys: tuple[str, ...] = ()  # declared beyond wirelab's own: stats_tags rules too

    def __post_init__(self) -> None:
        _check_name("filter", self.name)
        self.wasm = Path(self.wasm)
        if self.target not in FILTER_TARGETS:
            raise EnvoyError(f"filter target {self.target!r} is unknown: use wasm or native")
        policy = self.failure_policy.upper()
        if policy not in FAILURE_POLICIES:
            raise EnvoyError(
                f"failure_policy {self.failure_policy!r} is unknown: "
                f"use one of {', '.join(FAILURE_POLICIES)}"
            )
        self.failure_policy = policy

    def config_json(self) -> str:
        if isinstance(self.config, str):
            return self.config
        return json.dumps(self.config, separators=(",", ":"), sort_keys=True)


@dataclass
class ListenerSpec:
    """A TCP listener on 127.0.0.1: filters in order, then tcp_proxy to `upstream`.

    `port` 0 means "pick a free port" (EnvoyProcess does that before rendering).
    """

    name: str
    upstream: tuple[str, int]
    filters: list[FilterSpec] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        _check_name("listener", self.name)
        host, port = self.upstream
        self.upstream = (str(host), int(port))
        names = [f.name for f in self.filters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise EnvoyError(
                f"listener {self.name!r} has two filters named {dupes[0]!r}: "
                "give each filter in a chain its own name"
            )

    @property
    def cluster(self) -> str:
        return f"{self.name}_upstream"
