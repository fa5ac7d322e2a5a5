"""`wirelab demo`: both databases behind Envoy with both filters, a workload in phases,
the live dashboard while it runs, and Prometheus scraping it all.

Nothing is simulated: PostgreSQL and MariaDB are real servers, the clients are
psycopg and pymysql through Envoy, the figures are Envoy's stats.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .envoy import Snapshot
from .errors import WirelabError
from .harness import Lab
from .paths import filters_dir
from .prometheus import find_prometheus
from .top.model import quantile, reduce
from .workload import Phase, Workload

# The demo's filter configuration: a slow threshold its slow phase crosses, and
# counters sent to Envoy four times a second so the dashboard moves smoothly.
FILTER_CONFIG = {"stat_prefix": "demo", "slow_threshold_ms": 200, "metrics_flush_ms": 250}


def demo_filters() -> list[Path]:
    """The shipped protocol filters."""
    found = []
    for name in ("postgres", "mysql"):
        project = filters_dir() / name
        if (project / "wirelab.toml").is_file():
            found.append(project)
    return found


def mysql_available() -> bool:
    return shutil.which("mariadbd") is not None or Path("/usr/sbin/mariadbd").exists()


@dataclass
class DemoRun:
    """A lab, its workload and (when installed) Prometheus; `close()` stops them."""

    duration: float = 60.0
    with_mysql: bool | None = None
    with_prometheus: bool | None = None
    step: Callable[[str], None] = lambda msg: None
    lab: Lab | None = None
    workload: Workload | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0

    def start(self) -> DemoRun:
        if self.with_mysql is None:
            self.with_mysql = mysql_available()
        if self.with_prometheus is None:
            self.with_prometheus = find_prometheus() is not None
            if not self.with_prometheus:
                self.step("Prometheus is not installed (apt-get install prometheus): "
                          "running without it")
        self.step("building the filters; starting PostgreSQL"
                  + (", MariaDB" if self.with_mysql else "") + ", Envoy"
                  + (" and Prometheus" if self.with_prometheus else ""))
        self.lab = Lab(postgres=True, mysql=self.with_mysql, filters=demo_filters(),
                       filter_config=dict(FILTER_CONFIG),
                       prometheus=bool(self.with_prometheus)).start()
        try:
            dbs: dict[str, dict[str, Any]] = {"postgres": self.lab.pg_conninfo()}
            if self.with_mysql:
                dbs["mysql"] = self.lab.mysql_kwargs()
            self.workload = Workload(dbs, self.duration, on_phase=self._announce,
                                     stop=self.stop)
            self.step("creating the demo tables through Envoy")
            self.workload.setup()
        except BaseException:
            self.close()
            raise
        return self

    def _announce(self, phase: Phase) -> None:
        self.step(f"phase {phase.name}: {phase.title}")

    def phase(self) -> str:
        w = self.workload
        if w is None or w.phase is None:
            return ""
        left = max(0, self.duration - (time.monotonic() - self.started))
        return f"{w.phase.name}: {w.phase.title.split(':')[0]} ({left:.0f}s left)"

    def run_in_background(self) -> threading.Thread:
        assert self.workload is not None
        self.started = time.monotonic()
        thread = threading.Thread(target=self._run, name="demo-workload", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        try:
            self.workload.run()
        except BaseException:  # noqa: BLE001 - kept in workload.failure, raised by finish
            pass
        finally:
            self.stop.set()

    def finish(self, thread: threading.Thread) -> None:
        """Wait for the workload to end (set `stop` to end it early); raise what broke it."""
        thread.join()
        failure = self.workload.failure if self.workload else None
        if failure is not None:
            raise WirelabError(f"the demo workload failed: {failure}") from None

    def settled_snapshot(self) -> Snapshot:
        """Stats once every connection is closed and histograms flushed."""
        assert self.lab is not None
        stats = self.lab.stats

        def settled(snap: Snapshot) -> bool:
            return all(v.sessions == 0 for v in reduce(snap).values())

        stats.wait_until(settled, timeout=10)
        time.sleep(self.lab.stats_flush_interval_ms / 1000 * 3)
        return stats.snapshot()

    def figures(self, snap: Snapshot) -> dict[str, Any]:
        """The final figures (`--json`)."""
        assert self.lab is not None and self.workload is not None
        groups = {}
        for (proto, prefix), g in sorted(reduce(snap).items()):
            groups[f"{proto}/{prefix}"] = {
                "protocol": proto, "stat_prefix": prefix,
                "statements": {k: v for k, v in sorted(g.statements.items()) if v},
                "latency_us": {k: {"count": sum(b.values()), "p50": quantile(b, 0.5),
                                   "p99": quantile(b, 0.99)}
                               for k, b in sorted(g.latency.items()) if sum(b.values())},
                "errors": {k: v for k, v in sorted(g.errors.items()) if v},
                "sessions_active": g.sessions,
                "commits": g.commits, "rollbacks": g.rollbacks,
                "slow_statements": g.slow,
                "bytes": {"client": g.bytes_client, "server": g.bytes_server},
            }
        return {
            "duration_s": self.duration,
            "phases": self.workload.timeline,
            "filters": groups,
            "clients": self.workload.counts(),
            "admin": self.lab.admin_url,
            "prometheus": self.lab.prometheus.url if self.lab.prometheus else None,
        }

    def close(self) -> None:
        self.stop.set()
        if self.lab is not None:
            self.lab.close()
