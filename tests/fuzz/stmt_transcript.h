/* Shared by the protocol fuzz targets: the statement trackers' events
 * (filters/protocols/statement.h) serialised into the same transcript as the
 * decoder's, so they too must not depend on how the bytes were cut into reads.
 *
 * Times are left out of the transcript: the harness's clock ticks once per
 * read, so they legitimately change with the splitting. What is checked of
 * them instead holds under every splitting: a timed statement does not end
 * before it starts. */
#ifndef WIRELAB_FUZZ_STMT_TRANSCRIPT_H
#define WIRELAB_FUZZ_STMT_TRANSCRIPT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "split.h"
#include "statement.h"

static void wl_stmt_check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "statement tracker: %s\n", what);
        abort();
    }
}

/* `sql_cap`: the tracker's SQL buffer, which a reported prefix cannot exceed. */
static void wl_t_statement(wl_transcript *t, const wl_stmt_event *e, size_t sql_cap) {
    wl_stmt_check(e->kind_name != NULL, "statement kind without a name");
    wl_stmt_check(memchr(e->sqlstate, 0, sizeof e->sqlstate) != NULL, "sqlstate not NUL-terminated");
    wl_stmt_check(e->sql != NULL || e->sql_len == 0, "sql_len without sql");
    wl_stmt_check(e->sql_len <= sql_cap, "sql_len beyond the tracker's buffer");
    wl_stmt_check(e->fetches >= 1, "a statement without a fetch");
    wl_stmt_check(e->untimed || e->start_ns <= e->end_ns, "a timed statement ends before it starts");
    t->events++;
    uint8_t head[8] = {'S', e->kind, e->failed, e->not_counted, e->prepared, e->has_rows, e->untimed,
                       e->sql_truncated};
    wl_t_put(t, head, sizeof head);
    wl_t_str(t, e->kind_name, strlen(e->kind_name));
    wl_t_put(t, e->sqlstate, strlen(e->sqlstate));
    wl_t_u64(t, e->err_code);
    wl_t_u64(t, e->fetches);
    wl_t_u64(t, e->rows_returned);
    wl_t_u64(t, e->rows_affected);
    wl_t_str(t, e->sql, e->sql_len);
}

static void wl_t_transaction(wl_transcript *t, const wl_txn_event *e) {
    wl_stmt_check(e->outcome == WL_TXN_COMMIT || e->outcome == WL_TXN_ROLLBACK, "unknown outcome");
    t->events++;
    uint8_t head[4] = {'T', e->outcome, e->implicit, 0};
    wl_t_put(t, head, sizeof head);
    wl_t_u64(t, e->statements);
}

#endif
