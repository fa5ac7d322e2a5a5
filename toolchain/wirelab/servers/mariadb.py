"""A throw-away MariaDB server (MySQL protocol) on a loopback port.

    with MariaDBServer() as my:
        pymysql.connect(**my.connect_kwargs())

MariaDB speaks the MySQL protocol but has no caching_sha2_password (MySQL 8's
default); accounts cover the plugins it does have: mysql_native_password and,
when the plugin loads, ed25519.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

from ._base import LocalServer
from ._ports import accepts, choose_port
from ._process import ServerProcess, run_tool
from ._tls import write_tls_files
from ._users import is_root, make_server_dir
from .errors import ServerError, last_lines

_INSTALL_HINT = "install it with `apt-get install mariadb-server`"
_READY_TIMEOUT = 60.0
_BIND_FAILED = ("Address already in use", "Do you already have another server running")

# Auth plugin -> (SONAME to install, or None when built in; clause after IDENTIFIED VIA).
_PLUGINS: dict[str, tuple[str | None, str]] = {
    "mysql_native_password": (None, "mysql_native_password USING PASSWORD('{pw}')"),
    "ed25519": ("auth_ed25519", "ed25519 USING PASSWORD('{pw}')"),
}


def find_binary(name: str) -> Path:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ServerError(f"{name} not found; {_INSTALL_HINT}")


class MariaDBServer(LocalServer):
    """MariaDB in a temp directory on 127.0.0.1; `user` has every privilege."""

    kind = "MariaDB"

    def __init__(self, tls: bool = True, *, port: int | None = None, user: str = "wirelab",
                 password: str | None = None, database: str = "wirelab"):
        super().__init__(tls=tls, port=port, user=user, password=password, database=database)
        self.mariadbd = find_binary("mariadbd")
        self.install_db = find_binary("mariadb-install-db")
        self.version_string = ""
        self.socket_path: Path | None = None
        self.accounts: dict[str, tuple[str, str]] = {}

    # -- what clients use ---------------------------------------------------
    def connect_kwargs(self, port: int | None = None) -> dict:
        """Keyword arguments for `pymysql.connect` and `mysql.connector.connect`."""
        return {"host": self.host, "port": port or self.port, "user": self.user,
                "password": self.password, "database": self.database}

    def cli_args(self, port: int | None = None) -> list[str]:
        """Arguments for the `mariadb` client over TCP: `["mariadb", *my.cli_args()]`."""
        return ["--no-defaults", "--protocol=TCP", f"--host={self.host}",
                f"--port={port or self.port}", f"--user={self.user}",
                f"--password={self.password}", f"--database={self.database}"]

    # -- lifecycle ----------------------------------------------------------
    def _stop_signal(self) -> int:
        return signal.SIGTERM

    def _start(self) -> None:
        # mariadbd runs fine as root (with --user=root), so no service user here.
        self.dir = make_server_dir("wirelab-my-", None)
        data = self.dir / "data"
        self.socket_path = self.dir / "mysqld.sock"
        self.log_path = self.dir / "mariadb.log"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
        user_opt = ["--user=root"] if is_root() else []
        self._install_db(data, user_opt, env)
        tls_opts: list[str] = []
        if self.tls:
            files = write_tls_files(self.dir / "tls")
            self.ca_path = files.ca
            tls_opts = [f"--ssl-ca={files.ca}", f"--ssl-cert={files.cert}",
                        f"--ssl-key={files.key}"]
        for attempt in range(3):
            self.port = choose_port(self._requested_port)
            argv = [
                str(self.mariadbd), "--no-defaults", f"--datadir={data}", *user_opt,
                f"--port={self.port}", "--bind-address=127.0.0.1",
                f"--socket={self.socket_path}", f"--pid-file={self.dir / 'mariadbd.pid'}",
                f"--tmpdir={self.dir}", "--skip-name-resolve", "--skip-log-bin",
                "--performance-schema=OFF", "--max-connections=200",
                "--character-set-server=utf8mb4",
                # Speed over durability: the data directory is thrown away.
                "--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0",
                "--innodb-doublewrite=0", "--innodb-use-native-aio=0", "--sync-binlog=0",
                *tls_opts,
            ]
            self.process = ServerProcess(argv, self.log_path, run_as=None, env=env,
                                         death_signal=signal.SIGKILL, cwd=self.dir)
            if self._wait_socket():
                break
            self.process.stop(signal.SIGKILL)
            if self._requested_port is not None or attempt == 2:
                raise ServerError(f"MariaDB could not listen on 127.0.0.1:{self.port}: "
                                  f"{last_lines(self.log_tail(5))}", self.log_tail())
        self._setup_accounts()
        self._check_tcp_login()

    def _install_db(self, data: Path, user_opt: list[str], env: dict[str, str]) -> None:
        # One retry: a bootstrap has been seen to fail once on a busy machine
        # ("Unknown table 'mysql.tmp_user_sys'") and pass on a fresh directory.
        for _attempt in range(2):
            shutil.rmtree(data, ignore_errors=True)
            proc = run_tool(
                [str(self.install_db), "--no-defaults", f"--datadir={data}", *user_opt,
                 "--auth-root-authentication-method=normal", "--skip-test-db",
                 "--skip-name-resolve", f"--tmpdir={self.dir}"],
                run_as=None, env=env,
            )
            output = (proc.stdout or "") + (proc.stderr or "")
            with open(self.log_path, "a") as log:
                log.write(output)
            if proc.returncode == 0:
                return
        raise ServerError(f"mariadb-install-db failed (exit {proc.returncode}): "
                          f"{last_lines(output)}", output)

    def _wait_socket(self) -> bool:
        """True once root can log in on the socket; False if the port was taken."""
        import pymysql

        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._exited_on_taken_port("MariaDB", _BIND_FAILED):
                return False
            if self.socket_path.exists() and accepts(self.port):
                try:
                    pymysql.connect(unix_socket=str(self.socket_path), user="root",
                                    connect_timeout=3).close()
                    return True
                except pymysql.err.OperationalError:
                    pass
            time.sleep(0.05)
        raise ServerError(f"MariaDB did not accept a login within {_READY_TIMEOUT:.0f} s: "
                          f"{last_lines(self.log_tail())}", self.log_tail())

    def _setup_accounts(self) -> None:
        import pymysql

        conn = pymysql.connect(unix_socket=str(self.socket_path), user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                self.version_string = cur.fetchone()[0]
                self.version = self.version_string.split("-")[0]
                cur.execute(f"CREATE DATABASE `{self.database}`")
                for plugin, (soname, via) in _PLUGINS.items():
                    if soname is not None and not self._install_plugin(cur, plugin, soname):
                        continue
                    user = self.user if plugin == "mysql_native_password" else \
                        f"{self.user}_{plugin}"
                    password = self.password if user == self.user else self.password + plugin[:3]
                    cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED VIA "
                                + via.format(pw=password))
                    cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%' WITH GRANT OPTION")
                    self.accounts[plugin] = (user, password)
        finally:
            conn.close()

    @staticmethod
    def _install_plugin(cur, plugin: str, soname: str) -> bool:
        import pymysql

        cur.execute("SELECT PLUGIN_STATUS FROM information_schema.PLUGINS "
                    "WHERE PLUGIN_NAME = %s", (plugin,))
        row = cur.fetchone()
        if row and row[0] == "ACTIVE":
            return True
        try:
            cur.execute(f"INSTALL SONAME '{soname}'")
        except pymysql.err.MySQLError:
            return False  # the plugin is not shipped with this server: no such account
        return True

    def _check_tcp_login(self) -> None:
        import pymysql

        try:
            conn = pymysql.connect(**self.connect_kwargs(), connect_timeout=5)
        except pymysql.err.MySQLError as exc:
            raise ServerError(f"MariaDB started but {self.user} cannot log in over TCP: {exc}",
                              self.log_tail()) from None
        conn.close()
