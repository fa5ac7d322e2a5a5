/* PostgreSQL frontend/backend protocol 3.x decoder: an incremental,
 * allocation-free state machine for both directions of one connection.
 *
 * Feed it every read with wl_pg_feed(); it pulls windows of the read through
 * the wl_fetch_fn contract (wire.h), parses every message header inside a
 * window in place, copies only the few bytes of a header (plus a bounded body
 * prefix) that straddle two reads into a small per-direction carry buffer, and
 * skips message bodies it does not need without copying them.
 *
 * For every message it calls the `on_event` callback with a wl_pg_event. The
 * decoded strings point into the fetch window or the carry buffer and are valid
 * only during the callback. After a malformed frame it emits one
 * WL_PG_EV_ERROR and ignores the rest of the connection; after an accepted
 * SSLRequest/GSSENCRequest, a CancelRequest or a direct TLS handshake it stops
 * too (the bytes are no longer readable protocol). Forwarding is never the
 * decoder's business. */
#ifndef WIRELAB_POSTGRES_H
#define WIRELAB_POSTGRES_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of SQL text (Query, Parse) handed to the callback; longer text is
 * truncated (sql_truncated = 1). */
#ifndef WL_PG_SQL_PREFIX
#define WL_PG_SQL_PREFIX 512
#endif

/* Bytes asked for per fetch. */
#ifndef WL_PG_WINDOW
#define WL_PG_WINDOW 4096
#endif

/* Longest StartupMessage accepted (same limit as PostgreSQL's 10000). */
#define WL_PG_MAX_STARTUP 10000u
/* Longest typed message accepted (PostgreSQL's 1 GB message limit). */
#define WL_PG_MAX_MESSAGE 0x40000000u

/* Bytes of a prepared statement/portal name kept before the SQL. */
#define WL_PG_NAME_PREFIX 64
/* Header + largest body prefix any message asks for. */
#define WL_PG_CARRY (8 + WL_PG_NAME_PREFIX + 2 + WL_PG_SQL_PREFIX)

#define WL_PG_CODE_CANCEL 80877102u
#define WL_PG_CODE_SSL 80877103u
#define WL_PG_CODE_GSSENC 80877104u

typedef struct {
    const char *ptr; /* not NUL-terminated */
    uint32_t len;
} wl_pg_str;

typedef enum {
    WL_PG_EV_MESSAGE = 1,  /* a typed message; `type` is its type byte */
    WL_PG_EV_STARTUP,      /* StartupMessage (client, untyped) */
    WL_PG_EV_SSL_REQUEST,  /* SSLRequest (client, untyped) */
    WL_PG_EV_GSSENC_REQUEST,
    WL_PG_EV_CANCEL_REQUEST,
    WL_PG_EV_ENCRYPTION_RESPONSE, /* the server's one-byte answer: 'S', 'G' or 'N' */
    WL_PG_EV_DIRECT_TLS,   /* the client began a TLS handshake without SSLRequest */
    WL_PG_EV_ERROR,        /* malformed traffic; the decoder stops */
} wl_pg_event_kind;

typedef enum {
    WL_PG_ERR_NONE = 0,
    WL_PG_ERR_BAD_LENGTH,       /* length field out of range for the message */
    WL_PG_ERR_UNKNOWN_TYPE,     /* type byte not valid for this direction */
    WL_PG_ERR_BAD_STARTUP,      /* untyped first message with an unknown code */
    WL_PG_ERR_BAD_ANSWER,       /* server answer to SSL/GSSENC is not S/G/N/E */
    WL_PG_ERR_MALFORMED,        /* body fields do not parse */
} wl_pg_error_code;

/* Values of `cc.kind`: the statement kind from the first word of a
 * CommandComplete tag. */
typedef enum {
    WL_PG_CMD_OTHER = 0,
    WL_PG_CMD_SELECT,
    WL_PG_CMD_INSERT,
    WL_PG_CMD_UPDATE,
    WL_PG_CMD_DELETE,
    WL_PG_CMD_MERGE,
    WL_PG_CMD_COPY,
    WL_PG_CMD_FETCH,
    WL_PG_CMD_MOVE,
    WL_PG_CMD_BEGIN,     /* BEGIN, START TRANSACTION */
    WL_PG_CMD_COMMIT,    /* COMMIT (also the tag of END) */
    WL_PG_CMD_ROLLBACK,  /* ROLLBACK (also ROLLBACK TO SAVEPOINT, ABORT) */
    WL_PG_CMD_SAVEPOINT, /* SAVEPOINT, RELEASE */
    WL_PG_CMD_DDL,       /* CREATE, ALTER, DROP, TRUNCATE, COMMENT, GRANT, REVOKE */
    WL_PG_CMD_PREPARED_TXN, /* PREPARE TRANSACTION, COMMIT/ROLLBACK PREPARED */
    WL_PG_CMD__COUNT
} wl_pg_cmd;

typedef struct {
    wl_pg_event_kind kind;
    wl_dir dir;
    uint8_t type;    /* message type byte; 0 for untyped messages */
    uint32_t length; /* the length field (counts itself, not the type byte) */
    uint32_t size;   /* bytes on the wire: length + 1 for typed messages */
    /* The fields of the kinds and message types listed below, zero where a
     * message lacks one. For message types not listed (DataRow,
     * RowDescription, Sync, BindComplete, ...) `u` is unspecified: it is not
     * cleared, as those are most of the traffic. */
    union {
        /* WL_PG_EV_STARTUP */
        struct {
            uint32_t version; /* 0x00030000 for 3.0 */
            wl_pg_str user, database, application_name;
        } startup;
        /* WL_PG_EV_CANCEL_REQUEST */
        struct {
            uint32_t pid, key; /* key: first 4 bytes of the secret */
        } cancel;
        /* WL_PG_EV_ENCRYPTION_RESPONSE */
        struct {
            uint8_t answer;    /* 'S', 'G' or 'N' */
            uint8_t requested; /* 'S' for SSLRequest, 'G' for GSSENCRequest */
        } encryption;
        /* WL_PG_EV_ERROR */
        struct {
            wl_pg_error_code code;
        } error;
        /* 'Q' Query, 'P' Parse (client) */
        struct {
            wl_pg_str name;       /* Parse: statement name ("" = unnamed) */
            wl_pg_str sql;        /* prefix of the SQL text */
            uint8_t sql_truncated;
        } query;
        /* 'B' Bind */
        struct {
            wl_pg_str portal, statement;
        } bind;
        /* 'E' Execute (client) */
        struct {
            wl_pg_str portal;
            uint32_t max_rows;
        } execute;
        /* 'D' Describe, 'C' Close (client) */
        struct {
            uint8_t what; /* 'S' statement or 'P' portal */
            wl_pg_str name;
        } target;
        /* 'F' FunctionCall */
        struct {
            uint32_t oid;
        } function_call;
        /* 'p' (client): SASLInitialResponse mechanism when the server asked
         * for SASL; empty otherwise (password, SASLResponse, GSS) */
        struct {
            wl_pg_str mechanism;
        } auth_response;
        /* 'C' CommandComplete */
        struct {
            wl_pg_str tag;  /* whole tag, e.g. "INSERT 0 3" */
            wl_pg_str verb; /* first word, e.g. "INSERT" */
            wl_pg_cmd kind;
            uint8_t has_rows;
            uint64_t rows;
        } cc;
        /* 'E' ErrorResponse, 'N' NoticeResponse (server) */
        struct {
            wl_pg_str severity; /* the V field, else the S field */
            char sqlstate[6];   /* NUL-terminated; "" when absent */
        } notice;
        /* 'Z' ReadyForQuery */
        struct {
            uint8_t status; /* 'I', 'T' or 'E' */
        } ready;
        /* 'R' Authentication* */
        struct {
            uint32_t code;         /* 0 ok, 3 clear, 5 md5, 10 SASL, 11 continue, 12 final ... */
            wl_pg_str mechanism;   /* code 10: the first mechanism offered */
        } auth;
        /* 'S' ParameterStatus (server) */
        struct {
            wl_pg_str name, value;
        } param;
        /* 'K' BackendKeyData */
        struct {
            uint32_t pid, key;
        } key;
        /* 'G' CopyIn, 'H' CopyOut, 'W' CopyBoth */
        struct {
            uint8_t format;
            uint16_t columns;
        } copy;
        /* 'A' NotificationResponse */
        struct {
            uint32_t pid;
            wl_pg_str channel;
        } notification;
        /* 'v' NegotiateProtocolVersion */
        struct {
            uint32_t newest_minor, unrecognized;
        } negotiate;
    } u;
} wl_pg_event;

typedef struct {
    void (*on_event)(void *user, const wl_pg_event *ev);
} wl_pg_callbacks;

/* Modes of one direction. */
enum { WL_PG_MODE_OFF = 0, WL_PG_MODE_STARTUP, WL_PG_MODE_TYPED, WL_PG_MODE_ANSWER };

typedef struct {
    uint8_t mode;
    uint8_t skipping;   /* body bytes of the current message are being skipped */
    uint8_t collecting; /* the carry buffer holds the start of a message */
    uint8_t type;
    uint32_t length;    /* length field of the message being collected */
    uint32_t total;     /* bytes to collect: header + body prefix (0 = header unknown yet) */
    uint32_t have;      /* bytes in carry */
    uint32_t skip;      /* body bytes left to skip */
    uint8_t carry[WL_PG_CARRY];
} wl_pg_side;

typedef struct {
    const wl_pg_callbacks *cb;
    void *user;
    uint8_t stopped;        /* 1: ignoring the rest of the connection */
    uint8_t answer_for;     /* 'S' or 'G' while the server's one-byte answer is due */
    uint8_t sasl;           /* the server asked for SASL; next 'p' is SASLInitialResponse */
    wl_pg_side side[2];     /* indexed by wl_dir */
} wl_pg_decoder;

/* Prepares a decoder for a new connection (the client speaks first). */
void wl_pg_init(wl_pg_decoder *d, const wl_pg_callbacks *cb, void *user);

/* Decodes the `len` bytes of one read in direction `dir`, fetched through
 * `fetch(fetch_ctx, off, want, &got)` for off in [0, len). */
void wl_pg_feed(wl_pg_decoder *d, wl_dir dir, size_t len, wl_fetch_fn fetch, void *fetch_ctx);

/* 1 while the decoder still inspects the connection. */
static inline int wl_pg_active(const wl_pg_decoder *d) { return !d->stopped; }

/* Maps a CommandComplete verb (first word) to a wl_pg_cmd. */
wl_pg_cmd wl_pg_cmd_from_verb(const char *verb, size_t len);

/* Lower-case names of wl_pg_cmd values ("select", ..., "other"). */
const char *wl_pg_cmd_name(wl_pg_cmd cmd);

/* Statement kind guessed from the first keyword of SQL text (for statements
 * that fail before a CommandComplete names them). */
wl_pg_cmd wl_pg_cmd_from_sql(const char *sql, size_t len);

/* The first keyword of SQL text, after blanks, '(' and comments: its length
 * (0 if the text does not start with a word) and *kw its start. */
size_t wl_pg_sql_keyword(const char *sql, size_t len, const char **kw);

#ifdef __cplusplus
}
#endif

#endif
