/* PostgreSQL statement tracker: decoder events -> statement and transaction
 * events. The rules and the bounds are described in postgres_tracker.h. */
#include "postgres_tracker.h"

#include <string.h>

/* Rare paths stay out of line, so the per-message dispatch stays small (no
 * stack frame, few locals): it runs for every message on the wire. */
#if defined(__GNUC__) || defined(__clang__)
#define COLD __attribute__((noinline, cold))
#else
#define COLD
#endif

enum {
    Q_QUERY = 1, /* simple Query: statements until its ReadyForQuery */
    Q_EXEC,      /* Execute: one CommandComplete / PortalSuspended / error / EmptyQuery */
    Q_SYNC,      /* Sync: its ReadyForQuery */
    Q_FUNC,      /* FunctionCall: its ReadyForQuery */
    Q_END,       /* the client replaced or closed a portal: it ends once the server gets here */
};

/* 0 for the unnamed portal/statement, never 0 for a name. */
static uint32_t name_hash(wl_pg_str s) {
    if (!s.len) return 0;
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < s.len; i++) h = (h ^ (uint8_t)s.ptr[i]) * 16777619u;
    return h ? h : 1;
}

static uint8_t keep_sql(char *dst, wl_pg_str sql) {
    uint32_t n = sql.len < WL_PGT_SQL ? sql.len : WL_PGT_SQL;
    memcpy(dst, sql.ptr, n);
    return (uint8_t)n;
}

/* The kind of a statement without a CommandComplete tag (it failed, or its
 * portal was suspended), from its SQL; computed only then, as reading the
 * keyword costs more than the rest of a statement's bookkeeping. */
static uint8_t kind_of_sql(const char *sql, uint8_t len) {
    return (uint8_t)wl_pg_cmd_from_sql(sql, len);
}

static uint64_t later(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* ---- reporting ------------------------------------------------------------------ */

static void emit_stmt(wl_pg_tracker *t, wl_stmt_event *ev) {
    ev->kind_name = wl_pg_cmd_name((wl_pg_cmd)ev->kind);
    ev->end_ns = t->now;
    ev->has_rows = 1;
    if (ev->sql_len == WL_PGT_SQL) ev->sql_truncated = 1;
    if (!ev->failed) {
        t->txn_stmts++;
        t->cycle_stmts++;
    }
    t->last_done_ns = t->now;
    if (t->cb->on_statement) t->cb->on_statement(t->user, ev);
}

static void emit_txn(wl_pg_tracker *t, uint8_t outcome, uint8_t implicit, uint32_t stmts,
                     uint64_t start, uint64_t end) {
    wl_txn_event *ev = &t->tev;
    ev->outcome = outcome;
    ev->implicit = implicit;
    ev->statements = stmts;
    ev->start_ns = start;
    ev->end_ns = end > start ? end : start;
    if (t->cb->on_transaction) t->cb->on_transaction(t->user, ev);
}

/* Which rows a finished statement's count is. */
static void add_rows(wl_stmt_event *ev, const wl_pg_event *cc, uint8_t copy_dir) {
    if (!cc->u.cc.has_rows) return;
    switch (cc->u.cc.kind) {
    case WL_PG_CMD_INSERT:
    case WL_PG_CMD_UPDATE:
    case WL_PG_CMD_DELETE:
    case WL_PG_CMD_MERGE: ev->rows_affected += cc->u.cc.rows; break;
    case WL_PG_CMD_COPY:
        if (copy_dir == 'H') ev->rows_returned += cc->u.cc.rows;
        else if (copy_dir == 'G') ev->rows_affected += cc->u.cc.rows;
        break;
    case WL_PG_CMD_SELECT:
    case WL_PG_CMD_FETCH: ev->rows_returned += cc->u.cc.rows; break;
    default: break; /* MOVE sends no rows */
    }
}

/* ---- the request queue ------------------------------------------------------------ */

static wl_pgt_entry *q_at(wl_pg_tracker *t, uint32_t i) { return &t->q[(t->q_head + i) % WL_PGT_QUEUE]; }

static wl_pgt_entry *q_head(wl_pg_tracker *t) { return t->q_len ? q_at(t, 0) : NULL; }

/* Once a request was dropped, later ones are dropped too until the queue
 * drains: answers then pair with requests again (see lost_z). */
static wl_pgt_entry *q_push(wl_pg_tracker *t, uint8_t what) {
    if (t->overflowed || t->q_len == WL_PGT_QUEUE) {
        t->overflowed = 1;
        if (what == Q_QUERY || what == Q_SYNC || what == Q_FUNC) t->lost_z++;
        return NULL;
    }
    wl_pgt_entry *e = q_at(t, t->q_len++);
    e->what = what;
    e->start_ns = t->now;
    e->portal = 0;
    e->flag = 0;
    e->sql_len = 0;
    return e;
}

COLD static void end_portal(wl_pg_tracker *t, uint32_t portal);

/* A drained queue starts again at slot 0: the usual connection, one request
 * in flight at a time, then reuses one warm entry instead of walking all 32
 * through the cache. */
static void q_advance(wl_pg_tracker *t) {
    t->q_head = --t->q_len ? (t->q_head + 1) % WL_PGT_QUEUE : 0;
}

static void q_pop(wl_pg_tracker *t) {
    if (!t->q_len) return;
    q_advance(t);
    /* A portal-end marker takes effect once everything before it was answered. */
    while (t->q_len && q_at(t, 0)->what == Q_END) {
        uint32_t portal = q_at(t, 0)->portal;
        q_advance(t);
        end_portal(t, portal);
    }
}

/* The Execute or Query the next statement answer belongs to. */
static wl_pgt_entry *q_statement(wl_pg_tracker *t) {
    wl_pgt_entry *e = q_head(t);
    return e && (e->what == Q_EXEC || e->what == Q_QUERY) ? e : NULL;
}

/* ---- suspended portals -------------------------------------------------------------- */

static wl_pgt_portal *find_portal(wl_pg_tracker *t, uint32_t portal) {
    if (!t->n_portals) return NULL;
    for (int i = 0; i < WL_PGT_PORTALS; i++)
        if (t->portals[i].used && t->portals[i].portal == portal) return &t->portals[i];
    return NULL;
}

/* Reports a suspended portal's execution (its rows so far) and frees it. */
COLD static void report_portal(wl_pg_tracker *t, wl_pgt_portal *p) {
    wl_stmt_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = p->kind;
    ev.prepared = 1;
    ev.fetches = p->fetches;
    ev.rows_returned = p->rows;
    ev.start_ns = p->start_ns;
    ev.untimed = p->start_ns == UINT64_MAX;
    ev.sql = p->sql;
    ev.sql_len = p->sql_len;
    p->used = 0;
    t->n_portals--;
    emit_stmt(t, &ev);
}

COLD static void end_portal(wl_pg_tracker *t, uint32_t portal) {
    wl_pgt_portal *p = find_portal(t, portal);
    if (p) report_portal(t, p);
}

COLD static void end_all_portals(wl_pg_tracker *t) {
    if (!t->n_portals) return;
    for (int i = 0; i < WL_PGT_PORTALS; i++)
        if (t->portals[i].used) report_portal(t, &t->portals[i]);
}

/* Client side: remember portals executed with a row limit, so that a later
 * Bind/Close/Query that ends one queues a marker (once per execution). */
COLD static void watch_portal(wl_pg_tracker *t, uint32_t portal) {
    uint32_t key = portal + 1, *free_slot = NULL;
    for (int i = 0; i < WL_PGT_PORTALS; i++) {
        if (t->limited[i] == key) return;
        if (!t->limited[i] && !free_slot) free_slot = &t->limited[i];
    }
    /* Full: this portal then ends at the end of its transaction at the latest. */
    if (free_slot) {
        *free_slot = key;
        t->n_limited++;
    }
}

COLD static void portal_replaced(wl_pg_tracker *t, uint32_t portal) {
    uint32_t key = portal + 1;
    if (!t->n_limited) return;
    for (int i = 0; i < WL_PGT_PORTALS; i++) {
        if (t->limited[i] != key) continue;
        t->limited[i] = 0;
        t->n_limited--;
        if (!t->q_len && !t->overflowed) {
            end_portal(t, portal); /* the server has answered everything before it */
        } else {
            wl_pgt_entry *e = q_push(t, Q_END);
            if (e) e->portal = portal;
        }
        return;
    }
}

/* ---- transactions ------------------------------------------------------------------- */

COLD static void txn_end(wl_pg_tracker *t, uint8_t outcome, uint64_t at) {
    if (!t->txn) return;
    end_all_portals(t); /* the transaction's portals end with it, and belong to it */
    t->txn = 0;
    t->rollback_pending = 0;
    emit_txn(t, outcome, 0, t->txn_stmts, t->txn_start_ns, at);
}

static void resolve_rollback(wl_pg_tracker *t) {
    if (t->rollback_pending) txn_end(t, WL_TXN_ROLLBACK, t->rollback_ns);
}

COLD static void txn_after_statement(wl_pg_tracker *t, wl_pg_cmd kind, uint64_t start) {
    switch (kind) {
    case WL_PG_CMD_BEGIN:
        t->cycle_begin = 1;
        resolve_rollback(t);
        if (!t->txn) {
            t->txn = 1;
            t->txn_start_ns = start;
            t->txn_stmts = 1; /* the BEGIN */
        }
        break;
    case WL_PG_CMD_COMMIT:
        resolve_rollback(t);
        txn_end(t, WL_TXN_COMMIT, t->now);
        break;
    case WL_PG_CMD_ROLLBACK:
        /* ROLLBACK TO SAVEPOINT has the same tag: the next ReadyForQuery
         * status tells whether the transaction really ended. */
        if (t->txn && !t->rollback_pending) {
            t->rollback_pending = 1;
            t->rollback_ns = t->now;
        }
        break;
    default: break;
    }
}

/* ---- server messages ------------------------------------------------------------------ */

static void on_command_complete(wl_pg_tracker *t, const wl_pg_event *m) {
    wl_pgt_entry *e = q_statement(t);
    wl_stmt_event *ev = &t->ev; /* in the tracker: no stack frame on this path */
    memset(ev, 0, sizeof *ev);
    ev->kind = (uint8_t)m->u.cc.kind;
    ev->fetches = 1;
    if (m->u.cc.has_rows) add_rows(ev, m, t->copy_dir);
    if (e) {
        ev->start_ns = later(e->start_ns, t->last_done_ns);
        ev->sql = e->sql;
        ev->sql_len = e->sql_len;
        if (e->what == Q_EXEC) {
            ev->prepared = 1;
            wl_pgt_portal *p = find_portal(t, e->portal);
            if (p) { /* the last fetch of a suspended portal */
                ev->start_ns = p->start_ns;
                ev->untimed = p->start_ns == UINT64_MAX;
                ev->fetches += p->fetches;
                ev->rows_returned += p->rows;
                p->used = 0;
                t->n_portals--;
            }
        }
    } else {
        ev->untimed = 1;
    }
    t->rows = 0;
    t->copy_dir = 0;
    uint64_t start = ev->untimed ? t->now : ev->start_ns;
    emit_stmt(t, ev);
    if (ev->kind >= WL_PG_CMD_BEGIN && ev->kind <= WL_PG_CMD_ROLLBACK)
        txn_after_statement(t, (wl_pg_cmd)ev->kind, start);
    if (e && e->what == Q_EXEC) q_pop(t);
}

COLD static void on_portal_suspended(wl_pg_tracker *t) {
    wl_pgt_entry *e = q_statement(t);
    uint32_t portal = e && e->what == Q_EXEC ? e->portal : 0;
    wl_pgt_portal *p = find_portal(t, portal);
    if (!p) {
        for (int i = 0; i < WL_PGT_PORTALS && !p; i++)
            if (!t->portals[i].used) p = &t->portals[i];
        if (!p) { /* more suspended portals than the table holds: the oldest ends here */
            p = &t->portals[0];
            report_portal(t, p);
        }
        p->used = 1;
        t->n_portals++;
        p->portal = portal;
        p->fetches = 0;
        p->rows = 0;
        if (e && e->what == Q_EXEC) {
            p->kind = kind_of_sql(e->sql, e->sql_len);
            p->start_ns = later(e->start_ns, t->last_done_ns);
            p->sql_len = e->sql_len;
            memcpy(p->sql, e->sql, e->sql_len);
        } else {
            p->kind = WL_PG_CMD_OTHER;
            p->start_ns = UINT64_MAX; /* untimed */
            p->sql_len = 0;
        }
    }
    p->fetches++;
    p->rows += t->rows;
    t->rows = 0;
    t->last_done_ns = t->now;
    if (e && e->what == Q_EXEC) q_pop(t);
}

COLD static void on_error(wl_pg_tracker *t, const wl_pg_event *m) {
    if (!t->ready) return; /* a failed login */
    t->cycle_error = 1;
    wl_pgt_entry *e = q_head(t);
    if (e && (e->what == Q_EXEC || (e->what == Q_QUERY && !e->flag))) {
        wl_stmt_event ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = kind_of_sql(e->sql, e->sql_len);
        ev.failed = 1;
        ev.not_counted = 1; /* pg_stat_statements counts only statements that finished */
        memcpy(ev.sqlstate, m->u.notice.sqlstate, sizeof ev.sqlstate);
        ev.fetches = 1;
        ev.rows_returned = t->rows;
        ev.start_ns = later(e->start_ns, t->last_done_ns);
        ev.sql = e->sql;
        ev.sql_len = e->sql_len;
        if (e->what == Q_EXEC) {
            ev.prepared = 1;
            wl_pgt_portal *p = find_portal(t, e->portal);
            if (p) { /* a later fetch of a suspended portal failed */
                ev.kind = p->kind;
                ev.start_ns = p->start_ns;
                ev.untimed = p->start_ns == UINT64_MAX;
                ev.fetches += p->fetches;
                ev.rows_returned += p->rows;
                ev.sql = p->sql;
                ev.sql_len = p->sql_len;
                p->used = 0;
                t->n_portals--;
            }
        } else {
            e->flag = 1; /* the rest of the Query string does not run */
        }
        emit_stmt(t, &ev);
    }
    t->rows = 0;
    t->copy_dir = 0;
    /* The error aborted the transaction (or the implicit one): every portal is gone. */
    end_all_portals(t);
    if (e && e->what == Q_EXEC) {
        /* The server skips everything up to the next Sync. */
        while (t->q_len && (q_at(t, 0)->what == Q_EXEC || q_at(t, 0)->what == Q_END)) q_pop(t);
    }
    t->last_done_ns = t->now;
}

static void on_ready(wl_pg_tracker *t, uint8_t status) {
    t->ready = 1;
    /* Everything up to and including this Sync/Query/FunctionCall is answered.
     * Did it make the server start a transaction (Query, FunctionCall, Parse,
     * Bind, Describe, Execute)? A dropped request cannot tell: assume so. */
    uint8_t active = 0;
    uint64_t start = UINT64_MAX;
    if (t->q_len == 1) { /* the usual case: one Query or Sync answered */
        wl_pgt_entry *e = &t->q[t->q_head];
        active = e->what != Q_SYNC || e->flag;
        start = e->start_ns;
        q_advance(t);
    } else if (t->q_len) {
        while (t->q_len) {
            wl_pgt_entry *e = q_at(t, 0);
            uint8_t what = e->what;
            active |= what != Q_SYNC || e->flag;
            if (e->start_ns < start) start = e->start_ns;
            q_pop(t);
            if (what != Q_EXEC && what != Q_END) break;
        }
    } else if (t->overflowed) {
        active = 1;
        if (t->lost_z) t->lost_z--;
    }
    if (!t->q_len && !t->lost_z) t->overflowed = 0;
    start = start == UINT64_MAX ? t->now : later(start, t->ready_ns);
    if (status == 'I' && t->n_portals) end_all_portals(t); /* the transaction ended: so did its portals */

    /* An implicit transaction: the server was idle before this cycle and is
     * idle after it, and no BEGIN ran in between. It commits unless an error
     * ended it (as PostgreSQL's xact_commit / xact_rollback count). */
    if (active && !t->in_block && status == 'I' && !t->cycle_begin)
        emit_txn(t, t->cycle_error ? WL_TXN_ROLLBACK : WL_TXN_COMMIT, 1, t->cycle_stmts, start,
                 t->now);
    if (t->rollback_pending) {
        if (status == 'I') txn_end(t, WL_TXN_ROLLBACK, t->rollback_ns);
        else t->rollback_pending = 0; /* it was ROLLBACK TO SAVEPOINT */
    }
    /* Ended without a COMMIT/ROLLBACK tag (PREPARE TRANSACTION): neither
     * outcome is counted by the server either. */
    if (t->txn && status == 'I') t->txn = 0;
    t->cycle_begin = t->cycle_error = 0;
    t->cycle_stmts = 0;
    t->in_block = status != 'I';
    t->last_done_ns = t->ready_ns = t->now;
    t->rows = 0;
    t->copy_dir = 0;
}

void wl_pgt_server(wl_pg_tracker *t, const wl_pg_event *m) {
    switch (m->type) {
    case 'D': t->rows++; break;
    case 'C': on_command_complete(t, m); break;
    case 's': on_portal_suspended(t); break;
    case 'Z': on_ready(t, m->u.ready.status); break;
    case 'E': on_error(t, m); break;
    case 'I': { /* EmptyQueryResponse: no statement */
        wl_pgt_entry *e = q_statement(t);
        t->last_done_ns = t->now;
        if (e && e->what == Q_EXEC) q_pop(t);
        break;
    }
    case 'G':
    case 'H':
    case 'W': t->copy_dir = m->type; break;
    default: break;
    }
}

/* ---- client messages ------------------------------------------------------------------ */

static void group_touch(wl_pg_tracker *t) {
    if (!t->group_active) {
        t->group_active = 1;
        t->group_start_ns = t->now;
    }
}

static void on_bind(wl_pg_tracker *t, const wl_pg_event *m) {
    group_touch(t);
    if (t->n_limited) portal_replaced(t, name_hash(m->u.bind.portal));
    if (!m->u.bind.statement.len) {
        t->bound = WL_PGT_UNNAMED;
        return;
    }
    uint32_t h = name_hash(m->u.bind.statement);
    if (t->named[t->last_named].hash == h) { /* the usual case: the same statement again */
        t->bound = t->last_named;
        return;
    }
    for (uint8_t i = 0; i < WL_PGT_NAMED; i++) {
        if (t->named[i].hash == h) {
            t->bound = t->last_named = i;
            return;
        }
    }
    t->bound = WL_PGT_UNKNOWN; /* prepared before we saw it, or forgotten */
}

COLD static void on_parse(wl_pg_tracker *t, const wl_pg_event *m) {
    group_touch(t);
    if (!m->u.query.name.len) {
        t->unnamed_len = keep_sql(t->unnamed_sql, m->u.query.sql);
        return;
    }
    uint32_t h = name_hash(m->u.query.name);
    wl_pgt_stmt *s = NULL;
    for (int i = 0; i < WL_PGT_NAMED && !s; i++)
        if (t->named[i].hash == h) s = &t->named[i];
    for (int i = 0; i < WL_PGT_NAMED && !s; i++)
        if (!t->named[i].hash) s = &t->named[i];
    if (!s) s = &t->named[t->named_next++ % WL_PGT_NAMED];
    s->hash = h;
    s->sql_len = keep_sql(s->sql, m->u.query.sql);
}

void wl_pgt_client(wl_pg_tracker *t, const wl_pg_event *m) {
    switch (m->type) {
    case 'B': on_bind(t, m); break;
    case 'E': {
        group_touch(t);
        uint32_t portal = name_hash(m->u.execute.portal);
        wl_pgt_entry *e = q_push(t, Q_EXEC);
        if (e) {
            e->portal = portal;
            if (t->bound == WL_PGT_UNNAMED) {
                e->sql_len = t->unnamed_len;
                memcpy(e->sql, t->unnamed_sql, t->unnamed_len);
            } else if (t->bound < WL_PGT_NAMED) {
                const wl_pgt_stmt *st = &t->named[t->bound];
                e->sql_len = st->sql_len;
                memcpy(e->sql, st->sql, st->sql_len);
            }
        }
        if (m->u.execute.max_rows) watch_portal(t, portal);
        break;
    }
    case 'S': {
        wl_pgt_entry *e = q_push(t, Q_SYNC);
        if (e) {
            e->flag = t->group_active;
            if (t->group_active) e->start_ns = t->group_start_ns;
        }
        t->group_active = 0;
        break;
    }
    case 'P': on_parse(t, m); break;
    case 'D': group_touch(t); break; /* the server starts a transaction for it too */
    case 'Q': {
        if (t->n_limited) portal_replaced(t, 0); /* a simple Query replaces the unnamed portal */
        wl_pgt_entry *e = q_push(t, Q_QUERY);
        if (e) e->sql_len = keep_sql(e->sql, m->u.query.sql);
        break;
    }
    case 'C':
        if (m->u.target.what == 'P') {
            portal_replaced(t, name_hash(m->u.target.name));
        } else if (m->u.target.name.len) {
            uint32_t h = name_hash(m->u.target.name);
            for (int i = 0; i < WL_PGT_NAMED; i++)
                if (t->named[i].hash == h) t->named[i].hash = 0;
        }
        break;
    case 'F': q_push(t, Q_FUNC); break;
    default: break;
    }
}

/* ---- entry points ------------------------------------------------------------------------ */

void wl_pgt_init(wl_pg_tracker *t, const wl_stmt_callbacks *cb, void *user) {
    memset(t, 0, offsetof(wl_pg_tracker, q));
    t->cb = cb;
    t->user = user;
    t->bound = WL_PGT_UNKNOWN;
    for (int i = 0; i < WL_PGT_PORTALS; i++) t->portals[i].used = 0;
    for (int i = 0; i < WL_PGT_NAMED; i++) t->named[i].hash = 0;
}

void wl_pgt_event(wl_pg_tracker *t, const wl_pg_event *ev, uint64_t now_ns) {
    if (ev->kind != WL_PG_EV_MESSAGE) return;
    t->now = now_ns;
    if (ev->dir == WL_DIR_CLIENT) wl_pgt_client(t, ev);
    else wl_pgt_server(t, ev);
}

void wl_pgt_close(wl_pg_tracker *t, uint64_t now_ns) {
    t->now = now_ns;
    end_all_portals(t);
    if (t->txn) txn_end(t, WL_TXN_ROLLBACK, now_ns); /* the server rolls it back */
}
