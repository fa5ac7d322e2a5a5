"""A proxy-wasm v0.2.1 host that runs compiled network filters the way Envoy does."""

from .host import Connection, Emulator, Modification
from .logs import Logs
from .metrics import Metric, Metrics
from .vm import EmulatorError, TrapInfo, UnimplementedHostCall

__all__ = [
    "Connection",
    "Emulator",
    "EmulatorError",
    "Logs",
    "Metric",
    "Metrics",
    "Modification",
    "TrapInfo",
    "UnimplementedHostCall",
]
