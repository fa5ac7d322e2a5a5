"""The PostgreSQL message object of the Lua runtime, type subscriptions and cost per message.

The cost test counts WebAssembly instructions with wasmtime's fuel, which is
deterministic (no clocks involved).
"""

from __future__ import annotations

import struct
import textwrap
from pathlib import Path
from typing import Any

import pytest

from wirelab.emulator import Emulator, EmulatorError
from wirelab.paths import examples_dir
from wirelab.testing.postgres import startup
from wirelab.testing.postgres import typed as msg


def load(runtime: Path, script: str, **config: Any) -> Emulator:
    # counters at the end of each callback (the default holds them for a tick)
    cfg = {"script": textwrap.dedent(script), "stat_prefix": "t", "protocol": "postgres",
           "metrics_flush_ms": 0, **config}
    return Emulator.load(runtime, plugin_config=cfg)


HELLO = msg(b"R", struct.pack(">I", 0)) + msg(b"K", struct.pack(">II", 7, 9)) + msg(b"Z", b"I")
QUERY = msg(b"Q", b"SELECT abalance FROM pgbench_accounts WHERE aid = 1;\0")
ROWS = msg(b"T", b"\0\x01abalance\0" + b"\0" * 18) + msg(b"D", b"\0\x01\0\0\0\x011")
DONE = msg(b"C", b"SELECT 1\0") + msg(b"Z", b"I")
EXTENDED = (msg(b"P", b"s1\0insert into t values ($1)\0\0\0") + msg(b"B", b"p1\0s1\0" + b"\0" * 6)
            + msg(b"E", b"p1\0\0\0\0\x05") + msg(b"S"))


def logged_in(emu: Emulator) -> Any:
    """A connection past startup and authentication (what the tests feed next)."""
    c = emu.connect()
    c.downstream(startup("u", "d"))
    c.upstream(HELLO)
    return c


def infos(emu: Emulator) -> list[str]:
    return [m for m in emu.logs.at("info") if not m.startswith("lua: ")]


def test_fields_of_every_kind(runtime: Path) -> None:
    emu = load(runtime, """\
        local function show(f)
          local keys = {}
          for k in pairs(f) do keys[#keys + 1] = k end
          table.sort(keys)
          local out = {}
          for _, k in ipairs(keys) do out[#out + 1] = k .. "=" .. tostring(f[k]) end
          return table.concat(out, " ")
        end
        function envoy_on_pg_message(conn, msg)
          print(show(wirelab.pg_fields(msg)))
        end
        """)
    c = emu.connect()
    c.downstream(startup("alice", "shop"))
    c.upstream(HELLO)
    c.downstream(EXTENDED)
    c.upstream(msg(b"C", b"INSERT 0 3\0")
               + msg(b"E", b"SERROR\0VERROR\0C23505\0Mdup\0\0") + msg(b"Z", b"E"))
    assert infos(emu) == [
        "application_name= database=shop direction=client kind=startup length=34 size=34 "
        "user=alice version=196608",
        "auth_code=0 direction=server kind=message length=8 name=Authentication size=9 type=R",
        "direction=server kind=message length=12 name=BackendKeyData pid=7 size=13 type=K",
        "direction=server kind=message length=5 name=ReadyForQuery size=6 status=I type=Z",
        "direction=client kind=message length=35 name=Parse size=36 sql=insert into t values ($1) "
        "sql_truncated=false statement=s1 type=P verb=insert",
        "direction=client kind=message length=16 name=Bind portal=p1 size=17 statement=s1 type=B",
        "direction=client kind=message length=11 max_rows=5 name=Execute portal=p1 size=12 type=E",
        "direction=client kind=message length=4 name=Sync size=5 type=S",
        "direction=server kind=message length=15 name=CommandComplete rows=3 size=16 "
        "tag=INSERT 0 3 type=C verb=insert",
        "direction=server kind=message length=31 name=ErrorResponse severity=ERROR size=32 "
        "sqlstate=23505 type=E",
        "direction=server kind=message length=5 name=ReadyForQuery size=6 status=E type=Z",
    ]
    assert emu.metrics.counter("lua.t.script_errors") == 0


def test_direct_field_reads_and_absent_fields(runtime: Path) -> None:
    emu = load(runtime, """\
        function envoy_on_pg_message(conn, msg)
          if msg.type == "C" then
            print(msg.name, msg.verb, msg.rows, msg.tag, msg.sql, msg[1], tostring(msg))
          end
        end
        """)
    c = logged_in(emu)
    c.downstream(QUERY)
    c.upstream(ROWS + DONE)
    assert infos(emu) == [
        "CommandComplete select 1 SELECT 1 nil nil pg message CommandComplete (server, 14 bytes)"]


def test_message_is_valid_only_during_its_callback(runtime: Path) -> None:
    emu = load(runtime, """\
        local kept
        function envoy_on_pg_message(conn, msg)
          if msg.type == "Q" then
            kept = msg
          elseif msg.type == "Z" and kept then
            -- the object is reused: a kept reference shows the current message
            print(rawequal(kept, msg), kept.name)
          elseif msg.type == "C" then
            msg.type = "X"
          end
        end
        function envoy_on_close(conn)
          print(tostring(kept))
          print(pcall(function() return kept.sql end))
        end
        """)
    c = logged_in(emu)
    c.downstream(QUERY)
    c.upstream(ROWS + DONE)
    c.close()
    assert infos(emu) == [
        "true ReadyForQuery",
        "pg message (expired)",
        "false filter.lua:14: message used outside its callback (copy the fields you need)",
    ]
    assert emu.metrics.counter("lua.t.script_errors") == 1
    assert emu.logs.at("error") == [
        f"lua error in envoy_on_pg_message on connection {c.context_id}: "
        "filter.lua:9: message objects are read-only "
        "(keep your data in conn.state) (error #1)"]


def test_an_error_aborts_one_message_not_the_rest_of_the_read(runtime: Path) -> None:
    emu = load(runtime, """\
        local seen = wirelab.counter("seen")
        function envoy_on_pg_message(conn, msg)
          if msg.name == "DataRow" then error("no rows here") end
          seen:inc()
        end
        """)
    c = logged_in(emu)
    c.downstream(QUERY)
    row = msg(b"D", b"\0\0")
    c.upstream(ROWS + row + DONE)  # T D D C Z in one read
    m = emu.metrics
    assert m.counter("lua.t.seen") == 1 + 3 + 1 + 3  # startup, hello, Q, T C Z
    assert m.counter("lua.t.script_errors") == 2
    assert c.forwarded == {"client": len(startup("u", "d")) + len(QUERY),
                           "server": len(HELLO) + len(ROWS) + len(row) + len(DONE)}


def test_each_message_gets_its_own_budget(runtime: Path) -> None:
    # Each call burns about 60% of the budget: three in one read must all pass.
    emu = load(runtime, """\
        local done = wirelab.counter("done")
        function envoy_on_pg_message(conn, msg)
          local x = 0
          for i = 1, 1500 do x = x + i end
          done:inc()
        end
        """, limits={"instructions": 10000})
    c = emu.connect()
    c.downstream(startup("u", "d"))
    c.upstream(ROWS + DONE)
    assert emu.metrics.counter("lua.t.done") == 5
    assert emu.metrics.counter("lua.t.budget_exceeded") == 0


def test_message_types_choose_what_reaches_lua(runtime: Path) -> None:
    emu = load(runtime, """\
        envoy_pg_message_types = { client = "Q", server = "CZ" }
        function envoy_on_pg_message(conn, msg)
          wirelab.counter("seen", { kind = msg.kind, name = msg.name or "-" }):inc()
        end
        """)
    c = emu.connect()
    c.downstream(struct.pack(">II", 8, 80877103))  # SSLRequest
    c.upstream(b"N")
    c.downstream(startup("u", "d"))
    c.upstream(HELLO)
    for _ in range(3):
        c.downstream(QUERY)
        c.upstream(ROWS + DONE)
    c.downstream(EXTENDED)
    counters = emu.metrics.as_dict()["counters"]
    seen = {k: v for k, v in counters.items() if k.startswith("lua.t.seen.")}
    assert seen == {
        "lua.t.seen.kind=ssl_request.name=-": 1,
        "lua.t.seen.kind=encryption_response.name=-": 1,
        "lua.t.seen.kind=startup.name=-": 1,
        "lua.t.seen.kind=message.name=ReadyForQuery": 1 + 3,
        "lua.t.seen.kind=message.name=Query": 3,
        "lua.t.seen.kind=message.name=CommandComplete": 3,
    }


@pytest.mark.parametrize("value, error", [
    ('"QZ"', "envoy_pg_message_types must be a table"),
    ('{ client = 5 }', "envoy_pg_message_types.client must be a string"),
    ('{ clients = "Q" }', 'envoy_pg_message_types: keys are "client" and "server"'),
])
def test_bad_message_types_refuse_the_configuration(runtime: Path, value: str,
                                                     error: str) -> None:
    with pytest.raises(EmulatorError):
        load(runtime, f"envoy_pg_message_types = {value}\n"
                      "function envoy_on_pg_message(conn, msg) end\n")


# ---- cost per message, in WebAssembly instructions (wasmtime fuel) -------------------


def _per_transaction(runtime: Path, fuel: Any, script: str,
                     client: bytes, server: bytes, n: int = 50) -> float:
    emu = load(runtime, script)
    cost = fuel.per_round_trip(logged_in(emu), client, server, n)
    assert emu.metrics.counter("lua.t.script_errors") == 0
    return cost


def test_cost_per_message(runtime: Path, fuel: Any) -> None:
    """pgbench -S's simple-protocol transaction: Q / T D C Z (5 messages)."""
    example = (examples_dir() / "lua" / "pg-statements" / "filter.lua").read_text()
    decoder_only = _per_transaction(
        runtime, fuel, "function envoy_on_pg_message(c, m) end\n"
        "envoy_pg_message_types = {}\n", QUERY, ROWS + DONE)
    noop = _per_transaction(runtime, fuel, "function envoy_on_pg_message(c, m) end\n",
                            QUERY, ROWS + DONE)
    pg_statements = _per_transaction(runtime, fuel, example, QUERY, ROWS + DONE)
    per_call = (noop - decoder_only) / 5
    print(f"wasm instructions per transaction: decoder only {decoder_only:.0f}, "
          f"empty callback {noop:.0f} ({per_call:.0f} per Lua call), "
          f"pg-statements {pg_statements:.0f}")
    # A Lua call with the lazy message object is a few thousand instructions
    # (building a table of every field per message cost ~12,000).
    assert per_call < 4000
    # pg-statements asks for 3 of the 5 messages and reads one field of each
    # (it cost ~94,000 per transaction with a table per message and
    # wirelab.counter() on every statement).
    assert pg_statements < 40000
    # Messages the script did not ask for never enter Lua.
    rows_only = msg(b"D", b"\0\x01\0\0\0\x011") * 20
    skipped = _per_transaction(runtime, fuel, example, b"", rows_only)
    delivered = _per_transaction(runtime, fuel, "function envoy_on_pg_message(c, m) end\n",
                                 b"", rows_only)
    assert skipped * 2 < delivered
