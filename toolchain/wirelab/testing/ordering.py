"""pytest plugin `wirelab test --e2e` loads (`-p wirelab.testing.ordering`):
emulator tests first, then the e2e tests (real Envoy), each group in its own order."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)  # stable sort
