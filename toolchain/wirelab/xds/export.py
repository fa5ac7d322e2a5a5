"""`wirelab xds export`: build, check, and publish a fleet's filters as xDS files."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..envoy.specs import _check_name
from ..errors import WirelabError
from ..harness.filters import _spec_name, resolve_filter
from . import checks, publish
from .fleetfile import FilterEntry, FleetSpec
from .resources import (
    CDS_FILE,
    LDS_FILE,
    FilterResource,
    cluster_resource,
    discovery_filter,
    doc,
    dumps,
    ecds_doc,
    ecds_file,
    listener_resource,
)


@dataclass
class ExportResult:
    root: Path
    version: str  # the published export's directory name, e.g. "0003"
    filters: dict[str, str] = field(default_factory=dict)  # name -> version (content digest)
    changed: list[str] = field(default_factory=list)  # filters whose version is new
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"root": str(self.root), "version": self.version, "filters": self.filters,
                "changed": self.changed, "seconds": round(self.seconds, 3),
                "warnings": self.warnings}


def _resolve(entry: FilterEntry, policy: str) -> FilterResource:
    """Build (when stale) and describe one filter; nothing is written outside build/."""
    path = entry.path
    if path.suffix in (".wasm", ".so"):
        if not path.is_file():
            raise WirelabError(f"filter {path} does not exist: build it or name a project")
        wasm, root_id, name = path, entry.root_id or "", entry.name or _spec_name(path.stem)
        config: Any = entry.config if entry.config is not None else {}
    else:
        resolved = resolve_filter(path, entry.config if isinstance(entry.config, dict) else None,
                                  policy)
        spec = resolved.spec
        wasm, root_id, name = spec.wasm, entry.root_id or spec.root_id, entry.name or spec.name
        config = entry.config if isinstance(entry.config, str) else spec.config
    _check_name("filter", name)  # it names a file and Envoy stats
    config_json = config if isinstance(config, str) else json.dumps(
        config, separators=(",", ":"), sort_keys=True)
    f = FilterResource(name=name, sha256=publish.sha256_file(wasm), config_json=config_json,
                       root_id=root_id, failure_policy=policy, wasm=Path(wasm),
                       source=str(path))
    checks.check_pin(f, entry.sha256, wasm)
    return f


def resolve_fleet(spec: FleetSpec) -> tuple[list[dict[str, Any]], dict[str, FilterResource]]:
    """Listeners (as plain data) and the filters they name, each filter once."""
    filters: dict[str, FilterResource] = {}
    listeners = []
    for lst in spec.listeners:
        names = []
        for entry in lst.filters:
            f = _resolve(entry, lst.failure_policy)
            seen = filters.get(f.name)
            if seen is not None and seen.version != f.version:
                raise WirelabError(
                    f"two different filters are named {f.name!r} ({seen.source}, {f.source}): "
                    "give one of them `name = \"...\"` in the fleet file"
                )
            if f.name in names:
                raise WirelabError(f"listener {lst.name!r} names filter {f.name!r} twice")
            filters[f.name] = f
            names.append(f.name)
        listeners.append({"name": lst.name, "address": lst.address, "port": lst.port,
                          "upstream": lst.upstream, "filters": names})
    return listeners, filters


def render_files(spec: FleetSpec, root: Path, listeners: list[dict[str, Any]],
                 filters: dict[str, FilterResource], version: str) -> dict[str, str]:
    lds = [listener_resource(lst["name"], lst["address"], lst["port"],
                             [discovery_filter(n, root) for n in lst["filters"]])
           for lst in listeners]
    cds = [cluster_resource(f"{lst['name']}_upstream", *lst["upstream"]) for lst in listeners]
    files = {LDS_FILE: dumps(doc(version, lds)), CDS_FILE: dumps(doc(version, cds))}
    for f in filters.values():
        files[ecds_file(f.name)] = dumps(ecds_doc(f, root, spec.code, spec.blob_origin))
    manifest = {
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "root": str(root),  # where Envoys see the directory: paths inside the files use it
        "files": sorted(files),
        "code": spec.code,
        "blob_origin": spec.blob_origin,
        "listeners": [{**lst, "upstream": f"{lst['upstream'][0]}:{lst['upstream'][1]}"}
                      for lst in listeners],
        "filters": {f.name: {"version": f.version, "sha256": f.sha256, "blob": f.blob,
                             "source": f.source, "root_id": f.root_id,
                             "failure_policy": f.failure_policy}
                    for f in filters.values()},
    }
    files[publish.MANIFEST] = json.dumps(manifest, indent=2) + "\n"
    return files


def export(spec: FleetSpec, out: str | Path, *, root: str | Path | None = None,
           validate: bool = True, envoy_check: bool = True) -> ExportResult:
    """Build every filter, check the export, then publish it under `out` in one rename.

    `root` is where Envoys will see the directory (default: `out` itself).
    With `validate=False` the emulator and Envoy checks are skipped (the hash
    of a blob already in the store is still checked). On any failure nothing
    is published and the previous export stays as it was.
    """
    started = time.monotonic()
    out = Path(out).absolute()
    seen_root = Path(root).absolute() if root else out
    try:
        listeners, filters = resolve_fleet(spec)
        for f in filters.values():
            publish.check_blob(out, f.sha256, f.wasm.suffix)
        if validate:
            for f in filters.values():
                checks.check_in_emulator(f)
            if envoy_check:
                checks.check_in_envoy(listeners, filters)
    except WirelabError as exc:
        stays = publish.current_version(out)
        kept = f"{out} stays at version {stays}" if stays else "nothing was published"
        raise WirelabError(f"export refused ({kept}): {exc}") from None
    with publish.exclusive(out):
        before = publish.published_manifest(out) or {}
        old = {n: v["version"] for n, v in before.get("filters", {}).items()}
        warnings = _remote_code_warnings(spec, before, filters)
        version = publish.next_version(out)
        files = render_files(spec, seen_root, listeners, filters, version)
        for f in filters.values():
            publish.put_blob(out, f.wasm, f.sha256)
        staging = publish.stage(out, files)
        try:
            publish.switch(out, staging, version)
        except BaseException:
            publish.discard(staging)
            raise
    return ExportResult(
        root=out, version=version,
        filters={n: f.version for n, f in filters.items()},
        changed=[n for n, f in filters.items() if old.get(n) != f.version],
        seconds=time.monotonic() - started,
        warnings=warnings,
    )


def _remote_code_warnings(spec: FleetSpec, before: dict[str, Any],
                          filters: dict[str, FilterResource]) -> list[str]:
    """Envoy 1.40 fetches remote code only while it starts (or a listener warms): an
    ECDS update naming new remote code is accepted but never fetched (measured here:
    no HTTP request, `wasm.remote_load_fetch_successes` stays 0). Say so."""
    if spec.code != "remote" or not before:
        return []
    old = {n: v["sha256"] for n, v in before.get("filters", {}).items()}
    return [
        f"filter {n!r} has new code; running Envoys do not fetch remote code on an ECDS "
        "update (Envoy 1.40), only when they start: restart them, or export with --code local"
        for n, f in filters.items() if n in old and old[n] != f.sha256
    ]
