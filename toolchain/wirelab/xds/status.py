"""What each Envoy runs: the ECDS version of every filter, and how the last update went."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

STAT_PREFIX = "extension_config_discovery.network_filter."


@dataclass
class FilterState:
    envoy: str  # node id or admin URL
    filter: str
    running: str | None  # ECDS version_info Envoy applied
    published: str | None  # what the export directory holds now
    accepted: int
    rejected: int
    last: str  # "accepted", "rejected", "pending" (not yet read) or "down"
    detail: str = ""  # Envoy's reason for the last rejection

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _ecds(admin: str) -> dict[str, dict[str, Any]]:
    dump = _get_json(f"{admin}/config_dump?resource=ecds_filters")
    out = {}
    for cfg in dump.get("configs", []):
        name = (cfg.get("ecds_filter") or {}).get("name")
        err = cfg.get("error_state") or {}
        if name is None and err:
            # A filter whose every update failed has no applied config to name it.
            name = (err.get("failed_configuration") or {}).get("name")
        if name:
            out[name] = cfg
    return out


def _counters(admin: str) -> dict[str, int]:
    stats = _get_json(f"{admin}/stats?format=json&filter=^extension_config_discovery")
    return {s["name"]: s["value"] for s in stats.get("stats", [])
            if isinstance(s.get("value"), int)}


def envoy_state(admin: str, published: dict[str, str], label: str | None = None
                ) -> list[FilterState]:
    """One row per published filter for the Envoy behind `admin`."""
    label = label or admin
    try:
        ecds = _ecds(admin)
        counters = _counters(admin)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return [FilterState(label, name, None, version, 0, 0, "down", str(exc))
                for name, version in published.items()]
    rows = []
    for name in sorted(set(published) | set(ecds)):
        cfg = ecds.get(name, {})
        running = cfg.get("version_info") if cfg.get("ecds_filter") else None
        accepted = counters.get(f"{STAT_PREFIX}{name}.update_success", 0)
        rejected = counters.get(f"{STAT_PREFIX}{name}.update_rejected", 0)
        want = published.get(name)
        err = cfg.get("error_state") or {}
        if running is not None and running == want:
            last = "accepted"
        elif err or (rejected and running != want):
            last = "rejected"
        else:
            last = "pending"
        detail = err.get("details", "") if last == "rejected" else ""
        rows.append(FilterState(label, name, running, want, accepted, rejected, last, detail))
    return rows
