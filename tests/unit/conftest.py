"""Fixtures shared by the unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from wirelab.build.lua import build_runtime
from wirelab.errors import BuildError


@pytest.fixture(scope="module")
def runtime() -> Path:
    """The Lua runtime, built once a module; skips if the Lua sources cannot be downloaded."""
    try:
        return build_runtime()
    except BuildError as exc:
        if "could not be downloaded" in str(exc):
            pytest.skip(f"Lua sources unavailable: {exc}")
        raise
