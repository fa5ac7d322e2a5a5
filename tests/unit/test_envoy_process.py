"""EnvoyProcess and StatsClient against a real Envoy and a real TCP echo server."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import psutil
import pytest

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec, Sample
from wirelab.errors import EnvoyError


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid)


def test_proxies_bytes_and_stops_leaving_no_process(echo_server, roundtrip) -> None:
    spec = ListenerSpec("echo", (echo_server.host, echo_server.port))
    with EnvoyProcess([spec]) as envoy:
        pid = envoy.pid
        assert psutil.Process(pid).name() == "envoy"
        assert roundtrip(envoy.port("echo"), b"ping" * 1000) == b"ping" * 1000
        assert roundtrip(envoy.port("echo"), b"x" * 7) == b"x" * 7
        envoy.stats.wait_for("tcp.echo.downstream_cx_total", 2)
        snap = envoy.stats.snapshot()
        assert snap.counter("tcp.echo.downstream_cx_rx_bytes_total") == 4007
        assert snap.counter("tcp.echo.downstream_cx_tx_bytes_total") == 4007
        assert echo_server.connections == 2
        assert envoy.config_path.is_file() and envoy.log_path.is_file()
    assert _gone(pid)
    assert not envoy.config_path.exists()  # the temporary directory is gone ...
    # ... but the log was kept in memory (Envoy flushes its log file every 100 ms).
    assert "starting main dispatch loop" in envoy.log_tail(500)
    assert "exiting" in envoy.log_tail(5)


def test_stops_envoy_when_the_block_raises(echo_server) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with EnvoyProcess([ListenerSpec("echo", (echo_server.host, echo_server.port))]) as envoy:
            pid = envoy.pid
            raise RuntimeError("boom")
    assert _gone(pid)


def test_two_envoys_run_side_by_side(echo_server, roundtrip) -> None:
    spec = ListenerSpec("echo", (echo_server.host, echo_server.port))
    with EnvoyProcess([spec]) as a, EnvoyProcess([spec]) as b:
        assert a.port("echo") != b.port("echo") and a.admin_port != b.admin_port
        assert roundtrip(a.port("echo"), b"a") == b"a"
        assert roundtrip(b.port("echo"), b"bb") == b"bb"
        a.stats.wait_for("tcp.echo.downstream_cx_rx_bytes_total", 1)
        b.stats.wait_for("tcp.echo.downstream_cx_rx_bytes_total", 2)


def test_wasm_metrics_get_prometheus_labels(echo_server, roundtrip, envoy_probe_wasm) -> None:
    probe = FilterSpec("probe", envoy_probe_wasm, {"stat_prefix": "app"})
    with EnvoyProcess([ListenerSpec("db", (echo_server.host, echo_server.port), [probe])]) as e:
        before = e.stats.snapshot()
        roundtrip(e.port("db"), b"q" * 11)
        roundtrip(e.port("db"), b"q" * 13)
        e.stats.wait_for("tcp.app.connections", 2)
        e.stats.wait_for("tcp.app.open_connections", 0)
        e.stats.wait_for("tcp.app.read_size", 2)  # a histogram: its sample count
        snap = e.stats.snapshot()
        # The probe counts what Envoy's own tcp_proxy counts.
        assert snap.counter("tcp.app.bytes.direction=rx") == 24
        assert snap.counter("wasmcustom.tcp.app.bytes.direction=tx") == 24
        assert snap.counter("tcp.db.downstream_cx_rx_bytes_total") == 24
        hist = e.stats.histogram("tcp.app.read_size")
        assert (hist["count"], hist["sum"]) == (2, 24)
        assert hist["quantiles"][0.0] == pytest.approx(11, abs=1)
        delta = e.stats.delta(before, snap)
        assert delta["tcp.app.connections"] == 2
        assert delta["tcp.db.downstream_cx_total"] == 2
        samples = e.stats.prometheus()
    ours = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}
    assert ours[("tcp_bytes", (("direction", "rx"), ("stat_prefix", "app")))] == 24
    assert ours[("tcp_bytes", (("direction", "tx"), ("stat_prefix", "app")))] == 24
    assert ours[("tcp_connections", (("stat_prefix", "app"),))] == 2
    assert ours[("tcp_read_size_count", (("stat_prefix", "app"),))] == 2
    assert Sample("envoy_tcp_downstream_cx_total", {"envoy_tcp_prefix": "db"}, 2.0) in samples


def test_bytes_counter_example_in_envoy(echo_server, roundtrip, bytes_counter_wasm) -> None:
    f = FilterSpec("bytes", bytes_counter_wasm, {"stat_prefix": "echo"})
    with EnvoyProcess([ListenerSpec("e", (echo_server.host, echo_server.port), [f])]) as envoy:
        roundtrip(envoy.port("e"), b"z" * 5000)
        envoy.stats.wait_for("tcp.echo.connections_active", 0)
        samples = envoy.stats.prometheus()
    by_dir = {s.labels.get("direction"): s.value for s in samples if s.name == "tcp_bytes_total"}
    assert by_dir == {"client": 5000, "server": 5000}


def test_failure_policy_reaches_envoy(echo_server, envoy_probe_wasm) -> None:
    filters = [
        FilterSpec("open", envoy_probe_wasm, {"stat_prefix": "a"}),
        FilterSpec("closed", envoy_probe_wasm, {"stat_prefix": "b"}, failure_policy="FAIL_CLOSED"),
    ]
    with EnvoyProcess([ListenerSpec("db", (echo_server.host, echo_server.port), filters)]) as e:
        with urllib.request.urlopen(e.admin_url + "/config_dump?resource=static_listeners") as r:
            dump = json.load(r)
    text = json.dumps(dump)
    # Envoy omits an enum's zero value; every policy here is explicit and non-zero.
    assert text.count('"failure_policy": "FAIL_OPEN"') == 1
    assert text.count('"failure_policy": "FAIL_CLOSED"') == 1


def test_failing_on_configure_is_named(echo_server, envoy_probe_wasm) -> None:
    bad = FilterSpec("probe", envoy_probe_wasm, '{"fail_configure": true}')
    with pytest.raises(EnvoyError) as err:
        with EnvoyProcess([ListenerSpec("db", (echo_server.host, echo_server.port), [bad])]):
            pass
    msg = str(err.value)
    assert msg.startswith("Envoy exited at startup (code 1): ")
    assert "probe: configuration asks to fail" in msg
    assert "Failed to configure base Wasm plugin" in msg
    assert "\n" not in msg


def test_corrupt_wasm_is_named(echo_server, tmp_path: Path) -> None:
    wasm = tmp_path / "bad.wasm"
    wasm.write_bytes(b"\0asm\x01\0\0\0garbage")
    spec = ListenerSpec("db", (echo_server.host, echo_server.port), [FilterSpec("bad", wasm)])
    with pytest.raises(EnvoyError, match="Failed to load Wasm code"):
        with EnvoyProcess([spec]):
            pass


def test_wait_for_reports_last_value_and_log(echo_server) -> None:
    with EnvoyProcess([ListenerSpec("echo", (echo_server.host, echo_server.port))]) as envoy:
        with pytest.raises(EnvoyError) as err:
            envoy.stats.wait_for("tcp.echo.downstream_cx_total", 5, timeout=0.3)
        assert "stat 'tcp.echo.downstream_cx_total' is 0, expected 5" in str(err.value)
        assert "--- Envoy log (tail) ---" in str(err.value)
        with pytest.raises(EnvoyError, match="stat 'no.such' does not exist"):
            envoy.stats.wait_for("no.such", 1, timeout=0.1)
        with pytest.raises(EnvoyError, match="no counter named 'no.such'"):
            envoy.stats.counter("no.such")
        with pytest.raises(EnvoyError, match=r"no listener named 'x': the listeners are \["):
            envoy.port("x")
