"""The figures of the matrix: each a server-side truth beside the filter's counter.

PostgreSQL: statement kinds are the first keyword of the statement text
(pg_stat_statements' normalised query; the CommandComplete tag on the filter's
side). MySQL: `Com_*` names without the prefix.
"""

from __future__ import annotations

from collections.abc import Mapping

PG_KINDS = ("select", "insert", "update", "delete")
# first keywords whose rows are rows sent to the client / rows written
PG_ROWS_RETURNED = ("select", "fetch", "values", "table")
PG_ROWS_AFFECTED = ("insert", "update", "delete", "copy", "merge")

PG_FIGURES = (*PG_KINDS, "other", "rows_returned", "rows_affected", "commit", "rollback",
              "sessions", "decoder_errors")

MY_VERBS = ("select", "insert", "update", "delete", "replace", "begin", "commit", "rollback")
MY_FIGURES = (*MY_VERBS, "stmt_prepare", "stmt_execute", "stmt_close", "rows_returned",
              "decoder_errors")


def pg_kind(query: str) -> str:
    """The statement kind of a statement text: its first keyword, lower case."""
    words = query.lstrip(" \t\r\n(").split(None, 1)
    return words[0].lower().rstrip(";") if words else ""


def pg_bucket(kind: str) -> str:
    return kind if kind in PG_KINDS else "other"


# Each figure's counter in the shipped filters, after `<protocol>.<prefix>.`
PG_FILTER_COUNTERS = {
    **{k: f"statements_{k}" for k in PG_KINDS},
    "other": "statements_other",
    "rows_returned": "rows_returned",
    "rows_affected": "rows_affected",
    "commit": "transactions_commit",
    "rollback": "transactions_rollback",
    "sessions": "sessions",
    "decoder_errors": "decoder_errors",
}
MY_FILTER_COUNTERS = {
    **{v: f"statements.verb={v}" for v in MY_VERBS},
    "stmt_prepare": "prepared_statements.type=prepared",
    "stmt_execute": "commands.command=stmt_execute",
    "stmt_close": "prepared_statements.type=closed",
    "rows_returned": "rows_returned",
    "decoder_errors": "decoder_errors",
}


def pg_filter_figures(delta: Mapping[str, int], prefix: str = "postgres") -> dict[str, int]:
    """The shipped postgres filter's counters, by figure."""
    return {fig: delta.get(f"postgres.{prefix}.{name}", 0)
            for fig, name in PG_FILTER_COUNTERS.items()}


def my_filter_figures(delta: Mapping[str, int], prefix: str = "mysql") -> dict[str, int]:
    """The shipped mysql filter's counters, by figure."""
    return {fig: delta.get(f"mysql.{prefix}.{name}", 0)
            for fig, name in MY_FILTER_COUNTERS.items()}


def lua_statement_figures(delta: Mapping[str, int], prefix: str, protocol: str = "postgres",
                          label: str = "type") -> dict[str, int]:
    """A Lua filter that counts `lua.<prefix>.statements.<label>=<kind>` (the shipped
    pg-statements and mysql-statements examples), folded into the protocol's statement
    figures: PostgreSQL's kinds plus `other`, MySQL's verbs."""
    head = f"lua.{prefix}.statements.{label}="
    by_kind = {k[len(head):]: v for k, v in delta.items() if k.startswith(head)}
    if protocol == "mysql":
        return {v: by_kind.get(v, 0) for v in MY_VERBS}
    out = {k: by_kind.get(k, 0) for k in PG_KINDS}
    out["other"] = sum(v for k, v in by_kind.items() if k not in PG_KINDS)
    return out
