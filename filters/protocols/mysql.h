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
 *
 * Pipelining: commands awaiting their answer are kept as runs (identical
 * consecutive commands share one entry), inline for the first few and in
 * growable storage beyond, so any depth is followed. Past the cap on runs,
 * commands are flagged `unattributed` and their answers are skipped by
 * sequence id until the attributed ones resume: the connection stays
 * inspected. The growable storage is freed when the queue drains and by
 * wl_mysql_release().
 *
 * Multi-statements: when CLIENT_MULTI_STATEMENTS is negotiated the whole
 * COM_QUERY text is scanned (in windows, never copied whole) for statement
 * boundaries, so each result can name the statement it belongs to.
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
/* Runs of pending commands kept inside the decoder; more grow on the heap. */
#define WL_MYSQL_PENDING_INLINE 8
/* Most runs of pending commands kept (about 32 bytes each); later commands
 * are unattributed until answers make room. */
#define WL_MYSQL_PENDING_MAX_RUNS 65536
/* Statement verbs of multi-statement queries awaiting their answers: inline
 * bytes, then growable up to the cap (one byte per statement). */
#define WL_MYSQL_VERBS_INLINE 32
#define WL_MYSQL_VERBS_MAX (1u << 20)
/* Bytes of each statement's start kept to classify it (multi-statements). */
#define WL_MYSQL_SPLIT_HEAD 48
/* Prepared statements remembered per connection (id -> verb). */
#define WL_MYSQL_MAX_STMTS 64
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
    uint8_t unattributed; /* COMMAND: no room to follow it; its answer will be skipped */
    uint8_t stmt_verb;    /* RESULT: verb of the statement it belongs to; COMMAND_DONE (ERR): of the failed one */
    uint8_t stmt_end;     /* RESULT: ends its statement (0 for the result sets of a CALL before its OK) */
    uint8_t is_call;      /* COMMAND, RESULT, COMMAND_DONE: the (failed) statement is a CALL */
    uint32_t stmt_index;  /* RESULT / COMMAND_DONE: which statement of a multi-statement query (0-based) */
    uint32_t statements;  /* COMMAND_DONE of COM_QUERY: statements found in its text (1 without multi-statements) */
    uint64_t started;     /* COMMAND, RESULT, COMMAND_DONE: the clock (wl_mysql_set_clock) when the command was read */
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
    uint8_t scan;        /* the skipped bytes go through the statement splitter */
    uint32_t head_need;  /* head bytes still to collect into head[] */
    uint32_t head_have;
    uint8_t head[WL_MYSQL_HEAD_MAX];
} wl_mysql_side;

/* A run of commands awaiting answers: `count` commands alike but for their
 * numbers (cmd_no, cmd_no + 1, ...), then `lost` unattributed ones. */
typedef struct {
    uint64_t clock;
    uint32_t cmd_no;
    uint32_t count;
    uint32_t lost;
    uint32_t stmt_id;
    uint32_t nverbs;     /* COM_QUERY split into statements: verbs in the verb queue */
    uint8_t command;
    uint8_t verb;
    uint8_t resp_seq;    /* sequence id the answer starts with */
    uint8_t cursor;
    uint8_t is_call;
    uint8_t splitting;   /* its verbs are still being collected */
} wl_mysql_pending;

/* Statement boundaries of a COM_QUERY text, fed byte ranges as they pass. */
typedef struct {
    uint8_t active;
    uint8_t mode;        /* code, quotes, comments */
    uint8_t esc;         /* inside a quote, after a backslash */
    uint8_t in_exec;     /* inside an executable comment's code */
    uint8_t has_code;    /* the current statement has code */
    uint8_t has_any;     /* ... or at least a comment */
    uint8_t first_word;  /* words seen in the current statement (saturating) */
    uint8_t begin_first; /* the statement starts with BEGIN: the next word decides */
    uint8_t after_end;   /* END inside a block: the next word decides */
    uint8_t is_xa;
    uint8_t is_call_first; /* the statement starts with CALL */
    uint8_t queued;      /* the command is the pending queue's tail */
    uint8_t store;       /* verbs still go to the verb queue */
    uint8_t wlen;        /* length of the word being read (saturating) */
    uint8_t head_len;
    uint16_t depth;      /* BEGIN ... END / CASE ... END nesting */
    uint32_t count;      /* statements found so far */
    uint32_t stored;     /* of which verbs stored */
    uint64_t word;       /* its first 8 bytes, lower case, packed little-endian */
    char head[WL_MYSQL_SPLIT_HEAD];
} wl_mysql_splitter;

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
    uint32_t stmt_idx;    /* statement of a multi-statement query being answered */
    uint8_t cur_lost;     /* the answer being skipped belongs to an unattributed command */
    uint64_t clock;       /* caller's clock, stamped on each command */
    /* pipelined commands waiting for their answer: a ring of runs */
    wl_mysql_pending pend_inline[WL_MYSQL_PENDING_INLINE];
    wl_mysql_pending *pend;
    uint32_t pend_cap, pend_head, pend_count;
    uint8_t last_cmd_queued; /* the latest command awaits an answer */
    uint32_t next_cmd_no;
    /* verbs of split COM_QUERY texts, in command order */
    uint8_t verbs_inline[WL_MYSQL_VERBS_INLINE];
    uint8_t *verbs;
    uint32_t verbs_cap, verbs_head, verbs_count;
    wl_mysql_splitter split;
    wl_mysql_stmt stmts[WL_MYSQL_MAX_STMTS];
    uint8_t stmt_next;
    uint32_t last_prepared;
    uint8_t last_prepared_verb;
    wl_mysql_side side[2];
} wl_mysql_decoder;

void wl_mysql_init(wl_mysql_decoder *d, wl_mysql_event_fn cb, void *ud);

/* Free the growable storage (call when the connection ends; init again to reuse). */
void wl_mysql_release(wl_mysql_decoder *d);

/* The caller's clock (any unit), stamped on each command read from now on and
 * reported back as `started` with its results: latency at any pipeline depth. */
void wl_mysql_set_clock(wl_mysql_decoder *d, uint64_t now);

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
