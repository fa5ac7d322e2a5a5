"""The same servers (and Envoy) as containers of the official images.

Specs are plain data, so they are testable without an engine; `DockerBackend`
turns one into a running container with the `docker` SDK, an optional extra
(`pip install 'wirelab[docker]'`) imported only when a container is started.
"""

from __future__ import annotations

import http.client
import os
import secrets
import socket
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any

from . import _process
from .errors import ServerError, last_lines

POSTGRES_IMAGE = "postgres:18"
MYSQL_IMAGE = "mysql:8.4"
ENVOY_IMAGE = "envoyproxy/envoy:v1.40-latest"
ENVOY_CONFIG_PATH = "/etc/envoy/envoy.yaml"
ENVOY_WASM_DIR = "/etc/envoy/wasm"
DEFAULT_ENGINE = "unix:///var/run/docker.sock"
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
    name: str = ""                              # container name ("" lets the engine pick)
    network: str = ""                           # a user-defined network to join at creation
    labels: dict[str, str] = field(default_factory=dict)

    def run_kwargs(self) -> dict:
        """Keyword arguments for `docker.from_env().containers.run(**spec.run_kwargs())`."""
        kwargs: dict = {
            "image": self.image,
            "detach": True,
            "environment": dict(self.env),
            # Published on loopback only: these carry known passwords.
            "ports": {f"{c}/tcp": ("127.0.0.1", h) for c, h in self.ports.items()},
            "labels": {**self.labels, "wirelab.role": self.role},
        }
        if self.name:
            kwargs["name"] = self.name
        if self.network:
            kwargs["network"] = self.network
        if self.command:
            kwargs["command"] = list(self.command)
        if self.healthcheck is not None:
            kwargs["healthcheck"] = self.healthcheck.to_docker()
        if self.volumes:
            kwargs["volumes"] = {h: {"bind": c, "mode": "ro"} for h, c in self.volumes.items()}
        return kwargs


def postgres_spec(*, user: str = "wirelab", password: str | None = None,
                  database: str = "wirelab", host_port: int | None = None,
                  image: str = POSTGRES_IMAGE, tls: bool = False) -> ContainerSpec:
    """The official image, plaintext unless `tls` (then with the image's
    snake-oil certificate: clients may use TLS but cannot verify it)."""
    password = password or secrets.token_hex(12)
    command = ["postgres", "-c", "shared_preload_libraries=pg_stat_statements",
               "-c", "fsync=off", "-c", "synchronous_commit=off"]
    if tls:
        command += ["-c", "ssl=on",
                    "-c", "ssl_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem",
                    "-c", "ssl_key_file=/etc/ssl/private/ssl-cert-snakeoil.key"]
    return ContainerSpec(
        role="postgres", image=image,
        env={"POSTGRES_USER": user, "POSTGRES_PASSWORD": password, "POSTGRES_DB": database,
             "POSTGRES_INITDB_ARGS": "--auth-host=scram-sha-256"},
        ports={5432: host_port},
        command=command,
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
               wasm_files: Mapping[str | Path, str] | None = None,
               concurrency: int | None = None,
               image: str = ENVOY_IMAGE) -> ContainerSpec:
    """Envoy with `config` mounted read-only at /etc/envoy/envoy.yaml.

    `wasm_files` maps each host .wasm to its path under /etc/envoy/wasm (one
    read-only mount per file); `wasm_dir` instead mounts a whole directory
    there. The bootstrap must bind its listeners and admin on 0.0.0.0 inside
    the container for the published ports to reach them.
    """
    volumes = {str(Path(config).resolve()): ENVOY_CONFIG_PATH}
    if wasm_dir is not None:
        volumes[str(Path(wasm_dir).resolve())] = ENVOY_WASM_DIR
    for host, inside in (wasm_files or {}).items():
        if PurePosixPath(inside).parent != PurePosixPath(ENVOY_WASM_DIR):
            raise ServerError(f"{inside} is not a file directly in {ENVOY_WASM_DIR}: "
                              "mount each filter's .wasm there")
        volumes[str(Path(host).resolve())] = inside
    command = ["envoy", "-c", ENVOY_CONFIG_PATH, "--log-level", "info"]
    if concurrency is not None:
        command += ["--concurrency", str(int(concurrency))]
    return ContainerSpec(
        role="envoy", image=image,
        # The image's entrypoint drops to its `envoy` user (uid 101) unless
        # ENVOY_UID is 0; that user may not read a mounted file of mode 0600
        # (or, with a rootless engine, any file of the host user). Root inside
        # the container reads what the host user can.
        env={"ENVOY_UID": "0"},
        ports={**listener_ports, admin_port: None},
        command=command,
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


def engine_address() -> str:
    """Where the docker SDK looks for an engine: DOCKER_HOST, else the default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_ENGINE


def _root_cause(exc: BaseException) -> str:
    """The innermost OS-level reason inside the SDK's wrapped exceptions
    ("No such file or directory", "Connection refused"), else the first line."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop(0)
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.strerror:
            return cur.strerror
        todo += [a for a in cur.args if isinstance(a, BaseException)]
        todo += [c for c in (cur.__cause__, cur.__context__) if c is not None]
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first[:160]


class DockerBackend:
    """Runs ContainerSpecs on the local Docker engine."""

    def __init__(self, client: Any = None):
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
            return Availability(False, f"no Docker engine answers at {engine_address()} "
                                       f"({_root_cause(exc)}); start Docker or set DOCKER_HOST")
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

    def start(self, spec: ContainerSpec) -> RunningContainer:
        """Create and start the container (pulling the image if missing); do not wait."""
        container = self.client.containers.run(**spec.run_kwargs())
        running = RunningContainer(spec, container)
        _process.register(running)
        return running

    def run(self, spec: ContainerSpec, timeout: float = 180.0) -> RunningContainer:
        """Start the container and wait until it is ready (healthy, or answering)."""
        running = self.start(spec)
        try:
            running.wait_ready(timeout)
        except BaseException:
            running.close()
            raise
        return running


class RunningContainer:
    """A started container; `with` (or close()) stops and removes it."""

    def __init__(self, spec: ContainerSpec, container: Any):
        self.spec = spec
        self.container = container
        self.host = "127.0.0.1"
        self._closed = False
        self._final_log = ""

    @property
    def id(self) -> str:
        return str(self.container.id)

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

    def ip(self, network: str) -> str:
        """The container's address on the user-defined `network`."""
        self.container.reload()
        networks = self.container.attrs["NetworkSettings"].get("Networks") or {}
        address = (networks.get(network) or {}).get("IPAddress")
        if not address:
            raise ServerError(f"{self.spec.role} container has no address on network {network}")
        return str(address)

    def log_tail(self, n: int = 50) -> str:
        if self._closed:
            return "\n".join(self._final_log.splitlines()[-n:])
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
                log = self.log_tail(200)
                raise ServerError(f"{self.spec.role} container exited with code "
                                  f"{state.get('ExitCode')}: {last_lines(log)}", log)
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
            # A published port answers before the process inside listens: the
            # engine's proxy accepts, then hangs up (RemoteDisconnected).
            except (OSError, http.client.HTTPException):
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
        self._final_log = self.log_tail(500)
        self._closed = True
        try:
            # v=True: the images declare VOLUMEs; without it each run leaves one behind.
            self.container.remove(force=True, v=True)
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
        finally:
            _process.unregister(self)
