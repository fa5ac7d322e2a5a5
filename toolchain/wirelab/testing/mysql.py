"""MySQL / MariaDB client/server protocol *encoders*, for building traffic in tests.

Each function returns the bytes of one or more packets (3-byte length, sequence
id, payload) as a client or server sends them. They only write packets: the
one MySQL decoder is the C decoder in `filters/protocols/mysql.c`, which the
filters run.

Sequence ids: a command starts at 0 and its answer continues at 1, so
`com_query(sql)` is seq 0 and `ok()`, `err(...)`, `resultset(...)` start at 1.
The login is greeting (0), handshake response (1), OK (2): `ok(seq=2)`.

    from wirelab.testing import mysql as my

    conn.upstream(my.greeting())
    conn.downstream(my.handshake_response("alice", "shop"))
    conn.upstream(my.ok(seq=2))
    conn.downstream(my.com_query("select 1"))
    conn.upstream(my.resultset(["1"], [["1"]]))
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

# Capability flags
LONG_PASSWORD = 1 << 0
FOUND_ROWS = 1 << 1
LONG_FLAG = 1 << 2
CONNECT_WITH_DB = 1 << 3
PROTOCOL_41 = 1 << 9
TRANSACTIONS = 1 << 13
SECURE_CONNECTION = 1 << 15
MULTI_STATEMENTS = 1 << 16
MULTI_RESULTS = 1 << 17
PLUGIN_AUTH = 1 << 19
PLUGIN_AUTH_LENENC = 1 << 21
DEPRECATE_EOF = 1 << 24

#: What both sides announce by default (no TLS, no compression, classic EOF packets).
DEFAULT_CAPABILITIES = (LONG_PASSWORD | FOUND_ROWS | LONG_FLAG | CONNECT_WITH_DB | PROTOCOL_41
                        | TRANSACTIONS | SECURE_CONNECTION | MULTI_STATEMENTS | MULTI_RESULTS
                        | PLUGIN_AUTH | PLUGIN_AUTH_LENENC)

SERVER_STATUS_IN_TRANS = 0x0001
SERVER_STATUS_AUTOCOMMIT = 0x0002
SERVER_MORE_RESULTS_EXISTS = 0x0008
SERVER_STATUS_CURSOR_EXISTS = 0x0040
SERVER_STATUS_LAST_ROW_SENT = 0x0080
UTF8MB4 = 45
TYPE_VAR_STRING = 0xFD

COM_QUIT = 0x01
COM_INIT_DB = 0x02
COM_QUERY = 0x03
COM_PING = 0x0E
COM_CHANGE_USER = 0x11
COM_STMT_PREPARE = 0x16
COM_STMT_EXECUTE = 0x17
COM_STMT_SEND_LONG_DATA = 0x18
COM_STMT_CLOSE = 0x19
COM_STMT_RESET = 0x1A
COM_STMT_FETCH = 0x1C
COM_RESET_CONNECTION = 0x1F
COM_STMT_BULK_EXECUTE = 0xFA

CURSOR_TYPE_READ_ONLY = 0x01

Value = bytes | str | int | None


def packet(payload: bytes, seq: int = 0) -> bytes:
    """One packet: 3-byte little-endian payload length, sequence id, payload."""
    if len(payload) >= 0xFFFFFF:
        raise ValueError("payloads of 16 MiB - 1 bytes or more span several packets")
    return struct.pack("<I", len(payload))[:3] + bytes([seq & 0xFF]) + payload


def lenenc_int(n: int) -> bytes:
    """A length-encoded integer."""
    if n < 0xFB:
        return bytes([n])
    if n < 1 << 16:
        return b"\xfc" + struct.pack("<H", n)
    if n < 1 << 24:
        return b"\xfd" + struct.pack("<I", n)[:3]
    return b"\xfe" + struct.pack("<Q", n)


def lenenc_str(value: Value) -> bytes:
    """A length-encoded string; None is the NULL marker 0xfb (row values)."""
    if value is None:
        return b"\xfb"
    raw = value if isinstance(value, bytes) else str(value).encode()
    return lenenc_int(len(raw)) + raw


def _cstr(value: str) -> bytes:
    return value.encode() + b"\0"


# --- login ------------------------------------------------------------------------


def greeting(server_version: str = "10.11.6-MariaDB", conn_id: int = 7,
             capabilities: int = DEFAULT_CAPABILITIES,
             auth_plugin: str = "mysql_native_password", seq: int = 0) -> bytes:
    """The server's HandshakeV10."""
    scramble = b"abcdefghijklmnopqrst"  # 20 bytes
    payload = b"\x0a" + _cstr(server_version) + struct.pack("<I", conn_id)
    payload += scramble[:8] + b"\0"
    payload += struct.pack("<H", capabilities & 0xFFFF) + bytes([UTF8MB4])
    payload += struct.pack("<H", SERVER_STATUS_AUTOCOMMIT)
    payload += struct.pack("<H", (capabilities >> 16) & 0xFFFF)
    payload += bytes([len(scramble) + 1]) + b"\0" * 10
    payload += scramble[8:] + b"\0"
    payload += _cstr(auth_plugin)
    return packet(payload, seq)


def handshake_response(user: str, database: str | None = None,
                       auth_plugin: str = "mysql_native_password",
                       capabilities: int = DEFAULT_CAPABILITIES,
                       auth_data: bytes = b"\x11" * 20, seq: int = 1) -> bytes:
    """The client's HandshakeResponse41 (CONNECT_WITH_DB only when a database is given)."""
    caps = capabilities | PROTOCOL_41
    caps = caps | CONNECT_WITH_DB if database is not None else caps & ~CONNECT_WITH_DB
    payload = struct.pack("<IIB", caps, 1 << 24, UTF8MB4) + b"\0" * 23
    payload += _cstr(user)
    if caps & PLUGIN_AUTH_LENENC:
        payload += lenenc_str(auth_data)
    elif caps & SECURE_CONNECTION:
        payload += bytes([len(auth_data)]) + auth_data
    else:
        payload += auth_data + b"\0"
    if database is not None:
        payload += _cstr(database)
    if caps & PLUGIN_AUTH:
        payload += _cstr(auth_plugin)
    return packet(payload, seq)


# --- answers -----------------------------------------------------------------------


def ok(affected_rows: int = 0, last_insert_id: int = 0,
       status: int = SERVER_STATUS_AUTOCOMMIT, warnings: int = 0, seq: int = 1) -> bytes:
    """OK packet (0x00). seq=1 answers a command; seq=2 ends the login."""
    payload = b"\x00" + lenenc_int(affected_rows) + lenenc_int(last_insert_id)
    payload += struct.pack("<HH", status, warnings)
    return packet(payload, seq)


def err(code: int = 1064, sqlstate: str = "42000", msg: str = "error", seq: int = 1) -> bytes:
    """ERR packet (0xff) with error code, SQLSTATE and message."""
    if len(sqlstate) != 5:
        raise ValueError(f"sqlstate {sqlstate!r} must be 5 characters, e.g. '42S02'")
    payload = b"\xff" + struct.pack("<H", code) + b"#" + sqlstate.encode() + msg.encode()
    return packet(payload, seq)


def eof(warnings: int = 0, status: int = SERVER_STATUS_AUTOCOMMIT, seq: int = 1) -> bytes:
    """EOF packet (0xfe), as sent without CLIENT_DEPRECATE_EOF."""
    return packet(b"\xfe" + struct.pack("<HH", warnings, status), seq)


def column_definition(name: str, seq: int = 2, table: str = "t", schema: str = "db") -> bytes:
    """ColumnDefinition41 of a VARCHAR column."""
    payload = b"".join(lenenc_str(s) for s in ("def", schema, table, table, name, name))
    payload += b"\x0c" + struct.pack("<HIBHB", UTF8MB4, 1024, TYPE_VAR_STRING, 0, 0) + b"\0\0"
    return packet(payload, seq)


def resultset(columns: Sequence[str], rows: Sequence[Sequence[Value]], seq: int = 1,
              deprecate_eof: bool = False, status: int = SERVER_STATUS_AUTOCOMMIT) -> bytes:
    """A text result set: column count, definitions, (EOF), rows, EOF (or OK with 0xfe).

    `status` goes into the final EOF/OK: SERVER_MORE_RESULTS_EXISTS says another
    result of the same command follows (multi-statements, CALL)."""
    out = [packet(lenenc_int(len(columns)), seq)]
    seq += 1
    for name in columns:
        out.append(column_definition(name, seq))
        seq += 1
    if not deprecate_eof:
        out.append(eof(seq=seq))
        seq += 1
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row {row!r} has {len(row)} values for {len(columns)} columns")
        out.append(packet(b"".join(lenenc_str(v) for v in row), seq))
        seq += 1
    if deprecate_eof:
        out.append(packet(b"\xfe" + lenenc_int(0) + lenenc_int(0)
                          + struct.pack("<HH", status, 0), seq))
    else:
        out.append(eof(status=status, seq=seq))
    return b"".join(out)


# --- commands ----------------------------------------------------------------------


def command(code: int, body: bytes = b"", seq: int = 0) -> bytes:
    """Any client command: the command byte, then its body."""
    return packet(bytes([code]) + body, seq)


def com_query(sql: str, seq: int = 0) -> bytes:
    """COM_QUERY (0x03) with SQL text."""
    return command(COM_QUERY, sql.encode(), seq)


def com_init_db(database: str, seq: int = 0) -> bytes:
    """COM_INIT_DB (0x02): switch the default database."""
    return command(COM_INIT_DB, database.encode(), seq)


def com_ping(seq: int = 0) -> bytes:
    """COM_PING (0x0e); the server answers ok()."""
    return command(COM_PING, b"", seq)


def com_quit(seq: int = 0) -> bytes:
    """COM_QUIT (0x01); the server answers nothing and closes."""
    return command(COM_QUIT, b"", seq)


def com_change_user(user: str, database: str = "", seq: int = 0) -> bytes:
    """COM_CHANGE_USER (0x11) with a 20-byte auth response; answered like a login (ok())."""
    body = _cstr(user) + bytes([20]) + b"\x11" * 20 + _cstr(database)
    body += struct.pack("<H", UTF8MB4) + _cstr("mysql_native_password")
    return command(COM_CHANGE_USER, body, seq)


def com_reset_connection(seq: int = 0) -> bytes:
    """COM_RESET_CONNECTION (0x1f): the server answers ok() and drops prepared statements."""
    return command(COM_RESET_CONNECTION, b"", seq)


# --- prepared statements (binary protocol) ------------------------------------------


def com_stmt_prepare(sql: str, seq: int = 0) -> bytes:
    """COM_STMT_PREPARE (0x16)."""
    return command(COM_STMT_PREPARE, sql.encode(), seq)


def prepare_ok(stmt_id: int, columns: Sequence[str] = (), params: int = 0, seq: int = 1) -> bytes:
    """COM_STMT_PREPARE_OK, then the parameter and column definitions, each list ended by EOF."""
    out = [packet(b"\x00" + struct.pack("<IHHBH", stmt_id, len(columns), params, 0, 0), seq)]
    seq += 1
    for group in ([f"?{i}" for i in range(params)], list(columns)):
        if not group:
            continue
        for name in group:
            out.append(column_definition(name, seq))
            seq += 1
        out.append(eof(seq=seq))
        seq += 1
    return b"".join(out)


def com_stmt_execute(stmt_id: int, cursor: int = 0, seq: int = 0) -> bytes:
    """COM_STMT_EXECUTE (0x17) of a statement without parameters; cursor=CURSOR_TYPE_READ_ONLY
    asks for a cursor (rows then come with com_stmt_fetch)."""
    return command(COM_STMT_EXECUTE, struct.pack("<IBI", stmt_id, cursor, 1), seq)


def com_stmt_bulk_execute(stmt_id: int, seq: int = 0) -> bytes:
    """MariaDB's COM_STMT_BULK_EXECUTE (0xfa); the parameter rows are opaque here."""
    return command(COM_STMT_BULK_EXECUTE, struct.pack("<IH", stmt_id, 0x80), seq)


def com_stmt_fetch(stmt_id: int, rows: int, seq: int = 0) -> bytes:
    """COM_STMT_FETCH (0x1c): `rows` more rows of an open cursor."""
    return command(COM_STMT_FETCH, struct.pack("<II", stmt_id, rows), seq)


def com_stmt_send_long_data(stmt_id: int, param: int, data: bytes, seq: int = 0) -> bytes:
    """COM_STMT_SEND_LONG_DATA (0x18): no answer."""
    return command(COM_STMT_SEND_LONG_DATA, struct.pack("<IH", stmt_id, param) + data, seq)


def com_stmt_reset(stmt_id: int, seq: int = 0) -> bytes:
    """COM_STMT_RESET (0x1a): answered ok(); closes the statement's cursor."""
    return command(COM_STMT_RESET, struct.pack("<I", stmt_id), seq)


def com_stmt_close(stmt_id: int, seq: int = 0) -> bytes:
    """COM_STMT_CLOSE (0x19): no answer."""
    return command(COM_STMT_CLOSE, struct.pack("<I", stmt_id), seq)


def binary_row(values: Sequence[int]) -> bytes:
    """A binary-protocol row payload of BIGINT values (header 0x00, NULL bitmap, values)."""
    bitmap = bytes((len(values) + 7 + 2) // 8)
    return b"\x00" + bitmap + b"".join(struct.pack("<q", v) for v in values)


def binary_resultset(columns: Sequence[str], rows: Sequence[Sequence[int]], seq: int = 1,
                     status: int = SERVER_STATUS_AUTOCOMMIT) -> bytes:
    """A COM_STMT_EXECUTE result set of BIGINT rows (classic EOF packets)."""
    out = [packet(lenenc_int(len(columns)), seq)]
    seq += 1
    for name in columns:
        out.append(column_definition(name, seq))
        seq += 1
    out.append(eof(seq=seq))
    seq += 1
    for row in rows:
        out.append(packet(binary_row(row), seq))
        seq += 1
    out.append(eof(status=status, seq=seq))
    return b"".join(out)


def cursor_opened(columns: Sequence[str], seq: int = 1) -> bytes:
    """The answer to an EXECUTE that opened a cursor: definitions, EOF with CURSOR_EXISTS."""
    out = [packet(lenenc_int(len(columns)), seq)]
    seq += 1
    for name in columns:
        out.append(column_definition(name, seq))
        seq += 1
    out.append(eof(status=SERVER_STATUS_AUTOCOMMIT | SERVER_STATUS_CURSOR_EXISTS, seq=seq))
    return b"".join(out)


def fetched(rows: Sequence[Sequence[int]], last: bool, seq: int = 1) -> bytes:
    """The answer to COM_STMT_FETCH: binary rows, then EOF (LAST_ROW_SENT once the cursor
    is done)."""
    out = [packet(binary_row(row), seq + i) for i, row in enumerate(rows)]
    status = SERVER_STATUS_AUTOCOMMIT | SERVER_STATUS_CURSOR_EXISTS
    if last:
        status |= SERVER_STATUS_LAST_ROW_SENT
    out.append(eof(status=status, seq=seq + len(rows)))
    return b"".join(out)


def answer(*parts: bytes, seq: int = 1) -> bytes:
    """Several results of one command (multi-statements, CALL) as the server sends them:
    their packets joined, sequence ids renumbered from `seq` on."""
    data = b"".join(parts)
    out = bytearray()
    i = 0
    while i < len(data):
        n = int.from_bytes(data[i:i + 3], "little")
        out += data[i:i + 3] + bytes([seq & 0xFF]) + data[i + 4:i + 4 + n]
        seq += 1
        i += 4 + n
    return bytes(out)
