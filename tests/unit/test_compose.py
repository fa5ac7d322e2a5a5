"""`wirelab compose`: the Docker Compose project is made of the docker backend's specs.

No Docker engine runs here, so the project is checked piece by piece with the real
tools that exist: the services must be the docker backend's ContainerSpecs (same
images, environment, commands, healthchecks), every mounted file must exist,
Envoy's bootstrap must point at the database services' addresses and pass
`envoy --mode validate`, Prometheus's configuration must pass `promtool check
config` and scrape Envoy's admin port, and Grafana must find the dashboard where
its provisioning says.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from wirelab import compose
from wirelab.harness.docker_lab import ADMIN_PORT, LISTENER_PORTS, SERVER_PORTS
from wirelab.servers.docker_backend import ENVOY_IMAGE, MYSQL_IMAGE, POSTGRES_IMAGE


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("compose")
    compose.write_compose(out)
    return out


@pytest.fixture(scope="module")
def doc(project: Path) -> dict:
    return yaml.safe_load((project / "docker-compose.yml").read_text())


def test_the_stack_has_the_five_services_on_fixed_addresses(doc: dict) -> None:
    services = doc["services"]
    assert list(services) == ["postgres", "mysql", "envoy", "prometheus", "grafana"]
    assert {s: services[s]["image"] for s in ("postgres", "mysql", "envoy")} == {
        "postgres": POSTGRES_IMAGE, "mysql": MYSQL_IMAGE, "envoy": ENVOY_IMAGE}
    for name, svc in services.items():
        assert svc["networks"] == {"wirelab": {"ipv4_address": compose.ADDRESSES[name]}}
    assert doc["networks"]["wirelab"]["ipam"]["config"] == [{"subnet": compose.SUBNET}]


def test_database_services_are_the_docker_backends_specs(doc: dict) -> None:
    import json

    services = doc["services"]
    pg = services["postgres"]
    # The same command and healthcheck the docker backend runs (the password differs
    # per generation, so the spec is rebuilt with the compose file's password).
    from wirelab.servers.docker_backend import mysql_spec, postgres_spec

    spec = postgres_spec(password=pg["environment"]["POSTGRES_PASSWORD"])
    assert pg["command"] == spec.command
    assert pg["environment"] == spec.env
    assert pg["healthcheck"]["test"] == spec.healthcheck.test
    assert pg["ports"] == [f"127.0.0.1::{SERVER_PORTS['postgres']}"]
    my = services["mysql"]
    spec = mysql_spec(password=my["environment"]["MYSQL_PASSWORD"])
    assert my["command"] == spec.command
    assert set(my["environment"]) == set(spec.env)
    assert my["healthcheck"]["test"][:-1] == spec.healthcheck.test[:-1]
    assert my["healthcheck"]["test"][-1] == "-p" + my["environment"]["MYSQL_ROOT_PASSWORD"]
    assert json.dumps(services["envoy"]["depends_on"], sort_keys=True) == json.dumps(
        {"mysql": {"condition": "service_healthy"},
         "postgres": {"condition": "service_healthy"}}, sort_keys=True)


def test_every_mounted_file_exists_in_the_project(project: Path, doc: dict) -> None:
    mounts = 0
    for svc in doc["services"].values():
        for volume in svc.get("volumes", []):
            host, inside, mode = volume.split(":")
            assert host.startswith("./") and mode == "ro", volume
            assert (project / host).exists(), volume
            mounts += 1
    assert mounts == 7  # envoy.yaml, 2 filters, prometheus.yml, rules, provisioning, dashboard


def test_envoy_listens_on_the_published_ports_and_reaches_the_databases(
        project: Path, doc: dict) -> None:
    envoy = doc["services"]["envoy"]
    assert envoy["ports"] == [f"127.0.0.1:{p}:{p}" for p in LISTENER_PORTS.values()] + [
        f"127.0.0.1:{ADMIN_PORT}:{ADMIN_PORT}"]
    boot = yaml.safe_load((project / "envoy.yaml").read_text())
    ports = {ls["name"]: ls["address"]["socket_address"]["port_value"]
             for ls in boot["static_resources"]["listeners"]}
    assert ports == LISTENER_PORTS
    upstreams = {
        c["name"]: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
        ["address"]["socket_address"] for c in boot["static_resources"]["clusters"]}
    assert {n: (a["address"], a["port_value"]) for n, a in upstreams.items()} == {
        "postgres_upstream": (compose.ADDRESSES["postgres"], 5432),
        "mysql_upstream": (compose.ADDRESSES["mysql"], 3306)}
    mounted = {v.split(":")[1] for v in envoy["volumes"]}
    text = (project / "envoy.yaml").read_text()
    for name in ("postgres", "mysql"):
        assert f'filename: "/etc/envoy/wasm/{name}.wasm"' in text
        assert f"/etc/envoy/wasm/{name}.wasm" in mounted


def test_envoy_accepts_the_bootstrap(project: Path, tmp_path: Path) -> None:
    from wirelab.envoy import envoy_path

    # The same file with the filters where this machine has them.
    local = (project / "envoy.yaml").read_text().replace("/etc/envoy/wasm/",
                                                         f"{project / 'wasm'}/")
    (tmp_path / "envoy.yaml").write_text(local)
    proc = subprocess.run([str(envoy_path()), "--mode", "validate", "-c",
                           str(tmp_path / "envoy.yaml")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "OK" in proc.stdout + proc.stderr


def test_prometheus_scrapes_envoy_every_second_with_the_rules(project: Path,
                                                              tmp_path: Path) -> None:
    prom = yaml.safe_load((project / "prometheus" / "prometheus.yml").read_text())
    job = prom["scrape_configs"][0]
    assert job["metrics_path"] == "/stats/prometheus"
    assert job["scrape_interval"] == "1s"
    assert job["static_configs"] == [{"targets": [f"{compose.ADDRESSES['envoy']}:{ADMIN_PORT}"]}]
    assert prom["rule_files"] == [compose.RULES_IN_CONTAINER]
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed: apt-get install prometheus")
    rules = project / "prometheus" / "wirelab.rules.yml"
    local = (project / "prometheus" / "prometheus.yml").read_text().replace(
        compose.RULES_IN_CONTAINER, str(rules))
    (tmp_path / "prometheus.yml").write_text(local)
    proc = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_grafana_is_provisioned_with_the_dashboard_and_the_prometheus(project: Path,
                                                                      doc: dict) -> None:
    grafana = doc["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"])
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    provisioning = project / "grafana" / "provisioning"
    providers = yaml.safe_load((provisioning / "dashboards" / "wirelab.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert mounts["./grafana/wirelab.json"] == f"{path}/wirelab.json"
    sources = yaml.safe_load((provisioning / "datasources" / "wirelab.yml").read_text())
    assert sources["datasources"][0]["url"] == f"http://prometheus:{compose.PROMETHEUS_PORT}"
    assert (project / "grafana" / "wirelab.json").read_bytes() == (
        Path(compose.examples_dir()) / "dashboards" / "wirelab.json").read_bytes()
    assert grafana["depends_on"] == ["prometheus"]
