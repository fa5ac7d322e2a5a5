"""The emulator's promise (issue 3): the same filter over the same conversation
gives the same custom metrics in the emulator and in real Envoy 1.40.

Each case runs one (filter, conversation) pair twice: `replay()` in the
emulator, and a scripted client and server playing both sides through a fresh
Envoy (listener -> the filter -> tcp_proxy). Counters and gauges must be equal,
histograms must hold as many samples; their sums differ because Envoy measures
real time while the emulator replays the recorded times.

Cases are discovered: every conversation in tests/fixtures/conversations/parity/
runs through the bytes-counter example and two raw-ABI probes, and every
conversation in tests/fixtures/conversations/<protocol>/ runs through the
lifecycle probe and, once that project exists, through filters/<protocol>/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from wirelab.build import build_project
from wirelab.conversation import Conversation
from wirelab.harness.filters import plugin_config_for
from wirelab.parity import compare, run_in_emulator, run_in_envoy
from wirelab.paths import filters_dir
from wirelab.project import Project

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CONVERSATIONS = FIXTURES / "conversations"
PARITY = CONVERSATIONS / "parity"
PROTOCOLS = ("postgres", "mysql")

# Metrics that depend on how Envoy cuts the byte stream into reads, which is
# Envoy's choice (it splits the 64 KB read of big_messages its own way and may
# coalesce what the recording saw as two reads). A correct filter's metrics do
# not; a probe that counts reads does, so that count is not compared.
READ_BOUNDARY_METRICS = ("lc.reads.direction=client", "lc.reads.direction=server")


@dataclass(frozen=True)
class Filter:
    wasm: Path
    config: dict | str
    ignore: tuple[str, ...] = ()


def _zig(source: Path, out_dir: Path) -> Path:
    out = out_dir / f"{source.stem}.wasm"
    cmd = [sys.executable, "-m", "ziglang", "cc", "--target=wasm32-wasi", "-mexec-model=reactor",
           "-O2", "-s", "-Wl,--export=malloc", "-Wl,--export=free", "-o", str(out), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def _project(directory: Path, tmp: Path) -> Filter:
    """Build a copy, so the checkout's build/ directories stay untouched."""
    copy = tmp / directory.name
    shutil.copytree(directory, copy, ignore=shutil.ignore_patterns("build"))
    project = Project.load(copy)
    return Filter(build_project(project).wasm, plugin_config_for(project))


BUILDERS: dict[str, Callable[[Path], Filter]] = {
    "header-probe": lambda tmp: Filter(_zig(FIXTURES / "probe" / "header.c", tmp), {}),
    "lifecycle-probe": lambda tmp: Filter(
        _zig(PARITY / "lifecycle.c", tmp), {}, READ_BOUNDARY_METRICS),
    **{proto: (lambda tmp, p=proto: _project(filters_dir() / p, tmp)) for proto in PROTOCOLS},
}


def _cases() -> list[pytest.param]:
    cases = []
    for conv in sorted(PARITY.glob("*.jsonl")):
        for name in ("bytes-counter", "header-probe", "lifecycle-probe"):
            cases.append(pytest.param(name, conv, id=f"{name}-{conv.stem}"))
    for proto in PROTOCOLS:
        recorded = sorted((CONVERSATIONS / proto).glob("*.jsonl"))
        # Real clients' and servers' close patterns, through the lifecycle probe.
        cases += [pytest.param("lifecycle-probe", conv, id=f"lifecycle-probe-{proto}-{conv.stem}")
                  for conv in recorded]
        if (filters_dir() / proto / "wirelab.toml").is_file():
            cases += [pytest.param(proto, conv, id=f"{proto}-{conv.stem}") for conv in recorded]
    return cases


@pytest.fixture(scope="session")
def filters(tmp_path_factory: pytest.TempPathFactory, bytes_counter_wasm: Path
            ) -> Callable[[str], Filter]:
    built: dict[str, Filter] = {}

    def get(name: str) -> Filter:
        if name not in built:
            if name == "bytes-counter":
                project = Project.load(bytes_counter_wasm.parent.parent)
                built[name] = Filter(bytes_counter_wasm, plugin_config_for(project))
            else:
                built[name] = BUILDERS[name](tmp_path_factory.mktemp(name))
        return built[name]

    return get


@pytest.mark.parametrize(("filter_name", "conversation"), _cases())
def test_emulator_and_envoy_agree(filters: Callable[[str], Filter], filter_name: str,
                                  conversation: Path) -> None:
    f = filters(filter_name)
    conv = Conversation.load(conversation)
    emulated = run_in_emulator(f.wasm, conv, f.config)
    assert emulated.traps == []
    in_envoy = run_in_envoy(f.wasm, conv, f.config)
    assert compare(emulated.metrics, in_envoy, ignore=f.ignore) == []
    # Not a vacuous agreement: the filter saw this conversation's traffic.
    assert any(v for kind in ("counters", "gauges") for v in in_envoy[kind].values())


def test_lifecycle_probe_spells_envoys_close_sequences(filters: Callable[[str], Filter]) -> None:
    """What the lifecycle cases compare, spelled out once: per connection the
    callbacks Envoy makes, by who closed first (D/U: downstream/upstream end of
    stream, u/d + peer type: upstream/downstream close, o done, l log)."""
    f = filters("lifecycle-probe")
    got = run_in_envoy(f.wasm, PARITY / "multi_connection.jsonl", f.config)
    sequences = {k.removeprefix("lc.sequence."): v for k, v in got["counters"].items()
                 if k.startswith("lc.sequence.")}
    assert sequences == {
        "nDUu0d1ol": 3,  # client (or recorder) first: Envoy closes the client side, LOCAL
        "nUu0Dd2ol": 1,  # server first: the client's FIN comes last, REMOTE
    }
    assert got["gauges"]["lc.active"] == 0
    assert got["counters"]["lc.connections"] == 4


def test_histograms_agree_on_samples_not_on_sums(filters: Callable[[str], Filter]) -> None:
    """The header probe times Q -> Z. The emulator's clock follows the recorded
    times; Envoy's is real, so only the number of samples can agree."""
    f = filters("header-probe")
    conv = PARITY / "client_closes_first.jsonl"
    emulated = run_in_emulator(f.wasm, conv, f.config).metrics["histograms"]
    in_envoy = run_in_envoy(f.wasm, conv, f.config)["histograms"]
    # 2 ms for the first query; the pipelined pair is answered 5 ms after it was
    # sent, and its second Z finds no timer running.
    assert emulated["hdr.query_latency_us"] == {"count": 2, "sum": 2000 + 5000}
    assert in_envoy["hdr.query_latency_us"]["count"] == 2


def test_open_connections_stay_open_until_the_metrics_are_read(
        filters: Callable[[str], Filter]) -> None:
    f = filters("bytes-counter")
    conv = Conversation.load(PARITY / "left_open.jsonl")
    got = run_in_envoy(f.wasm, conv, f.config)
    prefix = "tcp.bytes_counter."
    assert got["gauges"][prefix + "connections_active"] == 1
    assert got["counters"][prefix + "connections_total"] == 2
    assert got["counters"][prefix + "bytes_total.direction=client"] == conv.total_bytes("client")


def test_compare_names_every_disagreement() -> None:
    emu = {"counters": {"a": 1, "b": 2, "only_emu": 0}, "gauges": {"g": -3, "h": 1},
           "histograms": {"lat": {"count": 2, "sum": 7000}, "n": {"count": 1, "sum": 1}}}
    env = {"counters": {"a": 1, "b": 3, "only_env": 5}, "gauges": {"g": 2**64 - 3, "h": 2},
           "histograms": {"lat": {"count": 2, "sum": 326.0}, "n": {"count": 0, "sum": 0}}}
    assert compare(emu, env) == [
        "counter b: emulator 2, Envoy 3",
        "counter only_emu: defined in the emulator, not in Envoy",
        "counter only_env: defined in Envoy, not in the emulator",
        "gauge h: emulator 1, Envoy 2",
        "histogram n: emulator 1 samples, Envoy 0",
    ]
    assert compare(emu, env, ignore=("b", "only_emu", "only_env", "h", "n")) == []


@pytest.mark.xfail(strict=True, reason=(
    "known gap: Envoy 1.40 runs proxy_on_vm_start/proxy_on_configure in concurrency + 2 "
    "plugin instances (two on the main thread, one per worker); the emulator runs one per "
    "worker, so metric updates made while configuring are counted fewer times"))
def test_metrics_updated_while_configuring(tmp_path: Path) -> None:
    # probe.c adds 10 to the counter probe.recorded in proxy_on_configure. Its
    # other metrics count reads and run experiments chosen by a read's first
    # byte, so only this one is compared.
    wasm = _zig(FIXTURES / "probe" / "probe.c", tmp_path)
    conv = Conversation()
    conv.open(0, 0.0)
    conv.data(0, 0.001, "client", b"hello")
    conv.close(0, 0.002, "client")
    emulated = run_in_emulator(wasm, conv, {}).metrics["counters"]["probe.recorded"]
    in_envoy = run_in_envoy(wasm, conv, {})["counters"]["probe.recorded"]
    assert (emulated, in_envoy) == (10, 10)
