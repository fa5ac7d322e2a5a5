"""State one Envoy process holds for all its Wasm VMs: clock, stats, shared data, queues.

Two `Emulator`s built with `share_with=` use one `EnvoyState`, like two plugins
(or two workers) inside one Envoy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .abi import CAS_MISMATCH, EMPTY, NOT_FOUND, OK
from .metrics import Metrics

if TYPE_CHECKING:
    from .vm import VM

# Realtime clock of the virtual world: 2026-01-01T00:00:00Z, so replays agree.
EPOCH_NS = 1_767_225_600 * 1_000_000_000
# What the filter reads from the monotonic clock when the emulator starts. Envoy's
# is the host's (time since boot), never 0, so code that takes 0 for "unset" must
# see the same here: the virtual clock starts an hour after a virtual boot.
MONOTONIC_START_NS = 3_600 * 1_000_000_000


@dataclass
class Queue:
    vm_id: str
    name: str
    owner: VM | None  # the VM whose root context registered it (gets on_queue_ready)
    items: deque[bytes] = field(default_factory=deque)


class EnvoyState:
    def __init__(self) -> None:
        self.now_ns = 0  # the virtual monotonic clock
        self.metrics = Metrics()
        self.plugin_stats: dict[str, int] = {}  # wasm.<plugin>.vm_reload_* etc.
        self._data: dict[tuple[str, bytes], tuple[bytes, int]] = {}
        self._cas = 0
        self._queues: list[Queue] = []
        self._queue_ids: dict[tuple[str, str], int] = {}
        self.vms: list[VM] = []  # every live VM, for ticks

    # --- clock ------------------------------------------
    @property
    def realtime_ns(self) -> int:
        return EPOCH_NS + self.now_ns

    @property
    def monotonic_ns(self) -> int:
        """The guest's monotonic clock: `now_ns` (0 at start) plus MONOTONIC_START_NS."""
        return MONOTONIC_START_NS + self.now_ns

    def bump(self, stat: str) -> None:
        self.plugin_stats[stat] = self.plugin_stats.get(stat, 0) + 1

    # --- shared data (per vm_id, compare-and-swap) ----------------------------------
    def get_data(self, vm_id: str, key: bytes) -> tuple[int, bytes, int]:
        hit = self._data.get((vm_id, key))
        if hit is None:
            return NOT_FOUND, b"", 0
        return OK, hit[0], hit[1]

    def set_data(self, vm_id: str, key: bytes, value: bytes, cas: int) -> int:
        hit = self._data.get((vm_id, key))
        if cas and hit is not None and hit[1] != cas:
            return CAS_MISMATCH
        self._cas += 1
        self._data[(vm_id, key)] = (value, self._cas)
        return OK

    # --- queues ------------------------------------------
    def register_queue(self, vm_id: str, name: str, owner: VM) -> int:
        qid = self._queue_ids.get((vm_id, name))
        if qid is None:
            qid = len(self._queues) + 1
            self._queue_ids[(vm_id, name)] = qid
            self._queues.append(Queue(vm_id, name, owner))
        else:
            self._queues[qid - 1].owner = owner
        return qid

    def resolve_queue(self, vm_id: str, name: str) -> int | None:
        return self._queue_ids.get((vm_id, name))

    def queue(self, qid: int) -> Queue | None:
        return self._queues[qid - 1] if 0 < qid <= len(self._queues) else None

    def dequeue(self, qid: int) -> tuple[int, bytes]:
        q = self.queue(qid)
        if q is None:
            return NOT_FOUND, b""
        if not q.items:
            return EMPTY, b""
        return OK, q.items.popleft()
