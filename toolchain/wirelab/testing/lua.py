"""Small Lua filter projects written on the fly, for tests and benchmarks that edit
a filter while it runs (reloads, xDS publishing, pulls).

    from wirelab.testing.lua import statement_counter_script, write_lua_project

    project = write_lua_project(tmp_path / "stmts", statement_counter_script(),
                                name="stmts", stat_prefix="app", metrics_flush_ms=0)
    ...
    # a new version, with a new metric
    (project / "filter.lua").write_text(statement_counter_script("added"))
"""

from __future__ import annotations

import json
from pathlib import Path


def statement_counter_script(*extra_counters: str) -> str:
    """A PostgreSQL Lua filter: `statements` counts CommandComplete messages (one per
    statement the server finished). Each of `extra_counters` is defined beside it and
    stays 0: its appearance in Envoy shows that a new version of the script runs."""
    extra = "".join(f'wirelab.counter("{name}")\n' for name in extra_counters)
    return ('local statements = wirelab.counter("statements")\n'
            + extra
            + 'envoy_pg_message_types = { client = "", server = "C" }\n'
            'function envoy_on_pg_message(conn, msg)\n'
            '  if msg.name == "CommandComplete" then statements:inc() end\n'
            'end\n')


def write_lua_project(directory: Path, script: str, name: str, protocol: str = "postgres",
                  **config: str | int) -> Path:
    """`directory` as a Lua project: wirelab.toml (`config` as its [config] table)
    and filter.lua holding `script`. Returns `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    # JSON's strings and integers are TOML's too
    table = "".join(f"{key} = {json.dumps(value)}\n" for key, value in config.items())
    (directory / "wirelab.toml").write_text(
        f'name = {json.dumps(name)}\nlanguage = "lua"\nprotocol = {json.dumps(protocol)}\n'
        f'script = "filter.lua"\n\n[config]\n{table}')
    (directory / "filter.lua").write_text(script)
    return directory
