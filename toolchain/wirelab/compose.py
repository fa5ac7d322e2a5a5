"""`wirelab compose DIR`: a Docker Compose project of the demo stack, for people with Docker.

Envoy (with the shipped filters), PostgreSQL 18, MySQL 8.4, Prometheus and Grafana
with the wirelab dashboard provisioned. The database and Envoy services come from
the same ContainerSpecs the docker backend runs (`servers/docker_backend.py`,
`harness/docker_lab.py`), and Envoy's bootstrap from the same container renderer,
so the two cannot drift apart. Services get fixed addresses on their own network
because Envoy's STATIC clusters name upstreams by IP address.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from .envoy import ListenerSpec
from .envoy.render import container_wasm_paths, render_container_bootstrap
from .harness.docker_lab import ADMIN_PORT, LISTENER_PORTS, SERVER_PORTS
from .harness.filters import resolve_filter
from .paths import examples_dir
from .prometheus import scrape_config
from .servers.docker_backend import ContainerSpec, envoy_spec, mysql_spec, postgres_spec

PROMETHEUS_IMAGE = "prom/prometheus:v2.53.2"
GRAFANA_IMAGE = "grafana/grafana:11.3.0"
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
NETWORK = "wirelab"
SUBNET = "10.89.17.0/24"
ADDRESSES = {"postgres": "10.89.17.10", "mysql": "10.89.17.11", "envoy": "10.89.17.12",
             "prometheus": "10.89.17.13", "grafana": "10.89.17.14"}
RULES_IN_CONTAINER = "/etc/prometheus/wirelab.rules.yml"
DASHBOARDS_IN_CONTAINER = "/var/lib/grafana/dashboards"


def prometheus_spec(config: Path, rules: Path) -> ContainerSpec:
    return ContainerSpec(
        role="prometheus", image=PROMETHEUS_IMAGE,
        ports={PROMETHEUS_PORT: PROMETHEUS_PORT},
        command=["--config.file=/etc/prometheus/prometheus.yml",
                 "--storage.tsdb.path=/prometheus", "--storage.tsdb.retention.time=1d"],
        volumes={str(config): "/etc/prometheus/prometheus.yml", str(rules): RULES_IN_CONTAINER},
        ready_http=(PROMETHEUS_PORT, "/-/ready"),
    )


def grafana_spec(provisioning: Path, dashboard: Path) -> ContainerSpec:
    return ContainerSpec(
        role="grafana", image=GRAFANA_IMAGE,
        # A local demo: anyone on this machine's loopback may look, nobody must log in.
        env={"GF_AUTH_ANONYMOUS_ENABLED": "true", "GF_AUTH_ANONYMOUS_ORG_ROLE": "Admin",
             "GF_AUTH_DISABLE_LOGIN_FORM": "true",
             "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH":
                 f"{DASHBOARDS_IN_CONTAINER}/wirelab.json"},
        ports={GRAFANA_PORT: GRAFANA_PORT},
        volumes={str(provisioning): "/etc/grafana/provisioning",
                 str(dashboard): f"{DASHBOARDS_IN_CONTAINER}/wirelab.json"},
        ready_http=(GRAFANA_PORT, "/api/health"),
    )


def _duration(seconds: float) -> str:
    return f"{seconds:g}s"


def service(spec: ContainerSpec, root: Path) -> dict[str, Any]:
    """A ContainerSpec as a Compose service; host paths under `root` become relative."""
    svc: dict[str, Any] = {"image": spec.image}
    if spec.env:
        svc["environment"] = dict(spec.env)
    if spec.command:
        svc["command"] = list(spec.command)
    if spec.ports:
        # Loopback only, as the docker backend publishes them: the passwords are known.
        # A port the spec leaves open (None) gets one the engine picks.
        svc["ports"] = [f"127.0.0.1:{host or ''}:{inside}" for inside, host in spec.ports.items()]
    if spec.volumes:
        svc["volumes"] = [f"./{Path(host).resolve().relative_to(root.resolve())}:{inside}:ro"
                          for host, inside in spec.volumes.items()]
    if spec.healthcheck is not None:
        h = spec.healthcheck
        svc["healthcheck"] = {"test": list(h.test), "interval": _duration(h.interval),
                              "timeout": _duration(h.timeout), "retries": h.retries,
                              "start_period": _duration(h.start_period)}
    svc["networks"] = {NETWORK: {"ipv4_address": ADDRESSES[spec.role]}}
    return svc


class _Dumper(yaml.SafeDumper):
    """Plain YAML: no &anchors/*aliases for values that happen to be shared."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write_compose(out: Path, filters: list[Path] | None = None,
                  filter_config: dict[str, Any] | None = None) -> Path:
    """Write the project into `out` (built .wasm files included); returns the compose file."""
    from .demo import demo_filters

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = filter_config if filter_config is not None else {"stat_prefix": "demo"}
    resolved = [resolve_filter(f, config) for f in (filters or demo_filters())]

    pg, my = postgres_spec(), mysql_spec()
    listeners = [
        ListenerSpec(kind, (ADDRESSES[kind], SERVER_PORTS[kind]),
                     [f.spec for f in resolved if f.applies_to(kind)], port=LISTENER_PORTS[kind])
        for kind in ("postgres", "mysql")]
    inside = container_wasm_paths(listeners)
    wasm_dir = out / "wasm"
    wasm_dir.mkdir(exist_ok=True)
    local = {}
    for host, target in inside.items():
        copy = wasm_dir / PurePosixPath(target).name
        shutil.copyfile(host, copy)
        local[copy] = target
    # Render against the copies, so the bootstrap names the files the compose file mounts.
    listeners = [replace(ls, filters=[replace(f, wasm=wasm_dir / PurePosixPath(
        inside[f.wasm.resolve()]).name) for f in ls.filters]) for ls in listeners]
    envoy_yaml = out / "envoy.yaml"
    envoy_yaml.write_text(render_container_bootstrap(listeners, ADMIN_PORT, local))
    envoy = envoy_spec(envoy_yaml,
                       listener_ports={p: p for p in LISTENER_PORTS.values()},
                       admin_port=ADMIN_PORT, wasm_files=local)
    envoy = replace(envoy, ports={**envoy.ports, ADMIN_PORT: ADMIN_PORT})

    dashboards = examples_dir() / "dashboards"
    rules = out / "prometheus" / "wirelab.rules.yml"
    rules.parent.mkdir(exist_ok=True)
    shutil.copyfile(dashboards / "wirelab.rules.yml", rules)
    prom_yml = out / "prometheus" / "prometheus.yml"
    prom_yml.write_text(yaml.safe_dump(scrape_config(
        [f"{ADDRESSES['envoy']}:{ADMIN_PORT}"], rules=[RULES_IN_CONTAINER]), sort_keys=False))
    grafana = out / "grafana"
    if grafana.exists():
        shutil.rmtree(grafana)
    shutil.copytree(dashboards / "provisioning", grafana / "provisioning")
    shutil.copyfile(dashboards / "wirelab.json", grafana / "wirelab.json")

    specs = [pg, my, envoy, prometheus_spec(prom_yml, rules),
             grafana_spec(grafana / "provisioning", grafana / "wirelab.json")]
    services = {spec.role: service(spec, out) for spec in specs}
    healthy = {"condition": "service_healthy"}
    services["envoy"]["depends_on"] = {"postgres": healthy, "mysql": healthy}
    services["prometheus"]["depends_on"] = ["envoy"]
    services["grafana"]["depends_on"] = ["prometheus"]
    doc = {
        "name": "wirelab",
        "services": services,
        "networks": {NETWORK: {"ipam": {"config": [{"subnet": SUBNET}]}}},
    }
    compose = out / "docker-compose.yml"
    header = ("# Generated by `wirelab compose`: the demo stack (see examples/compose/README.md).\n"
              "# Database passwords are random per generation; they are in this file.\n")
    compose.write_text(header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100))
    (out / "connect.json").write_text(json.dumps({
        "postgres": {"port": LISTENER_PORTS["postgres"], "user": pg.user,
                     "password": pg.password, "database": pg.database},
        "mysql": {"port": LISTENER_PORTS["mysql"], "user": my.user, "password": my.password,
                  "database": my.database},
        "envoy_admin": f"http://127.0.0.1:{ADMIN_PORT}",
        "prometheus": f"http://127.0.0.1:{PROMETHEUS_PORT}",
        "grafana": f"http://127.0.0.1:{GRAFANA_PORT}",
    }, indent=2) + "\n")
    return compose
