"""Low-overhead glue to wasmtime: raw host functions, raw export calls, memory.

wasmtime-py's `Func.__call__` and its host-function trampoline look types up,
box every value and allocate per call (~18 µs and ~10 µs a crossing). The
emulator crosses the boundary several times per read, so it uses the C API's
"unchecked" entry points directly: arguments and results travel in a reusable
array of 16-byte `wasmtime_val_raw_t` slots, and the module's signatures are
checked once at load time instead of on every call.
"""

from __future__ import annotations

import ctypes
import re
import struct
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

_DLL = ffi.dll
_SLOT = 16  # sizeof(wasmtime_val_raw_t)

# Our own function pointers (CDLL.__getitem__ returns a fresh object), so our
# argtypes never change the ones wasmtime-py itself uses.
_HOSTFN = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                           ctypes.c_size_t)
_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_NO_FINALIZER = ctypes.cast(None, _FINALIZER)

_define = _DLL["wasmtime_linker_define_func_unchecked"]
_define.restype = ctypes.c_void_p
_define.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                    ctypes.c_size_t, ctypes.c_void_p, _HOSTFN, ctypes.c_void_p, _FINALIZER]

_call = _DLL["wasmtime_func_call_unchecked"]
_call.restype = ctypes.c_void_p
_call.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                  ctypes.c_void_p]

_mem_data = _DLL["wasmtime_memory_data"]
_mem_data.restype = ctypes.c_size_t
_mem_data.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_mem_size = _DLL["wasmtime_memory_data_size"]
_mem_size.restype = ctypes.c_size_t
_mem_size.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

_trap_new = _DLL["wasmtime_trap_new"]
_trap_new.restype = ctypes.c_size_t
_trap_new.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

string_at = ctypes.string_at
memmove = ctypes.memmove
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


@cache
def engine() -> wasmtime.Engine:
    cfg = wasmtime.Config()
    cfg.wasm_exceptions = True  # the Lua runtime's setjmp/longjmp use Wasm EH
    return wasmtime.Engine(cfg)


_modules: dict[tuple[str, int, int], wasmtime.Module] = {}


def load_module(path: Path) -> wasmtime.Module:
    """Compile once per file version; every VM of every emulator shares it."""
    if path.suffix == ".so" or path.read_bytes()[:4] == b"\x7fELF":
        from ..errors import WirelabError

        raise WirelabError(
            f"{path} is a native Envoy module: the emulator runs Wasm builds only. Test the "
            "native build in real Envoy (`wirelab test --e2e --target native`, "
            "Lab(target=\"native\")) and the .wasm in the emulator"
        )
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    mod = _modules.get(key)
    if mod is None:
        mod = wasmtime.Module(engine(), path.read_bytes())
        _modules[key] = mod
    return mod


class TrapRequest(Exception):
    """Raised by a host function to trap the guest on purpose (e.g. proc_exit)."""


class Store:
    """One wasmtime store (= one VM instance) with raw call and memory access."""

    def __init__(self) -> None:
        self.store = wasmtime.Store(engine())
        self.ctx = ctypes.cast(self.store._context(), ctypes.c_void_p).value
        self.linker = wasmtime.Linker(engine())
        self._linker_ptr = ctypes.cast(self.linker.ptr(), ctypes.c_void_p).value
        self._keep: list[Any] = []  # host callbacks must outlive the store
        self.pending: BaseException | None = None  # raised in a host fn, re-raised by call()
        self._mem: Any = None
        self._mem_ref: int = 0

    # --- imports ------------------------------------------
    def define(self, module: str, name: str, params: str, results: str,
               fn: Callable[..., int | None]) -> None:
        """Define import module.name; `params`/`results` are strings of 'i' (i32), 'I' (i64).

        `fn` gets the arguments as Python ints (i32 signed) and returns the result.
        """
        types = {"i": wasmtime.ValType.i32(), "I": wasmtime.ValType.i64()}
        ftype = wasmtime.FuncType([types[c] for c in params], [types[c] for c in results])
        self._keep.append(ftype)
        offsets = [i * _SLOT for i in range(len(params))]
        # i32 arguments are pointers, sizes and ids: read them unsigned.
        readers = [(ctypes.c_uint32 if c == "i" else ctypes.c_int64) for c in params]
        rtype = ctypes.c_int32 if results == "i" else ctypes.c_int64
        owner = self

        def trampoline(_env, _caller, args, _n):  # noqa: ANN001 - C callback
            try:
                values = [r.from_address(args + o).value for r, o in zip(readers, offsets,
                                                                         strict=True)]
                out = fn(*values)
                if results:
                    rtype.from_address(args).value = out
                return 0
            except TrapRequest as exc:
                msg = str(exc).encode()
                return _trap_new(msg, len(msg))
            except BaseException as exc:  # noqa: BLE001 - must not unwind through C
                owner.pending = exc
                msg = f"host function {name} raised {type(exc).__name__}".encode()
                return _trap_new(msg, len(msg))

        cb = _HOSTFN(trampoline)
        self._keep.append(cb)
        m, n = module.encode(), name.encode()
        err = _define(self._linker_ptr, m, len(m), n, len(n),
                      ctypes.cast(ftype.ptr(), ctypes.c_void_p), cb, None, _NO_FINALIZER)
        if err:
            raise wasmtime.WasmtimeError._from_ptr(
                ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))

    def instantiate(self, module: wasmtime.Module) -> wasmtime.Instance:
        inst = self.linker.instantiate(self.store, module)
        mem = inst.exports(self.store).get("memory")
        if isinstance(mem, wasmtime.Memory):
            self._mem = mem
            self._mem_ref = ctypes.addressof(mem._memory)
        return inst

    # --- exports ------------------------------------------
    def export(self, instance: wasmtime.Instance, name: str) -> RawFunc | None:
        f = instance.exports(self.store).get(name)
        if not isinstance(f, wasmtime.Func):
            return None
        ty = f.type(self.store)
        return RawFunc(self, name, f, len(ty.params), len(ty.results),
                       [str(p) for p in ty.params], [str(r) for r in ty.results])

    # --- memory ------------------------------------------
    def memory(self) -> tuple[int, int]:
        """(base address, length) of the guest memory; both can change when it grows."""
        ref = self._mem_ref
        return _mem_data(self.ctx, ref), _mem_size(self.ctx, ref)


class GuestTrap(Exception):
    """The guest trapped (unreachable, out of bounds, abort, uncaught exception)."""

    def __init__(self, message: str, frames: list[str], offsets: list[int] | None = None):
        super().__init__(message)
        self.message = message
        self.frames = frames
        self.offsets = offsets or []  # each frame's byte offset in the module


class RawFunc:
    """An export called through wasmtime_func_call_unchecked with a reused arg array."""

    __slots__ = ("st", "name", "func", "nparams", "nresults", "params", "results",
                 "_buf", "_addr", "_fref", "_slots")

    def __init__(self, st: Store, name: str, func: wasmtime.Func, nparams: int, nresults: int,
                 params: list[str], results: list[str]):
        self.st, self.name, self.func = st, name, func
        self.nparams, self.nresults = nparams, nresults
        self.params, self.results = params, results
        self._slots = max(nparams, nresults, 1)
        self._buf = ctypes.create_string_buffer(self._slots * _SLOT)
        self._addr = ctypes.addressof(self._buf)
        self._fref = ctypes.addressof(func._func)

    def __call__(self, *args: int) -> int | None:
        addr = self._addr
        for i, a in enumerate(args):
            ctypes.c_int64.from_address(addr + i * _SLOT).value = a
        trap = ctypes.c_void_p(0)
        err = _call(self.st.ctx, self._fref, addr, self._slots, ctypes.addressof(trap))
        if trap.value or err:
            self._raise(trap.value, err)
        if self.nresults:
            return ctypes.c_int32.from_address(addr).value
        return None

    def _raise(self, trap: int | None, err: int | None) -> None:
        pending, self.st.pending = self.st.pending, None
        if pending is not None:
            raise pending
        if trap:
            t = wasmtime.Trap._from_ptr(ctypes.cast(trap, ctypes.POINTER(ffi.wasm_trap_t)))
            raise GuestTrap(*_split_trap(t.message))
        e = wasmtime.WasmtimeError._from_ptr(
            ctypes.cast(err, ctypes.POINTER(ffi.wasmtime_error_t)))
        raise GuestTrap(*_split_trap(str(e)))


_FRAME = re.compile(r"^\s*\d+:\s+0x([0-9a-f]+) - (.*)$")


def _split_trap(text: str) -> tuple[str, list[str], list[int]]:
    """wasmtime's text -> (the cause, one line; the backtrace frames, innermost first;
    each frame's offset in the module)."""
    found = [m for line in text.splitlines() if (m := _FRAME.match(line))]
    cause = text.split("Caused by:", 1)[1] if "Caused by:" in text else text
    lines = [ln.strip() for ln in cause.strip().splitlines() if ln.strip()]
    return ((lines[0] if lines else text.strip()), [m.group(2) for m in found],
            [int(m.group(1), 16) for m in found])


def read_bytes(st: Store, ptr: int, size: int) -> bytes:
    base, length = st.memory()
    if ptr < 0 or size < 0 or ptr + size > length:
        raise OutOfBounds(ptr, size)
    return string_at(base + ptr, size)


class OutOfBounds(Exception):
    def __init__(self, ptr: int, size: int):
        super().__init__(f"guest pointer {ptr:#x}+{size} is outside memory")
