"""A filter project: the `wirelab.toml` manifest and the paths derived from it.

    name = "bytes-counter"      # the .wasm is build/<name>.wasm
    language = "c"              # "c" or "lua"
    protocol = "tcp"            # "tcp", "postgres" or "mysql"
    sources = ["filter.c"]      # C sources, relative to the project
    include_dirs = []           # extra -I directories, relative to the project
    cflags = []                 # extra compiler flags
    script = "filter.lua"       # Lua projects: the script
    targets = ["wasm"]          # what `wirelab build` makes: "wasm" (build/<name>.wasm)
                                # and/or "native" (build/lib<name>.so)
    tag_keys = ["tenant"]       # tag keys beyond wirelab's own (docs/metrics-naming.md)
    [config]                    # plugin configuration defaults (a JSON object)
    stat_prefix = "demo"
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from .errors import WirelabError

MANIFEST = "wirelab.toml"
# Build targets: a proxy-wasm module, or an Envoy dynamic module (a shared library).
TARGETS = ("wasm", "native")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


class Manifest(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    language: Literal["c", "lua"] = "c"
    protocol: Literal["tcp", "postgres", "mysql"] = "tcp"
    sources: list[str] = []
    include_dirs: list[str] = []
    cflags: list[str] = []
    script: str | None = None
    targets: list[Literal["wasm", "native"]] = msgspec.field(default_factory=lambda: ["wasm"])
    tag_keys: list[str] = []  # tag keys beyond wirelab's own (docs/metrics-naming.md)
    config: dict[str, Any] = {}


# Fields with a fixed set of values: an error lists them (msgspec's would not).
_CHOICES = {"language": ("c", "lua"), "protocol": ("tcp", "postgres", "mysql")}


class Project:
    """A loaded, validated filter project rooted at `root`."""

    def __init__(self, root: Path, manifest: Manifest):
        self.root = root
        self.manifest = manifest

    @classmethod
    def load(cls, directory: str | Path = ".") -> Project:
        root = Path(directory).resolve()
        path = root / MANIFEST
        if not root.exists():
            raise WirelabError(
                f"{directory}: no such directory (pass a filter project directory, or create "
                "one with `wirelab new NAME`)"
            )
        if not path.is_file():
            if root.is_file() and root.name == MANIFEST:
                return cls.load(root.parent)
            raise WirelabError(
                f"{root} is not a wirelab project: {MANIFEST} is missing "
                f"(create one with `wirelab new NAME`, or pass the project directory)"
            )
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise WirelabError(f"{path}: invalid TOML: {exc}") from None
        for key, valid in _CHOICES.items():
            value = data.get(key) if isinstance(data, dict) else None
            if value is not None and value not in valid:
                raise WirelabError(
                    f"{path}: {key} = {value!r} is not valid: use "
                    f"{' or '.join(repr(v) for v in valid)}"
                )
        try:
            manifest = msgspec.convert(data, Manifest)
        except msgspec.ValidationError as exc:
            raise WirelabError(f"{path}: {exc}".replace("`$.", "`")) from None
        if not _NAME.match(manifest.name):
            raise WirelabError(
                f"{path}: name {manifest.name!r} must be lowercase letters, digits, '-' or '_', "
                "starting with a letter"
            )
        project = cls(root, manifest)
        project._check_inputs(path)
        return project

    def _check_inputs(self, manifest_path: Path) -> None:
        m = self.manifest
        if not m.targets:
            raise WirelabError(
                f"{manifest_path}: `targets` is empty: list \"wasm\" and/or \"native\""
            )
        if m.language == "c":
            if not m.sources:
                raise WirelabError(f"{manifest_path}: a C project needs `sources = [\"filter.c\"]`")
            for src in m.sources:
                if not (self.root / src).is_file():
                    raise WirelabError(f"{manifest_path}: source {src!r} does not exist")
        else:
            if not m.script:
                raise WirelabError(
                    f"{manifest_path}: a Lua project needs `script = \"filter.lua\"`"
                )
            if not (self.root / m.script).is_file():
                raise WirelabError(f"{manifest_path}: script {m.script!r} does not exist")

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def build_dir(self) -> Path:
        return self.root / "build"

    @property
    def wasm_path(self) -> Path:
        return self.build_dir / f"{self.name}.wasm"

    @property
    def native_path(self) -> Path:
        """The Envoy dynamic module: `lib<name>.so`, the name Envoy's search expects."""
        return self.build_dir / f"lib{self.name}.so"

    def output_path(self, target: str) -> Path:
        return self.native_path if target == "native" else self.wasm_path

    @property
    def source_paths(self) -> list[Path]:
        return [self.root / s for s in self.manifest.sources]

    @property
    def include_paths(self) -> list[Path]:
        return [self.root / d for d in self.manifest.include_dirs]

    @property
    def script_path(self) -> Path | None:
        return self.root / self.manifest.script if self.manifest.script else None
