/* Native harness for the PostgreSQL decoder and statement tracker: feeds
 * recorded reads through a memory-backed wl_fetch_fn and prints one line per
 * decoder event, and one line ("T stmt ...", "T txn ...") per statement and
 * transaction the tracker reports (with a constant clock: no latencies).
 *
 * Input on stdin: records of [dir: 1 byte, 0 client / 1 server]
 * [length: 4 bytes big-endian][bytes]. Argument: "asis" (one feed per record),
 * "split=N" (every record fed in N-byte pieces) or "seed=S" (random pieces).
 * Built with gcc -fsanitize=address,undefined by tests/unit/test_postgres_native.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "postgres.h"
#include "postgres_tracker.h"

static wl_pg_tracker trk;

static void on_stmt(void *user, const wl_stmt_event *e) {
    (void)user;
    printf("T stmt kind=%s failed=%d sqlstate=%s prepared=%d returned=%llu affected=%llu "
           "fetches=%u untimed=%d sql_len=%zu\n", e->kind_name, e->failed, e->sqlstate, e->prepared,
           (unsigned long long)e->rows_returned, (unsigned long long)e->rows_affected, e->fetches,
           e->untimed, e->sql_len);
}

static void on_txn(void *user, const wl_txn_event *e) {
    (void)user;
    printf("T txn outcome=%d implicit=%d statements=%u\n", e->outcome, e->implicit, e->statements);
}

static const wl_stmt_callbacks stmt_cb = {on_stmt, on_txn};

typedef struct {
    const uint8_t *data;
    size_t len;
    size_t fetches;
} mem;

static const uint8_t *mem_fetch(void *ctx, size_t off, size_t want, size_t *got) {
    mem *m = ctx;
    m->fetches++;
    if (off >= m->len) {
        *got = 0;
        return NULL;
    }
    size_t n = m->len - off;
    *got = n < want ? n : want;
    return m->data + off;
}

static void pstr(const char *label, wl_pg_str s) {
    printf(" %s=", label);
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c >= 32 && c < 127 && c != '\\') putchar(c);
        else printf("\\x%02x", c);
    }
}

static void on_event(void *user, const wl_pg_event *e) {
    (void)user;
    printf("%c ", e->dir == WL_DIR_CLIENT ? 'C' : 'S');
    switch (e->kind) {
    case WL_PG_EV_STARTUP:
        printf("startup v=%u", e->u.startup.version);
        pstr("user", e->u.startup.user);
        pstr("database", e->u.startup.database);
        pstr("app", e->u.startup.application_name);
        break;
    case WL_PG_EV_SSL_REQUEST: printf("ssl_request"); break;
    case WL_PG_EV_GSSENC_REQUEST: printf("gssenc_request"); break;
    case WL_PG_EV_CANCEL_REQUEST: printf("cancel pid=%u", e->u.cancel.pid); break;
    case WL_PG_EV_ENCRYPTION_RESPONSE:
        printf("encryption_response %c for %c", e->u.encryption.answer, e->u.encryption.requested);
        break;
    case WL_PG_EV_DIRECT_TLS: printf("direct_tls"); break;
    case WL_PG_EV_ERROR:
        printf("error code=%d type=%d length=%u", e->u.error.code, e->type, e->length);
        break;
    case WL_PG_EV_MESSAGE:
        printf("%c len=%u", e->type, e->length);
        if (e->dir == WL_DIR_CLIENT) {
            switch (e->type) {
            case 'Q': pstr("sql", e->u.query.sql); printf(" trunc=%d", e->u.query.sql_truncated); break;
            case 'P':
                pstr("name", e->u.query.name);
                pstr("sql", e->u.query.sql);
                printf(" trunc=%d", e->u.query.sql_truncated);
                break;
            case 'B': pstr("portal", e->u.bind.portal); pstr("stmt", e->u.bind.statement); break;
            case 'E': pstr("portal", e->u.execute.portal); printf(" max=%u", e->u.execute.max_rows); break;
            case 'D': case 'C': printf(" what=%c", e->u.target.what); pstr("name", e->u.target.name); break;
            case 'F': printf(" oid=%u", e->u.function_call.oid); break;
            case 'p': pstr("mech", e->u.auth_response.mechanism); break;
            default: break;
            }
        } else {
            switch (e->type) {
            case 'R': printf(" code=%u", e->u.auth.code); pstr("mech", e->u.auth.mechanism); break;
            case 'C':
                pstr("tag", e->u.cc.tag);
                printf(" kind=%s rows=%d:%llu", wl_pg_cmd_name(e->u.cc.kind), e->u.cc.has_rows,
                       (unsigned long long)e->u.cc.rows);
                break;
            case 'E': case 'N':
                pstr("sev", e->u.notice.severity);
                printf(" sqlstate=%s", e->u.notice.sqlstate);
                break;
            case 'Z': printf(" status=%c", e->u.ready.status); break;
            case 'S': pstr("name", e->u.param.name); pstr("value", e->u.param.value); break;
            case 'K': printf(" pid=%u", e->u.key.pid); break;
            case 'G': case 'H': case 'W': printf(" fmt=%u cols=%u", e->u.copy.format, e->u.copy.columns); break;
            case 'A': printf(" pid=%u", e->u.notification.pid); pstr("channel", e->u.notification.channel); break;
            case 'v': printf(" minor=%u", e->u.negotiate.newest_minor); break;
            default: break;
            }
        }
        break;
    }
    putchar('\n');
    wl_pgt_event(&trk, e, 0);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(int argc, char **argv) {
    size_t split = 0;
    int random = 0;
    if (argc > 1 && strncmp(argv[1], "split=", 6) == 0) split = (size_t)atol(argv[1] + 6);
    if (argc > 1 && strncmp(argv[1], "seed=", 5) == 0) {
        random = 1;
        rng ^= (uint64_t)atoll(argv[1] + 5) * 2654435761ull;
    }
    static uint8_t buf[1 << 24];
    size_t total = fread(buf, 1, sizeof buf, stdin);
    wl_pg_callbacks cb = {on_event};
    wl_pg_decoder d;
    wl_pg_init(&d, &cb, NULL);
    wl_pgt_init(&trk, &stmt_cb, NULL);
    size_t fetches = 0, feeds = 0;
    size_t i = 0;
    while (i + 5 <= total) {
        wl_dir dir = buf[i] ? WL_DIR_SERVER : WL_DIR_CLIENT;
        size_t n = wl_be32(buf + i + 1);
        i += 5;
        if (n > total - i) n = total - i;
        size_t at = 0;
        while (at < n) {
            size_t piece = n - at;
            if (split && piece > split) piece = split;
            if (random) {
                size_t r = (size_t)(next_rand() % 64) + 1;
                if (next_rand() % 4 == 0) r = (size_t)(next_rand() % 9000) + 1;
                if (piece > r) piece = r;
            }
            /* A private copy, so reads past the piece are caught by ASan. */
            uint8_t *copy = malloc(piece ? piece : 1);
            memcpy(copy, buf + i + at, piece);
            mem m = {copy, piece, 0};
            wl_pg_feed(&d, dir, piece, mem_fetch, &m);
            fetches += m.fetches;
            feeds++;
            free(copy);
            at += piece;
        }
        i += n;
    }
    wl_pgt_close(&trk, 0);
    fprintf(stderr, "feeds=%zu fetches=%zu\n", feeds, fetches);
    return 0;
}
