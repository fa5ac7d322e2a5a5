"""The xDS documents of an export: LDS, CDS and one ECDS resource per filter.

Documents are JSON (Envoy's filesystem sources read `.json` as JSON). Every
path inside them is under `root`, the directory as Envoy will see it, so a
synced copy works wherever it is mounted at that path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..envoy.render import _upstream_ip

WASM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm"
NATIVE_TYPE = ("type.googleapis.com/envoy.extensions.filters.network.dynamic_modules.v3."
               "DynamicModuleNetworkFilter")
# Every ECDS filter accepts both targets, so a filter can move between Wasm and
# native without touching the listener.
FILTER_TYPES = [WASM_TYPE, NATIVE_TYPE]
EXTENSION_TYPE = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
LISTENER_TYPE = "type.googleapis.com/envoy.config.listener.v3.Listener"
CLUSTER_TYPE = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
TCP_PROXY_TYPE = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
STRING_TYPE = "type.googleapis.com/google.protobuf.StringValue"
BLOB_CLUSTER = "wirelab_blobs"
LDS_FILE, CDS_FILE = "lds.json", "cds.json"


def ecds_file(name: str) -> str:
    return f"ecds-{name}.json"


def blob_name(sha256: str, suffix: str = ".wasm") -> str:
    return f"{sha256}{suffix}"


@dataclass(frozen=True)
class FilterResource:
    """One filter as ECDS delivers it: its code (by sha256) and its configuration."""

    name: str
    sha256: str
    config_json: str
    root_id: str
    failure_policy: str
    wasm: Path  # the built file (what the blob is copied from): a .wasm, or a native .so
    source: str  # project directory or file, for the manifest

    @property
    def native(self) -> bool:
        """An Envoy dynamic module (a shared library) rather than a Wasm module."""
        return self.wasm.suffix == ".so"

    @property
    def blob(self) -> str:
        return blob_name(self.sha256, ".so" if self.native else ".wasm")

    @property
    def version(self) -> str:
        """Content digest: the same filter exported twice keeps its version."""
        material = "\0".join([self.sha256, self.config_json, self.root_id, self.failure_policy])
        return hashlib.sha256(material.encode()).hexdigest()[:12]


def code_source(f: FilterResource, root: Path, code: str, origin: str | None,
                local_path: Path | None = None) -> dict[str, Any]:
    """`vm_config.code`: the blob by path (local) or by HTTP URI + sha256 (remote)."""
    if code == "remote" and local_path is None:
        assert origin
        return {"remote": {
            "http_uri": {"uri": f"{origin.rstrip('/')}/blobs/{f.blob}",
                         "cluster": BLOB_CLUSTER, "timeout": "10s"},
            "sha256": f.sha256,
            "retry_policy": {"num_retries": 3},
        }}
    path = local_path or (root / "blobs" / f.blob)
    return {"local": {"filename": str(path)}}


def native_config(f: FilterResource, path: Path) -> dict[str, Any]:
    """A dynamic module by local path: Envoy 1.40 loads remote modules only with an init
    manager ("Remote module sources require an init manager"), so the blob is synced."""
    return {
        "@type": NATIVE_TYPE,
        # One name per version: a new build is a new module, loaded beside the old one.
        "dynamic_module_config": {"name": f"{f.name}-{f.version}",
                                  "module": {"local": {"filename": str(path)}}},
        "filter_name": f.root_id or f.name,
        "filter_config": {"@type": STRING_TYPE, "value": f.config_json},
    }


def filter_config(f: FilterResource, code_src: dict[str, Any]) -> dict[str, Any]:
    """The typed_config of a filter for its target."""
    if f.native:
        return native_config(f, Path(code_src["local"]["filename"]))
    return wasm_config(f, code_src)


def wasm_config(f: FilterResource, code_src: dict[str, Any]) -> dict[str, Any]:
    return {
        "@type": WASM_TYPE,
        "config": {
            "name": f.name,
            "root_id": f.root_id,
            # One VM per version: connections opened before a swap keep the VM
            # (and the script) they started with until they close.
            "vm_config": {"vm_id": f"{f.name}-{f.version}", "runtime": "envoy.wasm.runtime.v8",
                          "code": code_src},
            "configuration": {"@type": STRING_TYPE, "value": f.config_json},
            "failure_policy": f.failure_policy,
        },
    }


def ecds_doc(f: FilterResource, root: Path, code: str, origin: str | None) -> dict[str, Any]:
    return {
        "version_info": f.version,
        "resources": [{"@type": EXTENSION_TYPE, "name": f.name,
                       "typed_config": filter_config(
                           f, code_source(f, root, "local" if f.native else code, origin))}],
    }


def watched(root: Path, file: str) -> dict[str, Any]:
    """A filesystem source that reloads when something is moved into `root`."""
    return {"path_config_source": {"path": str(root / file),
                                   "watched_directory": {"path": str(root)}},
            "resource_api_version": "V3"}


def discovery_filter(name: str, root: Path) -> dict[str, Any]:
    return {"name": name, "config_discovery": {
        "config_source": watched(root, ecds_file(name)), "type_urls": list(FILTER_TYPES)}}


def tcp_proxy(listener: str) -> dict[str, Any]:
    return {"name": "envoy.filters.network.tcp_proxy",
            "typed_config": {"@type": TCP_PROXY_TYPE, "stat_prefix": listener,
                             "cluster": f"{listener}_upstream"}}


def listener_resource(name: str, address: str, port: int,
                      filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "@type": LISTENER_TYPE,
        "name": name,
        "address": {"socket_address": {"address": address, "port_value": port}},
        # Several Envoys on one host share the port; the kernel spreads connections.
        "enable_reuse_port": True,
        "filter_chains": [{"filters": [*filters, tcp_proxy(name)]}],
    }


def cluster_resource(name: str, host: str, port: int) -> dict[str, Any]:
    return {
        "@type": CLUSTER_TYPE,
        "name": name,
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {
                "address": _upstream_ip(host), "port_value": port}}}}]}]},
    }


def doc(version: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version_info": version, "resources": resources}


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"
