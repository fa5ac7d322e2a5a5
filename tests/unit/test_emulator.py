"""The emulator against raw-ABI probe filters compiled from tests/fixtures/probe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wirelab.emulator import Emulator, EmulatorError, UnimplementedHostCall

PROBE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "probe"


def compile_probe(name: str, out_dir: Path) -> Path:
    """zig cc from the ziglang wheel; the first build fills zig's libc cache (~30 s)."""
    out = out_dir / f"{name}.wasm"
    cmd = [sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-mexec-model=reactor",
           "-O2", "-s", "-Wl,--export=malloc", "-Wl,--export=free", "-o", str(out),
           str(PROBE_DIR / f"{name}.c")]
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        pytest.skip("zig is missing: pip install ziglang")
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"probe {name} did not compile:\n{exc.stderr}")
    return out


@pytest.fixture(scope="session")
def probe(tmp_path_factory) -> Path:
    return compile_probe("probe", tmp_path_factory.mktemp("probe"))


def _after(logs, marker: str) -> list[str]:
    msgs = logs.messages()
    return msgs[msgs.index(marker):]


def test_start_sequence_and_configuration(probe):
    host = Emulator.load(probe, plugin_config={"stat_prefix": "x"}, vm_config="vmconf")
    assert host.logs.messages()[:3] == [
        "create 1 0",
        "vm_start 1 6 vmconf",
        'configure 1 19 {"stat_prefix":"x"}',
    ]
    host.assert_no_traps()  # proxy_on_memory_allocate traps: malloc must be preferred


def test_connection_lifecycle_in_envoy_order(probe):
    host = Emulator.load(probe)
    conn = host.connect(src=("10.0.0.1", 5555), dst=("10.0.0.2", 5432))
    conn.downstream(b"hello")
    conn.upstream(b"world", end_of_stream=True)
    conn.close(by="server")
    msgs = _after(host.logs, "create 2 1")
    assert [m for m in msgs if not m.startswith("prop")] == [
        "create 2 1",
        "new 2",
        "down 2 5 0",
        "up 2 5 1",
        "uclose 2 0",  # synthesized from the upstream end of stream, peer UNKNOWN
        "down 2 0 1",  # the client answers the server's FIN with its own
        "dclose 2 2",  # REMOTE: the client's FIN came last
        "done 2",
        "log 2",
        "delete 2",
    ]
    assert conn.closed and conn.closed_by == "server"
    assert conn.forwarded == {"client": 5, "server": 5}
    assert not conn.modified


def test_client_close_delivers_end_of_stream_then_local_close(probe):
    host = Emulator.load(probe)
    conn = host.connect()
    conn.downstream(b"q")
    conn.close(by="client")
    msgs = [m for m in _after(host.logs, "down 2 1 0") if not m.startswith("prop")]
    # LOCAL: the server's FIN came last, so Envoy closes the client side.
    assert msgs == ["down 2 1 0", "down 2 0 1", "up 2 0 1", "uclose 2 0", "dclose 2 1",
                    "done 2", "log 2", "delete 2"]
    conn.downstream(b"late")
    assert conn.undelivered == 4


def test_properties(probe):
    host = Emulator.load(probe, plugin_name="pg", vm_id="vm1")
    host.connect(src=("192.168.1.9", 61000), dst=("10.1.1.1", 3306))
    props = [m for m in host.logs.messages() if m.startswith("prop")]
    assert props == [
        'prop "source\\0address\\0" 17 192.168.1.9:61000',
        'prop "source\\0port\\0" 8 61000',
        'prop "destination\\0port\\0" 8 3306',
        'prop "connection\\0id\\0" 8 1',
        'prop "plugin_name" 2 pg',
        'prop "plugin_vm_id" 3 vm1',
        'prop "no\\0such\\0" status 1',
    ]


def test_metric_semantics(probe):
    host = Emulator.load(probe)
    # ids carry the type in the low 2 bits, step 4; same name+type -> same id
    assert "ids 0 1 2 4 0 5 6" in host.logs.messages()
    # increment 0 / negative on a counter, increment histogram, get histogram: BAD_ARGUMENT;
    # unknown id NOT_FOUND; record on a counter adds; gauges go negative by increment
    assert "status 2 2 2 2 1 recorded=10 gauge=-3" in host.logs.messages()
    c = host.connect()
    c.downstream(b"abc")
    c.downstream(b"defgh")
    assert host.metrics.counter("probe.bytes") == 8
    assert host.metrics.counter("wasmcustom.probe.bytes") == 8
    h = host.metrics.histogram("probe.sizes")
    assert (h.samples, h.count, h.sum) == ([3, 5], 2, 8)
    assert host.metrics.gauge("probe.open") == 1
    c.close()
    assert host.metrics.gauge("probe.open") == 0
    assert host.metrics.as_dict(envoy_names=True)["counters"] == {
        "wasmcustom.probe.bytes": 9, "wasmcustom.probe.recorded": 10}
    with pytest.raises(Exception, match="is a counter, not a gauge"):
        host.metrics.gauge("probe.bytes")
    with pytest.raises(Exception, match="defined no metric 'nope'"):
        host.metrics.counter("nope")


def test_buffer_clamping_like_cpp_host(probe):
    host = Emulator.load(probe)
    host.connect().downstream(b"Bhello")
    msgs = host.logs.messages()
    assert "clamp past-end 0 0 0" in msgs
    assert "clamp zero-len 0 0 0" in msgs
    assert "clamp at-end 0 0 0" in msgs
    assert "clamp long 0 5 hello" in msgs
    assert "other-direction 1" in msgs  # no upstream buffer inside a downstream callback


def test_set_buffer_rules_and_recorded_modifications(probe):
    host = Emulator.load(probe)
    conn = host.connect()
    conn.downstream(b"Sabc")
    # middle edit BAD_ARGUMENT; prepend, append and replace-from-0 OK
    assert "set 2 0 0 0 Rabc>>" in host.logs.messages()  # "<<" + "Sabc" + ">>", 3 drained
    assert [(m.direction, m.start, m.size, m.data) for m in conn.modifications] == [
        ("client", 0, 0, b"<<"), ("client", 6, 0, b">>"), ("client", 0, 3, b"R")]
    assert conn.forwarded["client"] == len(b"Rabc>>")
    assert host.modifications == conn.modifications


def test_streams_close_and_continue(probe):
    host = Emulator.load(probe)
    conn = host.connect()
    conn.downstream(b"U")
    assert "continue 12 0 2" in host.logs.messages()  # UPSTREAM is UNIMPLEMENTED in Envoy
    conn.downstream(b"C")
    assert "close_stream 0" in host.logs.messages()
    assert conn.closed and conn.closed_by == "filter"
    assert host.logs.messages()[-4:] == ["dclose 2 1", "done 2", "log 2", "delete 2"]


def test_pause_buffers_until_continue(probe):
    host = Emulator.load(probe)
    conn = host.connect()
    conn.downstream(b"P1")
    assert conn.paused["client"] and conn.forwarded["client"] == 0
    conn.downstream(b"P2")
    assert "down 2 4 0" in host.logs.messages()  # data_size grows while paused
    conn.downstream(b"U")
    assert "resume 0" in host.logs.messages()
    assert not conn.paused["client"] and conn.forwarded["client"] == 5


def test_tick_and_virtual_clock(probe):
    host = Emulator.load(probe, plugin_config="tick")
    assert host.tick_period_ms == 100
    host.advance(250)
    ticks = [m for m in host.logs.messages() if m.startswith("tick")]
    # the filter's monotonic clock starts 3600 s in, like a host's time since boot
    assert ticks == ["tick 1 1 now_us=3600100000", "tick 1 2 now_us=3600200000"]
    assert host.now_ms == 250
    conn = host.connect()
    conn.downstream(b"K")
    assert "now_us 3600250000" in host.logs.messages()


def test_done_deferred_until_proxy_done(probe):
    host = Emulator.load(probe, plugin_config="tick")
    conn = host.connect()
    conn.downstream(b"D")
    conn.close(by="server")
    assert host.logs.messages()[-1] == "done 2"  # on_done returned false: wait
    host.advance(100)
    msgs = host.logs.messages()
    assert msgs[-4:] == ["proxy_done 0", "proxy_done-unpending 1", "log 2", "delete 2"]


def test_shared_data_cas_across_workers(probe):
    host = Emulator.load(probe, workers=2)
    a, b = host.connect(), host.connect()
    assert (a.worker, b.worker) == (0, 1)
    a.downstream(b"Q")
    assert "shared set=0 get=0 v1" in host.logs.messages()
    assert "shared cas-bad=8 cas-good=0 missing=1" in host.logs.messages()
    b.downstream(b"G")  # the other VM sees the value
    assert "shared-get 0 v3" in host.logs.messages()
    other = Emulator.load(probe, share_with=host)
    other.connect().downstream(b"G")
    assert "shared-get 0 v3" in other.logs.messages()


def test_queue_ready_after_enqueue(probe):
    host = Emulator.load(probe)
    host.connect().downstream(b"R")
    msgs = host.logs.messages()
    assert "enqueue 0 1" in msgs
    assert "queue_ready 1 1 0 hello then 7" in msgs  # then EMPTY


def test_logs_by_level_and_stdio(probe):
    host = Emulator.load(probe, log_level="debug")
    host.connect().downstream(b"L")
    assert "log_level 0 1" in host.logs.messages()
    assert host.logs.at("debug") == ["a debug line"]
    assert host.logs.at("error") == ["an error line"]
    assert "bad level 2" in host.logs.at("info")
    quiet = Emulator.load(probe)  # Envoy's default level: info
    qc = quiet.connect()
    qc.downstream(b"L")
    qc.downstream(b"W")
    assert quiet.logs.at("debug") == []
    assert quiet.logs.at("info")[-1] == "to stdout 2"
    assert quiet.logs.at("error")[-1] == "to stderr 2"


def test_trap_fail_closed(probe):
    host = Emulator.load(probe, failure_policy="FAIL_CLOSED")
    a, b = host.connect(), host.connect()
    a.downstream(b"Trap")
    (trap,) = host.traps
    assert trap.callback == "proxy_on_downstream_data"
    assert trap.message == "wasm trap: wasm `unreachable` instruction executed"
    assert len(trap.frames) >= 1
    assert "proxy_on_downstream_data trapped: wasm trap" in str(trap)
    assert a.closed and a.closed_by == "filter_failure"
    a.downstream(b"more")
    assert a.undelivered == 4
    n = len(host.logs)
    b.downstream(b"x")  # the VM has failed: the next callback fails this stream too
    assert b.closed and len(host.logs) == n
    assert host.connect().closed


def test_trap_fail_open(probe):
    host = Emulator.load(probe, failure_policy="FAIL_OPEN")
    a = host.connect()
    a.downstream(b"T")
    a.downstream(b"later")
    assert not a.closed and a.forwarded["client"] == 6 and not a.filter_active
    c = host.connect()
    c.downstream(b"hello")
    assert not c.filter_active and c.forwarded["client"] == 5
    assert len(host.traps) == 1


def test_trap_fail_reload_after_backoff(probe):
    host = Emulator.load(probe, failure_policy="FAIL_RELOAD", reload_backoff_ms=1000)
    host.connect().upstream(b"T")
    assert host.traps[0].callback == "proxy_on_upstream_data"
    host.advance(500)
    early = host.connect()
    assert early.closed and host.plugin_stats == {"vm_reload_backoff": 1}
    host.advance(600)
    fresh = host.connect()
    assert not fresh.closed and host.plugin_stats["vm_reload_success"] == 1
    fresh.downstream(b"ok")
    assert host.logs.messages()[-1] == "down 2 2 0"  # a new VM: context ids restart
    assert host.metrics.counter("probe.bytes") == 2


def test_proc_exit_is_a_trap(probe):
    host = Emulator.load(probe)
    host.connect().downstream(b"X")
    assert host.traps[0].message == "proc_exit(3)"
    assert host.traps[0].frames  # the wasm backtrace, innermost first


def test_strict_mode_names_the_missing_host_function(probe):
    host = Emulator.load(probe)
    with pytest.raises(UnimplementedHostCall, match="env.proxy_http_call"):
        host.connect().downstream(b"H")
    lax = Emulator.load(probe, strict=False)
    lax.connect().downstream(b"H")
    assert "http_call 12" in lax.logs.messages()


def test_rejected_configuration(probe):
    with pytest.raises(EmulatorError, match="proxy_on_configure returned false"):
        Emulator.load(probe, plugin_config="reject")


def test_bad_inputs(tmp_path, probe):
    with pytest.raises(Exception, match="does not exist"):
        Emulator.load(tmp_path / "none.wasm")
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"not wasm")
    with pytest.raises(EmulatorError, match="not a loadable Wasm module"):
        Emulator.load(junk)
    with pytest.raises(Exception, match="unknown failure_policy"):
        Emulator.load(probe, failure_policy="sometimes")


def test_many_connections_interleaved(probe):
    host = Emulator.load(probe, workers=2)
    conns = [host.connect() for _ in range(50)]
    for i, c in enumerate(conns):
        c.downstream(b"z" * (i + 1))
    for c in conns[::2]:
        c.close()
    assert host.metrics.counter("probe.bytes") == sum(range(1, 51)) + 25  # + 25 empty EOS reads
    assert host.metrics.gauge("probe.open") == 25
