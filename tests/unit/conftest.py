"""Fixtures shared by the unit tests."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from wirelab.build.lua import build_runtime
from wirelab.emulator import _wasm
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


# ---- WebAssembly instructions spent (wasmtime fuel: deterministic, no clocks) ----


@functools.cache
def _fuel_engine() -> wasmtime.Engine:
    cfg = wasmtime.Config()
    cfg.wasm_exceptions = True
    cfg.consume_fuel = True
    return wasmtime.Engine(cfg)


class FuelMeter:
    """The stores of the emulators made while it is armed, and what they ran."""

    def __init__(self) -> None:
        self.stores: list[wasmtime.Store] = []

    def spent(self) -> int:
        return sum(10**15 - s.get_fuel() for s in self.stores)

    def per_round_trip(self, conn: Any, client: bytes, server: bytes, n: int = 50) -> float:
        """Instructions per round trip (`client` read, then `server` read; no client
        read when `client` is empty) on an emulator connection, over `n` round trips
        after one uncounted (first-use costs stay out). Runs n + 1 in all."""
        def once() -> None:
            if client:
                conn.downstream(client)
            conn.upstream(server)

        once()
        before = self.spent()
        for _ in range(n):
            once()
        return (self.spent() - before) / n


@pytest.fixture
def fuel(monkeypatch: pytest.MonkeyPatch) -> Iterator[FuelMeter]:
    """Emulators made inside the test count their instructions in the meter."""
    meter = FuelMeter()
    original = _wasm.Store.__init__

    def init(self: _wasm.Store) -> None:
        original(self)
        self.store.set_fuel(10**15)
        meter.stores.append(self.store)

    monkeypatch.setattr(_wasm, "engine", _fuel_engine)
    monkeypatch.setattr(_wasm, "_modules", {})  # modules compiled for the fuel engine
    monkeypatch.setattr(_wasm.Store, "__init__", init)
    yield meter
