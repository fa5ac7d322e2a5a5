"""Filters delivered through xDS files: export, publish, bootstrap, watch.

    spec = load_fleet("fleet.toml")            # or simple_fleet([...], upstream=...)
    result = export(spec, Path("out"))         # builds, validates, publishes atomically
    print(render_bootstrap_for(Path("out"), admin_port=9901))

An export is a directory Envoy reads with filesystem config sources: LDS, CDS
and one ECDS resource per filter, the code beside them under its sha256. A new
export is written next to the published one and switched in by one rename.
"""

from .bootstrap import render_xds_bootstrap
from .export import ExportResult, export
from .fleetfile import FilterEntry, FleetSpec, XListener, load_fleet, simple_fleet
from .publish import published_manifest

__all__ = [
    "ExportResult", "FilterEntry", "FleetSpec", "XListener", "export", "load_fleet",
    "published_manifest", "render_xds_bootstrap", "simple_fleet",
]
