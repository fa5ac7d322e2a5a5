"""A fleet: three real Envoys share one export directory in front of real PostgreSQL.

Filters reach the Envoys only through the exported files (LDS/CDS and one ECDS
resource per filter). New versions are published while clients keep querying
through all three Envoys; every expected value is the number of statements the
clients ran or the bytes Envoy's own tcp_proxy counted.

The scenarios run in order on one fleet (module fixture): the Lua filter goes
v1 → v2, a broken v3 is refused and then forced past validation, the C filter's
new build is swapped last.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from wirelab.errors import WirelabError
from wirelab.fleet import Fleet
from wirelab.paths import examples_dir
from wirelab.testing.lua import statement_counter_script, write_lua_project
from wirelab.xds import FilterEntry, published_manifest

pytestmark = pytest.mark.e2e

ENVOYS = 3
LUA_NAME = "lua-fleet-stmts"
C_NAME = "bytes-counter"

# The Lua project keeps the runtime's default metrics_flush_ms: counters are batched for
# up to 1 s, so the exact totals below also show that no batch is lost when a version
# retires.

# v1: every CommandComplete is one statement.
LUA_V1 = statement_counter_script()

# v2: the same count, plus a new metric for SELECTs.
LUA_V2 = """\
local statements = wirelab.counter("statements")
local selects = wirelab.counter("selects")
envoy_pg_message_types = { client = "", server = "C" }
function envoy_on_pg_message(conn, msg)
  if msg.name == "CommandComplete" then
    statements:inc()
    if msg.verb == "select" then selects:inc() end
  end
end
"""

C_READS = """\
    m->bytes[WL_DIR_SERVER] = wl_counter("tcp.%s.bytes_total.direction=server", prefix);
    m->reads = wl_counter("tcp.%s.reads_total", prefix);
"""


def psycopg():
    return pytest.importorskip("psycopg", reason="psycopg is absent (pip install psycopg)")


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fleet-projects")
    lua = write_lua_project(root / "stmts", LUA_V1, LUA_NAME, stat_prefix="fleet")
    c = root / "bytes-counter"
    shutil.copytree(examples_dir() / "bytes-counter", c, ignore=shutil.ignore_patterns("build"))
    return {"lua": lua, "c": c}


@pytest.fixture(scope="module")
def fleet(projects: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet") / "xds"
    with Fleet(ENVOYS, root=root, postgres=True,
               filters=[projects["lua"], projects["c"]]) as fl:
        yield fl


def total(fleet: Fleet, name: str) -> int:
    """A counter summed over every Envoy of the fleet (0 where it does not exist)."""
    return sum(e.stats.snapshot().value(name) or 0 for e in fleet.envoys)


def wait_total(fleet: Fleet, name: str, want: int, timeout: float = 15.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got = total(fleet, name)
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def published_version(fleet: Fleet, name: str) -> str:
    manifest = published_manifest(fleet.root)
    assert manifest is not None
    return manifest["filters"][name]["version"]


def wait_fleet(fleet: Fleet, name: str, last: str, timeout: float = 30.0) -> float:
    """Seconds until every Envoy reports `last` for the filter's published version."""
    started = time.monotonic()
    while True:
        rows = [r for r in fleet.status() if r.filter == name]
        if len(rows) == ENVOYS and all(r.last == last for r in rows):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"after {timeout} s: {[r.as_dict() for r in rows]}")
        time.sleep(0.05)


class Clients:
    """Threads that keep running `SELECT 1` through the fleet, each connection for
    `per_connection` queries, until stopped. Every failure is kept, none retried."""

    def __init__(self, conninfo: dict, threads: int = 3, per_connection: int = 5):
        self.conninfo = conninfo
        self.per_connection = per_connection
        self.queries = 0
        self.connections = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        pg = psycopg()
        while not self._stop.is_set():
            try:
                with pg.connect(**self.conninfo, autocommit=True) as conn:
                    with self._lock:
                        self.connections += 1
                    for _ in range(self.per_connection):
                        assert conn.execute("SELECT 1").fetchone() == (1,)
                        with self._lock:
                            self.queries += 1
                        time.sleep(0.005)
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                with self._lock:
                    self.failures.append(repr(exc))

    def __enter__(self) -> Clients:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)


def open_on_every_envoy(fleet: Fleet, per_envoy: int = 2) -> list:
    """Open connections until each Envoy holds at least `per_envoy` of them.

    The Envoys share the port (SO_REUSEPORT); the kernel picks one per connection.
    """
    pg = psycopg()
    conns = []
    listener = f"listener.127.0.0.1_{fleet.port('postgres')}.downstream_cx_active"
    for _ in range(200):
        active = [e.stats.snapshot().value(listener) or 0 for e in fleet.envoys]
        if min(active) >= per_envoy:
            return conns
        conns.append(pg.connect(**fleet.server("postgres").conninfo(fleet.port("postgres")),
                                autocommit=True))
    raise AssertionError(f"200 connections did not reach every Envoy: {active}")


def run_new_connections(fleet: Fleet, connections: int, queries: int) -> None:
    pg = psycopg()
    for _ in range(connections):
        with pg.connect(**fleet.server("postgres").conninfo(fleet.port("postgres")),
                        autocommit=True) as conn:
            for _ in range(queries):
                assert conn.execute("SELECT 1").fetchone() == (1,)


# ---- the scenarios, in order ---------------------------------------------------------------


def test_v1_runs_on_every_envoy_from_the_export(fleet: Fleet) -> None:
    wait_fleet(fleet, LUA_NAME, "accepted")
    v1 = published_version(fleet, LUA_NAME)
    assert {r.running for r in fleet.status() if r.filter == LUA_NAME} == {v1}
    before = total(fleet, "lua.fleet.statements")
    run_new_connections(fleet, connections=6, queries=3)
    assert wait_total(fleet, "lua.fleet.statements", before + 18) == before + 18
    assert total(fleet, "lua.fleet.selects") == 0  # v1 has no such metric


def test_lua_v2_swaps_in_under_load_without_a_failed_query(fleet: Fleet,
                                                           projects: dict[str, Path]) -> None:
    conninfo = fleet.server("postgres").conninfo(fleet.port("postgres"))
    statements0 = total(fleet, "lua.fleet.statements")
    v1 = published_version(fleet, LUA_NAME)
    old = open_on_every_envoy(fleet)  # opened under v1: they must keep v1
    with Clients(conninfo) as clients:
        time.sleep(0.5)
        (projects["lua"] / "filter.lua").write_text(LUA_V2)
        result = fleet.publish([projects["lua"], projects["c"]])
        assert result.changed == [LUA_NAME]
        v2 = published_version(fleet, LUA_NAME)
        assert v2 != v1
        seconds = wait_fleet(fleet, LUA_NAME, "accepted")
        print(f"\nexport (build, checks, switch) {result.seconds:.2f} s; all {ENVOYS} Envoys "
              f"reported v2 {seconds:.2f} s after the switch", file=sys.stderr)
        time.sleep(0.5)  # the clients keep going on the new version
    assert clients.failures == []
    assert clients.queries > 0
    # Every query so far was counted exactly once, by v1 or by v2.
    done = clients.queries
    assert wait_total(fleet, "lua.fleet.statements", statements0 + done) == statements0 + done

    # Connections opened before the swap still work and still run v1 (no `selects`);
    # new connections run v2. The old counter keeps counting for both.
    statements1 = total(fleet, "lua.fleet.statements")
    selects1 = total(fleet, "lua.fleet.selects")
    for conn in old:
        for _ in range(3):
            assert conn.execute("SELECT 1").fetchone() == (1,)
    run_new_connections(fleet, connections=6, queries=2)
    want = statements1 + 3 * len(old) + 12
    assert wait_total(fleet, "lua.fleet.statements", want) == want
    assert wait_total(fleet, "lua.fleet.selects", selects1 + 12) == selects1 + 12
    for conn in old:
        conn.close()
    rows = [r for r in fleet.status() if r.filter == LUA_NAME]
    assert {(r.running, r.published, r.last) for r in rows} == {(v2, v2, "accepted")}


def test_broken_v3_is_refused_by_export_and_the_published_version_stays(
        fleet: Fleet, projects: dict[str, Path], tmp_path: Path) -> None:
    v2 = published_version(fleet, LUA_NAME)
    published = (fleet.root / "current").resolve()
    broken = tmp_path / "broken"
    shutil.copytree(projects["lua"], broken, ignore=shutil.ignore_patterns("build"))
    (broken / "filter.lua").write_text(LUA_V2 + "local x = = 1\n")
    with pytest.raises(WirelabError, match=r"filter\.lua:10: unexpected symbol near '='"):
        fleet.publish([broken, projects["c"]])

    built = projects["lua"] / "build" / f"{LUA_NAME}.wasm"
    config = json.loads((projects["lua"] / "build" / f"{LUA_NAME}.config.json").read_text())
    with pytest.raises(WirelabError, match="but the fleet file pins 0000"):
        fleet.publish([FilterEntry(built, sha256="0" * 64, name=LUA_NAME, root_id=LUA_NAME,
                                   config=json.dumps(config)), projects["c"]])

    no_script = {k: v for k, v in config.items() if k != "script"}
    with pytest.raises(WirelabError, match=r'"script" \(the Lua source\) is missing'):
        fleet.publish([FilterEntry(built, name=LUA_NAME, root_id=LUA_NAME,
                                   config=json.dumps(no_script)), projects["c"]])

    # One clear line from the CLI too, exit code 1, nothing published.
    proc = subprocess.run(
        [sys.executable, "-m", "wirelab", "xds", "export", str(broken),
         "--upstream", "127.0.0.1:5432", "--out", str(fleet.root)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "export refused" in proc.stderr and "stays at version" in proc.stderr

    assert (fleet.root / "current").resolve() == published
    assert published_version(fleet, LUA_NAME) == v2


def test_forced_v3_is_rejected_by_every_envoy_which_keeps_v2(fleet: Fleet,
                                                             projects: dict[str, Path]) -> None:
    v2 = published_version(fleet, LUA_NAME)
    built = projects["lua"] / "build" / f"{LUA_NAME}.wasm"
    config = json.loads((projects["lua"] / "build" / f"{LUA_NAME}.config.json").read_text())
    config["script"] += "local x = = 1\n"
    fleet.publish([FilterEntry(built, name=LUA_NAME, root_id=LUA_NAME,
                               config=json.dumps(config)), projects["c"]], validate=False)
    v3 = published_version(fleet, LUA_NAME)
    assert v3 != v2
    wait_fleet(fleet, LUA_NAME, "rejected")
    rows = [r for r in fleet.status() if r.filter == LUA_NAME]
    assert {(r.running, r.published) for r in rows} == {(v2, v3)}
    assert all(r.rejected == 1 for r in rows)

    # v2 still counts, on new connections too.
    statements0 = total(fleet, "lua.fleet.statements")
    selects0 = total(fleet, "lua.fleet.selects")
    run_new_connections(fleet, connections=6, queries=2)
    assert wait_total(fleet, "lua.fleet.statements", statements0 + 12) == statements0 + 12
    assert wait_total(fleet, "lua.fleet.selects", selects0 + 12) == selects0 + 12


def test_c_filter_new_build_swaps_in_under_load(fleet: Fleet, projects: dict[str, Path]) -> None:
    conninfo = fleet.server("postgres").conninfo(fleet.port("postgres"))
    # Back to a good Lua version first, so every filter is accepted again.
    fleet.publish([projects["lua"], projects["c"]])
    wait_fleet(fleet, LUA_NAME, "accepted")
    c1 = published_version(fleet, C_NAME)
    old = open_on_every_envoy(fleet)
    src = projects["c"] / "filter.c"
    text = src.read_text()
    text = text.replace("    wl_metric bytes[2];    /* counters, indexed by wl_dir */\n",
                        "    wl_metric bytes[2];    /* counters, indexed by wl_dir */\n"
                        "    wl_metric reads;       /* counter: reads, both directions */\n")
    text = text.replace(C_READS.splitlines(keepends=True)[0], C_READS)
    text = text.replace("    wl_batch_add(m->bytes[read->dir], (int64_t)read->size);\n",
                        "    wl_batch_add(m->bytes[read->dir], (int64_t)read->size);\n"
                        "    wl_batch_add(m->reads, 1);\n")
    assert text.count("m->reads") == 2
    with Clients(conninfo) as clients:
        time.sleep(0.5)
        src.write_text(text)
        result = fleet.publish([projects["lua"], projects["c"]])
        assert result.changed == [C_NAME]
        c2 = published_version(fleet, C_NAME)
        assert c2 != c1
        wait_fleet(fleet, C_NAME, "accepted")
        time.sleep(0.5)
    assert clients.failures == []
    assert clients.queries > 0

    # The clients' last reads (their Terminate, the server's close) land once their
    # connections are gone: only the v1 connections may remain open.
    active = f"listener.127.0.0.1_{fleet.port('postgres')}.downstream_cx_active"
    assert wait_total(fleet, active, len(old)) == len(old)
    reads0 = total(fleet, "tcp.bytes_counter.reads_total")
    assert reads0 > 0  # the clients' connections after the swap
    for conn in old:  # opened under v1: they still work, and v1 has no reads_total
        assert conn.execute("SELECT 1").fetchone() == (1,)
    time.sleep(0.3)
    assert total(fleet, "tcp.bytes_counter.reads_total") == reads0
    for conn in old:
        conn.close()
    # Whatever version counted it, every byte Envoy carried was counted once.
    assert wait_total(fleet, active, 0) == 0
    rx = total(fleet, "tcp.postgres.downstream_cx_rx_bytes_total")
    tx = total(fleet, "tcp.postgres.downstream_cx_tx_bytes_total")
    assert wait_total(fleet, "tcp.bytes_counter.bytes_total.direction=client", rx) == rx
    assert wait_total(fleet, "tcp.bytes_counter.bytes_total.direction=server", tx) == tx
    assert wait_total(fleet, "tcp.bytes_counter.connections_active", 0) == 0


# ---- remote code: Envoy fetches the blob over HTTP and checks its sha256 -------------------


def test_remote_code_is_fetched_from_the_blob_origin_at_startup(tmp_path: Path) -> None:
    c = tmp_path / "bytes-counter"
    shutil.copytree(examples_dir() / "bytes-counter", c, ignore=shutil.ignore_patterns("build"))
    with Fleet(1, root=tmp_path / "xds", postgres=True, filters=[c], code="remote") as fl:
        manifest = published_manifest(fl.root)
        digest = manifest["filters"][C_NAME]["sha256"]
        assert manifest["code"] == "remote"
        assert fl.origin is not None and fl.origin.served == [f"/blobs/{digest}.wasm"]
        wait_fleet_of(fl, C_NAME, 1)
        assert fl.envoys[0].stats.snapshot().counter("wasm.remote_load_fetch_successes") == 1
        run_new_connections(fl, connections=3, queries=2)
        active = f"listener.127.0.0.1_{fl.port('postgres')}.downstream_cx_active"
        assert wait_total(fl, active, 0) == 0
        rx = total(fl, "tcp.postgres.downstream_cx_rx_bytes_total")
        assert rx > 0
        assert wait_total(fl, "tcp.bytes_counter.bytes_total.direction=client", rx) == rx
        assert total(fl, "tcp.bytes_counter.connections_total") == 3


def wait_fleet_of(fleet: Fleet, name: str, envoys: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in fleet.status() if r.filter == name]
        if len(rows) == envoys and all(r.last == "accepted" for r in rows):
            return
        assert time.monotonic() < deadline, [r.as_dict() for r in rows]
        time.sleep(0.05)


# ---- the lab itself runs the export path ---------------------------------------------------


def test_a_lab_with_xds_runs_the_exported_files_and_republishes_a_saved_filter(
        tmp_path: Path) -> None:
    from wirelab.harness import Lab

    project = write_lua_project(tmp_path / "stmts", LUA_V1, LUA_NAME, stat_prefix="fleet")
    with Lab(postgres=True, filters=[project], xds=True) as lab:
        envoy = lab.envoy
        bootstrap = envoy.config_path.read_text()
        assert f'path: "{envoy.root}/lds.json"' in bootstrap
        assert "static_resources" not in bootstrap  # everything comes from the export
        assert list(published_manifest(envoy.root)["filters"]) == [LUA_NAME]

        base = lab.mark()
        run_lab_queries(lab, connections=2, queries=3)
        lab.stats.wait_for("lua.fleet.statements", base.value("lua.fleet.statements") + 6)

        (project / "filter.lua").write_text(LUA_V2)
        result = lab.republish()
        assert result.changed == [LUA_NAME]
        rows = envoy_rows(lab, LUA_NAME, result.filters[LUA_NAME])
        assert rows == ["accepted"]
        mid = lab.mark()
        run_lab_queries(lab, connections=2, queries=3)
        lab.stats.wait_for("lua.fleet.statements", mid.value("lua.fleet.statements") + 6)
        lab.stats.wait_for("lua.fleet.selects", 6)


def run_lab_queries(lab, connections: int, queries: int) -> None:
    pg = psycopg()
    for _ in range(connections):
        with pg.connect(**lab.pg_conninfo(), autocommit=True) as conn:
            for _ in range(queries):
                assert conn.execute("SELECT 1").fetchone() == (1,)


def envoy_rows(lab, name: str, version: str, timeout: float = 15.0) -> list[str]:
    from wirelab.xds.status import envoy_state

    deadline = time.monotonic() + timeout
    while True:
        rows = [r for r in envoy_state(lab.admin_url, {name: version}) if r.filter == name]
        if all(r.last == "accepted" for r in rows) or time.monotonic() > deadline:
            return [r.last for r in rows]
        time.sleep(0.05)


# ---- the commands --------------------------------------------------------------------------


def test_fleet_up_and_status_commands(tmp_path: Path) -> None:
    import os
    import signal

    project = write_lua_project(tmp_path / "stmts", LUA_V1, LUA_NAME, stat_prefix="fleet")
    state = tmp_path / "fleet.json"
    root = tmp_path / "xds"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "toolchain")}
    up = subprocess.Popen(
        [sys.executable, "-m", "wirelab", "fleet", "up", "2", "--postgres", "--filter",
         str(project), "--dir", str(root), "--state", str(state),
         "--fleet-file", str(tmp_path / "fleet.toml")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not state.exists():
            assert up.poll() is None, up.stdout.read()
            assert time.monotonic() < deadline, "fleet up wrote no state file in 120 s"
            time.sleep(0.2)
        info = json.loads(state.read_text())
        assert [e["node"] for e in info["envoys"]] == ["envoy-1", "envoy-2"]
        v1 = published_manifest(root)["filters"][LUA_NAME]["version"]

        def status() -> tuple[int, list[dict]]:
            proc = subprocess.run(
                [sys.executable, "-m", "wirelab", "fleet", "status", "--state", str(state),
                 "--json"], capture_output=True, text=True, timeout=60, env=env)
            return proc.returncode, json.loads(proc.stdout)

        code, rows = status()
        assert code == 0
        assert [(r["envoy"], r["running"], r["export"], r["last"]) for r in rows] == [
            ("envoy-1", v1, "0001", "accepted"), ("envoy-2", v1, "0001", "accepted")]

        # A script that fails when it loads: refused by the export; forced past
        # validation from the command line, both Envoys reject it and keep v1.
        (project / "filter.lua").write_text(LUA_V1 + "error('refused at load')\n")
        # The fleet file `fleet up` wrote names the same listeners, ports and filters.
        fleet_toml = Path(info["fleet_file"])
        assert fleet_toml == tmp_path / "fleet.toml"
        refused = subprocess.run(
            [sys.executable, "-m", "wirelab", "xds", "export", str(fleet_toml), "--out",
             str(root)], capture_output=True, text=True, timeout=120, env=env)
        assert refused.returncode == 1
        assert "refused at load" in refused.stderr and refused.stderr.count("\n") == 1
        forced = subprocess.run(
            [sys.executable, "-m", "wirelab", "xds", "export", str(fleet_toml), "--out",
             str(root), "--no-validate"], capture_output=True, text=True, timeout=120, env=env)
        assert forced.returncode == 0, forced.stderr
        deadline = time.monotonic() + 30
        while True:
            code, rows = status()
            if all(r["last"] == "rejected" for r in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert code == 3
        assert [(r["envoy"], r["running"], r["export"], r["last"]) for r in rows] == [
            ("envoy-1", v1, "0001", "rejected"), ("envoy-2", v1, "0001", "rejected")]
        assert all(r["published"] != v1 and r["rejected"] == 1 for r in rows)
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=60)
    assert not state.exists()


# ---- a native filter (Envoy dynamic module) through the same path -------------------------

# A probe module written for this test: it counts connections (v2 also counts them
# under a second name) and refuses a configuration that says "reject". Signatures
# follow Envoy 1.40's dynamic-module ABI; a {ptr, length} buffer passed by value is
# two registers, spelled here as two arguments.
NATIVE_PROBE = r"""
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#define EXPORT __attribute__((visibility("default")))
typedef struct { const char *ptr; size_t length; } buf;
extern int envoy_dynamic_module_callback_network_filter_config_define_counter(
    void *, buf, size_t *);
extern int envoy_dynamic_module_callback_network_filter_increment_counter(void *, size_t, uint64_t);
typedef struct { size_t connections, connections_v2; } probe;
static buf name(const char *s) { buf b = { s, strlen(s) }; return b; }
EXPORT const char *envoy_dynamic_module_on_program_init(void) { return "v0.2.0"; }
EXPORT void *envoy_dynamic_module_on_network_filter_config_new(
        void *cfg, const char *n, size_t nlen, const char *c, size_t clen) {
    (void)n; (void)nlen;
    for (size_t i = 0; i + 6 <= clen; i++) if (!memcmp(c + i, "reject", 6)) return NULL;
    probe *p = calloc(1, sizeof *p);
    envoy_dynamic_module_callback_network_filter_config_define_counter(
        cfg, name("native_fleet.connections"), &p->connections);
#ifdef V2
    envoy_dynamic_module_callback_network_filter_config_define_counter(
        cfg, name("native_fleet.connections_v2"), &p->connections_v2);
#endif
    return p;
}
EXPORT void envoy_dynamic_module_on_network_filter_config_destroy(void *p) { free(p); }
EXPORT void *envoy_dynamic_module_on_network_filter_new(void *p, void *f) { (void)f; return p; }
EXPORT int envoy_dynamic_module_on_network_filter_new_connection(void *f, void *m) {
    probe *p = m;
    envoy_dynamic_module_callback_network_filter_increment_counter(f, p->connections, 1);
#ifdef V2
    envoy_dynamic_module_callback_network_filter_increment_counter(f, p->connections_v2, 1);
#endif
    return 0;
}
EXPORT int envoy_dynamic_module_on_network_filter_read(void *f, void *m, size_t n, int eos) {
    (void)f; (void)m; (void)n; (void)eos; return 0;
}
EXPORT int envoy_dynamic_module_on_network_filter_write(void *f, void *m, size_t n, int eos) {
    (void)f; (void)m; (void)n; (void)eos; return 0;
}
EXPORT void envoy_dynamic_module_on_network_filter_event(void *f, void *m, int ev) {
    (void)f; (void)m; (void)ev;
}
EXPORT void envoy_dynamic_module_on_network_filter_destroy(void *m) { (void)m; }
"""
NATIVE = "native-probe"


def build_probe(out: Path, *defines: str) -> Path:
    from wirelab.build import zig

    src = out.with_suffix(".c")
    src.write_text(NATIVE_PROBE)
    subprocess.run([*zig.compiler_command(), "-shared", "-fPIC", "-O2",
                    "--target=x86_64-linux-gnu", *defines, "-o", str(out), str(src)],
                   check=True, capture_output=True, timeout=300)
    return out


def test_native_module_build_swaps_in_the_same_way(tmp_path: Path) -> None:
    v1 = build_probe(tmp_path / "probe-v1.so")
    v2 = build_probe(tmp_path / "probe-v2.so", "-DV2")
    entry = FilterEntry(v1, name=NATIVE, config="{}")
    with Fleet(2, root=tmp_path / "xds", postgres=True, filters=[entry]) as fl:
        manifest = published_manifest(fl.root)
        blob = fl.root / "blobs" / f"{manifest['filters'][NATIVE]['sha256']}.so"
        assert blob.read_bytes() == v1.read_bytes()
        wait_fleet_of(fl, NATIVE, 2)
        old = []
        pg = psycopg()
        listener = f"listener.127.0.0.1_{fl.port('postgres')}.downstream_cx_active"
        while min(e.stats.snapshot().value(listener) or 0 for e in fl.envoys) < 1:
            old.append(pg.connect(**fl.server("postgres").conninfo(fl.port("postgres")),
                                  autocommit=True))
            assert len(old) < 100
        connections = "dynamicmodulescustom.native_fleet.connections"
        assert wait_total(fl, connections, len(old)) == len(old)

        conninfo = fl.server("postgres").conninfo(fl.port("postgres"))
        with Clients(conninfo, threads=2) as clients:
            time.sleep(0.3)
            fl.publish([FilterEntry(v2, name=NATIVE, config="{}")])
            wait_fleet_of(fl, NATIVE, 2)
            time.sleep(0.3)
        assert clients.failures == [] and clients.queries > 0
        for conn in old:  # opened under v1: still served
            assert conn.execute("SELECT 1").fetchone() == (1,)
            conn.close()

        # Every connection was counted once; the v2 metric counts only connections
        # opened after the swap.
        cx = total(fl, "tcp.postgres.downstream_cx_total")
        assert wait_total(fl, connections, cx) == cx
        before_v2 = total(fl, "dynamicmodulescustom.native_fleet.connections_v2")
        run_new_connections(fl, connections=4, queries=1)
        after = total(fl, "dynamicmodulescustom.native_fleet.connections_v2")
        assert after - before_v2 == 4

        # A configuration the module refuses: `envoy --mode validate` loads the module
        # and refuses the export; forced, both Envoys reject it and keep v2.
        v2_version = published_manifest(fl.root)["filters"][NATIVE]["version"]
        with pytest.raises(WirelabError, match="Envoy rejected the configuration"):
            fl.publish([FilterEntry(v2, name=NATIVE, config='{"mode": "reject"}')])
        fl.publish([FilterEntry(v2, name=NATIVE, config='{"mode": "reject"}')], validate=False)
        deadline = time.monotonic() + 30
        while True:
            rows = [r for r in fl.status() if r.filter == NATIVE]
            if all(r.last == "rejected" for r in rows) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [(r.running, r.last) for r in rows] == [(v2_version, "rejected")] * 2
        run_new_connections(fl, connections=2, queries=1)
        assert wait_total(fl, "dynamicmodulescustom.native_fleet.connections_v2",
                          after + 2) == after + 2
