"""The C SDK, run in wasmtime behind a tiny recording host (not the emulator).

The host here implements only the calls these filters make, records every one,
and drives the callbacks in Envoy's order, so the tests can assert exact metric
values, exact host-call counts and exact log lines.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from wirelab.build import build_project
from wirelab.paths import examples_dir
from wirelab.project import Project

DOWNSTREAM, UPSTREAM, PLUGIN_CONFIG = 2, 3, 7
OK, NOT_FOUND = 0, 1


class RecordingHost:
    """Links a module against recording stubs of the proxy-wasm calls it imports."""

    def __init__(self, wasm: Path) -> None:
        self.store = wasmtime.Store()
        wasi = wasmtime.WasiConfig()
        self.store.set_wasi(wasi)
        module = wasmtime.Module.from_file(self.store.engine, str(wasm))
        linker = wasmtime.Linker(self.store.engine)
        linker.define_wasi()
        self.metrics: dict[int, list] = {}  # id -> [type, name, value]
        self.names: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.logs: list[tuple[int, str]] = []
        self.buffers: dict[int, bytes] = {}
        self.properties: dict[bytes, bytes] = {}
        self.alloc_ptrs: list[int] = []
        for imp in module.imports:
            if imp.module == "env":
                fn = getattr(self, imp.name)
                linker.define_func("env", imp.name, imp.type, self._counted(imp.name, fn))
        self.instance = linker.instantiate(self.store, module)
        ex = self.instance.exports(self.store)
        self.memory: wasmtime.Memory = ex["memory"]
        self.exports = ex
        ex["_initialize"](self.store)

    def _counted(self, name, fn):
        def wrapper(*args):
            self.calls[name] = self.calls.get(name, 0) + 1
            return fn(*args)

        return wrapper

    # -- memory helpers
    def _read(self, ptr: int, size: int) -> bytes:
        return bytes(self.memory.read(self.store, ptr, ptr + size))

    def _u32(self, ptr: int, value: int) -> None:
        self.memory.write(self.store, struct.pack("<I", value), ptr)

    def _give(self, data: bytes, ret_ptr: int, ret_size: int) -> int:
        ptr = self.exports["malloc"](self.store, len(data))
        self.alloc_ptrs.append(ptr)
        self.memory.write(self.store, data, ptr)
        self._u32(ret_ptr, ptr)
        self._u32(ret_size, len(data))
        return OK

    # -- proxy-wasm host calls
    def proxy_log(self, level, ptr, size):
        self.logs.append((level, self._read(ptr, size).decode()))
        return OK

    def proxy_get_log_level(self, ret):
        self._u32(ret, 0)
        return OK

    def proxy_define_metric(self, mtype, ptr, size, ret):
        name = self._read(ptr, size).decode()
        if name not in self.names:
            self.names[name] = len(self.metrics) * 4 + mtype
            self.metrics[self.names[name]] = [mtype, name, 0]
        self._u32(ret, self.names[name])
        return OK

    def proxy_increment_metric(self, mid, delta):
        self.metrics[mid][2] += delta
        return OK

    def proxy_record_metric(self, mid, value):
        m = self.metrics[mid]
        m[2] = m[2] + value if m[0] == 0 else value
        return OK

    def proxy_get_metric(self, mid, ret):
        self.memory.write(self.store, struct.pack("<Q", self.metrics[mid][2]), ret)
        return OK

    def proxy_get_buffer_bytes(self, btype, start, max_size, ret_ptr, ret_size):
        data = self.buffers.get(btype, b"")[start : start + max_size]
        if not data:  # cpp-host: empty range -> OK, nothing allocated
            self._u32(ret_ptr, 0)
            self._u32(ret_size, 0)
            return OK
        return self._give(data, ret_ptr, ret_size)

    def proxy_get_property(self, path_ptr, path_size, ret_ptr, ret_size):
        value = self.properties.get(self._read(path_ptr, path_size))
        if value is None:
            return NOT_FOUND
        return self._give(value, ret_ptr, ret_size)

    def proxy_set_tick_period_milliseconds(self, period):
        return OK

    # -- driving
    def call(self, name: str, *args: int):
        return self.exports[name](self.store, *args)

    def metric(self, name: str) -> int:
        return self.metrics[self.names[name]][2]

    def start_plugin(self, root: int, config: dict | None) -> int:
        raw = json.dumps(config).encode() if config is not None else b""
        self.buffers[PLUGIN_CONFIG] = raw
        self.call("proxy_on_context_create", root, 0)
        assert self.call("proxy_on_vm_start", root, 0) == 1
        return self.call("proxy_on_configure", root, len(raw))

    def data(self, ctx: int, direction: int, payload: bytes, eos: int = 0) -> int:
        self.buffers[direction] = payload
        name = "proxy_on_downstream_data" if direction == DOWNSTREAM else "proxy_on_upstream_data"
        return self.call(name, ctx, len(payload), eos)

    def close(self, ctx: int) -> None:
        # Envoy's order when the downstream closes.
        self.call("proxy_on_downstream_connection_close", ctx, 2)
        assert self.call("proxy_on_done", ctx) == 1
        self.call("proxy_on_log", ctx)
        self.call("proxy_on_delete", ctx)


@pytest.fixture(scope="module")
def bytes_counter(tmp_path_factory) -> Path:
    # Build a copy so the test never depends on (or dirties) the shipped example.
    src = examples_dir() / "bytes-counter"
    dst = tmp_path_factory.mktemp("bc")
    for f in ("wirelab.toml", "filter.c"):
        (dst / f).write_bytes((src / f).read_bytes())
    return build_project(Project.load(dst)).wasm


def test_bytes_counter_counts_connections_and_bytes(bytes_counter):
    host = RecordingHost(bytes_counter)
    assert host.start_plugin(1, {"stat_prefix": "pg"}) == 1
    assert sorted(host.names) == [
        "tcp.pg.bytes_total.direction=client",
        "tcp.pg.bytes_total.direction=server",
        "tcp.pg.connections_active",
        "tcp.pg.connections_total",
    ]
    host.call("proxy_on_context_create", 2, 1)
    assert host.call("proxy_on_new_connection", 2) == 0
    assert host.metric("tcp.pg.connections_total") == 1
    assert host.metric("tcp.pg.connections_active") == 1
    assert host.data(2, DOWNSTREAM, b"x" * 100) == 0
    assert host.data(2, UPSTREAM, b"y" * 40) == 0
    assert host.data(2, DOWNSTREAM, b"z" * 23, eos=1) == 0
    assert host.metric("tcp.pg.bytes_total.direction=client") == 123
    assert host.metric("tcp.pg.bytes_total.direction=server") == 40
    host.close(2)
    assert host.metric("tcp.pg.connections_active") == 0
    assert host.metric("tcp.pg.connections_total") == 1
    # Counting bytes needs no buffer reads at all.
    assert host.calls.get("proxy_get_buffer_bytes", 0) == 1  # the plugin config only


def test_bytes_counter_default_prefix_and_one_host_call_per_metric(bytes_counter):
    host = RecordingHost(bytes_counter)
    assert host.start_plugin(1, None) == 1
    assert "tcp.bytes_counter.connections_total" in host.names
    host.call("proxy_on_context_create", 2, 1)
    before = host.calls.get("proxy_increment_metric", 0)
    host.call("proxy_on_new_connection", 2)
    assert host.calls["proxy_increment_metric"] - before == 2  # total + active
    before = host.calls["proxy_increment_metric"]
    host.data(2, DOWNSTREAM, b"abc")
    assert host.calls["proxy_increment_metric"] - before == 1


def test_many_connections_closed_in_any_order(bytes_counter):
    host = RecordingHost(bytes_counter)
    host.start_plugin(1, {"stat_prefix": "many"})
    ids = list(range(2, 402))
    for i in ids:
        host.call("proxy_on_context_create", i, 1)
        host.call("proxy_on_new_connection", i)
    rng = random.Random(7)
    rng.shuffle(ids)
    for n, i in enumerate(ids):
        host.data(i, DOWNSTREAM, b"q" * (i % 13 + 1))
        if n % 2:
            host.close(i)
    for i in ids[::2]:
        host.close(i)
    assert host.metric("tcp.many.connections_total") == 400
    assert host.metric("tcp.many.connections_active") == 0
    assert host.metric("tcp.many.bytes_total.direction=client") == sum(i % 13 + 1 for i in ids)
    # Callbacks for a context that no longer exists are ignored, never trap.
    assert host.data(5, DOWNSTREAM, b"late") == 0


def test_two_plugin_instances_keep_their_own_prefix(bytes_counter):
    host = RecordingHost(bytes_counter)
    host.start_plugin(1, {"stat_prefix": "a"})
    host.buffers[PLUGIN_CONFIG] = b'{"stat_prefix":"b"}'
    host.call("proxy_on_context_create", 9, 0)
    assert host.call("proxy_on_configure", 9, len(host.buffers[PLUGIN_CONFIG])) == 1
    host.call("proxy_on_context_create", 10, 9)
    host.call("proxy_on_new_connection", 10)
    host.call("proxy_on_context_create", 11, 1)
    host.call("proxy_on_new_connection", 11)
    host.data(10, UPSTREAM, b"12345")
    assert host.metric("tcp.b.connections_total") == 1
    assert host.metric("tcp.a.connections_total") == 1
    assert host.metric("tcp.b.bytes_total.direction=server") == 5
    assert host.metric("tcp.a.bytes_total.direction=server") == 0


PROBE_C = r"""
#include <string.h>
#include "wirelab_filter.h"

typedef struct { uint32_t id; uint64_t sum; uint64_t fetched; } conn_state;
WL_CONN_STATE(conn_state)

int wl_on_configure(wl_plugin *p) {
    char prefix[32], tiny[4];
    int small = wl_json_string(p->config, p->config_len, "stat_prefix", tiny, sizeof tiny);
    wl_config_string(p, "stat_prefix", prefix, sizeof prefix, "dflt");
    double ratio = 0;
    int has_ratio = wl_json_number(p->config, p->config_len, "ratio", &ratio);
    wl_info("prefix=%s slow=%lld db=%d user=%d missing=%lld small=%d ratio=%d:%.2f name=%d",
            prefix, (long long)wl_config_int(p, "slow_threshold_ms", -1),
            wl_config_bool(p, "tags.database", 0), wl_config_bool(p, "tags.user", 7),
            (long long)wl_config_int(p, "nope", 42), small, has_ratio, ratio,
            wl_config_int(p, "stat_prefix", -5) == -5);
    return strcmp(prefix, "reject") != 0;
}

void wl_on_new_connection(wl_conn *c) {
    conn_state *s = c->state;
    char addr[64];
    s->id = c->context_id;
    wl_source_address(addr, sizeof addr);
    wl_info("conn %u from %s port %lld dst-port %lld", c->context_id, addr,
            (long long)wl_source_port(), (long long)wl_destination_port());
}

/* Reads the whole read 5 bytes at a time through the decoder fetch contract. */
void wl_on_data(wl_conn *c, wl_read *r) {
    conn_state *s = c->state;
    for (size_t off = 0; off < r->size;) {
        size_t got = 0;
        const uint8_t *p = wl_read_fetch(r, off, 5, &got);
        if (!got) break;
        for (size_t i = 0; i < got; i++) s->sum += p[i];
        s->fetched += got;
        off += got;
    }
}

void wl_on_connection_end(wl_conn *c) {
    conn_state *s = c->state;
    wl_info("end %u state=%u sum=%llu fetched=%llu", c->context_id, s->id,
            (unsigned long long)s->sum, (unsigned long long)s->fetched);
}
"""


def build_one_file(tmp_path_factory, name: str, source: str) -> Path:
    """A one-source C project `name` built in a fresh directory."""
    d = tmp_path_factory.mktemp(name)
    (d / "wirelab.toml").write_text(f'name = "{name}"\nsources = ["{name}.c"]\n')
    (d / f"{name}.c").write_text(source)
    return build_project(Project.load(d)).wasm


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return build_one_file(tmp_path_factory, "probe", PROBE_C)


def test_config_json_lookups(probe):
    host = RecordingHost(probe)
    config = {
        "stat_prefix": 'a"b\u00e9',
        "slow_threshold_ms": 100,
        "tags": {"database": True, "list": [1, {"x": "y"}]},
        "ratio": 1.5,
    }
    assert host.start_plugin(1, config) == 1
    assert host.logs[-1] == (
        2,
        'prefix=a"b\u00e9 slow=100 db=1 user=7 missing=42 small=-1 ratio=0:1.50 name=1',
    )
    host2 = RecordingHost(probe)
    assert host2.start_plugin(1, {"stat_prefix": "reject"}) == 0


def test_properties_and_connection_state(probe):
    host = RecordingHost(probe)
    host.start_plugin(1, {})
    host.properties[b"source\0address"] = b"10.1.2.3:5555"
    host.properties[b"source\0port"] = struct.pack("<q", 5555)
    host.call("proxy_on_context_create", 2, 1)
    host.call("proxy_on_new_connection", 2)
    assert host.logs[-1] == (2, "conn 2 from 10.1.2.3:5555 port 5555 dst-port -1")


def test_fetch_reads_windows_into_static_memory(probe):
    host = RecordingHost(probe)
    host.start_plugin(1, {})
    host.call("proxy_on_context_create", 2, 1)
    host.call("proxy_on_new_connection", 2)
    host.alloc_ptrs.clear()
    before = host.calls["proxy_get_buffer_bytes"]
    payload = bytes(range(256)) * 80 + b"\x07" * 99  # 20,579 bytes: three 8 KiB windows
    host.data(2, DOWNSTREAM, payload)
    assert host.calls["proxy_get_buffer_bytes"] - before == 3
    small = bytes(range(100))
    host.data(2, UPSTREAM, small)
    assert host.calls["proxy_get_buffer_bytes"] - before == 4  # 20 fetches, one host call
    # Each direction always lands in its own static window, never the heap.
    client_win, server_win = host.alloc_ptrs[0], host.alloc_ptrs[-1]
    assert host.alloc_ptrs[:3] == [client_win] * 3 and server_win != client_win
    host.close(2)
    total = sum(payload) + sum(small)
    assert host.logs[-1] == (2, f"end 2 state=2 sum={total} fetched={len(payload) + 100}")


JSON_PROBE_C = r"""
#include <stdlib.h>
#include "wirelab_filter.h"

/* Lookups for the property tests: results go to a fixed buffer the test reads. */
static char out[512];
__attribute__((export_name("out_ptr"))) char *out_ptr(void) { return out; }
__attribute__((export_name("get_string")))
int get_string(const char *j, size_t n, const char *k) {
    return wl_json_string(j, n, k, out, sizeof out);
}
__attribute__((export_name("get_int")))
int get_int(const char *j, size_t n, const char *k) {
    int64_t v; int rc = wl_json_int(j, n, k, &v); if (!rc) *(int64_t *)out = v; return rc;
}
__attribute__((export_name("get_bool")))
int get_bool(const char *j, size_t n, const char *k) {
    int v; int rc = wl_json_bool(j, n, k, &v); if (!rc) out[0] = (char)v; return rc;
}
"""


@pytest.fixture(scope="module")
def json_host(tmp_path_factory) -> RecordingHost:
    d = tmp_path_factory.mktemp("jsonprobe")
    (d / "wirelab.toml").write_text('name = "jsonprobe"\nsources = ["probe.c"]\n')
    (d / "probe.c").write_text(JSON_PROBE_C)
    return RecordingHost(build_project(Project.load(d)).wasm)


def _lookup(host: RecordingHost, kind: str, doc: bytes, key: str):
    jp = host.exports["malloc"](host.store, len(doc) + 1)
    kp = host.exports["malloc"](host.store, len(key) + 1)
    host.memory.write(host.store, doc, jp)
    host.memory.write(host.store, key.encode() + b"\0", kp)
    rc = host.call(f"get_{kind}", jp, len(doc), kp)
    out = host.call("out_ptr")
    raw = host._read(out, 512)
    if rc != 0:
        return None
    if kind == "string":  # raw bytes of the document: garbage in, garbage out (not UTF-8)
        return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    if kind == "int":
        return struct.unpack("<q", raw[:8])[0]
    return bool(raw[0])


keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
scalars = st.one_of(
    st.integers(min_value=-(2**62), max_value=2**62),
    st.booleans(),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
    st.none(),
)
docs = st.dictionaries(
    keys,
    st.one_of(scalars, st.dictionaries(keys, scalars, max_size=4), st.lists(scalars, max_size=3)),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(doc=docs, pretty=st.booleans())
def test_json_reader_agrees_with_python(json_host, doc, pretty):
    text = json.dumps(doc, indent=1 if pretty else None, ensure_ascii=bool(len(doc) % 2)).encode()
    for key, value in doc.items():
        paths = [(key, value)]
        if isinstance(value, dict):
            paths += [(f"{key}.{k}", v) for k, v in value.items()]
        for path, v in paths:
            fits = isinstance(v, str) and len(v.encode()) < 512 and "\0" not in v
            want_str = v if fits else None
            want_bool = v if isinstance(v, bool) else None
            want_int = v if isinstance(v, int) and not isinstance(v, bool) else None
            assert _lookup(json_host, "string", text, path) == want_str
            assert _lookup(json_host, "bool", text, path) == want_bool
            assert _lookup(json_host, "int", text, path) == want_int
    assert _lookup(json_host, "int", text, "absent_key_") is None


@settings(max_examples=200, deadline=None)
@given(junk=st.binary(max_size=64), key=keys)
def test_json_reader_never_traps_on_garbage(json_host, junk, key):
    for doc in (junk, b'{"' + key.encode() + b'":' + junk):
        for kind in ("string", "int", "bool"):
            _lookup(json_host, kind, doc, key)  # any answer, but no trap


HOLD_C = r"""
#include "wirelab_filter.h"

typedef struct { wl_metric bytes; } plugin_state;
WL_PLUGIN_STATE(plugin_state)

int wl_on_configure(wl_plugin *p) {
    char prefix[16];
    wl_config_string(p, "stat_prefix", prefix, sizeof prefix, "x");
    ((plugin_state *)p->state)->bytes = wl_counter("hold.%s.bytes", prefix);
    wl_batch_hold_ms((uint32_t)wl_config_int(p, "hold_ms", 0));
    return 1;
}

void wl_on_data(wl_conn *c, wl_read *r) {
    wl_batch_add(((plugin_state *)c->plugin->state)->bytes, (int64_t)r->size);
}
"""


@pytest.fixture(scope="module")
def holder(tmp_path_factory) -> Path:
    return build_one_file(tmp_path_factory, "hold", HOLD_C)


def test_batch_hold_sends_counters_on_the_tick_and_at_the_connection_end(holder):
    host = RecordingHost(holder)
    assert host.start_plugin(1, {"hold_ms": 500}) == 1
    host.call("proxy_on_context_create", 2, 1)
    host.call("proxy_on_new_connection", 2)
    calls = host.calls.get("proxy_increment_metric", 0)
    for n in (10, 20, 30):
        host.data(2, DOWNSTREAM, b"x" * n)
    # three reads, no metric host call yet
    assert host.calls.get("proxy_increment_metric", 0) == calls
    assert host.metric("hold.x.bytes") == 0
    host.call("proxy_on_tick", 1)
    assert host.metric("hold.x.bytes") == 60
    assert host.calls["proxy_increment_metric"] - calls == 1  # one call for the three reads
    host.data(2, UPSTREAM, b"y" * 7)
    assert host.metric("hold.x.bytes") == 60
    host.close(2)
    assert host.metric("hold.x.bytes") == 67


def test_batch_without_hold_sends_counters_after_each_read(holder):
    host = RecordingHost(holder)
    assert host.start_plugin(1, {}) == 1
    host.call("proxy_on_context_create", 2, 1)
    host.call("proxy_on_new_connection", 2)
    host.data(2, DOWNSTREAM, b"x" * 10)
    assert host.metric("hold.x.bytes") == 10


def test_each_plugin_holds_its_own_batch(holder):
    """Two plugin instances in one VM: one holds its counters, one does not.
    The other's callbacks and ticks never send (or hold) the first one's."""
    host = RecordingHost(holder)
    assert host.start_plugin(1, {"hold_ms": 500, "stat_prefix": "lazy"}) == 1
    assert host.start_plugin(2, {"stat_prefix": "eager"}) == 1
    host.call("proxy_on_context_create", 10, 1)
    host.call("proxy_on_new_connection", 10)
    host.call("proxy_on_context_create", 20, 2)
    host.call("proxy_on_new_connection", 20)
    host.data(10, DOWNSTREAM, b"a" * 5)
    host.data(20, DOWNSTREAM, b"b" * 3)
    assert host.metric("hold.eager.bytes") == 3
    assert host.metric("hold.lazy.bytes") == 0
    host.call("proxy_on_tick", 2)
    assert host.metric("hold.lazy.bytes") == 0
    host.call("proxy_on_tick", 1)
    assert host.metric("hold.lazy.bytes") == 5
