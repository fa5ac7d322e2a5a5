"""PostgreSQL protocol 3.0 message *encoders*, for building traffic in tests.

Each function returns the bytes of one message as a client or server sends it;
concatenate them to build a conversation and feed it to a filter in the
emulator. These only write messages: the one PostgreSQL decoder is the C
decoder in `filters/protocols/postgres.c`, which the filters run.

    from wirelab.testing import postgres as pg

    conn.downstream(pg.startup("alice", "shop"))
    conn.upstream(pg.auth_ok() + pg.ready("I"))
    conn.downstream(pg.query("select 1"))
    conn.upstream(pg.row_description(["?column?"]) + pg.data_row(["1"])
                  + pg.command_complete("SELECT 1") + pg.ready("I"))
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

PROTOCOL_3_0 = 196608  # 3 << 16
SSL_REQUEST_CODE = 80877103
TEXT_OID = 25

Value = bytes | str | int | None


def _cstr(value: str | bytes) -> bytes:
    raw = value.encode() if isinstance(value, str) else bytes(value)
    if b"\0" in raw:
        raise ValueError(f"{value!r}: PostgreSQL strings cannot contain NUL bytes")
    return raw + b"\0"


def typed(type_byte: bytes | str, body: bytes = b"") -> bytes:
    """A typed message: type byte, int32 length (counting itself), body."""
    t = type_byte.encode() if isinstance(type_byte, str) else bytes(type_byte)
    if len(t) != 1:
        raise ValueError(f"type byte must be one byte, not {type_byte!r}")
    return t + struct.pack("!I", len(body) + 4) + body


def _value(value: Value) -> bytes:
    if value is None:
        return struct.pack("!i", -1)
    raw = value if isinstance(value, bytes) else str(value).encode()
    return struct.pack("!i", len(raw)) + raw


# --- client (frontend) messages ----------------------------------------------------


def startup(user: str, database: str | None = None, **params: str) -> bytes:
    """StartupMessage (untyped): protocol 3.0, user, database, other parameters."""
    body = struct.pack("!I", PROTOCOL_3_0) + _cstr("user") + _cstr(user)
    if database is not None:
        body += _cstr("database") + _cstr(database)
    for key, value in params.items():
        body += _cstr(key) + _cstr(value)
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request() -> bytes:
    """SSLRequest (untyped); the server answers one byte, b"S" or b"N"."""
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def password(secret: str) -> bytes:
    """PasswordMessage ('p') with a cleartext or md5 password."""
    return typed("p", _cstr(secret))


def query(sql: str) -> bytes:
    """Query ('Q'): the simple query protocol."""
    return typed("Q", _cstr(sql))


def parse(sql: str, name: str = "", param_types: Sequence[int] = ()) -> bytes:
    """Parse ('P'): prepare `sql` as statement `name` ("" = unnamed)."""
    body = _cstr(name) + _cstr(sql) + struct.pack("!H", len(param_types))
    body += b"".join(struct.pack("!I", oid) for oid in param_types)
    return typed("P", body)


def bind(portal: str = "", statement: str = "", params: Sequence[Value] = ()) -> bytes:
    """Bind ('B'): text-format parameters, text-format results."""
    body = _cstr(portal) + _cstr(statement) + struct.pack("!H", 0)
    body += struct.pack("!H", len(params)) + b"".join(_value(p) for p in params)
    body += struct.pack("!H", 0)
    return typed("B", body)


def describe(what: str = "P", name: str = "") -> bytes:
    """Describe ('D') a portal ('P') or a statement ('S')."""
    if what not in ("P", "S"):
        raise ValueError("describe(what=...) is 'P' (portal) or 'S' (statement)")
    return typed("D", what.encode() + _cstr(name))


def execute(portal: str = "", max_rows: int = 0) -> bytes:
    """Execute ('E') a portal; max_rows 0 = all rows."""
    return typed("E", _cstr(portal) + struct.pack("!I", max_rows))


def close(what: str = "P", name: str = "") -> bytes:
    """Close ('C') a portal ('P') or a prepared statement ('S')."""
    if what not in ("P", "S"):
        raise ValueError("close(what=...) is 'P' (portal) or 'S' (statement)")
    return typed("C", what.encode() + _cstr(name))


def flush() -> bytes:
    """Flush ('H'): asks the server to send what it has, without ending the batch."""
    return typed("H")


def function_call(oid: int, args: Sequence[Value] = ()) -> bytes:
    """FunctionCall ('F'): the fast-path interface, text arguments, text result."""
    body = struct.pack("!IH", oid, 0) + struct.pack("!H", len(args))
    body += b"".join(_value(a) for a in args) + struct.pack("!H", 0)
    return typed("F", body)


def copy_data(data: bytes) -> bytes:
    """CopyData ('d'), from either side."""
    return typed("d", data)


def copy_done() -> bytes:
    """CopyDone ('c'), from either side."""
    return typed("c")


def sync() -> bytes:
    """Sync ('S'): ends an extended-protocol request; the server answers ReadyForQuery."""
    return typed("S")


def terminate() -> bytes:
    """Terminate ('X'): the client is leaving."""
    return typed("X")


# --- server (backend) messages ------------------------------------------------------


def auth_ok() -> bytes:
    """AuthenticationOk ('R', code 0)."""
    return typed("R", struct.pack("!I", 0))


def auth_cleartext() -> bytes:
    """AuthenticationCleartextPassword ('R', code 3)."""
    return typed("R", struct.pack("!I", 3))


def parameter_status(name: str, value: str) -> bytes:
    """ParameterStatus ('S')."""
    return typed("S", _cstr(name) + _cstr(value))


def backend_key_data(pid: int = 4242, key: int = 0x5EC2E7) -> bytes:
    """BackendKeyData ('K')."""
    return typed("K", struct.pack("!II", pid, key))


def ready(status: str = "I") -> bytes:
    """ReadyForQuery ('Z'): 'I' idle, 'T' in a transaction, 'E' in a failed transaction."""
    if status not in ("I", "T", "E"):
        raise ValueError("ready(status) is 'I', 'T' or 'E'")
    return typed("Z", status.encode())


def row_description(columns: Iterable[str], type_oid: int = TEXT_OID) -> bytes:
    """RowDescription ('T'): one text column per name."""
    cols = list(columns)
    body = struct.pack("!H", len(cols))
    for name in cols:
        body += _cstr(name) + struct.pack("!IHIhiH", 0, 0, type_oid, -1, -1, 0)
    return typed("T", body)


def data_row(values: Sequence[Value]) -> bytes:
    """DataRow ('D'): text values; None is SQL NULL."""
    return typed("D", struct.pack("!H", len(values)) + b"".join(_value(v) for v in values))


def command_complete(tag: str) -> bytes:
    """CommandComplete ('C') with a tag such as "SELECT 1" or "INSERT 0 3"."""
    return typed("C", _cstr(tag))


def empty_query() -> bytes:
    """EmptyQueryResponse ('I')."""
    return typed("I")


def parse_complete() -> bytes:
    """ParseComplete ('1')."""
    return typed("1")


def bind_complete() -> bytes:
    """BindComplete ('2')."""
    return typed("2")


def close_complete() -> bytes:
    """CloseComplete ('3')."""
    return typed("3")


def portal_suspended() -> bytes:
    """PortalSuspended ('s'): an Execute's row limit was reached; the portal stays open."""
    return typed("s")


def copy_in_response(columns: int = 1) -> bytes:
    """CopyInResponse ('G'): text format."""
    return typed("G", struct.pack("!bH", 0, columns) + b"\0\0" * columns)


def copy_out_response(columns: int = 1) -> bytes:
    """CopyOutResponse ('H'): text format."""
    return typed("H", struct.pack("!bH", 0, columns) + b"\0\0" * columns)


def function_call_response(value: Value) -> bytes:
    """FunctionCallResponse ('V')."""
    return typed("V", _value(value))


def notification(channel: str, payload: str = "", pid: int = 4242) -> bytes:
    """NotificationResponse ('A')."""
    return typed("A", struct.pack("!I", pid) + _cstr(channel) + _cstr(payload))


def no_data() -> bytes:
    """NoData ('n')."""
    return typed("n")


def _fields(severity: str, sqlstate: str, text: str) -> bytes:
    if len(sqlstate) != 5:
        raise ValueError(f"sqlstate {sqlstate!r} must be 5 characters, e.g. '42P01'")
    body = b"S" + _cstr(severity) + b"V" + _cstr(severity)
    body += b"C" + _cstr(sqlstate) + b"M" + _cstr(text)
    return body + b"\0"


def error(severity: str = "ERROR", sqlstate: str = "XX000", message: str = "error") -> bytes:
    """ErrorResponse ('E') with severity, SQLSTATE code and message."""
    return typed("E", _fields(severity, sqlstate, message))


def notice(severity: str = "NOTICE", sqlstate: str = "00000", message: str = "notice") -> bytes:
    """NoticeResponse ('N')."""
    return typed("N", _fields(severity, sqlstate, message))


# --- whole exchanges ---------------------------------------------------------------


def login_reply(pid: int = 4242) -> bytes:
    """What a server answers a trusted StartupMessage with, up to ReadyForQuery."""
    return (auth_ok() + parameter_status("server_version", "18.0")
            + parameter_status("client_encoding", "UTF8") + backend_key_data(pid)
            + ready("I"))


def select_reply(columns: Sequence[str], rows: Sequence[Sequence[Value]],
                 status: str = "I") -> bytes:
    """A SELECT's answer to a simple Query: columns, rows, "SELECT n", ReadyForQuery."""
    out = row_description(columns) + b"".join(data_row(r) for r in rows)
    return out + command_complete(f"SELECT {len(rows)}") + ready(status)


PGBENCH_SELECT_SQL = "SELECT abalance FROM pgbench_accounts WHERE aid = "


def pgbench_select(mode: str = "simple", aid: int = 34283) -> tuple[bytes, bytes, bytes, bytes]:
    """One `pgbench -S` transaction, as the two reads a proxy sees after login.

    Returns (setup client read, setup server read, client read, server read).
    The setup is empty with `-M simple`; with `-M prepared` it is pgbench's
    Parse of statement P_0 and the server's answer, sent once per connection.
    """
    reply = select_reply(["abalance"], [[-2979]])
    if mode == "simple":
        return b"", b"", query(f"{PGBENCH_SELECT_SQL}{aid};"), reply
    if mode == "prepared":
        setup = parse(f"{PGBENCH_SELECT_SQL}$1;", "P_0") + sync()
        client = bind("", "P_0", [aid]) + describe("P") + execute() + sync()
        return setup, parse_complete() + ready("I"), client, bind_complete() + reply
    raise ValueError(f"mode {mode!r}: 'simple' or 'prepared'")
