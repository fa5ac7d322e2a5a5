"""A recorded workload replayed in the emulator: the metrics must not depend on how
the bytes were split into reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..replay import replay

CHUNKINGS = ("1", "random")


def replay_metrics(spec: Any, recording: Path, chunking: str, seed: int = 0) -> dict[str, Any]:
    """Counters, gauges and histograms (count, sum) after replaying `recording` through
    the filter of `spec` (a FilterSpec: its .wasm and plugin configuration)."""
    result = replay(spec.wasm, recording, chunking=chunking, seed=seed,
                    plugin_config=spec.config)
    if result.traps:
        raise RuntimeError(f"the filter trapped under chunking {chunking}: {result.traps[0]}")
    return result.metrics.as_dict()


def chunking_differences(spec: Any, recording: Path, seed: int = 7,
                         base: dict[str, Any] | None = None) -> dict[str, list[str]]:
    """For each chunking of CHUNKINGS, the metrics that differ from the recorded reads
    (`name: recorded -> rechunked`); empty lists when the filter does not care.
    `base`: the recorded chunking's metrics, when the caller has them already."""
    if base is None:
        base = replay_metrics(spec, recording, "recorded")
    out: dict[str, list[str]] = {}
    for chunking in CHUNKINGS:
        other = replay_metrics(spec, recording, chunking, seed)
        diffs = []
        for kind in ("counters", "gauges", "histograms"):
            for name in sorted(set(base[kind]) | set(other[kind])):
                a, b = base[kind].get(name), other[kind].get(name)
                if a != b:
                    diffs.append(f"{name}: {a} -> {b}")
        out[chunking] = diffs
    return out
