"""Container specs are plain data: checked here without any engine.

The one test that starts a container skips when no Docker engine answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wirelab.servers.docker_backend import (
    ENVOY_IMAGE,
    MYSQL_IMAGE,
    POSTGRES_IMAGE,
    Availability,
    DockerBackend,
    HealthCheck,
    envoy_spec,
    mysql_spec,
    postgres_spec,
)


def test_postgres_spec_is_the_official_image_with_known_credentials():
    spec = postgres_spec(password="s3cret", host_port=15432)
    assert spec.image == POSTGRES_IMAGE == "postgres:18"
    assert spec.env == {
        "POSTGRES_USER": "wirelab",
        "POSTGRES_PASSWORD": "s3cret",
        "POSTGRES_DB": "wirelab",
        "POSTGRES_INITDB_ARGS": "--auth-host=scram-sha-256",
    }
    assert spec.ports == {5432: 15432}
    assert spec.command[:3] == ["postgres", "-c", "shared_preload_libraries=pg_stat_statements"]
    assert spec.healthcheck.test == [
        "CMD", "pg_isready", "-h", "127.0.0.1", "-U", "wirelab", "-d", "wirelab"]
    assert (spec.user, spec.password, spec.database) == ("wirelab", "s3cret", "wirelab")


def test_run_kwargs_publish_on_loopback_only_and_use_nanoseconds():
    kwargs = postgres_spec(password="pw").run_kwargs()
    assert kwargs["image"] == "postgres:18"
    assert kwargs["detach"] is True
    assert kwargs["ports"] == {"5432/tcp": ("127.0.0.1", None)}
    assert kwargs["labels"] == {"wirelab.role": "postgres"}
    assert kwargs["healthcheck"] == {
        "test": ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "wirelab", "-d", "wirelab"],
        "interval": 1_000_000_000, "timeout": 5_000_000_000, "retries": 60,
        "start_period": 2_000_000_000,
    }
    assert "volumes" not in kwargs


def test_mysql_spec_enables_native_password_and_pings_over_tcp():
    spec = mysql_spec(user="app", password="pw", database="shop")
    assert spec.image == MYSQL_IMAGE == "mysql:8.4"
    assert spec.env["MYSQL_USER"] == "app"
    assert spec.env["MYSQL_PASSWORD"] == "pw"
    assert spec.env["MYSQL_DATABASE"] == "shop"
    root_pw = spec.env["MYSQL_ROOT_PASSWORD"]
    assert len(root_pw) == 24 and root_pw != "pw"
    assert "--mysql-native-password=ON" in spec.command
    assert spec.healthcheck.test == [
        "CMD", "mysqladmin", "ping", "--protocol=TCP", "-h", "127.0.0.1", "-u", "root",
        f"-p{root_pw}"]
    assert spec.ports == {3306: None}


def test_generated_passwords_differ_between_specs():
    assert postgres_spec().password != postgres_spec().password


def test_envoy_spec_mounts_config_and_wasm_read_only(tmp_path: Path):
    config = tmp_path / "envoy.yaml"
    config.write_text("{}")
    spec = envoy_spec(config, listener_ports={10000: 20000}, wasm_dir=tmp_path)
    assert spec.image == ENVOY_IMAGE == "envoyproxy/envoy:v1.40-latest"
    assert spec.command == ["envoy", "-c", "/etc/envoy/envoy.yaml", "--log-level", "info"]
    assert spec.ports == {10000: 20000, 9901: None}
    assert spec.healthcheck is None
    assert spec.ready_http == (9901, "/ready")
    kwargs = spec.run_kwargs()
    assert kwargs["volumes"] == {
        str(config.resolve()): {"bind": "/etc/envoy/envoy.yaml", "mode": "ro"},
        str(tmp_path.resolve()): {"bind": "/etc/envoy/wasm", "mode": "ro"},
    }
    assert "healthcheck" not in kwargs


def test_healthcheck_converts_seconds():
    assert HealthCheck(["CMD", "true"], interval=0.5, timeout=2, retries=3,
                       start_period=0).to_docker() == {
        "test": ["CMD", "true"], "interval": 500_000_000, "timeout": 2_000_000_000,
        "retries": 3, "start_period": 0}


def test_availability_is_falsy_with_a_one_line_reason():
    result = DockerBackend.available()
    assert isinstance(result, Availability)
    if result:
        assert result.reason == ""
    else:
        assert result.reason and "\n" not in result.reason
        assert "docker" in result.reason.lower()


def test_postgres_container_answers_a_query():
    available = DockerBackend.available()
    if not available:
        pytest.skip(f"needs a Docker engine: {available.reason}")
    psycopg = pytest.importorskip("psycopg")
    with DockerBackend().run(postgres_spec(password="pw")) as pg:
        port = pg.host_port(5432)
        with psycopg.connect(host="127.0.0.1", port=port, user="wirelab", password="pw",
                             dbname="wirelab") as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("wirelab",)
