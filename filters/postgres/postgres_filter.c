/* PostgreSQL metrics filter: decoder events (filters/protocols/postgres.h)
 * turned into the stats of postgres_stats.h. Observes only; never pauses or
 * modifies traffic. See README.md for what every stat means. */
#include <stddef.h>
#include <string.h>

#include "postgres_filter.h"

enum { Q_QUERY = 1, Q_EXEC, Q_FUNC, Q_SYNC };

typedef struct {
    uint64_t start_ns;
    uint8_t what;   /* Q_* */
    uint8_t hint;   /* wl_pg_cmd guessed from the SQL */
    uint8_t failed; /* simple query: an error already ended it */
    uint8_t active; /* Q_SYNC: Parse/Bind/Describe/Execute since the previous Sync */
    uint8_t sql_len;
    char sql[PGF_SQL_KEEP];
} pending;

typedef struct {
    uint32_t hash; /* 0: free */
    uint8_t hint;
    uint8_t sql_len;
    char sql[PGF_SQL_KEEP];
} named_stmt;

typedef struct {
    wl_pg_decoder dec;
    wl_conn *conn;
    pg_plugin *p;
    uint64_t now;

    uint8_t authenticated; /* AuthenticationOk seen */
    uint8_t ready;         /* first ReadyForQuery seen: the session is up */
    uint8_t in_block;      /* last ReadyForQuery status was T or E */
    uint8_t txn;           /* inside an explicit transaction (contrib semantics) */
    uint8_t rollback_pending;
    uint8_t copy_dir;      /* 'G', 'H', 'W' while a COPY runs */
    uint8_t overflowed;    /* queue overflowed: no latency until it drains */
    uint8_t group_active;  /* client: Parse/Bind/Describe/Execute since the last Sync */
    uint8_t cycle_begin;   /* server: a BEGIN completed since the last ReadyForQuery */
    uint8_t cycle_error;   /* server: an ErrorResponse since the last ReadyForQuery */
    uint32_t db_tag, user_tag;
    const wl_metric *tagged; /* this connection's (database, user) metrics, once used */
    uint32_t messages;       /* messages decoded in the current read */
    uint64_t txn_start_ns, rollback_ns, last_done_ns;

    /* statements awaiting completion, FIFO ring */
    uint32_t q_head, q_len;
    pending q[PGF_QUEUE];

    /* SQL of the unnamed statement and of a few named ones */
    uint8_t unnamed_hint, unnamed_len;
    char unnamed_sql[PGF_SQL_KEEP];
    uint32_t named_next;
    named_stmt named[PGF_NAMED];
} pg_conn;

WL_PLUGIN_STATE(pg_plugin)
WL_CONN_STATE(pg_conn)

/* ---- helpers ------------------------------------------------------------------ */

#define CNT(c, id, n) wl_batch_add((c)->p->counters[PG_##id], (int64_t)(n))

static uint32_t name_hash(wl_pg_str s) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < s.len; i++) h = (h ^ (uint8_t)s.ptr[i]) * 16777619u;
    return h ? h : 1;
}

/* A plain copy: newlines and tabs become spaces only when a slow statement is
 * logged, not on every statement. */
static uint8_t keep_sql(char *dst, wl_pg_str sql) {
    uint32_t n = sql.len < PGF_SQL_KEEP ? sql.len : PGF_SQL_KEEP;
    memcpy(dst, sql.ptr, n);
    return (uint8_t)n;
}

static int str_is(wl_pg_str s, const char *lit) {
    size_t n = strlen(lit);
    return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static void tagged_add(pg_conn *c, int id, uint64_t n) {
    if (!c->p->tag_database && !c->p->tag_user) return;
    /* defined on first use, as before the startup message they were unknown */
    if (!c->tagged) c->tagged = pgm_tagged(c->p, c->db_tag, c->user_tag);
    if (c->tagged) wl_batch_add(c->tagged[id], (int64_t)n);
}

/* ---- the statement queue --------------------------------------------------------- */

static pending *q_at(pg_conn *c, uint32_t i) { return &c->q[(c->q_head + i) % PGF_QUEUE]; }

static pending *q_push(pg_conn *c, uint8_t what) {
    if (c->q_len == PGF_QUEUE) {
        c->overflowed = 1;
        return NULL;
    }
    pending *e = q_at(c, c->q_len++);
    memset(e, 0, offsetof(pending, sql));
    e->what = what;
    e->start_ns = c->now;
    return e;
}

static void q_pop(pg_conn *c) {
    if (!c->q_len) return;
    c->q_head = (c->q_head + 1) % PGF_QUEUE;
    c->q_len--;
}

/* Head statement for a completion, or NULL (a sync marker or nothing). */
static pending *q_statement(pg_conn *c) {
    if (!c->q_len) return NULL;
    pending *e = q_at(c, 0);
    return e->what == Q_SYNC ? NULL : e;
}

static void record_latency(pg_conn *c, pending *e, wl_pg_cmd kind) {
    if (!e || c->overflowed) return;
    uint64_t start = e->start_ns > c->last_done_ns ? e->start_ns : c->last_done_ns;
    uint64_t us = c->now > start ? (c->now - start) / 1000u : 0;
    wl_metric_record(c->p->latency[kind], us);
    if (c->p->slow_threshold_us && us >= c->p->slow_threshold_us) {
        CNT(c, SLOW_STATEMENTS, 1);
        uint32_t n = e->sql_len < c->p->slow_log_sql_bytes ? e->sql_len : c->p->slow_log_sql_bytes;
        for (uint32_t i = 0; i < n; i++) /* one log line per statement */
            if (e->sql[i] == '\n' || e->sql[i] == '\r' || e->sql[i] == '\t') e->sql[i] = ' ';
        wl_warn("postgres.%s slow statement: %llu ms type=%s sql=\"%.*s%s\"", c->p->prefix,
                (unsigned long long)(us / 1000u), wl_pg_cmd_name(kind), (int)n, e->sql,
                n < e->sql_len || e->sql_len == PGF_SQL_KEEP ? "..." : "");
    }
}

/* A statement finished (CommandComplete, EmptyQuery, PortalSuspended, error). */
static void statement_done(pg_conn *c, int record, wl_pg_cmd kind) {
    pending *e = q_statement(c);
    if (record) record_latency(c, e, kind);
    c->last_done_ns = c->now;
    if (e && e->what == Q_EXEC) q_pop(c);
}

/* ---- transactions ----------------------------------------------------------------- */

static void txn_end(pg_conn *c, int committed, uint64_t at) {
    if (!c->txn) return;
    c->txn = 0;
    c->rollback_pending = 0;
    if (committed == 1) CNT(c, TRANSACTIONS_COMMIT, 1);
    else if (committed == 0) CNT(c, TRANSACTIONS_ROLLBACK, 1);
    uint64_t us = at > c->txn_start_ns ? (at - c->txn_start_ns) / 1000u : 0;
    wl_metric_record(c->p->histograms[PG_TRANSACTION_LATENCY_US], us);
}

static void resolve_rollback(pg_conn *c) {
    if (c->rollback_pending) txn_end(c, 0, c->rollback_ns);
}

static void on_command_complete(pg_conn *c, const wl_pg_event *ev) {
    wl_pg_cmd kind = ev->u.cc.kind;
    pending *e = q_statement(c);
    uint64_t start = e ? (e->start_ns > c->last_done_ns ? e->start_ns : c->last_done_ns) : c->now;

    CNT(c, STATEMENTS, 1);
    tagged_add(c, PG_DB_STATEMENTS, 1);
    switch (kind) {
    case WL_PG_CMD_SELECT: CNT(c, STATEMENTS_SELECT, 1); break;
    case WL_PG_CMD_INSERT: CNT(c, STATEMENTS_INSERT, 1); break;
    case WL_PG_CMD_UPDATE: CNT(c, STATEMENTS_UPDATE, 1); break;
    case WL_PG_CMD_DELETE: CNT(c, STATEMENTS_DELETE, 1); break;
    default: CNT(c, STATEMENTS_OTHER, 1); break;
    }

    if (ev->u.cc.has_rows) {
        uint64_t rows = ev->u.cc.rows;
        int returned = -1;
        switch (kind) {
        case WL_PG_CMD_SELECT:
        case WL_PG_CMD_FETCH: returned = 1; break;
        case WL_PG_CMD_INSERT:
        case WL_PG_CMD_UPDATE:
        case WL_PG_CMD_DELETE:
        case WL_PG_CMD_MERGE: returned = 0; break;
        case WL_PG_CMD_COPY: returned = c->copy_dir == 'H' ? 1 : c->copy_dir == 'G' ? 0 : -1; break;
        default: break;
        }
        if (returned == 1) {
            CNT(c, ROWS_RETURNED, rows);
            tagged_add(c, PG_DB_ROWS_RETURNED, rows);
        } else if (returned == 0) {
            CNT(c, ROWS_AFFECTED, rows);
            tagged_add(c, PG_DB_ROWS_AFFECTED, rows);
        }
    }
    c->copy_dir = 0;

    switch (kind) {
    case WL_PG_CMD_BEGIN:
        c->cycle_begin = 1;
        resolve_rollback(c);
        if (!c->txn) {
            c->txn = 1;
            c->txn_start_ns = start;
            CNT(c, TRANSACTIONS, 1);
        }
        break;
    case WL_PG_CMD_COMMIT:
        resolve_rollback(c);
        txn_end(c, 1, c->now);
        break;
    case WL_PG_CMD_ROLLBACK:
        /* ROLLBACK TO SAVEPOINT has the same tag: the next ReadyForQuery
         * status tells whether the transaction really ended. */
        if (c->txn && !c->rollback_pending) {
            c->rollback_pending = 1;
            c->rollback_ns = c->now;
        }
        break;
    default:
        break;
    }
    statement_done(c, 1, kind);
}

static void on_error(pg_conn *c, const wl_pg_event *ev) {
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
        return;
    }
    c->cycle_error = 1;
    pending *e = q_statement(c);
    if (!e) return; /* e.g. a Parse error with no Execute queued, or a server shutdown */
    if (e->what == Q_EXEC) {
        statement_done(c, 1, (wl_pg_cmd)e->hint);
        /* The server skips everything up to the next Sync. */
        while (c->q_len && q_at(c, 0)->what == Q_EXEC) q_pop(c);
    } else if (!e->failed) {
        statement_done(c, 1, (wl_pg_cmd)e->hint);
        e->failed = 1;
    }
}

static void on_notice(pg_conn *c, const wl_pg_event *ev) {
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
    /* Everything up to and including this Sync/Query/FunctionCall is done.
     * Did the client send anything that makes the server start a transaction
     * (Query, FunctionCall, Parse, Bind, Describe, Execute)? After an
     * overflow the queue cannot tell: assume so. */
    uint8_t active = c->overflowed;
    while (c->q_len) {
        pending *e = q_at(c, 0);
        uint8_t what = e->what;
        active |= what != Q_SYNC || e->active;
        q_pop(c);
        if (what != Q_EXEC) break;
    }
    /* An implicit transaction: the server was idle before this cycle and is
     * idle after it, and no BEGIN ran in between. It commits unless an error
     * ended it (as PostgreSQL's xact_commit / xact_rollback count). */
    if (active && !c->in_block && status == 'I' && !c->cycle_begin) {
        CNT(c, TRANSACTIONS, 1);
        if (c->cycle_error) CNT(c, TRANSACTIONS_ROLLBACK, 1);
        else CNT(c, TRANSACTIONS_COMMIT, 1);
    }
    c->cycle_begin = c->cycle_error = 0;
    if (c->rollback_pending) {
        if (status == 'I') txn_end(c, 0, c->rollback_ns);
        else c->rollback_pending = 0; /* it was ROLLBACK TO SAVEPOINT */
    }
    if (c->txn && status == 'I') txn_end(c, -1, c->now); /* ended without a COMMIT/ROLLBACK tag */
    uint8_t block = status != 'I';
    if (block != c->in_block) {
        wl_metric_add(c->p->gauges[PG_SESSIONS_IN_TRANSACTION], block ? 1 : -1);
        c->in_block = block;
    }
    if (!c->q_len) c->overflowed = 0;
    c->last_done_ns = c->now;
    c->copy_dir = 0;
}

/* statements_parsed / statements_parse_error: whether the SQL of a Query or
 * Parse starts with a keyword (wirelab reads the first keyword, not the
 * whole statement). */
static wl_pg_cmd classify(pg_conn *c, wl_pg_str sql) {
    const char *kw = NULL;
    size_t n = wl_pg_sql_keyword(sql.ptr, sql.len, &kw);
    if (!n) {
        CNT(c, STATEMENTS_PARSE_ERROR, 1);
        return WL_PG_CMD_OTHER;
    }
    CNT(c, STATEMENTS_PARSED, 1);
    return wl_pg_cmd_from_verb(kw, n);
}

static void on_client_message(pg_conn *c, const wl_pg_event *ev) {
    switch (ev->type) {
    case 'Q': {
        CNT(c, SIMPLE_QUERIES, 1);
        wl_pg_cmd hint = classify(c, ev->u.query.sql);
        pending *e = q_push(c, Q_QUERY);
        if (e) {
            e->hint = (uint8_t)hint;
            e->sql_len = keep_sql(e->sql, ev->u.query.sql);
        }
        break;
    }
    case 'P': {
        CNT(c, EXTENDED_PARSE, 1);
        c->group_active = 1;
        wl_pg_cmd hint = classify(c, ev->u.query.sql);
        if (ev->u.query.name.len == 0) {
            c->unnamed_hint = (uint8_t)hint;
            c->unnamed_len = keep_sql(c->unnamed_sql, ev->u.query.sql);
        } else {
            CNT(c, EXTENDED_PARSE_NAMED, 1);
            named_stmt *s = &c->named[c->named_next++ % PGF_NAMED];
            s->hash = name_hash(ev->u.query.name);
            s->hint = (uint8_t)hint;
            s->sql_len = keep_sql(s->sql, ev->u.query.sql);
        }
        break;
    }
    case 'B': {
        CNT(c, EXTENDED_BIND, 1);
        c->group_active = 1;
        /* The portal's statement decides what the next Execute runs. */
        if (ev->u.bind.statement.len) {
            CNT(c, EXTENDED_BIND_NAMED, 1);
            uint32_t h = name_hash(ev->u.bind.statement);
            for (int i = 0; i < PGF_NAMED; i++) {
                if (c->named[i].hash == h) {
                    c->unnamed_hint = c->named[i].hint;
                    c->unnamed_len = c->named[i].sql_len;
                    memcpy(c->unnamed_sql, c->named[i].sql, c->named[i].sql_len);
                    return;
                }
            }
            c->unnamed_hint = WL_PG_CMD_OTHER;
            c->unnamed_len = 0;
        }
        break;
    }
    case 'E': {
        CNT(c, EXTENDED_EXECUTE, 1);
        c->group_active = 1;
        pending *e = q_push(c, Q_EXEC);
        if (e) {
            e->hint = c->unnamed_hint;
            e->sql_len = c->unnamed_len;
            memcpy(e->sql, c->unnamed_sql, c->unnamed_len);
        }
        break;
    }
    case 'D': /* Describe: the server starts a transaction for it too */
        c->group_active = 1;
        break;
    case 'S': {
        pending *e = q_push(c, Q_SYNC);
        if (e) e->active = c->group_active;
        c->group_active = 0;
        break;
    }
    case 'F':
        CNT(c, FUNCTION_CALLS, 1);
        q_push(c, Q_FUNC);
        break;
    case 'd':
        wl_batch_add(c->p->copy_bytes[WL_DIR_CLIENT], (int64_t)ev->length - 4);
        break;
    case 'X':
        if (c->txn) txn_end(c, 0, c->now); /* contrib: Terminate inside a transaction */
        break;
    default:
        break;
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
    case 'C': on_command_complete(c, ev); break;
    case 'I': statement_done(c, 0, WL_PG_CMD_OTHER); break; /* EmptyQueryResponse */
    case 's': { /* PortalSuspended: an Execute with a row limit finished */
        pending *e = q_statement(c);
        statement_done(c, 1, e ? (wl_pg_cmd)e->hint : WL_PG_CMD_OTHER);
        break;
    }
    case 'V': statement_done(c, 0, WL_PG_CMD_OTHER); break; /* FunctionCallResponse */
    case 'E': on_error(c, ev); break;
    case 'N': on_notice(c, ev); break;
    case 'Z': on_ready(c, ev->u.ready.status); break;
    case 'A': CNT(c, NOTIFICATIONS, 1); break;
    case 'G': CNT(c, COPY_IN, 1); c->copy_dir = 'G'; break;
    case 'H': CNT(c, COPY_OUT, 1); c->copy_dir = 'H'; break;
    case 'W': CNT(c, COPY_BOTH, 1); c->copy_dir = 'W'; break;
    case 'd': wl_batch_add(c->p->copy_bytes[WL_DIR_SERVER], (int64_t)ev->length - 4); break;
    default: break;
    }
}

static void on_event(void *user, const wl_pg_event *ev) {
    pg_conn *c = user;
    switch (ev->kind) {
    case WL_PG_EV_MESSAGE:
        c->messages++; /* counted once per read, in wl_on_data */
        if (ev->dir == WL_DIR_CLIENT) on_client_message(c, ev);
        else on_server_message(c, ev);
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
    case WL_PG_EV_ERROR:
        CNT(c, DECODER_ERRORS, 1);
        if (ev->u.error.code == WL_PG_ERR_UNKNOWN_TYPE) CNT(c, MESSAGES_UNKNOWN, 1);
        wl_debug("postgres.%s: stopped decoding a connection (error %d, type 0x%02x)",
                 c->p->prefix, (int)ev->u.error.code, ev->type);
        break;
    }
}

static const wl_pg_callbacks callbacks = {on_event};

/* ---- SDK hooks ------------------------------------------------------------------- */

int wl_on_configure(wl_plugin *plugin) { return pgm_configure(plugin, plugin->state); }

void wl_on_new_connection(wl_conn *conn) {
    pg_conn *c = conn->state;
    c->conn = conn;
    c->p = conn->plugin->state;
    wl_pg_init(&c->dec, &callbacks, c);
    CNT(c, CONNECTIONS, 1);
}

void wl_on_data(wl_conn *conn, wl_read *read) {
    pg_conn *c = conn->state;
    pg_plugin *p = c->p;
    wl_batch_add(p->bytes[read->dir], (int64_t)read->size);
    if (!wl_pg_active(&c->dec) || read->size == 0) return;
    c->now = wl_now_ns();
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
    if (c->txn) txn_end(c, 0, c->now); /* the server rolls back an open transaction */
    /* a closed connection's counts are all visible once sessions_active drops */
    wl_batch_flush();
    if (c->ready) wl_metric_add(c->p->gauges[PG_SESSIONS_ACTIVE], -1);
    if (c->in_block) wl_metric_add(c->p->gauges[PG_SESSIONS_IN_TRANSACTION], -1);
}
