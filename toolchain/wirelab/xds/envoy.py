"""An Envoy process that runs the bootstrap of an export directory."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..envoy import EnvoyProcess
from ..envoy.binary import startup_reason
from ..envoy.specs import ListenerSpec
from ..errors import EnvoyError
from .bootstrap import render_xds_bootstrap


class XdsEnvoy(EnvoyProcess):
    """Envoy reading LDS/CDS/ECDS from `root`; `ports` names the listeners it will have.

    Ready means the admin API answers and every listener of the export is active
    (a listener warms until its filters' ECDS resources have loaded).
    """

    def __init__(self, root: str | Path, ports: dict[str, int], *, node_id: str = "wirelab",
                 blob_origin: str | None = None, **kwargs: Any):
        super().__init__([], **kwargs)
        self.root = Path(root).absolute()
        self.node_id = node_id
        self.blob_origin = blob_origin
        self._ports = dict(ports)

    def _bootstrap(self, specs: list[ListenerSpec]) -> str:
        del specs
        return render_xds_bootstrap(
            self.root, self.admin_port, node_id=self.node_id, blob_origin=self.blob_origin,
            stats_flush_interval_ms=self.stats_flush_interval_ms,
        )

    def _wait_ready(self) -> None:
        super()._wait_ready()
        want = len(self._ports)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            snap = self.stats.snapshot()
            if (snap.value("listener_manager.total_listeners_active") or 0) >= want:
                return
            if snap.value("listener_manager.lds.update_rejected"):
                raise EnvoyError(
                    f"Envoy {self.node_id} rejected the listeners of {self.root}: "
                    f"{startup_reason(self._log_with_error())}"
                )
            time.sleep(0.05)
        raise EnvoyError(
            f"Envoy {self.node_id} has not activated its {want} listener(s) from {self.root} "
            f"after {self.startup_timeout:g} s (log: {self.log_path})\n{self.log_tail(15)}"
        )

    def _log_with_error(self, settle_s: float = 2.0) -> str:
        """The log tail once it holds Envoy's error line: the rejection is counted
        before the log file's flush timer writes the reason out."""
        deadline = time.monotonic() + settle_s
        while True:
            tail = self.log_tail(40)
            if "][error]" in tail or "][critical]" in tail or time.monotonic() > deadline:
                return tail
            time.sleep(0.05)
