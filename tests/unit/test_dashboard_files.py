"""The Grafana dashboard and the recording rules, read as files.

Whether the queries return what they should is checked against a real
Prometheus in tests/e2e/test_dashboard_prometheus.py; here: the dashboard's
shape (two rows, the panels the issue asks for, a stat_prefix variable every
query uses) and that every metric it names is one the filters export.
"""

from __future__ import annotations

import json
import re

import yaml

from wirelab.paths import examples_dir

DASHBOARDS = examples_dir() / "dashboards"


def _doc() -> dict:
    return json.loads((DASHBOARDS / "wirelab.json").read_text())


def _rows() -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    current = ""
    for panel in _doc()["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            rows[current] = []
        else:
            rows[current].append(panel)
    return rows


def test_a_row_per_database_with_the_panels_a_viewer_needs() -> None:
    rows = _rows()
    assert list(rows) == ["PostgreSQL", "MySQL"]
    for name, panels in rows.items():
        titles = " | ".join(p["title"] for p in panels)
        for needed in ("Statements/s by", "latency p50 / p95 / p99", "Errors/s by",
                       "Sessions", "Transactions/s", "Rows/s", "Bytes/s"):
            assert needed in titles, (name, needed)
        latency = next(p for p in panels if "latency" in p["title"])
        assert [t["expr"].split(":")[-1].split("{")[0] for t in latency["targets"]] == [
            "p50", "p95", "p99"]


def test_every_query_is_filtered_by_the_stat_prefix_variable() -> None:
    variables = {v["name"]: v for v in _doc()["templating"]["list"]}
    assert variables["stat_prefix"]["includeAll"] and variables["stat_prefix"]["multi"]
    for panels in _rows().values():
        for p in panels:
            for t in p["targets"]:
                assert 'stat_prefix=~"$stat_prefix"' in t["expr"], t["expr"]
                assert "{{stat_prefix}}" in t["legendFormat"], t


def test_every_metric_named_is_exported_by_a_filter_or_recorded_by_a_rule() -> None:
    rules = yaml.safe_load((DASHBOARDS / "wirelab.rules.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"]}
    readme = {proto: (examples_dir().parent / "filters" / proto / "README.md")
              for proto in ("postgres", "mysql")}
    documented = {
        proto: set(re.findall(r"^\| `([a-z_]+)", path.read_text(), re.M)) if path.is_file()
        else None for proto, path in readme.items()}
    for panels in _rows().values():
        for p in panels:
            for t in p["targets"]:
                for name in re.findall(r"\b((?:postgres|mysql|wirelab:)[a-z_:]*)\{", t["expr"]):
                    if name.startswith("wirelab:"):
                        assert name in recorded, name
                        continue
                    proto, _, metric = name.partition("_")
                    if documented[proto] is not None:
                        assert metric in documented[proto], f"{name}: not in {proto}'s README"


def test_the_percentile_rules_read_envoys_histogram_buckets() -> None:
    rules = yaml.safe_load((DASHBOARDS / "wirelab.rules.yml").read_text())
    by_name = {r["record"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    for q in ("p50", "p95", "p99"):
        pg = by_name[f"wirelab:postgres_statement_latency_us:{q}"]
        assert f"histogram_quantile(0.{q[1:]}" in pg
        assert "rate(postgres_statement_latency_us_bucket[30s])" in pg
        assert "by (stat_prefix, type, le)" in pg
        my = by_name[f"wirelab:mysql_statement_duration_us:{q}"]
        assert "rate(mysql_statement_duration_us_bucket[30s])" in my
        assert "by (stat_prefix, verb, le)" in my
