/* MySQL / MariaDB statement tracker: see mysql_tracker.h. */
#include "mysql_tracker.h"

#include <string.h>

void wl_mysql_tracker_init(wl_mysql_tracker *t, const wl_stmt_callbacks *cb, void *user) {
    memset(t, 0, sizeof *t);
    if (cb) t->cb = *cb;
    t->user = user;
}

int wl_mysql_stmt_counted(const wl_stmt_event *ev) {
    if (!ev->failed) return 1;
    return !(ev->err_code == 1064 || ev->err_code == 1065 || ev->err_code == 1149);
}

static void transaction(wl_mysql_tracker *t, const wl_stmt_event *s) {
    if (s->not_counted) return;
    if (s->kind == WL_MYSQL_VERB_BEGIN) { /* BEGIN ends any open transaction implicitly (not in Com_commit) */
        t->txn_statements = 0;
        t->txn_explicit = 1;
    }
    if (t->txn_statements++ == 0) t->txn_start = s->start_ns;
    if (s->kind != WL_MYSQL_VERB_COMMIT && s->kind != WL_MYSQL_VERB_ROLLBACK) return;
    wl_txn_event e = {
        .outcome = s->kind == WL_MYSQL_VERB_COMMIT ? WL_TXN_COMMIT : WL_TXN_ROLLBACK,
        .implicit = (uint8_t)!t->txn_explicit,
        .statements = t->txn_statements,
        .start_ns = t->txn_start,
        .end_ns = s->end_ns,
    };
    t->txn_statements = 0;
    t->txn_explicit = 0;
    if (t->cb.on_transaction) t->cb.on_transaction(t->user, &e);
}

typedef struct {
    uint8_t kind, prepared;
    uint32_t fetches;
    uint64_t rows, affected, start, end;
    const wl_mysql_event *err; /* the ERR that ended it, or NULL */
    int with_sql;
} stmt_args;

static void report(wl_mysql_tracker *t, const stmt_args *a) {
    wl_stmt_event s;
    memset(&s, 0, sizeof s);
    s.kind = a->kind;
    s.kind_name = wl_mysql_verb_name((wl_mysql_verb)a->kind);
    s.prepared = a->prepared;
    s.has_rows = 1;
    s.fetches = a->fetches ? a->fetches : 1;
    s.rows_returned = a->rows;
    s.rows_affected = a->affected;
    s.start_ns = a->start;
    s.end_ns = a->end;
    if (a->err) {
        s.failed = 1;
        s.err_code = a->err->err_code;
        memcpy(s.sqlstate, a->err->sqlstate, sizeof s.sqlstate);
        s.has_rows = 0;
    }
    s.not_counted = (uint8_t)!wl_mysql_stmt_counted(&s);
    if (a->with_sql) {
        s.sql = t->sql;
        s.sql_len = t->sql_len;
        s.sql_truncated = t->sql_truncated;
    }
    if (t->cb.on_statement) t->cb.on_statement(t->user, &s);
    transaction(t, &s);
}

static wl_mysql_cursor *cursor_find(wl_mysql_tracker *t, uint32_t id) {
    if (!t->open_cursors) return NULL; /* the usual case: no walk over the table */
    for (int i = 0; i < WL_MYSQL_TRACKER_CURSORS; i++)
        if (t->cursors[i].used && t->cursors[i].stmt_id == id) return &t->cursors[i];
    return NULL;
}

static void cursor_close(wl_mysql_tracker *t, wl_mysql_cursor *c, uint64_t now) {
    if (!c) return;
    stmt_args a = {.kind = c->kind, .prepared = 1, .fetches = c->fetches, .rows = c->rows,
                   .start = c->start_ns, .end = now};
    c->used = 0;
    t->open_cursors--;
    report(t, &a);
}

static void cursors_close_all(wl_mysql_tracker *t, uint64_t now) {
    if (!t->open_cursors) return;
    for (int i = 0; i < WL_MYSQL_TRACKER_CURSORS; i++)
        if (t->cursors[i].used) cursor_close(t, &t->cursors[i], now);
}

static void keep_sql(wl_mysql_tracker *t, const wl_mysql_event *ev) {
    size_t n = ev->text_len < sizeof t->sql ? ev->text_len : sizeof t->sql;
    if (ev->text && n) memcpy(t->sql, ev->text, n);
    t->sql_len = (uint16_t)n;
    t->sql_truncated = ev->text_total > n;
    t->sql_cmd_no = ev->cmd_no;
    t->sql_query = 1;
}

/* When the server could start the command: when it was read, or when the
 * answer to the one before it ended, whichever is later (a pipelined command
 * waits for the ones ahead of it; statement.h's start_ns). */
static uint64_t start_of(const wl_mysql_tracker *t, const wl_mysql_event *ev) {
    return ev->started > t->last_answer ? ev->started : t->last_answer;
}

/* A RESULT or COMMAND_DONE of a command whose results were not yet seen. */
static void command_begins(wl_mysql_tracker *t, const wl_mysql_event *ev) {
    if (t->in_command && t->cmd_no == ev->cmd_no) return;
    t->in_command = 1;
    t->cmd_no = ev->cmd_no;
    t->rows = t->affected = 0;
    t->stmt_start = start_of(t, ev);
}

static void on_command(wl_mysql_tracker *t, const wl_mysql_event *ev, uint64_t now) {
    if (ev->unattributed) {
        t->unattributed++;
        return;
    }
    switch (ev->command) {
    case WL_MYSQL_COM_QUERY:
        keep_sql(t, ev);
        break;
    case WL_MYSQL_COM_STMT_EXECUTE:
    case WL_MYSQL_COM_STMT_RESET:
    case WL_MYSQL_COM_STMT_CLOSE:
        cursor_close(t, cursor_find(t, ev->stmt_id), now);
        break;
    case WL_MYSQL_COM_CHANGE_USER:
    case WL_MYSQL_COM_RESET_CONNECTION:
        /* the session's cursors and transaction end without Com_commit/Com_rollback */
        cursors_close_all(t, now);
        t->txn_statements = 0;
        t->txn_explicit = 0;
        break;
    default:
        break;
    }
}

static void on_result(wl_mysql_tracker *t, const wl_mysql_event *ev, uint64_t now) {
    if (ev->command != WL_MYSQL_COM_QUERY) return; /* prepared: the totals come with COMMAND_DONE */
    command_begins(t, ev);
    if (ev->is_result_set) t->rows += ev->rows;
    else t->affected += ev->affected_rows;
    if (!ev->stmt_end) return;
    stmt_args a = {.kind = ev->stmt_verb, .rows = t->rows, .affected = t->affected, .start = t->stmt_start,
                   .end = now, .with_sql = ev->stmt_index == 0 && t->sql_query && t->sql_cmd_no == ev->cmd_no};
    t->rows = t->affected = 0;
    t->stmt_start = now; /* the next statement of the query runs after this one */
    report(t, &a);
}

/* A cursor the EXECUTE opened: its statement is reported when it ends.
 * 0 when the cursor table is full (reported now, with the rows known now). */
static int cursor_open(wl_mysql_tracker *t, const wl_mysql_event *ev) {
    for (int i = 0; i < WL_MYSQL_TRACKER_CURSORS; i++) {
        if (t->cursors[i].used) continue;
        t->cursors[i] = (wl_mysql_cursor){.stmt_id = ev->stmt_id, .used = 1, .kind = ev->verb,
                                          .fetches = 0, .rows = ev->rows, .start_ns = start_of(t, ev)};
        t->open_cursors++;
        return 1;
    }
    return 0;
}

static void on_done(wl_mysql_tracker *t, const wl_mysql_event *ev, uint64_t now) {
    int err = ev->outcome == WL_MYSQL_OUTCOME_ERR;
    switch (ev->command) {
    case WL_MYSQL_COM_QUERY:
        command_begins(t, ev);
        if (err) { /* the failing statement; the ones after it never ran */
            stmt_args a = {.kind = ev->stmt_verb, .rows = t->rows, .start = t->stmt_start, .end = now, .err = ev,
                           .with_sql = ev->stmt_index == 0 && t->sql_query && t->sql_cmd_no == ev->cmd_no};
            report(t, &a);
        }
        break;
    case WL_MYSQL_COM_STMT_EXECUTE:
    case WL_MYSQL_COM_STMT_BULK_EXECUTE:
        if (!err && ev->cursor && ev->command == WL_MYSQL_COM_STMT_EXECUTE && cursor_open(t, ev)) break;
        {
            stmt_args a = {.kind = ev->verb, .prepared = 1, .fetches = 1, .rows = ev->rows,
                           .affected = ev->affected_rows, .start = start_of(t, ev), .end = now,
                           .err = err ? ev : NULL};
            report(t, &a);
        }
        break;
    case WL_MYSQL_COM_STMT_FETCH: {
        wl_mysql_cursor *c = cursor_find(t, ev->stmt_id);
        if (!c) break; /* reported at its EXECUTE */
        c->rows += ev->rows;
        c->fetches++;
        if (err || (ev->status_flags & WL_MYSQL_STATUS_LAST_ROW_SENT)) cursor_close(t, c, now);
        break;
    }
    default:
        break;
    }
    t->in_command = 0;
    if (ev->outcome != WL_MYSQL_OUTCOME_NONE) t->last_answer = now;
}

void wl_mysql_tracker_event(wl_mysql_tracker *t, const wl_mysql_event *ev, uint64_t now_ns) {
    switch (ev->type) {
    case WL_MYSQL_EV_COMMAND:
        on_command(t, ev, now_ns);
        break;
    case WL_MYSQL_EV_RESULT:
        on_result(t, ev, now_ns);
        break;
    case WL_MYSQL_EV_COMMAND_DONE:
        on_done(t, ev, now_ns);
        break;
    default:
        break;
    }
}

void wl_mysql_tracker_end(wl_mysql_tracker *t, uint64_t now_ns) { cursors_close_all(t, now_ns); }
