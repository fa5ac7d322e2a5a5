/* PostgreSQL protocol 3.x decoder. See postgres.h for the contract. */
#include "postgres.h"

#include <string.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* ---- small helpers --------------------------------------------------------- */

/* Length of the NUL-terminated string at `p`, looking at `cap` bytes at most
 * (`cap` when there is no NUL). Eight bytes per step: this runs over every SQL
 * text and name on the wire, and the Wasm libc's memchr takes four at a time
 * behind a call. */
static inline uint32_t cstrlen(const uint8_t *p, uint32_t cap, int *terminated) {
    uint32_t i = 0;
    while (cap - i >= 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull) break; /* a zero byte */
        i += 8;
    }
    while (i < cap && p[i]) i++;
    if (terminated) *terminated = i < cap;
    return i;
}

static wl_pg_str mkstr(const uint8_t *p, uint32_t len) {
    wl_pg_str s;
    s.ptr = (const char *)p;
    s.len = len;
    return s;
}

static int ieq(const char *a, size_t alen, const char *lit) {
    size_t n = strlen(lit);
    if (alen != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 32);
        if (c != lit[i]) return 0;
    }
    return 1;
}

static void emit(wl_pg_decoder *d, wl_pg_event *ev) {
    if (d->cb && d->cb->on_event) d->cb->on_event(d->user, ev);
}

static void fail(wl_pg_decoder *d, wl_dir dir, uint8_t type, uint32_t length, wl_pg_error_code code) {
    wl_pg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = WL_PG_EV_ERROR;
    ev.dir = dir;
    ev.type = type;
    ev.length = length;
    ev.u.error.code = code;
    d->stopped = 1;
    emit(d, &ev);
}

/* ---- statement kinds ------------------------------------------------------- */

static const char *const cmd_names[WL_PG_CMD__COUNT] = {
    "other", "select", "insert", "update", "delete", "merge", "copy", "fetch",
    "move", "begin", "commit", "rollback", "savepoint", "ddl", "prepared_txn",
};

const char *wl_pg_cmd_name(wl_pg_cmd cmd) {
    return (unsigned)cmd < WL_PG_CMD__COUNT ? cmd_names[cmd] : "other";
}

/* Up to 8 bytes, ASCII letters upper-cased, packed big-endian into one word:
 * a verb is then one integer compare. Words of different lengths never
 * collide, as every verb starts with a letter (a non-zero top byte). */
static uint64_t pack_upper(const char *s, size_t n) {
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        w = (w << 8) | (uint8_t)(c - ((uint8_t)(c - 'a') < 26u ? 32 : 0));
    }
    return w;
}

#define W2(a, b) (((uint64_t)(a) << 8) | (uint64_t)(b))
#define W3(a, b, c) ((W2(a, b) << 8) | (uint64_t)(c))
#define W4(a, b, c, d) ((W3(a, b, c) << 8) | (uint64_t)(d))
#define W5(a, b, c, d, e) ((W4(a, b, c, d) << 8) | (uint64_t)(e))
#define W6(a, b, c, d, e, f) ((W5(a, b, c, d, e) << 8) | (uint64_t)(f))
#define W7(a, b, c, d, e, f, g) ((W6(a, b, c, d, e, f) << 8) | (uint64_t)(g))
#define W8(a, b, c, d, e, f, g, h) ((W7(a, b, c, d, e, f, g) << 8) | (uint64_t)(h))

wl_pg_cmd wl_pg_cmd_from_verb(const char *v, size_t n) {
    if (n == 9) /* SAVEPOINT, the only verb longer than a word */
        return pack_upper(v, 8) == W8('S', 'A', 'V', 'E', 'P', 'O', 'I', 'N') &&
                       (v[8] == 'T' || v[8] == 't')
                   ? WL_PG_CMD_SAVEPOINT
                   : WL_PG_CMD_OTHER;
    if (n < 3 || n > 8) return WL_PG_CMD_OTHER;
    switch (pack_upper(v, n)) {
    case W6('S', 'E', 'L', 'E', 'C', 'T'): return WL_PG_CMD_SELECT;
    case W6('I', 'N', 'S', 'E', 'R', 'T'): return WL_PG_CMD_INSERT;
    case W6('U', 'P', 'D', 'A', 'T', 'E'): return WL_PG_CMD_UPDATE;
    case W6('D', 'E', 'L', 'E', 'T', 'E'): return WL_PG_CMD_DELETE;
    case W5('M', 'E', 'R', 'G', 'E'): return WL_PG_CMD_MERGE;
    case W4('C', 'O', 'P', 'Y'): return WL_PG_CMD_COPY;
    case W5('F', 'E', 'T', 'C', 'H'): return WL_PG_CMD_FETCH;
    case W4('M', 'O', 'V', 'E'): return WL_PG_CMD_MOVE;
    case W5('B', 'E', 'G', 'I', 'N'):
    case W5('S', 'T', 'A', 'R', 'T'): return WL_PG_CMD_BEGIN;
    case W6('C', 'O', 'M', 'M', 'I', 'T'):
    case W3('E', 'N', 'D'): return WL_PG_CMD_COMMIT;
    case W8('R', 'O', 'L', 'L', 'B', 'A', 'C', 'K'):
    case W5('A', 'B', 'O', 'R', 'T'): return WL_PG_CMD_ROLLBACK;
    case W7('R', 'E', 'L', 'E', 'A', 'S', 'E'): return WL_PG_CMD_SAVEPOINT;
    case W6('C', 'R', 'E', 'A', 'T', 'E'):
    case W5('A', 'L', 'T', 'E', 'R'):
    case W4('D', 'R', 'O', 'P'):
    case W8('T', 'R', 'U', 'N', 'C', 'A', 'T', 'E'):
    case W7('C', 'O', 'M', 'M', 'E', 'N', 'T'):
    case W5('G', 'R', 'A', 'N', 'T'):
    case W6('R', 'E', 'V', 'O', 'K', 'E'): return WL_PG_CMD_DDL;
    case W4('W', 'I', 'T', 'H'):
    case W5('T', 'A', 'B', 'L', 'E'):
    case W6('V', 'A', 'L', 'U', 'E', 'S'): return WL_PG_CMD_SELECT;
    default: return WL_PG_CMD_OTHER;
    }
}

/* Classifies a whole CommandComplete tag (two-word tags included). */
static wl_pg_cmd cmd_from_tag(const char *tag, size_t len, size_t verb_len) {
    wl_pg_cmd kind = wl_pg_cmd_from_verb(tag, verb_len);
    /* COMMIT PREPARED, ROLLBACK PREPARED, PREPARE TRANSACTION */
    int two_words = kind == WL_PG_CMD_COMMIT || kind == WL_PG_CMD_ROLLBACK ||
                    (kind == WL_PG_CMD_OTHER && verb_len == 7);
    if (two_words && verb_len < len) {
        const char *rest = tag + verb_len + 1;
        size_t rlen = len - verb_len - 1;
        size_t w = 0;
        while (w < rlen && rest[w] != ' ') w++;
        if (kind == WL_PG_CMD_OTHER ? ieq(tag, verb_len, "PREPARE") && ieq(rest, w, "TRANSACTION")
                                    : ieq(rest, w, "PREPARED"))
            return WL_PG_CMD_PREPARED_TXN;
    }
    return kind;
}

size_t wl_pg_sql_keyword(const char *s, size_t n, const char **kw) {
    size_t i = 0;
    for (;;) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r' ||
                         s[i] == '(' || s[i] == ';'))
            i++;
        if (i + 1 < n && s[i] == '-' && s[i + 1] == '-') {
            while (i < n && s[i] != '\n') i++;
            continue;
        }
        if (i + 1 < n && s[i] == '/' && s[i + 1] == '*') {
            i += 2;
            while (i + 1 < n && !(s[i] == '*' && s[i + 1] == '/')) i++;
            i += 2;
            continue;
        }
        break;
    }
    size_t j = i;
    while (j < n && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z'))) j++;
    *kw = s + (i < n ? i : n);
    return j > i ? j - i : 0;
}

wl_pg_cmd wl_pg_cmd_from_sql(const char *s, size_t n) {
    const char *kw = 0;
    size_t len = wl_pg_sql_keyword(s, n, &kw);
    return len ? wl_pg_cmd_from_verb(kw, len) : WL_PG_CMD_OTHER;
}

/* ---- per-type rules ---------------------------------------------------------- */

/* What a typed message must look like and how much of its body the decoder
 * reads. One table lookup per header instead of two switches: this runs for
 * every message on the wire. */
typedef struct {
    uint8_t known; /* a valid type byte in this direction */
    uint8_t exact; /* 1: the length field must equal `len`; 0: be at least `len` */
    uint16_t len;
    uint16_t want; /* body bytes the field decoding needs (capped by the body) */
} pg_rule;

#define AT_LEAST(n, w) {1, 0, (n), (w)}
#define EXACTLY(n, w) {1, 1, (n), (w)}

static const pg_rule client_rules[256] = {
    ['Q'] = AT_LEAST(5, WL_PG_SQL_PREFIX + 1),
    ['P'] = AT_LEAST(8, WL_PG_NAME_PREFIX + 2 + WL_PG_SQL_PREFIX),
    ['B'] = AT_LEAST(12, 2 * WL_PG_NAME_PREFIX),
    ['E'] = AT_LEAST(9, WL_PG_NAME_PREFIX + 4),
    ['D'] = AT_LEAST(6, 1 + WL_PG_NAME_PREFIX),
    ['C'] = AT_LEAST(6, 1 + WL_PG_NAME_PREFIX),
    ['S'] = EXACTLY(4, 0),
    ['H'] = EXACTLY(4, 0),
    ['X'] = EXACTLY(4, 0),
    ['c'] = EXACTLY(4, 0),
    ['d'] = AT_LEAST(4, 0),
    ['f'] = AT_LEAST(5, 0),
    ['F'] = AT_LEAST(14, 4),
    ['p'] = AT_LEAST(4, 32),
};

static const pg_rule server_rules[256] = {
    ['R'] = AT_LEAST(8, 64),
    ['K'] = AT_LEAST(12, 8),
    ['1'] = EXACTLY(4, 0),
    ['2'] = EXACTLY(4, 0),
    ['3'] = EXACTLY(4, 0),
    ['n'] = EXACTLY(4, 0),
    ['I'] = EXACTLY(4, 0),
    ['s'] = EXACTLY(4, 0),
    ['c'] = EXACTLY(4, 0),
    ['C'] = AT_LEAST(5, 64),
    ['d'] = AT_LEAST(4, 0),
    ['G'] = AT_LEAST(7, 3),
    ['H'] = AT_LEAST(7, 3),
    ['W'] = AT_LEAST(7, 3),
    ['D'] = AT_LEAST(6, 0),
    ['E'] = AT_LEAST(5, 256),
    ['N'] = AT_LEAST(5, 256),
    ['V'] = AT_LEAST(8, 0),
    ['v'] = AT_LEAST(12, 8),
    ['A'] = AT_LEAST(10, 4 + 128),
    ['t'] = AT_LEAST(6, 0),
    ['S'] = AT_LEAST(6, 256),
    ['Z'] = EXACTLY(5, 1),
    ['T'] = AT_LEAST(6, 0),
};

/* Checks a typed header; returns the body prefix to decode, or -(error code). */
static inline int64_t typed_header(wl_dir dir, uint8_t t, uint32_t length) {
    const pg_rule *r = dir == WL_DIR_CLIENT ? &client_rules[t] : &server_rules[t];
    if (length < 4 || length > WL_PG_MAX_MESSAGE) return -(int64_t)WL_PG_ERR_BAD_LENGTH;
    if (!r->known) return -(int64_t)WL_PG_ERR_UNKNOWN_TYPE;
    if (r->exact ? length != r->len : length < r->len) return -(int64_t)WL_PG_ERR_BAD_LENGTH;
    uint32_t body = length - 4;
    return r->want < body ? r->want : body;
}

/* ---- message decoding ------------------------------------------------------- */

static void decode_startup(wl_pg_decoder *d, wl_pg_event *ev, const uint8_t *b, uint32_t n) {
    uint32_t i = 0;
    (void)d;
    while (i < n && b[i] != 0) {
        int t1 = 0, t2 = 0;
        uint32_t kl = cstrlen(b + i, n - i, &t1);
        if (!t1) break;
        const uint8_t *k = b + i;
        i += kl + 1;
        if (i >= n) break;
        uint32_t vl = cstrlen(b + i, n - i, &t2);
        const uint8_t *v = b + i;
        if (ieq((const char *)k, kl, "USER")) ev->u.startup.user = mkstr(v, vl);
        else if (ieq((const char *)k, kl, "DATABASE")) ev->u.startup.database = mkstr(v, vl);
        else if (ieq((const char *)k, kl, "APPLICATION_NAME"))
            ev->u.startup.application_name = mkstr(v, vl);
        if (!t2) break;
        i += vl + 1;
    }
}

/* Decodes the fields of ErrorResponse/NoticeResponse from a body prefix. */
static int decode_notice(wl_pg_event *ev, const uint8_t *b, uint32_t n, int whole) {
    uint32_t i = 0;
    wl_pg_str sev_s = {0, 0}, sev_v = {0, 0};
    while (i < n) {
        uint8_t f = b[i++];
        if (f == 0) break;
        if (i >= n) break;
        int term = 0;
        uint32_t l = cstrlen(b + i, n - i, &term);
        if (f == 'S') sev_s = mkstr(b + i, l);
        else if (f == 'V') sev_v = mkstr(b + i, l);
        else if (f == 'C' && term) {
            uint32_t c = MIN(l, 5u);
            memcpy(ev->u.notice.sqlstate, b + i, c);
            ev->u.notice.sqlstate[c] = 0;
        }
        if (!term) {
            if (whole) return -1;
            break;
        }
        i += l + 1;
    }
    ev->u.notice.severity = sev_v.ptr ? sev_v : sev_s;
    return 0;
}

static void decode_cc(wl_pg_event *ev, const uint8_t *b, uint32_t n) {
    uint32_t len = cstrlen(b, n, 0);
    const char *tag = (const char *)b;
    uint32_t v = 0;
    while (v < len && tag[v] != ' ') v++;
    ev->u.cc.tag = mkstr(b, len);
    ev->u.cc.verb = mkstr(b, v);
    ev->u.cc.kind = cmd_from_tag(tag, len, v);
    if (v < len) {
        uint32_t s = len;
        while (s > 0 && tag[s - 1] != ' ') s--;
        if (s < len && len - s <= 20) {
            uint64_t rows = 0;
            uint32_t k;
            for (k = s; k < len && tag[k] >= '0' && tag[k] <= '9'; k++)
                rows = rows * 10 + (uint64_t)(tag[k] - '0');
            if (k == len) {
                ev->u.cc.has_rows = 1;
                ev->u.cc.rows = rows;
            }
        }
    }
}

/* Decodes an untyped startup-phase message (8-byte header at `m`, then `need`
 * body bytes) and emits its event. */
static void deliver_untyped(wl_pg_decoder *d, wl_dir dir, const uint8_t *m, uint32_t need) {
    wl_pg_side *s = &d->side[dir];
    const uint8_t *b = m + 8;
    wl_pg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.dir = dir;
    ev.length = s->length;
    uint32_t code = wl_be32(m + 4);
    ev.size = s->length;
    if (code == WL_PG_CODE_SSL || code == WL_PG_CODE_GSSENC) {
        ev.kind = code == WL_PG_CODE_SSL ? WL_PG_EV_SSL_REQUEST : WL_PG_EV_GSSENC_REQUEST;
        d->answer_for = code == WL_PG_CODE_SSL ? 'S' : 'G';
        d->side[WL_DIR_SERVER].mode = WL_PG_MODE_ANSWER;
        emit(d, &ev);
    } else if (code == WL_PG_CODE_CANCEL) {
        ev.kind = WL_PG_EV_CANCEL_REQUEST;
        ev.u.cancel.pid = wl_be32(b);
        ev.u.cancel.key = wl_be32(b + 4);
        emit(d, &ev);
        d->stopped = 1; /* nothing else follows on a cancel connection */
    } else {
        ev.kind = WL_PG_EV_STARTUP;
        ev.u.startup.version = code;
        decode_startup(d, &ev, b, need);
        s->mode = WL_PG_MODE_TYPED;
        emit(d, &ev);
    }
}

/* Decodes a typed message whose body starts at `b` (`need` of its bytes are
 * there) and emits its event. `u` is zeroed only for types that have fields:
 * the message types without any (DataRow, RowDescription, Sync, ...) are most
 * of the traffic, and the consumers never read `u` for them. */
static void deliver_typed(wl_pg_decoder *d, wl_dir dir, const uint8_t *b, uint32_t need) {
    wl_pg_side *s = &d->side[dir];
    uint32_t body = s->length - 4;
    int whole = need == body;
    wl_pg_event ev;
    ev.kind = WL_PG_EV_MESSAGE;
    ev.dir = dir;
    ev.type = s->type;
    ev.length = s->length;
    ev.size = s->length + 1;
    if (need == 0 && s->type != 'p') {
        emit(d, &ev);
        return;
    }
    memset(&ev.u, 0, sizeof ev.u);
    if (dir == WL_DIR_CLIENT) {
        switch (s->type) {
        case 'Q': {
            int term = 0;
            uint32_t l = cstrlen(b, need, &term);
            if (whole && !term) goto malformed;
            ev.u.query.sql = mkstr(b, MIN(l, (uint32_t)WL_PG_SQL_PREFIX));
            ev.u.query.sql_truncated = l > WL_PG_SQL_PREFIX || !term;
            break;
        }
        case 'P': {
            int t1 = 0, t2 = 0;
            uint32_t nl = cstrlen(b, need, &t1);
            if (!t1) {
                if (whole) goto malformed;
                ev.u.query.name = mkstr(b, nl);
                ev.u.query.sql_truncated = 1;
                break;
            }
            ev.u.query.name = mkstr(b, nl);
            uint32_t at = nl + 1;
            uint32_t l = cstrlen(b + at, need - at, &t2);
            if (whole && !t2) goto malformed;
            ev.u.query.sql = mkstr(b + at, MIN(l, (uint32_t)WL_PG_SQL_PREFIX));
            ev.u.query.sql_truncated = l > WL_PG_SQL_PREFIX || !t2;
            break;
        }
        case 'B': {
            int t1 = 0;
            uint32_t pl = cstrlen(b, need, &t1);
            ev.u.bind.portal = mkstr(b, pl);
            if (t1 && pl + 1 < need)
                ev.u.bind.statement = mkstr(b + pl + 1, cstrlen(b + pl + 1, need - pl - 1, 0));
            else if (whole)
                goto malformed;
            break;
        }
        case 'E': {
            int t1 = 0;
            uint32_t pl = cstrlen(b, need, &t1);
            ev.u.execute.portal = mkstr(b, pl);
            if (t1 && pl + 5 <= need) ev.u.execute.max_rows = wl_be32(b + pl + 1);
            else if (whole) goto malformed;
            break;
        }
        case 'D':
        case 'C': {
            ev.u.target.what = b[0];
            if (b[0] != 'S' && b[0] != 'P') goto malformed;
            ev.u.target.name = mkstr(b + 1, cstrlen(b + 1, need - 1, 0));
            break;
        }
        case 'F':
            ev.u.function_call.oid = wl_be32(b);
            break;
        case 'p':
            if (d->sasl) {
                d->sasl = 0;
                ev.u.auth_response.mechanism = mkstr(b, cstrlen(b, need, 0));
            }
            break;
        default:
            break;
        }
    } else {
        switch (s->type) {
        case 'R':
            ev.u.auth.code = wl_be32(b);
            if (ev.u.auth.code == 10) {
                d->sasl = 1;
                ev.u.auth.mechanism = mkstr(b + 4, cstrlen(b + 4, need - 4, 0));
            }
            break;
        case 'K':
            ev.u.key.pid = wl_be32(b);
            ev.u.key.key = wl_be32(b + 4);
            break;
        case 'C':
            if (whole && b[body - 1] != 0) goto malformed;
            decode_cc(&ev, b, need);
            break;
        case 'G':
        case 'H':
        case 'W':
            ev.u.copy.format = b[0];
            ev.u.copy.columns = wl_be16(b + 1);
            break;
        case 'E':
        case 'N':
            if (decode_notice(&ev, b, need, whole) != 0) goto malformed;
            break;
        case 'Z':
            if (b[0] != 'I' && b[0] != 'T' && b[0] != 'E') goto malformed;
            ev.u.ready.status = b[0];
            break;
        case 'S': {
            int t1 = 0;
            uint32_t nl = cstrlen(b, need, &t1);
            ev.u.param.name = mkstr(b, nl);
            if (t1 && nl + 1 < need)
                ev.u.param.value = mkstr(b + nl + 1, cstrlen(b + nl + 1, need - nl - 1, 0));
            break;
        }
        case 'A':
            ev.u.notification.pid = wl_be32(b);
            ev.u.notification.channel = mkstr(b + 4, cstrlen(b + 4, need - 4, 0));
            break;
        case 'v':
            ev.u.negotiate.newest_minor = wl_be32(b);
            ev.u.negotiate.unrecognized = wl_be32(b + 4);
            break;
        default:
            break;
        }
    }
    emit(d, &ev);
    return;
malformed:
    fail(d, dir, s->type, s->length, WL_PG_ERR_MALFORMED);
}

/* A message whose header (`hdr` bytes at `m`) and `need` body bytes are at hand. */
static void deliver(wl_pg_decoder *d, wl_dir dir, const uint8_t *m, uint32_t hdr, uint32_t need) {
    if (hdr == 8) deliver_untyped(d, dir, m, need);
    else deliver_typed(d, dir, m + hdr, need);
}

/* Reads a header at `h` (hdr bytes); sets type/length and returns the body
 * prefix to collect, or -1 when the decoder stopped. */
static int64_t parse_header(wl_pg_decoder *d, wl_dir dir, const uint8_t *h, uint32_t hdr) {
    wl_pg_side *s = &d->side[dir];
    if (hdr == 8) {
        uint32_t length = wl_be32(h), code = wl_be32(h + 4);
        s->type = 0;
        s->length = length;
        if (h[0] == 0x16 && h[1] == 0x03) {
            wl_pg_event ev;
            memset(&ev, 0, sizeof ev);
            ev.kind = WL_PG_EV_DIRECT_TLS;
            ev.dir = dir;
            d->stopped = 1;
            emit(d, &ev);
            return -1;
        }
        if (length < 8 || length > WL_PG_MAX_STARTUP) {
            fail(d, dir, 0, length, WL_PG_ERR_BAD_LENGTH);
            return -1;
        }
        if (code == WL_PG_CODE_SSL || code == WL_PG_CODE_GSSENC) {
            if (length != 8) {
                fail(d, dir, 0, length, WL_PG_ERR_BAD_LENGTH);
                return -1;
            }
            return 0;
        }
        if (code == WL_PG_CODE_CANCEL) {
            if (length < 16 || length > 12 + 256) {
                fail(d, dir, 0, length, WL_PG_ERR_BAD_LENGTH);
                return -1;
            }
            return 8;
        }
        if ((code >> 16) != 3) {
            fail(d, dir, 0, length, WL_PG_ERR_BAD_STARTUP);
            return -1;
        }
        return MIN(length - 8, (uint32_t)(WL_PG_CARRY - 8));
    }
    s->type = h[0];
    s->length = wl_be32(h + 1);
    int64_t need = typed_header(dir, s->type, s->length);
    if (need < 0) {
        fail(d, dir, s->type, s->length, (wl_pg_error_code)-need);
        return -1;
    }
    return need;
}

/* ---- the read loop ------------------------------------------------------------ */

typedef struct {
    wl_fetch_fn fetch;
    void *ctx;
    size_t len;          /* bytes in this read */
    const uint8_t *ptr;  /* current window */
    size_t off, got;
} reader;

/* Bytes available at `pos` in a window holding at least `k` of them when the
 * read has that many; *avail gets the count (may be < k near the end). */
static inline const uint8_t *at(reader *r, size_t pos, size_t k, size_t *avail) {
    if (r->ptr && pos >= r->off && pos + k <= r->off + r->got) {
        *avail = r->off + r->got - pos;
        return r->ptr + (pos - r->off);
    }
    size_t want = MIN((size_t)WL_PG_WINDOW, r->len - pos);
    if (want < k) want = MIN(k, r->len - pos);
    size_t got = 0;
    const uint8_t *p = r->fetch(r->ctx, pos, want, &got);
    if (!p || got == 0) {
        r->ptr = 0;
        *avail = 0;
        return 0;
    }
    if (got > r->len - pos) got = r->len - pos;
    r->ptr = p;
    r->off = pos;
    r->got = got;
    *avail = got;
    return p;
}

static uint32_t header_size(const wl_pg_side *s) {
    return s->mode == WL_PG_MODE_STARTUP ? 8 : s->mode == WL_PG_MODE_ANSWER ? 1 : 5;
}

/* Appends up to `want` bytes at `pos` to the carry buffer; returns the count. */
static size_t carry_in(wl_pg_side *s, reader *r, size_t pos, uint32_t want) {
    size_t avail = 0;
    size_t room = WL_PG_CARRY - s->have;
    if (want > room) want = (uint32_t)room;
    if (want == 0) return 0;
    const uint8_t *p = at(r, pos, want, &avail);
    if (!p) return 0;
    size_t n = MIN((size_t)want, avail);
    memcpy(s->carry + s->have, p, n);
    s->have += (uint32_t)n;
    return n;
}

/* After a message's header and body prefix: skip the rest of its body. */
static size_t start_skip(wl_pg_side *s, uint32_t hdr, uint32_t need, size_t pos, size_t len) {
    uint32_t body = s->length - (hdr == 8 ? 8 : 4);
    uint32_t rest = body - need;
    size_t n = MIN((size_t)rest, len - pos);
    rest -= (uint32_t)n;
    if (rest) {
        s->skip = rest;
        s->skipping = 1;
    }
    return n;
}

static void answer(wl_pg_decoder *d, uint8_t a) {
    wl_pg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = WL_PG_EV_ENCRYPTION_RESPONSE;
    ev.dir = WL_DIR_SERVER;
    ev.size = 1;
    ev.u.encryption.answer = a;
    ev.u.encryption.requested = d->answer_for;
    d->answer_for = 0;
    if (a == 'N') {
        d->side[WL_DIR_SERVER].mode = WL_PG_MODE_TYPED;
        d->side[WL_DIR_CLIENT].mode = WL_PG_MODE_STARTUP;
    } else {
        d->stopped = 1; /* encrypted from here on */
    }
    emit(d, &ev);
}

/* The steady-state loop: typed messages lying whole inside the window `w`
 * (`n` bytes, starting at a message boundary). Returns the bytes consumed; it
 * stops, leaving the rest to the general loop, at a header it would reject or a
 * message that runs past the window. */
static size_t typed_run(wl_pg_decoder *d, wl_dir dir, const uint8_t *w, size_t n) {
    wl_pg_side *s = &d->side[dir];
    size_t i = 0;
    while (n - i >= 5) {
        const uint8_t *p = w + i;
        uint32_t length = wl_be32(p + 1);
        int64_t need = typed_header(dir, p[0], length);
        if (need < 0 || n - i - 5 < length - 4) break;
        s->type = p[0];
        s->length = length;
        deliver_typed(d, dir, p + 5, (uint32_t)need);
        i += 1 + (size_t)length;
        if (d->stopped) break;
    }
    return i;
}

void wl_pg_init(wl_pg_decoder *d, const wl_pg_callbacks *cb, void *user) {
    memset(d, 0, sizeof *d);
    d->cb = cb;
    d->user = user;
    d->side[WL_DIR_CLIENT].mode = WL_PG_MODE_STARTUP;
    d->side[WL_DIR_SERVER].mode = WL_PG_MODE_TYPED;
}

void wl_pg_feed(wl_pg_decoder *d, wl_dir dir, size_t len, wl_fetch_fn fetch, void *fetch_ctx) {
    if (d->stopped || (dir != WL_DIR_CLIENT && dir != WL_DIR_SERVER) || !fetch) return;
    wl_pg_side *s = &d->side[dir];
    reader r = {fetch, fetch_ctx, len, 0, 0, 0};
    size_t pos = 0;

    while (pos < len && !d->stopped) {
        if (s->mode == WL_PG_MODE_OFF) return;
        if (s->skipping) {
            size_t n = MIN((size_t)s->skip, len - pos);
            pos += n;
            s->skip -= (uint32_t)n;
            if (s->skip == 0) s->skipping = 0;
            continue;
        }
        if (s->mode == WL_PG_MODE_ANSWER) {
            size_t avail = 0;
            const uint8_t *p = at(&r, pos, 1, &avail);
            if (!p) goto fetch_failed;
            uint8_t a = p[0];
            if (a == 'E') { /* the server refused with an ErrorResponse */
                s->mode = WL_PG_MODE_TYPED;
                d->answer_for = 0;
                continue;
            }
            if (a == 'N' || a == d->answer_for) {
                pos += 1;
                answer(d, a);
                continue;
            }
            fail(d, dir, a, 0, WL_PG_ERR_BAD_ANSWER);
            return;
        }

        if (s->mode == WL_PG_MODE_TYPED && !s->collecting) {
            size_t avail = 0;
            const uint8_t *p = at(&r, pos, 5, &avail);
            if (p && avail >= 5) {
                size_t used = typed_run(d, dir, p, avail);
                pos += used;
                if (used) continue;
            }
        }

        uint32_t hdr = header_size(s);
        if (s->collecting) {
            if (s->have < hdr) {
                size_t n = carry_in(s, &r, pos, hdr - s->have);
                if (n == 0) goto fetch_failed;
                pos += n;
                if (s->have < hdr) return;
            }
            if (s->total == 0) {
                int64_t need = parse_header(d, dir, s->carry, hdr);
                if (need < 0) return;
                s->total = hdr + (uint32_t)need;
            }
            if (s->have < s->total) {
                size_t n = carry_in(s, &r, pos, s->total - s->have);
                pos += n;
                if (s->have < s->total) {
                    if (n == 0 && pos < len) goto fetch_failed;
                    return;
                }
            }
            uint32_t need = s->total - hdr;
            s->collecting = 0;
            s->have = 0;
            s->total = 0;
            deliver(d, dir, s->carry, hdr, need);
            if (d->stopped) return;
            pos += start_skip(s, hdr, need, pos, len);
            continue;
        }

        size_t avail = 0;
        const uint8_t *p = at(&r, pos, hdr, &avail);
        if (!p) goto fetch_failed;
        if (avail < hdr) {
            s->collecting = 1;
            s->have = 0;
            s->total = 0;
            pos += carry_in(s, &r, pos, (uint32_t)avail);
            continue;
        }
        int64_t n = parse_header(d, dir, p, hdr);
        if (n < 0) return;
        uint32_t need = (uint32_t)n;
        uint32_t total = hdr + need;
        if (avail < total) {
            p = at(&r, pos, total, &avail);
            if (!p) goto fetch_failed;
        }
        if (avail < total) {
            s->collecting = 1;
            s->have = 0;
            s->total = total;
            pos += carry_in(s, &r, pos, (uint32_t)avail);
            continue;
        }
        deliver(d, dir, p, hdr, need); /* header and body prefix in the window: in place */
        if (d->stopped) return;
        pos += total;
        pos += start_skip(s, hdr, need, pos, len);
    }
    return;
fetch_failed:
    fail(d, dir, 0, 0, WL_PG_ERR_MALFORMED);
}
