"""Helpers for filter authors' tests: build traffic without a server, load a filter.

    from wirelab.testing import load_filter, mysql, postgres

    host = load_filter("path/to/project")   # builds when stale; an Emulator
    conn = host.connect()
    conn.downstream(postgres.startup("alice", "shop"))

`postgres` and `mysql` are message *encoders* (bytes out); the decoders are the
C ones in `filters/protocols/`, which the filters themselves run. For tests with
real servers and Envoy: `pgstats` (PostgreSQL's own statistics, the figures a
counter is held against), `lua` (a Lua project written on the fly) and `tcp` (a
threaded TCP server, an echo upstream by default); import them by module name.
"""

from __future__ import annotations

from . import mysql, postgres
from .filters import counters, load_filter, nonzero_stats

__all__ = ["counters", "load_filter", "mysql", "nonzero_stats", "postgres"]
