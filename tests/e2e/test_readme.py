"""The README's examples work when pasted: its Python blocks run as tests, its
quickstart runs as a shell script, from the checkout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


@pytest.mark.parametrize("index", range(len(_blocks("python"))))
def test_python_example_passes_when_pasted(index: int, tmp_path: Path):
    test_file = tmp_path / f"test_readme_{index}.py"
    test_file.write_text(_blocks("python")[index])
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(test_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert re.search(r"\b1 passed\b", proc.stdout)


def test_quickstart_runs_when_pasted(tmp_path: Path):
    quickstart = README.split("## Quickstart", 1)[1]
    script = re.search(r"```sh\n(.*?)```", quickstart, re.S).group(1)
    if not (ROOT / ".venv" / "bin" / "activate").exists():
        pytest.skip("the quickstart activates .venv: create it with `make test`")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "42" in proc.stdout
    assert re.search(r"^postgres_\w+\{", proc.stdout, re.M)
    assert "stopped" in proc.stdout
