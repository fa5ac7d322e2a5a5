"""The tag-key rule (docs/metrics-naming.md), checked at build time.

A tag key is lowercase letters, digits and `_`, starting with a letter. wirelab's
own keys (`TAG_KEYS`) need nothing more; any other key is declared in
`wirelab.toml` as `tag_keys = [...]`, which puts a `stats_tags` rule for it in
every Envoy configuration wirelab writes (`wirelab config`, the lab), so it
becomes a Prometheus label. The build finds the keys a filter's source names
literally: `".key="` in C string literals, `{ key = ... }` in the tags table of
a Lua `wirelab.counter/gauge/histogram(...)` call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..envoy.render import TAG_KEYS
from ..errors import BuildError
from ..project import Project

KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_C_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_C_TAG = re.compile(r"\.([A-Za-z0-9_]+)=")
_LUA_CALL = re.compile(r"wirelab\.(?:counter|gauge|histogram)\s*\(\s*(['\"])[^'\"]*\1\s*,\s*\{")
_LUA_FIELD = re.compile(r"(?:^|[,{;]\s*)(?:\[\s*(['\"])([^'\"]+)\1\s*\]|([A-Za-z_][A-Za-z0-9_]*))"
                        r"\s*=(?!=)")


@dataclass(frozen=True)
class TagUse:
    file: str
    line: int
    key: str


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _c_uses(path: Path, shown: str) -> list[TagUse]:
    text = path.read_text(errors="replace")
    out = []
    for lit in _C_STRING.finditer(text):
        for m in _C_TAG.finditer(lit.group(0)):
            out.append(TagUse(shown, _line(text, lit.start()), m.group(1)))
    return out


def _lua_uses(path: Path, shown: str) -> list[TagUse]:
    text = path.read_text(errors="replace")
    out = []
    for call in _LUA_CALL.finditer(text):
        end = text.find("}", call.end())
        table = "{" + text[call.end():end if end >= 0 else len(text)]
        for m in _LUA_FIELD.finditer(table):
            key = m.group(2) or m.group(3)
            out.append(TagUse(shown, _line(text, call.end() + m.start()), key))
    return out


def tag_uses(project: Project) -> list[TagUse]:
    """Every tag key the project's own sources name literally."""
    if project.manifest.language == "lua":
        script = project.script_path
        return _lua_uses(script, project.manifest.script or "") if script else []
    return [u for src, path in zip(project.manifest.sources, project.source_paths, strict=True)
            for u in _c_uses(path, src)]


def check_tag_keys(project: Project) -> None:
    """Raise a BuildError for a malformed declared key or an undeclared used one."""
    declared = project.manifest.tag_keys
    for key in declared:
        if not KEY.match(key):
            raise BuildError(f"wirelab.toml: tag_keys entry {key!r} is not a valid tag key: use "
                             "lowercase letters, digits and '_', starting with a letter")
    known = set(TAG_KEYS) | set(declared)
    for use in tag_uses(project):
        if use.key in known:
            continue
        if not KEY.match(use.key):
            raise BuildError(f"{use.file}:{use.line}: tag key {use.key!r} is not valid: use "
                             "lowercase letters, digits and '_', starting with a letter "
                             "(docs/metrics-naming.md)")
        raise BuildError(
            f"{use.file}:{use.line}: tag key {use.key!r} is not one of wirelab's "
            f"({', '.join(TAG_KEYS)}): declare it in wirelab.toml as "
            f'tag_keys = ["{use.key}"] so Envoy\'s stats_tags turn it into a label'
        )
