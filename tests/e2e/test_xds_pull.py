"""The object-storage recipe, end to end: publish to an origin, pull on a host, Envoy swaps.

The "bucket" is an export directory served over HTTP; the "host" is another
directory that `wirelab xds pull` keeps in step with it, and a real Envoy runs
the bootstrap of the host's copy in front of real PostgreSQL. No control plane.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import port_for
import pytest

from wirelab.errors import WirelabError
from wirelab.paths import examples_dir
from wirelab.testing.lua import statement_counter_script, write_lua_project
from wirelab.xds import FleetSpec, XListener, export, published_manifest
from wirelab.xds.envoy import XdsEnvoy
from wirelab.xds.fleetfile import FilterEntry
from wirelab.xds.origin import BlobOrigin
from wirelab.xds.pull import pull
from wirelab.xds.status import envoy_state

pytestmark = pytest.mark.e2e

@pytest.fixture(scope="module")
def postgres() -> Iterator:
    from wirelab.servers import PostgresServer

    with PostgresServer(tls=False) as pg:
        yield pg


def queries(pg, port: int, n: int) -> None:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(**pg.conninfo(port), autocommit=True) as conn:
        for _ in range(n):
            assert conn.execute("SELECT 1").fetchone() == (1,)


def wait_value(envoy: XdsEnvoy, name: str, want: int, timeout: float = 15.0) -> int | None:
    snap = envoy.stats.wait_until(lambda s: s.value(name) == want, timeout)
    return snap.value(name)


def test_pull_from_an_http_origin_switches_a_hosts_envoy(postgres, tmp_path: Path) -> None:
    bucket, host = tmp_path / "bucket", tmp_path / "host"
    lua = write_lua_project(tmp_path / "lua", statement_counter_script(), name="pulled",
                            stat_prefix="pulled", metrics_flush_ms=0)
    c = tmp_path / "bytes-counter"
    shutil.copytree(examples_dir() / "bytes-counter", c, ignore=shutil.ignore_patterns("build"))
    port = port_for.select_random()

    def spec() -> FleetSpec:
        return FleetSpec([XListener("postgres", port, (postgres.host, postgres.port),
                                    [FilterEntry(lua), FilterEntry(c)])])

    first = export(spec(), bucket, root=host, envoy_check=False)
    with BlobOrigin(bucket) as origin:
        got = pull(origin.url, host)
        assert (got.version, got.switched, got.blobs) == (first.version, True, 2)
        assert pull(origin.url, host).switched is False  # nothing new
        with XdsEnvoy(host, {"postgres": port}, node_id="host-1") as envoy:
            queries(postgres, port, 3)
            assert wait_value(envoy, "lua.pulled.statements", 3) == 3

            # A new script is exported to the bucket; the host runs the old one until it pulls.
            (lua / "filter.lua").write_text(statement_counter_script("added"))
            second = export(spec(), bucket, root=host, envoy_check=False)
            assert second.changed == ["pulled"]
            time.sleep(0.5)
            assert envoy.stats.snapshot().value("lua.pulled.added") is None
            got = pull(origin.url, host)
            assert (got.version, got.switched, got.blobs) == (second.version, True, 0)
            rows = envoy.stats.wait_until(lambda s: s.value("lua.pulled.added") == 0)
            assert rows.value("lua.pulled.added") == 0
            want = {"pulled": second.filters["pulled"],
                    "bytes-counter": second.filters["bytes-counter"]}
            assert {r.filter: (r.running, r.last) for r in envoy_state(envoy.admin_url, want)} \
                == {n: (v, "accepted") for n, v in want.items()}
            queries(postgres, port, 2)
            assert wait_value(envoy, "lua.pulled.statements", 5) == 5

            # A new C build whose blob is damaged at the origin: the pull refuses it
            # and the host stays where it was.
            src = c / "filter.c"
            src.write_text(src.read_text().replace("bytes_counter", "bytes_counter2"))
            third = export(spec(), bucket, root=host, envoy_check=False)
            sha = published_manifest(bucket)["filters"]["bytes-counter"]["sha256"]
            blob = bucket / "blobs" / f"{sha}.wasm"
            blob.write_bytes(blob.read_bytes()[:-1])
            with pytest.raises(WirelabError, match=f"has sha256 .*, not {sha}: the origin is "
                                                   "corrupt or half uploaded; nothing switched"):
                pull(origin.url, host)
            assert published_manifest(host)["version"] == second.version
            assert not (host / "blobs" / f"{sha}.wasm").exists()
            assert third.version != second.version

            # The command line says the same in one line.
            proc = subprocess.run([sys.executable, "-m", "wirelab", "xds", "pull", origin.url,
                                   str(host)], capture_output=True, text=True, timeout=60)
            assert proc.returncode == 1 and proc.stderr.count("\n") == 1


def test_pull_refuses_an_export_written_for_another_path(tmp_path: Path) -> None:
    c = tmp_path / "bytes-counter"
    shutil.copytree(examples_dir() / "bytes-counter", c, ignore=shutil.ignore_patterns("build"))
    spec = FleetSpec([XListener("db", 15432, ("127.0.0.1", 5432), [FilterEntry(c)])])
    export(spec, tmp_path / "bucket", root=tmp_path / "elsewhere", envoy_check=False)
    with BlobOrigin(tmp_path / "bucket") as origin, \
            pytest.raises(WirelabError, match="export with --root"):
        pull(origin.url, tmp_path / "host")
    assert not (tmp_path / "host").exists()


def test_a_listener_port_in_use_fails_the_start_in_one_line(tmp_path: Path) -> None:
    import socket

    from wirelab.errors import EnvoyError

    c = tmp_path / "bytes-counter"
    shutil.copytree(examples_dir() / "bytes-counter", c, ignore=shutil.ignore_patterns("build"))
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        spec = FleetSpec([XListener("db", port, ("127.0.0.1", 5432), [FilterEntry(c)])])
        export(spec, tmp_path / "xds", envoy_check=False)
        # Envoy's own reason, not the readiness timeout.
        with pytest.raises(EnvoyError, match=f"rejected the listeners .*cannot bind "
                                             f"'127.0.0.1:{port}': Address already in use"):
            XdsEnvoy(tmp_path / "xds", {"db": port}, node_id="busy").start()
