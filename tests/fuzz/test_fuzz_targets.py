"""The libFuzzer targets (tests/fuzz/*.c) in the test suite: every committed
crash input replays clean, every seed taken from the recorded conversations
decodes to the same events under every splitting, and each target fuzzes
briefly without a finding. `make fuzz` runs them for longer."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import fuzzing
import pytest

# Issue 15: CI (`make test`) fuzzes each target for 60 s.
SECONDS = int(os.environ.get("FUZZ_TEST_SECONDS", "60"))


@pytest.fixture(scope="module", autouse=True)
def _clang() -> None:
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed: apt-get install clang libclang-rt-14-dev "
                    "(scripts/install-system-deps.sh installs both)")


@pytest.fixture(autouse=True)
def _lua_sources(request: pytest.FixtureRequest) -> None:
    """The Lua target needs Lua's sources (downloaded by wirelab's build)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is None or callspec.params.get("name") != "lua":
        return
    from wirelab.errors import BuildError

    try:
        fuzzing.lua_source_dir()
    except BuildError as exc:
        pytest.skip(f"Lua sources unavailable: {exc}")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("name", sorted(fuzzing.TARGETS))
def test_committed_crash_inputs_replay_clean(name: str, work: Path) -> None:
    inputs = fuzzing.regression_inputs(name)
    if not inputs:
        # Still builds: a target that no longer compiles must fail here.
        fuzzing.build(fuzzing.TARGETS[name], work)
        return
    proc = fuzzing.replay(fuzzing.TARGETS[name], inputs, work)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stderr.count("Executed ") == len(inputs)


@pytest.mark.parametrize("name", sorted(fuzzing.TARGETS))
def test_seeds_decode_alike_under_every_split(name: str, work: Path, tmp_path: Path) -> None:
    target = fuzzing.TARGETS[name]
    count = target.seeds(tmp_path)
    assert count >= 7
    proc = fuzzing.replay(target, sorted(tmp_path.iterdir()), work)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stderr.count("Executed ") == count


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(fuzzing.TARGETS))
def test_fuzzing_finds_nothing(name: str, work: Path) -> None:
    run = fuzzing.fuzz(fuzzing.TARGETS[name], SECONDS, work)
    assert run.executions > 0, run.log[-2000:]
    assert run.crashes == [] and run.returncode == 0, run.log[-6000:]


def test_executions_are_read_from_a_single_process_log_and_a_fork_mode_log() -> None:
    single = "#4096\tpulse  cov: 10 ft: 12\nstat::number_of_executed_units: 23441\n"
    fork = ("#1237: cov: 3065 ft: 3065 corp: 35 exec/s 618 oom/timeout/crash: 0/0/0\n"
            "#3456: cov: 4144 ft: 4004 corp: 168 exec/s 739 oom/timeout/crash: 0/0/0\n"
            "INFO: fuzzed for 3456 iterations, wrapping up soon\n"
            "stat::number_of_executed_units: 0\n")
    assert fuzzing.executions(single) == 23441
    assert fuzzing.executions(fork) == 3456
    assert fuzzing.executions("INFO: -fork=2: 0 seed inputs\n") == 0
