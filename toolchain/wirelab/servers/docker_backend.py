"""The same servers (and Envoy) as containers of the official images.

Specs are plain data, so they are testable without an engine; `DockerBackend`
turns one into a running container with the `docker` SDK, an optional extra
(`pip install 'wirelab[docker]'`) imported only when a container is started.
"""

from __future__ import annotations

import secrets
import socket
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from . import _process
from .errors import ServerError

POSTGRES_IMAGE = "postgres:18"
MYSQL_IMAGE = "mysql:8.4"
ENVOY_IMAGE = "envoyproxy/envoy:v1.40-latest"
_SECOND_NS = 1_000_000_000


@dataclass(frozen=True)
class HealthCheck:
    test: list[str]          # Docker form: ["CMD", "prog", "arg", ...]
    interval: float = 1.0    # seconds
    timeout: float = 5.0
    retries: int = 60
    start_period: float = 2.0

    def to_docker(self) -> dict:
        return {"test": list(self.test), "interval": int(self.interval * _SECOND_NS),
                "timeout": int(self.timeout * _SECOND_NS), "retries": self.retries,
                "start_period": int(self.start_period * _SECOND_NS)}


@dataclass(frozen=True)
class ContainerSpec:
    role: str                                   # "postgres", "mysql", "envoy"
    image: str
    env: dict[str, str] = field(default_factory=dict)
    ports: dict[int, int | None] = field(default_factory=dict)   # container -> host (None: any)
    command: list[str] = field(default_factory=list)
    healthcheck: HealthCheck | None = None
    volumes: dict[str, str] = field(default_factory=dict)        # host path -> container path
    ready_http: tuple[int, str] | None = None   # (container port, path) answering 200 when ready
    user: str = ""
    password: str = ""
    database: str = ""

    def run_kwargs(self) -> dict:
        """Keyword arguments for `docker.from_env().containers.run(**spec.run_kwargs())`."""
        kwargs: dict = {
            "image": self.image,
            "detach": True,
            "environment": dict(self.env),
            # Published on loopback only: these carry known passwords.
            "ports": {f"{c}/tcp": ("127.0.0.1", h) for c, h in self.ports.items()},
            "labels": {"wirelab.role": self.role},
        }
        if self.command:
            kwargs["command"] = list(self.command)
        if self.healthcheck is not None:
            kwargs["healthcheck"] = self.healthcheck.to_docker()
        if self.volumes:
            kwargs["volumes"] = {h: {"bind": c, "mode": "ro"} for h, c in self.volumes.items()}
        return kwargs


def postgres_spec(*, user: str = "wirelab", password: str | None = None,
                  database: str = "wirelab", host_port: int | None = None,
                  image: str = POSTGRES_IMAGE) -> ContainerSpec:
    password = password or secrets.token_hex(12)
    return ContainerSpec(
        role="postgres", image=image,
        env={"POSTGRES_USER": user, "POSTGRES_PASSWORD": password, "POSTGRES_DB": database,
             "POSTGRES_INITDB_ARGS": "--auth-host=scram-sha-256"},
        ports={5432: host_port},
        command=["postgres", "-c", "shared_preload_libraries=pg_stat_statements",
                 "-c", "fsync=off", "-c", "synchronous_commit=off"],
        # TCP, not the socket: the image's init phase serves only the socket.
        healthcheck=HealthCheck(["CMD", "pg_isready", "-h", "127.0.0.1", "-U", user,
                                 "-d", database]),
        user=user, password=password, database=database,
    )


def mysql_spec(*, user: str = "wirelab", password: str | None = None,
               database: str = "wirelab", host_port: int | None = None,
               image: str = MYSQL_IMAGE) -> ContainerSpec:
    password = password or secrets.token_hex(12)
    root_password = secrets.token_hex(12)
    return ContainerSpec(
        role="mysql", image=image,
        env={"MYSQL_ROOT_PASSWORD": root_password, "MYSQL_USER": user,
             "MYSQL_PASSWORD": password, "MYSQL_DATABASE": database},
        ports={3306: host_port},
        # 8.4 keeps mysql_native_password off unless asked; caching_sha2 stays the default.
        command=["mysqld", "--mysql-native-password=ON", "--skip-log-bin",
                 "--innodb-flush-log-at-trx-commit=0"],
        # The image's temporary init server has no networking, so TCP ping means ready.
        healthcheck=HealthCheck(["CMD", "mysqladmin", "ping", "--protocol=TCP",
                                 "-h", "127.0.0.1", "-u", "root", f"-p{root_password}"]),
        user=user, password=password, database=database,
    )


def envoy_spec(config: Path, *, listener_ports: dict[int, int | None],
               admin_port: int = 9901, wasm_dir: Path | None = None,
               image: str = ENVOY_IMAGE) -> ContainerSpec:
    """Envoy with `config` mounted; `wasm_dir` appears at /etc/envoy/wasm.

    The bootstrap must bind its listeners and admin on 0.0.0.0 inside the
    container for the published ports to reach them.
    """
    volumes = {str(Path(config).resolve()): "/etc/envoy/envoy.yaml"}
    if wasm_dir is not None:
        volumes[str(Path(wasm_dir).resolve())] = "/etc/envoy/wasm"
    return ContainerSpec(
        role="envoy", image=image,
        ports={**listener_ports, admin_port: None},
        command=["envoy", "-c", "/etc/envoy/envoy.yaml", "--log-level", "info"],
        volumes=volumes,
        # The image has no curl; readiness is polled from the host instead.
        ready_http=(admin_port, "/ready"),
    )


class Availability:
    """Truthy when an engine answers; `reason` says why not otherwise."""

    def __init__(self, ok: bool, reason: str = ""):
        self.ok = ok
        self.reason = reason

    def __bool__(self) -> bool:
        return self.ok

    def __repr__(self) -> str:
        return f"Availability({self.ok}, {self.reason!r})"


class DockerBackend:
    """Runs ContainerSpecs on the local Docker engine."""

    def __init__(self, client=None):
        self._client = client

    @staticmethod
    def available() -> Availability:
        try:
            import docker
        except ImportError:
            return Availability(False, "the docker SDK is not installed "
                                       "(pip install 'wirelab[docker]')")
        try:
            client = docker.from_env(timeout=5)
            client.ping()
        except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return Availability(False, f"no Docker engine answers ({first[:160]}); "
                                       "start Docker or set DOCKER_HOST")
        client.close()
        return Availability(True)

    @property
    def client(self):
        if self._client is None:
            available = self.available()
            if not available:
                raise ServerError(available.reason)
            import docker

            self._client = docker.from_env()
        return self._client

    def run(self, spec: ContainerSpec, timeout: float = 180.0) -> RunningContainer:
        container = self.client.containers.run(**spec.run_kwargs())
        running = RunningContainer(spec, container)
        _process.register(running)
        try:
            running.wait_ready(timeout)
        except BaseException:
            running.close()
            raise
        return running


class RunningContainer:
    """A started container; `with` (or close()) stops and removes it."""

    def __init__(self, spec: ContainerSpec, container):
        self.spec = spec
        self.container = container
        self.host = "127.0.0.1"
        self._closed = False

    def __enter__(self) -> RunningContainer:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def host_port(self, container_port: int) -> int:
        self.container.reload()
        bindings = self.container.attrs["NetworkSettings"]["Ports"].get(f"{container_port}/tcp")
        if not bindings:
            raise ServerError(f"{self.spec.role} container publishes no port {container_port}")
        return int(bindings[0]["HostPort"])

    def log_tail(self, n: int = 50) -> str:
        try:
            return self.container.logs(tail=n).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - the container may be gone already
            return ""

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.container.reload()
            state = self.container.attrs["State"]
            if state.get("Status") in ("exited", "dead"):
                raise ServerError(f"{self.spec.role} container exited with code "
                                  f"{state.get('ExitCode')}: {self.log_tail(2)}", self.log_tail())
            if self._ready(state):
                return
            time.sleep(0.5)
        raise ServerError(f"{self.spec.role} container not ready within {timeout:.0f} s",
                          self.log_tail())

    def _ready(self, state: dict) -> bool:
        if self.spec.healthcheck is not None:
            return state.get("Health", {}).get("Status") == "healthy"
        if self.spec.ready_http is not None:
            port, path = self.spec.ready_http
            try:
                url = f"http://127.0.0.1:{self.host_port(port)}{path}"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False
        port = next(iter(self.spec.ports))
        try:
            socket.create_connection(("127.0.0.1", self.host_port(port)), timeout=1).close()
            return True
        except OSError:
            return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.container.remove(force=True)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
        finally:
            _process.unregister(self)
