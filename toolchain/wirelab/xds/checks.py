"""The checks an export passes before it is published.

Each filter configures in the emulator (the same proxy_on_vm_start and
proxy_on_configure Envoy runs), then Envoy itself validates the whole export
with `--mode validate`: listeners, clusters and every filter inlined, code
read from the built files (validate mode loads no dynamic resources and
fetches nothing).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..emulator import Emulator, EmulatorError
from ..envoy.binary import validate_config
from ..errors import WirelabError
from .resources import FilterResource, cluster_resource, filter_config, listener_resource


class _Probe(Emulator):
    """An Emulator whose configure failure carries the filter's own error log."""

    def __init__(self, *args: Any, **kwargs: Any):
        try:
            super().__init__(*args, **kwargs)
        except EmulatorError as exc:
            said = [msg for _, msg in self.logs.at_least("error")] if hasattr(self, "logs") else []
            raise WirelabError(said[-1] if said else str(exc)) from None


def check_in_emulator(f: FilterResource) -> None:
    """Raise WirelabError naming the filter when its configuration is refused.

    A native module has no emulator: `envoy --mode validate` loads it instead."""
    if f.native:
        return
    try:
        _Probe(f.wasm, plugin_config=f.config_json, failure_policy="FAIL_CLOSED",
               plugin_name=f.name, root_id=f.root_id, vm_id=f.name, log_level="error")
    except WirelabError as exc:
        raise WirelabError(f"filter {f.name!r} does not configure: {exc}") from None


def validation_bootstrap(listeners: list[dict[str, Any]],
                         filters: dict[str, FilterResource]) -> dict[str, Any]:
    """A static bootstrap equivalent to the export, for `envoy --mode validate`."""
    static_listeners = []
    clusters = []
    for lst in listeners:
        chain = [{"name": n, "typed_config": filter_config(
            filters[n], {"local": {"filename": str(filters[n].wasm.resolve())}})}
            for n in lst["filters"]]
        res = listener_resource(lst["name"], lst["address"], lst["port"], chain)
        res.pop("@type")
        static_listeners.append(res)
        cl = cluster_resource(f"{lst['name']}_upstream", *lst["upstream"])
        cl.pop("@type")
        clusters.append(cl)
    return {"node": {"id": "wirelab-validate", "cluster": "wirelab"},
            "static_resources": {"listeners": static_listeners, "clusters": clusters}}


def check_in_envoy(listeners: list[dict[str, Any]], filters: dict[str, FilterResource]) -> None:
    validate_config(json.dumps(validation_bootstrap(listeners, filters)))


def check_pin(f: FilterResource, pinned: str | None, wasm: Path) -> None:
    if pinned and pinned.lower() != f.sha256:
        raise WirelabError(
            f"filter {f.name!r}: {wasm} has sha256 {f.sha256}, but the fleet file pins "
            f"{pinned}: rebuild the pinned file or update the pin"
        )
