"""Fetching and caching Lua's sources (the pinned lupa sdist)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from wirelab.build import lua_source
from wirelab.errors import BuildError


def _real_sdist() -> Path | None:
    """The pinned sdist from the user's normal cache, if a build has fetched it."""
    try:
        root = lua_source.lua_cache_root()
    except OSError:
        return None
    path = root / lua_source.LUPA_SDIST
    return path if path.is_file() else None


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    real = _real_sdist()  # look it up before the cache moves
    monkeypatch.setenv("WIRELAB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WIRELAB_LUA_SDIST", raising=False)
    monkeypatch.setattr(lua_source, "_real", real, raising=False)
    return tmp_path / "cache"


def test_no_network_and_no_cache_is_one_clear_line(
    empty_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"  # a reachable index that does not list lupa
    index.mkdir()
    monkeypatch.setattr(lua_source, "_pip_index_urls", lambda: [index.as_uri()])
    with pytest.raises(BuildError) as info:
        lua_source.source_dir()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("Lua sources are not cached and lupa-2.8.tar.gz could not be downloaded")
    assert msg.endswith("set WIRELAB_LUA_SDIST=/path/to/lupa-2.8.tar.gz")


def test_wrong_sdist_is_refused(empty_cache: Path, tmp_path: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "lupa-2.8.tar.gz"
    fake.write_bytes(b"not the sdist")
    monkeypatch.setenv("WIRELAB_LUA_SDIST", str(fake))
    with pytest.raises(BuildError) as info:
        lua_source.source_dir()
    digest = hashlib.sha256(b"not the sdist").hexdigest()
    assert str(info.value) == (
        f"{fake} has sha256 {digest}, expected {lua_source.LUPA_SDIST_SHA256} "
        "(lupa-2.8.tar.gz); use the unmodified sdist"
    )


def test_seeded_sdist_is_extracted_once_and_checked(
    empty_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = lua_source._real  # type: ignore[attr-defined]
    if real is None:
        pytest.skip("the lupa-2.8 sdist is not cached yet: run `wirelab build` on a Lua project "
                    "once with network access")
    seeded = tmp_path / "seed" / "lupa-2.8.tar.gz"
    seeded.parent.mkdir()
    shutil.copyfile(real, seeded)
    monkeypatch.setenv("WIRELAB_LUA_SDIST", str(seeded))
    monkeypatch.setattr(lua_source, "_pip_index_urls", lambda: pytest.fail("no download"))
    src = lua_source.source_dir()
    assert src.parent == empty_cache / "lua"
    names = {p.name for p in src.iterdir()}
    assert {"lua.h", "lapi.c", "lvm.c", "lauxlib.h", "luaconf.h"} <= names
    assert all(n.endswith((".c", ".h")) or n == ".wirelab-lua-ok" for n in names)
    assert '#define LUA_VERSION_RELEASE\t"8"' in (src / "lua.h").read_text()
    # Second call: the cache answers. A tampered file is noticed and re-extracted.
    assert lua_source.source_dir() == src
    (src / "lvm.c").write_text("tampered")
    assert lua_source.source_dir() == src
    assert (src / "lvm.c").read_text() != "tampered"
