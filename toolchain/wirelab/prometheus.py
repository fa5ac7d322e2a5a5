"""A real Prometheus (Debian's `prometheus` package) scraping Envoy's /stats/prometheus.

    with PrometheusServer(["127.0.0.1:9901"]) as prom:
        prom.query('postgres_sessions_active{stat_prefix="demo"}')

It scrapes every second (a demo should move while people watch), loads the
shipped recording rules (`examples/dashboards/wirelab.rules.yml`: the latency
percentiles the Grafana dashboard draws) and keeps its data in the server's
temp directory, removed on close like the database servers'.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .errors import WirelabError
from .paths import examples_dir
from .servers._base import LocalServer
from .servers._ports import accepts, choose_port
from .servers._process import ServerProcess
from .servers._users import make_server_dir
from .servers.errors import ServerError, last_lines

INSTALL_HINT = "apt-get install prometheus"
SCRAPE_JOB = "envoy"
_READY_TIMEOUT = 60.0


def find_prometheus() -> Path | None:
    for candidate in (shutil.which("prometheus"), "/usr/bin/prometheus"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def rules_file() -> Path:
    """The recording rules shipped beside the Grafana dashboard."""
    return examples_dir() / "dashboards" / "wirelab.rules.yml"


def scrape_config(targets: Sequence[str], *, interval: str = "1s",
                  rules: Sequence[str | Path] = ()) -> dict[str, Any]:
    """prometheus.yml as data: one job scraping Envoy's admin `targets` (host:port)."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(r) for r in rules],
        "scrape_configs": [{
            "job_name": SCRAPE_JOB,
            "metrics_path": "/stats/prometheus",
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "static_configs": [{"targets": list(targets)}],
        }],
    }


class PrometheusServer(LocalServer):
    """Prometheus on a free loopback port, scraping `targets` every `interval`."""

    kind = "Prometheus"

    def __init__(self, targets: Sequence[str], *, interval: str = "1s",
                 rules: Sequence[str | Path] | None = None, port: int | None = None):
        # LocalServer's credentials have no meaning here: Prometheus has no login.
        super().__init__(tls=False, port=port, user="", password="-", database="")
        binary = find_prometheus()
        if binary is None:
            raise ServerError(f"prometheus is not installed: {INSTALL_HINT}")
        self.binary = binary
        self.targets = list(targets)
        self.interval = interval
        self.rules = [Path(r) for r in (rules if rules is not None else [rules_file()])]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _stop_signal(self) -> int:
        return signal.SIGTERM

    def _start(self) -> None:
        self.dir = make_server_dir("wirelab-prom-", None)
        self.log_path = self.dir / "prometheus.log"
        config = self.dir / "prometheus.yml"
        config.write_text(yaml.safe_dump(
            scrape_config(self.targets, interval=self.interval, rules=self.rules),
            sort_keys=False))
        self.port = choose_port(self._requested_port)
        argv = [str(self.binary), f"--config.file={config}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--storage.tsdb.retention.time=1d", "--log.level=warn"]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}
        self.process = ServerProcess(argv, self.log_path, run_as=None, env=env,
                                     death_signal=signal.SIGKILL, cwd=self.dir)
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            code = self.process.exit_code()
            if code is not None:
                log = self.log_tail()
                raise ServerError(f"prometheus exited with code {code} while starting: "
                                  f"{last_lines(log)}", log)
            if accepts(self.port) and self._ready():
                return
            time.sleep(0.2)
        raise ServerError(f"prometheus not ready within {_READY_TIMEOUT:.0f} s", self.log_tail())

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.HTTPError):
            return False

    # --- the HTTP API ------------------------------------------------------------
    def api(self, path: str, **params: str) -> Any:
        return api_get(self.url, path, **params)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query: [{"metric": {labels}, "value": [t, "v"]}, ...]."""
        return query(self.url, promql)


def api_get(base_url: str, path: str, **params: str) -> Any:
    """GET a Prometheus HTTP API path; returns `data`, or raises one clear line."""
    url = f"{base_url.rstrip('/')}{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            doc = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = json.loads(exc.read() or b"{}")
        raise WirelabError(f"Prometheus refused {path}: {body.get('error', exc)}") from None
    except OSError as exc:
        raise WirelabError(f"Prometheus at {base_url} did not answer ({exc})") from None
    if doc.get("status") != "success":
        raise WirelabError(f"Prometheus answered {path} with {doc.get('error')}")
    return doc["data"]


def query(base_url: str, promql: str) -> list[dict[str, Any]]:
    data = api_get(base_url, "/api/v1/query", query=promql)
    return list(data["result"])


def target_health(base_url: str) -> list[dict[str, Any]]:
    """The active scrape targets with their health ("up"/"down") and last error."""
    return list(api_get(base_url, "/api/v1/targets")["activeTargets"])
