"""Publishing an export: blobs by hash, a new version directory, one rename.

    ROOT/blobs/<sha256>.wasm        code, written once, never rewritten
    ROOT/versions/0007/             one complete export (lds, cds, ecds-*, manifest)
    ROOT/current -> versions/0007   switched by renaming a new symlink over it
    ROOT/lds.json -> current/lds.json, ROOT/ecds-<f>.json -> current/...

Envoy watches ROOT (`watched_directory`): the rename of `current` is a move
into ROOT, after which it re-reads every file through the new link, so it
never sees half an export.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import WirelabError

CURRENT = "current"
VERSIONS = "versions"
BLOBS = "blobs"
MANIFEST = "manifest.json"
KEEP_VERSIONS = 5


@contextlib.contextmanager
def exclusive(root: Path):
    """Serialize publishers of one directory (two exports at once would pick one version)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_blob(root: Path, sha256: str, suffix: str = ".wasm") -> None:
    """A blob already in the store must still be what its name says."""
    path = root / BLOBS / f"{sha256}{suffix}"
    if path.is_file():
        actual = sha256_file(path)
        if actual != sha256:
            raise WirelabError(
                f"blob {path} does not match its hash (its sha256 is {actual}): "
                "the store is corrupt; delete the file and export again"
            )


def put_blob(root: Path, source: Path, sha256: str) -> Path:
    """Copy `source` into the store under its hash and suffix (no-op when present)."""
    store = root / BLOBS
    store.mkdir(parents=True, exist_ok=True)
    dest = store / f"{sha256}{source.suffix}"
    if dest.is_file():
        return dest
    fd, tmp = tempfile.mkstemp(dir=store, prefix=".blob-")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o755 if source.suffix == ".so" else 0o644)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def put_blob_bytes(root: Path, data: bytes, name: str) -> Path:
    """Write downloaded blob bytes under `name` (already checked) atomically."""
    store = root / BLOBS
    store.mkdir(parents=True, exist_ok=True)
    dest = store / name
    fd, tmp = tempfile.mkstemp(dir=store, prefix=".blob-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o755 if dest.suffix == ".so" else 0o644)
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def current_version(root: Path) -> str | None:
    link = root / CURRENT
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def published_manifest(root: str | Path) -> dict[str, Any] | None:
    """The manifest of the published export, or None when nothing is published."""
    path = Path(root) / CURRENT / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def first_exports(root: str | Path) -> dict[tuple[str, str], str]:
    """(filter, filter version) -> the first kept export that published it."""
    out: dict[tuple[str, str], str] = {}
    versions = Path(root) / VERSIONS
    if not versions.is_dir():
        return out
    for vdir in sorted(p for p in versions.iterdir() if p.name.isdigit()):
        try:
            manifest = json.loads((vdir / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        for name, info in manifest.get("filters", {}).items():
            out.setdefault((name, info["version"]), vdir.name)
    return out


def next_version(root: Path) -> str:
    versions = root / VERSIONS
    numbers = [int(p.name) for p in versions.iterdir() if p.name.isdigit()] \
        if versions.is_dir() else []
    return f"{max(numbers, default=0) + 1:04d}"


def stage(root: Path, files: dict[str, str]) -> Path:
    """Write `files` into a hidden directory under ROOT/versions; return it."""
    versions = root / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=versions, prefix=".staging-"))
    for name, text in files.items():
        (staging / name).write_text(text)
    os.chmod(staging, 0o755)
    return staging


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)


def switch(root: Path, staging: Path, version: str) -> Path:
    """Make `staging` the published export with one rename of ROOT/current."""
    final = root / VERSIONS / version
    os.rename(staging, final)
    # Stable names first: a link to a file the current export lacks is
    # harmless, since no published resource names it yet.
    for entry in final.iterdir():
        if entry.name == MANIFEST:
            continue
        link = root / entry.name
        if not link.is_symlink():
            if link.exists():
                raise WirelabError(f"{link} is in the way of the export: remove it")
            os.symlink(Path(CURRENT) / entry.name, link)
    tmp = root / f".{CURRENT}.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(Path(VERSIONS) / version, tmp)
    os.replace(tmp, root / CURRENT)  # rename(2): the one step Envoy reacts to
    _prune(root, keep={version})
    return final


def _prune(root: Path, keep: set[str]) -> None:
    """Drop old versions beyond KEEP_VERSIONS; blobs stay (older Envoys may still start)."""
    versions = sorted(p for p in (root / VERSIONS).iterdir() if p.name.isdigit())
    for old in versions[:-KEEP_VERSIONS]:
        if old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)
