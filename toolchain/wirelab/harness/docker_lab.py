"""The Lab's docker backend: the official images on a private network.

    with DockerLab(postgres=True, mysql=True, chains={"postgres": [spec]}) as d:
        d.postgres.conninfo(d.envoy.port("postgres"))   # 127.0.0.1, published port

One object owns a user-defined bridge network and every container on it:
postgres:18 and mysql:8.4 (each waited for through its healthcheck), then
envoyproxy/envoy with a rendered bootstrap whose clusters point at the database
containers' addresses on that network, the config and each filter's .wasm
mounted read-only, its listener and admin ports published on 127.0.0.1 only,
and `/ready` polled from the host. Everything carries the lab's labels, so
`close()` removes what it started even when a start was cut short (Ctrl-C
between "create" and the SDK's answer); a lab whose process died without
closing is removed by the next docker lab started on this host.

The servers and Envoy expose what the local ones do (host, port, user,
password, database, dsn/conninfo/env or connect_kwargs/cli_args, log_tail), so
`Lab` hands them out unchanged. Clients: psycopg/asyncpg/psql speak
scram-sha-256 over plaintext as with the local server. MySQL 8.4 creates the
user with caching_sha2_password: its first login after a server start needs
the RSA exchange over plaintext, which pymysql does only with the
`cryptography` package installed, and which the mariadb client does by
itself; later logins use the server's cache.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from ..envoy import FilterSpec, ListenerSpec, StatsClient, startup_reason
from ..envoy.process import listener_port
from ..envoy.render import container_wasm_paths, render_container_bootstrap
from ..errors import EnvoyError, WirelabError
from ..paths import cache_dir
from ..servers import _process
from ..servers.docker_backend import (
    ContainerSpec,
    DockerBackend,
    RunningContainer,
    engine_address,
    envoy_spec,
    mysql_spec,
    postgres_spec,
)
from ..servers.errors import ServerError
from ..servers.mariadb import MariaDBServer
from ..servers.postgres import PostgresServer

LAB_LABEL = "wirelab.lab"          # the lab's id, on the network and every container
OWNER_LABEL = "wirelab.owner"      # "<hostname>:<pid>" of the Python process that owns it
SERVER_PORTS = {"postgres": 5432, "mysql": 3306}        # inside the database containers
LISTENER_PORTS = {"postgres": 15432, "mysql": 13306}    # inside the Envoy container
ADMIN_PORT = 9901                                       # inside the Envoy container
READY_TIMEOUT = 300.0   # first start of mysql:8.4 initialises its data directory


# --- the engine ---------------------------------------------------------------
def engine_is_local(address: str) -> bool:
    """Whether `address` (DOCKER_HOST form) is an engine whose published
    127.0.0.1 ports and bind mounts are this machine's."""
    url = urllib.parse.urlsplit(address)
    if url.scheme in ("unix", "npipe", "http+unix"):
        return True
    if url.scheme == "ssh":
        return False
    host = url.hostname or ""
    return host in ("localhost", "127.0.0.1", "::1")


def require_engine() -> None:
    """Raise a one-line WirelabError unless a local Docker engine answers."""
    available = DockerBackend.available()
    if not available:
        raise WirelabError(
            f"the docker backend needs a Docker engine: {available.reason}, "
            "or use --backend local"
        )
    address = engine_address()
    if not engine_is_local(address):
        raise WirelabError(
            f"the docker backend needs an engine on this machine, not {address}: its ports "
            "are published on 127.0.0.1 and its files are bind-mounted; unset DOCKER_HOST, "
            "or use --backend local"
        )


def _one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:240]


@contextlib.contextmanager
def _engine_errors(doing: str) -> Iterator[None]:
    """The SDK's exceptions (pull denied, name taken, engine gone) as one line."""
    try:
        import docker.errors
    except ImportError:  # require_engine() has said so already
        yield
        return
    try:
        yield
    except docker.errors.DockerException as exc:
        raise WirelabError(f"Docker could not {doing}: {_one_line(exc)}") from None


def owner_label() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def is_orphan(owner: str, hostname: str, pid_alive: Callable[[int], bool]) -> bool:
    """An owner label of this host whose process is gone (a foreign host's labs,
    and labels we cannot read, are left alone)."""
    host, _, pid = owner.rpartition(":")
    if host != hostname or not pid.isdigit():
        return False
    return not pid_alive(int(pid))


def _pid_alive(pid: int) -> bool:
    import psutil

    return psutil.pid_exists(pid)


def _config_root() -> Path:
    # Under the user's home (via the cache dir), which every Docker Desktop
    # shares with its VM; /tmp is not shared by all of them.
    return cache_dir() / "docker"


def reap_orphans(client: Any) -> list[str]:
    """Remove containers and networks of docker labs whose process died; return their lab ids."""
    hostname = socket.gethostname()
    labs: set[str] = set()
    for container in client.containers.list(all=True, filters={"label": OWNER_LABEL}):
        labels = container.labels or {}
        if is_orphan(labels.get(OWNER_LABEL, ""), hostname, _pid_alive):
            labs.add(labels.get(LAB_LABEL, ""))
            with contextlib.suppress(Exception):
                container.remove(force=True, v=True)
    for network in client.networks.list(filters={"label": OWNER_LABEL}):
        labels = network.attrs.get("Labels") or {}
        if is_orphan(labels.get(OWNER_LABEL, ""), hostname, _pid_alive):
            labs.add(labels.get(LAB_LABEL, ""))
            with contextlib.suppress(Exception):
                network.remove()
    for lab_id in labs - {""}:
        shutil.rmtree(_config_root() / lab_id, ignore_errors=True)
    return sorted(labs - {""})


# --- what the Lab hands out ---------------------------------------------------
class ContainerServer:
    """A database container, with the client-facing attributes of a local server.

    `host`/`port` are the port published on the host's loopback (the Lab's
    "direct" connection); `upstream` is where Envoy reaches it on the network.
    """

    kind = "server"

    def __init__(self, running: RunningContainer, container_port: int, network: str,
                 tls: bool = False):
        spec = running.spec
        self.running = running
        self.host = "127.0.0.1"
        self.port = running.host_port(container_port)
        self.container_port = container_port
        self.network_ip = running.ip(network)
        self.user = spec.user
        self.password = spec.password
        self.database = spec.database
        self.image = spec.image
        self.tls = tls
        # No process of ours: `wirelab down` must not kill anything by pid.
        self.pid: int | None = None

    @property
    def upstream(self) -> tuple[str, int]:
        return (self.network_ip, self.container_port)

    @property
    def container_id(self) -> str:
        return self.running.id

    def log_tail(self, n: int = 50) -> str:
        return self.running.log_tail(n)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.image} {self.host}:{self.port}>"


class PostgresContainer(ContainerServer):
    kind = "PostgreSQL"
    # The local server's client parameters, by the same code: they read only
    # host, port, user, password and database.
    dsn = PostgresServer.dsn
    conninfo = PostgresServer.conninfo
    env = PostgresServer.env


class MySQLContainer(ContainerServer):
    kind = "MySQL"
    connect_kwargs = MariaDBServer.connect_kwargs

    def cli_args(self, port: int | None = None) -> list[str]:
        """Arguments for the `mariadb` client. The server offers TLS (the image
        makes a certificate); a plaintext lab tells the client not to take it,
        since newer clients would, and a filter sees nothing inside TLS."""
        args = MariaDBServer.cli_args(self, port)  # type: ignore[arg-type]
        return args if self.tls else [*args, "--skip-ssl"]


class EnvoyContainer:
    """Envoy in a container, read through the interface of EnvoyProcess."""

    def __init__(self, running: RunningContainer, listener_ports: Mapping[str, int]):
        self.running = running
        self.admin_port = running.host_port(ADMIN_PORT)
        self._ports = {name: running.host_port(p) for name, p in listener_ports.items()}
        self.stats = StatsClient(self.admin_url, self.log_tail)
        self.pid: int | None = None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def container_id(self) -> str:
        return self.running.id

    def port(self, listener_name: str) -> int:
        return listener_port(self._ports, listener_name)

    def log_tail(self, n: int = 60) -> str:
        return self.running.log_tail(n)


# --- the lab ------------------------------------------------------------------
class DockerLab:
    """Network + database containers + Envoy container; `close()` removes them all."""

    def __init__(
        self,
        *,
        postgres: bool = False,
        mysql: bool = False,
        chains: Mapping[str, Sequence[FilterSpec]] | None = None,
        tls: bool = False,
        concurrency: int = 1,
        stats_flush_interval_ms: int = 200,
        ready_timeout: float = READY_TIMEOUT,
        backend: DockerBackend | None = None,
    ):
        self.want = [k for k, on in (("postgres", postgres), ("mysql", mysql)) if on]
        self.chains = {k: list(v) for k, v in (chains or {}).items()}
        self.tls = tls
        self.concurrency = concurrency
        self.stats_flush_interval_ms = stats_flush_interval_ms
        self.ready_timeout = ready_timeout
        self.backend = backend or DockerBackend()
        self.lab_id = secrets.token_hex(4)
        self.network_name = f"wirelab-{self.lab_id}"
        self.labels = {LAB_LABEL: self.lab_id, OWNER_LABEL: owner_label()}
        self.workdir = _config_root() / self.lab_id
        self.postgres: PostgresContainer | None = None
        self.mysql: MySQLContainer | None = None
        self.envoy: EnvoyContainer | None = None
        self.config_yaml = ""
        self._containers: list[RunningContainer] = []
        self._network: Any = None
        self._client: Any = None
        self._closed = False

    def __enter__(self) -> DockerLab:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- specs (plain data; what start() runs) --------------------------------
    def server_specs(self) -> dict[str, ContainerSpec]:
        specs = {}
        if "postgres" in self.want:
            specs["postgres"] = postgres_spec(tls=self.tls)
        if "mysql" in self.want:
            specs["mysql"] = mysql_spec()
        return {kind: self._on_network(kind, spec) for kind, spec in specs.items()}

    def listeners(self, upstreams: Mapping[str, tuple[str, int]]) -> list[ListenerSpec]:
        return [ListenerSpec(kind, upstreams[kind], self.chains.get(kind, []),
                             port=LISTENER_PORTS[kind])
                for kind in self.want]

    def envoy_spec(self, listeners: list[ListenerSpec], config: Path) -> ContainerSpec:
        spec = envoy_spec(
            config,
            listener_ports={LISTENER_PORTS[spec.name]: None for spec in listeners},
            admin_port=ADMIN_PORT,
            wasm_files=container_wasm_paths(listeners),
            concurrency=self.concurrency,
        )
        return self._on_network("envoy", spec)

    def _on_network(self, role: str, spec: ContainerSpec) -> ContainerSpec:
        return replace(spec, network=self.network_name, name=f"{self.network_name}-{role}",
                       labels=dict(self.labels))

    def write_config(self, listeners: list[ListenerSpec]) -> Path:
        """Render the container bootstrap into the lab's directory (mode 0644:
        the file holds no secret, and the container must read it)."""
        self.config_yaml = render_container_bootstrap(
            listeners, ADMIN_PORT, container_wasm_paths(listeners),
            self.stats_flush_interval_ms)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o755)
        config = self.workdir / "envoy.yaml"
        config.write_text(self.config_yaml)
        config.chmod(0o644)
        return config

    # --- lifecycle ------------------------------------------------------------
    def start(self) -> DockerLab:
        require_engine()
        _process.register(self)
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self) -> None:
        with _engine_errors("reach the engine"):
            self._client = self.backend.client
            reap_orphans(self._client)
        with _engine_errors(f"create network {self.network_name}"):
            self._network = self._client.networks.create(
                self.network_name, driver="bridge", labels=dict(self.labels))
        # Start both servers, then wait: their initialisations overlap.
        started: dict[str, RunningContainer] = {}
        for kind, spec in self.server_specs().items():
            with _engine_errors(f"start {spec.image}"):
                started[kind] = self._track(self.backend.start(spec))
        with _engine_errors("watch the database containers"):
            for running in started.values():
                running.wait_ready(self.ready_timeout)
            if "postgres" in started:
                self.postgres = PostgresContainer(started["postgres"], SERVER_PORTS["postgres"],
                                                  self.network_name, self.tls)
            if "mysql" in started:
                self.mysql = MySQLContainer(started["mysql"], SERVER_PORTS["mysql"],
                                            self.network_name, self.tls)
        servers = {"postgres": self.postgres, "mysql": self.mysql}
        listeners = self.listeners({k: s.upstream for k, s in servers.items() if s is not None})
        spec = self.envoy_spec(listeners, self.write_config(listeners))
        with _engine_errors(f"start {spec.image}"):
            running = self._track(self.backend.start(spec))
        try:
            with _engine_errors("watch the Envoy container"):
                running.wait_ready(self.ready_timeout)
                self.envoy = EnvoyContainer(running, {ls.name: ls.port for ls in listeners})
        except ServerError as exc:
            raise EnvoyError(f"Envoy in its container did not start: "
                             f"{startup_reason(exc.log) if exc.log else exc}") from None

    def _track(self, running: RunningContainer) -> RunningContainer:
        self._containers.append(running)
        return running

    def close(self) -> None:
        """Remove every container and the network; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            for running in reversed(self._containers):
                running.close()
            if self._client is not None:
                # Containers created but never handed back (cut short mid-start).
                with contextlib.suppress(Exception):
                    for c in self._client.containers.list(
                            all=True, filters={"label": f"{LAB_LABEL}={self.lab_id}"}):
                        c.remove(force=True, v=True)
            if self._network is not None:
                with contextlib.suppress(Exception):
                    self._network.remove()
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)
            _process.unregister(self)

    def describe(self) -> dict[str, Any]:
        """What a state file records, so a person can find what the lab runs."""
        return {
            "lab": self.lab_id,
            "network": self.network_name,
            "containers": {r.spec.role: r.id for r in self._containers},
        }

    def log_tail(self, n: int = 60) -> str:
        return self.envoy.log_tail(n) if self.envoy else ""
