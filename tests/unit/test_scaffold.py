"""`wirelab new`, `wirelab test` and the `wirelab.testing` encoders.

Every (language, protocol) project is generated into a temp directory, built
and its generated unit tests run through `wirelab test`, in a subprocess as a
user would. The encoders are checked byte for byte and by running them
through the shipped filters' C decoders in the emulator.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from wirelab.cli import main
from wirelab.paths import examples_dir, filters_dir
from wirelab.scaffold import LANGS, PROTOCOLS, create_project, render_project
from wirelab.testing import counters, load_filter
from wirelab.testing import mysql as my
from wirelab.testing import postgres as pg

UNIT_TESTS = {"tcp": 2, "postgres": 4, "mysql": 4}  # generated tests outside the e2e mark


def wirelab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wirelab", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


# --- wirelab new + wirelab test, every combination ----------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("lang", LANGS)
def test_generated_project_builds_and_passes_its_unit_tests(tmp_path: Path, lang: str,
                                                             protocol: str):
    name = f"gen-{lang}-{protocol}"
    made = CliRunner().invoke(main, ["new", name, "--lang", lang, "--protocol", protocol,
                                     "--dir", str(tmp_path)])
    assert made.exit_code == 0, made.output
    root = tmp_path / name
    assert made.output.startswith(f"created {root} ({lang}, {protocol})\n")
    source = "filter.c" if lang == "c" else "filter.lua"
    expected = {"wirelab.toml", source, "tests/test_filter.py", "tests/test_e2e.py",
                "pytest.ini", "README.md", ".gitignore"}
    assert {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} == expected

    ran = wirelab("test", str(root), cwd=tmp_path)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out
    assert f"{UNIT_TESTS[protocol]} passed, 1 deselected" in out
    assert (root / "build" / f"{name}.wasm").is_file()
    if lang == "lua":
        assert (root / "build" / f"{name}.config.json").is_file()


def test_generated_names_follow_the_naming_doc():
    for lang in LANGS:
        for protocol in PROTOCOLS:
            files = render_project("shop-db", lang, protocol)
            family = "lua" if lang == "lua" else protocol
            assert 'stat_prefix = "shop-db"' in files["wirelab.toml"]
            assert f'PREFIX = f"{family}.{{STAT_PREFIX}}."' in files["tests/test_filter.py"]
            assert "pytestmark = pytest.mark.e2e" in files["tests/test_e2e.py"]
            assert "{{" not in "".join(files.values()).replace("{{STAT_PREFIX}}", "")
    c_pg = render_project("shop-db", "c", "postgres")["filter.c"]
    assert '"postgres.%s.statements.type=%s"' in c_pg
    assert '"postgres.%s.errors_by_class.class=%s"' in c_pg


# --- wirelab new: user mistakes -----------------------------------------------------


@pytest.mark.parametrize(("args", "message"), [
    (["Bad_Name"], "project name 'Bad_Name' is not valid: use lowercase letters"),
    (["9lives"], "project name '9lives' is not valid"),
    (["ok", "--lang", "rust"], "unknown language 'rust': use --lang c or --lang lua"),
    (["ok", "--protocol", "redis"],
     "unknown protocol 'redis': use --protocol postgres, mysql or tcp"),
])
def test_new_rejects_bad_input_in_one_line(tmp_path: Path, args: list[str], message: str):
    result = CliRunner().invoke(main, ["new", *args, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith(f"wirelab: error: {message}")
    assert result.output.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_an_existing_directory(tmp_path: Path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["new", "taken", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (f"wirelab: error: {tmp_path / 'taken'} already exists: choose "
                             "another name or --dir, or remove it first\n")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_new_refuses_a_file_as_parent(tmp_path: Path):
    parent = tmp_path / "file"
    parent.write_text("")
    result = CliRunner().invoke(main, ["new", "x", "--dir", str(parent)])
    assert result.exit_code == 1
    assert result.output == f"wirelab: error: {parent} is not a directory: pass an " \
                            "existing directory as --dir\n"


# --- wirelab test: errors, exit codes, pytest arguments -----------------------------


@pytest.fixture
def tcp_project(tmp_path: Path) -> Path:
    return create_project("probe", "c", "tcp", tmp_path)


def test_build_errors_are_file_line_and_nonzero(tcp_project: Path):
    source = tcp_project / "filter.c"
    text = source.read_text().replace("return 1; /*", "return 1 /*", 1)
    source.write_text(text)
    line = next(n for n, ln in enumerate(text.splitlines(), 1) if "return 1 /*" in ln)
    ran = wirelab("test", str(tcp_project))
    assert ran.returncode == 1
    assert ran.stderr == f"wirelab: error: filter.c:{line}: expected ';' after return statement\n"
    assert "test session starts" not in ran.stdout  # pytest never ran
    assert "Traceback" not in ran.stderr


def test_lua_syntax_errors_are_file_line(tmp_path: Path):
    root = create_project("luaprobe", "lua", "tcp", tmp_path)
    (root / "filter.lua").write_text("function envoy_on_new_connection(conn)\n  x = = 1\nend\n")
    ran = wirelab("test", str(root))
    assert ran.returncode == 1
    assert re.search(r"^wirelab: error: filter\.lua:2: ", ran.stderr, re.M), ran.stderr


def test_pytest_exit_code_and_arguments_pass_through(tcp_project: Path):
    (tcp_project / "tests" / "test_broken.py").write_text("def test_broken():\n    assert 1 == 2\n")
    failed = wirelab("test", str(tcp_project))
    assert failed.returncode == 1
    assert "1 failed, 2 passed, 1 deselected" in failed.stdout

    picked = wirelab("test", str(tcp_project), "--", "-k", "interleaved", "-q")
    assert picked.returncode == 0, picked.stdout + picked.stderr
    assert "1 passed, 3 deselected" in picked.stdout


def test_no_tests_directory_is_an_error_naming_it(tcp_project: Path):
    shutil.rmtree(tcp_project / "tests")
    ran = wirelab("test", str(tcp_project))
    assert ran.returncode == 5
    assert ran.stderr.splitlines()[-1] == (
        f"wirelab: error: {tcp_project / 'tests'} does not exist: put test_*.py files there "
        "(`wirelab new` generates tests/test_filter.py and tests/test_e2e.py)")


def test_only_e2e_tests_without_e2e_is_an_error(tcp_project: Path):
    (tcp_project / "tests" / "test_filter.py").unlink()
    ran = wirelab("test", str(tcp_project))
    assert ran.returncode == 5
    assert ran.stderr.splitlines()[-1] == (
        f"wirelab: error: no tests ran from {tcp_project / 'tests'} (tests marked e2e only run "
        "with --e2e): add test_*.py files there")


def test_test_outside_a_project_names_the_fix(tmp_path: Path):
    result = CliRunner().invoke(main, ["test", str(tmp_path)])
    assert result.exit_code == 1
    assert "wirelab.toml is missing (create one with `wirelab new NAME`" in result.output


@pytest.mark.parametrize("lang", LANGS)
def test_load_filter_overrides_the_stat_prefix(tmp_path: Path, lang: str):
    root = create_project("pfx", lang, "tcp", tmp_path)
    host = load_filter(root, config={"stat_prefix": "edge"})
    conn = host.connect()
    conn.downstream(b"abc")
    conn.close()
    family = "lua" if lang == "lua" else "tcp"
    assert counters(host, f"{family}.edge.") == {"connections_total": 1,
                                                 "bytes_total.direction=client": 3}
    assert counters(host, f"{family}.pfx.") == {}


# --- wirelab.testing: encoders, byte for byte ---------------------------------------


def test_postgres_encoders_write_the_documented_bytes():
    assert pg.query("select 1") == b"Q\x00\x00\x00\x0dselect 1\x00"
    assert pg.startup("u", "d") == (struct.pack("!II", 27, 196608)
                                    + b"user\x00u\x00database\x00d\x00\x00")
    assert pg.auth_ok() == b"R\x00\x00\x00\x08\x00\x00\x00\x00"
    assert pg.ready("T") == b"Z\x00\x00\x00\x05T"
    assert pg.command_complete("SELECT 1") == b"C\x00\x00\x00\x0dSELECT 1\x00"
    assert pg.data_row(["ab", None]) == (b"D\x00\x00\x00\x10\x00\x02"
                                         b"\x00\x00\x00\x02ab\xff\xff\xff\xff")
    assert pg.error("ERROR", "42P01", "m") == (b"E\x00\x00\x00\x1d" b"SERROR\x00VERROR\x00"
                                               b"C42P01\x00Mm\x00\x00")
    assert pg.sync() == b"S\x00\x00\x00\x04"
    assert pg.terminate() == b"X\x00\x00\x00\x04"
    assert pg.execute() == b"E\x00\x00\x00\x09\x00\x00\x00\x00\x00"
    assert pg.ssl_request() == b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
    with pytest.raises(ValueError, match="5 characters"):
        pg.error("ERROR", "42", "short")
    with pytest.raises(ValueError, match="NUL"):
        pg.query("a\0b")


def test_mysql_encoders_write_the_documented_bytes():
    assert my.com_query("select 1") == b"\x09\x00\x00\x00\x03select 1"
    assert my.com_quit() == b"\x01\x00\x00\x00\x01"
    assert my.ok(affected_rows=3) == b"\x07\x00\x00\x01\x00\x03\x00\x02\x00\x00\x00"
    assert my.ok(seq=2)[3] == 2
    assert my.err(1146, "42S02", "x") == b"\x0a\x00\x00\x01\xff\x7a\x04#42S02x"
    assert my.lenenc_int(250) == b"\xfa"
    assert my.lenenc_int(251) == b"\xfc\xfb\x00"
    assert my.lenenc_int(1 << 16) == b"\xfd\x00\x00\x01"
    rs = my.resultset(["a"], [["1"], [None]])
    # column count, one definition, EOF, two rows, EOF: sequence ids 1..6
    seqs, pos = [], 0
    while pos < len(rs):
        length = int.from_bytes(rs[pos:pos + 3], "little")
        seqs.append(rs[pos + 3])
        pos += 4 + length
    assert pos == len(rs) and seqs == [1, 2, 3, 4, 5, 6]
    with pytest.raises(ValueError, match="2 columns"):
        my.resultset(["a", "b"], [["1"]])


# --- wirelab.testing: through the C decoders ----------------------------------------


def _copy(project: Path, tmp_path: Path) -> Path:
    """Build a shipped filter in a copy: the checkout (or the wheel) stays untouched."""
    dest = tmp_path / project.name
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns("build"))
    return dest


def test_mysql_encoders_through_the_shipped_mysql_filter(tmp_path: Path):
    host = load_filter(_copy(filters_dir() / "mysql", tmp_path))
    conn = host.connect(dst=("10.0.0.2", 3306))
    conn.upstream(my.greeting())
    conn.downstream(my.handshake_response("alice", "shop"))
    conn.upstream(my.ok(seq=2))
    conn.downstream(my.com_query("select a, b from t"))
    conn.upstream(my.resultset(["a", "b"], [["1", None], ["2", "x"]]))
    conn.downstream(my.com_query("insert into t values (1)"))
    conn.upstream(my.ok(affected_rows=1))
    conn.downstream(my.com_query("select * from nope"))
    conn.upstream(my.err(1146, "42S02", "Table 'shop.nope' doesn't exist"))
    conn.downstream(my.com_init_db("other"))
    conn.upstream(my.ok())
    conn.downstream(my.com_ping())
    conn.upstream(my.ok())
    conn.downstream(my.com_quit())
    conn.close()
    # a second session that negotiates CLIENT_DEPRECATE_EOF: result sets end with an OK
    caps = my.DEFAULT_CAPABILITIES | my.DEPRECATE_EOF
    conn = host.connect(dst=("10.0.0.2", 3306))
    conn.upstream(my.greeting(capabilities=caps))
    conn.downstream(my.handshake_response("bob", None, capabilities=caps))
    conn.upstream(my.ok(seq=2))
    conn.downstream(my.com_query("select 1"))
    conn.upstream(my.resultset(["1"], [["1"]], deprecate_eof=True))
    conn.close()
    host.assert_no_traps()
    got = counters(host, "mysql.mysql.")
    for noise in ("bytes.direction=client", "bytes.direction=server"):
        assert got.pop(noise) > 0
    assert got == {
        "sessions": 2, "login_attempts": 2, "login_successes": 2,
        "commands.command=query": 4, "commands.command=init_db": 1,
        "commands.command=ping": 1, "commands.command=quit": 1,
        "queries_parsed": 4, "statements.verb=select": 3, "statements.verb=insert": 1,
        "result_sets": 2, "rows_returned": 3, "rows_affected": 1, "errors.code=1146": 1,
    }


def _pg_conversation(conn) -> None:
    conn.downstream(pg.startup("alice", "shop", application_name="t"))
    conn.upstream(pg.login_reply())
    conn.downstream(pg.query("select 1"))
    conn.upstream(pg.select_reply(["x"], [["1"]]))
    conn.downstream(pg.query("select * from nope"))
    conn.upstream(pg.error("ERROR", "42P01", "relation does not exist") + pg.ready())
    conn.downstream(pg.parse("insert into t values ($1)", "s1") + pg.bind(statement="s1",
                    params=["1"]) + pg.describe() + pg.execute() + pg.sync())
    conn.upstream(pg.parse_complete() + pg.bind_complete() + pg.no_data()
                  + pg.notice("WARNING", "01000", "careful")
                  + pg.command_complete("INSERT 0 1") + pg.ready())
    conn.downstream(pg.query(""))
    conn.upstream(pg.empty_query() + pg.ready())
    conn.downstream(pg.terminate())
    conn.close()


def test_postgres_encoders_through_the_shared_decoder(tmp_path: Path):
    # The Lua runtime runs filters/protocols/postgres.c, the decoder every filter shares.
    host = load_filter(_copy(examples_dir() / "lua" / "pg-statements", tmp_path))
    _pg_conversation(host.connect())
    host.assert_no_traps()
    assert counters(host, "lua.pgstmt.") == {
        "statements.type=select": 1, "statements.type=insert": 1,
        "errors": 1, "errors_by_code.sqlstate=42P01": 1,
    }


def test_postgres_encoders_through_the_shipped_postgres_filter(tmp_path: Path):
    if not (filters_dir() / "postgres" / "wirelab.toml").is_file():
        pytest.skip("filters/postgres is not there yet")
    host = load_filter(_copy(filters_dir() / "postgres", tmp_path))
    _pg_conversation(host.connect())
    host.assert_no_traps()
    moved = counters(host, "postgres.postgres.")
    assert not [n for n in moved if "decoder_error" in n], moved
    assert (moved["statements_select"], moved["statements_insert"]) == (1, 1)
    assert moved["errors_by_class.class=42"] == 1
