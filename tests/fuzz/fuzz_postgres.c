/* libFuzzer target: the PostgreSQL decoder (filters/protocols/postgres.c)
 * and the statement tracker behind it (postgres_tracker.c, fed every decoder
 * event as the filters do) over a two-direction conversation (split.h gives
 * the input format).
 *
 * Checks, beyond "no memory error, no undefined behaviour":
 *  - the decoder's events and the tracker's statements and transactions do
 *    not depend on how the bytes are cut into reads (four splittings,
 *    transcripts compared byte for byte; stmt_transcript.h);
 *  - an ERROR event is the last event: after malformed traffic the decoder
 *    stops instead of guessing, and reports itself inactive. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres.h"
#include "postgres_tracker.h"
#include "split.h"
#include "stmt_transcript.h"

typedef struct {
    wl_transcript t;
    int errors;
    int after_error; /* events after an ERROR */
    wl_pg_decoder dec;
    wl_pg_tracker *trk; /* on the heap, so ASan sees its bounds */
    uint64_t clock;     /* ticks once per read */
} pg_run;

static void on_statement(void *user, const wl_stmt_event *e) {
    wl_t_statement(&((pg_run *)user)->t, e, WL_PGT_SQL);
}

static void on_transaction(void *user, const wl_txn_event *e) { wl_t_transaction(&((pg_run *)user)->t, e); }

static void put_str(wl_transcript *t, wl_pg_str s) { wl_t_str(t, s.ptr, s.len); }

static void on_event(void *user, const wl_pg_event *e) {
    pg_run *r = user;
    wl_transcript *t = &r->t;
    if (r->errors) r->after_error++;
    t->events++;
    uint8_t head[4] = {(uint8_t)e->kind, (uint8_t)e->dir, e->type, 0};
    wl_t_put(t, head, sizeof head);
    wl_t_u64(t, e->length);
    wl_t_u64(t, e->size);
    switch (e->kind) {
    case WL_PG_EV_STARTUP:
        wl_t_u64(t, e->u.startup.version);
        put_str(t, e->u.startup.user);
        put_str(t, e->u.startup.database);
        put_str(t, e->u.startup.application_name);
        break;
    case WL_PG_EV_CANCEL_REQUEST:
        wl_t_u64(t, e->u.cancel.pid);
        wl_t_u64(t, e->u.cancel.key);
        break;
    case WL_PG_EV_ENCRYPTION_RESPONSE:
        wl_t_u64(t, e->u.encryption.answer);
        wl_t_u64(t, e->u.encryption.requested);
        break;
    case WL_PG_EV_ERROR:
        r->errors++;
        wl_t_u64(t, (uint64_t)e->u.error.code);
        break;
    case WL_PG_EV_MESSAGE:
        if (e->dir == WL_DIR_CLIENT) {
            switch (e->type) {
            case 'Q':
            case 'P':
                put_str(t, e->u.query.name);
                put_str(t, e->u.query.sql);
                wl_t_u64(t, e->u.query.sql_truncated);
                break;
            case 'B':
                put_str(t, e->u.bind.portal);
                put_str(t, e->u.bind.statement);
                break;
            case 'E':
                put_str(t, e->u.execute.portal);
                wl_t_u64(t, e->u.execute.max_rows);
                break;
            case 'D':
            case 'C':
                wl_t_u64(t, e->u.target.what);
                put_str(t, e->u.target.name);
                break;
            case 'F': wl_t_u64(t, e->u.function_call.oid); break;
            case 'p': put_str(t, e->u.auth_response.mechanism); break;
            default: break;
            }
        } else {
            switch (e->type) {
            case 'R':
                wl_t_u64(t, e->u.auth.code);
                put_str(t, e->u.auth.mechanism);
                break;
            case 'C':
                put_str(t, e->u.cc.tag);
                put_str(t, e->u.cc.verb);
                wl_t_u64(t, (uint64_t)e->u.cc.kind);
                wl_t_u64(t, e->u.cc.has_rows);
                wl_t_u64(t, e->u.cc.rows);
                /* The kind name must exist for every kind reported. */
                wl_t_str(t, wl_pg_cmd_name(e->u.cc.kind), strlen(wl_pg_cmd_name(e->u.cc.kind)));
                break;
            case 'E':
            case 'N':
                put_str(t, e->u.notice.severity);
                if (memchr(e->u.notice.sqlstate, 0, sizeof e->u.notice.sqlstate) == NULL) abort();
                wl_t_put(t, e->u.notice.sqlstate, strlen(e->u.notice.sqlstate));
                break;
            case 'Z': wl_t_u64(t, e->u.ready.status); break;
            case 'S':
                put_str(t, e->u.param.name);
                put_str(t, e->u.param.value);
                break;
            case 'K':
                wl_t_u64(t, e->u.key.pid);
                wl_t_u64(t, e->u.key.key);
                break;
            case 'G':
            case 'H':
            case 'W':
                wl_t_u64(t, e->u.copy.format);
                wl_t_u64(t, e->u.copy.columns);
                break;
            case 'A':
                wl_t_u64(t, e->u.notification.pid);
                put_str(t, e->u.notification.channel);
                break;
            case 'v':
                wl_t_u64(t, e->u.negotiate.newest_minor);
                wl_t_u64(t, e->u.negotiate.unrecognized);
                break;
            default: break;
            }
        }
        break;
    default: break;
    }
    /* The SQL keyword helpers run on every SQL prefix the decoder reports. */
    if (e->kind == WL_PG_EV_MESSAGE && e->dir == WL_DIR_CLIENT && (e->type == 'Q' || e->type == 'P')) {
        const char *kw = NULL;
        size_t n = wl_pg_sql_keyword(e->u.query.sql.ptr, e->u.query.sql.len, &kw);
        if (n) wl_t_str(t, kw, n);
        wl_t_u64(t, (uint64_t)wl_pg_cmd_from_sql(e->u.query.sql.ptr, e->u.query.sql.len));
    }
    /* Every event, after it is in the transcript: the tracker's own events follow it. */
    wl_pgt_event(r->trk, e, r->clock);
}

static void feed(void *ud, wl_dir dir, size_t len, wl_fetch_fn fetch, void *ctx) {
    pg_run *r = ud;
    r->clock++;
    wl_pg_feed(&r->dec, dir, len, fetch, ctx);
}

static void run(const wl_chunk *c, size_t count, const wl_pass *pass, uint64_t seed, pg_run *r) {
    static const wl_pg_callbacks cb = {on_event};
    static const wl_stmt_callbacks scb = {on_statement, on_transaction};
    wl_transcript t = r->t; /* its buffer is reused */
    memset(r, 0, sizeof *r);
    r->t = t;
    wl_t_reset(&r->t);
    r->trk = malloc(sizeof *r->trk);
    wl_pg_init(&r->dec, &cb, r);
    wl_pgt_init(r->trk, &scb, r);
    wl_replay(c, count, pass, seed, feed, r);
    if (r->after_error) {
        fprintf(stderr, "postgres: %d events after an ERROR event\n", r->after_error);
        abort();
    }
    if (r->errors && wl_pg_active(&r->dec)) {
        fprintf(stderr, "postgres: still active after an ERROR event\n");
        abort();
    }
    wl_t_u64(&r->t, (uint64_t)wl_pg_active(&r->dec));
    wl_pgt_close(r->trk, ++r->clock); /* the connection ends: open transaction and portals */
    free(r->trk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static wl_chunk chunks[WL_MAX_CHUNKS];
    /* The first pass is the reference and, like the second, hands out heap
     * windows; the byte-by-byte and random passes use the arena (split.h). */
    static const wl_pass passes[] = {
        {WL_SPLIT_RUNS, 0, 1, "runs"},
        {WL_SPLIT_CHUNKS, 0, 1, "chunks"},
        {WL_SPLIT_BYTES, 0, 0, "bytes"},
        {WL_SPLIT_RANDOM, 0, 0, "random"},
    };
    static pg_run base, other; /* static: their transcripts' buffers are reused */
    size_t count = wl_parse_chunks(data, size, chunks);
    uint64_t seed = wl_fnv1a(data, size);
    run(chunks, count, &passes[0], seed, &base);
    for (size_t i = 1; i < sizeof passes / sizeof passes[0]; i++) {
        run(chunks, count, &passes[i], seed, &other);
        if (!wl_t_same(&base.t, &other.t))
            wl_transcript_mismatch("postgres", passes[i].name, &base.t, &other.t);
    }
    return 0;
}
