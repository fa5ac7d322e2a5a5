"""`wirelab demo`, as `make demo` runs it on a machine without a terminal, and the
detached lab with `--prometheus`.

Scenario (demo): a 16 s demo with --no-dashboard --json through a pipe. Every phase
is announced on stderr and recorded in the figures; what the filters counted equals
what the clients did: the PostgreSQL SELECTs and each MySQL verb the client sent,
every slow statement the client completed, and every error by SQLSTATE class /
MySQL code the client received; all sessions closed at the end; Prometheus ran.

Scenario (up): `wirelab up --prometheus --state F` writes the Prometheus URL into
the state file, that Prometheus scrapes Envoy (its target is up), `wirelab doctor`
lists Prometheus, and `wirelab down` stops it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import psutil
import pytest

pytestmark = pytest.mark.e2e

WIRELAB = [sys.executable, "-m", "wirelab"]


def _need(prometheus: bool = True) -> None:
    from wirelab.demo import mysql_available
    from wirelab.prometheus import find_prometheus

    if prometheus and find_prometheus() is None:
        pytest.skip("Prometheus is not installed: apt-get install prometheus")
    if not mysql_available():
        pytest.skip("MariaDB is not installed: apt-get install mariadb-server")


def test_the_demo_without_a_terminal_tells_its_story_and_its_figures_add_up(tmp_path) -> None:
    _need()
    proc = subprocess.run([*WIRELAB, "demo", "--duration", "16", "--no-dashboard", "--json"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout)
    said = " ".join(proc.stderr.split())
    for phase in ("steady", "slow", "migration", "storm"):
        assert f"> phase {phase}:" in said
    assert [p["phase"] for p in figures["phases"]] == ["steady", "slow", "migration", "storm"]
    assert figures["prometheus"].startswith("http://127.0.0.1:")

    pg, my = figures["filters"]["postgres/demo"], figures["filters"]["mysql/demo"]
    pg_client, my_client = figures["clients"]["postgres"], figures["clients"]["mysql"]
    # PostgreSQL counts a SELECT when it completes; the client's failed SELECTs are
    # the migration's, which has none, so every SELECT sent completed.
    assert pg["statements"]["select"] == pg_client["statements"]["select"]
    # MySQL counts every statement it runs by verb, failed or not (the set-up
    # created the tables with one INSERT ... SELECT before the client began counting).
    assert my["statements"]["select"] == my_client["statements"]["select"]
    assert my["statements"]["update"] == my_client["statements"]["update"]
    assert my["statements"]["insert"] == my_client["statements"]["insert"] + 1
    assert my["statements"]["begin"] == my_client["statements"]["begin"]
    assert my["statements"]["commit"] == my_client["statements"]["commit"]
    # Slow statements: each sleeps 300 ms, past the demo's 200 ms threshold.
    assert pg["slow_statements"] == pg_client["slow_statements"] > 0
    assert my["slow_statements"] == my_client["slow_statements"] > 0
    # The bad migration's errors, by class and by code.
    by_class = Counter()
    for sqlstate, n in pg_client["errors"].items():
        by_class[sqlstate[:2]] += n
    assert pg["errors"] == dict(by_class) and set(by_class) == {"42", "23", "22"}
    assert my["errors"] == my_client["errors"]
    assert set(my["errors"]) == {"1060", "1062", "1054", "1146"}
    # The storm opened many more sessions than the OLTP's four per database; all closed.
    assert pg_client["connections"] > 20 and my_client["connections"] > 20
    assert pg["sessions_active"] == 0 and my["sessions_active"] == 0
    # Percentiles are numbers from Envoy's buckets (their reading is checked against
    # Envoy's own in test_top_terminal.py), and ordered.
    for g in (pg, my):
        assert g["latency_us"]["select"]["p99"] >= g["latency_us"]["select"]["p50"] > 0


def test_up_with_prometheus_writes_its_url_and_down_stops_it(tmp_path) -> None:
    _need()
    from wirelab.prometheus import target_health

    state = tmp_path / "lab.json"
    up = subprocess.run([*WIRELAB, "up", "--postgres", "--prometheus", "--state", str(state)],
                        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert up.returncode == 0, up.stderr[-3000:]
    try:
        info = json.loads(state.read_text())
        url = info["prometheus"]
        assert url.startswith("http://127.0.0.1:")
        assert f"Prometheus         {url}" in up.stdout
        assert info["metrics"] == info["admin"] + "/stats/prometheus"
        deadline = time.monotonic() + 30
        while True:
            targets = target_health(url)
            if [t["health"] for t in targets] == ["up"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert [t["health"] for t in targets] == ["up"]
        assert targets[0]["scrapeUrl"] == info["metrics"]
        assert targets[0]["scrapeInterval"] == "1s"
        port = int(url.rsplit(":", 1)[1])
        owners = [c.pid for c in psutil.net_connections("tcp")
                  if c.laddr and c.laddr.port == port and c.status == "LISTEN"]
        assert owners, "nothing listens on the Prometheus port"
    finally:
        down = subprocess.run([*WIRELAB, "down", "--state", str(state)], capture_output=True,
                              text=True, timeout=120)
    assert down.returncode == 0, down.stderr
    assert all(not psutil.pid_exists(pid) for pid in owners)


def test_doctor_lists_prometheus() -> None:
    from wirelab.prometheus import find_prometheus

    proc = subprocess.run([*WIRELAB, "doctor", "--json"], capture_output=True, text=True,
                          timeout=120)
    rows = {c["name"]: c for c in json.loads(proc.stdout)}
    row = rows["Prometheus"]
    if find_prometheus() is None:
        assert (row["state"], row["install"]) == ("missing", "apt-get install prometheus")
    else:
        assert row["state"] == "found" and row["where"] == str(find_prometheus())
        version = subprocess.run([row["where"], "--version"], capture_output=True,
                                 text=True).stdout
        assert f"version {row['version']}" in version
