"""Builds and runs the libFuzzer targets under tests/fuzz/.

Each target is one C file, compiled by clang with libFuzzer, AddressSanitizer
and UndefinedBehaviorSanitizer together with the sources it exercises. Seed
corpora are written at run time from the recorded conversations in
tests/fixtures/conversations/ (nothing generated is committed except crash
inputs, which go to tests/fuzz/regressions/<target>/ with their fix).

    python tests/fuzz/fuzzing.py --seconds 60            # every target
    python tests/fuzz/fuzzing.py --seconds 600 postgres  # one target
    python tests/fuzz/fuzzing.py --replay                # regressions only
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FILTERS = ROOT / "filters"
PROTOCOLS = FILTERS / "protocols"
FIXTURES = ROOT / "tests" / "fixtures" / "conversations"
REGRESSIONS = HERE / "regressions"
WORK = ROOT / "build" / "fuzz"

# Inputs longer than this are cut by libFuzzer; a conversation's opening
# (startup, authentication, first commands) fits, and longer inputs only slow
# the byte-by-byte splitting down.
MAX_LEN = 4096
SANITIZERS = "-fsanitize=fuzzer,address,undefined"
LUA_SANITIZERS = "-fsanitize=address,undefined"


@dataclass(frozen=True)
class Target:
    name: str
    harness: str
    sources: Callable[[], list[Path]]
    include: tuple[Path, ...]
    seeds: Callable[[Path], int]
    dictionary: str | None = None
    defines: tuple[str, ...] = ()
    cflags: tuple[str, ...] = ()
    extra: Callable[[Path], list[str]] = field(default=lambda _work: [])


def protocol_sources(proto: str) -> list[Path]:
    """The decoder and whatever sits beside it (the statement tracker the
    harness feeds): every filters/protocols/<proto>*.c."""
    return sorted(PROTOCOLS.glob(f"{proto}*.c"))


# ---- seed corpora ---------------------------------------------------------


def encode_chunks(reads: Iterable[tuple[int, bytes]], limit: int = MAX_LEN) -> bytes:
    """Reads (direction 0 client / 1 server, bytes) in the chunk format of
    tests/fuzz/split.h, cut at `limit` bytes."""
    out = bytearray()
    for direction, data in reads:
        for i in range(0, max(len(data), 1), 0xFFFF):
            part = data[i:i + 0xFFFF]
            flag = 0x80 if direction else 0
            if len(part) < 127:
                out += bytes([flag | len(part)]) + part
            else:
                out += bytes([flag | 127]) + struct.pack("<H", len(part)) + part
        if len(out) >= limit:
            break
    return bytes(out[:limit])


HANDSHAKE_READS = 6  # startup/greeting through authentication, for both protocols
SEEDS_PER_CONNECTION = 24


def conversation_seeds(proto: str, corpus: Path) -> int:
    """Seeds from every recorded connection of `proto`: the connection's
    opening, then its handshake followed by successive slices of the rest
    (inputs are short, so later traffic would otherwise never be reached)."""
    sys.path.insert(0, str(ROOT / "toolchain"))
    from wirelab.conversation import Conversation

    count = 0
    for path in sorted((FIXTURES / proto).glob("*.jsonl")):
        conv = Conversation.load(path)
        for conn in conv.connections:
            reads = [(0 if e.dir == "client" else 1, e.data) for e in conn.events if e.ev == "data"]
            if not reads:
                continue
            head, rest = reads[:HANDSHAKE_READS], reads[HANDSHAKE_READS:]
            seeds = [encode_chunks(reads)]
            budget = MAX_LEN - len(encode_chunks(head))
            i = 0
            while i < len(rest) and budget > 256 and len(seeds) < SEEDS_PER_CONNECTION:
                j, size = i, 0
                while j < len(rest) and size + len(rest[j][1]) + 3 <= budget:
                    size += len(rest[j][1]) + 3
                    j += 1
                j = max(j, i + 1)
                seeds.append(encode_chunks(head + rest[i:j]))
                i = j
            for k, seed in enumerate(seeds):
                (corpus / f"seed-{path.stem}-{conn.id}-{k}").write_bytes(seed)
                count += 1
    return count


def json_seeds(corpus: Path) -> int:
    """Plugin configurations: the shipped filters' and examples' JSON, plus
    hand-written edge cases. A seed is `key` NUL `json`."""
    samples = [
        ("stat_prefix", '{"stat_prefix": "pg", "tags": {"database": true}}'),
        ("tags.database", '{"tags": {"database": true, "user": false}}'),
        ("limit", '{"limit": 12345678901234, "x": [1, 2, {"y": null}]}'),
        ("s", '{"s": "a\\u00e9\\ud83d\\ude00\\n\\"q\\"", "t": -1.5e300}'),
        ("a.b.c", '{"a": {"b": {"c": "deep"}}}'),
        ("n", '{"n": -0.0, "m": 1e-400, "k": 9223372036854775807}'),
        ("script", '{"script": "function envoy_on_pg_message(c, m) end", "budget": 1000}'),
    ]
    for path in sorted(ROOT.glob("examples/**/*.json")) + sorted(ROOT.glob("filters/*/*.json")):
        text = path.read_text(errors="replace")
        for key in re.findall(r'"([A-Za-z_][A-Za-z0-9_]*)"\s*:', text)[:3]:
            samples.append((key, text))
    for i, (key, text) in enumerate(samples):
        (corpus / f"seed-{i}").write_bytes(key.encode() + b"\0" + text.encode()[:MAX_LEN])
    return len(samples)


def lua_source_dir() -> Path:
    """Lua 5.4's sources, downloaded and cached by wirelab's own build (never
    committed)."""
    sys.path.insert(0, str(ROOT / "toolchain"))
    from wirelab.build import lua_source

    return lua_source.source_dir()


def lua_runtime_sources() -> list[Path]:
    lua_source_dir()  # Lua's headers must be in place before the runtime compiles
    # the SDK's host-independent files and its proxy-wasm backend (fuzz_lua.c is the host)
    sdk = sorted((FILTERS / "sdk").glob("*.c")) + sorted((FILTERS / "sdk" / "wasm").glob("*.c"))
    return sorted((FILTERS / "lua").glob("*.c")) + sdk + protocol_sources("postgres") + \
        protocol_sources("mysql")


def lua_objects(out_dir: Path) -> list[str]:
    """Lua's own files, compiled once per work directory with the sanitizers
    (the same files wirelab's runtime build leaves out, it leaves out here).

    They get ASan and UBSan but no coverage instrumentation: the script is
    fixed, so the interpreter's branches say nothing the runtime's and the
    decoders' do not, and tracing every comparison of the interpreter loop
    took most of each execution and filled the corpus with inputs that
    differed only in which string or table path Lua took."""
    sys.path.insert(0, str(ROOT / "toolchain"))
    from wirelab.build.lua import EXCLUDED_LUA_FILES

    src = lua_source_dir()
    flags = ["-std=gnu99", "-g", "-O1", LUA_SANITIZERS, "-fno-sanitize-recover=all"]
    obj_dir = out_dir / "lua-obj"
    obj_dir.mkdir(exist_ok=True)
    # Objects built with other flags (an older harness) are rebuilt.
    stamp = obj_dir / "flags"
    if not stamp.exists() or stamp.read_text() != " ".join(flags):
        for old in obj_dir.glob("*.o"):
            old.unlink()
        stamp.write_text(" ".join(flags))
    objects = []
    for c in sorted(src.glob("*.c")):
        if c.name in EXCLUDED_LUA_FILES:
            continue
        obj = obj_dir / (c.stem + ".o")
        if not obj.exists() or obj.stat().st_mtime < c.stat().st_mtime:
            subprocess.run([clang(), *flags, "-c", str(c), "-o", str(obj)], check=True,
                           capture_output=True)
        objects.append(str(obj))
    return objects + [f"-I{src}"]


def lua_seeds(corpus: Path) -> int:
    """The protocol seeds, each behind its protocol byte (0 postgres, 1 mysql)."""
    count = 0
    for flag, proto in ((b"\0", "postgres"), (b"\1", "mysql")):
        tmp = corpus / f"_{proto}"
        tmp.mkdir()
        conversation_seeds(proto, tmp)
        for seed in sorted(tmp.iterdir()):
            (corpus / f"{proto}-{seed.name}").write_bytes(flag + seed.read_bytes()[:MAX_LEN - 1])
            seed.unlink()
            count += 1
        tmp.rmdir()
    return count


TARGETS: dict[str, Target] = {
    "postgres": Target(
        name="postgres",
        harness="fuzz_postgres.c",
        sources=lambda: protocol_sources("postgres"),
        include=(PROTOCOLS,),
        seeds=lambda corpus: conversation_seeds("postgres", corpus),
        dictionary="postgres.dict",
    ),
    "mysql": Target(
        name="mysql",
        harness="fuzz_mysql.c",
        sources=lambda: protocol_sources("mysql"),
        include=(PROTOCOLS,),
        seeds=lambda corpus: conversation_seeds("mysql", corpus),
        dictionary="mysql.dict",
    ),
    "lua": Target(
        name="lua",
        harness="fuzz_lua.c",
        sources=lambda: lua_runtime_sources(),
        include=(HERE / "native", FILTERS / "lua", FILTERS / "sdk", FILTERS / "sdk" / "wasm",
                 PROTOCOLS),
        seeds=lua_seeds,
        dictionary="postgres.dict",
        defines=("WL_LUA_WITH_POSTGRES=1", "WL_LUA_WITH_MYSQL=1", "WL_PROXY_WASM_ON_HOST=1"),
        # Wasm-only attributes in the SDK header.
        cflags=("-Wno-unknown-attributes",),
        extra=lambda out_dir: lua_objects(out_dir),
    ),
    "json": Target(
        name="json",
        harness="fuzz_json.c",
        sources=lambda: [FILTERS / "sdk" / "wl_json.c"],
        include=(FILTERS / "sdk", PROTOCOLS),
        seeds=json_seeds,
        dictionary="json.dict",
        # The SDK header declares the proxy-wasm imports with Wasm-only
        # attributes; a native build ignores them (nothing here calls them).
        cflags=("-Wno-unknown-attributes",),
    ),
}


# ---- build and run --------------------------------------------------------


def clang() -> str:
    found = shutil.which(os.environ.get("CLANG", "clang"))
    if not found:
        raise RuntimeError("clang is not installed: apt-get install clang libclang-rt-14-dev "
                           "(scripts/install-system-deps.sh does it)")
    return found


def build(target: Target, work: Path = WORK) -> Path:
    """Compiles `target` into work/<name>/fuzz-<name>; returns the binary."""
    out_dir = work / target.name
    out_dir.mkdir(parents=True, exist_ok=True)
    binary = out_dir / f"fuzz-{target.name}"
    # Warnings are shown, not fatal: the sources under test belong to their
    # own builds (which use -Werror), and a new file beside a decoder must not
    # stop the fuzzing of the rest.
    cmd = [clang(), "-std=c11", "-g", "-O1", "-Wall", "-Wextra",
           "-Wno-unused-function", SANITIZERS, "-fno-sanitize-recover=all",
           "-fno-omit-frame-pointer", f"-I{HERE}"]
    cmd += list(target.cflags)
    cmd += [f"-I{p}" for p in target.include] + [f"-D{d}" for d in target.defines]
    cmd += [str(HERE / target.harness)] + [str(s) for s in target.sources()]
    cmd += target.extra(out_dir) + ["-o", str(binary)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"building fuzz target {target.name} failed:\n{proc.stderr[-4000:]}")
    return binary


@dataclass
class FuzzRun:
    target: str
    seconds: int  # wall clock the run took (--runs can end it before the limit)
    executions: int
    corpus: int
    crashes: list[Path]
    returncode: int
    log: str
    # CPU time the fuzzer used (user + system): on a shared machine the wall
    # clock rate says as much about the neighbours as about the target.
    cpu_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.crashes


def sanitizer_env() -> dict[str, str]:
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1:symbolize=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    return env


def fuzz(target: Target, seconds: int, work: Path = WORK, runs: int = 0,
         workers: int = 1) -> FuzzRun:
    """Runs `target` for `seconds` on a corpus seeded from the fixtures (kept
    between runs in work/<name>/corpus); crash inputs land in work/<name>/.
    With `workers` > 1, libFuzzer's fork mode runs that many processes on the
    one corpus (the only way one target uses more than one core)."""
    binary = build(target, work)
    out_dir = binary.parent
    corpus = out_dir / "corpus"
    corpus.mkdir(exist_ok=True)
    seeds = out_dir / "seeds"
    shutil.rmtree(seeds, ignore_errors=True)
    seeds.mkdir()
    target.seeds(seeds)
    regressions = REGRESSIONS / target.name
    for old in out_dir.glob("crash-*"):
        old.unlink()
    cmd = [str(binary), f"-max_total_time={seconds}", f"-max_len={MAX_LEN}", "-timeout=10",
           "-rss_limit_mb=2048", "-print_final_stats=1", f"-artifact_prefix={out_dir}/"]
    if runs:  # stop at this many executions, or at the time limit if that comes first
        cmd.append(f"-runs={runs}")
    if workers > 1:
        cmd.append(f"-fork={workers}")
    if target.dictionary:
        cmd.append(f"-dict={HERE / target.dictionary}")
    cmd += [str(corpus), str(seeds)]
    if regressions.is_dir():
        cmd.append(str(regressions))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=sanitizer_env(),
                          timeout=seconds + 300)
    took = max(1, round(time.monotonic() - started))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log = proc.stderr
    size = re.findall(r"corp: (\d+)[/ ]", log)
    crashes = sorted(p for p in out_dir.iterdir()
                     if p.name.startswith(("crash-", "leak-", "timeout-", "oom-")))
    return FuzzRun(target.name, took, executions(log),
                   int(size[-1]) if size else 0, crashes, proc.returncode, log, cpu)


def executions(log: str) -> int:
    """The executions a libFuzzer log reports. In fork mode the final stats
    are the parent's own (0): the total is on its last progress line
    ("#N: cov: ...", a form only fork mode prints)."""
    progress = re.findall(r"^#(\d+): cov:", log, re.M)
    if progress:
        return int(progress[-1])
    final = re.search(r"stat::number_of_executed_units:\s*(\d+)", log)
    return int(final.group(1)) if final else 0


def replay(target: Target, inputs: list[Path], work: Path = WORK) -> subprocess.CompletedProcess:
    """Runs every input once through the target (libFuzzer's file mode)."""
    binary = build(target, work)
    return subprocess.run([str(binary), *map(str, inputs)], capture_output=True, text=True,
                          env=sanitizer_env(), timeout=600)


def regression_inputs(name: str) -> list[Path]:
    directory = REGRESSIONS / name
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("targets", nargs="*", default=list(TARGETS), help="default: all")
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("FUZZ_RUNS", "0")),
                    help="stop a target after this many executions (0: only --seconds)")
    ap.add_argument("--workers", type=int, default=int(os.environ.get("FUZZ_WORKERS", "1")),
                    help="processes per target (libFuzzer fork mode; default 1)")
    ap.add_argument("--replay", action="store_true", help="only replay the committed regressions")
    args = ap.parse_args(argv)
    failed = False
    for name in args.targets:
        target = TARGETS[name]
        if args.replay:
            inputs = regression_inputs(name)
            proc = replay(target, inputs) if inputs else None
            ok = proc is None or proc.returncode == 0
            print(f"{name}: {len(inputs)} regression inputs {'ok' if ok else 'FAILED'}")
            if not ok:
                print(proc.stderr[-4000:])
            failed |= not ok
            continue
        run = fuzz(target, args.seconds, runs=args.runs, workers=args.workers)
        print(f"{name}: {run.executions:,} executions in {run.seconds} s "
              f"({run.executions // max(run.seconds, 1):,}/s; {run.cpu_seconds:.0f} CPU-s, "
              f"{run.executions / max(run.cpu_seconds, 0.001):,.0f} per CPU-s), "
              f"corpus {run.corpus}, crashes {len(run.crashes)}", flush=True)
        if not run.ok:
            print(run.log[-6000:])
            for crash in run.crashes:
                print(f"  {crash}  (replay: {crash.parent / ('fuzz-' + name)} {crash})")
        failed |= not run.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
