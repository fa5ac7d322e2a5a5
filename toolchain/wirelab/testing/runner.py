"""`wirelab test`: build a filter project, then run its tests with pytest.

pytest runs in a subprocess with the project as its working directory, on the
same Python as wirelab (so `wirelab.testing` and the `wirelab_lab` fixture are
importable), with its output streamed as it comes. Tests marked `e2e` are
deselected unless `e2e=True`; then they run after the emulator tests.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import WirelabError

NO_TESTS_COLLECTED = 5  # pytest's exit code when nothing ran


class NoTestsError(WirelabError):
    exit_code = NO_TESTS_COLLECTED


def pytest_command(project_root: Path, e2e: bool, pytest_args: Sequence[str] = ()) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", "tests"]
    if e2e:  # all tests, the emulator ones first
        cmd += ["-p", "wirelab.testing.ordering"]
    else:
        cmd += ["-m", "not e2e"]
    return [*cmd, *pytest_args]


def run_tests(directory: str | Path = ".", e2e: bool = False, pytest_args: Sequence[str] = (),
              report: Callable[[str], None] = lambda line: None, target: str = "wasm") -> int:
    """Build the project in `directory` (the Wasm module the emulator runs, and
    `target` when it is another), run pytest on its tests; pytest's exit code.

    Build errors raise BuildError (`file:line: message`). No tests directory, or
    pytest collecting nothing, raise NoTestsError naming the tests directory.
    """
    from ..build import build_project
    from ..project import Project

    project = Project.load(directory)
    built = build_project(project)
    for warning in built.warnings:
        report(f"warning: {warning}")
    report(f"{'up to date' if built.cached else 'built'}: {built.wasm}")
    if target != "wasm":
        other = build_project(project, target=target)
        report(f"{'up to date' if other.cached else 'built'}: {other.wasm}")
    tests = project.root / "tests"
    if not tests.is_dir():
        raise NoTestsError(
            f"{tests} does not exist: put test_*.py files there "
            "(`wirelab new` generates tests/test_filter.py and tests/test_e2e.py)"
        )
    if importlib.util.find_spec("pytest") is None:
        raise WirelabError("pytest is not installed: pip install pytest")
    proc = subprocess.run(pytest_command(project.root, e2e, pytest_args), cwd=project.root)
    if proc.returncode == NO_TESTS_COLLECTED:
        skipped = "" if e2e else " (tests marked e2e only run with --e2e)"
        raise NoTestsError(f"no tests ran from {tests}{skipped}: add test_*.py files there")
    return proc.returncode
