"""Fixtures shared by the e2e tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def build_bundled_filter(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Builds a copy of filters/<name> (without its build/ folder); returns the .wasm."""
    from wirelab.build import build_project
    from wirelab.paths import filters_dir
    from wirelab.project import Project

    def build(name: str) -> Path:
        src = tmp_path_factory.mktemp("filters") / name
        shutil.copytree(filters_dir() / name, src, ignore=shutil.ignore_patterns("build"))
        return build_project(Project.load(src)).wasm

    return build


@pytest.fixture(scope="session")
def require_mariadb() -> None:
    """Skips a test whose lab needs MariaDB when its server is not installed."""
    from wirelab.servers import ServerError, mariadb

    try:
        mariadb.find_binary("mariadbd")
    except ServerError as exc:
        pytest.skip(f"MariaDB is absent (apt-get install mariadb-server): {exc}")
