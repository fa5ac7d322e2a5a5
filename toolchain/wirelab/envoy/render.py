"""Render Envoy YAML from the templates in the top-level `envoy/` directory."""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Mapping
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from ..errors import EnvoyError
from ..paths import envoy_templates_dir
from .specs import FilterSpec, ListenerSpec

# wirelab's own tag keys; a project declares others as `tag_keys` in wirelab.toml
# (docs/metrics-naming.md), and they get stats_tags rules too.
TAG_KEYS = (
    "type", "verb", "command", "sqlstate", "class", "code",
    "reason", "database", "user", "direction",
)
# Envoy stores a Wasm metric `x` as `wasmcustom.x`, and the tag regexes see that
# full name (a native filter's metrics get the same namespace through
# `metrics_namespace`, so both targets give the same stats and labels); anchoring
# on the namespace keeps Envoy's own stats untouched and
# lets Envoy skip the regex for every other stat (it indexes rules by prefix).
NAMESPACE = "wasmcustom"
# Where the docker backend mounts each filter's .wasm inside the Envoy container.
CONTAINER_WASM_DIR = "/etc/envoy/wasm"


def tag_rules(extra_keys: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The `stats_config.stats_tags` rules for the wirelab naming convention."""
    rules = [{"tag_name": "stat_prefix", "regex": rf"^{NAMESPACE}\.[^.]+\.(([^.]+)\.)"}]
    for key in dict.fromkeys(TAG_KEYS + tuple(extra_keys)):
        rules.append({"tag_name": key, "regex": rf"^{NAMESPACE}\..*?(\.{key}=([^.]+))"})
    return rules


def has_native(listeners: list[ListenerSpec]) -> bool:
    """Whether any filter is a native module (then the bootstrap needs the
    runtime guard that strips its namespace from Prometheus names)."""
    return any(f.target == "native" for spec in listeners for f in spec.filters)


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(envoy_templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    # JSON scalars are valid YAML and quote whatever a value holds.
    env.filters["q"] = lambda v: json.dumps(v)
    return env


def _upstream_ip(host: str) -> str:
    """STATIC clusters need an IP address: resolve a host name once, here."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        # Prefer IPv4: "localhost" often lists ::1 first, where servers rarely listen.
        infos.sort(key=lambda info: info[0] != socket.AF_INET)
        return infos[0][4][0]
    except OSError as exc:
        raise EnvoyError(
            f"upstream host {host!r} does not resolve ({exc}): use an IP address"
        ) from None


def _filter_ctx(
    f: FilterSpec, check_file: bool, wasm_paths: Mapping[str, str] | None = None
) -> dict[str, Any]:
    wasm = f.wasm.resolve()
    if check_file and not wasm.is_file():
        raise EnvoyError(f"filter {f.name!r}: {wasm} does not exist (run `wirelab build` first)")
    path = str(wasm)
    if wasm_paths is not None:
        try:
            path = wasm_paths[path]
        except KeyError:
            raise EnvoyError(
                f"filter {f.name!r}: {wasm} has no path inside the container: "
                "map every filter's .wasm (see container_wasm_paths)"
            ) from None
    return {
        "name": f.name,
        "root_id": f.root_id,
        "vm_id": f.vm_id,
        "wasm_path": path,
        "config_json": f.config_json(),
        "failure_policy": f.failure_policy,
        "target": f.target,
        "namespace": NAMESPACE,
    }


def _listener_ctx(
    spec: ListenerSpec,
    address: str,
    check_file: bool,
    wasm_paths: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "name": spec.name,
        "address": address,
        "port": spec.port,
        "cluster": spec.cluster,
        "upstream_ip": _upstream_ip(spec.upstream[0]),
        "upstream_port": spec.upstream[1],
        "filters": [_filter_ctx(f, check_file, wasm_paths) for f in spec.filters],
    }


def _check_unique(listeners: list[ListenerSpec]) -> None:
    names = [spec.name for spec in listeners]
    for name in names:
        if names.count(name) > 1:
            raise EnvoyError(f"two listeners are named {name!r}: give each its own name")


def _check_ports(listeners: list[ListenerSpec], fix: str) -> None:
    """Every listener has a fixed port (where Envoy does not run on this machine)."""
    for spec in listeners:
        if not spec.port:
            raise EnvoyError(f"listener {spec.name!r} has no port: {fix}")


def _flush_interval(stats_flush_interval_ms: int) -> str:
    if stats_flush_interval_ms < 1:
        raise EnvoyError("stats_flush_interval_ms must be at least 1")
    return f"{stats_flush_interval_ms / 1000:g}s"


def _bootstrap(listeners: list[ListenerSpec], contexts: list[dict], admin_address: str,
               admin_port: int, flush_interval: str) -> str:
    return _env().get_template("bootstrap.yaml.j2").render(
        listeners=contexts,
        admin_address=admin_address,
        admin_port=int(admin_port),
        flush_interval=flush_interval,
        tag_rules=tag_rules(_declared_keys(listeners)),
        native=has_native(listeners),
    )


def render_bootstrap(
    listeners: list[ListenerSpec],
    admin_port: int,
    stats_flush_interval_ms: int = 200,
    concurrency: int = 1,
) -> str:
    """A complete Envoy bootstrap (YAML) with the admin API on 127.0.0.1.

    `concurrency` is a command-line option of Envoy, not part of the bootstrap;
    it is accepted here so callers describe one run in one place.
    """
    del concurrency
    _check_unique(listeners)
    flush_interval = _flush_interval(stats_flush_interval_ms)
    return _bootstrap(listeners, [_listener_ctx(spec, "127.0.0.1", True) for spec in listeners],
                      "127.0.0.1", admin_port, flush_interval)


def container_wasm_paths(listeners: list[ListenerSpec]) -> dict[Path, str]:
    """Each distinct .wasm of `listeners` → its path under /etc/envoy/wasm in a container.

    A file used by several listeners is mounted once; two different files with
    the same name get distinct names (`f.wasm`, `f-2.wasm`).
    """
    out: dict[Path, str] = {}
    taken: set[str] = set()
    for spec in listeners:
        for f in spec.filters:
            wasm = f.wasm.resolve()
            if wasm in out:
                continue
            stem, n = wasm.stem, 1
            name = f"{stem}.wasm"
            while name in taken:
                n += 1
                name = f"{stem}-{n}.wasm"
            taken.add(name)
            out[wasm] = str(PurePosixPath(CONTAINER_WASM_DIR) / name)
    return out


def render_container_bootstrap(
    listeners: list[ListenerSpec],
    admin_port: int,
    wasm_paths: Mapping[Path, str] | None = None,
    stats_flush_interval_ms: int = 200,
) -> str:
    """A bootstrap for Envoy inside a container.

    Listeners and the admin API bind 0.0.0.0 *inside* the container, so that the
    ports the engine publishes (on the host's 127.0.0.1 only) reach them; every
    listener needs its fixed container `port`. Upstreams are addresses Envoy
    reaches from the container (the database containers' IPs on a shared
    network). `wasm_paths` maps each host .wasm to where it is mounted
    (default: `container_wasm_paths(listeners)`); the host files must exist.
    """
    _check_unique(listeners)
    flush_interval = _flush_interval(stats_flush_interval_ms)
    _check_ports(listeners, "a container's ports are fixed")
    if wasm_paths is None:
        wasm_paths = container_wasm_paths(listeners)
    keyed = {str(Path(host).resolve()): inside for host, inside in wasm_paths.items()}
    return _bootstrap(listeners, [_listener_ctx(spec, "0.0.0.0", True, keyed)
                                  for spec in listeners],
                      "0.0.0.0", admin_port, flush_interval)


def render_user_config(
    listeners: list[ListenerSpec],
    listen_address: str = "0.0.0.0",
    extra_tag_keys: tuple[str, ...] = (),
) -> str:
    """Snippets for a user's own Envoy: listeners, clusters and the stats_tags rules.

    Wasm paths are written as given (absolute), since the user's Envoy may run
    elsewhere; the file need not exist on this machine.
    """
    _check_unique(listeners)
    _check_ports(listeners, "give it the port to listen on")
    return _env().get_template("user-config.yaml.j2").render(
        listeners=[_listener_ctx(spec, listen_address, False) for spec in listeners],
        tag_rules=tag_rules(extra_tag_keys + _declared_keys(listeners)),
        native=has_native(listeners),
    )


def render_user_bootstrap(listeners: list[ListenerSpec], admin_port: int = 9901,
                          listen_address: str = "0.0.0.0") -> str:
    """A complete bootstrap for a user's own Envoy (`envoy -c` runs it as is): the admin
    API on 127.0.0.1:`admin_port`, the listeners, their clusters, the stats_tags rules."""
    _check_unique(listeners)
    _check_ports(listeners, "give it the port to listen on")
    return _bootstrap(listeners, [_listener_ctx(spec, listen_address, False) for spec in listeners],
                      "127.0.0.1", admin_port, "5s")  # Envoy's default flush interval


def _declared_keys(listeners: list[ListenerSpec]) -> tuple[str, ...]:
    return tuple(k for spec in listeners for f in spec.filters for k in f.tag_keys)
