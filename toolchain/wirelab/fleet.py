"""A fleet on one machine: N Envoys sharing one export directory, in front of lab servers.

    with Fleet(3, root=tmp / "xds", postgres=True, filters=["examples/lua/pg-statements"]) as fl:
        fl.port("postgres")                   # every Envoy listens there (SO_REUSEPORT)
        fl.publish(["my/new/version"])        # a new export, switched in by one rename
        fl.status()                           # per Envoy, per filter: version, accepted?

Filters reach the Envoys only through the export (LDS/CDS/ECDS files), the way
a fleet synced from object storage gets them.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import port_for

from .errors import WirelabError
from .xds import ExportResult, export
from .xds.envoy import XdsEnvoy
from .xds.fleetfile import FilterEntry, FleetSpec, XListener
from .xds.origin import BlobOrigin
from .xds.publish import first_exports, published_manifest
from .xds.status import FilterState, envoy_state

KINDS = ("postgres", "mysql")


def filter_protocol(target: str | Path) -> str:
    """The listener a filter belongs on: its project's protocol; a bare .wasm goes everywhere."""
    from .project import Project

    path = Path(target)
    if path.suffix in (".wasm", ".so"):
        return "tcp"
    return Project.load(path).manifest.protocol


class Fleet:
    def __init__(self, n: int, *, root: str | Path, postgres: bool = False, mysql: bool = False,
                 filters: Sequence[str | Path] = (), code: str = "local",
                 pg_bin: str | Path | None = None, stats_flush_interval_ms: int = 200):
        if n < 1:
            raise WirelabError("a fleet needs at least one Envoy: fleet up N with N >= 1")
        if not (postgres or mysql):
            raise WirelabError("a fleet needs a server: pass postgres=True and/or mysql=True")
        self.n = n
        self.root = Path(root).absolute()
        self.want = {"postgres": postgres, "mysql": mysql}
        self.filters = list(filters)
        self.code = code
        self.pg_bin = pg_bin
        self.flush_ms = stats_flush_interval_ms
        self.servers: dict[str, Any] = {}
        self.ports: dict[str, int] = {}
        self.envoys: list[XdsEnvoy] = []
        self.origin: BlobOrigin | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Fleet:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.origin = self._stack.enter_context(BlobOrigin(self.root))
            self._start_servers()
            taken: set[int] = set()
            for kind in self.servers:
                port = port_for.select_random()
                while port in taken:
                    port = port_for.select_random()
                taken.add(port)
                self.ports[kind] = port
            self.publish(self.filters)
            for i in range(self.n):
                envoy = XdsEnvoy(self.root, self.ports, node_id=f"envoy-{i + 1}",
                                 blob_origin=self.origin.url,
                                 stats_flush_interval_ms=self.flush_ms)
                self.envoys.append(self._stack.enter_context(envoy))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._stack.close()

    def _start_servers(self) -> None:
        from .servers import MariaDBServer, PostgresServer

        if self.want["postgres"]:
            # Plaintext: a filter can only count a TLS session, not look inside it.
            self.servers["postgres"] = self._stack.enter_context(
                PostgresServer(self.pg_bin, tls=False))
        if self.want["mysql"]:
            self.servers["mysql"] = self._stack.enter_context(MariaDBServer(tls=False))

    # --- publishing ----------------------------------------------------------
    def spec(self, filters: Sequence[str | Path | FilterEntry]) -> FleetSpec:
        """The fleet's listeners with `filters` placed by protocol."""
        listeners = []
        for kind, server in self.servers.items():
            chain = []
            for f in filters:
                entry = f if isinstance(f, FilterEntry) else FilterEntry(Path(f))
                if filter_protocol(entry.path) in ("tcp", kind):
                    chain.append(entry)
            listeners.append(XListener(kind, self.ports[kind], (server.host, server.port), chain))
        origin = self.origin.url if self.origin else None
        return FleetSpec(listeners, self.code, origin)

    def publish(self, filters: Sequence[str | Path | FilterEntry], *, validate: bool = True,
                envoy_check: bool = True) -> ExportResult:
        """Export `filters` for this fleet's listeners and switch the Envoys to it."""
        return export(self.spec(filters), self.root, validate=validate, envoy_check=envoy_check)

    def fleet_file(self, filters: Sequence[str | Path]) -> str:
        """A fleet file (TOML) for this fleet's listeners, to edit and export again."""
        lines = ["# The fleet started by `wirelab fleet up`: edit, then",
                 f"#   wirelab xds export THIS_FILE --out {self.root}", ""]
        for lst in self.spec(filters).listeners:
            paths = ", ".join(json.dumps(str(Path(e.path).absolute())) for e in lst.filters)
            lines += ["[[listener]]", f"name = {json.dumps(lst.name)}", f"port = {lst.port}",
                      f"upstream = {json.dumps(f'{lst.upstream[0]}:{lst.upstream[1]}')}",
                      f"filters = [{paths}]", ""]
        return "\n".join(lines)

    # --- reading -------------------------------------------------------------
    def port(self, kind: str) -> int:
        return self.ports[kind]

    def server(self, kind: str) -> Any:
        return self.servers[kind]

    def status(self) -> list[FilterState]:
        return fleet_status(self.root, [(e.node_id, e.admin_url) for e in self.envoys])

    def state(self) -> dict[str, Any]:
        servers = {kind: {"host": s.host, "port": self.ports[kind], "direct_port": s.port,
                          "user": s.user, "password": s.password, "database": s.database}
                   for kind, s in self.servers.items()}
        return {
            "root": str(self.root),
            "blob_origin": self.origin.url if self.origin else None,
            "envoys": [{"node": e.node_id, "admin": e.admin_url, "pid": e.pid}
                       for e in self.envoys],
            "servers": servers,
        }


def fleet_status(root: str | Path, envoys: Sequence[tuple[str, str]]) -> list[FilterState]:
    """Rows for every (node, admin URL) against what `root` publishes now."""
    manifest = published_manifest(root) or {}
    published = {n: v["version"] for n, v in manifest.get("filters", {}).items()}
    exports = first_exports(root)
    rows: list[FilterState] = []
    for node, admin in envoys:
        for row in envoy_state(admin, published, node):
            row.export = exports.get((row.filter, row.running or ""))
            rows.append(row)
    return rows
