"""Who a server runs as: the current user, or an unprivileged one when we are root.

PostgreSQL refuses to run as root, so as root we create (once) a system user
`wirelab` without a login shell and run the server as that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ._orphans import write_owner
from .errors import ServerError

SERVICE_USER = "wirelab"


@dataclass(frozen=True)
class RunAs:
    uid: int
    gid: int
    name: str


def is_root() -> bool:
    return os.geteuid() == 0


def service_user() -> RunAs | None:
    """The unprivileged user to run servers as, or None to run as ourselves."""
    if not is_root():
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        entry = _create_service_user()
    return RunAs(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _create_service_user() -> pwd.struct_passwd:
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    nologin = shutil.which("nologin") or "/bin/false"
    proc = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home",
         "--home-dir", "/nonexistent", "--shell", nologin, SERVICE_USER],
        capture_output=True, text=True,
    )
    try:
        # Another process may have created it at the same moment; that is fine.
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise ServerError(
            f"cannot create the system user {SERVICE_USER!r} to run PostgreSQL as "
            f"(PostgreSQL refuses root): {proc.stderr.strip() or 'useradd failed'}; "
            f"create it with `useradd --system {SERVICE_USER}` or run as a normal user"
        ) from None


def _traversable_by_all(path: Path) -> bool:
    for part in [path, *path.parents]:
        if not part.stat().st_mode & stat.S_IXOTH:
            return False
    return True


def make_server_dir(prefix: str, owner: RunAs | None) -> Path:
    """A fresh private directory for one server, owned by the user it runs as."""
    base = Path(tempfile.gettempdir())
    if owner is not None and not _traversable_by_all(base):
        # The unprivileged user must be able to reach its data directory.
        base = Path("/tmp")
    # Short names matter: unix socket paths are limited to ~107 bytes.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    write_owner(path)
    os.chmod(path, 0o700)
    if owner is not None:
        os.chown(path, owner.uid, owner.gid)
    return path


def chown_tree(path: Path, owner: RunAs | None) -> None:
    if owner is None:
        return
    os.chown(path, owner.uid, owner.gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), owner.uid, owner.gid, follow_symlinks=False)
