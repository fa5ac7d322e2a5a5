"""Envoy's view of a filter's custom metrics: one store per emulated Envoy.

Names are the plain names a filter defines; Envoy's stats store keeps them as
`wasmcustom.<name>` (both are exposed). Several VMs (workers) defining the same
name share one stat, as they do in Envoy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import WirelabError
from .abi import COUNTER, GAUGE, HISTOGRAM, METRIC_TYPE_NAMES

ENVOY_PREFIX = "wasmcustom."


@dataclass
class Metric:
    name: str
    type: int
    value: int = 0  # counters and gauges
    samples: list[int] = field(default_factory=list)  # histograms

    @property
    def envoy_name(self) -> str:
        return ENVOY_PREFIX + self.name

    @property
    def kind(self) -> str:
        return METRIC_TYPE_NAMES[self.type]

    @property
    def count(self) -> int:
        return len(self.samples)

    @property
    def sum(self) -> int:
        return sum(self.samples)


class Metrics:
    def __init__(self) -> None:
        self._by_name: dict[str, Metric] = {}

    def define(self, name: str, mtype: int) -> Metric:
        m = self._by_name.get(name)
        if m is None:
            m = self._by_name[name] = Metric(name, mtype)
        return m

    def _get(self, name: str, mtype: int) -> Metric:
        if name.startswith(ENVOY_PREFIX):
            name = name[len(ENVOY_PREFIX):]
        m = self._by_name.get(name)
        if m is None:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise WirelabError(
                f"the filter defined no metric {name!r} (defined: {known})"
            )
        if m.type != mtype:
            raise WirelabError(
                f"metric {name!r} is a {m.kind}, not a {METRIC_TYPE_NAMES[mtype]}"
            )
        return m

    def counter(self, name: str) -> int:
        return self._get(name, COUNTER).value

    def gauge(self, name: str) -> int:
        return self._get(name, GAUGE).value

    def histogram(self, name: str) -> Metric:
        return self._get(name, HISTOGRAM)

    def __contains__(self, name: str) -> bool:
        return name.removeprefix(ENVOY_PREFIX) in self._by_name

    def __iter__(self):
        return iter(self._by_name.values())

    def names(self, envoy: bool = False) -> list[str]:
        return sorted(m.envoy_name if envoy else m.name for m in self._by_name.values())

    def as_dict(self, envoy_names: bool = False) -> dict[str, Any]:
        """{"counters": {...}, "gauges": {...}, "histograms": {name: {"count", "sum"}}}."""
        out: dict[str, Any] = {"counters": {}, "gauges": {}, "histograms": {}}
        for m in sorted(self._by_name.values(), key=lambda m: m.name):
            key = m.envoy_name if envoy_names else m.name
            if m.type == COUNTER:
                out["counters"][key] = m.value
            elif m.type == GAUGE:
                out["gauges"][key] = m.value
            else:
                out["histograms"][key] = {"count": m.count, "sum": m.sum}
        return out
