"""The harness as users drive it: a Lab, real clients through Envoy, up/down, cleanup."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from wirelab.envoy import validate_config
from wirelab.harness import Lab

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BYTES_COUNTER = ROOT / "examples" / "bytes-counter"
WIRELAB = [sys.executable, "-m", "wirelab"]


def _need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install {package})")


def _gone(pids: list[int], timeout: float = 15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    alive = pids
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            break
        time.sleep(0.2)
    return alive


def test_every_client_through_envoy_is_one_counted_connection(wirelab_lab):
    """psql, psycopg, asyncpg, pymysql and the mariadb CLI each open one
    connection through Envoy; the filter counts exactly five, and its byte
    counters equal tcp_proxy's own accounting on both listeners."""
    _need("psql", "postgresql-client")
    _need("mariadb", "mariadb-client")
    import asyncpg
    import psycopg
    import pymysql

    lab = wirelab_lab(postgres=True, mysql=True, filters=[BYTES_COUNTER],
                      filter_config={"stat_prefix": "harness"})

    out = subprocess.run(["psql", "-X", "-At", "-c", "select 40 + 2"], env=lab.pg_env(),
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "42"
    with psycopg.connect(**lab.pg_conninfo()) as conn:
        assert conn.execute("select 'psycopg'").fetchone() == ("psycopg",)

    async def via_asyncpg() -> str:
        conn = await asyncpg.connect(**lab.pg_conninfo(driver="asyncpg"))
        try:
            return await conn.fetchval("select 'asyncpg'")
        finally:
            await conn.close()

    assert asyncio.run(via_asyncpg()) == "asyncpg"
    with pymysql.connect(**lab.mysql_kwargs()) as conn, conn.cursor() as cur:
        cur.execute("select 'pymysql'")
        assert cur.fetchone() == ("pymysql",)
    out = subprocess.run(["mariadb", *lab.mysql_cli_args(), "-N", "-e", "select 6 * 7"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "42"

    lab.stats.wait_for("tcp.harness.connections_total", 5)
    lab.stats.wait_for("tcp.harness.connections_active", 0)

    def totals(snap) -> tuple[tuple[int, int], tuple[int, int]]:
        listeners = ("postgres", "mysql")
        rx = sum(snap.counter(f"tcp.{n}.downstream_cx_rx_bytes_total") for n in listeners)
        tx = sum(snap.counter(f"tcp.{n}.downstream_cx_tx_bytes_total") for n in listeners)
        mine = (snap.counter("tcp.harness.bytes_total.direction=client"),
                snap.counter("tcp.harness.bytes_total.direction=server"))
        return mine, (rx, tx)

    # Envoy accounts a write when the socket takes it, the filter when Envoy hands
    # it over: right after a close the two can be a flush apart, never more.
    snap = lab.stats.wait_until(lambda s: totals(s)[0] == totals(s)[1])
    mine, envoys = totals(snap)
    assert mine == envoys
    assert snap.counter("tcp.postgres.downstream_cx_total") == 3
    assert snap.counter("tcp.mysql.downstream_cx_total") == 2


def test_direct_ports_bypass_envoy(wirelab_lab):
    """Connections to the direct port never reach the filter."""
    import psycopg

    lab = wirelab_lab(postgres=True, filters=[BYTES_COUNTER],
                      filter_config={"stat_prefix": "direct"})
    with psycopg.connect(**lab.pg_conninfo(direct=True)) as conn:
        conn.execute("select 1")
    with psycopg.connect(**lab.pg_conninfo()) as conn:
        conn.execute("select 1")
    lab.stats.wait_for("tcp.direct.connections_total", 1)
    assert lab.stats.counter("tcp.postgres.downstream_cx_total") == 1


def test_up_with_state_then_down_from_a_shell_script(tmp_path):
    """`wirelab up --state` detaches with a 0600 state file; psql connects with
    what it holds; `wirelab down` leaves no process and no file behind."""
    _need("psql", "postgresql-client")
    state = tmp_path / "lab.json"
    script = tmp_path / "lab.sh"
    read_field = "import json,sys; print(json.load(sys.stdin)['servers']['postgres'][sys.argv[1]])"
    script.write_text(textwrap.dedent(f"""\
        set -euo pipefail
        {' '.join(WIRELAB)} up --postgres --filter {BYTES_COUNTER} --state {state}
        stat -c %a {state} > {tmp_path}/mode
        cp {state} {tmp_path}/copy.json
        pg() {{ python3 -c "{read_field}" "$1" < {state}; }}
        port=$(pg port)
        pw=$(pg password)
        PGPASSWORD=$pw psql -X -At -h 127.0.0.1 -p $port -U wirelab wirelab -c "select 'up'"
        {' '.join(WIRELAB)} stats --state {state} --format json --match connections_total
        {' '.join(WIRELAB)} stats --state {state} --format prom > {tmp_path}/prom
        {' '.join(WIRELAB)} stats --state {state} --format prom --all > {tmp_path}/prom-all
        {' '.join(WIRELAB)} down --state {state}
        {' '.join(WIRELAB)} down --state {state} > {tmp_path}/second-down
        """))
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=240,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "up\n" in proc.stdout
    stats_json = proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1]
    assert json.loads(stats_json)["counters"] == {"tcp.bytes_counter.connections_total": 1}
    assert (tmp_path / "mode").read_text().strip() == "600"
    # Prometheus text shows the filter's series by default, like the table; --all adds Envoy's
    prom = [ln for ln in (tmp_path / "prom").read_text().splitlines() if not ln.startswith("#")]
    assert 'tcp_connections_total{stat_prefix="bytes_counter"} 1' in prom
    assert [ln for ln in prom if ln.startswith("envoy_")] == []
    everything = (tmp_path / "prom-all").read_text().splitlines()
    assert 'tcp_connections_total{stat_prefix="bytes_counter"} 1' in everything
    assert len([ln for ln in everything if ln.startswith("envoy_")]) > 100
    info = json.loads((tmp_path / "copy.json").read_text())
    assert set(info["servers"]["postgres"]) >= {"host", "port", "direct_port", "user",
                                                "password", "database"}
    assert info["admin"].startswith("http://127.0.0.1:")
    assert not state.exists()
    assert _gone([p for p in info["pids"].values() if p]) == []
    # `down` is idempotent: a second one succeeds (set -e above) and says so
    assert (tmp_path / "second-down").read_text() == (
        f"no lab was running with state file {state}; nothing to stop\n")


def test_ctrl_c_on_a_foreground_lab_stops_everything(tmp_path):
    proc = subprocess.Popen([*WIRELAB, "up", "--postgres"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    lines = []
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "Prometheus" in line or not line:
            break
    assert any("psql via Envoy" in ln for ln in lines), "".join(lines)
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    assert children, "the lab should have started servers and Envoy"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 0
    assert _gone(children) == []


def test_a_failing_test_stops_its_lab_and_reports_envoy_and_stats(pytester, tmp_path):
    """A test that fails inside a lab: its report carries the Envoy log tail and
    the stats delta, and every process of the lab is gone afterwards."""
    pidfile = tmp_path / "pids.json"
    pytester.makepyfile(f"""
        import json
        import psycopg

        def test_fails(wirelab_lab):
            lab = wirelab_lab(postgres=True, filters=[{str(BYTES_COUNTER)!r}])
            with psycopg.connect(**lab.pg_conninfo()) as conn:
                conn.execute("select 1")
            lab.stats.wait_for("tcp.bytes_counter.connections_total", 1)
            with open({str(pidfile)!r}, "w") as fh:
                json.dump([p for p in lab.state()["pids"].values() if p], fh)
            assert lab.stats.counter("tcp.bytes_counter.connections_total") == 99
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "wirelab Envoy log tail" in text
    assert "wirelab stats delta" in text
    assert '"tcp.bytes_counter.connections_total": 1' in text
    # short: no startup inventory of Envoy's extensions, no admin API bookkeeping
    assert "envoy.wasm.runtime:" not in text
    assert "http.admin." not in text and "wasmcustom." not in text
    pids = json.loads(pidfile.read_text())
    assert len(pids) == 2
    assert _gone(pids) == []


LUA_CALLBACK_ERROR = """\
local seen = wirelab.counter("connections_total")
function envoy_on_new_connection(conn)
  seen:inc()
  local broken = nil
  broken.field = 1
end
"""


def test_a_lua_error_in_envoy_is_in_the_failure_report_and_in_stats(pytester, tmp_path):
    """A Lua callback error inside real Envoy: the failing test's report and
    `wirelab stats` both show the message with file and line."""
    from wirelab.scaffold import create_project

    root = create_project("luaboom", "lua", "tcp", tmp_path)
    (root / "filter.lua").write_text(LUA_CALLBACK_ERROR)
    pytester.makepyfile(f"""
        import psycopg

        def test_fails(wirelab_lab):
            lab = wirelab_lab(postgres=True, filters=[{str(root)!r}])
            with psycopg.connect(**lab.pg_conninfo()) as conn:
                conn.execute("select 1")
            lab.stats.wait_for("lua.luaboom.script_errors", 1)
            assert False, "look at the report"
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=240)
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    assert "wirelab filter errors in Envoy" in text
    assert re.search(r"lua error in envoy_on_new_connection on connection \d+: filter\.lua:5: "
                     r"attempt to index a nil value \(local 'broken'\) \(error #1\)", text), text

    state = tmp_path / "lab.json"
    up = subprocess.run([*WIRELAB, "up", "--postgres", "--filter", str(root), "--state",
                         str(state)], capture_output=True, text=True, timeout=240)
    assert up.returncode == 0, up.stderr
    try:
        pg = json.loads(state.read_text())["servers"]["postgres"]
        import psycopg

        with psycopg.connect(host=pg["host"], port=pg["port"], user=pg["user"],
                             password=pg["password"], dbname=pg["database"]) as conn:
            conn.execute("select 1")
        time.sleep(1.5)  # the error reaches Envoy's log file (flushed every 100 ms)
        stats = subprocess.run([*WIRELAB, "stats", "--state", str(state)],
                               capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run([*WIRELAB, "down", "--state", str(state)], timeout=120)
    assert stats.returncode == 0, stats.stderr
    assert re.search(r"  lua error in envoy_on_new_connection on connection \d+: filter\.lua:5: "
                     r"attempt to index a nil value \(local 'broken'\) \(error #1\)\n",
                     stats.stderr), stats.stderr


def test_a_foreground_lab_prints_lua_errors_as_they_happen(tmp_path):
    import psycopg

    from wirelab.scaffold import create_project

    root = create_project("luaboom", "lua", "tcp", tmp_path)
    (root / "filter.lua").write_text(LUA_CALLBACK_ERROR)
    proc = subprocess.Popen([*WIRELAB, "up", "--postgres", "--filter", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=tmp_path, env={**os.environ, "COLUMNS": "400"})  # no wrapping
    assert proc.stdout is not None
    try:
        lines = []
        while not any("Prometheus" in ln for ln in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        dsn = next(ln for ln in lines if "psql via Envoy" in ln).split("'")[1]
        with psycopg.connect(dsn) as conn:
            conn.execute("select 1")
        line = proc.stdout.readline()  # printed within a second or two
        assert re.fullmatch(r"filter error: lua error in envoy_on_new_connection on connection "
                            r"\d+: filter\.lua:5: attempt to index a nil value \(local 'broken'\) "
                            r"\(error #1\)\n", line), line
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)


def test_config_prints_yaml_that_envoy_accepts():
    proc = subprocess.run([*WIRELAB, "config", str(BYTES_COUNTER), "--upstream",
                           "127.0.0.1:5432"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    yaml_text = proc.stdout
    assert "envoy.filters.network.wasm" in yaml_text
    assert "failure_policy: FAIL_OPEN" in yaml_text
    admin = "admin:\n  address:\n    socket_address: {address: 127.0.0.1, port_value: 0}\n"
    validate_config(admin + yaml_text)


def test_config_bootstrap_is_a_complete_configuration_envoy_accepts_as_is():
    proc = subprocess.run([*WIRELAB, "config", str(BYTES_COUNTER), "--upstream",
                           "127.0.0.1:5432", "--bootstrap", "--admin-port", "19901"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    yaml_text = proc.stdout
    assert "socket_address: {address: 127.0.0.1, port_value: 19901}" in yaml_text
    assert "envoy.filters.network.wasm" in yaml_text and "stats_tags:" in yaml_text
    validate_config(yaml_text)  # envoy --mode validate -c, nothing added


def test_user_mistakes_are_one_line_errors(tmp_path):
    cases = [
        ([*WIRELAB, "stats"], "--admin URL or --state FILE"),
        ([*WIRELAB, "config", str(BYTES_COUNTER), "--upstream", "nohostport"],
         "is not HOST:PORT"),
        ([*WIRELAB, "config", str(tmp_path)], "wirelab.toml is missing"),
        ([*WIRELAB, "up", "--postgres", "--filter", str(tmp_path), "--state",
          str(tmp_path / "s.json")], "wirelab.toml is missing"),
    ]
    for cmd, expected in cases:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        assert expected in proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_state_file_mode_is_0600(tmp_path):
    from wirelab.harness.state import write_state

    path = tmp_path / "s.json"
    old = os.umask(0)
    try:
        write_state(path, {"admin": "x"})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_lab_without_servers_is_refused():
    from wirelab.errors import WirelabError

    with pytest.raises(WirelabError, match="at least one server"):
        Lab()
