"""`wirelab xds pull`: the deploy step of the object-storage recipe.

Copies the published export from an HTTP origin (a bucket's HTTP endpoint, or
any static file server over the export directory) into a local directory and
switches it in exactly as `export` does: blobs first, each checked against its
sha256, then the version's files into a staging directory, then one rename.
A pull that fails half way switches nothing.
"""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WirelabError
from . import publish


@dataclass
class PullResult:
    version: str
    switched: bool  # False when the local copy already had this version
    blobs: int  # blobs downloaded


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=30) as resp:
            return resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise WirelabError(f"could not fetch {url} ({exc}): is the origin serving the "
                           "export directory?") from None


def _manifest(origin: str) -> dict[str, Any]:
    raw = _get(f"{origin}/{publish.CURRENT}/{publish.MANIFEST}")
    try:
        return json.loads(raw)
    except ValueError:
        raise WirelabError(f"{origin}/current/manifest.json is not JSON: is this an export "
                           "directory?") from None


def pull(origin: str, dest: str | Path) -> PullResult:
    """Make `dest` hold the version `origin` publishes now; switch only when complete."""
    origin = origin.rstrip("/")
    dest = Path(dest).absolute()
    manifest = _manifest(origin)
    version = manifest["version"]
    if Path(manifest.get("root", "")) != dest:
        raise WirelabError(
            f"the export at {origin} was written for {manifest.get('root')}, not {dest}: "
            f"export with --root {dest} (its files name paths under it)"
        )
    if publish.current_version(dest) == version:
        return PullResult(version, False, 0)
    with publish.exclusive(dest):
        fetched = 0
        for name, info in manifest["filters"].items():
            blob = info.get("blob", f"{info['sha256']}.wasm")
            if (dest / publish.BLOBS / blob).is_file():
                publish.check_blob(dest, info["sha256"], Path(blob).suffix)
                continue
            data = _get(f"{origin}/{publish.BLOBS}/{blob}")
            actual = hashlib.sha256(data).hexdigest()
            if actual != info["sha256"]:
                raise WirelabError(
                    f"filter {name!r}: {origin}/blobs/{blob} has sha256 {actual}, not "
                    f"{info['sha256']}: the origin is corrupt or half uploaded; nothing switched"
                )
            publish.put_blob_bytes(dest, data, blob)
            fetched += 1
        # From versions/<v>/, which never changes: the origin may switch meanwhile.
        files = {name: _get(f"{origin}/{publish.VERSIONS}/{version}/{name}").decode()
                 for name in [*manifest["files"], publish.MANIFEST]}
        staging = publish.stage(dest, files)
        try:
            if (dest / publish.VERSIONS / version).exists():
                raise WirelabError(f"{dest}/versions/{version} exists but is not current: "
                                   "remove it and pull again")
            publish.switch(dest, staging, version)
        except BaseException:
            publish.discard(staging)
            raise
    return PullResult(version, True, fetched)
