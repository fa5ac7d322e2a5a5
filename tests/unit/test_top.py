"""`wirelab top`'s figures and screen, from Envoy-shaped snapshots.

The snapshots are built the way StatsClient builds them from the admin API
(names with tags, detailed histogram buckets); the end-to-end check against a
real Envoy in a real terminal is tests/e2e/test_top_terminal.py.
"""

from __future__ import annotations

from collections import Counter

from rich.console import Console

from wirelab.envoy import Snapshot
from wirelab.envoy.stats import Histogram
from wirelab.top import Status, Window, dashboard, plain_lines, quantile, reduce


def _snap(counters: dict[str, int], gauges: dict[str, int] | None = None,
          histograms: dict[str, list[tuple[float, float, int]]] | None = None) -> Snapshot:
    hist = {n: Histogram(sum(c for _, _, c in b), 0, {}, b)
            for n, b in (histograms or {}).items()}
    return Snapshot(dict(counters), dict(gauges or {}), hist)


def test_quantile_reads_a_bucket_as_evenly_spread_samples_like_envoy() -> None:
    # Envoy's admin API reported p0=155, p50=205, p99=50500 for exactly these buckets.
    buckets = Counter({(150, 10): 1, (200, 10): 1, (50000, 1000): 1})
    assert [quantile(buckets, q) for q in (0.0, 0.5, 0.99)] == [155, 205, 50500]
    # Five samples in one bucket sit at 1/6 .. 5/6 of its width.
    assert quantile(Counter({(3400, 100): 5}), 0.99) == 3400 + 5 / 6 * 100
    assert quantile(Counter(), 0.5) is None


def test_reduce_groups_by_protocol_and_stat_prefix() -> None:
    snap = _snap(
        {"postgres.app.statements_select": 7, "postgres.app.statements_other": 2,
         "postgres.app.errors_by_class.class=42": 3, "postgres.app.bytes.direction=client": 100,
         "postgres.app.bytes.direction=server": 900, "postgres.app.transactions_commit": 4,
         "mysql.db.statements.verb=select.database=a": 5,
         "mysql.db.statements.verb=select.database=b": 6, "mysql.db.errors.code=1146": 1,
         "tcp.postgres.downstream_cx_total": 99},
        {"postgres.app.sessions_active": 2, "mysql.db.sessions_active": 1},
        {"postgres.app.statement_latency_us.type=begin": [(100, 10, 1)],
         "postgres.app.statement_latency_us.type=commit": [(100, 10, 2)],
         "postgres.app.statement_latency_us.type=select": [(500, 10, 7)]})
    groups = reduce(snap)
    assert set(groups) == {("postgres", "app"), ("mysql", "db")}
    pg, my = groups[("postgres", "app")], groups[("mysql", "db")]
    assert pg.statements == {"select": 7, "other": 2}
    # begin and commit are what the postgres counters call `other`.
    assert pg.latency["other"] == Counter({(100, 10): 3})
    assert (pg.errors, pg.sessions, pg.bytes_client, pg.bytes_server, pg.commits) == (
        {"42": 3}, 2, 100, 900, 4)
    assert my.statements == {"select": 11}
    assert (my.errors, my.sessions) == ({"1146": 1}, 1)


def test_window_rates_and_percentiles_cover_only_the_window() -> None:
    w = Window(seconds=10, rate_seconds=5)
    lat = "mysql.m.statement_duration_us.verb=select"
    w.add(0, _snap({"mysql.m.statements.verb=select": 100}, {}, {lat: [(100, 10, 100)]}))
    w.add(5, _snap({"mysql.m.statements.verb=select": 150}, {}, {lat: [(100, 10, 100),
                                                                       (9000, 100, 50)]}))
    (view,) = w.views()
    row = next(r for r in view.rows if r.type == "select")
    assert (row.total, row.rate, row.samples) == (150, 10.0, 50)
    # Only the 50 slow samples happened inside the window.
    assert row.p50 == quantile(Counter({(9000, 100): 50}), 0.5)
    # 20 s later the first frames have left the window: nothing new, no percentiles.
    w.add(20, _snap({"mysql.m.statements.verb=select": 150}, {}, {lat: [(100, 10, 100),
                                                                        (9000, 100, 50)]}))
    w.add(25, _snap({"mysql.m.statements.verb=select": 150}, {}, {lat: [(100, 10, 100),
                                                                        (9000, 100, 50)]}))
    row = next(r for r in w.views()[0].rows if r.type == "select")
    assert (row.rate, row.p99, row.samples) == (0.0, None, 0)


def test_rates_use_the_newest_frame_old_enough_whatever_the_refresh_interval() -> None:
    # Plain lines refresh every 5 s, a hair more than the 5 s rate window.
    w = Window(seconds=30, rate_seconds=5)
    for t, n in ((0.0, 0), (5.02, 50), (10.04, 150)):
        w.add(t, _snap({"mysql.m.statements.verb=select": n}))
    assert w.views()[0].rate == 100 / 5.02
    # Refreshing every second: the frame 5 s back, not the oldest.
    w = Window(seconds=30, rate_seconds=5)
    for t in range(8):
        w.add(float(t), _snap({"mysql.m.statements.verb=select": 10 * t * t}))
    assert w.views()[0].rate == (490 - 40) / 5


def _two_groups() -> Window:
    w = Window(seconds=30)
    base = {"postgres.demo.statements_select": 10, "postgres.demo.statements_insert": 3,
            "postgres.demo.errors_by_class.class=23": 2,
            "mysql.demo.statements.verb=select": 8, "mysql.demo.statements.verb=insert": 1,
            "mysql.demo.statements.verb=update": 1, "mysql.demo.statements.verb=begin": 1,
            "mysql.demo.statements.verb=commit": 1, "mysql.demo.statements.verb=other": 1,
            "mysql.demo.errors.code=1062": 4}
    w.add(0, _snap(base, {"postgres.demo.sessions_active": 3}))
    w.add(1, _snap({k: v * 2 for k, v in base.items()}, {"postgres.demo.sessions_active": 3},
                   {"postgres.demo.statement_latency_us.type=select": [(2000, 100, 10)]}))
    return w


def test_the_dashboard_fits_80_by_24() -> None:
    console = Console(width=80, height=24, record=True, file=open("/dev/null", "w"),
                      color_system=None)
    layout = dashboard(_two_groups().views(), Status("http://127.0.0.1:1", 30,
                                                     phase="steady: OLTP"), 80, 24)
    console.print(layout)
    lines = console.export_text().splitlines()
    assert len(lines) == 24
    assert all(len(line) <= 80 for line in lines)
    text = "\n".join(lines)
    assert "PostgreSQL stat_prefix=demo" in text and "MySQL stat_prefix=demo" in text
    assert "▶ steady: OLTP" in lines[-1]
    assert "(80 x" not in text  # no layout placeholder box
    pg_rows = [ln for ln in lines if ln.startswith("│ select") or ln.startswith("│ insert")]
    assert len(pg_rows) == 4  # select and insert, in both panels
    # MySQL has six verbs; at 24 lines a panel shows its five busiest, ties by name:
    # select, begin, commit, insert, other (update is left out). PostgreSQL shows all five.
    assert sum(ln.startswith(("│ begin", "│ commit", "│ other", "│ update")) for ln in lines) \
        == 2 + 3  # postgres: other, update; mysql: begin, commit, other
    assert "23:4" in text and "1062:8" in text


def test_plain_lines_name_every_group_once_per_refresh() -> None:
    lines = plain_lines(_two_groups().views(), Status("http://x", 30))
    assert len(lines) == 2
    assert "mysql/demo sessions=0 stmts=13.0/s total=26" in lines[0]
    assert "errors=8[1062:8]" in lines[0]
    assert "postgres/demo sessions=3 stmts=13.0/s total=26" in lines[1]
    assert "p99[select=2.09ms]" in lines[1]
