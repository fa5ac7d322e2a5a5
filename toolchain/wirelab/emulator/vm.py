"""One Wasm VM (one Envoy worker's copy of the plugin) and the host functions it imports.

Host functions are bound methods registered once per VM; they read guest
memory through the raw data pointer and hand data to the guest through its own
allocator, the way proxy-wasm cpp-host does inside Envoy.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import wasmtime

from ..errors import WirelabError
from . import abi
from ._wasm import GuestTrap, OutOfBounds, RawFunc, Store, TrapRequest, memmove, string_at
from .metrics import Metric

if TYPE_CHECKING:
    from .host import Connection, Emulator

_U32 = struct.Struct("<I")
_U32X2 = struct.Struct("<II")
_U64 = struct.Struct("<Q")
_MASK64 = (1 << 64) - 1

CALLBACKS = (
    "_initialize", "main", "__main_void", "_start",
    "proxy_on_context_create", "proxy_on_vm_start", "proxy_on_configure", "proxy_on_tick",
    "proxy_on_new_connection", "proxy_on_downstream_data", "proxy_on_upstream_data",
    "proxy_on_downstream_connection_close", "proxy_on_upstream_connection_close",
    "proxy_on_done", "proxy_on_log", "proxy_on_delete", "proxy_on_queue_ready",
    "proxy_on_foreign_function",
)


class UnimplementedHostCall(WirelabError):
    """Strict mode: the filter called a host function the emulator does not emulate."""


class EmulatorError(WirelabError):
    """The module cannot run the way Envoy would run it (load, start or configure failed)."""


@dataclass
class TrapInfo:
    """A trap (runtime error) in a callback, with the wasm backtrace."""

    callback: str
    message: str
    frames: list[str]
    worker: int
    context_id: int | None

    def __str__(self) -> str:
        trace = " <- ".join(self.frames) if self.frames else "no backtrace"
        return f"{self.callback} trapped: {self.message.splitlines()[0]} [{trace}]"


@dataclass
class Context:
    id: int
    conn: Connection | None = None  # None for the root (plugin) context
    buffers: dict[int, bytes] = field(default_factory=dict)  # buffer type -> bytes
    properties: dict[str, bytes] = field(default_factory=dict)  # set_property values
    awaiting_done: bool = False  # on_done returned false; waits for proxy_done
    done_called: bool = False


class VM:
    def __init__(self, emu: Emulator, worker: int, generation: int = 0):
        self.emu, self.state, self.worker, self.generation = emu, emu.state, worker, generation
        self.st = Store()
        self._link(emu.module)
        try:
            inst = self.st.instantiate(emu.module)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise EmulatorError(f"{emu.path}: cannot instantiate the module: {exc}") from None
        self.cb: dict[str, RawFunc] = {}
        for name in CALLBACKS:
            f = self.st.export(inst, name)
            if f is not None:
                self.cb[name] = f
        alloc = self.st.export(inst, "malloc") or self.st.export(inst, "proxy_on_memory_allocate")
        if alloc is None:
            raise EmulatorError(
                f"{emu.path}: the module exports neither malloc nor proxy_on_memory_allocate "
                "(Envoy needs one; link wasi-libc or export an allocator)"
            )
        self.alloc = alloc
        self.root = Context(emu.root_context_id)
        self.contexts: dict[int, Context] = {self.root.id: self.root}
        self.next_id = self.root.id + 1
        self.current: Context | None = None
        self.failed: TrapInfo | None = None
        self.failed_at_ns = 0
        self.tick_period_ms = 0
        self.next_tick_ns: int | None = None
        self._metric_ids: dict[tuple[int, str], int] = {}
        self._metric_by_id: dict[int, Metric] = {}
        self._next_metric = [abi.COUNTER, abi.GAUGE, abi.HISTOGRAM]
        self._stdio: dict[int, str] = {}

    # --- linking ------------------------------------------
    def _link(self, module: wasmtime.Module) -> None:
        for imp in module.imports:
            mod, name, ty = imp.module, imp.name, imp.type
            if not isinstance(ty, wasmtime.FuncType):
                raise EmulatorError(
                    f"{self.emu.path}: imports {mod}.{name}, which is not a function; "
                    "Envoy provides only functions (let the module define its own memory)"
                )
            if not abi.envoy_provides(mod, name):
                raise EmulatorError(
                    f"{self.emu.path}: imports {mod}.{name}, which Envoy does not provide "
                    "(the module would fail to load in Envoy); remove that call"
                )
            sig = _signature(ty)
            impl = self._host_function(mod, name)
            table = abi.WASI_FUNCTIONS if mod in abi.WASI_MODULES else (
                abi.PROXY_FUNCTIONS | abi.ENV_EXTRAS)
            if impl is not None and table.get(name) != sig:
                raise EmulatorError(
                    f"{self.emu.path}: imports {mod}.{name} with signature {sig[0]}->{sig[1]}, "
                    f"but Envoy's has {table.get(name)}; fix the import declaration"
                )
            if impl is None:
                impl = self._unimplemented(mod, name, sig[1])
            self.st.define(mod, name, sig[0], sig[1], impl)

    def _host_function(self, mod: str, name: str) -> Any:
        if mod == "env":
            return getattr(self, "h_" + name, None)
        return getattr(self, "wasi_" + name, None)

    def _unimplemented(self, mod: str, name: str, results: str) -> Any:
        strict = self.emu.strict
        status = abi.WASI_NOSYS if mod in abi.WASI_MODULES else abi.UNIMPLEMENTED

        def stub(*_args: int) -> int | None:
            if strict:
                raise UnimplementedHostCall(
                    f"the filter called {mod}.{name}, which Envoy provides but the wirelab "
                    "emulator does not implement; load with strict=False to get "
                    f"status {status} instead"
                )
            return status if results else None

        return stub

    # --- calling into the guest ------------------------------------------
    def invoke(self, name: str, ctx: Context | None, *args: int) -> int | None:
        """Run a callback with `ctx` current; a trap marks the VM failed and returns None."""
        f = self.cb.get(name)
        if f is None or self.failed is not None:
            return None
        prev, self.current = self.current, ctx
        try:
            return f(*args)
        except GuestTrap as trap:
            frames = self.emu.symbols.frames(trap.frames, trap.offsets)
            self.failed = TrapInfo(name, trap.message, frames, self.worker,
                                   ctx.id if ctx else None)
            self.failed_at_ns = self.state.now_ns
            self.emu._trapped(self, self.failed)
            return None
        finally:
            self.current = prev

    def start(self) -> None:
        """Envoy's VM start: _initialize (then main), root context, vm_start, configure."""
        emu = self.emu
        for name in ("_initialize", "__main_void", "main") if "_initialize" in self.cb else (
                "_start",):
            f = self.cb.get(name)
            if f is None:
                continue
            self.invoke(name, None, *([0, 0] if f.nparams == 2 else []))
            self._check_start(name)
        self.invoke("proxy_on_context_create", self.root, self.root.id, 0)
        self._check_start("proxy_on_context_create")
        self.root.buffers[abi.VM_CONFIGURATION] = emu.vm_config
        ok = self.invoke("proxy_on_vm_start", self.root, self.root.id, len(emu.vm_config))
        self._check_start("proxy_on_vm_start")
        if ok == 0:
            raise EmulatorError(
                f"{emu.path}: proxy_on_vm_start returned false for vm_config "
                f"{emu.vm_config[:80]!r}; Envoy would refuse to start (check the VM configuration)"
            )
        self.root.buffers[abi.PLUGIN_CONFIGURATION] = emu.plugin_config
        logged = len(emu.logs)
        ok = self.invoke("proxy_on_configure", self.root, self.root.id, len(emu.plugin_config))
        del self.root.buffers[abi.PLUGIN_CONFIGURATION]  # Envoy only offers it during configure
        self._check_start("proxy_on_configure")
        if ok == 0:
            # The filter's own error lines say why (a Lua script's message, file and line).
            said = [msg for lvl, msg in emu.logs[logged:] if lvl in ("error", "critical")]
            if said:
                raise EmulatorError(
                    f"{emu.path}: proxy_on_configure returned false: {'; '.join(said)} "
                    "(Envoy would reject the configuration too; fix what the message names)"
                )
            raise EmulatorError(
                f"{emu.path}: proxy_on_configure returned false for plugin config "
                f"{emu.plugin_config[:80]!r}; Envoy would reject it (fix the plugin configuration)"
            )

    def _check_start(self, step: str) -> None:
        if self.failed is not None:
            raise EmulatorError(
                f"{self.emu.path}: {self.failed}; Envoy would fail to start the plugin at {step}"
            )

    def new_context(self, conn: Connection) -> Context:
        ctx = Context(self.next_id, conn)
        self.next_id += 1
        self.contexts[ctx.id] = ctx
        return ctx

    # --- memory helpers ------------------------------------------
    def _read(self, ptr: int, size: int) -> bytes:
        base, length = self.st.memory()
        if ptr + size > length:
            raise OutOfBounds(ptr, size)
        return string_at(base + ptr, size)

    def _put(self, ptr: int, data: bytes) -> None:
        base, length = self.st.memory()
        if ptr + len(data) > length:
            raise OutOfBounds(ptr, len(data))
        memmove(base + ptr, data, len(data))

    def _give(self, data: bytes, ret_ptr: int, ret_size: int) -> int:
        """Copy `data` into a guest allocation and return (ptr, size) through pointers."""
        n = len(data)
        ptr = 0
        if n:
            ptr = self.alloc(n) & 0xFFFFFFFF
            if ptr == 0:
                return abi.INVALID_MEMORY_ACCESS
        base, length = self.st.memory()  # after alloc: the memory may have grown
        if ptr + n > length or ret_ptr + 4 > length or ret_size + 4 > length:
            return abi.INVALID_MEMORY_ACCESS
        if n:
            memmove(base + ptr, data, n)
        memmove(base + ret_ptr, _U32.pack(ptr), 4)
        memmove(base + ret_size, _U32.pack(n), 4)
        return abi.OK

    def _ctx(self) -> Context:
        return self.current or self.root

    # --- logging ------------------------------------------
    def h_proxy_log(self, level: int, ptr: int, size: int) -> int:
        if not 0 <= level < len(abi.LOG_LEVELS):
            return abi.BAD_ARGUMENT
        try:
            msg = self._read(ptr, size)
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        if level >= self.emu.log_level:
            self.emu.logs.append((abi.LOG_LEVELS[level], msg.decode("utf-8", "replace")))
        return abi.OK

    def h_proxy_get_log_level(self, ret: int) -> int:
        try:
            self._put(ret, _U32.pack(self.emu.log_level))
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        return abi.OK

    # --- buffers ------------------------------------------
    def _buffer(self, btype: int) -> bytes | None:
        ctx = self._ctx()
        buf = ctx.buffers.get(btype)
        if buf is None and btype == abi.VM_CONFIGURATION:
            return self.emu.vm_config
        return buf

    def h_proxy_get_buffer_bytes(self, btype: int, start: int, max_size: int, ret_ptr: int,
                                 ret_size: int) -> int:
        buf = self._buffer(btype)
        if buf is None:
            return abi.NOT_FOUND
        # cpp-host clamps: a start past the end or a zero length is OK with nothing.
        if start > len(buf) or max_size == 0:
            return self._give(b"", ret_ptr, ret_size)
        return self._give(buf[start:start + max_size], ret_ptr, ret_size)

    def h_proxy_get_buffer_status(self, btype: int, ret_size: int, ret_flags: int) -> int:
        buf = self._buffer(btype)
        if buf is None:
            return abi.NOT_FOUND
        try:
            self._put(ret_size, _U32.pack(len(buf)))
            self._put(ret_flags, _U32.pack(0))
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        return abi.OK

    def h_proxy_set_buffer_bytes(self, btype: int, start: int, size: int, ptr: int,
                                 length: int) -> int:
        ctx = self._ctx()
        if btype not in (abi.DOWNSTREAM_DATA, abi.UPSTREAM_DATA):
            return abi.NOT_FOUND if self._buffer(btype) is None else abi.UNIMPLEMENTED
        buf = ctx.buffers.get(btype)
        if buf is None:
            return abi.NOT_FOUND
        try:
            data = self._read(ptr, length)
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        # Envoy: start 0 drains `size` bytes then prepends; start >= len appends.
        if start == 0:
            new = data + buf[size:]
        elif start >= len(buf):
            new = buf + data
        else:
            return abi.BAD_ARGUMENT
        ctx.buffers[btype] = new
        if ctx.conn is not None:
            ctx.conn._modified("client" if btype == abi.DOWNSTREAM_DATA else "server",
                               start, size, data)
        return abi.OK

    # --- streams ------------------------------------------
    def h_proxy_continue_stream(self, stype: int) -> int:
        conn = self._ctx().conn
        if stype == abi.STREAM_UPSTREAM:
            return abi.UNIMPLEMENTED  # Envoy never implemented continueWriting here
        if stype != abi.STREAM_DOWNSTREAM or conn is None:
            return abi.BAD_ARGUMENT
        self.emu._resuming.append(conn)  # takes effect when the callback returns
        return abi.OK

    def h_proxy_close_stream(self, stype: int) -> int:
        conn = self._ctx().conn
        if stype not in (abi.STREAM_DOWNSTREAM, abi.STREAM_UPSTREAM) or conn is None:
            return abi.BAD_ARGUMENT
        # Both close Envoy's (downstream) connection with FlushWrite, after the callback.
        conn._request_close()
        return abi.OK

    # --- metrics ------------------------------------------
    def h_proxy_define_metric(self, mtype: int, name_ptr: int, name_size: int, ret_id: int) -> int:
        if mtype not in abi.METRIC_TYPE_NAMES:
            return abi.BAD_ARGUMENT
        try:
            name = self._read(name_ptr, name_size).decode("utf-8", "replace")
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        mid = self._metric_ids.get((mtype, name))
        if mid is None:
            mid = self._next_metric[mtype]
            self._next_metric[mtype] += 4  # the type lives in the low two bits
            self._metric_ids[(mtype, name)] = mid
            self._metric_by_id[mid] = self.state.metrics.define(name, mtype)
        try:
            self._put(ret_id, _U32.pack(mid))
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        return abi.OK

    def h_proxy_increment_metric(self, mid: int, delta: int) -> int:
        m = self._metric_by_id.get(mid)
        if m is None:
            return abi.NOT_FOUND
        if m.type == abi.COUNTER:
            if delta <= 0:
                return abi.BAD_ARGUMENT
            m.value += delta
        elif m.type == abi.GAUGE:
            m.value += delta
        else:
            return abi.BAD_ARGUMENT
        return abi.OK

    def h_proxy_record_metric(self, mid: int, value: int) -> int:
        m = self._metric_by_id.get(mid)
        if m is None:
            return abi.NOT_FOUND
        value &= _MASK64  # the ABI passes a u64
        if m.type == abi.COUNTER:
            m.value += value  # Envoy adds, it does not set
        elif m.type == abi.GAUGE:
            m.value = value
        else:
            m.samples.append(value)
        return abi.OK

    def h_proxy_get_metric(self, mid: int, ret: int) -> int:
        m = self._metric_by_id.get(mid)
        if m is None:
            return abi.NOT_FOUND
        if m.type == abi.HISTOGRAM:
            return abi.BAD_ARGUMENT
        try:
            self._put(ret, _U64.pack(m.value & _MASK64))
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        return abi.OK

    # --- properties ------------------------------------------
    def h_proxy_get_property(self, path_ptr: int, path_size: int, ret_ptr: int,
                             ret_size: int) -> int:
        try:
            raw = self._read(path_ptr, path_size)
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        path = ".".join(p.decode("utf-8", "replace") for p in raw.split(b"\0") if p)
        value = self.emu._property(self._ctx(), path)
        if value is None:
            return abi.NOT_FOUND
        return self._give(value, ret_ptr, ret_size)

    def h_proxy_set_property(self, path_ptr: int, path_size: int, val_ptr: int,
                             val_size: int) -> int:
        try:
            raw, value = self._read(path_ptr, path_size), self._read(val_ptr, val_size)
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        path = ".".join(p.decode("utf-8", "replace") for p in raw.split(b"\0") if p)
        self._ctx().properties[path] = value
        return abi.OK

    # --- time ------------------------------------------
    def h_proxy_set_tick_period_milliseconds(self, period: int) -> int:
        self.tick_period_ms = period
        self.next_tick_ns = self.state.now_ns + period * 1_000_000 if period else None
        return abi.OK

    def h_proxy_get_current_time_nanoseconds(self, ret: int) -> int:
        try:
            self._put(ret, _U64.pack(self.state.realtime_ns))
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        return abi.OK

    # --- shared data and queues ------------------------------------------
    def h_proxy_get_shared_data(self, key_ptr: int, key_size: int, ret_val: int,
                                ret_size: int, ret_cas: int) -> int:
        try:
            key = self._read(key_ptr, key_size)
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        status, value, cas = self.state.get_data(self.emu.vm_id, key)
        if status != abi.OK:
            return status
        status = self._give(value, ret_val, ret_size)
        if status == abi.OK:
            try:
                self._put(ret_cas, _U32.pack(cas & 0xFFFFFFFF))
            except OutOfBounds:
                return abi.INVALID_MEMORY_ACCESS
        return status

    def h_proxy_set_shared_data(self, key_ptr: int, key_size: int, val_ptr: int, val_size: int,
                                cas: int) -> int:
        try:
            key, value = self._read(key_ptr, key_size), self._read(val_ptr, val_size)
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        return self.state.set_data(self.emu.vm_id, key, value, cas)

    def h_proxy_register_shared_queue(self, name_ptr: int, name_size: int, ret_id: int) -> int:
        try:
            name = self._read(name_ptr, name_size).decode("utf-8", "replace")
            qid = self.state.register_queue(self.emu.vm_id, name, self)
            self._put(ret_id, _U32.pack(qid))
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        return abi.OK

    def h_proxy_resolve_shared_queue(self, vm_ptr: int, vm_size: int, name_ptr: int,
                                     name_size: int, ret_id: int) -> int:
        try:
            vm_id = self._read(vm_ptr, vm_size).decode("utf-8", "replace")
            name = self._read(name_ptr, name_size).decode("utf-8", "replace")
            qid = self.state.resolve_queue(vm_id or self.emu.vm_id, name)
            if qid is None:
                return abi.NOT_FOUND
            self._put(ret_id, _U32.pack(qid))
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        return abi.OK

    def h_proxy_enqueue_shared_queue(self, qid: int, ptr: int, size: int) -> int:
        q = self.state.queue(qid)
        if q is None:
            return abi.NOT_FOUND
        try:
            q.items.append(self._read(ptr, size))
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        if q.owner is not None:
            self.emu._queue_ready.append((q.owner, qid))  # delivered after this callback
        return abi.OK

    def h_proxy_dequeue_shared_queue(self, qid: int, ret_ptr: int, ret_size: int) -> int:
        status, item = self.state.dequeue(qid)
        if status != abi.OK:
            return status
        return self._give(item, ret_ptr, ret_size)

    # --- contexts ------------------------------------------
    def h_proxy_set_effective_context(self, cid: int) -> int:
        ctx = self.contexts.get(cid)
        if ctx is None:
            return abi.BAD_ARGUMENT
        self.current = ctx
        return abi.OK

    def h_proxy_done(self) -> int:
        ctx = self._ctx()
        if not ctx.awaiting_done:
            return abi.NOT_FOUND
        ctx.done_called = True
        self.emu._done_ready.append(ctx)
        return abi.OK

    def h_proxy_call_foreign_function(self, name_ptr: int, name_size: int, *_rest: int) -> int:
        try:
            name = self._read(name_ptr, name_size).decode("utf-8", "replace")
        except OutOfBounds:
            return abi.INVALID_MEMORY_ACCESS
        if self.emu.strict:
            raise UnimplementedHostCall(
                f"the filter called foreign function {name!r}, which the wirelab emulator "
                "does not implement; load with strict=False to get NOT_FOUND instead"
            )
        return abi.NOT_FOUND

    def h_pthread_equal(self, a: int, b: int) -> int:
        return int(a == b)

    def h_emscripten_notify_memory_growth(self, _index: int) -> None:
        return None

    # --- WASI ------------------------------------------
    def wasi_fd_write(self, fd: int, iovs: int, iovs_len: int, nwritten: int) -> int:
        if fd not in (1, 2):
            return abi.WASI_BADF
        try:
            vec = self._read(iovs, 8 * iovs_len)
            parts = [self._read(*_U32X2.unpack_from(vec, 8 * i)) for i in range(iovs_len)]
            data = b"".join(parts)
            self._put(nwritten, _U32.pack(len(data)))
        except OutOfBounds:
            return abi.WASI_FAULT
        # cpp-host logs each write: stdout at INFO, stderr at ERROR.
        level = 2 if fd == 1 else 4
        text = data.decode("utf-8", "replace").rstrip("\n")
        if text and level >= self.emu.log_level:
            self.emu.logs.append((abi.LOG_LEVELS[level], text))
        return abi.WASI_SUCCESS

    def wasi_fd_read(self, *_a: int) -> int:
        return abi.WASI_BADF

    def wasi_fd_seek(self, *_a: int) -> int:
        return abi.WASI_BADF

    def wasi_fd_close(self, *_a: int) -> int:
        return abi.WASI_BADF

    def wasi_fd_fdstat_get(self, fd: int, buf: int) -> int:
        if fd not in (1, 2):
            return abi.WASI_BADF
        try:
            # filetype character device, no flags, rights: fd_write
            self._put(buf, bytes([2, 0, 0, 0, 0, 0, 0, 0]) + _U64.pack(64) + _U64.pack(0))
        except OutOfBounds:
            return abi.WASI_FAULT
        return abi.WASI_SUCCESS

    def wasi_fd_fdstat_set_flags(self, *_a: int) -> int:
        return abi.WASI_NOSYS

    def wasi_fd_prestat_get(self, *_a: int) -> int:
        return abi.WASI_BADF  # no preopened directories: wasi-libc stops looking

    def wasi_fd_prestat_dir_name(self, *_a: int) -> int:
        return abi.WASI_NOSYS

    def wasi_fd_filestat_get(self, *_a: int) -> int:
        return abi.WASI_BADF

    def wasi_path_open(self, *_a: int) -> int:
        return abi.WASI_NOSYS

    def wasi_path_filestat_get(self, *_a: int) -> int:
        return abi.WASI_NOSYS

    def _environ(self) -> list[bytes]:
        return [f"{k}={v}".encode() + b"\0" for k, v in self.emu.environment.items()]

    def wasi_environ_sizes_get(self, count_ptr: int, size_ptr: int) -> int:
        env = self._environ()
        try:
            self._put(count_ptr, _U32.pack(len(env)))
            self._put(size_ptr, _U32.pack(sum(map(len, env))))
        except OutOfBounds:
            return abi.WASI_FAULT
        return abi.WASI_SUCCESS

    def wasi_environ_get(self, ptrs: int, buf: int) -> int:
        try:
            for i, item in enumerate(self._environ()):
                self._put(ptrs + 4 * i, _U32.pack(buf))
                self._put(buf, item)
                buf += len(item)
        except OutOfBounds:
            return abi.WASI_FAULT
        return abi.WASI_SUCCESS

    def wasi_args_sizes_get(self, argc: int, size: int) -> int:
        try:
            self._put(argc, _U32.pack(0))
            self._put(size, _U32.pack(0))
        except OutOfBounds:
            return abi.WASI_FAULT
        return abi.WASI_SUCCESS

    def wasi_args_get(self, *_a: int) -> int:
        return abi.WASI_SUCCESS

    def wasi_clock_time_get(self, clock: int, _precision: int, ret: int) -> int:
        # Both clocks come from the virtual clock, so latencies replay identically.
        if clock == abi.CLOCK_REALTIME:
            now = self.state.realtime_ns
        elif clock == abi.CLOCK_MONOTONIC:
            now = self.state.monotonic_ns
        else:
            return abi.WASI_INVAL
        try:
            self._put(ret, _U64.pack(now))
        except OutOfBounds:
            return abi.WASI_FAULT
        return abi.WASI_SUCCESS

    def wasi_clock_res_get(self, clock: int, ret: int) -> int:
        if clock not in (abi.CLOCK_REALTIME, abi.CLOCK_MONOTONIC):
            return abi.WASI_INVAL
        try:
            self._put(ret, _U64.pack(1))
        except OutOfBounds:
            return abi.WASI_FAULT
        return abi.WASI_SUCCESS

    def wasi_random_get(self, buf: int, size: int) -> int:
        if size > 64 * 1024:  # cpp-host's limit
            return abi.WASI_INVAL
        try:
            self._put(buf, self.emu._random(size))
        except OutOfBounds:
            return abi.WASI_FAULT
        return abi.WASI_SUCCESS

    def wasi_proc_exit(self, code: int) -> None:
        # cpp-host only reports it; wasi-libc then reaches `unreachable`. Trap here
        # with a message that says why.
        raise _ProcExit(code)

    def wasi_sched_yield(self) -> int:
        return abi.WASI_SUCCESS

    def wasi_poll_oneoff(self, *_a: int) -> int:
        return abi.WASI_NOTSUP


class _ProcExit(TrapRequest):
    def __init__(self, code: int):
        super().__init__(f"proc_exit({code})")
        self.code = code


def _signature(ty: wasmtime.FuncType) -> tuple[str, str]:
    def code(v: wasmtime.ValType) -> str:
        s = str(v)
        if s == "i32":
            return "i"
        if s == "i64":
            return "I"
        raise EmulatorError(f"unsupported value type {s} in an import")

    return "".join(map(code, ty.params)), "".join(map(code, ty.results))


def random_source(seed: int | None) -> Any:
    if seed is None:
        return os.urandom
    import random

    rng = random.Random(seed)
    return rng.randbytes
