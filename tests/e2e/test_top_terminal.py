"""`wirelab top` in a real terminal (tmux, 80×24): the numbers on screen are the
numbers Envoy's admin API gives, and the keys work.

Scenario: a lab with both filters (stat_prefix `tty`); top starts first, then
clients run known statements through Envoy and leave some connections open.
The pane is captured and parsed: sessions, each statement type's total, the
errors by SQLSTATE class / MySQL code must equal the admin API's counters and
gauges, and each p99 must equal (to the screen's three digits) Envoy's own
cumulative p99 of the same histogram, since the window holds every sample.
Then `p` pauses (the title says PAUSED) and `q` ends the program.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wirelab.harness import Lab
from wirelab.harness.state import write_state

pytestmark = pytest.mark.e2e

SESSION = f"wirelab-top-{os.getpid()}"


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def _pane() -> str:
    return _tmux("capture-pane", "-p", "-t", SESSION)


def _screen_until(ok: Callable[[str], bool], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = _pane()
        if ok(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.3)


def _panel(screen: str, title: str) -> list[str]:
    lines = screen.splitlines()
    start = next(i for i, ln in enumerate(lines) if title in ln)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("╰"))
    return [ln.strip("│ ") for ln in lines[start + 1:end]]


def _parse(panel: list[str]) -> dict:
    """{"sessions": n, "rows": {type: (total, p99 text)}, "errors": {code: n}}."""
    sessions = int(re.search(r"sessions (\d+)", panel[0]).group(1))
    rows = {}
    for line in panel[2:-1]:
        kind, _rate, total, _p50, p99 = line.split()
        rows[kind] = (int(total), p99)
    errors = {code: int(n) for code, n in re.findall(r"  (\w+):(\d+)", panel[-1])}
    return {"sessions": sessions, "rows": rows, "errors": errors}


def _us(text: str) -> float | None:
    m = re.fullmatch(r"([\d.]+)(µs|ms|s)", text)
    if not m:
        return None
    return float(m.group(1)) * {"µs": 1, "ms": 1e3, "s": 1e6}[m.group(2)]


def _three_digits(us: float) -> float:
    return float(f"{us:.3g}")


@pytest.fixture
def lab(build_bundled_filter: Callable[[str], Path]):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: apt-get install tmux")
    from wirelab.demo import mysql_available

    if not mysql_available():
        pytest.skip("MariaDB is not installed: apt-get install mariadb-server")
    # Project directories, not bare .wasm files: each filter on its own protocol's listener.
    filters = [build_bundled_filter(name).parent.parent for name in ("postgres", "mysql")]
    # Counters straight to Envoy: the screen and the admin API see the same moment.
    with Lab(postgres=True, mysql=True, filters=filters,
             filter_config={"stat_prefix": "tty", "metrics_flush_ms": 0}) as lab:
        yield lab


def test_top_shows_the_admin_api_numbers_and_obeys_its_keys(lab: Lab, tmp_path: Path) -> None:
    import psycopg
    import pymysql

    state = tmp_path / "lab.json"
    write_state(state, lab.state())
    env = f"PYTHONPATH={os.pathsep.join(sys.path)}"
    top = f"env {env} {sys.executable} -m wirelab top --state {state} --window 600"
    # The shell stays to say how top ended.
    command = f"sh -c '{top}; echo top-exited=$?; sleep 60'"
    _tmux("new-session", "-d", "-s", SESSION, "-x", "80", "-y", "24", command)
    try:
        first = _screen_until(lambda s: "PostgreSQL stat_prefix=tty" in s)
        assert "MySQL stat_prefix=tty" in first, first

        held_pg = [psycopg.connect(**lab.pg_conninfo(), autocommit=True) for _ in range(3)]
        held_my = [pymysql.connect(**lab.mysql_kwargs(), autocommit=True) for _ in range(2)]
        pg, my = held_pg[0], held_my[0].cursor()
        pg.execute("CREATE TABLE t (id int PRIMARY KEY)")
        for i in range(12):
            pg.execute("SELECT pg_sleep(0.002 * %s)", (i % 4,))
        for i in range(5):
            pg.execute("INSERT INTO t VALUES (%s)", (i,))
        for sql in ("SELECT * FROM missing", "SELECT * FROM missing2", "SELECT 1/0"):
            with pytest.raises(psycopg.Error):
                pg.execute(sql)
        for _ in range(7):
            my.execute("SELECT SLEEP(0.003)")
        for _ in range(4):
            with pytest.raises(pymysql.Error):
                my.execute("SELECT * FROM missing")

        def settled(snap) -> bool:
            return (snap.value("postgres.tty.errors") == 3
                    and snap.value("postgres.tty.statement_latency_us.type=select") == 15
                    and snap.value("mysql.tty.statement_duration_us.verb=select") == 11)

        snap = lab.stats.wait_until(settled)
        assert settled(snap)
        pg_want = {
            "sessions": snap.gauge("postgres.tty.sessions_active"),
            "select": snap.counter("postgres.tty.statements_select"),
            "insert": snap.counter("postgres.tty.statements_insert"),
            "errors": {"42": snap.counter("postgres.tty.errors_by_class.class=42"),
                       "22": snap.counter("postgres.tty.errors_by_class.class=22")},
            "p99": snap.histogram("postgres.tty.statement_latency_us.type=select").quantiles[99.0],
        }
        my_want = {
            "sessions": snap.gauge("mysql.tty.sessions_active"),
            "select": snap.counter("mysql.tty.statements.verb=select"),
            "errors": {"1146": snap.counter("mysql.tty.errors.code=1146")},
            "p99": snap.histogram("mysql.tty.statement_duration_us.verb=select").quantiles[99.0],
        }
        # The server's own view of the same traffic, as a sanity anchor.
        assert (pg_want["sessions"], my_want["sessions"]) == (3, 2)
        assert (pg_want["select"], pg_want["insert"], my_want["select"]) == (12, 5, 11)
        assert pg_want["errors"] == {"42": 2, "22": 1} and my_want["errors"] == {"1146": 4}

        def shows_all(s: str) -> bool:
            try:
                p = _parse(_panel(s, "PostgreSQL stat_prefix=tty"))
                m = _parse(_panel(s, "MySQL stat_prefix=tty"))
            except (StopIteration, AttributeError, ValueError):
                return False
            return (p["rows"].get("select", (0,))[0] == pg_want["select"]
                    and m["rows"].get("select", (0,))[0] == my_want["select"]
                    and p["sessions"] == 3 and m["sessions"] == 2)

        screen = _screen_until(shows_all)
        pg_seen = _parse(_panel(screen, "PostgreSQL stat_prefix=tty"))
        my_seen = _parse(_panel(screen, "MySQL stat_prefix=tty"))
        assert pg_seen["sessions"] == pg_want["sessions"], screen
        assert pg_seen["rows"]["select"][0] == pg_want["select"], screen
        assert pg_seen["rows"]["insert"][0] == pg_want["insert"], screen
        assert pg_seen["errors"] == pg_want["errors"], screen
        assert _us(pg_seen["rows"]["select"][1]) == _three_digits(pg_want["p99"]), screen
        assert my_seen["sessions"] == my_want["sessions"], screen
        assert my_seen["rows"]["select"][0] == my_want["select"], screen
        assert my_seen["errors"] == my_want["errors"], screen
        assert _us(my_seen["rows"]["select"][1]) == _three_digits(my_want["p99"]), screen

        _tmux("send-keys", "-t", SESSION, "p")
        paused = _screen_until(lambda s: "PAUSED" in s.splitlines()[0])
        assert "PAUSED" in paused.splitlines()[0], paused
        _tmux("send-keys", "-t", SESSION, "q")
        ended = _screen_until(lambda s: "top-exited=" in s, timeout=10)
        assert "top-exited=0" in ended, ended
        for conn in held_pg + held_my:
            conn.close()
    finally:
        subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)
