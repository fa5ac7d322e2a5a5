"""`wirelab xds export --format istio`: Istio WasmPlugin resources (type NETWORK).

One WasmPlugin per filter, its code fetched by Istio's agent from the blob
origin by URL + sha256; filters keep their order on a listener through
descending `priority`. Only the Wasm target: Istio has no resource for
Envoy dynamic modules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import WirelabError
from . import publish
from .export import resolve_fleet
from .fleetfile import FleetSpec
from .resources import FilterResource

API_VERSION = "extensions.istio.io/v1alpha1"
FAIL_STRATEGY = {
    "FAIL_OPEN": "FAIL_OPEN", "FAIL_CLOSED": "FAIL_CLOSE", "FAIL_RELOAD": "FAIL_RELOAD",
}


def wasm_plugins(spec: FleetSpec, origin: str, namespace: str = "default",
                 selector: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The WasmPlugin documents for every filter of `spec` (builds stale projects)."""
    return _documents(*resolve_fleet(spec), origin, namespace, selector)


def _documents(listeners: list[dict[str, Any]], filters: dict[str, FilterResource], origin: str,
               namespace: str, selector: dict[str, str] | None) -> list[dict[str, Any]]:
    priority: dict[str, int] = {}
    for lst in listeners:
        for i, name in enumerate(lst["filters"]):
            priority.setdefault(name, 1000 - 10 * i)
    docs = []
    for f in filters.values():
        if f.native:
            raise WirelabError(f"filter {f.name!r} is a native module: Istio's WasmPlugin "
                               "takes Wasm only")
        try:
            config = json.loads(f.config_json)
        except ValueError:
            config = None
        if not isinstance(config, dict):
            raise WirelabError(
                f"filter {f.name!r}: Istio passes pluginConfig as a JSON object, and this "
                "filter's configuration is not one"
            )
        plugin: dict[str, Any] = {
            "type": "NETWORK",
            "url": f"{origin.rstrip('/')}/blobs/{f.blob}",
            "sha256": f.sha256,
            "pluginConfig": config,
            "failStrategy": FAIL_STRATEGY[f.failure_policy],
            "priority": priority[f.name],
        }
        if f.root_id:
            plugin["pluginName"] = f.root_id
        if selector:
            plugin["selector"] = {"matchLabels": dict(selector)}
        docs.append({"apiVersion": API_VERSION, "kind": "WasmPlugin",
                     "metadata": {"name": f.name, "namespace": namespace}, "spec": plugin})
    return docs


def export_istio(spec: FleetSpec, out: str | Path, origin: str | None,
                 namespace: str = "default", selector: dict[str, str] | None = None
                 ) -> list[Path]:
    """Write `wasmplugins.yaml` and the blobs under `out`; return what was written."""
    origin = origin or spec.blob_origin
    if not origin:
        raise WirelabError("--format istio needs --blob-origin URL: where Istio's agent "
                           "downloads blobs/<sha256>.wasm from")
    out = Path(out)
    listeners, filters = resolve_fleet(spec)
    docs = _documents(listeners, filters, origin, namespace, selector)
    written: dict[Path, None] = {}  # filters sharing a module share its blob
    for f in filters.values():
        publish.check_blob(out, f.sha256, f.wasm.suffix)
        written[publish.put_blob(out, f.wasm, f.sha256)] = None
    # JSON documents are YAML; kubectl applies them as they are.
    text = "".join(f"---\n{json.dumps(d, indent=2, sort_keys=True)}\n" for d in docs)
    target = out / "wasmplugins.yaml"
    target.write_text(text)
    return [target, *written]
