"""`wirelab new` projects through `wirelab test --e2e`: real Envoy, real servers, real clients.

Every language x protocol (C and Lua; PostgreSQL + psycopg, MySQL: MariaDB +
PyMySQL, plain TCP), generated into a temp directory and tested exactly as a
user would: the generated unit tests in the emulator, then the generated e2e test.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wirelab.scaffold import LANGS, PROTOCOLS, create_project

pytestmark = pytest.mark.e2e
UNIT_TESTS = {"tcp": 2, "postgres": 4, "mysql": 4}  # generated tests outside the e2e mark


def _needs_mariadb() -> None:
    servers = pytest.importorskip("wirelab.servers", reason="wirelab.servers is not available")
    try:
        servers.mariadb.find_binary("mariadbd")
    except servers.ServerError as exc:
        pytest.skip(f"MariaDB is absent: {exc}")


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("lang", LANGS)
def test_generated_project_passes_wirelab_test_e2e(tmp_path: Path, lang: str, protocol: str):
    if protocol == "mysql":
        _needs_mariadb()
    root = create_project(f"e2e-{lang}-{protocol}", lang, protocol, tmp_path)
    ran = subprocess.run([sys.executable, "-m", "wirelab", "test", "--e2e", str(root), "--",
                          "-p", "no:cacheprovider", "-v"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=400)
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out
    ran_order = [ln.split("::")[0] for ln in out.splitlines() if ln.startswith("tests/")
                 and ln.rstrip().endswith("]") and "PASSED" in ln]
    unit = UNIT_TESTS[protocol]
    assert ran_order == ["tests/test_filter.py"] * unit + ["tests/test_e2e.py"], out
    assert f"{unit + 1} passed in" in out
    assert "deselected" not in out
