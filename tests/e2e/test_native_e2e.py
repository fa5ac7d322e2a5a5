"""The native target (an Envoy dynamic module built from the same C source)
in real Envoy 1.40.

Parity: every recorded postgres and mysql conversation, played through Envoy
by a scripted client and server, gives identical metrics from the Wasm build
and the native build of filters/<protocol> (counters and gauges exact,
histograms by sample count; Envoy measures real time).

Truth: pgbench through the native postgres filter on an Envoy with two
workers, with connections on both, gives the statement, row and session
counts PostgreSQL's own pg_stat_statements and pg_stat_database recorded.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from wirelab.build import build_project
from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec
from wirelab.harness.filters import plugin_config_for
from wirelab.parity import compare, run_in_envoy
from wirelab.paths import examples_dir, filters_dir
from wirelab.project import Project
from wirelab.testing import pgstats

pytestmark = pytest.mark.e2e

CONVERSATIONS = Path(__file__).resolve().parents[1] / "fixtures" / "conversations"


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Path, dict]]:
    """filters/<name> (or examples/lua/<x> as "lua/<x>") copied and built for both
    targets: (wasm, so, plugin config)."""
    made: dict[str, tuple[Path, Path, dict]] = {}

    def get(name: str) -> tuple[Path, Path, dict]:
        if name not in made:
            origin = examples_dir() / name if name.startswith("lua/") else filters_dir() / name
            src = tmp_path_factory.mktemp("native") / origin.name
            shutil.copytree(origin, src, ignore=shutil.ignore_patterns("build"))
            project = Project.load(src)
            wasm = build_project(project, target="wasm").wasm
            so = build_project(project, target="native").wasm
            made[name] = (wasm, so, plugin_config_for(project))
        return made[name]

    return get


CASES = [
    pytest.param(proto, conv, id=f"{proto}-{conv.stem}")
    for proto in ("postgres", "mysql")
    for conv in sorted((CONVERSATIONS / proto).glob("*.jsonl"))
]


@pytest.mark.parametrize(("protocol", "conversation"), CASES)
def test_wasm_and_native_builds_give_identical_metrics(builds, protocol: str,
                                                       conversation: Path) -> None:
    wasm, so, config = builds(protocol)
    from_wasm = run_in_envoy(wasm, conversation, config)
    from_native = run_in_envoy(so, conversation, config)
    assert from_wasm["counters"], "the conversation moved no counter"
    assert compare(from_wasm, from_native) == []


# The Lua examples and the conversations of their protocol. Envoy 1.40 freezes a
# dynamic module's metric definitions once config_new returns (define_* answers
# Frozen), so natively only metrics a script defines while loading exist: the
# examples that define tagged metrics on first use in a callback cannot match.
FROZEN = ("Envoy 1.40's dynamic-modules ABI refuses metric definitions after config_new "
          "(Frozen): metrics a script defines on first use do not exist natively")
LUA_CASES = [
    pytest.param("lua/tcp-bytes", conv, id=f"tcp-bytes-{proto}-{conv.stem}")
    for proto in ("postgres", "mysql")
    for conv in sorted((CONVERSATIONS / proto).glob("*.jsonl"))
] + [
    pytest.param(example, CONVERSATIONS / conv, id=f"{example.split('/')[1]}-{conv[:-6]}",
                 marks=pytest.mark.xfail(strict=True, reason=FROZEN))
    for example, conv in (("lua/pg-statements", "postgres/pgbench_simple.jsonl"),
                          ("lua/pg-connections-per-user", "postgres/psql_simple.jsonl"),
                          ("lua/mysql-slow-queries", "mysql/cli.jsonl"))
]


@pytest.mark.parametrize(("example", "conversation"), LUA_CASES)
def test_lua_examples_give_identical_metrics_from_the_wasm_and_native_runtime(
        builds, example: str, conversation: Path) -> None:
    wasm, so, config = builds(example)
    from_wasm = run_in_envoy(wasm, conversation, config)
    from_native = run_in_envoy(so, conversation, config)
    assert from_wasm["counters"], "the conversation moved no counter"
    assert compare(from_wasm, from_native) == []


# ---------------------------------------------------------------- the Lua sandbox, natively

def _echo_one_read_each(port: int, payloads: tuple[bytes, ...]) -> None:
    """Sends each payload on one connection and waits for its echo before the
    next, so each is one read for the filter; every byte must come back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        for payload in payloads:
            c.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += c.recv(65536)
            assert got == payload


RUNAWAY = """\
local calls = wirelab.counter("calls")
local ok = wirelab.counter("ok")
function envoy_on_downstream_data(conn, data, eos)
  calls:inc()
  local n = data:length()
  if n == 1 then
    while true do end
  elseif n == 2 then
    while true do pcall(function() while true do end end) end
  elseif n == 3 then
    local t = {}
    for i = 1, 10000000 do t[i] = string.rep("x", 64) .. i end
  end
  ok:inc()
end
"""


def test_runaway_lua_scripts_are_stopped_natively_and_traffic_flows(tmp_path: Path,
                                                                   echo_server) -> None:
    """An endless loop, an endless pcall loop and a memory bomb in the native
    runtime: each aborts its callback only (budget_exceeded 2, memory_exceeded 1),
    every byte is echoed back unchanged, Envoy keeps serving."""
    project_dir = tmp_path / "runaway"
    project_dir.mkdir()
    (project_dir / "filter.lua").write_text(RUNAWAY)
    (project_dir / "wirelab.toml").write_text(
        'name = "runaway"\nlanguage = "lua"\nprotocol = "tcp"\nscript = "filter.lua"\n'
        'targets = ["native"]\n[config]\nstat_prefix = "t"\nmetrics_flush_ms = 0\n'
        '[config.limits]\ninstructions = 2000000\nmemory_kb = 2048\n')
    project = Project.load(project_dir)
    so = build_project(project, target="native").wasm
    assert so == project_dir / "build" / "librunaway.so"
    spec = FilterSpec("runaway", so, plugin_config_for(project), target="native")
    with EnvoyProcess([ListenerSpec("echo", echo_server.address, [spec])]) as envoy:
        _echo_one_read_each(envoy.port("echo"), (b"a", b"bb", b"ccc", b"dddd"))
        # four reads, then the client's end of stream: a fifth, empty one
        envoy.stats.wait_for("lua.t.calls", 5)
        snap = envoy.stats.snapshot()
        assert snap.counter("lua.t.budget_exceeded") == 2
        assert snap.counter("lua.t.memory_exceeded") == 1
        assert snap.counter("lua.t.script_errors") == 3
        assert snap.counter("lua.t.ok") == 2
        # One connection, three errors: only its first is logged (API.md, "Errors"),
        # the others are counted above.
        line = "instruction budget exceeded (2000000 instructions)"
        deadline = time.monotonic() + 10  # Envoy's log reaches its file a bit later
        while line not in envoy.log_tail() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = envoy.log_tail(10_000)
        assert line in log
        assert "(error #1)" in log and "(error #2)" not in log and "(error #3)" not in log
        assert "not enough memory" not in log


LATE_METRIC = """
local reads = wirelab.counter("reads")
function envoy_on_downstream_data(conn, buf, eos)
  reads:inc()
  if buf:length() > 0 then wirelab.counter("late"):inc() end
end
"""


def test_a_native_lua_metric_made_in_a_callback_is_refused_and_counted(tmp_path, echo_server):
    """Natively, Envoy 1.40 takes metric definitions only while the configuration
    loads: a metric the script makes in a callback is refused with the reason
    logged, the callback's error is counted in script_errors, the metrics made
    at load keep counting, and every byte still goes through."""
    project_dir = tmp_path / "late"
    project_dir.mkdir()
    (project_dir / "filter.lua").write_text(LATE_METRIC)
    (project_dir / "wirelab.toml").write_text(
        'name = "late"\nlanguage = "lua"\nprotocol = "tcp"\nscript = "filter.lua"\n'
        'targets = ["native"]\n[config]\nstat_prefix = "t"\nmetrics_flush_ms = 0\n')
    project = Project.load(project_dir)
    spec = FilterSpec("late", build_project(project, target="native").wasm,
                      plugin_config_for(project), target="native")
    with EnvoyProcess([ListenerSpec("echo", echo_server.address, [spec])]) as envoy:
        _echo_one_read_each(envoy.port("echo"), (b"one", b"two"))
        envoy.stats.wait_for("lua.t.reads", 3)  # two reads and the end of stream
        snap = envoy.stats.snapshot()
        assert snap.counter("lua.t.script_errors") == 2
        assert "lua.t.late" not in snap.counters
        line = "Envoy refused metric lua.t.late: a native module defines metrics only while"
        deadline = time.monotonic() + 10  # Envoy's log reaches its file a bit later
        while line not in envoy.log_tail(10_000) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert line in envoy.log_tail(10_000)


# ---------------------------------------------------------------- truth: pgbench, two workers


def _server():
    servers = pytest.importorskip("wirelab.servers", reason="wirelab.servers is not available")
    try:
        return servers.PostgresServer()
    except servers.ServerError as exc:
        pytest.skip(f"no PostgreSQL: {exc}")


@pytest.mark.parametrize("mode", ["simple", "prepared"])
def test_pgbench_through_the_native_filter_on_two_workers_matches_postgres(
        builds, pgbench_tables, mode: str):
    pytest.importorskip("psycopg", reason="psycopg is absent: pip install 'psycopg[binary]'")
    _, so, _ = builds("postgres")
    with _server() as pg:
        env = pgbench_tables(pg)
        spec = FilterSpec("postgres", so, {"stat_prefix": mode}, target="native")
        listeners = [ListenerSpec("pg", (pg.host, pg.port), [spec])]
        with EnvoyProcess(listeners, concurrency=2) as envoy:
            pgstats.reset_statements(pg)
            logins = pgstats.Sessions(pg)
            proxied = {**env, "PGPORT": str(envoy.port("pg"))}
            # 8 clients, connected at once: the kernel spreads them over both workers
            subprocess.run(["pgbench", "-n", "-c", "8", "-j", "4", "-t", "25", "-M", mode],
                           env=proxied, check=True, capture_output=True, timeout=300)
            sessions = logins.since(expected=9)
            truth = pgstats.statements(pg)
            envoy.stats.wait_for(f"postgres.{mode}.sessions_active", 0)
            snap = envoy.stats.snapshot()
            port = envoy.port("pg")
            per_worker = [snap.counters.get(f"listener.127.0.0.1_{port}.worker_{w}"
                                            ".downstream_cx_total", 0) for w in (0, 1)]

            def c(name: str) -> int:
                return snap.counter(f"postgres.{mode}.{name}")

            assert sum(per_worker) == 9 and min(per_worker) >= 1, per_worker
            # 8 clients x 25 TPC-B transactions of 7 statements, plus pgbench's 2 setup SELECTs
            assert c("statements") == 8 * 25 * 7 + 2
            assert c("statements") - c("statements_other") == truth.dml_calls == 8 * 25 * 5 + 2
            assert c("statements_update") == 8 * 25 * 3
            assert c("statements_insert") == 8 * 25
            # one row per SELECT: each transaction's balance, pgbench's 2 setup queries
            assert c("rows_returned") == truth.rows_selected == 8 * 25 + 2
            assert c("decoder_errors") == 0 and c("errors") == 0
            assert c("sessions") == sessions == 9
            envoy.stats.wait_for(f"postgres.{mode}.transaction_latency_us", 8 * 25)


# ---------------------------------------------------------------- Prometheus: the same series


def _filter_series(rig) -> dict[tuple[str, tuple[tuple[str, str], ...]], float | None]:
    """The filter's series in /stats/prometheus: (name, labels) -> value; a
    histogram's _sum and _bucket values are Envoy's clock, so only the key counts."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float | None] = {}
    for s in rig.envoy.stats.prometheus():
        if s.name.startswith("envoy_") and not s.name.startswith("envoy_wasmcustom"):
            continue  # Envoy's own stats (listener, cluster, server)
        timed = s.name.endswith(("_sum", "_bucket"))
        out[(s.name, tuple(sorted(s.labels.items())))] = None if timed else s.value
    return out


@pytest.mark.parametrize(("protocol", "conversation"), [
    ("postgres", "errors_notices"), ("mysql", "multi")])
def test_prometheus_series_are_the_same_from_a_native_only_envoy(builds, protocol: str,
                                                                  conversation: str) -> None:
    """An Envoy running only native filters writes `<name>{stat_prefix=..,<tag>=..}`
    like one running Wasm: no `envoy_wasmcustom_` prefix, the same labels."""
    from wirelab.parity import EnvoyRig

    wasm, so, config = builds(protocol)
    path = CONVERSATIONS / protocol / f"{conversation}.jsonl"
    series = {}
    for artifact in (wasm, so):
        with EnvoyRig(artifact, config) as rig:
            rig.run(path)
            series[artifact.suffix] = _filter_series(rig)
    from_wasm, from_native = series[".wasm"], series[".so"]
    assert not [k for k in from_native if k[0].startswith("envoy_wasmcustom")]
    assert f"{protocol}_bytes" in {name for name, _ in from_wasm}
    assert any(dict(labels).keys() - {"stat_prefix"} for _, labels in from_wasm), \
        "no tag label in the Wasm build's series"
    assert from_native == from_wasm


def test_the_native_lua_runtime_runs_one_vm_per_worker(builds, echo_server) -> None:
    """tcp-bytes natively on Envoy --concurrency 2, connections on both workers
    talking at once: every connection and byte is counted once, by the VM of
    the worker that carries it."""
    _, so, config = builds("lua/tcp-bytes")
    spec = FilterSpec("tcpbytes", so, config, target="native")
    with EnvoyProcess([ListenerSpec("echo", echo_server.address, [spec])],
                      concurrency=2) as envoy:
        held = _open_on_both_workers(
            envoy, None, per_worker=3, listener="echo",
            connect=lambda port: socket.create_connection(("127.0.0.1", port), timeout=10))
        conns = held[0] + held[1]
        sent = 0
        for rnd in range(20):  # interleaved: both workers' VMs run at the same time
            for k, c in enumerate(conns):
                payload = bytes([65 + k]) * (100 + 37 * k + rnd)
                c.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    got += c.recv(65536)
                assert got == payload
                sent += len(payload)
        for c in conns:
            c.close()
        envoy.stats.wait_for("lua.tcpbytes.open_connections", 0)
        envoy.stats.wait_for("lua.tcpbytes.connection_bytes", len(conns))
        snap = envoy.stats.snapshot()
        assert snap.counter("lua.tcpbytes.connections") == len(conns)
        assert snap.counter("lua.tcpbytes.bytes.direction=client") == sent
        assert snap.counter("lua.tcpbytes.bytes.direction=server") == sent
        assert snap.counter("lua.tcpbytes.script_errors") == 0


# ---------------------------------------------- ticks: held counters, idle connections

# no constant in it: pg_stat_statements keeps the text as sent
TICK_QUERY = "SELECT now() AS wirelab_tick"


def _open_on_both_workers(envoy, pg, per_worker: int, listener: str = "pg",
                          connect: Callable[[int], object] | None = None) -> dict[int, list]:
    """Connections through Envoy (psycopg to `pg`, or `connect(port)`), opened
    one at a time, each put on the list of the worker whose downstream_cx_total
    moved, until both workers hold `per_worker` of them."""
    if connect is None:
        import psycopg

        def connect(port: int) -> object:
            return psycopg.connect(**pg.conninfo(port=port), sslmode="disable", autocommit=True)

    port = envoy.port(listener)
    names = [f"listener.127.0.0.1_{port}.worker_{w}.downstream_cx_total" for w in (0, 1)]
    held: dict[int, list] = {0: [], 1: []}
    for _ in range(64):
        if min(len(v) for v in held.values()) >= per_worker:
            return held
        before = [envoy.stats.snapshot().counters.get(n, 0) for n in names]
        conn = connect(port)
        # a raw socket is connected before Envoy accepted it: wait for the count
        total = sum(before)

        def accepted(snap, total: int = total) -> bool:
            return sum(snap.counters.get(n, 0) for n in names) > total

        snap = envoy.stats.wait_until(accepted)
        after = [snap.counters.get(n, 0) for n in names]
        worker = 0 if after[0] > before[0] else 1
        assert after[worker] == before[worker] + 1
        held[worker].append(conn)
    pytest.fail(f"the kernel put every connection on one worker: {[len(v) for v in held.values()]}")


@pytest.fixture(scope="module")
def tick_pg():
    pytest.importorskip("psycopg", reason="psycopg is absent: pip install 'psycopg[binary]'")
    with _server() as pg:
        if not pg.pg_stat_statements:
            pytest.skip("this PostgreSQL build has no pg_stat_statements "
                        "(apt-get install postgresql-contrib)")
        yield pg


def _two_worker_envoy(builds, pg, prefix: str, metrics_flush_ms: int) -> EnvoyProcess:
    """Envoy --concurrency 2 with the native postgres filter in front of `pg`; the
    server's pg_stat_statements is reset for the test."""
    _, so, _ = builds("postgres")
    spec = FilterSpec("postgres", so, {"stat_prefix": prefix, "metrics_flush_ms": metrics_flush_ms},
                      target="native")
    pgstats.reset_statements(pg)
    return EnvoyProcess([ListenerSpec("pg", (pg.host, pg.port), [spec])], concurrency=2)


def test_held_counters_of_idle_connections_on_two_workers_reach_envoy_on_the_tick(builds, tick_pg):
    """metrics_flush_ms 200, Envoy --concurrency 2: statements run on connections
    that then sit idle reach Envoy with no further traffic (the per-worker tick),
    also after the connection each worker ticks through has closed."""
    with _two_worker_envoy(builds, tick_pg, "tick", metrics_flush_ms=200) as envoy:
        held = _open_on_both_workers(envoy, tick_pg, per_worker=2)
        try:
            conns = held[0] + held[1]
            for conn in conns:
                conn.execute(TICK_QUERY)
            # no byte moves from here on: only the tick can send the held counts
            envoy.stats.wait_for("postgres.tick.statements", pgstats.calls(tick_pg, TICK_QUERY))
            assert pgstats.calls(tick_pg, TICK_QUERY) == len(conns)
            assert envoy.stats.snapshot().counter("postgres.tick.sessions") == len(conns)

            # close each worker's first connection (the one its tick went through)
            for w in (0, 1):
                held[w].pop(0).close()
            envoy.stats.wait_for("postgres.tick.sessions_active", len(conns) - 2)
            for conn in held[0] + held[1]:
                conn.execute(TICK_QUERY)
                conn.execute(TICK_QUERY)
            expected = pgstats.calls(tick_pg, TICK_QUERY)
            assert expected == len(conns) + 2 * (len(conns) - 2)
            envoy.stats.wait_for("postgres.tick.statements", expected)
        finally:
            for conn in held[0] + held[1]:
                conn.close()


def test_held_counters_are_sent_when_their_connection_ends(builds, tick_pg):
    """metrics_flush_ms 60000 (no tick during the test): statements on open
    connections stay in the module; closing the connections sends them, complete
    by the time sessions_active drops to 0."""
    with _two_worker_envoy(builds, tick_pg, "held", metrics_flush_ms=60000) as envoy:
        held = _open_on_both_workers(envoy, tick_pg, per_worker=1)
        conns = held[0] + held[1]
        for conn in conns:
            conn.execute(TICK_QUERY)
        calls = pgstats.calls(tick_pg, TICK_QUERY)
        assert calls == len(conns)
        envoy.stats.wait_for("postgres.held.sessions_active", len(conns))
        assert envoy.stats.snapshot().counter("postgres.held.statements") == 0
        for conn in conns:
            conn.close()
        envoy.stats.wait_for("postgres.held.sessions_active", 0)
        snap = envoy.stats.snapshot()
        assert snap.counter("postgres.held.statements") == calls
        assert snap.counter("postgres.held.sessions") == len(conns)


# ---------------------------------------------------------------- `wirelab new`: both targets


def test_a_new_c_project_builds_and_passes_its_e2e_test_on_both_targets(tmp_path: Path) -> None:
    """`wirelab new` (C, PostgreSQL) lists both targets; `wirelab build` makes the
    .wasm and the .so; `wirelab test --e2e --target all` runs the generated unit
    tests once and the generated e2e test against each build."""
    import sys

    from wirelab.scaffold import create_project

    pytest.importorskip("psycopg", reason="psycopg is absent: pip install 'psycopg[binary]'")
    root = create_project("both-targets", "c", "postgres", tmp_path)
    assert Project.load(root).manifest.targets == ["wasm", "native"]
    wirelab = [sys.executable, "-m", "wirelab"]
    built = subprocess.run([*wirelab, "build", str(root), "--json"], capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    report = json.loads(built.stdout)
    assert Path(report["wasm"]) == root / "build" / "both-targets.wasm"
    assert Path(report["native"]) == root / "build" / "libboth-targets.so"
    assert report["targets"]["native"]["ok"] is True
    assert (root / "build" / "both-targets.wasm").is_file()
    assert (root / "build" / "libboth-targets.so").is_file()
    ran = subprocess.run([*wirelab, "test", "--e2e", "--target", "all", str(root), "--",
                          "-p", "no:cacheprovider", "-v"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out
    assert "== e2e tests, target wasm ==" in out and "== e2e tests, target native ==" in out
    passed = [ln.split("::")[0] for ln in out.splitlines()
              if ln.startswith("tests/") and "PASSED" in ln]
    assert passed.count("tests/test_e2e.py") == 2
    # the generated unit tests (four) run once, in the emulator
    assert passed.count("tests/test_filter.py") == 4
