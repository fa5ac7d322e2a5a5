"""Throw-away TLS material for a local server: a CA and a cert for 127.0.0.1."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TLSFiles:
    ca: Path      # clients that verify trust this
    cert: Path    # server certificate chain
    key: Path     # server private key (mode 0600, owned by the server's user)


def write_tls_files(directory: Path, uid: int | None = None, gid: int | None = None) -> TLSFiles:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(directory / "ca.pem", directory / "server.crt", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    server.cert_chain_pems[0].write_to_path(str(files.cert))
    for extra in server.cert_chain_pems[1:]:
        extra.write_to_path(str(files.cert), append=True)
    server.private_key_pem.write_to_path(str(files.key))
    # PostgreSQL refuses a key that group or others can read.
    os.chmod(files.key, 0o600)
    for path in (files.ca, files.cert):
        os.chmod(path, 0o644)
    if uid is not None:
        for path in (directory, files.ca, files.cert, files.key):
            os.chown(path, uid, gid if gid is not None else -1)
    return files
