"""The error a server start raises: one line for the user, the log kept aside."""

from __future__ import annotations

from ..errors import WirelabError


class ServerError(WirelabError):
    """A database server could not be found, started or configured.

    `log` holds the tail of the server's log (or the failing command's output),
    which the message only summarises.
    """

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


def last_lines(text: str, n: int = 2) -> str:
    """The last meaningful lines of a log, joined to fit in a one-line message."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " / ".join(lines[-n:])
