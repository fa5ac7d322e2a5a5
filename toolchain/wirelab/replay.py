"""Run a recorded conversation through a filter in the emulator.

    result = replay("build/pg.wasm", Conversation.load("session.jsonl"), chunking="1")
    result.metrics.counter("postgres.app.statements")   # or result.as_dict()

Before each event the virtual clock advances by the event's recorded time, so
latency histograms come out the same on every run. `chunking` re-splits the
bytes to show the decoder does not depend on read boundaries.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .conversation import Conversation, Event
from .emulator import Connection, Emulator
from .emulator.metrics import Metrics
from .errors import WirelabError

Chunking = Literal["recorded", "1", "random", "coalesced"]
CHUNKINGS = ("recorded", "1", "random", "coalesced")


@dataclass
class ReplayResult:
    host: Emulator
    connections: int
    bytes: int
    reads: int  # data callbacks delivered
    seconds: float  # wall time of the replay itself
    unclosed: list[int] = field(default_factory=list)  # conversation conn ids left open

    @property
    def metrics(self) -> Metrics:
        return self.host.metrics

    @property
    def logs(self) -> list[tuple[str, str]]:
        return list(self.host.logs)

    @property
    def traps(self) -> list[str]:
        return [str(t) for t in self.host.traps]

    def as_dict(self) -> dict[str, Any]:
        out = self.host.metrics.as_dict()
        out["logs"] = [[lvl, msg] for lvl, msg in self.host.logs]
        out["traps"] = self.traps
        out["modified"] = bool(self.host.modifications)
        return out


def _addr(text: str | None, default: tuple[str, int]) -> tuple[str, int]:
    if not text or ":" not in text:
        return default
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port)) if port.isdigit() else default


def rechunk(events: list[Event], chunking: str, seed: int = 0) -> list[Event]:
    """The same bytes in the same order, split into different reads."""
    if chunking not in CHUNKINGS:
        raise WirelabError(f"unknown chunking {chunking!r}; use one of {', '.join(CHUNKINGS)}")
    if chunking == "recorded":
        return events
    if chunking == "coalesced":
        out: list[Event] = []
        last: dict[int, int] = {}  # conn -> index in out of its last event
        for e in events:
            i = last.get(e.conn)
            prev = out[i] if i is not None else None
            if e.ev == "data" and prev is not None and prev.ev == "data" and prev.dir == e.dir:
                out[i] = Event(prev.t, e.conn, "data", dir=e.dir, data=prev.data + e.data)
                continue
            last[e.conn] = len(out)
            out.append(e)
        return out
    rng = random.Random(seed)
    out = []
    for e in events:
        if e.ev != "data" or len(e.data) <= 1:
            out.append(e)
            continue
        pos = 0
        while pos < len(e.data):
            step = 1 if chunking == "1" else rng.randint(1, max(1, min(len(e.data) - pos, 4096)))
            out.append(Event(e.t, e.conn, "data", dir=e.dir, data=e.data[pos:pos + step]))
            pos += step
    return out


def replay(
    wasm_path: str | Path,
    conversation: Conversation | str | Path,
    chunking: str = "recorded",
    seed: int = 0,
    plugin_config: bytes | str | dict | None = None,
    host: Emulator | None = None,
    **emulator_options: Any,
) -> ReplayResult:
    """Replay every connection of `conversation` through the filter at `wasm_path`."""
    if isinstance(conversation, Conversation):
        conv = conversation
        conv.check()  # a file is checked line by line as it is read
    else:
        conv = Conversation.load(conversation)
    if host is None:
        host = Emulator.load(wasm_path, plugin_config=plugin_config, seed=seed,
                             **emulator_options)
    events = rechunk(conv.events, chunking, seed)
    conns: dict[int, Connection] = {}
    start_ns = host.state.now_ns
    nbytes = reads = 0
    t0 = time.perf_counter()
    for e in events:
        target = start_ns + round(e.t * 1e9)
        if target > host.state.now_ns:
            host.advance(ns=target - host.state.now_ns)
        conn = conns.get(e.conn)
        if conn is None:
            conn = conns[e.conn] = host.connect(
                src=_addr(e.src, ("10.0.0.1", 40000 + e.conn)),
                dst=_addr(e.dst, ("10.0.0.2", 5432)),
            )
        if e.ev == "data":
            if e.dir == "client":
                conn.downstream(e.data)
            else:
                conn.upstream(e.data)
            nbytes += len(e.data)
            reads += 1
        elif e.ev == "close":
            conn.close(by="server" if e.by == "server" else "client")
    seconds = time.perf_counter() - t0
    unclosed = [cid for cid, c in conns.items() if not c.closed]
    return ReplayResult(host, len(conns), nbytes, reads, seconds, unclosed)
