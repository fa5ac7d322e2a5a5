"""The MySQL decoder natively (gcc, AddressSanitizer + UBSan), through
tests/native/mysql/harness.c: the event stream must not depend on how reads
and fetch windows split the bytes, and no input may read out of bounds."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wirelab.conversation import Conversation
from wirelab.paths import protocols_dir

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "conversations" / "mysql"
HARNESS = ROOT / "tests" / "native" / "mysql" / "harness.c"
NAMES = ["cli", "pymysql_basic", "multi", "infile", "connector_prepared", "login_failure", "tls",
         "ed25519", "sysbench"]


def _build(out: Path, *defines: str) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed (apt-get install gcc)")
    subprocess.run([gcc, "-std=c11", "-Wall", "-Wextra", "-Werror", "-O1", "-g",
                    "-fsanitize=address,undefined", "-fno-sanitize-recover=all", *defines,
                    f"-I{protocols_dir()}", str(HARNESS), str(protocols_dir() / "mysql.c"),
                    "-o", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("mysql") / "harness")


@pytest.fixture(scope="module")
def byte_by_byte(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The decoder whose statement splitter takes every byte through its general path
    (no skipping of bytes that cannot change its state): the reference for the skip."""
    return _build(tmp_path_factory.mktemp("mysql") / "harness-bytes", "-DWL_MYSQL_SPLIT_NO_SKIP")


def stream(reads: list[tuple[int, str, bytes]]) -> bytes:
    out = bytearray()
    for conn, direction, data in reads:
        out += struct.pack("<BBI", conn, 0 if direction == "client" else 1, len(data)) + data
    return bytes(out)


def reads_of(name: str) -> list[tuple[int, str, bytes]]:
    conv = Conversation.load(FIXTURES / f"{name}.jsonl")
    return [(e.conn, e.dir, e.data) for e in conv.events if e.ev == "data"]


Reads = list[tuple[int, str, bytes]]


def split(reads: Reads, rng: random.Random | None) -> Reads:
    """One byte per read (rng None) or random read sizes."""
    out = []
    for conn, direction, data in reads:
        i = 0
        while i < len(data):
            n = 1 if rng is None else rng.randint(1, 64)
            out.append((conn, direction, data[i:i + n]))
            i += n
    return out


def events(harness: Path, reads: list[tuple[int, str, bytes]], max_fetch: int = 4096) -> str:
    r = subprocess.run([str(harness), str(max_fetch)], input=stream(reads), capture_output=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr.decode()[-2000:]
    return r.stdout.decode("utf-8", errors="replace")


@pytest.mark.parametrize("name", NAMES)
def test_events_do_not_depend_on_read_or_window_boundaries(harness: Path, name: str) -> None:
    reads = reads_of(name)
    base = events(harness, reads)
    assert "decoder_error" not in base and "protocol_error" not in base
    assert events(harness, reads, max_fetch=1) == base
    assert events(harness, reads, max_fetch=5) == base
    assert events(harness, split(reads, random.Random(name)), max_fetch=7) == base
    if name != "sysbench":
        assert events(harness, split(reads, None)) == base


def test_recorded_cli_session_decodes_as_expected(harness: Path) -> None:
    out = events(harness, reads_of("cli")).splitlines()
    assert out[1] == (
        "greeting version=5.5.5-10.11.19-MariaDB-0+deb12u1 plugin=mysql_native_password")
    assert out[2].startswith("login user=wirelab db=wirelab plugin=mysql_native_password")
    assert "command #8 cmd=query verb=select text=SELECT_*_FROM_missing_table" in out
    assert ("command_done #8 stmts=1 failed#0 verb=select outcome=1 results=0 rows=0 affected=0"
            " warn=0 err=1146 state=42S02" in out)
    assert ("result #0 stmt#0 verb=select end=1 call=0 rs=1 cols=2 rows=5 affected=0 warn=0"
            " status=0x22 cursor=0" in out)


def test_stored_procedure_results(harness: Path) -> None:
    out = events(harness, reads_of("multi")).splitlines()
    i = out.index("command #3 cmd=query verb=other text=CALL_three_results()")
    # one statement: the CALL's result sets belong to it until its final OK
    call = "result #3 stmt#0 verb=other"
    assert out[i + 1:i + 6] == [
        f"{call} end=0 call=1 rs=1 cols=1 rows=2 affected=0 warn=0 status=0x9 cursor=0",
        f"{call} end=0 call=1 rs=1 cols=2 rows=1 affected=0 warn=0 status=0x9 cursor=0",
        f"{call} end=0 call=1 rs=1 cols=1 rows=1 affected=0 warn=0 status=0x29 cursor=0",
        f"{call} end=1 call=1 rs=0 cols=0 rows=0 affected=1 warn=0 status=0x21 cursor=0",
        "command_done #3 stmts=1 outcome=0 results=4 rows=4 affected=1 warn=0",
    ]


def test_multi_statement_results_name_their_statement(harness: Path) -> None:
    out = events(harness, reads_of("multi")).splitlines()
    i = out.index("command #2 cmd=query verb=select text=SELECT_1;_SELECT_id_FROM_t_WHERE_id_<_3;"
                  "_UPDATE_t_SET_n_=_n_")
    assert [line.split(" rs=")[0] for line in out[i + 1:i + 5]] == [
        "result #2 stmt#0 verb=select end=1 call=0",
        "result #2 stmt#1 verb=select end=1 call=0",
        "result #2 stmt#2 verb=update end=1 call=0",
        "command_done #2 stmts=3 outcome=0 results=3 rows=3 affected=0 warn=0",
    ]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.just(0), st.sampled_from(["client", "server"]),
                          st.binary(max_size=200)), max_size=10))
def test_random_reads_stay_in_bounds(harness: Path, reads: list[tuple[int, str, bytes]]) -> None:
    events(harness, reads, max_fetch=13)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(NAMES[:-1]))
def test_mutated_recordings_stay_in_bounds(harness: Path, seed: int, name: str) -> None:
    rng = random.Random(seed)
    reads = []
    for conn, direction, data in reads_of(name):
        b = bytearray(data)
        for _ in range(rng.randint(0, 2)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        reads.append((conn, direction, bytes(b)))
    out = events(harness, reads, max_fetch=rng.randint(1, 64))
    assert out.startswith("-- conn 0")


def _login() -> Reads:
    from wirelab.testing import mysql as my

    return [(0, "server", my.greeting()), (0, "client", my.handshake_response("app", "shop")),
            (0, "server", my.ok(seq=2))]


def test_multi_statement_split_does_not_depend_on_boundaries(harness: Path) -> None:
    from wirelab.testing import mysql as my

    more = my.SERVER_STATUS_AUTOCOMMIT | my.SERVER_MORE_RESULTS_EXISTS
    sql = ("SELECT 'a;b' /* ; */, `c;d` FROM t; -- ;\nCREATE PROCEDURE p() BEGIN SELECT 1;"
           " CASE WHEN 1 THEN SELECT 2; END CASE; END; CALL p();"
           " DELETE FROM t WHERE v = \"x\\\";\"")
    reads = _login() + [
        (0, "client", my.com_query(sql)),
        (0, "server", my.answer(my.resultset(["a"], [["a;b"]], status=more), my.ok(status=more),
                                my.resultset(["1"], [["1"]], status=more), my.ok(status=more),
                                my.ok(affected_rows=2))),
    ]
    base = events(harness, reads)
    verbs = [line.split(" rs=")[0].split(" ", 2)[2] for line in base.splitlines()
             if line.startswith("result")]
    assert verbs == ["stmt#0 verb=select end=1 call=0", "stmt#1 verb=other end=1 call=0",
                     "stmt#2 verb=other end=0 call=1", "stmt#2 verb=other end=1 call=1",
                     "stmt#3 verb=delete end=1 call=0"]
    assert events(harness, split(reads, None), max_fetch=3) == base
    assert events(harness, split(reads, random.Random(7)), max_fetch=11) == base


def test_pipeline_past_the_cap_recovers_without_leaks(harness: Path) -> None:
    # 70,000 commands that cannot share a run: 65,536 followed, 4,464 unattributed,
    # then the next command is followed again (ASan checks the growable storage)
    from wirelab.testing import mysql as my

    n = 70_000
    reads = _login() + [
        (0, "client", (my.com_ping() + my.com_query("SELECT 1")) * (n // 2)),
        (0, "server", (my.ok() + my.resultset(["1"], [["1"]])) * (n // 2)),
        (0, "client", my.com_query("DELETE FROM t")),
        (0, "server", my.ok(affected_rows=4)),
    ]
    out = events(harness, reads).splitlines()
    assert sum(" unattributed" in line for line in out) == n - 65536
    assert sum(line.startswith("command_done") for line in out) == 65536 + 1
    assert "decoder_error" not in "\n".join(out) and "protocol_error" not in "\n".join(out)
    assert out[-2] == ("command_done #70000 stmts=1 outcome=0 results=1 rows=0 affected=4 warn=0")


def test_long_multi_statement_split_past_the_head(harness: Path) -> None:
    # statements far past the 512-byte head: values with ';' in strings, identifiers that
    # contain END / CASE / BEGIN, a procedure body, all cut at every read/window boundary
    from wirelab.testing import mysql as my

    more = my.SERVER_STATUS_AUTOCOMMIT | my.SERVER_MORE_RESULTS_EXISTS
    values = ",".join(f"({i}, 'legend;{i}', -{i}.5, NULL, `xend`)" for i in range(60))
    body = " ".join(f"SET @legend{i} = 'a;b'; SELECT CASE WHEN 1 THEN {i} END;" for i in range(20))
    sql = (f"INSERT INTO t VALUES {values}; UPDATE t SET v = 1 WHERE name = 'weekend';"
           f" CREATE PROCEDURE p() BEGIN {body} IF 1 THEN SET @x = 1; END IF; END;"
           f" DELETE FROM t WHERE backend = 1")
    reads = _login() + [
        (0, "client", my.com_query(sql)),
        (0, "server", my.answer(my.ok(affected_rows=60, status=more), my.ok(status=more),
                                my.ok(status=more), my.ok(affected_rows=1))),
    ]
    base = events(harness, reads)
    verbs = [line.split(" rs=")[0].split(" ", 2)[2] for line in base.splitlines()
             if line.startswith("result")]
    assert verbs == ["stmt#0 verb=insert end=1 call=0", "stmt#1 verb=update end=1 call=0",
                     "stmt#2 verb=other end=1 call=0", "stmt#3 verb=delete end=1 call=0"]
    assert events(harness, split(reads, None), max_fetch=5) == base
    for seed in range(5):
        assert events(harness, split(reads, random.Random(seed)), max_fetch=1 + seed * 13) == base


# Pieces of SQL that steer the statement splitter: keywords that open or close bodies
# (in either case, and inside longer words), quotes with escapes and ';', comments of
# every kind, operators that start comments only when doubled, bytes >= 0x80.
SPLIT_TOKENS = [
    "SELECT", "insert", "UPDATE", "delete", "BEGIN", "begin", "END", "end", "Case", "CASE",
    "IF", "loop", "NOT", "xa", "CALL", "becase", "endless", "casebegin", "e", "b", "c", "E",
    "abc", "x1", "_b", "$e", "'str;'", "'it\\'s'", "'a''b'", "'a\\';b'", "'tail\\\\'",
    '"dq;"', '"q\\"e"',
    "`bq;`", "`b``q`", "-- c;\n", "--x", "# h;\n", "/* b; */", "/*!100 x */", "/*M!100 y */",
    "*", "*/", "-", "/", ";", " ", "\n", "\t", "(", ")", ",", "1", "-2", "@v", "\u00e9t\u00e9",
    "x" * 50, "'" + "y;" * 30 + "'", "/* " + "z" * 40 + " */",
    # a statement end, then a next statement whose head is already full
    "; UPDATE " + "t, " * 20, "; SELECT " + "'" + "v" * 45 + "' ",
]
# the ones that change the splitter's state, drawn more often
SPLIT_TOKENS += ["BEGIN", "END", "CASE", "end", ";", "'it\\'s'", "-- c;\n", "/* b; */"] * 3


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(SPLIT_TOKENS), min_size=10, max_size=80),
       st.lists(st.sampled_from(["", " ", "\n"]), min_size=80, max_size=80))
def test_split_skip_finds_what_the_byte_by_byte_splitter_finds(
        harness: Path, byte_by_byte: Path, tokens: list[str], gaps: list[str]) -> None:
    # The splitter skips runs of bytes that cannot change its state (several words
    # at a time); the reference build takes each byte through its general path. Both
    # must find the same statements with the same verbs, at any window size.
    from wirelab.testing import mysql as my

    head = "SELECT " + ", ".join(f"col{i}" for i in range(12)) + " "  # fills the 48-byte head
    sql = head + "".join(t + g for t, g in zip(tokens, gaps, strict=False))
    probe = _login() + [(0, "client", my.com_query(sql)), (0, "server", my.err(1146, "42S02"))]
    done = [line for line in events(harness, probe).splitlines() if line.startswith("command_done")]
    n = int(done[0].split(" stmts=")[1].split()[0])
    more = my.SERVER_STATUS_AUTOCOMMIT | my.SERVER_MORE_RESULTS_EXISTS
    answers = [my.ok(status=more) for _ in range(n - 1)] + [my.ok()]
    reads = _login() + [(0, "client", my.com_query(sql)), (0, "server", my.answer(*answers))]
    base = events(byte_by_byte, reads)
    assert "protocol_error" not in base and "decoder_error" not in base
    for max_fetch in (4096, 1, 7):
        assert events(harness, reads, max_fetch=max_fetch) == base
