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
    detail: str = ""  # what the rejection was
    export: str | None = None  # the first export that published the running version

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _received(admin: str) -> dict[str, str]:
    """Filter name -> the ECDS version Envoy last read, applied or not.

    Envoy's config_dump shows the last version it received even when it
    rejected it; the `version_text` stat is the version actually running.
    """
    dump = _get_json(f"{admin}/config_dump?resource=ecds_filters")
    out = {}
    for cfg in dump.get("configs", []):
        name = (cfg.get("ecds_filter") or {}).get("name")
        if name:
            out[name] = cfg.get("version_info", "")
    return out


def _ecds_stats(admin: str) -> dict[str, int | str]:
    stats = _get_json(f"{admin}/stats?format=json&filter=^extension_config_discovery")
    return {s["name"]: s["value"] for s in stats.get("stats", []) if "value" in s}


def envoy_state(admin: str, published: dict[str, str], label: str | None = None
                ) -> list[FilterState]:
    """One row per published filter for the Envoy behind `admin`."""
    label = label or admin
    try:
        received = _received(admin)
        stats = _ecds_stats(admin)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return [FilterState(label, name, None, version, 0, 0, "down", str(exc))
                for name, version in published.items()]
    rows = []
    for name in sorted(set(published) | set(received)):
        base = f"{STAT_PREFIX}{name}."
        running = stats.get(base + "version_text") or None
        accepted = int(stats.get(base + "update_success", 0))
        rejected = int(stats.get(base + "update_rejected", 0))
        want = published.get(name)
        detail = ""
        if running is not None and running == want:
            last = "accepted"
        elif received.get(name) == want and rejected:
            last = "rejected"
            detail = f"rejected {want}, still runs {running or 'nothing'} (see the Envoy log)"
        else:
            last = "pending"
        rows.append(FilterState(label, name, str(running) if running else None, want,
                                accepted, rejected, last, detail))
    return rows
