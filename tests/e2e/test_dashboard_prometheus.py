"""The Grafana dashboard's queries, evaluated by a real Prometheus.

Scenario: the demo's workload (all four phases) runs through Envoy with both
filters while a real Prometheus scrapes Envoy every second and loads the
shipped recording rules. Then every target of every panel in
examples/dashboards/wirelab.json is sent to Prometheus's HTTP API, with the
dashboard's variables filled in: each must return series, and each series
must carry `stat_prefix="demo"` and every label its legend names. Prometheus
must also hold the same counter values as Envoy's admin API.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from typing import Any

import pytest

from wirelab.paths import examples_dir

pytestmark = pytest.mark.e2e

DASHBOARD = examples_dir() / "dashboards" / "wirelab.json"


def _targets() -> list[tuple[str, str, str]]:
    """(panel title, expr, legendFormat) of every query in the dashboard."""
    doc = json.loads(DASHBOARD.read_text())
    out = []
    row = ""
    for panel in doc["panels"]:
        if panel["type"] == "row":
            row = panel["title"]
            continue
        for t in panel["targets"]:
            out.append((f"{row} / {panel['title']} / {t['refId']}", t["expr"], t["legendFormat"]))
    return out


def _fill(expr: str) -> str:
    # What Grafana sends: the variable's value, and a rate interval of 4 scrapes
    # plus slack (the datasource's timeInterval is the 1 s scrape).
    return expr.replace("$stat_prefix", "demo").replace("$__rate_interval", "10s")


@pytest.fixture(scope="module")
def demo_lab():
    from wirelab.demo import DemoRun, mysql_available
    from wirelab.prometheus import find_prometheus

    if find_prometheus() is None:
        pytest.skip("Prometheus is not installed: apt-get install prometheus "
                    "(scripts/install-system-deps.sh)")
    if not mysql_available():
        pytest.skip("MariaDB is not installed: apt-get install mariadb-server")
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed: apt-get install prometheus")
    run = DemoRun(duration=16, with_mysql=True, with_prometheus=True).start()
    try:
        run.finish(run.run_in_background())
        yield run
    finally:
        run.close()


def _value(series: dict[str, Any]) -> float:
    return float(series["value"][1])


def _wait(prom: Any, promql: str, ok, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        result = prom.query(promql)
        if ok(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_prometheus_holds_the_same_counters_as_envoy(demo_lab) -> None:
    lab = demo_lab.lab
    snap = demo_lab.settled_snapshot()
    pairs = {
        'postgres_statements_select{stat_prefix="demo"}': "postgres.demo.statements_select",
        'postgres_slow_statements{stat_prefix="demo"}': "postgres.demo.slow_statements",
        'postgres_errors_by_class{stat_prefix="demo",class="42"}':
            "postgres.demo.errors_by_class.class=42",
        'mysql_statements{stat_prefix="demo",verb="insert"}': "mysql.demo.statements.verb=insert",
        'mysql_errors{stat_prefix="demo",code="1062"}': "mysql.demo.errors.code=1062",
        'mysql_bytes{stat_prefix="demo",direction="server"}': "mysql.demo.bytes.direction=server",
    }
    for promql, stat in pairs.items():
        expected = snap.counter(stat)
        assert expected > 0, stat
        got = _wait(lab.prometheus, promql, lambda r, e=expected: len(r) == 1
                    and _value(r[0]) == e)
        assert [_value(s) for s in got] == [expected], promql


def test_the_rules_file_is_valid_for_promtool() -> None:
    import subprocess

    from wirelab.prometheus import rules_file

    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed: apt-get install prometheus")
    proc = subprocess.run(["promtool", "check", "rules", str(rules_file())],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 8 rules found" in proc.stdout


@pytest.mark.parametrize("title,expr,legend", _targets(), ids=[t[0] for t in _targets()])
def test_every_panel_query_returns_labelled_series(demo_lab, title: str, expr: str,
                                                   legend: str) -> None:
    prom = demo_lab.lab.prometheus
    wanted = set(re.findall(r"\{\{(\w+)\}\}", legend))
    assert "stat_prefix" in wanted, f"{title}: the legend should name the stat_prefix"
    result = _wait(prom, _fill(expr), lambda r: bool(r))
    assert result, f"{title}: {_fill(expr)} returned no series"
    for series in result:
        labels = series["metric"]
        assert labels.get("stat_prefix") == "demo", (title, labels)
        assert wanted <= set(labels), f"{title}: {labels} lacks {wanted - set(labels)}"
    if "latency" in title.lower():
        # The workload ended seconds ago: inside the rules' 30 s window, so the
        # percentiles are numbers, not NaN.
        assert any(math.isfinite(_value(s)) and _value(s) > 0 for s in result), (title, result)
