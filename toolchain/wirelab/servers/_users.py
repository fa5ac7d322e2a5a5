"""Who a server runs as: the current user, or an unprivileged one when we are root.

PostgreSQL refuses to run as root, so as root we create (once) a system user
`wirelab` without a login shell and run the server as that user.
"""

from __future__ import annotations

import hashlib
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


def can_run(owner: RunAs, program: Path) -> bool:
    """Whether `owner` can reach and execute `program` (asked as that user, so every
    parent directory's mode and ACL counts)."""
    test = shutil.which("test") or "/usr/bin/test"
    proc = subprocess.run([test, "-x", str(program)], user=owner.uid, group=owner.gid,
                          extra_groups=[], capture_output=True, check=False)
    return proc.returncode == 0


def readable_install(bin_dir: Path, owner: RunAs | None) -> Path:
    """`bin_dir`, or a copy of its install (bin/, lib/, share/) that `owner` can read.

    As root the server runs as an unprivileged user, which cannot enter a private
    directory such as a virtualenv under /root (mode 0700). The copy sits beside the
    servers' own directories, owned by root and read-only to others, and is reused
    until the original changes.
    """
    if owner is None or can_run(owner, bin_dir / "postgres"):
        return bin_dir
    root = bin_dir.parent
    ident = bin_dir / "postgres"
    st = ident.stat()
    key = hashlib.sha256(f"{root}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()[:16]
    base = Path(tempfile.gettempdir())
    if not _traversable_by_all(base):
        base = Path("/tmp")
    dest = base / f"wirelab-pginstall-{key}"
    # The wheel's binaries find their libraries at $ORIGIN/../../../<package>.libs
    # (auditwheel), so the copy keeps <package>/<install> and <package>.libs side by side.
    package = root.parent
    libs = package.parent / f"{package.name}.libs"
    copied_bin = dest / package.name / root.name / bin_dir.name
    if _trusted_copy(copied_bin / "postgres"):
        return copied_bin
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".wirelab-pginstall-", dir=base))
        shutil.copytree(root, tmp / "copy" / package.name / root.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, tmp / "copy" / libs.name, symlinks=True)
        for d in (tmp / "copy", tmp / "copy" / package.name):
            os.chmod(d, 0o755)
        os.replace(tmp / "copy", dest)
        shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        if _trusted_copy(copied_bin / "postgres"):  # another process won the race
            return copied_bin
        raise ServerError(
            f"PostgreSQL runs as the unprivileged user {owner.name!r} (it refuses root), which "
            f"cannot read {bin_dir} (a parent directory is private), and copying it to {dest} "
            f"failed ({exc.strerror or exc}): make the parents readable (chmod o+x), install "
            "wirelab outside the private directory, or pass --pg-bin /usr/lib/postgresql/<v>/bin"
        ) from None
    return copied_bin


def _trusted_copy(program: Path) -> bool:
    """A copy made by root that nobody else can have changed."""
    try:
        for path in (program, *list(program.parents)[:4]):
            st = path.lstat()
            if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) or \
                    stat.S_ISLNK(st.st_mode):
                return False
    except OSError:
        return False
    return True
