"""The conversation file: a captured client<->server exchange, as JSON Lines.

Line 1 is a header; every further line is one event, in time order:

    {"format": "wirelab-conversation", "version": 1, "protocol": "postgres", "meta": {...}}
    {"t": 0.0, "conn": 0, "ev": "open", "src": "127.0.0.1:51234", "dst": "127.0.0.1:5432"}
    {"t": 0.0012, "conn": 0, "ev": "data", "dir": "client", "data": "<base64>"}
    {"t": 0.0031, "conn": 0, "ev": "data", "dir": "server", "data": "<base64>"}
    {"t": 0.0100, "conn": 0, "ev": "close", "by": "client"}

The full specification is docs/conversation-format.md.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import WirelabError

FORMAT = "wirelab-conversation"
VERSION = 1

Direction = Literal["client", "server"]
Closer = Literal["client", "server", "recorder"]
_DIRS = ("client", "server")
_CLOSERS = ("client", "server", "recorder")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened on one connection, `t` seconds after the start."""

    t: float
    conn: int
    ev: Literal["open", "data", "close"]
    dir: Direction | None = None  # data events
    data: bytes = b""  # data events: exactly the bytes of one read
    by: Closer | None = None  # close events: who closed first
    src: str | None = None  # open events: client address "host:port"
    dst: str | None = None  # open events: the address the client connected to

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": round(self.t, 6), "conn": self.conn, "ev": self.ev}
        if self.ev == "data":
            out["dir"] = self.dir
            out["data"] = base64.b64encode(self.data).decode("ascii")
        elif self.ev == "close":
            out["by"] = self.by
        else:
            if self.src is not None:
                out["src"] = self.src
            if self.dst is not None:
                out["dst"] = self.dst
        return out


@dataclass
class Connection:
    """The events of one connection, in order (a view built from the conversation)."""

    id: int
    events: list[Event] = field(default_factory=list)

    @property
    def src(self) -> str | None:
        return next((e.src for e in self.events if e.ev == "open"), None)

    @property
    def dst(self) -> str | None:
        return next((e.dst for e in self.events if e.ev == "open"), None)

    @property
    def closed_by(self) -> Closer | None:
        return next((e.by for e in self.events if e.ev == "close"), None)

    def bytes(self, direction: Direction) -> bytes:
        """Every byte sent in `direction`, concatenated."""
        return b"".join(e.data for e in self.events if e.ev == "data" and e.dir == direction)


@dataclass
class Conversation:
    protocol: str = "tcp"
    meta: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    # --- building -----------------------------------------------------------
    def open(self, conn: int, t: float, src: str | None = None, dst: str | None = None) -> None:
        self.events.append(Event(t, conn, "open", src=src, dst=dst))

    def data(self, conn: int, t: float, direction: Direction, data: bytes) -> None:
        self.events.append(Event(t, conn, "data", dir=direction, data=bytes(data)))

    def close(self, conn: int, t: float, by: Closer) -> None:
        self.events.append(Event(t, conn, "close", by=by))

    # --- views --------------------------------------------------------------
    @property
    def connections(self) -> list[Connection]:
        by_id: dict[int, Connection] = {}
        for e in self.events:
            by_id.setdefault(e.conn, Connection(e.conn)).events.append(e)
        return list(by_id.values())

    def total_bytes(self, direction: Direction | None = None) -> int:
        return sum(
            len(e.data)
            for e in self.events
            if e.ev == "data" and (direction is None or e.dir == direction)
        )

    # --- files --------------------------------------------------------------
    def header(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "protocol": self.protocol, "meta": self.meta}

    def lines(self) -> Iterator[str]:
        yield json.dumps(self.header(), separators=(",", ":"))
        for e in self.events:
            yield json.dumps(e.to_json(), separators=(",", ":"))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("w") as fh:
            for line in self.lines():
                fh.write(line + "\n")
        tmp.replace(path)  # a reader never sees half a file
        return path

    def writer(self, path: str | Path) -> ConversationWriter:
        """A file that gets this conversation's header now and each event as it happens."""
        return ConversationWriter(Path(path), self.header())

    @classmethod
    def load(cls, path: str | Path) -> Conversation:
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise WirelabError(
                f"conversation file {path} does not exist (record one with `wirelab record`)"
            ) from None
        except UnicodeDecodeError:
            raise WirelabError(f"{path} is not a wirelab conversation (not UTF-8 text)") from None
        return cls.parse(text.splitlines(), source=str(path))

    @classmethod
    def parse(cls, lines: Iterable[str], source: str = "<conversation>") -> Conversation:
        it = iter(enumerate(lines, 1))
        header = None
        for n, line in it:
            if line.strip():
                header = _json(line, source, n)
                break
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise WirelabError(
                f"{source} is not a wirelab conversation: the first line must be "
                f'{{"format": "{FORMAT}", "version": {VERSION}, ...}}'
            )
        if header.get("version") != VERSION:
            raise WirelabError(
                f"{source}: conversation version {header.get('version')!r} is not supported "
                f"(this wirelab reads version {VERSION}; upgrade wirelab or re-record)"
            )
        conv = cls(protocol=str(header.get("protocol", "tcp")), meta=dict(header.get("meta") or {}))
        opened: set[int] = set()
        for n, line in it:
            if line.strip():
                event = _event(_json(line, source, n), source, n)
                _check_order(event, opened, f"{source}:{n}")
                conv.events.append(event)
        return conv

    def check(self, source: str = "<conversation>") -> None:
        """Raise a WirelabError for an event on a connection that was never opened."""
        opened: set[int] = set()
        for i, event in enumerate(self.events, 1):
            _check_order(event, opened, f"{source}: event {i}")


def _check_order(event: Event, opened: set[int], where: str) -> None:
    if event.ev == "open":
        if event.conn in opened:
            raise WirelabError(f"{where}: connection {event.conn} is opened twice; give the "
                               "second one its own \"conn\" number")
        opened.add(event.conn)
    elif event.conn not in opened:
        raise WirelabError(
            f"{where}: {event.ev} event for connection {event.conn}, which was never opened; "
            f'add {{"t": {event.t:g}, "conn": {event.conn}, "ev": "open"}} before it'
        )


class ConversationWriter:
    """Appends events to a conversation file as they happen, one flushed line each, so
    a recorder killed at any moment leaves a file that holds everything up to then."""

    def __init__(self, path: Path, header: dict[str, Any]):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = path.open("w")
        self._line(header)

    def _line(self, obj: dict[str, Any]) -> None:
        self._fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._fh.flush()

    def write(self, event: Event) -> None:
        if not self._fh.closed:
            self._line(event.to_json())

    def close(self) -> None:
        self._fh.close()


def _json(line: str, source: str, n: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise WirelabError(
            f"{source}:{n}: invalid JSON ({exc.msg}); fix or re-record the file"
        ) from None


def _event(obj: Any, source: str, n: int) -> Event:
    def bad(why: str) -> WirelabError:
        return WirelabError(f"{source}:{n}: {why}; see docs/conversation-format.md")

    if not isinstance(obj, dict):
        raise bad("an event must be a JSON object")
    t, conn = obj.get("t"), obj.get("conn", 0)
    if not isinstance(t, int | float) or t < 0:
        raise bad('"t" must be a non-negative number of seconds')
    if not isinstance(conn, int) or conn < 0:
        raise bad('"conn" must be a non-negative integer')
    # A line with "data" and no "ev" is a data event (the short form).
    ev = obj.get("ev", "data" if "data" in obj else None)
    if ev == "data":
        if obj.get("dir") not in _DIRS:
            raise bad('a data event needs "dir": "client" or "server"')
        try:
            data = base64.b64decode(obj.get("data", ""), validate=True)
        except (ValueError, TypeError):
            raise bad('"data" must be base64') from None
        return Event(float(t), conn, "data", dir=obj["dir"], data=data)
    if ev == "close":
        if obj.get("by") not in _CLOSERS:
            raise bad('a close event needs "by": "client", "server" or "recorder"')
        return Event(float(t), conn, "close", by=obj["by"])
    if ev == "open":
        return Event(float(t), conn, "open", src=obj.get("src"), dst=obj.get("dst"))
    raise bad(f'unknown event {ev!r} (expected "open", "data" or "close")')
