"""The emulated Envoy: load a filter, open connections, push bytes, read metrics.

    host = Emulator.load("build/f.wasm", plugin_config={"stat_prefix": "app"})
    conn = host.connect(src=("10.0.0.1", 5555), dst=("10.0.0.2", 5432))
    conn.downstream(b"...")
    conn.upstream(b"...")
    conn.close(by="client")
    assert host.metrics.counter("tcp.app.bytes") == 42

The callback order, buffer rules and failure handling follow what Envoy's
network Wasm filter really does (see docs/conversation-format.md and the
reference notes), not the letter of the spec.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..errors import WirelabError
from . import abi
from ._wasm import load_module
from .logs import Logs, level_name
from .metrics import Metrics
from .shared import EnvoyState
from .symbols import Symbols
from .vm import VM, Context, EmulatorError, TrapInfo, random_source

_POLICIES = {
    "FAIL_CLOSED": "FAIL_CLOSED", "CLOSED": "FAIL_CLOSED",
    "FAIL_OPEN": "FAIL_OPEN", "OPEN": "FAIL_OPEN",
    "FAIL_RELOAD": "FAIL_RELOAD", "RELOAD": "FAIL_RELOAD",
}
_U64 = struct.Struct("<Q")


@dataclass(frozen=True)
class Modification:
    """The filter changed traffic (set_buffer_bytes): where, and with what."""

    direction: Literal["client", "server"]
    start: int
    size: int
    data: bytes


def _config_bytes(value: bytes | str | dict | None) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


def _encode_property(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return _U64.pack(value & ((1 << 64) - 1))
    return str(value).encode()


# Lists that collect every Emulator made while they are registered: the pytest
# plugin registers one per test to report the filters' errors when it fails.
watchers: list[list[Emulator]] = []


def problems(emulator: Emulator) -> list[str]:
    """What went wrong inside a filter: error log lines (a Lua error's message, file
    and line) and traps."""
    out = [f"{lvl}: {msg}" for lvl, msg in emulator.logs if lvl in ("error", "critical")]
    return out + [f"trap: {t}" for t in emulator.traps]


class Emulator:
    """One plugin in an emulated Envoy, with `workers` VMs (one per worker thread)."""

    root_context_id = 1

    def __init__(
        self,
        path: str | Path,
        *,
        plugin_config: bytes | str | dict | None = None,
        vm_config: bytes | str | dict | None = None,
        failure_policy: str = "FAIL_CLOSED",
        workers: int = 1,
        strict: bool = True,
        log_level: str = "info",
        plugin_name: str = "wirelab",
        root_id: str = "",
        vm_id: str = "",
        properties: dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        reload_backoff_ms: int = 1000,
        share_with: Emulator | None = None,
        seed: int | None = 0,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise WirelabError(
                f"{self.path} does not exist (build the filter with `wirelab build`)"
            )
        policy = _POLICIES.get(failure_policy.upper())
        if policy is None:
            raise WirelabError(
                f"unknown failure_policy {failure_policy!r}; "
                "use FAIL_CLOSED, FAIL_OPEN or FAIL_RELOAD"
            )
        if workers < 1:
            raise WirelabError("workers must be at least 1")
        self.failure_policy = policy
        self.plugin_config = _config_bytes(plugin_config)
        self.vm_config = _config_bytes(vm_config)
        self.strict = strict
        self.log_level = abi.LOG_LEVELS.index(level_name(log_level))
        self.plugin_name, self.root_id, self.vm_id = plugin_name, root_id, vm_id
        self.properties = {k: _encode_property(v) for k, v in (properties or {}).items()}
        self.environment = dict(environment or {})
        self.reload_backoff_ns = reload_backoff_ms * 1_000_000
        self.state = share_with.state if share_with else EnvoyState()
        self.logs = Logs()
        self.traps: list[TrapInfo] = []
        self._random = random_source(seed)
        self._queue_ready: list[tuple[VM, int]] = []
        self._closing: list[tuple[Connection, int]] = []
        self._done_ready: list[Context] = []
        self._resuming: list[Connection] = []
        self._next_conn = 0
        self.connections: list[Connection] = []
        self.symbols = Symbols(self.path)  # names in trap backtraces, read on a trap
        for watcher in watchers:
            watcher.append(self)
        try:
            self.module = load_module(self.path)
        except Exception as exc:  # wasmtime's compile errors
            raise EmulatorError(f"{self.path} is not a loadable Wasm module: {exc}") from None
        exports = {e.name for e in self.module.exports}
        if not any(n.startswith("proxy_abi_version_") for n in exports):
            raise EmulatorError(
                f"{self.path}: no proxy_abi_version_0_2_1 export; Envoy rejects the module "
                "(\"Missing or unknown Proxy-Wasm ABI version\") - build it with the wirelab SDK"
            )
        self.vms: list[VM] = []
        for w in range(workers):
            vm = VM(self, w)
            self.vms.append(vm)
            self.state.vms.append(vm)
            vm.start()
        self._drain()

    @classmethod
    def load(cls, path: str | Path, **options: Any) -> Emulator:
        return cls(path, **options)

    # --- what tests read ------------------------------------------
    @property
    def metrics(self) -> Metrics:
        return self.state.metrics

    @property
    def plugin_stats(self) -> dict[str, int]:
        """Envoy's own per-plugin counters: vm_reload_success, _failure, _backoff."""
        return self.state.plugin_stats

    @property
    def now_ms(self) -> float:
        return self.state.now_ns / 1e6

    @property
    def tick_period_ms(self) -> int:
        return self.vms[0].tick_period_ms

    @property
    def modifications(self) -> list[Modification]:
        return [m for c in self.connections for m in c.modifications]

    def assert_no_traps(self) -> None:
        if self.traps:
            raise AssertionError("; ".join(map(str, self.traps)))

    # --- driving ------------------------------------------
    def connect(self, src: tuple[str, int] = ("10.0.0.1", 40000),
                dst: tuple[str, int] = ("10.0.0.2", 5432), worker: int | None = None) -> Connection:
        """A new downstream connection: context_create then new_connection."""
        if worker is None:
            worker = self._next_conn % len(self.vms)
        self._next_conn += 1
        conn = Connection(self, self._next_conn, src, dst, worker)
        self.connections.append(conn)
        conn._open()
        self._drain()
        return conn

    def advance(self, ms: float = 0, *, ns: int = 0) -> None:
        """Move the virtual clock forward by `ms` (+ `ns`), firing tick timers that fall due."""
        state = self.state
        target = state.now_ns + int(ms * 1_000_000) + ns
        while True:
            due = [v for v in state.vms if v.next_tick_ns is not None and v.failed is None
                   and v.next_tick_ns <= target]
            if not due:
                break
            vm = min(due, key=lambda v: v.next_tick_ns or 0)
            state.now_ns = max(state.now_ns, vm.next_tick_ns or 0)
            vm.next_tick_ns = state.now_ns + vm.tick_period_ms * 1_000_000
            vm.invoke("proxy_on_tick", vm.root, vm.root.id)
            vm.emu._drain()
        state.now_ns = target

    # --- called by VMs and connections ------------------------------------------
    def _trapped(self, vm: VM, info: TrapInfo) -> None:
        self.traps.append(info)

    def _property(self, ctx: Context, path: str) -> bytes | None:
        if path in ctx.properties:
            return ctx.properties[path]
        if ctx.conn is not None:
            value = ctx.conn._property(path)
            if value is not None:
                return value
        if path == "plugin_name":
            return self.plugin_name.encode()
        if path == "plugin_root_id":
            return self.root_id.encode()
        if path == "plugin_vm_id":
            return self.vm_id.encode()
        return self.properties.get(path)

    def _drain(self) -> None:
        """Run what Envoy defers until the current callback returns."""
        while self._closing or self._queue_ready or self._done_ready or self._resuming:
            if self._resuming:
                self._resuming.pop(0)._resume()
            elif self._closing:
                conn, peer = self._closing.pop(0)
                conn._finish(peer)
            elif self._done_ready:
                ctx = self._done_ready.pop(0)
                if ctx.conn is not None:
                    ctx.conn._log_and_delete()
            else:
                vm, qid = self._queue_ready.pop(0)
                vm.invoke("proxy_on_queue_ready", vm.root, vm.root.id, qid)

    def _vm_for_new_connection(self, worker: int) -> VM | None:
        """Envoy's maybeReloadHandleIfNeeded: None means 'no filter' (fail open)."""
        vm = self.vms[worker]
        if vm.failed is None:
            return vm
        if self.failure_policy == "FAIL_RELOAD":
            if self.state.now_ns - vm.failed_at_ns < self.reload_backoff_ns:
                self.state.bump("vm_reload_backoff")
                return vm
            try:
                fresh = VM(self, worker, vm.generation + 1)
                fresh.start()
            except EmulatorError:
                self.state.bump("vm_reload_failure")
                vm.failed_at_ns = self.state.now_ns
                return vm
            self.state.bump("vm_reload_success")
            self.state.vms.remove(vm)
            self.state.vms.append(fresh)
            self.vms[worker] = fresh
            return fresh
        return vm


class Connection:
    """One downstream connection through the filter chain."""

    def __init__(self, emu: Emulator, number: int, src: tuple[str, int], dst: tuple[str, int],
                 worker: int):
        self.emu, self.number, self.src, self.dst, self.worker = emu, number, src, dst, worker
        self.vm: VM | None = None
        self.ctx: Context | None = None
        self.filter_active = False  # False: no filter on this connection (fail open)
        self.closed = False
        self.closed_by: str | None = None  # client, server, filter, filter_failure
        self.modifications: list[Modification] = []
        self.forwarded = {"client": 0, "server": 0}  # bytes passed on by the filter chain
        self.undelivered = 0  # bytes offered after the connection was closed
        self.paused = {"client": False, "server": False}
        self._eos = {"client": False, "server": False}
        self._upstream_closed = False
        self._finished = False

    # --- public ------------------------------------------
    @property
    def context_id(self) -> int | None:
        return self.ctx.id if self.ctx else None

    @property
    def modified(self) -> bool:
        return bool(self.modifications)

    def downstream(self, data: bytes, end_of_stream: bool = False) -> None:
        """Client -> server bytes: proxy_on_downstream_data."""
        self._deliver("client", bytes(data), end_of_stream)
        self.emu._drain()

    def upstream(self, data: bytes, end_of_stream: bool = False) -> None:
        """Server -> client bytes: proxy_on_upstream_data (then the synthesized close on EOS)."""
        self._deliver("server", bytes(data), end_of_stream)
        self.emu._drain()

    def close(self, by: Literal["client", "server"] = "client") -> None:
        """Envoy's close: missing end-of-streams, upstream close, downstream close, done."""
        if by not in ("client", "server", "recorder"):
            raise WirelabError(f"close(by={by!r}): use 'client' or 'server'")
        if self.closed:
            return
        # tcp_proxy half-closes: the closer's FIN is passed on, the other peer
        # answers with its own, and only then does the downstream connection
        # close. The last FIN decides the peer type: the server's (client closed
        # first) makes Envoy close the client side, LOCAL; the client's (server
        # closed first) is a REMOTE close. Checked against Envoy 1.40 by
        # tests/e2e/test_parity.py.
        order = ("client", "server") if by != "server" else ("server", "client")
        for direction in order:
            if not self._eos[direction] and not self.closed:
                self._deliver(direction, b"", True)
                self.emu._drain()
        if not self.closed:
            self._finish(abi.PEER_REMOTE if by == "server" else abi.PEER_LOCAL, by)
        self.emu._drain()

    # --- internals ------------------------------------------
    def _open(self) -> None:
        vm = self.emu._vm_for_new_connection(self.worker)
        if vm is None or vm.failed is not None:
            if self.emu.failure_policy == "FAIL_OPEN":
                return  # the filter is not added to this connection
            self._fail_close()
            return
        self.vm, self.filter_active = vm, True
        self.ctx = vm.new_context(self)
        vm.invoke("proxy_on_context_create", self.ctx, self.ctx.id, vm.root.id)
        if not self._check_vm():
            return
        vm.invoke("proxy_on_new_connection", self.ctx, self.ctx.id)
        self._check_vm()

    def _check_vm(self) -> bool:
        """After a callback: apply the failure policy if the VM failed. True = carry on."""
        vm = self.vm
        if vm is None or vm.failed is None:
            return True
        if self.emu.failure_policy == "FAIL_OPEN":
            self.filter_active = False
        else:
            self._fail_close()
        return False

    def _fail_close(self) -> None:
        # Envoy's failStream: both sides closed with FlushWrite; no more callbacks.
        self.closed, self.closed_by, self._finished = True, "filter_failure", True
        self.filter_active = False

    def _deliver(self, direction: str, data: bytes, eos: bool) -> None:
        if self.closed:
            self.undelivered += len(data)
            return
        if eos:
            self._eos[direction] = True
        if not self.filter_active:
            self.forwarded[direction] += len(data)
            return
        if not self._check_vm():
            if not self.closed:
                self.forwarded[direction] += len(data)
            else:
                self.undelivered += len(data)
            return
        vm, ctx = self.vm, self.ctx
        assert vm is not None and ctx is not None
        btype = abi.DOWNSTREAM_DATA if direction == "client" else abi.UPSTREAM_DATA
        held = ctx.buffers.get(btype)
        buf = held + data if held is not None and self.paused[direction] else data
        ctx.buffers[btype] = buf
        cb = "proxy_on_downstream_data" if direction == "client" else "proxy_on_upstream_data"
        action = vm.invoke(cb, ctx, ctx.id, len(buf), int(eos))
        if not self._check_vm():
            ctx.buffers.pop(btype, None)
            if not self.closed:
                self.forwarded[direction] += len(buf)
            return
        if action == abi.PAUSE:
            self.paused[direction] = True  # Envoy keeps buffering; data_size grows
        else:
            self._release(direction)
        if direction == "server" and eos and not self._upstream_closed and not self.closed:
            # Envoy does not watch the upstream connection; it makes this up from EOS.
            self._upstream_closed = True
            vm.invoke("proxy_on_upstream_connection_close", ctx, ctx.id, abi.PEER_UNKNOWN)
            self._check_vm()

    def _release(self, direction: str) -> None:
        assert self.ctx is not None
        btype = abi.DOWNSTREAM_DATA if direction == "client" else abi.UPSTREAM_DATA
        buf = self.ctx.buffers.pop(btype, b"")
        self.forwarded[direction] += len(buf)
        self.paused[direction] = False

    def _resume(self) -> None:
        if self.paused["client"]:
            self._release("client")

    def _modified(self, direction: Literal["client", "server"], start: int, size: int,
                  data: bytes) -> None:
        self.modifications.append(Modification(direction, start, size, data))

    def _request_close(self) -> None:
        self.emu._closing.append((self, abi.PEER_LOCAL))

    def _finish(self, peer: int, by: str = "filter") -> None:
        if self._finished:
            return
        self._finished = True
        self.closed, self.closed_by = True, self.closed_by or by
        if not self.filter_active or self.vm is None or self.ctx is None:
            return
        vm, ctx = self.vm, self.ctx
        for direction in ("client", "server"):
            if self.paused[direction]:
                self._release(direction)
        vm.invoke("proxy_on_downstream_connection_close", ctx, ctx.id, peer)
        if vm.failed is not None:
            return
        ok = vm.invoke("proxy_on_done", ctx, ctx.id)
        if vm.failed is not None:
            return
        if ok == 0 and "proxy_on_done" in vm.cb:
            ctx.awaiting_done = True  # the filter calls proxy_done later
            return
        self._log_and_delete()

    def _log_and_delete(self) -> None:
        vm, ctx = self.vm, self.ctx
        if vm is None or ctx is None or vm.failed is not None:
            return
        ctx.awaiting_done = False
        vm.invoke("proxy_on_log", ctx, ctx.id)
        vm.invoke("proxy_on_delete", ctx, ctx.id)
        vm.contexts.pop(ctx.id, None)

    def _property(self, path: str) -> bytes | None:
        if path == "source.address":
            return f"{self.src[0]}:{self.src[1]}".encode()
        if path == "source.port":
            return _U64.pack(self.src[1])
        if path == "destination.address":
            return f"{self.dst[0]}:{self.dst[1]}".encode()
        if path == "destination.port":
            return _U64.pack(self.dst[1])
        if path == "connection.id":
            return _U64.pack(self.number)
        if path == "connection.mtls":
            return b"\x00"
        return None
