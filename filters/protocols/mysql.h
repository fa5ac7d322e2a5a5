/* MySQL / MariaDB client/server protocol decoder.
 *
 * Host-agnostic and incremental: feed it each read as it passes (client bytes
 * with WL_DIR_CLIENT, server bytes with WL_DIR_SERVER), it fetches windows of
 * the read through `wl_fetch_fn`, parses packet headers and the few fields it
 * needs in place, skips packet bodies without copying and reports what it saw
 * as events. It never allocates: all state lives in `wl_mysql_decoder`, a
 * fixed-size per-connection struct.
 *
 * Framing: every packet is a 3-byte little-endian payload length and a 1-byte
 * sequence id. Payloads of 16 MiB - 1 bytes or more continue in the following
 * packet(s); one logical packet produces one event.
 *
 * Inspection stops (no more events, bytes still forwarded by the caller) after
 * an SSLRequest (TLS follows), after CLIENT_COMPRESS is negotiated, after a
 * failed login, on a replication stream, and on malformed traffic
 * (WL_MYSQL_EV_DECODER_ERROR).
 */
#ifndef WIRELAB_MYSQL_H
#define WIRELAB_MYSQL_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* Payload bytes kept of one packet so its fields can be parsed in place (only
 * copied when the packet head is split across reads). SQL text beyond this is
 * skipped; events report the truncated text and the full length. */
#define WL_MYSQL_HEAD_MAX 512
/* Commands a client may send before the first answer arrives. */
#define WL_MYSQL_MAX_PENDING 16
/* Prepared statements remembered per connection (id -> verb). */
#define WL_MYSQL_MAX_STMTS 32
/* Largest window asked of fetch at once. */
#define WL_MYSQL_WINDOW 4096

/* Capability flags (the MariaDB extended ones are the upper 32 bits). */
#define WL_MYSQL_CLIENT_LONG_PASSWORD (1ull << 0) /* "CLIENT_MYSQL" for MariaDB */
#define WL_MYSQL_CLIENT_CONNECT_WITH_DB (1ull << 3)
#define WL_MYSQL_CLIENT_COMPRESS (1ull << 5)
#define WL_MYSQL_CLIENT_LOCAL_FILES (1ull << 7)
#define WL_MYSQL_CLIENT_PROTOCOL_41 (1ull << 9)
#define WL_MYSQL_CLIENT_SSL (1ull << 11)
#define WL_MYSQL_CLIENT_SECURE_CONNECTION (1ull << 15)
#define WL_MYSQL_CLIENT_MULTI_STATEMENTS (1ull << 16)
#define WL_MYSQL_CLIENT_MULTI_RESULTS (1ull << 17)
#define WL_MYSQL_CLIENT_PLUGIN_AUTH (1ull << 19)
#define WL_MYSQL_CLIENT_CONNECT_ATTRS (1ull << 20)
#define WL_MYSQL_CLIENT_PLUGIN_AUTH_LENENC (1ull << 21)
#define WL_MYSQL_CLIENT_DEPRECATE_EOF (1ull << 24)
#define WL_MYSQL_CLIENT_OPTIONAL_METADATA (1ull << 25)
#define WL_MYSQL_CLIENT_ZSTD_COMPRESSION (1ull << 26)
#define WL_MYSQL_CLIENT_QUERY_ATTRIBUTES (1ull << 27)
#define WL_MYSQL_MARIADB_CLIENT_PROGRESS (1ull << 32)
#define WL_MYSQL_MARIADB_CLIENT_CACHE_METADATA (1ull << 36)

/* Server status flags (OK / EOF packets). */
#define WL_MYSQL_STATUS_IN_TRANS 0x0001
#define WL_MYSQL_STATUS_AUTOCOMMIT 0x0002
#define WL_MYSQL_STATUS_MORE_RESULTS 0x0008
#define WL_MYSQL_STATUS_CURSOR_EXISTS 0x0040
#define WL_MYSQL_STATUS_LAST_ROW_SENT 0x0080

/* Command codes (first payload byte of a client command). */
enum {
    WL_MYSQL_COM_SLEEP = 0x00,
    WL_MYSQL_COM_QUIT = 0x01,
    WL_MYSQL_COM_INIT_DB = 0x02,
    WL_MYSQL_COM_QUERY = 0x03,
    WL_MYSQL_COM_FIELD_LIST = 0x04,
    WL_MYSQL_COM_CREATE_DB = 0x05,
    WL_MYSQL_COM_DROP_DB = 0x06,
    WL_MYSQL_COM_REFRESH = 0x07,
    WL_MYSQL_COM_SHUTDOWN = 0x08,
    WL_MYSQL_COM_STATISTICS = 0x09,
    WL_MYSQL_COM_PROCESS_INFO = 0x0a,
    WL_MYSQL_COM_CONNECT = 0x0b,
    WL_MYSQL_COM_PROCESS_KILL = 0x0c,
    WL_MYSQL_COM_DEBUG = 0x0d,
    WL_MYSQL_COM_PING = 0x0e,
    WL_MYSQL_COM_TIME = 0x0f,
    WL_MYSQL_COM_DELAYED_INSERT = 0x10,
    WL_MYSQL_COM_CHANGE_USER = 0x11,
    WL_MYSQL_COM_BINLOG_DUMP = 0x12,
    WL_MYSQL_COM_TABLE_DUMP = 0x13,
    WL_MYSQL_COM_CONNECT_OUT = 0x14,
    WL_MYSQL_COM_REGISTER_SLAVE = 0x15,
    WL_MYSQL_COM_STMT_PREPARE = 0x16,
    WL_MYSQL_COM_STMT_EXECUTE = 0x17,
    WL_MYSQL_COM_STMT_SEND_LONG_DATA = 0x18,
    WL_MYSQL_COM_STMT_CLOSE = 0x19,
    WL_MYSQL_COM_STMT_RESET = 0x1a,
    WL_MYSQL_COM_SET_OPTION = 0x1b,
    WL_MYSQL_COM_STMT_FETCH = 0x1c,
    WL_MYSQL_COM_DAEMON = 0x1d,
    WL_MYSQL_COM_BINLOG_DUMP_GTID = 0x1e,
    WL_MYSQL_COM_RESET_CONNECTION = 0x1f,
    WL_MYSQL_COM_CLONE = 0x20,
    WL_MYSQL_COM_STMT_BULK_EXECUTE = 0xfa, /* MariaDB */
    WL_MYSQL_COM_MULTI = 0xfe,             /* MariaDB */
};

/* Statement verbs, from the first keyword of the SQL text (comments skipped). */
typedef enum {
    WL_MYSQL_VERB_NONE = 0, /* not a statement-bearing command */
    WL_MYSQL_VERB_SELECT,   /* SELECT, WITH, VALUES, TABLE */
    WL_MYSQL_VERB_INSERT,
    WL_MYSQL_VERB_UPDATE,
    WL_MYSQL_VERB_DELETE,
    WL_MYSQL_VERB_REPLACE,
    WL_MYSQL_VERB_BEGIN,    /* BEGIN, START TRANSACTION */
    WL_MYSQL_VERB_COMMIT,
    WL_MYSQL_VERB_ROLLBACK, /* ROLLBACK, but not ROLLBACK ... TO SAVEPOINT */
    WL_MYSQL_VERB_OTHER,    /* another known SQL statement keyword */
    WL_MYSQL_VERB_UNKNOWN,  /* no SQL statement keyword found */
    WL_MYSQL_VERB_COUNT
} wl_mysql_verb;

typedef enum {
    WL_MYSQL_EV_GREETING = 1,   /* server greeting: text=server version, capabilities, auth_plugin, conn_id */
    WL_MYSQL_EV_SSL_REQUEST,    /* client SSLRequest: TLS follows, inspection stops */
    WL_MYSQL_EV_LOGIN,          /* HandshakeResponse: user, database, auth_plugin, attrs (raw) */
    WL_MYSQL_EV_AUTH_SWITCH,    /* server AuthSwitchRequest: auth_plugin */
    WL_MYSQL_EV_AUTH_MORE_DATA, /* server AuthMoreData: auth_more = first data byte (3 fast auth ok, 4 full auth) */
    WL_MYSQL_EV_LOGIN_OK,       /* authentication finished with OK */
    WL_MYSQL_EV_LOGIN_FAILED,   /* ERR before login completed: err_code, sqlstate; inspection stops */
    WL_MYSQL_EV_COMPRESSED,     /* CLIENT_COMPRESS negotiated: inspection stops */
    WL_MYSQL_EV_COMMAND,        /* client command: command, cmd_no, verb, text=SQL / schema / user, stmt_id */
    WL_MYSQL_EV_RESULT,         /* one result of a command: OK (affected_rows...) or a result set (columns, rows) */
    WL_MYSQL_EV_LOCAL_INFILE,   /* server asks for a local file: text=file name */
    WL_MYSQL_EV_COMMAND_DONE,   /* the command's whole response arrived (or it has none): outcome and totals */
    WL_MYSQL_EV_PROTOCOL_ERROR, /* sequence id out of order or unexpected packet; decoding goes on */
    WL_MYSQL_EV_DECODER_ERROR,  /* malformed traffic: text=reason; inspection stops */
} wl_mysql_event_type;

typedef enum {
    WL_MYSQL_OUTCOME_OK = 0,    /* OK / EOF / result set(s) / prepared / string reply */
    WL_MYSQL_OUTCOME_ERR = 1,   /* ERR packet: err_code, sqlstate */
    WL_MYSQL_OUTCOME_NONE = 2,  /* the command has no response (STMT_CLOSE, STMT_SEND_LONG_DATA, QUIT) */
} wl_mysql_outcome;

typedef struct {
    wl_mysql_event_type type;
    wl_dir dir;
    uint8_t command;      /* COM_* this event belongs to (COMMAND, RESULT, COMMAND_DONE, LOCAL_INFILE) */
    uint8_t verb;         /* wl_mysql_verb (COMMAND, COMMAND_DONE) */
    uint8_t outcome;      /* wl_mysql_outcome (RESULT, COMMAND_DONE) */
    uint8_t auth_more;    /* AUTH_MORE_DATA: first data byte */
    uint8_t cursor;       /* COMMAND (STMT_EXECUTE): cursor flags; RESULT: a cursor was opened */
    uint8_t is_result_set;/* RESULT: 1 for a result set, 0 for OK */
    uint8_t change_user;  /* AUTH_*, LOGIN_OK, LOGIN_FAILED during COM_CHANGE_USER */
    uint32_t cmd_no;      /* command number on this connection: pairs COMMAND and COMMAND_DONE */
    uint32_t stmt_id;     /* STMT_* commands, prepare result */
    uint32_t conn_id;     /* GREETING */
    uint16_t err_code;    /* ERR */
    char sqlstate[6];     /* ERR, NUL-terminated ("" for pre-4.1 ERR) */
    uint16_t status_flags;
    uint16_t warnings;    /* RESULT: this result's; COMMAND_DONE: sum over results */
    uint16_t params;      /* RESULT of STMT_PREPARE */
    uint64_t affected_rows; /* RESULT: this OK's; COMMAND_DONE: sum over results */
    uint64_t last_insert_id;
    uint64_t columns;     /* RESULT: result set columns (prepare: result columns) */
    uint64_t rows;        /* RESULT: rows of this result set; COMMAND_DONE: sum */
    uint32_t results;     /* COMMAND_DONE: number of results (multi-results > 1) */
    uint64_t capabilities;/* GREETING: server's; LOGIN: client's; later: negotiated */
    const char *text;     /* see the event type; not NUL-terminated, valid during the callback */
    size_t text_len;      /* bytes available at text (bounded by WL_MYSQL_HEAD_MAX) */
    size_t text_total;    /* full length of the field on the wire (>= text_len) */
    const char *user;     /* LOGIN, COMMAND(CHANGE_USER) */
    size_t user_len;
    const char *database; /* LOGIN, COMMAND(INIT_DB) */
    size_t database_len;
    const char *auth_plugin; /* GREETING, LOGIN, AUTH_SWITCH */
    size_t auth_plugin_len;
    const uint8_t *attrs; /* LOGIN: connection attributes (lenenc key/value pairs), maybe truncated */
    size_t attrs_len;
} wl_mysql_event;

typedef void (*wl_mysql_event_fn)(void *ud, const wl_mysql_event *ev);

/* Per-direction framing state. */
typedef struct {
    uint8_t hdr[4];
    uint8_t hdr_have;
    uint8_t cont;        /* the next packet continues a >= 16 MiB payload */
    uint8_t in_cont;     /* the current packet is such a continuation */
    uint8_t seq;         /* current packet's sequence id */
    uint32_t pkt_len;    /* current packet's payload length */
    uint32_t skip;       /* payload bytes still to pass over */
    uint32_t head_need;  /* head bytes still to collect into head[] */
    uint32_t head_have;
    uint8_t head[WL_MYSQL_HEAD_MAX];
} wl_mysql_side;

typedef struct {
    uint32_t cmd_no;
    uint32_t stmt_id;
    uint8_t command;
    uint8_t verb;
    uint8_t resp_seq;    /* sequence id the answer starts with */
    uint8_t cursor;
} wl_mysql_pending;

typedef struct {
    uint32_t id;
    uint8_t verb;
    uint8_t used;
} wl_mysql_stmt;

typedef struct {
    wl_mysql_event_fn cb;
    void *ud;
    uint8_t phase;       /* internal: greeting, login, auth, command, stopped */
    uint8_t client_state;/* internal: command or local infile upload */
    uint8_t resp_state;  /* internal: what the next server packet should be */
    uint8_t exp_seq[2];  /* expected sequence id per direction */
    uint8_t change_user; /* auth exchange belongs to COM_CHANGE_USER */
    uint8_t metadata;    /* current result set sends column definitions */
    uint8_t stopped_reason;
    uint64_t server_caps;
    uint64_t client_caps;
    uint64_t caps;       /* negotiated */
    /* the response being decoded */
    wl_mysql_pending cur;
    uint64_t coldefs_left;
    uint64_t prep_cols;   /* prepare: result column defs after the params */
    uint64_t columns;
    uint64_t rows;        /* current result set */
    uint64_t total_rows;
    uint64_t total_affected;
    uint32_t results;
    uint32_t total_warnings;
    uint16_t prep_params;
    uint32_t prep_stmt_id;
    uint8_t prep_stage;
    /* pipelined commands waiting for their answer */
    wl_mysql_pending pending[WL_MYSQL_MAX_PENDING];
    uint8_t pend_head, pend_count;
    uint8_t last_cmd_queued; /* the latest command awaits an answer */
    uint32_t next_cmd_no;
    wl_mysql_stmt stmts[WL_MYSQL_MAX_STMTS];
    uint8_t stmt_next;
    uint32_t last_prepared;
    uint8_t last_prepared_verb;
    wl_mysql_side side[2];
} wl_mysql_decoder;

void wl_mysql_init(wl_mysql_decoder *d, wl_mysql_event_fn cb, void *ud);

/* Feed one read of `len` bytes in direction `dir`. */
void wl_mysql_feed(wl_mysql_decoder *d, wl_dir dir, size_t len, wl_fetch_fn fetch, void *fetch_ctx);

/* 1 while the decoder still inspects the connection. */
int wl_mysql_active(const wl_mysql_decoder *d);

/* Classify SQL text by its first keyword. */
wl_mysql_verb wl_mysql_classify(const char *sql, size_t len);

/* Lowercase names: "select", ..., "other", "unknown" ("none" for VERB_NONE). */
const char *wl_mysql_verb_name(wl_mysql_verb v);
/* Lowercase command names without COM_ ("query", "stmt_execute", ...); NULL when unnamed. */
const char *wl_mysql_command_name(uint8_t command);

#endif
