/* libFuzzer target: the MySQL decoder (filters/protocols/mysql.c) and the
 * statement tracker behind it (mysql_tracker.c, fed every decoder event as
 * the filters do) over a two-direction conversation (split.h gives the input
 * format), so the connection state machine is driven through greeting,
 * login, commands and replies in whatever order the input interleaves them.
 *
 * Checks, beyond "no memory error, no undefined behaviour, no leak":
 *  - the decoder's events and the tracker's statements and transactions do
 *    not depend on how the bytes are cut into reads, nor on fetch windows
 *    shorter than asked for (five replays, transcripts compared byte for
 *    byte; stmt_transcript.h);
 *  - a DECODER_ERROR event is the last event and leaves the decoder inactive;
 *  - text fields never claim more bytes than the packet head holds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysql.h"
#include "mysql_tracker.h"
#include "split.h"
#include "stmt_transcript.h"

typedef struct {
    wl_transcript t;
    int errors;
    int after_error;
    wl_mysql_decoder *dec;
    wl_mysql_tracker *trk;
    uint64_t clock; /* ticks once per read */
} my_run;

static void on_statement(void *user, const wl_stmt_event *e) {
    wl_t_statement(&((my_run *)user)->t, e, WL_MYSQL_TRACKER_SQL);
}

static void on_transaction(void *user, const wl_txn_event *e) { wl_t_transaction(&((my_run *)user)->t, e); }

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "mysql: %s\n", what);
        abort();
    }
}

static void on_event(void *ud, const wl_mysql_event *e) {
    my_run *r = ud;
    wl_transcript *t = &r->t;
    if (r->errors) r->after_error++;
    if (e->type == WL_MYSQL_EV_DECODER_ERROR) r->errors++;
    t->events++;
    check(e->text_len <= e->text_total || e->text == NULL, "text_len > text_total");
    check(e->text_len <= WL_MYSQL_HEAD_MAX || e->text == NULL, "text_len beyond the packet head");
    check(memchr(e->sqlstate, 0, sizeof e->sqlstate) != NULL, "sqlstate not NUL-terminated");
    uint8_t head[8] = {(uint8_t)e->type, (uint8_t)e->dir, e->command, e->verb,
                       e->outcome, e->auth_more, e->cursor, e->is_result_set};
    wl_t_put(t, head, sizeof head);
    wl_t_u64(t, e->change_user);
    wl_t_u64(t, e->cmd_no);
    wl_t_u64(t, e->stmt_id);
    wl_t_u64(t, e->conn_id);
    wl_t_u64(t, e->err_code);
    wl_t_put(t, e->sqlstate, strlen(e->sqlstate));
    wl_t_u64(t, e->status_flags);
    wl_t_u64(t, e->warnings);
    wl_t_u64(t, e->params);
    wl_t_u64(t, e->affected_rows);
    wl_t_u64(t, e->last_insert_id);
    wl_t_u64(t, e->columns);
    wl_t_u64(t, e->rows);
    wl_t_u64(t, e->results);
    wl_t_u64(t, e->capabilities);
    wl_t_str(t, e->text, e->text_len);
    wl_t_u64(t, e->text_total);
    wl_t_str(t, e->user, e->user_len);
    wl_t_str(t, e->database, e->database_len);
    wl_t_str(t, e->auth_plugin, e->auth_plugin_len);
    wl_t_str(t, e->attrs, e->attrs_len);
    if (e->type == WL_MYSQL_EV_COMMAND) {
        const char *name = wl_mysql_command_name(e->command);
        wl_t_str(t, name, name ? strlen(name) : 0);
        const char *verb = wl_mysql_verb_name((wl_mysql_verb)e->verb);
        check(verb != NULL, "verb without a name");
        wl_t_str(t, verb, strlen(verb));
        if (e->text) wl_t_u64(t, (uint64_t)wl_mysql_classify(e->text, e->text_len));
    }
    /* Every event, after it is in the transcript: the tracker's own events follow it. */
    wl_mysql_tracker_event(r->trk, e, r->clock);
}

static void feed(void *ud, wl_dir dir, size_t len, wl_fetch_fn fetch, void *ctx) {
    my_run *r = ud;
    wl_mysql_set_clock(r->dec, ++r->clock);
    wl_mysql_feed(r->dec, dir, len, fetch, ctx);
}

static void run(const wl_chunk *c, size_t count, const wl_pass *pass, uint64_t seed, my_run *r) {
    /* The decoder and the tracker are large structs (pending commands,
     * statements, heads, cursors): on the heap, so ASan sees their bounds. */
    static const wl_stmt_callbacks scb = {on_statement, on_transaction};
    wl_transcript t = r->t; /* its buffer is reused */
    memset(r, 0, sizeof *r);
    r->t = t;
    wl_t_reset(&r->t);
    r->dec = malloc(sizeof *r->dec);
    r->trk = malloc(sizeof *r->trk);
    wl_mysql_init(r->dec, on_event, r);
    wl_mysql_tracker_init(r->trk, &scb, r);
    wl_replay(c, count, pass, seed, feed, r);
    check(r->after_error == 0, "events after a DECODER_ERROR event");
    check(!r->errors || !wl_mysql_active(r->dec), "still active after a DECODER_ERROR event");
    wl_t_u64(&r->t, (uint64_t)wl_mysql_active(r->dec));
    wl_mysql_tracker_end(r->trk, ++r->clock); /* the connection ends: open cursors */
    wl_mysql_release(r->dec); /* the decoder's growable storage (deep pipelines) */
    free(r->trk);
    free(r->dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static wl_chunk chunks[WL_MAX_CHUNKS];
    /* The first pass is the reference and, like the second, hands out heap
     * windows; the others use the arena (split.h). */
    static const wl_pass passes[] = {
        {WL_SPLIT_RUNS, 0, 1, "runs"},
        {WL_SPLIT_CHUNKS, 0, 1, "chunks"},
        {WL_SPLIT_BYTES, 0, 0, "bytes"},
        {WL_SPLIT_RANDOM, 0, 0, "random"},
        {WL_SPLIT_RUNS, 7, 0, "runs, 7-byte fetch windows"},
    };
    static my_run base, other; /* static: their transcripts' buffers are reused */
    size_t count = wl_parse_chunks(data, size, chunks);
    uint64_t seed = wl_fnv1a(data, size);
    run(chunks, count, &passes[0], seed, &base);
    for (size_t i = 1; i < sizeof passes / sizeof passes[0]; i++) {
        run(chunks, count, &passes[i], seed, &other);
        if (!wl_t_same(&base.t, &other.t)) wl_transcript_mismatch("mysql", passes[i].name, &base.t, &other.t);
    }
    return 0;
}
