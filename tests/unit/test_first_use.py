"""What a new user trips over (issue 13): each scenario as the user meets it, at the
command line, with the exact message or numbers expected."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from wirelab.cli import main
from wirelab.conversation import Conversation
from wirelab.paths import examples_dir
from wirelab.replay import replay
from wirelab.scaffold import create_project
from wirelab.testing import load_filter

ROOT = Path(__file__).resolve().parents[2]
CONVERSATIONS = ROOT / "tests" / "fixtures" / "conversations"
# A recorded conversation for each protocol an example may speak.
RECORDED = {"postgres": CONVERSATIONS / "postgres" / "psql_simple.jsonl",
            "mysql": CONVERSATIONS / "mysql" / "cli.jsonl",
            "tcp": CONVERSATIONS / "postgres" / "psql_simple.jsonl"}
EXAMPLES = sorted(p.parent for p in examples_dir().rglob("wirelab.toml"))


def wirelab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wirelab", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _copy(project: Path, tmp_path: Path) -> Path:
    dest = tmp_path / project.name
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns("build"))
    return dest


# --- replay takes any project directory, Lua or C -----------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_replay_runs_every_example_directory(tmp_path: Path, example: Path):
    import tomllib

    project = _copy(example, tmp_path)
    protocol = tomllib.loads((project / "wirelab.toml").read_text()).get("protocol", "tcp")
    conversation = RECORDED[protocol]
    ran = wirelab("replay", str(project), str(conversation), "--json")
    assert ran.returncode == 0, ran.stderr
    got = json.loads(ran.stdout)
    # The same metrics as the project loaded the way its own tests load it.
    host = load_filter(project)
    expected = replay(host.path, conversation, host=host).as_dict()
    assert got == expected
    assert got["traps"] == [] and not [m for lvl, m in got["logs"] if lvl == "error"]
    assert any(got["counters"].values()), got  # the filter counted something


# --- Lua errors: message, file and line wherever they happen ------------------------


def _lua_project(tmp_path: Path, script: str) -> Path:
    root = create_project("luaerr", "lua", "tcp", tmp_path)
    (root / "filter.lua").write_text(script)
    return root


def test_a_top_level_lua_error_is_shown_by_wirelab_test(tmp_path: Path):
    root = _lua_project(tmp_path, "local n = 1\nundefined_function()\n")
    ran = wirelab("test", str(root))
    assert ran.returncode == 1
    assert ("proxy_on_configure returned false: lua error in configuration: "
            "filter.lua:2: attempt to call a nil value (global 'undefined_function')"
            in ran.stdout), ran.stdout


CALLBACK_ERROR = """\
local bytes = wirelab.counter("bytes_total", { direction = "client" })
function envoy_on_downstream_data(conn, data, end_of_stream)
  bytes:inc(data:length())
  local broken = nil
  broken.field = 1
end
"""


def test_a_lua_callback_error_is_in_the_failure_report(tmp_path: Path):
    root = _lua_project(tmp_path, CALLBACK_ERROR)
    ran = wirelab("test", str(root), "--", "-k", "interleaved")
    assert ran.returncode == 1
    assert "wirelab filter errors (emulator)" in ran.stdout
    assert re.search(r"error: lua error in envoy_on_downstream_data on connection \d+: "
                     r"filter\.lua:5: attempt to index a nil value \(local 'broken'\)",
                     ran.stdout), ran.stdout


def test_replay_prints_lua_errors(tmp_path: Path):
    root = _lua_project(tmp_path, CALLBACK_ERROR)
    ran = wirelab("replay", str(root), str(RECORDED["tcp"]))
    assert ran.returncode == 0, ran.stderr
    # the recording's one connection is the emulator's first stream context (id 2)
    assert ("filter error: lua error in envoy_on_downstream_data on connection 2: filter.lua:5: "
            "attempt to index a nil value (local 'broken') (error #1)") in ran.stderr, ran.stderr


# --- build: JSON on failure, missing directories, valid choices ---------------------


def test_build_json_reports_failure_as_json(tmp_path: Path):
    root = create_project("broken", "c", "tcp", tmp_path)
    source = root / "filter.c"
    text = source.read_text().replace("return 1; /*", "return 1 /*", 1)
    source.write_text(text)
    line = next(n for n, ln in enumerate(text.splitlines(), 1) if "return 1 /*" in ln)
    result = CliRunner().invoke(main, ["build", str(root), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {
        "ok": False, "errors": [f"filter.c:{line}: expected ';' after return statement"]}


def test_build_of_a_missing_directory_says_so(tmp_path: Path):
    missing = tmp_path / "nonexistent"
    result = CliRunner().invoke(main, ["build", str(missing)])
    assert result.exit_code == 1
    assert result.output == (f"wirelab: error: {missing}: no such directory (pass a filter "
                             "project directory, or create one with `wirelab new NAME`)\n")


@pytest.mark.parametrize(("key", "value", "valid"), [
    ("language", "rust", "'c' or 'lua'"),
    ("protocol", "redis", "'tcp' or 'postgres' or 'mysql'"),
])
def test_an_invalid_choice_in_the_manifest_lists_the_valid_ones(tmp_path: Path, key: str,
                                                               value: str, valid: str):
    root = create_project("choice", "c", "tcp", tmp_path)
    manifest = root / "wirelab.toml"
    text = manifest.read_text()
    old = next(ln for ln in text.splitlines() if ln.startswith(f"{key} ="))
    manifest.write_text(text.replace(old, f'{key} = "{value}"'))
    result = CliRunner().invoke(main, ["build", str(root)])
    assert result.exit_code == 1
    assert result.output == (f"wirelab: error: {manifest}: {key} = {value!r} is not valid: "
                             f"use {valid}\n")


def test_up_names_the_filter_project_that_does_not_build(tmp_path: Path):
    good = create_project("good", "c", "tcp", tmp_path)
    bad = create_project("bad", "c", "tcp", tmp_path)
    source = bad / "filter.c"
    text = source.read_text().replace("return 1; /*", "return 1 /*", 1)
    source.write_text(text)
    line = next(n for n, ln in enumerate(text.splitlines(), 1) if "return 1 /*" in ln)
    ran = wirelab("up", "--postgres", "--filter", str(good), "--filter", str(bad),
                  "--state", str(tmp_path / "lab.json"))
    assert ran.returncode == 1
    assert ran.stderr == (f"wirelab: error: building filter project bad ({bad}) failed: "
                          f"filter.c:{line}: expected ';' after return statement\n")


# --- conversation files: every connection is opened first --------------------------


def test_replay_refuses_an_event_for_a_connection_never_opened(tmp_path: Path):
    project = _copy(examples_dir() / "bytes-counter", tmp_path)
    lines = CONVERSATIONS.joinpath("postgres", "psql_simple.jsonl").read_text().splitlines()
    stray = json.dumps({"t": 9.0, "conn": 7, "ev": "data", "dir": "client", "data": "AAAA"})
    path = tmp_path / "stray.jsonl"
    path.write_text("\n".join([*lines, stray]) + "\n")
    ran = wirelab("replay", str(project), str(path))
    assert ran.returncode == 1
    assert ran.stderr == (
        f"wirelab: error: {path}:{len(lines) + 1}: data event for connection 7, which was "
        'never opened; add {"t": 9, "conn": 7, "ev": "open"} before it\n')


def test_replay_in_python_refuses_it_too():
    conv = Conversation(protocol="tcp")
    conv.data(0, 0.0, "client", b"x")
    from wirelab.errors import WirelabError

    with pytest.raises(WirelabError, match="event 1: data event for connection 0, which was "
                                           "never opened"):
        replay(examples_dir() / "bytes-counter" / "build" / "nothing.wasm", conv)


# --- traps name the C functions (and file:line where the debug info is readable) ----


def _trapping_project(tmp_path: Path) -> tuple[Path, int]:
    root = create_project("trapper", "c", "tcp", tmp_path)
    source = root / "filter.c"
    marker = "    wl_batch_add(m->bytes[read->dir], (int64_t)read->size);\n"
    text = source.read_text()
    assert marker in text
    source.write_text(text.replace(marker, marker + "    if (read->size == 3) __builtin_trap();\n"))
    line = next(n for n, ln in enumerate(source.read_text().splitlines(), 1)
                if "__builtin_trap" in ln)
    return root, line


def test_a_trap_names_the_c_functions(tmp_path: Path):
    root, _ = _trapping_project(tmp_path)
    host = load_filter(root)
    host.connect().downstream(b"abc")
    (trap,) = host.traps
    assert trap.callback == "proxy_on_downstream_data"
    names = [frame.split(" (")[0] for frame in trap.frames]
    assert names == ["wl_on_data", "wl__data", "wl__on_downstream_data"]
    # what Envoy loads is stripped; the names sit beside it
    assert b"wl_on_data" not in (root / "build" / "trapper.wasm").read_bytes()
    assert (root / "build" / "trapper.debug.wasm").is_file()


def test_a_trap_shows_file_and_line(tmp_path: Path):
    if shutil.which("llvm-symbolizer") is None:
        pytest.skip("llvm-symbolizer is absent (apt-get install llvm): traps show names only")
    root, line = _trapping_project(tmp_path)
    host = load_filter(root)
    host.connect().downstream(b"abc")
    assert host.traps[0].frames[0] == f"wl_on_data (filter.c:{line})"
    assert str(host.traps[0]).startswith(
        "proxy_on_downstream_data trapped: wasm trap: wasm `unreachable` instruction executed "
        f"[wl_on_data (filter.c:{line}) <- wl__data (wl_runtime.c:")


# --- one tag-key rule: wirelab's keys, or keys the project declares ------------------

TENANT_SCRIPT = """\
local hits = wirelab.counter("hits", { tenant = "acme" })
function envoy_on_new_connection(conn)
  hits:inc()
end
"""


def test_build_refuses_an_undeclared_tag_key(tmp_path: Path):
    root = _lua_project(tmp_path, TENANT_SCRIPT)
    result = CliRunner().invoke(main, ["build", str(root)])
    assert result.exit_code == 1
    assert result.output == (
        "wirelab: error: filter.lua:1: tag key 'tenant' is not one of wirelab's (type, verb, "
        "command, sqlstate, class, code, reason, database, user, direction): declare it in "
        "wirelab.toml as tag_keys = [\"tenant\"] so Envoy's stats_tags turn it into a label\n")


def test_a_declared_tag_key_builds_and_gets_a_stats_tags_rule(tmp_path: Path):
    root = _lua_project(tmp_path, TENANT_SCRIPT)
    manifest = root / "wirelab.toml"
    manifest.write_text(manifest.read_text().replace("[config]", 'tag_keys = ["tenant"]\n\n'
                                                                  "[config]", 1))
    built = CliRunner().invoke(main, ["build", str(root)])
    assert built.exit_code == 0, built.output
    for extra in ([], ["--bootstrap"]):
        printed = CliRunner().invoke(main, ["config", str(root), "--upstream", "127.0.0.1:5432",
                                            *extra])
        assert printed.exit_code == 0, printed.output
        assert ('- tag_name: "tenant"\n    regex: "^wasmcustom\\\\..*?(\\\\.tenant=([^.]+))"'
                in printed.output), printed.output


def test_a_c_filter_tag_key_is_checked_too(tmp_path: Path):
    root = create_project("ckeys", "c", "tcp", tmp_path)
    source = root / "filter.c"
    text = source.read_text().replace('"tcp.%s.bytes_total.direction=client"',
                                      '"tcp.%s.bytes_total.Dir=client"')
    source.write_text(text)
    line = next(n for n, ln in enumerate(text.splitlines(), 1) if ".Dir=client" in ln)
    result = CliRunner().invoke(main, ["build", str(root)])
    assert result.exit_code == 1
    assert result.output == (
        f"wirelab: error: filter.c:{line}: tag key 'Dir' is not valid: use lowercase letters, "
        "digits and '_', starting with a letter (docs/metrics-naming.md)\n")


# --- the emulator's monotonic clock starts where Envoy's could, not at 0 ------------

CLOCK_FILTER = """\
#include "wirelab_filter.h"

typedef struct { wl_metric started_s; } metrics;
WL_PLUGIN_STATE(metrics)

int wl_on_configure(wl_plugin *plugin) {
    metrics *m = plugin->state;
    m->started_s = wl_gauge("tcp.clock.started_s");
    return 1;
}

void wl_on_new_connection(wl_conn *conn) {
    metrics *m = conn->plugin->state;
    wl_metric_set(m->started_s, (int64_t)(conn->started_ns / 1000000000u));
}
"""


def test_the_monotonic_clock_is_never_zero(tmp_path: Path):
    from wirelab.emulator.shared import MONOTONIC_START_NS

    root = create_project("clock", "c", "tcp", tmp_path)
    (root / "filter.c").write_text(CLOCK_FILTER)
    host = load_filter(root)
    host.connect()
    assert host.metrics.gauge("tcp.clock.started_s") == MONOTONIC_START_NS // 10**9 == 3600
    host.advance(ms=5_000)
    host.connect()
    assert host.metrics.gauge("tcp.clock.started_s") == 3605
    assert host.now_ms == 5_000  # what tests read still counts from 0
