"""What each shipped filter's stat names mean to the dashboard.

Stat names follow docs/metrics-naming.md: `<proto>.<stat_prefix>.<metric>[.<key>=<value>]...`.
The two protocols spell the same ideas differently (contrib's `statements_select`
beside MySQL's `statements.verb=select`); this table is the one place that knows.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatName:
    proto: str
    prefix: str
    metric: str
    tags: tuple[tuple[str, str], ...]

    def tag(self, key: str) -> str | None:
        return dict(self.tags).get(key)


def parse(name: str) -> StatName | None:
    """`postgres.demo.errors_by_class.class=42` -> (postgres, demo, errors_by_class, class=42)."""
    parts = name.split(".")
    if len(parts) < 3:
        return None
    proto, prefix, metric, *rest = parts
    tags = []
    for seg in rest:
        key, eq, value = seg.partition("=")
        if not eq:
            return None  # a dotted name that is not ours
        tags.append((key, value))
    return StatName(proto, prefix, metric, tuple(tags))


@dataclass(frozen=True)
class Protocol:
    """Where one protocol keeps each figure the dashboard shows."""

    name: str
    label: str
    # statements by type: counter metric names -> type, or a counter with a tag key
    type_counters: dict[str, str]
    type_tag_counter: tuple[str, str] | None
    latency: tuple[str, str]                 # (histogram metric, tag key holding the type)
    errors: tuple[str, str]                  # (counter metric, tag key of the class/code)
    error_label: str
    commits: str
    rollbacks: str


POSTGRES = Protocol(
    name="postgres", label="PostgreSQL",
    type_counters={f"statements_{t}": t for t in ("select", "insert", "update", "delete",
                                                   "other")},
    type_tag_counter=None,
    latency=("statement_latency_us", "type"),
    errors=("errors_by_class", "class"),
    error_label="SQLSTATE class",
    commits="transactions_commit",
    rollbacks="transactions_rollback",
)

MYSQL = Protocol(
    name="mysql", label="MySQL",
    type_counters={},
    type_tag_counter=("statements", "verb"),
    latency=("statement_duration_us", "verb"),
    errors=("errors", "code"),
    error_label="error code",
    commits="transactions_committed",
    rollbacks="transactions_rolled_back",
)

PROTOCOLS = {p.name: p for p in (POSTGRES, MYSQL)}
