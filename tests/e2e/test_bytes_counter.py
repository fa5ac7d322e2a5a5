"""Issue 2: examples/bytes-counter in real Envoy in front of a real PostgreSQL.

The filter's counters must equal what Envoy's own tcp_proxy counts for the same
connections: an exact cross-check of two independent byte counters.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from wirelab.envoy import EnvoyProcess, FilterSpec, ListenerSpec

pytestmark = pytest.mark.e2e

PSQL_RUNS = 2
PSYCOPG_RUNS = 3
ROWS = 10_000


def _postgres_server():
    servers = pytest.importorskip("wirelab.servers", reason="wirelab.servers is not available")
    try:
        servers.postgres.resolve_bin_dir(None, tls=False)
    except servers.ServerError as exc:
        pytest.skip(f"PostgreSQL server binaries are absent: {exc}")
    return servers.PostgresServer(tls=False)


def _data_row_bytes(values: range) -> int:
    """Bytes of the DataRow messages for one text column holding `values`:
    type (1) + length (4) + column count (2) + value length (4) + the digits."""
    return sum(11 + len(str(v)) for v in values)


def test_bytes_counter_matches_envoys_tcp_proxy_counts(bytes_counter_wasm: Path) -> None:
    if shutil.which("psql") is None:
        pytest.skip("psql is absent: apt-get install postgresql-client")
    psycopg = pytest.importorskip("psycopg", reason="psycopg is absent: pip install psycopg")

    bytes_filter = FilterSpec("bytes", bytes_counter_wasm, {"stat_prefix": "pg"})
    with _postgres_server() as pg:
        listener = ListenerSpec("postgres", (pg.host, pg.port), [bytes_filter])
        with EnvoyProcess([listener]) as envoy:
            port = envoy.port("postgres")
            for i in range(PSQL_RUNS):
                out = subprocess.run(
                    ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", f"select {i} + 40"],
                    env=pg.env(port=port), capture_output=True, text=True, timeout=60,
                )
                assert (out.returncode, out.stdout.strip()) == (0, str(i + 40)), out.stderr
            for _ in range(PSYCOPG_RUNS):
                with psycopg.connect(pg.dsn(port=port)) as conn:
                    rows = conn.execute(
                        "select g::text from generate_series(1, %s) g", (ROWS,)
                    ).fetchall()
                    assert len(rows) == ROWS and rows[-1] == (str(ROWS),)

            stats = envoy.stats
            connections = PSQL_RUNS + PSYCOPG_RUNS
            stats.wait_for("tcp.pg.connections_total", connections)
            stats.wait_for("tcp.pg.connections_active", 0)  # every close was seen
            stats.wait_for("tcp.postgres.downstream_cx_total", connections)
            snap = stats.snapshot()
            client_bytes = snap.counter("tcp.postgres.downstream_cx_rx_bytes_total")
            server_bytes = snap.counter("tcp.postgres.downstream_cx_tx_bytes_total")
            # The filter saw exactly the bytes Envoy proxied, in each direction.
            stats.wait_for("tcp.pg.bytes_total.direction=client", client_bytes)
            stats.wait_for("tcp.pg.bytes_total.direction=server", server_bytes)
            assert snap.counter("tcp.postgres.upstream_flush_total") == 0
            samples = stats.prometheus()

    # The result rows alone set a floor on what the server sent.
    assert server_bytes > PSYCOPG_RUNS * _data_row_bytes(range(1, ROWS + 1))
    labelled = {
        (s.name, s.labels.get("direction")): s.value
        for s in samples
        if s.labels.get("stat_prefix") == "pg"
    }
    assert labelled == {
        ("tcp_connections_total", None): connections,
        ("tcp_connections_active", None): 0,
        ("tcp_bytes_total", "client"): client_bytes,
        ("tcp_bytes_total", "server"): server_bytes,
    }
