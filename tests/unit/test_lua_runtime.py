"""The Lua runtime's mechanics in the emulator: API, errors, budget, memory cap, sandbox."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from wirelab.build import build_project
from wirelab.build.lua import check_script
from wirelab.emulator import Emulator, EmulatorError
from wirelab.errors import BuildError, WirelabError
from wirelab.paths import examples_dir
from wirelab.project import Project
from wirelab.testing.postgres import startup
from wirelab.testing.postgres import typed as pg_msg


def load(runtime: Path, script: str, **config: Any) -> Emulator:
    # Counters reach the host at the end of each callback here (the default holds
    # them for a tick): these tests check what one callback did.
    cfg = {"script": textwrap.dedent(script), "stat_prefix": "t", "metrics_flush_ms": 0, **config}
    emu = Emulator.load(runtime, plugin_config=cfg)
    return emu


def errors(emu: Emulator) -> list[str]:
    return emu.logs.at("error")


# ---- examples/lua/tcp-bytes through `wirelab build` ---------------------------------


def test_tcp_bytes_example_counts_exact_bytes(runtime: Path, tmp_path: Path) -> None:
    proj_dir = tmp_path / "tcp-bytes"
    shutil.copytree(examples_dir() / "lua" / "tcp-bytes", proj_dir,
                    ignore=shutil.ignore_patterns("build"))
    project = Project.load(proj_dir)
    result = build_project(project)
    assert result.wasm == proj_dir / "build" / "lua-tcp-bytes.wasm"
    cfg = json.loads((proj_dir / "build" / "lua-tcp-bytes.config.json").read_text())
    assert cfg["protocol"] == "tcp" and cfg["stat_prefix"] == "tcpbytes"
    assert cfg["script"] == (proj_dir / "filter.lua").read_text()
    assert build_project(project).cached is True

    emu = Emulator.load(result.wasm, plugin_config=cfg)
    a = emu.connect()
    b = emu.connect()
    a.downstream(b"hello")
    a.upstream(b"world!!")
    b.downstream(b"x" * 20000)
    a.downstream(b"y" * 3)
    m = emu.metrics
    assert m.gauge("lua.tcpbytes.open_connections") == 2
    # counter increments wait in the module for the tick (metrics_flush_ms, 1000 by default)
    assert m.counter("lua.tcpbytes.connections") == 0
    assert m.counter("lua.tcpbytes.bytes.direction=client") == 0
    emu.advance(999)
    assert m.counter("lua.tcpbytes.bytes.direction=client") == 0
    emu.advance(1)
    assert m.counter("lua.tcpbytes.connections") == 2
    assert m.counter("lua.tcpbytes.bytes.direction=client") == 20008
    assert m.counter("lua.tcpbytes.bytes.direction=server") == 7
    a.close()
    assert m.gauge("lua.tcpbytes.open_connections") == 1
    b.downstream(b"z" * 5)
    b.close()  # a connection's end sends what was held, without waiting for the tick
    assert m.counter("lua.tcpbytes.bytes.direction=client") == 20013
    h = m.histogram("lua.tcpbytes.connection_bytes")
    assert sorted(h.samples) == [15, 20005]
    assert m.gauge("lua.tcpbytes.open_connections") == 0
    assert m.counter("lua.tcpbytes.script_errors") == 0
    emu.assert_no_traps()
    assert a.forwarded == {"client": 8, "server": 7} and not a.modified


def test_metrics_flush_ms_zero_sends_counters_after_every_callback(runtime: Path) -> None:
    emu = load(runtime, """
        local n = wirelab.counter("reads")
        function envoy_on_downstream_data(conn, data) n:inc() end
    """)
    assert emu.tick_period_ms == 0
    emu.connect().downstream(b"x")
    assert emu.metrics.counter("lua.t.reads") == 1


def test_metrics_flush_ms_is_checked(runtime: Path) -> None:
    with pytest.raises(EmulatorError, match="metrics_flush_ms"):
        load(runtime, "", metrics_flush_ms=60001)


# ---- build-time syntax check ----------------------------------------------------------


def test_syntax_error_is_reported_with_script_line(runtime: Path, tmp_path: Path) -> None:
    assert check_script(runtime, b"local x = 1\n", "filter.lua") is None
    msg = check_script(runtime, b"local x = 1\nif x then\n  x = 2\n", "filter.lua")
    assert msg == "filter.lua:4: 'end' expected (to close 'if' at line 2) near <eof>"

    (tmp_path / "wirelab.toml").write_text(
        'name = "bad"\nlanguage = "lua"\nscript = "filter.lua"\n'
    )
    (tmp_path / "filter.lua").write_text("function envoy_on_close(conn)\n  local = 3\nend\n")
    with pytest.raises(BuildError) as info:
        build_project(Project.load(tmp_path))
    assert str(info.value) == "filter.lua:2: <name> expected near '='"
    assert not (tmp_path / "build" / "bad.config.json").exists()


def test_configure_fails_on_top_level_error(runtime: Path) -> None:
    with pytest.raises(EmulatorError):
        load(runtime, "local t = nil\nlocal x = t.field\n")


def test_unknown_protocol_is_refused(runtime: Path) -> None:
    with pytest.raises(WirelabError):
        load(runtime, "", protocol="redis")


# ---- errors, budget and memory keep traffic flowing -----------------------------------


def test_lua_error_is_counted_logged_and_traffic_flows(runtime: Path) -> None:
    emu = load(runtime, """\
        local seen = wirelab.counter("seen")
        function envoy_on_downstream_data(conn, data, eos)
          seen:inc()
          if data:getBytes(0, 4) == "boom" then
            error("bad frame")
          end
        end
        """)
    c = emu.connect()
    c.downstream(b"boom!")
    c.downstream(b"fine")
    c.downstream(b"boom")
    assert emu.metrics.counter("lua.t.seen") == 3
    assert emu.metrics.counter("lua.t.script_errors") == 2
    assert emu.metrics.counter("lua.t.budget_exceeded") == 0
    # the connection's first error is logged; the second is only counted
    assert errors(emu) == [
        f"lua error in envoy_on_downstream_data on connection {c.context_id}: "
        "filter.lua:5: bad frame (error #1)",
    ]
    assert c.forwarded["client"] == 13 and not c.closed and not c.modified
    emu.assert_no_traps()


def test_instruction_budget_aborts_the_callback_only(runtime: Path) -> None:
    emu = load(runtime, """\
        local calls = wirelab.counter("calls")
        function envoy_on_downstream_data(conn, data, eos)
          calls:inc()
          if data:length() == 1 then
            while true do end
          elseif data:length() == 2 then
            -- a pcall loop cannot outlive the budget either
            while true do pcall(function() while true do end end) end
          end
        end
        """, limits={"instructions": 20000})
    c = emu.connect()
    c.downstream(b"a")
    c.downstream(b"bb")
    c.downstream(b"ccc")
    m = emu.metrics
    assert m.counter("lua.t.calls") == 3
    assert m.counter("lua.t.budget_exceeded") == 2
    assert m.counter("lua.t.script_errors") == 2
    assert errors(emu)[0] == (
        f"lua budget in envoy_on_downstream_data on connection {c.context_id}: "
        "filter.lua:5: instruction budget exceeded (20000 instructions) (error #1)"
    )
    assert c.forwarded["client"] == 6 and not c.closed
    emu.assert_no_traps()


def test_memory_cap_aborts_the_callback_and_vm_recovers(runtime: Path) -> None:
    emu = load(runtime, """\
        local ok = wirelab.counter("ok")
        function envoy_on_downstream_data(conn, data, eos)
          if data:length() == 1 then
            local t = {}
            for i = 1, 10000000 do t[i] = string.rep("x", 64) .. i end
          end
          ok:inc()
        end
        """, limits={"memory_kb": 2048, "instructions": 100000000})
    c = emu.connect()
    c.downstream(b"a")
    c.downstream(b"bb")
    m = emu.metrics
    assert m.counter("lua.t.memory_exceeded") == 1
    assert m.counter("lua.t.script_errors") == 1
    assert m.counter("lua.t.ok") == 1
    assert errors(emu) == [
        f"lua memory limit in envoy_on_downstream_data on connection {c.context_id}: "
        "not enough memory (the VM's memory_limit_kb was reached) (error #1)"
    ]
    emu.assert_no_traps()


def test_error_in_new_connection_leaves_the_connection_scripted(runtime: Path) -> None:
    emu = load(runtime, """\
        local n = wirelab.counter("data")
        function envoy_on_new_connection(conn) error({}) end
        function envoy_on_downstream_data(conn, data) n:inc() end
        """)
    c = emu.connect()
    c.downstream(b"x")
    assert emu.metrics.counter("lua.t.script_errors") == 1
    assert emu.metrics.counter("lua.t.data") == 1
    assert errors(emu) == [
        f"lua error in envoy_on_new_connection on connection {c.context_id}: "
        "(error object is not a string) (error #1)"
    ]


ERROR_ON_EVERY_MESSAGE = """\
    local seen = wirelab.counter("seen")
    function envoy_on_pg_message(conn, msg)
      seen:inc()
      error("cannot handle " .. (msg.name or msg.kind))
    end
    """


def test_an_error_on_every_message_is_logged_once_per_connection(runtime: Path) -> None:
    emu = load(runtime, ERROR_ON_EVERY_MESSAGE, protocol="postgres")
    query = pg_msg(b"Q", b"SELECT 1;\0")
    reply = pg_msg(b"C", b"SELECT 1\0") + pg_msg(b"Z", b"I")
    conns = [emu.connect() for _ in range(3)]
    for c in conns:  # startup: 1 message each
        c.downstream(startup("u", "d"))
    for _ in range(4):  # interleaved: each round is 1 + 2 messages per connection
        for c in conns:
            c.downstream(query)
            c.upstream(reply)
    m = emu.metrics
    assert m.counter("lua.t.seen") == 3 * (1 + 4 * 3)
    assert m.counter("lua.t.script_errors") == 3 * (1 + 4 * 3)
    assert errors(emu) == [
        f"lua error in envoy_on_pg_message on connection {c.context_id}: "
        f"filter.lua:4: cannot handle startup (error #{n})"
        for n, c in zip((1, 2, 3), conns, strict=True)
    ]
    for c in conns:
        assert c.forwarded["client"] == len(startup("u", "d")) + 4 * len(query)
        assert c.forwarded["server"] == 4 * len(reply) and not c.modified
    emu.assert_no_traps()


def test_a_connection_flood_is_capped_at_100_lines_then_one_per_1000_errors(runtime: Path) -> None:
    emu = load(runtime, ERROR_ON_EVERY_MESSAGE, protocol="postgres")
    query = pg_msg(b"Q", b"SELECT 1;\0")
    flood = [emu.connect() for _ in range(101)]
    for c in flood:  # one error each (the startup message): error #1..#101
        c.downstream(startup("u", "d"))
    assert len(errors(emu)) == 100  # the 101st connection's first error is only counted
    last = emu.connect()
    # errors #102..#1099: fewer than 1000 since the last line
    last.downstream(startup("u", "d") + query * 997)
    assert len(errors(emu)) == 100
    flood[100].downstream(query)  # error #1100: 1000 errors after line 100 (#100)
    assert errors(emu)[100:] == [
        f"lua error in envoy_on_pg_message on connection {flood[100].context_id}: "
        "filter.lua:4: cannot handle Query (error #1100)"
    ]
    assert emu.metrics.counter("lua.t.script_errors") == 1100
    emu.assert_no_traps()


# ---- sandbox ------------------------------------------------------------------------


def test_sandbox_has_only_safe_libraries(runtime: Path) -> None:
    emu = load(runtime, r"""
        local bytecode = "\27Lua\84\0\25\147\13\10\26\10"
        local f, err = load(bytecode)
        local g = load("return 40 + 2")
        local h = load(function() return nil end, "=x", "b")
        wirelab.logInfo(
          type(io), type(os), type(require), type(package), type(debug),
          type(dofile), type(loadfile), type(string.dump), type(f), err,
          g(), type(h), type(string.format), type(table.concat), type(math.floor),
          type(utf8.char), type(coroutine.wrap), collectgarbage("count") > 0)
        """)
    assert emu.logs.at("info")[0] == (
        "nil nil nil nil nil nil nil nil nil "
        "attempt to load a binary chunk (mode is 't') 42 function "
        "function function function function function true"
    )


def test_collectgarbage_only_allows_harmless_options(runtime: Path) -> None:
    with pytest.raises(EmulatorError):
        load(runtime, 'collectgarbage("stop")')


# ---- API --------------------------------------------------------------------------------


def test_metric_names_tags_and_caps(runtime: Path) -> None:
    emu = load(runtime, """\
        local a = wirelab.counter("queries", { verb = "SE LECT", database = "a.b" })
        assert(a == wirelab.counter("queries", { database = "a.b", verb = "SE LECT" }))
        a:inc(3)
        for i = 1, 4 do wirelab.counter("per_user", { user = "u" .. i }):inc() end
        local g = wirelab.gauge("level")
        g:set(10); g:add(-3); g:inc(); g:dec(2)
        local h = wirelab.histogram("latency_us")
        h:observe(5); h:observe(7.6)
        wirelab.logInfo(g:value(), a:value())
        for _, bad in ipairs({
          function() a:inc(-1) end,
          function() a:observe(1) end,
          function() wirelab.gauge("queries", { verb = "SE LECT", database = "a.b" }) end,
          function() wirelab.counter("bad name") end,
          function() wirelab.counter("x", { ["bad key"] = 1 }) end,
          function() g:set(-1) end,
        }) do
          local ok, err = pcall(bad)
          wirelab.logWarn(err)
        end
        """, limits={"tag_sets": 2})
    m = emu.metrics
    assert m.counter("lua.t.queries.database=a_b.verb=SE_LECT") == 3
    assert m.counter("lua.t.per_user.user=u1") == 1
    assert m.counter("lua.t.per_user.user=u2") == 1
    assert m.counter("lua.t.per_user.user=other") == 2
    assert "lua.t.per_user.user=u3" not in m
    assert m.gauge("lua.t.level") == 6
    assert m.histogram("lua.t.latency_us").samples == [5, 8]
    assert emu.logs.at("info")[0] == "6 3"
    assert emu.logs.at("warn") == [
        "filter.lua:11: a counter cannot go down (inc(-1))",
        "filter.lua:12: observe() is not available on a counter",
        "filter.lua:13: metric lua.t.queries.database=a_b.verb=SE_LECT is already a counter",
        'filter.lua:14: metric name "bad name" may only use letters, digits and \'_\' and \'.\'',
        'filter.lua:15: tag key "bad key" may only use letters, digits and \'_\'',
        "filter.lua:16: a gauge holds values >= 0 (set(-1))",
    ]


def test_connection_state_properties_and_settings(runtime: Path) -> None:
    emu = load(runtime, """\
        local s = wirelab.settings
        wirelab.logInfo(s.name, s.limit, s.ratio, s.nested.list[2], s.nested.flag,
                        s.text, wirelab.protocol, wirelab.stat_prefix)
        function envoy_on_new_connection(conn)
          conn.state.reads = 0
          conn:logInfo("new", conn:sourceAddress(), conn:destinationAddress(),
                       conn.state.reads, tostring(conn):match("^connection#") ~= nil)
        end
        function envoy_on_downstream_data(conn, data, eos)
          conn.state.reads = conn.state.reads + 1
        end
        function envoy_on_upstream_data(conn, data, eos)
          conn.state.reads = conn.state.reads + 1
        end
        function envoy_on_close(conn)
          local rx, tx = conn:bytes()
          conn:logInfo("close", conn:id() > 0, conn.state.reads, rx, tx)
        end
        """, settings={"name": "demo", "limit": 10, "ratio": 0.5,
                       "nested": {"list": [1, "two"], "flag": True}, "text": "caf\u00e9 \u2603"})
    a = emu.connect(src=("192.0.2.7", 41000), dst=("198.51.100.1", 5432))
    b = emu.connect(src=("192.0.2.8", 41001), dst=("198.51.100.1", 5432))
    a.downstream(b"12")
    b.downstream(b"1")
    a.upstream(b"345")
    a.close()
    b.close()
    assert emu.logs.at("info") == [
        "demo 10 0.5 two true caf\u00e9 \u2603 tcp t",
        "lua: filter.lua loaded (protocol tcp, stat_prefix t)",
        "new 192.0.2.7:41000 198.51.100.1:5432 0 true",
        "new 192.0.2.8:41001 198.51.100.1:5432 0 true",
        # close() delivers the end-of-stream of each direction as an empty read
        "close true 4 2 3",
        "close true 3 1 0",
    ]


def test_buffer_bytes_and_bounds(runtime: Path) -> None:
    emu = load(runtime, """\
        local kept
        function envoy_on_downstream_data(conn, data, eos)
          if data:length() > 100 then
            local all = data:bytes()
            local _, xs = all:gsub("x", "")
            conn:logInfo(#data, #all, xs, data:getBytes(20000, 3), data:getBytes(19998))
            kept = data
          else
            conn:logInfo(data:getBytes(1, 3), tostring(data), eos)
            conn:logInfo(pcall(data.getBytes, data, 2, 10))
          end
        end
        function envoy_on_upstream_data(conn, data, eos)
          conn:logInfo(pcall(kept.length, kept))
        end
        """)
    c = emu.connect()
    c.downstream(b"x" * 20000 + b"abc")
    c.downstream(b"hello", end_of_stream=True)
    c.upstream(b"!")
    assert emu.logs.at("info")[1:] == [
        "20003 20003 20000 abc xxabc",
        "ell buffer (5 bytes) true",
        "false getBytes(2, 10): index and length must be >= 0 and "
        "index + length <= 5 (the buffer's length)",
        "false data buffer used outside its callback",
    ]


def test_closed_connection_object_is_inert(runtime: Path) -> None:
    emu = load(runtime, """\
        local old
        function envoy_on_new_connection(conn)
          if old then conn:logInfo(tostring(old), old:id(), old:sourceAddress()) end
          old = conn
        end
        """)
    emu.connect().close()
    emu.connect()
    assert emu.logs.at("info")[1:] == ["connection (closed) nil nil"]


def test_callbacks_must_be_functions(runtime: Path) -> None:
    with pytest.raises(EmulatorError):
        load(runtime, "envoy_on_close = 3")
