/* PostgreSQL metrics filter: decoder events (filters/protocols/postgres.h)
 * turned into the message-level stats of postgres_stats.h, and the statement
 * tracker's events (postgres_tracker.h) into the statement, row and
 * transaction stats. Observes only; never pauses or modifies traffic. See
 * README.md for what every stat means. */
#include <stddef.h>
#include <string.h>

#include "postgres_filter.h"

/* Every read touches the fields before `trk` and the head of the decoder:
 * they come first, so that a read starts with few cold cache lines. */
typedef struct {
    wl_conn *conn;
    pg_plugin *p;
    uint64_t now;

    uint8_t authenticated; /* AuthenticationOk seen */
    uint8_t ready;         /* first ReadyForQuery seen: the session is up */
    uint8_t in_block;      /* last ReadyForQuery status was T or E */
    uint8_t tags;          /* the plugin keeps per database/user stats */
    uint32_t messages;       /* messages decoded in the current read */
    uint32_t db_tag, user_tag;
    const wl_metric *tagged; /* this connection's (database, user) metrics, once used */
    wl_pg_decoder dec;
    wl_pg_tracker trk; /* statements and transactions (postgres_tracker.h) */
} pg_conn;

WL_PLUGIN_STATE(pg_plugin)
WL_CONN_STATE(pg_conn)

/* ---- helpers ------------------------------------------------------------------ */

/* Rare paths (logging, errors) stay out of line: a varargs call inlined into
 * the per-message dispatch would give it a stack frame on every message. */
#define COLD __attribute__((noinline, cold))

#define CNT(c, id, n) wl_batch_add((c)->p->counters[PG_##id], (int64_t)(n))

static int str_is(wl_pg_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

COLD static void tagged_add_slow(pg_conn *c, int id, uint64_t n) {
    /* defined on first use, as before the startup message they were unknown */
    if (!c->tagged) c->tagged = pgm_tagged(c->p, c->db_tag, c->user_tag);
    if (c->tagged) wl_batch_add(c->tagged[id], (int64_t)n);
}

static inline void tagged_add(pg_conn *c, int id, uint64_t n) {
    if (c->tags) tagged_add_slow(c, id, n);
}

/* ---- statements and transactions (tracker events) ------------------------------- */

COLD static void slow_log(pg_conn *c, const wl_stmt_event *ev, uint64_t us) {
    CNT(c, SLOW_STATEMENTS, 1);
    char sql[PGF_SQL_KEEP];
    uint32_t n = ev->sql_len < c->p->slow_log_sql_bytes ? (uint32_t)ev->sql_len : c->p->slow_log_sql_bytes;
    for (uint32_t i = 0; i < n; i++) { /* one log line per statement */
        char ch = ev->sql[i];
        sql[i] = ch == '\n' || ch == '\r' || ch == '\t' ? ' ' : ch;
    }
    wl_warn("postgres.%s slow statement: %llu ms type=%s sql=\"%.*s%s\"", c->p->prefix,
            (unsigned long long)(us / 1000u), ev->kind_name, (int)n, sql,
            n < ev->sql_len || ev->sql_truncated ? "..." : "");
}

static void on_statement(void *user, const wl_stmt_event *ev) {
    pg_conn *c = user;
    if (!ev->failed) { /* the server counts only statements that finished */
        CNT(c, STATEMENTS, 1);
        tagged_add(c, PG_DB_STATEMENTS, 1);
        switch (ev->kind) {
        case WL_PG_CMD_SELECT: CNT(c, STATEMENTS_SELECT, 1); break;
        case WL_PG_CMD_INSERT: CNT(c, STATEMENTS_INSERT, 1); break;
        case WL_PG_CMD_UPDATE: CNT(c, STATEMENTS_UPDATE, 1); break;
        case WL_PG_CMD_DELETE: CNT(c, STATEMENTS_DELETE, 1); break;
        default: CNT(c, STATEMENTS_OTHER, 1); break;
        }
        if (ev->rows_returned) {
            CNT(c, ROWS_RETURNED, ev->rows_returned);
            tagged_add(c, PG_DB_ROWS_RETURNED, ev->rows_returned);
        }
        if (ev->rows_affected) {
            CNT(c, ROWS_AFFECTED, ev->rows_affected);
            tagged_add(c, PG_DB_ROWS_AFFECTED, ev->rows_affected);
        }
    }
    if (ev->untimed) return;
    uint64_t us = ev->end_ns > ev->start_ns ? (ev->end_ns - ev->start_ns) / 1000u : 0;
    wl_metric_record(c->p->latency[ev->kind < WL_PG_CMD__COUNT ? ev->kind : 0], us);
    if (c->p->slow_threshold_us && us >= c->p->slow_threshold_us) slow_log(c, ev, us);
}

static void on_transaction(void *user, const wl_txn_event *ev) {
    pg_conn *c = user;
    CNT(c, TRANSACTIONS, 1);
    if (ev->outcome == WL_TXN_COMMIT) CNT(c, TRANSACTIONS_COMMIT, 1);
    else CNT(c, TRANSACTIONS_ROLLBACK, 1);
    if (!ev->implicit) {
        uint64_t us = ev->end_ns > ev->start_ns ? (ev->end_ns - ev->start_ns) / 1000u : 0;
        wl_metric_record(c->p->histograms[PG_TRANSACTION_LATENCY_US], us);
    }
}

static const wl_stmt_callbacks stmt_callbacks = {on_statement, on_transaction};

/* ---- messages ------------------------------------------------------------------------ */

COLD static void on_error(pg_conn *c, const wl_pg_event *ev) {
    wl_pg_str sev = ev->u.notice.severity;
    const char *state = ev->u.notice.sqlstate;
    CNT(c, ERRORS, 1);
    tagged_add(c, PG_DB_ERRORS, 1);
    if (str_is(sev, "ERROR")) CNT(c, ERRORS_ERROR, 1);
    else if (str_is(sev, "FATAL")) CNT(c, ERRORS_FATAL, 1);
    else if (str_is(sev, "PANIC")) CNT(c, ERRORS_PANIC, 1);
    else CNT(c, ERRORS_UNKNOWN, 1);
    wl_batch_add(pgm_error_class(c->p, state), 1);
    if (!c->ready) {
        CNT(c, LOGIN_FAILURES, 1);
        wl_batch_add(pgm_login_failure(c->p, state), 1);
    }
}

COLD static void on_notice(pg_conn *c, const wl_pg_event *ev) {
    wl_pg_str sev = ev->u.notice.severity;
    CNT(c, NOTICES, 1);
    if (str_is(sev, "NOTICE")) CNT(c, NOTICES_NOTICE, 1);
    else if (str_is(sev, "WARNING")) CNT(c, NOTICES_WARNING, 1);
    else if (str_is(sev, "DEBUG")) CNT(c, NOTICES_DEBUG, 1);
    else if (str_is(sev, "INFO")) CNT(c, NOTICES_INFO, 1);
    else if (str_is(sev, "LOG")) CNT(c, NOTICES_LOG, 1);
    else CNT(c, NOTICES_UNKNOWN, 1);
}

static void on_ready(pg_conn *c, uint8_t status) {
    if (!c->ready) {
        c->ready = 1;
        wl_metric_add(c->p->gauges[PG_SESSIONS_ACTIVE], 1); /* gauges are never held */
    }
    uint8_t block = status != 'I';
    if (block != c->in_block) {
        wl_metric_add(c->p->gauges[PG_SESSIONS_IN_TRANSACTION], block ? 1 : -1);
        c->in_block = block;
    }
}

/* statements_parsed / statements_parse_error: whether the SQL of a Query or
 * Parse starts with a keyword (wirelab reads the first keyword, not the
 * whole statement). */
COLD static void classify(pg_conn *c, const wl_pg_event *ev) {
    const char *kw = NULL;
    if (wl_pg_sql_keyword(ev->u.query.sql.ptr, ev->u.query.sql.len, &kw)) CNT(c, STATEMENTS_PARSED, 1);
    else CNT(c, STATEMENTS_PARSE_ERROR, 1);
}

static void on_client_message(pg_conn *c, const wl_pg_event *ev) {
    switch (ev->type) {
    case 'Q':
        CNT(c, SIMPLE_QUERIES, 1);
        classify(c, ev);
        break;
    case 'P':
        CNT(c, EXTENDED_PARSE, 1);
        classify(c, ev);
        if (ev->u.query.name.len) CNT(c, EXTENDED_PARSE_NAMED, 1);
        break;
    case 'B':
        CNT(c, EXTENDED_BIND, 1);
        if (ev->u.bind.statement.len) CNT(c, EXTENDED_BIND_NAMED, 1);
        break;
    case 'E': CNT(c, EXTENDED_EXECUTE, 1); break;
    case 'F': CNT(c, FUNCTION_CALLS, 1); break;
    case 'd': wl_batch_add(c->p->copy_bytes[WL_DIR_CLIENT], (int64_t)ev->length - 4); break;
    default: break;
    }
}

static void on_server_message(pg_conn *c, const wl_pg_event *ev) {
    switch (ev->type) {
    case 'R':
        if (ev->u.auth.code == 0 && !c->authenticated) {
            c->authenticated = 1;
            CNT(c, SESSIONS, 1);
            CNT(c, SESSIONS_UNENCRYPTED, 1);
            tagged_add(c, PG_DB_SESSIONS, 1);
        }
        break;
    case 'E': on_error(c, ev); break;
    case 'N': on_notice(c, ev); break;
    case 'Z': on_ready(c, ev->u.ready.status); break;
    case 'A': CNT(c, NOTIFICATIONS, 1); break;
    case 'G': CNT(c, COPY_IN, 1); break;
    case 'H': CNT(c, COPY_OUT, 1); break;
    case 'W': CNT(c, COPY_BOTH, 1); break;
    case 'd': wl_batch_add(c->p->copy_bytes[WL_DIR_SERVER], (int64_t)ev->length - 4); break;
    default: break;
    }
}

COLD static void on_decoder_error(pg_conn *c, const wl_pg_event *ev) {
    CNT(c, DECODER_ERRORS, 1);
    if (ev->u.error.code == WL_PG_ERR_UNKNOWN_TYPE) CNT(c, MESSAGES_UNKNOWN, 1);
    wl_debug("postgres.%s: stopped decoding a connection (error %d, type 0x%02x)", c->p->prefix,
             (int)ev->u.error.code, ev->type);
}

static void on_event(void *user, const wl_pg_event *ev) {
    pg_conn *c = user;
    switch (ev->kind) {
    case WL_PG_EV_MESSAGE:
        c->messages++; /* counted once per read, in wl_on_data */
        if (ev->dir == WL_DIR_CLIENT) {
            on_client_message(c, ev);
            wl_pgt_client(&c->trk, ev);
        } else {
            on_server_message(c, ev);
            wl_pgt_server(&c->trk, ev);
        }
        break;
    case WL_PG_EV_STARTUP:
        if (c->p->tag_database) {
            wl_pg_str db = ev->u.startup.database.len ? ev->u.startup.database : ev->u.startup.user;
            c->db_tag = pgm_tag_index(c->p, 0, db.ptr, db.len);
        }
        if (c->p->tag_user)
            c->user_tag = pgm_tag_index(c->p, 1, ev->u.startup.user.ptr, ev->u.startup.user.len);
        c->tagged = NULL; /* the tag values just changed */
        break;
    case WL_PG_EV_SSL_REQUEST:
    case WL_PG_EV_GSSENC_REQUEST:
        c->messages++;
        if (ev->kind == WL_PG_EV_SSL_REQUEST) CNT(c, SSL_REQUESTS, 1);
        else CNT(c, GSSENC_REQUESTS, 1);
        break;
    case WL_PG_EV_ENCRYPTION_RESPONSE:
        if (ev->u.encryption.answer != 'N') {
            CNT(c, SESSIONS, 1);
            CNT(c, SESSIONS_ENCRYPTED, 1);
        }
        break;
    case WL_PG_EV_DIRECT_TLS:
        CNT(c, SESSIONS, 1);
        CNT(c, SESSIONS_ENCRYPTED, 1);
        break;
    case WL_PG_EV_CANCEL_REQUEST:
        CNT(c, CANCEL_REQUESTS, 1);
        break;
    case WL_PG_EV_ERROR: on_decoder_error(c, ev); break;
    }
}

static const wl_pg_callbacks callbacks = {on_event};

/* ---- SDK hooks ------------------------------------------------------------------- */

int wl_on_configure(wl_plugin *plugin) { return pgm_configure(plugin, plugin->state); }

void wl_on_new_connection(wl_conn *conn) {
    pg_conn *c = conn->state;
    c->conn = conn;
    c->p = conn->plugin->state;
    c->tags = c->p->tag_database || c->p->tag_user;
    wl_pg_init(&c->dec, &callbacks, c);
    wl_pgt_init(&c->trk, &stmt_callbacks, c);
    CNT(c, CONNECTIONS, 1);
}

void wl_on_data(wl_conn *conn, wl_read *read) {
    pg_conn *c = conn->state;
    pg_plugin *p = c->p;
    wl_batch_add(p->bytes[read->dir], (int64_t)read->size);
    if (!wl_pg_active(&c->dec) || read->size == 0) return;
    c->now = wl_now_ns();
    wl_pgt_set_time(&c->trk, c->now);
    wl_pg_feed(&c->dec, read->dir, read->size, wl_read_fetch, read);
    if (c->messages) {
        CNT(c, MESSAGES, c->messages);
        if (read->dir == WL_DIR_CLIENT) CNT(c, MESSAGES_FRONTEND, c->messages);
        else CNT(c, MESSAGES_BACKEND, c->messages);
        c->messages = 0;
    }
}

void wl_on_connection_end(wl_conn *conn) {
    pg_conn *c = conn->state;
    c->now = wl_now_ns();
    wl_pgt_close(&c->trk, c->now); /* the server rolls back an open transaction */
    /* a closed connection's counts are all visible once sessions_active drops */
    wl_batch_flush();
    if (c->ready) wl_metric_add(c->p->gauges[PG_SESSIONS_ACTIVE], -1);
    if (c->in_block) wl_metric_add(c->p->gauges[PG_SESSIONS_IN_TRANSACTION], -1);
}
