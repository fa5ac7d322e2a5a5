"""What to export: listeners, their upstreams and filters, from a fleet file or flags.

    # fleet.toml
    code = "local"                   # or "remote": Envoy fetches blobs over HTTP
    blob_origin = "http://127.0.0.1:8800"   # remote only: where blobs/ is served
    [[listener]]
    name = "postgres"
    port = 15432
    upstream = "127.0.0.1:5432"
    filters = ["filters/postgres", {path = "prebuilt.wasm", sha256 = "…", config = {}}]

Relative paths are relative to the fleet file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..envoy.specs import FAILURE_POLICIES, _check_name
from ..errors import WirelabError

CODE_MODES = ("local", "remote")


@dataclass
class FilterEntry:
    """A project directory or a built .wasm, with optional overrides.

    `sha256` pins a prebuilt .wasm: the export refuses a file that does not match.
    `config` replaces (str: the exact plugin configuration) or updates (dict) the
    project's configuration.
    """

    path: Path
    sha256: str | None = None
    config: dict[str, Any] | str | None = None
    name: str | None = None
    root_id: str | None = None


@dataclass
class XListener:
    name: str
    port: int
    upstream: tuple[str, int]
    filters: list[FilterEntry] = field(default_factory=list)
    address: str = "127.0.0.1"
    failure_policy: str = "FAIL_OPEN"


@dataclass
class FleetSpec:
    listeners: list[XListener]
    code: str = "local"
    blob_origin: str | None = None

    def __post_init__(self) -> None:
        for lst in self.listeners:
            _check_name("listener", lst.name)  # it names clusters and Envoy stats
        if self.code not in CODE_MODES:
            raise WirelabError(f"code = {self.code!r} is unknown: use 'local' or 'remote'")
        if self.code == "remote" and not self.blob_origin:
            raise WirelabError(
                "code = 'remote' needs blob_origin = \"http://HOST:PORT\" (where blobs/ is served)"
            )
        names = [lst.name for lst in self.listeners]
        for name in names:
            if names.count(name) > 1:
                raise WirelabError(f"two listeners are named {name!r}: give each its own name")
        if not self.listeners:
            raise WirelabError("nothing to export: give at least one listener")


def parse_hostport(text: str, what: str = "upstream") -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise WirelabError(f"{what} {text!r} is not HOST:PORT (e.g. 127.0.0.1:5432)")
    return host.strip("[]"), int(port)


def _entry(raw: Any, base: Path, where: str) -> FilterEntry:
    if isinstance(raw, str):
        return FilterEntry(base / raw)
    if not isinstance(raw, dict) or "path" not in raw:
        raise WirelabError(f"{where}: a filter is a path or a table with `path = \"...\"`")
    unknown = set(raw) - {"path", "sha256", "config", "name", "root_id"}
    if unknown:
        raise WirelabError(f"{where}: unknown filter key(s) {', '.join(sorted(unknown))}")
    return FilterEntry(base / raw["path"], raw.get("sha256"), raw.get("config"),
                       raw.get("name"), raw.get("root_id"))


def load_fleet(path: str | Path) -> FleetSpec:
    """Read a fleet file (TOML); WirelabError naming the file and the key on a mistake."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise WirelabError(f"fleet file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise WirelabError(f"{path}: invalid TOML: {exc}") from None
    base = path.resolve().parent
    unknown = set(data) - {"listener", "code", "blob_origin"}
    if unknown:
        raise WirelabError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} "
                           "(use code, blob_origin, [[listener]])")
    listeners = []
    for i, raw in enumerate(data.get("listener", [])):
        where = f"{path}: listener {i + 1}"
        missing = {"name", "port", "upstream"} - set(raw)
        if missing:
            raise WirelabError(f"{where}: missing {', '.join(sorted(missing))}")
        policy = str(raw.get("failure_policy", "FAIL_OPEN")).upper()
        if policy not in FAILURE_POLICIES:
            raise WirelabError(f"{where}: failure_policy {policy!r} is not one of "
                               f"{', '.join(FAILURE_POLICIES)}")
        listeners.append(XListener(
            name=str(raw["name"]), port=int(raw["port"]),
            upstream=parse_hostport(raw["upstream"]),
            filters=[_entry(f, base, where) for f in raw.get("filters", [])],
            address=str(raw.get("address", "127.0.0.1")), failure_policy=policy,
        ))
    return FleetSpec(listeners, str(data.get("code", "local")), data.get("blob_origin"))


def simple_fleet(projects: list[str | Path], upstream: str, listen: int | None = None,
                 name: str | None = None, code: str = "local",
                 blob_origin: str | None = None) -> FleetSpec:
    """One listener in front of `upstream` with `projects` in order (the CLI's short form)."""
    host, port = parse_hostport(upstream)
    listener = XListener(name or "db", listen if listen is not None else 10000 + port % 10000,
                         (host, port), [FilterEntry(Path(p)) for p in projects])
    return FleetSpec([listener], code, blob_origin)
