"""A lab's Envoy fed through the export path: the files `wirelab xds export` writes.

`Lab(xds=True)` starts this instead of a static bootstrap: the lab's listeners
and filters are exported into the Envoy's work directory and Envoy reads them
with the `wirelab xds bootstrap`; `republish()` swaps filters in through ECDS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..envoy.process import _free_port
from ..envoy.specs import ListenerSpec
from .envoy import XdsEnvoy
from .export import ExportResult, export
from .fleetfile import FilterEntry, FleetSpec, XListener


def fleet_spec(listeners: list[ListenerSpec], ports: dict[str, int]) -> FleetSpec:
    """The lab's listeners as a fleet: each filter exported from its built module."""
    out = []
    for spec in listeners:
        entries = [FilterEntry(Path(f.wasm), config=f.config_json(), name=f.name,
                               root_id=f.root_id) for f in spec.filters]
        policy = spec.filters[0].failure_policy if spec.filters else "FAIL_OPEN"
        out.append(XListener(spec.name, ports[spec.name], spec.upstream, entries,
                             failure_policy=policy))
    return FleetSpec(out)


class LabXdsEnvoy(XdsEnvoy):
    """One Envoy whose listeners come from an export in its own work directory."""

    def __init__(self, listeners: list[ListenerSpec], **kwargs: Any):
        taken: set[int] = set()
        ports = {spec.name: spec.port or _free_port(taken) for spec in listeners}
        super().__init__(Path("."), ports, node_id="wirelab-lab", **kwargs)
        self.lab_listeners = list(listeners)

    def start(self) -> None:
        # The work directory exists only once start() makes it; export into it first.
        import tempfile

        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="wirelab-envoy-"))
            self._own_dir = True
        self.root = (self._workdir / "xds").absolute()
        self.last_export = self.publish(self.lab_listeners)
        super().start()

    def publish(self, listeners: list[ListenerSpec], *, validate: bool = True,
                envoy_check: bool = True) -> ExportResult:
        """Export `listeners` (same names and ports) and switch Envoy to them."""
        return export(fleet_spec(listeners, self._ports), self.root, validate=validate,
                      envoy_check=envoy_check)
