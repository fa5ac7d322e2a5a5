"""A lab: database servers, Envoy with filters in front of them, and its stats.

    with Lab(postgres=True, filters=["filters/postgres"]) as lab:
        psycopg.connect(**lab.pg_conninfo())          # through Envoy
        lab.stats.wait_for("postgres.app.statements_select", 1)

One object owns every process it starts; leaving the `with` block (normally,
on an exception or on Ctrl-C) stops them all.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..envoy import EnvoyProcess, ListenerSpec, Snapshot, StatsClient
from ..envoy.process import filter_errors
from ..errors import WirelabError
from .filters import ResolvedFilter, resolve_filter

if TYPE_CHECKING:
    from .docker_lab import DockerLab, EnvoyContainer

LISTENERS = ("postgres", "mysql")


class Lab:
    """Servers + Envoy + filters. Listeners are named `postgres` and `mysql`.

    `filters` are project directories (built when stale) or `.wasm` files. A
    project whose protocol is `postgres` or `mysql` goes on that listener only;
    a `tcp` project (and a bare .wasm) goes on every listener.

    Servers run without TLS unless `tls=True`: Envoy forwards a TLS session but
    a filter can only count it (`upgraded_to_ssl`), not look inside, so a lab
    meant for observing traffic speaks plaintext.

    `target="native"` builds each project filter as an Envoy dynamic module
    (build/lib<name>.so, envoy.filters.network.dynamic_modules) instead of
    Wasm; metric names and labels are the same, so assertions do not change.

    `backend="docker"` runs the official postgres:18, mysql:8.4 and
    envoyproxy/envoy images on a private network instead (see `docker_lab`);
    connection parameters are the same (127.0.0.1 and published ports).
    """

    def __init__(
        self,
        postgres: bool = False,
        mysql: bool = False,
        filters: Sequence[str | Path] = (),
        *,
        filter_config: dict[str, Any] | None = None,
        failure_policy: str = "FAIL_OPEN",
        pg_bin: str | Path | None = None,
        tls: bool = False,
        concurrency: int = 1,
        stats_flush_interval_ms: int = 200,
        backend: str = "local",
        target: str = "wasm",
        prometheus: bool = False,
        xds: bool = False,
    ):
        if not (postgres or mysql):
            raise WirelabError(
                "a lab needs at least one server: pass postgres=True and/or mysql=True"
            )
        if backend not in ("local", "docker"):
            raise WirelabError(f"backend {backend!r} is unknown: use 'local' or 'docker'")
        if xds and backend != "local":
            raise WirelabError("xds=True runs the local backend: drop backend='docker'")
        self.want_postgres = postgres
        self.want_mysql = mysql
        self.filter_targets = list(filters)
        self.filter_config = filter_config
        self.failure_policy = failure_policy
        self.pg_bin = Path(pg_bin) if pg_bin else None
        self.tls = tls
        self.concurrency = concurrency
        self.stats_flush_interval_ms = stats_flush_interval_ms
        self.backend = backend
        if target not in ("wasm", "native"):
            raise WirelabError(f"target {target!r} is unknown: use 'wasm' or 'native'")
        if target == "native" and backend == "docker":
            raise WirelabError(
                "target='native' runs with the local backend only: a dynamic module must be "
                "built for the Envoy binary that loads it"
            )
        self.target = target
        self.want_prometheus = prometheus
        self.prometheus: Any = None  # a wirelab.prometheus.PrometheusServer when asked for
        # Envoy takes listeners and filters from an export directory (LDS/CDS/ECDS),
        # the files `wirelab xds export` writes; republish() swaps filters in.
        self.xds = xds
        self.postgres: Any = None
        self.mysql: Any = None
        self.envoy: EnvoyProcess | EnvoyContainer | None = None
        self.docker: DockerLab | None = None
        self.filters: list[ResolvedFilter] = []
        self.baseline: Snapshot | None = None
        self._stack = contextlib.ExitStack()

    # --- lifecycle -------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Lab:
        try:
            if self.backend == "docker":
                self._require_docker()
            # Build first: a compile error should not cost a server start-up.
            self.filters = [
                resolve_filter(t, self.filter_config, self.failure_policy,
                               build_target=self.target)
                for t in self.filter_targets
            ]
            if self.backend == "docker":
                self._start_docker()
            else:
                self._start_servers()
                self.envoy = self._stack.enter_context(self._new_envoy())
            if self.want_prometheus:
                self._start_prometheus()
            self.baseline = self.envoy.stats.snapshot()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._stack.close()

    def _new_envoy(self) -> EnvoyProcess:
        if self.xds:
            from ..xds.labpath import LabXdsEnvoy

            return LabXdsEnvoy(self._listeners(), concurrency=self.concurrency,
                               stats_flush_interval_ms=self.stats_flush_interval_ms)
        return EnvoyProcess(self._listeners(), concurrency=self.concurrency,
                            stats_flush_interval_ms=self.stats_flush_interval_ms)

    def republish(self, validate: bool = True, envoy_check: bool = False) -> Any:
        """Rebuild the filters whose sources changed and swap them in through ECDS
        (a lab started with `xds=True`); returns the ExportResult."""
        from ..xds.labpath import LabXdsEnvoy

        if not isinstance(self.envoy, LabXdsEnvoy):
            raise WirelabError("republish() needs a lab started with xds=True")
        self.filters = [resolve_filter(t, self.filter_config, self.failure_policy,
                                       build_target=self.target)
                        for t in self.filter_targets]
        return self.envoy.publish(self._listeners(), validate=validate, envoy_check=envoy_check)

    def _require_docker(self) -> None:
        """Fail in one line, before any build, when no engine answers."""
        from .docker_lab import require_engine

        if self.pg_bin is not None:
            raise WirelabError(
                "--pg-bin picks a local PostgreSQL; the docker backend runs postgres:18: "
                "drop --pg-bin or use --backend local"
            )
        require_engine()

    def _start_docker(self) -> None:
        from .docker_lab import DockerLab

        chains = {kind: [f.spec for f in self.filters if f.applies_to(kind)]
                  for kind in LISTENERS}
        # Kept before it starts, so a failed start still names its lab id.
        self.docker = DockerLab(
            postgres=self.want_postgres,
            mysql=self.want_mysql,
            chains=chains,
            tls=self.tls,
            concurrency=self.concurrency,
            stats_flush_interval_ms=self.stats_flush_interval_ms,
        )
        self._stack.enter_context(self.docker)
        self.postgres, self.mysql = self.docker.postgres, self.docker.mysql
        self.envoy = self.docker.envoy

    def _start_prometheus(self) -> None:
        from ..prometheus import PrometheusServer

        admin = self.admin_url.split("://", 1)[-1]
        self.prometheus = self._stack.enter_context(PrometheusServer([admin]))

    def _start_servers(self) -> None:
        from ..servers import MariaDBServer, PostgresServer

        if self.want_postgres:
            self.postgres = self._stack.enter_context(PostgresServer(self.pg_bin, tls=self.tls))
        if self.want_mysql:
            self.mysql = self._stack.enter_context(MariaDBServer(tls=self.tls))

    def _listeners(self) -> list[ListenerSpec]:
        out = []
        for name, server in (("postgres", self.postgres), ("mysql", self.mysql)):
            if server is None:
                continue
            chain = [f.spec for f in self.filters if f.applies_to(name)]
            out.append(ListenerSpec(name, (server.host, server.port), chain))
        return out

    # --- stats -----------------------------------------------------------------
    @property
    def stats(self) -> StatsClient:
        return self._envoy.stats

    @property
    def admin_url(self) -> str:
        return self._envoy.admin_url

    @property
    def prometheus_url(self) -> str:
        return f"{self.admin_url}/stats/prometheus"

    def mark(self) -> Snapshot:
        """Take a new baseline for `delta()`."""
        self.baseline = self.stats.snapshot()
        return self.baseline

    def delta(self) -> dict[str, int]:
        """Counters and gauges that changed since the baseline (start or last mark)."""
        if self.baseline is None:
            return {}
        return StatsClient.delta(self.baseline, self.stats.snapshot())

    def log_tail(self, n: int = 60) -> str:
        return self.envoy.log_tail(n) if self.envoy else ""

    def filter_errors(self, settle_s: float = 2.0) -> list[str]:
        """What the filters logged as errors in Envoy (a Lua error's message, file, line).

        Envoy writes its log file on a flush timer, so an error counted a moment ago
        may not be in the file yet: while a `script_errors` counter says more errors
        happened than the log shows, wait up to `settle_s` for the lines."""
        if not self.envoy:
            return []
        deadline = time.monotonic() + settle_s
        while True:
            found = filter_errors(self.envoy.log_tail(1_000_000))
            try:
                counted = sum(v for k, v in self.delta().items()
                              if k.endswith(".script_errors"))
            except Exception:  # Envoy may be the thing that died
                counted = 0
            if len(found) >= min(counted, 1) or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    # --- connection parameters -------------------------------------------------
    @property
    def _envoy(self) -> EnvoyProcess | EnvoyContainer:
        if self.envoy is None:
            raise WirelabError("the lab is not running: use `with Lab(...) as lab:`")
        return self.envoy

    def _server(self, kind: str) -> Any:
        server = self.postgres if kind == "postgres" else self.mysql
        if server is None:
            flag = "postgres=True" if kind == "postgres" else "mysql=True"
            raise WirelabError(f"this lab has no {kind} server: start it with Lab({flag})")
        return server

    def port(self, kind: str, direct: bool = False) -> int:
        server = self._server(kind)
        return server.port if direct else self._envoy.port(kind)

    def pg_dsn(self, direct: bool = False) -> str:
        return self._server("postgres").dsn(port=self.port("postgres", direct))

    def pg_conninfo(self, direct: bool = False, driver: str = "psycopg") -> dict[str, Any]:
        return self._server("postgres").conninfo(self.port("postgres", direct), driver=driver)

    def pg_env(self, direct: bool = False) -> dict[str, str]:
        return self._server("postgres").env(self.port("postgres", direct))

    def mysql_kwargs(self, direct: bool = False) -> dict[str, Any]:
        return self._server("mysql").connect_kwargs(self.port("mysql", direct))

    def mysql_cli_args(self, direct: bool = False) -> list[str]:
        return self._server("mysql").cli_args(self.port("mysql", direct))

    def connection_strings(self) -> list[tuple[str, str]]:
        """(label, command or URL) pairs a person can paste."""
        rows: list[tuple[str, str]] = []
        if self.postgres is not None:
            rows.append(("psql via Envoy", f"psql '{self.pg_dsn()}'"))
            rows.append(("psql direct", f"psql '{self.pg_dsn(direct=True)}'"))
        if self.mysql is not None:
            rows.append(("mariadb via Envoy", "mariadb " + " ".join(self.mysql_cli_args())))
            rows.append(("mariadb direct", "mariadb " + " ".join(self.mysql_cli_args(True))))
        rows.append(("Envoy admin", self.admin_url))
        if self.prometheus is not None:
            rows.append(("Prometheus", self.prometheus.url))
        rows.append(("Prometheus metrics", self.prometheus_url))
        return rows

    def state(self) -> dict[str, Any]:
        """What `wirelab up --state` writes: enough for scripts to connect and to stop it."""
        servers: dict[str, Any] = {}
        pids: dict[str, int | None] = {"envoy": self._envoy.pid}
        for kind in LISTENERS:
            server = self.postgres if kind == "postgres" else self.mysql
            if server is None:
                continue
            servers[kind] = {
                "host": server.host,
                "port": self._envoy.port(kind),
                "direct_port": server.port,
                "user": server.user,
                "password": server.password,
                "database": server.database,
            }
            pids[kind] = server.pid
        out = {
            "admin": self.admin_url,
            # The Prometheus server (`prometheus=True`), else null; Envoy's own
            # exposition endpoint is `metrics`.
            "prometheus": self.prometheus.url if self.prometheus is not None else None,
            "metrics": self.prometheus_url,
            "servers": servers,
            "pids": pids,
            "filters": [str(f.spec.wasm) for f in self.filters],
            "tls": self.tls,
        }
        log_path = getattr(self._envoy, "log_path", None)
        if log_path is not None:
            out["envoy_log"] = str(log_path)
        if self.docker is not None:
            out["docker"] = self.docker.describe()
        log_path = getattr(self._envoy, "log_path", None)
        if log_path:
            out["envoy_log"] = str(log_path)  # `wirelab top` shows its slow-statement lines
        return out
