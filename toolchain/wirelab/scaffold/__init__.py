"""`wirelab new`: a filter project that builds and passes its tests as generated.

    create_project("pg-audit", lang="c", protocol="postgres", parent=Path("."))

renders the jinja2 templates under `templates/` (package data, so they ship in
the wheel) into PARENT/NAME: `wirelab.toml`, the filter source (`filter.c` on
the C SDK or `filter.lua` on the Lua API), `tests/test_filter.py` (emulator),
`tests/test_e2e.py` (real Envoy, marked e2e), `pytest.ini`, `README.md` and
`.gitignore`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import jinja2

from ..errors import WirelabError

LANGS = ("c", "lua")
PROTOCOLS = ("postgres", "mysql", "tcp")
TEMPLATES = Path(__file__).resolve().parent / "templates"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Layout:
    """What gets rendered for one (lang, protocol): template -> path in the project."""

    files: dict[str, str]


def _layout(lang: str, protocol: str) -> Layout:
    source = "filter.c" if lang == "c" else "filter.lua"
    return Layout({
        "wirelab.toml.j2": "wirelab.toml",
        f"{lang}/{protocol}.j2": source,
        f"tests/test_filter_{protocol}.py.j2": "tests/test_filter.py",
        f"tests/test_e2e_{protocol}.py.j2": "tests/test_e2e.py",
        "pytest.ini.j2": "pytest.ini",
        "README.md.j2": "README.md",
        "gitignore.j2": ".gitignore",
    })


def check_choices(name: str, lang: str, protocol: str) -> None:
    """Raise a one-line WirelabError for a bad name, language or protocol."""
    if not _NAME.match(name):
        raise WirelabError(
            f"project name {name!r} is not valid: use lowercase letters, digits, '-' or '_', "
            "starting with a letter (at most 63 characters), e.g. `wirelab new pg-audit`"
        )
    if lang not in LANGS:
        raise WirelabError(f"unknown language {lang!r}: use --lang c or --lang lua")
    if protocol not in PROTOCOLS:
        raise WirelabError(
            f"unknown protocol {protocol!r}: use --protocol postgres, mysql or tcp"
        )


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def template_context(name: str, lang: str, protocol: str) -> dict[str, object]:
    family = "lua" if lang == "lua" else protocol
    return {
        "name": name,
        "lang": lang,
        "protocol": protocol,
        "stat_prefix": name,
        "family": family,
        "source": "filter.c" if lang == "c" else "filter.lua",
        "language_name": "C" if lang == "c" else "Lua",
        "protocol_name": {"postgres": "PostgreSQL", "mysql": "MySQL / MariaDB",
                          "tcp": "any TCP protocol"}[protocol],
    }


def render_project(name: str, lang: str = "c", protocol: str = "tcp") -> dict[str, str]:
    """The generated files, {relative path: text}, without touching the disk."""
    check_choices(name, lang, protocol)
    env = _environment()
    ctx = template_context(name, lang, protocol)
    return {dest: env.get_template(tpl).render(**ctx)
            for tpl, dest in _layout(lang, protocol).files.items()}


def create_project(name: str, lang: str = "c", protocol: str = "tcp",
                   parent: str | Path = ".") -> Path:
    """Write a new project to PARENT/NAME and return its directory."""
    files = render_project(name, lang, protocol)
    parent = Path(parent)
    if parent.exists() and not parent.is_dir():
        raise WirelabError(f"{parent} is not a directory: pass an existing directory as --dir")
    root = parent / name
    if root.exists():
        raise WirelabError(
            f"{root} already exists: choose another name or --dir, or remove it first"
        )
    try:
        root.mkdir(parents=True)
    except OSError as exc:
        raise WirelabError(f"cannot create {root}: {exc.strerror}; pick a writable --dir") from None
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


__all__ = ["LANGS", "PROTOCOLS", "check_choices", "create_project", "render_project"]
