"""Lua 5.4's C sources, fetched at build time and cached; never shipped with wirelab.

The sources come from the `lupa` sdist (it carries `third-party/lua54/`), pinned
by version and sha256. Resolution order:

1. the extracted tree in the cache (`cache_dir()/lua/lua54-<sha12>/`, hash-checked);
2. the sdist named by `WIRELAB_LUA_SDIST=/path/to/lupa-2.8.tar.gz`;
3. a previously downloaded sdist in `cache_dir()/lua/`;
4. a download of that one file, its URL read from the simple API page of the
   package index pip is configured with.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

from ..errors import BuildError
from ..paths import cache_dir

LUPA_VERSION = "2.8"
LUPA_SDIST = f"lupa-{LUPA_VERSION}.tar.gz"
LUPA_SDIST_SHA256 = "d8022641b9ec8ecf2c5ecbe9f47e5a70e0b87c4b5ae921b92cb02a638e0acd08"
LUA_VERSION = "5.4"
_MEMBER_PREFIX = f"lupa-{LUPA_VERSION}/third-party/lua54/"
_MARKER = ".wirelab-lua-ok"
_HOW_TO_SEED = (
    f"download {LUPA_SDIST} (sha256 {LUPA_SDIST_SHA256[:16]}...) on a connected machine "
    f"and set WIRELAB_LUA_SDIST=/path/to/{LUPA_SDIST}"
)


def lua_cache_root() -> Path:
    root = cache_dir() / "lua"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree_digest(directory: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(directory.iterdir()):
        if p.is_file() and p.suffix in (".c", ".h"):
            h.update(p.name.encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def source_dir() -> Path:
    """The directory holding Lua's `.c`/`.h` files, fetching them if needed."""
    target = lua_cache_root() / f"lua54-{LUPA_SDIST_SHA256[:12]}"
    marker = target / _MARKER
    if marker.is_file() and marker.read_text().strip() == _tree_digest(target):
        return target
    sdist = _find_or_download_sdist()
    _extract(sdist, target)
    return target


def _find_or_download_sdist() -> Path:
    env = os.environ.get("WIRELAB_LUA_SDIST")
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise BuildError(f"WIRELAB_LUA_SDIST={env} does not exist; {_HOW_TO_SEED}")
        _check_sha(path)
        return path
    cached = lua_cache_root() / LUPA_SDIST
    if cached.is_file():
        if _sha256_file(cached) == LUPA_SDIST_SHA256:
            return cached
        cached.unlink()
    return _download(cached)


def _check_sha(path: Path) -> None:
    got = _sha256_file(path)
    if got != LUPA_SDIST_SHA256:
        raise BuildError(
            f"{path} has sha256 {got}, expected {LUPA_SDIST_SHA256} ({LUPA_SDIST}); "
            "use the unmodified sdist"
        )


def _pip_index_urls() -> list[str]:
    """Index URLs from pip's configuration (env and config files), primary first."""
    primary: list[str] = []
    extra: list[str] = []
    if os.environ.get("PIP_INDEX_URL"):
        primary.append(os.environ["PIP_INDEX_URL"])
    extra += os.environ.get("PIP_EXTRA_INDEX_URL", "").split()
    try:
        out = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True, text=True, timeout=60, check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition("=")
        value = value.strip().strip("'\"")
        if key.endswith(".index-url"):
            primary.append(value)
        elif key.endswith(".extra-index-url"):
            extra += value.split()
    if not primary:
        try:  # pip's built-in default index, when none is configured
            from pip._internal.models.index import PyPI

            primary.append(PyPI.simple_url)
        except Exception:  # noqa: BLE001 - pip internals may move
            pass
    seen: list[str] = []
    for url in primary + extra:
        if url and url not in seen:
            seen.append(url)
    return seen


def _sdist_url(index: str) -> str | None:
    page = index.rstrip("/") + "/lupa/"
    req = urllib.request.Request(
        page, headers={"Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1"}
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        body = resp.read()
        ctype = resp.headers.get("Content-Type", "")
    if "json" in ctype:
        for f in json.loads(body).get("files", []):
            if f.get("filename") == LUPA_SDIST:
                return urllib.parse.urljoin(page, f["url"])
        return None
    import html.parser

    found: list[str] = []

    class _Links(html.parser.HTMLParser):
        def handle_starttag(self, tag, attrs):
            href = dict(attrs).get("href") if tag == "a" else None
            if href and href.split("#")[0].rsplit("/", 1)[-1] == LUPA_SDIST:
                found.append(urllib.parse.urljoin(page, href))

    _Links().feed(body.decode("utf-8", "replace"))
    return found[0] if found else None


def _download(dest: Path) -> Path:
    errors = []
    for index in _pip_index_urls():
        try:
            url = _sdist_url(index)
            if not url:
                continue
            fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=120) as resp:
                shutil.copyfileobj(resp, out)
            if _sha256_file(Path(tmp)) != LUPA_SDIST_SHA256:
                os.unlink(tmp)
                errors.append(f"{url}: sha256 mismatch")
                continue
            os.replace(tmp, dest)
            return dest
        except (OSError, ValueError) as exc:
            errors.append(f"{index}: {exc}")
    why = "; ".join(errors) if errors else "no configured package index lists it"
    raise BuildError(
        f"Lua sources are not cached and {LUPA_SDIST} could not be downloaded ({why}); "
        f"{_HOW_TO_SEED}"
    )


def _extract(sdist: Path, target: Path) -> None:
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".lua54-"))
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for m in tar.getmembers():
                if not m.isfile() or not m.name.startswith(_MEMBER_PREFIX):
                    continue
                rel = m.name[len(_MEMBER_PREFIX):]
                if "/" in rel or not rel.endswith((".c", ".h")):
                    continue
                src = tar.extractfile(m)
                assert src is not None
                (tmp / rel).write_bytes(src.read())
        if not (tmp / "lua.h").is_file():
            raise BuildError(f"{sdist} does not contain {_MEMBER_PREFIX}lua.h")
        (tmp / _MARKER).write_text(_tree_digest(tmp) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
