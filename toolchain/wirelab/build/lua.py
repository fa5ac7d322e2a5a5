"""The Lua language path: one runtime module for every Lua project, plus a config.

The runtime (`filters/lua/*.c` + the SDK + the protocol decoders + Lua 5.4) is
compiled once per input hash to `cache_dir()/lua/runtime-<hash>.wasm`, object
file by object file so an edit recompiles one file. A Lua project's build
copies that module to `build/<name>.wasm` and writes the plugin configuration
(`build/<name>.config.json`: the script, its settings, the protocol) after a
syntax check of the script by the runtime's own Lua, run under wasmtime. A
changed script never needs a compile.

Natively (`target="native"`) the same sources, with the SDK's dynamic-modules
backend instead of the proxy-wasm one, link into `runtime-<hash>.so` (Lua's
errors then use the host's setjmp/longjmp, no Wasm exception flags), copied to
`build/lib<name>.so` beside the same config. The script check still runs the
Wasm runtime's Lua, the same Lua 5.4 sources.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import wasmtime

from .. import paths
from ..errors import BuildError
from ..project import Project
from ..wasmfile import debug_path
from . import cache as input_cache
from . import lua_source, validate, zig
from .pipeline import BuildResult

# Lua files that are programs, tests, or libraries the sandbox must not have.
EXCLUDED_LUA_FILES = frozenset(
    {"lua.c", "luac.c", "onelua.c", "ltests.c", "loslib.c", "liolib.c", "loadlib.c", "linit.c",
     "ldblib.c"}
)
EH_FLAGS = (
    "-mexception-handling",
    "-mllvm", "-wasm-enable-sjlj",
    "-mllvm", "-wasm-use-legacy-eh=false",
)
COMPILE_FLAGS = ("--target=wasm32-wasi", "-O2", *EH_FLAGS, "-D_WASI_EMULATED_SIGNAL")
LINK_FLAGS = (
    # no -s: the names go to runtime-<hash>.debug.wasm (split_debug), traps show them
    "--target=wasm32-wasi", "-mexec-model=reactor", "-O2", *EH_FLAGS,
    "-lwasi-emulated-signal",
)
# The host build: a shared library Envoy dlopens; only the SDK's hooks are
# exported. Lua picks _setjmp/_longjmp (no signal-mask save) with LUA_USE_POSIX.
NATIVE_COMPILE_FLAGS = (
    "--target=x86_64-linux-gnu", "-fPIC", "-O2", "-fvisibility=hidden", "-DLUA_USE_POSIX", "-flto",
)
NATIVE_LINK_FLAGS = ("--target=x86_64-linux-gnu", "-shared", "-fPIC", "-O2", "-flto", "-s", "-lm")
# What `envoy --mode validate` configures the runtime with: an empty script.
NATIVE_CHECK_CONFIG = '{"script":"","stat_prefix":"check"}'
# setjmp/longjmp lowered to Wasm exceptions throw this tag; something must define it.
EH_TAG_ASM = ".globl __c_longjmp\n.tagtype __c_longjmp i32\n__c_longjmp:\n"
CONFIG_SUFFIX = ".config.json"


def lua_runtime_dir() -> Path:
    return paths.filters_dir() / "lua"


def _decoder_sources() -> tuple[list[Path], list[str]]:
    sources, defines = [], []
    for proto, macro in (("postgres", "WL_LUA_WITH_POSTGRES"), ("mysql", "WL_LUA_WITH_MYSQL")):
        # the decoder and what sits above it (postgres.c, postgres_tracker.c)
        found = sorted(paths.protocols_dir().glob(f"{proto}*.c"))
        if found and (paths.protocols_dir() / f"{proto}.h").is_file():
            sources += found
            defines.append(f"-D{macro}=1")
    return sources, defines


def _obj_cache() -> Path:
    d = lua_source.lua_cache_root() / "obj"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _headers_digest(dirs: list[Path]) -> str:
    return input_cache.input_hash([h for d in dirs for h in input_cache.headers_under(d)], [])


def _compile_one(src: Path, flags: list[str], headers: str) -> Path:
    key = hashlib.sha256(
        "\0".join([zig.zig_version(), *flags, headers, src.name]).encode() + src.read_bytes()
    ).hexdigest()[:32]
    obj = _obj_cache() / f"{src.stem}-{key}.o"
    if obj.is_file():
        return obj
    tmp = obj.with_name(f".{obj.name}.{os.getpid()}.{id(src)}.tmp")
    argv = [*zig.compiler_command(), *flags, "-c", "-o", str(tmp), str(src)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        diags = zig.parse_diagnostics(proc.stderr + proc.stdout, src.parent, [src])
        detail = "\n".join(map(str, diags)) or (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise BuildError(f"compiling the Lua runtime failed in {src.name}: {detail}")
    os.replace(tmp, obj)
    return obj


def build_runtime(force: bool = False, target: str = "wasm") -> Path:
    """The Lua runtime module (`target` "native": the shared library), compiled
    (or found in the cache) and validated."""
    native = target == "native"
    compile_flags = NATIVE_COMPILE_FLAGS if native else COMPILE_FLAGS
    lua_dir = lua_source.source_dir()
    lua_srcs = sorted(p for p in lua_dir.glob("*.c") if p.name not in EXCLUDED_LUA_FILES)
    decoders, defines = _decoder_sources()
    # the SDK's host-independent files and the backend of the target
    sdk = paths.sdk_dir()
    runtime_srcs = sorted(lua_runtime_dir().glob("*.c")) + sorted(sdk.glob("*.c"))
    runtime_srcs += sorted((sdk / target).glob("*.c"))
    runtime_srcs += decoders
    inc = [lua_runtime_dir(), sdk, sdk / target, paths.protocols_dir(), lua_dir]
    runtime_flags = [*compile_flags, "-std=c11", "-Wall", *defines, *(f"-I{d}" for d in inc)]
    # Extra flags for experiments, e.g. WIRELAB_LUA_CFLAGS=-DWL_LUA_PROFILE (a
    # profiling runtime: lua.<prefix>.profile_{ns,reads,messages} counters).
    runtime_flags += os.environ.get("WIRELAB_LUA_CFLAGS", "").split()
    lua_flags = [*compile_flags, "-std=gnu99"]

    if force:
        for stale in _obj_cache().glob("*.o"):
            stale.unlink(missing_ok=True)
    runtime_headers = _headers_digest(inc)
    lua_headers = _headers_digest([lua_dir])
    jobs = [(s, lua_flags, lua_headers) for s in lua_srcs]
    jobs += [(s, runtime_flags, runtime_headers) for s in runtime_srcs]
    if not native:
        jobs.append((_eh_tag(), [*COMPILE_FLAGS], ""))
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        objects = list(pool.map(lambda j: _compile_one(*j), jobs))

    link_flags = NATIVE_LINK_FLAGS if native else LINK_FLAGS
    digest = hashlib.sha256(
        "\0".join([zig.zig_version(), *link_flags, *(o.name for o in objects)]).encode()
    ).hexdigest()[:24]
    out = lua_source.lua_cache_root() / f"runtime-{digest}.{'so' if native else 'wasm'}"
    if out.is_file() and not force:
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    argv = [*zig.compiler_command(), *link_flags, "-o", str(tmp), *map(str, objects)]
    try:
        zig.compile_wasm(argv, tmp, lua_runtime_dir(), runtime_srcs)
        if not native:  # a shared library is linked stripped (-s) already
            zig.split_debug(tmp, debug_path(out))
        try:
            if native:
                from . import native as native_check

                native_check.validate(tmp, NATIVE_CHECK_CONFIG)
            else:
                validate.validate(tmp)
        except BuildError as exc:
            raise BuildError(f"the Lua runtime module is not loadable by Envoy: {exc}") from None
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _eh_tag() -> Path:
    tag = _obj_cache() / "c_longjmp_tag.s"
    if not tag.is_file() or tag.read_text() != EH_TAG_ASM:
        tag.write_text(EH_TAG_ASM)
    return tag


# ---- script syntax check -----------------------------------------------------------


@cache
def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.wasm_exceptions = True
    return wasmtime.Engine(config)


def _module(runtime: Path) -> wasmtime.Module:
    """The runtime compiled by wasmtime, cached beside it (compiling takes seconds)."""
    engine = _engine()
    serialized = runtime.with_name(runtime.stem + f".wasmtime-{metadata.version('wasmtime')}.cwasm")
    if serialized.is_file():
        try:
            return wasmtime.Module.deserialize_file(engine, str(serialized))
        except wasmtime.WasmtimeError:
            serialized.unlink(missing_ok=True)
    module = wasmtime.Module(engine, runtime.read_bytes())
    fd, tmp = tempfile.mkstemp(dir=serialized.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(module.serialize())
    os.replace(tmp, serialized)
    return module


def check_script(runtime: Path, source: bytes, name: str) -> str | None:
    """Compile `source` with the runtime's Lua (no execution): None, or `name:LINE: message`."""
    store = wasmtime.Store(_engine())
    store.set_wasi(wasmtime.WasiConfig())
    linker = wasmtime.Linker(_engine())
    linker.define_wasi()
    module = _module(runtime)
    linker.define_unknown_imports_as_traps(module)
    inst = linker.instantiate(store, module)
    exports = inst.exports(store)
    exports["_initialize"](store)
    memory = exports["memory"]
    malloc = exports["malloc"]
    blob = source + b"\0" + name.encode() + b"\0"
    ptr = malloc(store, len(blob))
    memory.write(store, blob, ptr)
    result = exports["wirelab_lua_check"](store, ptr, len(source), ptr + len(source) + 1)
    if not result:
        return None
    raw = memory.read(store, result, result + 1024)
    return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")


# ---- projects --------------------------------------------------------------------------


def plugin_config(project: Project, source: str) -> dict[str, Any]:
    """The plugin configuration the runtime reads in proxy_on_configure."""
    m = project.manifest
    settings = {k: v for k, v in m.config.items() if k != "limits"}
    cfg: dict[str, Any] = {
        "script": source,
        "script_name": m.script or "filter.lua",
        "protocol": m.protocol,
        "stat_prefix": str(m.config.get("stat_prefix", project.name)),
        "settings": settings,
    }
    if "metrics_flush_ms" in m.config:  # the runtime's, not only the script's
        cfg["metrics_flush_ms"] = m.config["metrics_flush_ms"]
    limits = m.config.get("limits")
    if limits is not None:
        if not isinstance(limits, dict):
            raise BuildError(f"{project.root / 'wirelab.toml'}: [config.limits] must be a table")
        unknown = set(limits) - {"instructions", "memory_kb", "tag_sets"}
        if unknown:
            raise BuildError(
                f"{project.root / 'wirelab.toml'}: unknown [config.limits] key(s) "
                f"{', '.join(sorted(unknown))} (use instructions, memory_kb, tag_sets)"
            )
        cfg["limits"] = limits
    return cfg


def config_path(project: Project) -> Path:
    return project.build_dir / f"{project.name}{CONFIG_SUFFIX}"


def build_lua(project: Project, force: bool = False, target: str = "wasm") -> BuildResult:
    started = time.monotonic()
    script = project.script_path
    assert script is not None  # Project.load checked it
    raw = script.read_bytes()
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BuildError(f"{project.manifest.script}: not UTF-8 text ({exc})") from None
    checker = build_runtime(force=force)
    runtime = build_runtime(force=force, target=target) if target == "native" else checker
    problem = check_script(checker, raw, project.manifest.script or "filter.lua")
    if problem:
        raise BuildError(problem)
    config_text = json.dumps(plugin_config(project, source), indent=2, sort_keys=True) + "\n"
    project.build_dir.mkdir(parents=True, exist_ok=True)
    out = project.output_path(target)
    cfg_out = config_path(project)
    same_wasm = out.is_file() and out.read_bytes() == runtime.read_bytes()
    same_cfg = cfg_out.is_file() and cfg_out.read_text() == config_text
    if not same_wasm or force:
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        shutil.copyfile(runtime, tmp)
        os.replace(tmp, out)
    if debug_path(runtime).is_file() and (not same_wasm or force
                                          or not debug_path(out).is_file()):
        shutil.copyfile(debug_path(runtime), debug_path(out))  # names for traps
    if not same_cfg or force:
        tmp = cfg_out.with_name(f".{cfg_out.name}.{os.getpid()}.tmp")
        tmp.write_text(config_text)
        os.replace(tmp, cfg_out)
    cached = same_wasm and same_cfg and not force
    return BuildResult(out, out.stat().st_size, cached, time.monotonic() - started,
                       target=target)
