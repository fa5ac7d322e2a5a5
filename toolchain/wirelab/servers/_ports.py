"""Loopback ports: pick a free one, or say clearly that a chosen one is taken."""

from __future__ import annotations

import socket

import port_for

from .errors import ServerError

HOST = "127.0.0.1"


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # Without SO_REUSEADDR a port in TIME_WAIT looks taken, though servers
        # (which set it) can bind it; match what the servers will see.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def choose_port(requested: int | None) -> int:
    if requested is None:
        return port_for.select_random()
    if not port_is_free(requested):
        raise ServerError(
            f"port {requested} on {HOST} is in use; stop whatever listens there "
            "or leave the port unset to get a free one"
        )
    return requested


def accepts(port: int, host: str = HOST, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
