/* MySQL / MariaDB protocol decoder: see mysql.h. */
#include "mysql.h"

#include <stdlib.h>
#include <string.h>

enum { PH_GREETING = 0, PH_LOGIN, PH_AUTH, PH_COMMAND, PH_STOPPED };
enum { CS_COMMAND = 0, CS_INFILE };
enum {
    RS_IDLE = 0,   /* no answer in progress */
    RS_FIRST,      /* first packet of an answer (or of the next result) */
    RS_COLDEFS,    /* column definitions of a result set */
    RS_COLDEFS_EOF,/* EOF after the column definitions */
    RS_ROWS,       /* rows until EOF / OK-as-EOF / ERR */
    RS_PREP,       /* definitions after COM_STMT_PREPARE_OK */
    RS_FIELDS,     /* COM_FIELD_LIST definitions */
    RS_AUTH,       /* COM_CHANGE_USER authentication exchange */
    RS_INFILE,     /* waiting for the client's LOCAL INFILE upload */
    RS_LOST,       /* the answer of an unattributed command: skipped by sequence id */
};
enum { PREP_PARAMS = 0, PREP_PARAMS_EOF, PREP_COLS, PREP_COLS_EOF };

#define MAX_PAYLOAD 0xffffffu
#define SMALL_HEAD 32u

static void emit(wl_mysql_decoder *d, wl_mysql_event *ev) {
    if (d->cb) d->cb(d->ud, ev);
}

static void ev_init(wl_mysql_event *ev, wl_mysql_event_type t, wl_dir dir) {
    memset(ev, 0, sizeof *ev);
    ev->type = t;
    ev->dir = dir;
}

static void stop(wl_mysql_decoder *d) { d->phase = PH_STOPPED; }

static void decoder_error(wl_mysql_decoder *d, wl_dir dir, const char *why) {
    wl_mysql_event ev;
    ev_init(&ev, WL_MYSQL_EV_DECODER_ERROR, dir);
    ev.text = why;
    ev.text_len = ev.text_total = strlen(why);
    stop(d);
    emit(d, &ev);
}

static void protocol_error(wl_mysql_decoder *d, wl_dir dir, const char *why) {
    wl_mysql_event ev;
    ev_init(&ev, WL_MYSQL_EV_PROTOCOL_ERROR, dir);
    ev.text = why;
    ev.text_len = ev.text_total = strlen(why);
    emit(d, &ev);
}

static void check_seq(wl_mysql_decoder *d, wl_dir dir, uint8_t expected) {
    if (d->side[dir].seq != expected) protocol_error(d, dir, "sequence id out of order");
}

/* Length-encoded integer at p[*i] within n bytes. Returns 0 when it does not
 * fit or is not an integer (0xfb NULL, 0xff). */
static int lenenc(const uint8_t *p, size_t n, size_t *i, uint64_t *out) {
    if (*i >= n) return 0;
    uint8_t b = p[*i];
    size_t w;
    if (b < 0xfb) {
        *out = b;
        *i += 1;
        return 1;
    }
    if (b == 0xfc) w = 2;
    else if (b == 0xfd) w = 3;
    else if (b == 0xfe) w = 8;
    else return 0;
    if (*i + 1 + w > n) return 0;
    uint64_t v = 0;
    for (size_t k = 0; k < w; k++) v |= (uint64_t)p[*i + 1 + k] << (8 * k);
    *out = v;
    *i += 1 + w;
    return 1;
}

/* NUL-terminated string starting at p[*i]; to the end of the bytes when the
 * NUL is missing (sets *cut). */
static const char *cstr(const uint8_t *p, size_t n, size_t *i, size_t *len) {
    if (*i > n) {
        *len = 0;
        return NULL;
    }
    const uint8_t *s = p + *i;
    const uint8_t *z = memchr(s, 0, n - *i);
    if (z) {
        *len = (size_t)(z - s);
        *i += *len + 1;
    } else {
        *len = n - *i;
        *i = n;
    }
    return (const char *)s;
}

/* ------------------------------------------------------------------ verbs */

static int is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_alpha(uint8_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* Skip blanks, comments and opening parentheses; enters executable comments
 * (slash-star-bang, slash-star-M-bang) since their content is SQL. */
static size_t skip_noise(const uint8_t *s, size_t n, size_t i) {
    while (i < n) {
        uint8_t c = s[i];
        if (is_space(c) || c == '(') {
            i++;
        } else if (c == '#') {
            while (i < n && s[i] != '\n') i++;
        } else if (c == '-' && i + 2 < n && s[i + 1] == '-' && (is_space(s[i + 2]) || s[i + 2] < 0x20)) {
            while (i < n && s[i] != '\n') i++;
        } else if (c == '-' && i + 2 == n && s[i + 1] == '-') {
            return n;
        } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
            size_t j = i + 2;
            if (j < n && s[j] == 'M' && j + 1 < n && s[j + 1] == '!') j++;
            if (j < n && s[j] == '!') {
                j++;
                while (j < n && is_digit(s[j])) j++;
                i = j; /* executable comment: its body is code */
                continue;
            }
            while (j + 1 < n && !(s[j] == '*' && s[j + 1] == '/')) j++;
            i = j + 2 <= n ? j + 2 : n;
        } else if (c == '*' && i + 1 < n && s[i + 1] == '/') {
            i += 2; /* end of an executable comment */
        } else {
            break;
        }
    }
    return i;
}

/* Lowercased word at s[*i] into w (cap bytes); returns its length, 0 if none. */
static size_t word(const uint8_t *s, size_t n, size_t *i, char *w, size_t cap) {
    *i = skip_noise(s, n, *i);
    size_t k = 0;
    while (*i < n && is_alpha(s[*i])) {
        if (k < cap) w[k] = (char)(s[*i] | 0x20);
        k++;
        (*i)++;
    }
    return k <= cap ? k : cap + 1;
}

static int weq(const char *w, size_t k, const char *lit) { return strlen(lit) == k && memcmp(w, lit, k) == 0; }

static const char *const other_words[] = {
    "alter", "analyze", "backup", "binlog", "cache", "call", "change", "check", "checksum",
    "clone", "create", "deallocate", "declare", "describe", "desc", "do", "drop", "execute",
    "explain", "flush", "get", "grant", "handler", "help", "import", "install", "kill",
    "load", "lock", "optimize", "prepare", "purge", "release", "rename", "repair", "reset",
    "resignal", "restart", "revoke", "savepoint", "set", "show", "shutdown", "signal", "start",
    "stop", "truncate", "uninstall", "unlock", "use", "xa",
};

static wl_mysql_verb classify(const char *sql, size_t len, uint8_t *is_call) {
    const uint8_t *s = (const uint8_t *)sql;
    *is_call = 0;
    if (!s) return WL_MYSQL_VERB_UNKNOWN;
    char w[16];
    size_t i = 0;
    size_t k = word(s, len, &i, w, sizeof w);
    if (k == 0 || k > sizeof w) return WL_MYSQL_VERB_UNKNOWN;
    if (weq(w, k, "call")) {
        *is_call = 1;
        return WL_MYSQL_VERB_OTHER;
    }
    if (weq(w, k, "select") || weq(w, k, "with") || weq(w, k, "values") || weq(w, k, "table"))
        return WL_MYSQL_VERB_SELECT;
    if (weq(w, k, "insert")) return WL_MYSQL_VERB_INSERT;
    if (weq(w, k, "update")) return WL_MYSQL_VERB_UPDATE;
    if (weq(w, k, "delete")) return WL_MYSQL_VERB_DELETE;
    if (weq(w, k, "replace")) return WL_MYSQL_VERB_REPLACE;
    if (weq(w, k, "commit")) return WL_MYSQL_VERB_COMMIT;
    if (weq(w, k, "begin")) {
        char w2[16];
        size_t k2 = word(s, len, &i, w2, sizeof w2);
        return weq(w2, k2, "not") ? WL_MYSQL_VERB_OTHER : WL_MYSQL_VERB_BEGIN; /* BEGIN NOT ATOMIC */
    }
    if (weq(w, k, "start")) {
        char w2[16];
        size_t k2 = word(s, len, &i, w2, sizeof w2);
        return weq(w2, k2, "transaction") ? WL_MYSQL_VERB_BEGIN : WL_MYSQL_VERB_OTHER;
    }
    if (weq(w, k, "rollback")) {
        char w2[16];
        size_t k2 = word(s, len, &i, w2, sizeof w2);
        if (weq(w2, k2, "work")) k2 = word(s, len, &i, w2, sizeof w2);
        return weq(w2, k2, "to") ? WL_MYSQL_VERB_OTHER : WL_MYSQL_VERB_ROLLBACK;
    }
    for (size_t j = 0; j < sizeof other_words / sizeof other_words[0]; j++)
        if (weq(w, k, other_words[j])) return WL_MYSQL_VERB_OTHER;
    return WL_MYSQL_VERB_UNKNOWN;
}

wl_mysql_verb wl_mysql_classify(const char *sql, size_t len) {
    uint8_t is_call;
    return classify(sql, len, &is_call);
}

const char *wl_mysql_verb_name(wl_mysql_verb v) {
    static const char *const names[WL_MYSQL_VERB_COUNT] = {
        "none", "select", "insert", "update", "delete", "replace",
        "begin", "commit", "rollback", "other", "unknown",
    };
    return (unsigned)v < WL_MYSQL_VERB_COUNT ? names[v] : "unknown";
}

const char *wl_mysql_command_name(uint8_t c) {
    static const char *const names[] = {
        "sleep", "quit", "init_db", "query", "field_list", "create_db", "drop_db", "refresh",
        "shutdown", "statistics", "process_info", "connect", "process_kill", "debug", "ping",
        "time", "delayed_insert", "change_user", "binlog_dump", "table_dump", "connect_out",
        "register_slave", "stmt_prepare", "stmt_execute", "stmt_send_long_data", "stmt_close",
        "stmt_reset", "set_option", "stmt_fetch", "daemon", "binlog_dump_gtid",
        "reset_connection", "clone",
    };
    if (c < sizeof names / sizeof names[0]) return names[c];
    if (c == WL_MYSQL_COM_STMT_BULK_EXECUTE) return "stmt_bulk_execute";
    if (c == WL_MYSQL_COM_MULTI) return "multi";
    return NULL;
}

/* ------------------------------------------------------------- statements */

static void stmt_remember(wl_mysql_decoder *d, uint32_t id, uint8_t verb) {
    for (int i = 0; i < WL_MYSQL_MAX_STMTS; i++) {
        if (d->stmts[i].used && d->stmts[i].id == id) {
            d->stmts[i].verb = verb;
            return;
        }
    }
    for (int i = 0; i < WL_MYSQL_MAX_STMTS; i++) {
        if (!d->stmts[i].used) {
            d->stmts[i] = (wl_mysql_stmt){.id = id, .verb = verb, .used = 1};
            return;
        }
    }
    d->stmts[d->stmt_next] = (wl_mysql_stmt){.id = id, .verb = verb, .used = 1};
    d->stmt_next = (uint8_t)((d->stmt_next + 1) % WL_MYSQL_MAX_STMTS);
}

static uint8_t stmt_verb(const wl_mysql_decoder *d, uint32_t id) {
    if (id == 0xffffffffu) return d->last_prepared_verb ? d->last_prepared_verb : WL_MYSQL_VERB_UNKNOWN;
    for (int i = 0; i < WL_MYSQL_MAX_STMTS; i++)
        if (d->stmts[i].used && d->stmts[i].id == id) return d->stmts[i].verb;
    return WL_MYSQL_VERB_UNKNOWN;
}

static void stmt_forget(wl_mysql_decoder *d, uint32_t id) {
    for (int i = 0; i < WL_MYSQL_MAX_STMTS; i++)
        if (d->stmts[i].used && d->stmts[i].id == id) d->stmts[i].used = 0;
}


/* ------------------------------------------------------ pending commands */

static wl_mysql_pending *pend_buf(wl_mysql_decoder *d) { return d->pend ? d->pend : d->pend_inline; }

static wl_mysql_pending *pend_at(wl_mysql_decoder *d, uint32_t i) {
    return &pend_buf(d)[(d->pend_head + i) % d->pend_cap];
}

static wl_mysql_pending *pend_tail(wl_mysql_decoder *d) {
    return d->pend_count ? pend_at(d, d->pend_count - 1) : NULL;
}

/* Double the ring (in order, head at 0); 0 at the cap or without memory. */
static int pend_grow(wl_mysql_decoder *d) {
    if (d->pend_cap >= WL_MYSQL_PENDING_MAX_RUNS) return 0;
    uint32_t cap = d->pend_cap * 2 > WL_MYSQL_PENDING_MAX_RUNS ? WL_MYSQL_PENDING_MAX_RUNS : d->pend_cap * 2;
    wl_mysql_pending *n = malloc((size_t)cap * sizeof *n);
    if (!n) return 0;
    for (uint32_t i = 0; i < d->pend_count; i++) n[i] = *pend_at(d, i);
    free(d->pend);
    d->pend = n;
    d->pend_cap = cap;
    d->pend_head = 0;
    return 1;
}

static void pend_pop(wl_mysql_decoder *d) {
    d->pend_head = (d->pend_head + 1) % d->pend_cap;
    if (--d->pend_count == 0) { /* drained: back to the inline ring */
        free(d->pend);
        d->pend = NULL;
        d->pend_cap = WL_MYSQL_PENDING_INLINE;
        d->pend_head = 0;
    }
}

static int same_run(const wl_mysql_pending *a, const wl_mysql_pending *p) {
    return a->lost == 0 && !a->splitting && a->nverbs == 0 && !p->splitting && p->nverbs == 0 &&
           a->command == p->command && a->verb == p->verb && a->stmt_id == p->stmt_id &&
           a->resp_seq == p->resp_seq && a->cursor == p->cursor && a->is_call == p->is_call &&
           a->clock == p->clock && a->cmd_no + a->count == p->cmd_no && a->count < 0xffffffffu;
}

/* Queue a command awaiting its answer; 0 when there is no room (unattributed). */
static int enqueue_command(wl_mysql_decoder *d, const wl_mysql_pending *p) {
    wl_mysql_pending *t = pend_tail(d);
    if (t && !d->side[WL_DIR_CLIENT].cont && same_run(t, p)) {
        t->count++;
        return 1;
    }
    if (d->pend_count == d->pend_cap && !pend_grow(d)) {
        t->lost++;
        return 0;
    }
    *pend_at(d, d->pend_count) = *p;
    d->pend_count++;
    return 1;
}

/* ------------------------------------------- verbs of multi-statement queries */

static uint8_t *verbs_buf(wl_mysql_decoder *d) { return d->verbs ? d->verbs : d->verbs_inline; }

static int verbs_push(wl_mysql_decoder *d, uint8_t v) {
    if (d->verbs_count == d->verbs_cap) {
        if (d->verbs_cap >= WL_MYSQL_VERBS_MAX) return 0;
        uint32_t cap = d->verbs_cap * 4 > WL_MYSQL_VERBS_MAX ? WL_MYSQL_VERBS_MAX : d->verbs_cap * 4;
        uint8_t *n = malloc(cap);
        if (!n) return 0;
        uint8_t *b = verbs_buf(d);
        for (uint32_t i = 0; i < d->verbs_count; i++) n[i] = b[(d->verbs_head + i) % d->verbs_cap];
        free(d->verbs);
        d->verbs = n;
        d->verbs_cap = cap;
        d->verbs_head = 0;
    }
    verbs_buf(d)[(d->verbs_head + d->verbs_count) % d->verbs_cap] = v;
    d->verbs_count++;
    return 1;
}

static void verbs_pop(wl_mysql_decoder *d, uint32_t n) {
    if (n > d->verbs_count) n = d->verbs_count;
    d->verbs_head = (d->verbs_head + n) % d->verbs_cap;
    d->verbs_count -= n;
    if (d->verbs_count == 0) {
        free(d->verbs);
        d->verbs = NULL;
        d->verbs_cap = WL_MYSQL_VERBS_INLINE;
        d->verbs_head = 0;
    }
}

#define VERB_CALL 0x80 /* verb byte flag: the statement is a CALL */

/* Verb byte (with VERB_CALL) of statement i of the command being answered. */
static uint8_t cur_verb_at(wl_mysql_decoder *d, uint32_t i) {
    if (d->cur.nverbs) {
        if (i >= d->cur.nverbs) return WL_MYSQL_VERB_UNKNOWN;
        return verbs_buf(d)[(d->verbs_head + i) % d->verbs_cap];
    }
    if (i > 0) return WL_MYSQL_VERB_UNKNOWN;
    return (uint8_t)(d->cur.verb | (d->cur.is_call ? VERB_CALL : 0));
}

/* ------------------------------------------------- statement boundaries */

enum {
    SM_CODE = 0, SM_SQ, SM_DQ, SM_BQ, SM_LINE, SM_BLOCK, SM_BLOCK_STAR,
    SM_DASH1, SM_DASH2, SM_SLASH, SM_SLASH_STAR, SM_SLASH_STAR_M, SM_EXEC_VER, SM_EXEC_STAR,
};

/* Byte classes of the splitter's code state. */
enum { CL_OTHER = 0, CL_WORD, CL_SPACE, CL_SPECIAL };

/* class of each byte: 1 word (letters, digits, _, $, >= 0x80), 2 blank, 3 quote / comment /
 * operator start / ";", 0 other */
static const uint8_t class_table[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 0, 3, 3, 1, 0, 0, 3, 0, 0, 3, 0, 0, 3, 0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 3, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
    3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

#ifndef WL_MYSQL_SPLIT_NO_SKIP /* tests build without the skip (split_feed) */
/* Bytes that can matter in code past a statement's head (the fast state, see
 * split_skip): STOP_ALWAYS quotes, '#', '-', '/', ';' and the first letters of BEGIN
 * and CASE; STOP_E the first letter of END (only inside a BEGIN / CASE body);
 * STOP_STAR '*' (only inside an executable comment, where it may end it). Anything
 * else leaves the splitter's state as it is. */
enum { STOP_ALWAYS = 1, STOP_E = 2, STOP_STAR = 4 };
static const uint8_t stop_table[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 4, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
    0, 0, 1, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 0, 1, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

#endif

/* The high bit of each byte of w that equals x or y (each byte of mx / my holds
 * x / y), exactly: no carry crosses bytes, so the lowest one is the first match. */
static inline uint64_t match2(uint64_t w, uint64_t mx, uint64_t my) {
    const uint64_t low7 = 0x7f7f7f7f7f7f7f7full, highs = 0x8080808080808080ull;
    uint64_t a = w ^ mx, c = w ^ my;
    uint64_t nonzero = (((a & low7) + low7) | a) & (((c & low7) + low7) | c);
    return ~nonzero & highs;
}

/* Index of the first x or y (both ASCII) in b[i..n) (n if none), eight bytes at
 * a time. The loop's test is cheaper than match2: a byte of w ^ mx is zero where
 * w has x; subtracting 1 from each byte sets the high bit there (and, through the
 * borrow, possibly in bytes above it, never below) or where the byte is >= 0x81,
 * which an ASCII x only gives for a non-ASCII byte of w, masked off by ~w. So its
 * lowest high bit is exactly the first x or y. */
static size_t find2(const uint8_t *b, size_t i, size_t n, uint8_t x, uint8_t y) {
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const uint64_t mx = ones * x, my = ones * y;
    uint64_t w, m;
#define FIND2_MASK(w) ((((w) ^ mx) - ones) | (((w) ^ my) - ones)) & ~(w) & highs
    for (; i + 16 <= n; i += 16) { /* two words a turn: less loop overhead */
        uint64_t w1, m1;
        memcpy(&w, b + i, 8);
        memcpy(&w1, b + i + 8, 8);
        m = FIND2_MASK(w);
        m1 = FIND2_MASK(w1);
        if (m | m1) return m ? i + ((size_t)__builtin_ctzll(m) >> 3) : i + 8 + ((size_t)__builtin_ctzll(m1) >> 3);
    }
    if (i + 8 <= n) {
        memcpy(&w, b + i, 8);
        m = FIND2_MASK(w);
        if (m) return i + ((size_t)__builtin_ctzll(m) >> 3);
        i += 8;
    }
#undef FIND2_MASK
    if (i >= n) return n;
    if (n >= 8) { /* the last eight bytes, without those before i */
        size_t from = n - 8;
        memcpy(&w, b + from, 8);
        m = match2(w, mx, my) & (~0ull << (8 * (i - from)));
        return m ? from + ((size_t)__builtin_ctzll(m) >> 3) : n;
    }
    while (i < n && b[i] != x && b[i] != y) i++;
    return i;
}

/* A keyword packed as the splitter packs words (lower case, little-endian, <= 8 bytes). */
#define KW2(a, b) ((uint64_t)(a) | (uint64_t)(b) << 8)
#define KW3(a, b, c) (KW2(a, b) | (uint64_t)(c) << 16)
#define KW4(a, b, c, d) (KW3(a, b, c) | (uint64_t)(d) << 24)
#define KW5(a, b, c, d, e) (KW4(a, b, c, d) | (uint64_t)(e) << 32)
#define KW6(a, b, c, d, e, f) (KW5(a, b, c, d, e) | (uint64_t)(f) << 40)

static void split_capture(wl_mysql_splitter *sp, uint8_t c) {
    if (sp->head_len < WL_MYSQL_SPLIT_HEAD) sp->head[sp->head_len++] = (char)c;
}

static void split_code(wl_mysql_splitter *sp, uint8_t c) {
    sp->has_code = sp->has_any = 1;
    split_capture(sp, c);
}

/* A comment between code: the head keeps a blank in its place. */
static void split_comment(wl_mysql_splitter *sp) {
    sp->has_any = 1;
    if (sp->has_code) split_capture(sp, ' ');
}

/* A word of code ended: track BEGIN ... END bodies, which are not split. */
static void split_word(wl_mysql_splitter *sp) {
    if (sp->wlen == 0) return;
    uint64_t w = sp->wlen <= 8 ? sp->word : 0; /* longer words are no keyword here */
    sp->wlen = 0;
    sp->word = 0;
    if (sp->first_word == 0) {
        sp->is_xa = w == KW2('x', 'a');
        sp->begin_first = w == KW5('b', 'e', 'g', 'i', 'n');
        sp->is_call_first = w == KW4('c', 'a', 'l', 'l');
        sp->first_word = 1;
    } else if (sp->begin_first) { /* BEGIN NOT ATOMIC opens a block; BEGIN [WORK] a transaction */
        sp->begin_first = 0;
        if (w == KW3('n', 'o', 't')) sp->depth++;
    } else if (sp->after_end) {   /* END IF / LOOP / WHILE / REPEAT / FOR close what was not counted */
        sp->after_end = 0;
        if (!(w == KW2('i', 'f') || w == KW4('l', 'o', 'o', 'p') || w == KW5('w', 'h', 'i', 'l', 'e') ||
              w == KW6('r', 'e', 'p', 'e', 'a', 't') || w == KW3('f', 'o', 'r')) &&
            sp->depth > 0)
            sp->depth--;
    } else if (w == KW5('b', 'e', 'g', 'i', 'n') && !sp->is_xa) {
        sp->depth++;
    } else if (w == KW4('c', 'a', 's', 'e')) {
        sp->depth++;
    } else if (w == KW3('e', 'n', 'd') && sp->depth > 0) {
        sp->after_end = 1;
    }
}

/* A plain END (followed by punctuation): closes BEGIN or CASE. */
static void split_settle_end(wl_mysql_splitter *sp) {
    if (sp->after_end) {
        sp->after_end = 0;
        if (sp->depth > 0) sp->depth--;
    }
    sp->begin_first = 0;
}

static void split_statement(wl_mysql_decoder *d, int terminated) {
    wl_mysql_splitter *sp = &d->split;
    if (sp->has_any || terminated) {
        uint8_t v = sp->has_code ? (uint8_t)wl_mysql_classify(sp->head, sp->head_len) : WL_MYSQL_VERB_UNKNOWN;
        if (sp->is_call_first) v |= VERB_CALL;
        if (sp->store) {
            if (verbs_push(d, v)) sp->stored++;
            else sp->store = 0; /* no room: later statements of this query have no verb */
        }
        sp->count++;
    }
    sp->has_code = sp->has_any = 0;
    sp->first_word = sp->begin_first = sp->after_end = sp->is_xa = sp->is_call_first = 0;
    sp->head_len = 0;
    sp->wlen = 0;
    sp->word = 0;
}

#ifndef WL_MYSQL_SPLIT_NO_SKIP
/* Does any of b[0..8) have a stop_table entry in `mask`? Eight table lookups
 * OR-ed: fewer instructions than per-byte tests and their branches. */
static inline int stop_in8(const uint8_t *b, uint8_t mask) {
    return ((stop_table[b[0]] | stop_table[b[1]] | stop_table[b[2]] | stop_table[b[3]] | stop_table[b[4]] |
             stop_table[b[5]] | stop_table[b[6]] | stop_table[b[7]]) &
            mask) != 0;
}

/* BEGIN, CASE or END, in any case. */
static int block_keyword(const uint8_t *w, size_t n) {
    uint64_t v = 0;
    if (n < 3 || n > 5) return 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)(w[i] | 0x20) << (8 * i);
    return v == KW5('b', 'e', 'g', 'i', 'n') || v == KW4('c', 'a', 's', 'e') || v == KW3('e', 'n', 'd');
}

/* The splitter's fast state: code past a full head, the statement's first word
 * read, no word being read, no BEGIN / END pending. There, a byte changes the state only if it starts a
 * quote, a comment or a statement end, or starts a word that can be BEGIN, CASE
 * or END (see stop_table); a '-' not followed by '-' and a '/' not followed by
 * '*' are plain operators, and a whole quoted string leaves the state as it
 * found it. Skips from b[i] over all that, eight bytes at a time where it can,
 * and returns where the byte-by-byte splitter must go on (n: the whole range
 * was consumed, the state saved for the next range). Same result as feeding the
 * bytes one by one. */
static size_t split_skip(wl_mysql_splitter *sp, const uint8_t *b, size_t i, size_t n) {
    uint8_t mask = (uint8_t)(STOP_ALWAYS | (sp->depth ? STOP_E : 0) | (sp->in_exec ? STOP_STAR : 0));
    size_t from = i, j = i;
    for (;;) {
        while (j + 8 <= n && !stop_in8(b + j, mask)) j += 8;
        while (j < n && !(stop_table[b[j]] & mask)) j++;
        if (j >= n) break;
        uint8_t c = b[j];
        if (class_table[c] == CL_WORD) {
            /* a b, c or e inside a word is no keyword's start */
            if (j > from && class_table[b[j - 1]] == CL_WORD) {
                j++;
                continue;
            }
            /* a whole word here that is not BEGIN, CASE or END changes nothing */
            size_t k = j + 1;
            while (k < n && class_table[b[k]] == CL_WORD) k++;
            if (k < n && !block_keyword(b + j, k - j)) {
                j = k;
                continue;
            }
            return j;
        }
        if (c == '\'' || c == '"' || c == '`') {
            uint8_t bs = c == '`' ? c : '\\'; /* backquotes have no escapes */
            size_t k = j + 1;
            for (;;) {
                k = find2(b, k, n, c, bs);
                if (k >= n || b[k] == c) break;
                if (k + 1 >= n) break; /* the escaped byte is in the next range */
                k += 2;
            }
            if (k >= n || b[k] != c) { /* the string goes on in the next range */
                sp->mode = c == '\'' ? SM_SQ : c == '"' ? SM_DQ : SM_BQ;
                sp->esc = k < n; /* it ended on a backslash */
                return n;
            }
            j = k + 1;
            continue;
        }
        if ((c == '-' || c == '/') && j + 1 < n && b[j + 1] != (c == '-' ? '-' : '*')) {
            j++; /* an operator */
            continue;
        }
        return j;
    }
    if (j > from && class_table[b[n - 1]] == CL_WORD) sp->wlen = 9; /* a word goes on (no keyword) */
    return n;
}

#endif

static void split_feed(wl_mysql_decoder *d, const uint8_t *b, size_t n) {
    wl_mysql_splitter *sp = &d->split;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = b[i];
    again:
        switch (sp->mode) {
        case SM_CODE: {
#ifndef WL_MYSQL_SPLIT_NO_SKIP /* tests build without it: the byte-by-byte reference */
            if (sp->head_len == WL_MYSQL_SPLIT_HEAD && sp->wlen == 0 && !sp->after_end && !sp->begin_first &&
                sp->first_word) {
                size_t j = split_skip(sp, b, i, n);
                if (j >= n) return;
                i = j; /* a byte that may change the state: the general case below */
                c = b[i];
            }
#endif
            uint8_t cl = class_table[c];
            if (cl == CL_WORD) { /* the whole run of word bytes */
                size_t j = i;
                do {
                    if (sp->wlen < 8) sp->word |= (uint64_t)(b[j] | 0x20) << (8 * sp->wlen);
                    if (sp->wlen < 0xff) sp->wlen++;
                    j++;
                } while (j < n && class_table[b[j]] == CL_WORD);
                sp->has_code = sp->has_any = 1;
                size_t room = WL_MYSQL_SPLIT_HEAD - sp->head_len;
                if (room) {
                    size_t k = j - i < room ? j - i : room;
                    memcpy(sp->head + sp->head_len, b + i, k);
                    sp->head_len = (uint8_t)(sp->head_len + k);
                }
                i = j - 1;
                continue;
            }
            split_word(sp);
            if (cl == CL_SPACE) {
                if (sp->has_code) split_capture(sp, ' ');
                continue;
            }
            if (cl == CL_OTHER) {
                split_settle_end(sp);
                split_code(sp, c);
                continue;
            }
            switch (c) {
            case '\'': sp->mode = SM_SQ; break;
            case '"': sp->mode = SM_DQ; break;
            case '`': sp->mode = SM_BQ; break;
            case '#': sp->mode = SM_LINE; split_comment(sp); continue;
            case '-': sp->mode = SM_DASH1; continue;
            case '/': sp->mode = SM_SLASH; continue;
            case '*':
                if (sp->in_exec) {
                    sp->mode = SM_EXEC_STAR;
                    continue;
                }
                break;
            case ';':
                split_settle_end(sp);
                if (sp->depth == 0) {
                    split_statement(d, 1);
                    continue;
                }
                break;
            default:
                break;
            }
            split_settle_end(sp);
            split_code(sp, c);
            continue;
        }
        case SM_SQ:
        case SM_DQ:
        case SM_BQ: {
            uint8_t q = sp->mode == SM_SQ ? '\'' : sp->mode == SM_DQ ? '"' : '`';
            uint8_t bs = sp->mode == SM_BQ ? q : '\\'; /* backquotes have no escapes */
            size_t j = i;
            if (sp->esc) { /* the byte after a backslash */
                sp->esc = 0;
                j++;
            }
            j = find2(b, j, n, q, bs);
            size_t room = WL_MYSQL_SPLIT_HEAD - sp->head_len;
            size_t k = (j < n ? j + 1 : n) - i;
            if (k > room) k = room;
            memcpy(sp->head + sp->head_len, b + i, k);
            sp->head_len = (uint8_t)(sp->head_len + k);
            if (j >= n) {
                i = n;
                continue;
            }
            if (b[j] == q) sp->mode = SM_CODE;
            else sp->esc = 1;
            i = j;
            continue;
        }
        case SM_LINE: {
            const uint8_t *nl = memchr(b + i, '\n', n - i);
            if (!nl) {
                i = n;
                continue;
            }
            i = (size_t)(nl - b);
            sp->mode = SM_CODE;
            continue;
        }
        case SM_BLOCK:
            if (c == '*') sp->mode = SM_BLOCK_STAR;
            continue;
        case SM_BLOCK_STAR:
            if (c == '/') sp->mode = SM_CODE;
            else if (c != '*') sp->mode = SM_BLOCK;
            continue;
        case SM_DASH1:
            if (c == '-') {
                sp->mode = SM_DASH2;
                continue;
            }
            sp->mode = SM_CODE;
            split_settle_end(sp);
            split_code(sp, '-');
            goto again;
        case SM_DASH2:
            if (c <= 0x20) { /* "-- " starts a comment; "--x" is two minus signs */
                split_comment(sp);
                sp->mode = c == '\n' ? SM_CODE : SM_LINE;
                continue;
            }
            sp->mode = SM_CODE;
            split_settle_end(sp);
            split_code(sp, '-');
            split_code(sp, '-');
            goto again;
        case SM_SLASH:
            if (c == '*') {
                sp->mode = SM_SLASH_STAR;
                continue;
            }
            sp->mode = SM_CODE;
            split_settle_end(sp);
            split_code(sp, '/');
            goto again;
        case SM_SLASH_STAR:
            if (c == '!') {
                sp->in_exec = 1; /* executable comment: its body is code */
                sp->mode = SM_EXEC_VER;
                continue;
            }
            if (c == 'M') {
                sp->mode = SM_SLASH_STAR_M;
                continue;
            }
            split_comment(sp);
            sp->mode = SM_BLOCK;
            goto again;
        case SM_SLASH_STAR_M:
            if (c == '!') {
                sp->in_exec = 1;
                sp->mode = SM_EXEC_VER;
                continue;
            }
            split_comment(sp);
            sp->mode = SM_BLOCK;
            goto again;
        case SM_EXEC_VER:
            if (is_digit(c)) continue;
            sp->mode = SM_CODE;
            goto again;
        case SM_EXEC_STAR:
            if (c == '/') {
                sp->in_exec = 0;
                sp->mode = SM_CODE;
                if (sp->has_code) split_capture(sp, ' ');
                continue;
            }
            sp->mode = SM_CODE;
            split_settle_end(sp);
            split_code(sp, '*');
            goto again;
        default:
            sp->mode = SM_CODE;
            goto again;
        }
    }
}

/* The text of the COM_QUERY being split ended. */
static void split_finish(wl_mysql_decoder *d) {
    wl_mysql_splitter *sp = &d->split;
    if (!sp->active) return;
    switch (sp->mode) {
    case SM_DASH1: split_code(sp, '-'); break;
    case SM_SLASH: split_code(sp, '/'); break;
    case SM_DASH2: split_comment(sp); break;
    default: break;
    }
    split_word(sp);
    split_settle_end(sp);
    split_statement(d, 0);
    sp->active = 0;
    wl_mysql_pending *t = sp->queued ? pend_tail(d) : NULL;
    if (!t || !t->splitting) return;
    t->splitting = 0;
    t->nverbs = sp->stored;
    if (sp->stored == 1 && sp->count == 1 && d->verbs_count > 0 &&
        verbs_buf(d)[(d->verbs_head + d->verbs_count - 1) % d->verbs_cap] ==
            (uint8_t)(t->verb | (t->is_call ? VERB_CALL : 0))) {
        /* one statement: its verb is the command's; the run may join the one before */
        d->verbs_count--;
        if (d->verbs_count == 0) verbs_pop(d, 0);
        t->nverbs = 0;
        if (d->pend_count >= 2) {
            wl_mysql_pending *prev = pend_at(d, d->pend_count - 2);
            if (same_run(prev, t)) {
                prev->count++;
                d->pend_count--;
            }
        }
    }
}

/* Start splitting the COM_QUERY just queued (queued: it is the queue's tail). */
static void split_start(wl_mysql_decoder *d, int queued) {
    wl_mysql_splitter *sp = &d->split;
    memset(sp, 0, sizeof *sp);
    sp->active = 1;
    sp->queued = (uint8_t)queued;
    sp->store = (uint8_t)queued;
}

/* ---------------------------------------------------------------- packets */

static void parse_ok(const uint8_t *h, size_t n, int proto41, wl_mysql_event *ev) {
    size_t i = 1;
    uint64_t v;
    if (lenenc(h, n, &i, &v)) ev->affected_rows = v;
    else return;
    if (lenenc(h, n, &i, &v)) ev->last_insert_id = v;
    else return;
    if (proto41 && i + 4 <= n) {
        ev->status_flags = wl_le16(h + i);
        ev->warnings = wl_le16(h + i + 2);
    } else if (i + 2 <= n) {
        ev->status_flags = wl_le16(h + i);
    }
}

static void parse_eof(const uint8_t *h, size_t n, wl_mysql_event *ev) {
    if (n >= 5) {
        ev->warnings = wl_le16(h + 1);
        ev->status_flags = wl_le16(h + 3);
    }
}

/* 0xfe-headed packets that end a result: EOF (< 9 bytes) or, with
 * CLIENT_DEPRECATE_EOF, an OK packet; never a >= 16 MiB text row. */
static int is_terminator(const wl_mysql_decoder *d, const uint8_t *h, size_t n) {
    const wl_mysql_side *s = &d->side[WL_DIR_SERVER];
    return n >= 1 && h[0] == 0xfe && s->pkt_len < MAX_PAYLOAD;
}

static void parse_terminator(const wl_mysql_decoder *d, const uint8_t *h, size_t n, wl_mysql_event *ev) {
    if (d->side[WL_DIR_SERVER].pkt_len < 9 && !(d->caps & WL_MYSQL_CLIENT_DEPRECATE_EOF)) parse_eof(h, n, ev);
    else if (d->side[WL_DIR_SERVER].pkt_len < 9 && n == 5) parse_eof(h, n, ev);
    else parse_ok(h, n, 1, ev);
}

static void parse_err(const uint8_t *h, size_t n, wl_mysql_event *ev) {
    if (n >= 3) ev->err_code = wl_le16(h + 1);
    if (n >= 9 && h[3] == '#') {
        memcpy(ev->sqlstate, h + 4, 5);
        ev->sqlstate[5] = 0;
    }
}

static void response_done(wl_mysql_decoder *d, wl_mysql_outcome outcome, const wl_mysql_event *last) {
    wl_mysql_event ev;
    ev_init(&ev, WL_MYSQL_EV_COMMAND_DONE, WL_DIR_SERVER);
    ev.command = d->cur.command;
    ev.verb = d->cur.verb;
    ev.cmd_no = d->cur.cmd_no;
    ev.stmt_id = d->cur.stmt_id;
    ev.outcome = (uint8_t)outcome;
    ev.rows = d->total_rows;
    ev.affected_rows = d->total_affected;
    ev.warnings = (uint16_t)(d->total_warnings > 0xffff ? 0xffff : d->total_warnings);
    ev.results = d->results;
    ev.started = d->cur.clock;
    ev.stmt_index = d->stmt_idx;
    uint8_t v = cur_verb_at(d, d->stmt_idx);
    ev.stmt_verb = (uint8_t)(v & ~VERB_CALL);
    ev.is_call = (v & VERB_CALL) != 0;
    if (d->cur.command == WL_MYSQL_COM_QUERY) ev.statements = d->cur.nverbs ? d->cur.nverbs : 1;
    if (last) {
        ev.err_code = last->err_code;
        memcpy(ev.sqlstate, last->sqlstate, sizeof ev.sqlstate);
        ev.status_flags = last->status_flags;
        ev.last_insert_id = last->last_insert_id;
        ev.cursor = last->cursor;
    }
    d->resp_state = RS_IDLE;
    verbs_pop(d, d->cur.nverbs);
    d->cur.nverbs = 0;
    emit(d, &ev);
}

static void begin_result(wl_mysql_decoder *d) {
    d->rows = 0;
    d->columns = 0;
}

/* A result (OK or the end of a result set). Returns 1 when more follow. */
static int result(wl_mysql_decoder *d, wl_mysql_event *ev, int is_rs) {
    ev->type = WL_MYSQL_EV_RESULT;
    ev->dir = WL_DIR_SERVER;
    ev->command = d->cur.command;
    ev->verb = d->cur.verb;
    ev->cmd_no = d->cur.cmd_no;
    ev->stmt_id = d->cur.stmt_id;
    ev->is_result_set = (uint8_t)is_rs;
    ev->outcome = WL_MYSQL_OUTCOME_OK;
    ev->started = d->cur.clock;
    ev->stmt_index = d->stmt_idx;
    uint8_t v = cur_verb_at(d, d->stmt_idx);
    ev->stmt_verb = (uint8_t)(v & ~VERB_CALL);
    ev->is_call = (v & VERB_CALL) != 0;
    /* a CALL answers with its procedure's result sets, then one OK */
    ev->stmt_end = (uint8_t)(d->cur.command == WL_MYSQL_COM_QUERY && !(ev->is_call && is_rs));
    if (ev->stmt_end) d->stmt_idx++;
    if (is_rs) {
        ev->columns = d->columns;
        ev->rows = d->rows;
        d->total_rows += d->rows;
    } else {
        d->total_affected += ev->affected_rows;
    }
    d->total_warnings += ev->warnings;
    d->results++;
    emit(d, ev);
    return (ev->status_flags & WL_MYSQL_STATUS_MORE_RESULTS) != 0;
}

static void end_result(wl_mysql_decoder *d, wl_mysql_event *ev, int is_rs) {
    if (result(d, ev, is_rs) && d->phase != PH_STOPPED) {
        d->resp_state = RS_FIRST;
        begin_result(d);
    } else if (d->phase != PH_STOPPED) {
        response_done(d, WL_MYSQL_OUTCOME_OK, ev);
    }
}

static void greeting(wl_mysql_decoder *d, const uint8_t *h, size_t n) {
    wl_mysql_side *s = &d->side[WL_DIR_SERVER];
    check_seq(d, WL_DIR_SERVER, 0);
    if (n == 0) {
        decoder_error(d, WL_DIR_SERVER, "empty greeting");
        return;
    }
    if (h[0] == 0xff) {
        wl_mysql_event ev;
        ev_init(&ev, WL_MYSQL_EV_LOGIN_FAILED, WL_DIR_SERVER);
        parse_err(h, n, &ev);
        stop(d);
        emit(d, &ev);
        return;
    }
    if (h[0] != 0x0a) {
        decoder_error(d, WL_DIR_SERVER, "not a protocol 10 greeting");
        return;
    }
    wl_mysql_event ev;
    ev_init(&ev, WL_MYSQL_EV_GREETING, WL_DIR_SERVER);
    size_t i = 1, vlen;
    const char *ver = cstr(h, n, &i, &vlen);
    if (i + 4 + 8 + 1 + 2 > n) {
        if (n == s->pkt_len || n < WL_MYSQL_HEAD_MAX) {
            decoder_error(d, WL_DIR_SERVER, "short greeting");
            return;
        }
    }
    ev.text = ver;
    ev.text_len = ev.text_total = vlen;
    uint64_t caps = 0;
    if (i + 15 <= n) {
        ev.conn_id = wl_le32(h + i);
        i += 4 + 8 + 1;
        caps = wl_le16(h + i);
        i += 2;
    }
    uint8_t auth_len = 0;
    if (i + 16 <= n) {
        i += 1 + 2; /* charset, status */
        caps |= (uint64_t)wl_le16(h + i) << 16;
        i += 2;
        auth_len = h[i];
        i += 1;
        if (!(caps & WL_MYSQL_CLIENT_LONG_PASSWORD)) caps |= (uint64_t)wl_le32(h + i + 6) << 32;
        i += 10;
        if (caps & WL_MYSQL_CLIENT_SECURE_CONNECTION) {
            size_t part2 = auth_len > 8 ? (size_t)auth_len - 8 : 0;
            if (part2 < 13) part2 = 13;
            i += part2;
        }
        if ((caps & WL_MYSQL_CLIENT_PLUGIN_AUTH) && i < n) {
            size_t plen;
            ev.auth_plugin = cstr(h, n, &i, &plen);
            ev.auth_plugin_len = plen;
        }
    }
    d->server_caps = caps;
    ev.capabilities = caps;
    d->phase = PH_LOGIN;
    d->exp_seq[WL_DIR_CLIENT] = (uint8_t)(s->seq + 1);
    emit(d, &ev);
}

/* COM_QUERY with CLIENT_QUERY_ATTRIBUTES: parameter count, parameter set
 * count, and when there are parameters a NULL bitmap, the bind flag, names
 * and types, then the values in the binary protocol encoding. Moves *i to the
 * SQL text; 0 when the attributes do not fit in h[0..n). */
static int skip_query_attributes(const uint8_t *h, size_t n, size_t *io) {
    size_t i = *io;
    uint64_t count = 0, sets = 0;
    if (!lenenc(h, n, &i, &count) || !lenenc(h, n, &i, &sets)) return 0;
    if (count == 0) {
        *io = i;
        return 1;
    }
    if (count > 64) return 0;
    size_t bm = i;
    i += ((size_t)count + 7) / 8;
    if (i >= n || h[i] != 1) return 0; /* values need their types */
    i++;
    uint8_t types[64];
    for (size_t k = 0; k < count; k++) {
        if (i + 2 > n) return 0;
        types[k] = h[i];
        i += 2;
        uint64_t nl;
        if (!lenenc(h, n, &i, &nl) || nl > n - i) return 0;
        i += (size_t)nl;
    }
    for (size_t k = 0; k < count; k++) {
        if ((h[bm + k / 8] >> (k % 8)) & 1) continue; /* NULL: no value */
        size_t w;
        switch (types[k]) {
        case 6: w = 0; break;                          /* NULL */
        case 1: w = 1; break;                          /* TINY */
        case 2: case 13: w = 2; break;                 /* SHORT, YEAR */
        case 3: case 4: case 9: w = 4; break;          /* LONG, FLOAT, INT24 */
        case 5: case 8: w = 8; break;                  /* DOUBLE, LONGLONG */
        case 7: case 10: case 11: case 12:             /* TIMESTAMP, DATE, TIME, DATETIME */
            if (i >= n) return 0;
            w = 1 + (size_t)h[i];
            break;
        default: {                                     /* strings, decimals, blobs: lenenc */
            uint64_t vl;
            size_t j = i;
            if (!lenenc(h, n, &j, &vl) || vl > n - j) return 0;
            w = (j - i) + (size_t)vl;
        }
        }
        if (w > n - i) return 0;
        i += w;
    }
    *io = i;
    return 1;
}

/* ';' anywhere in the bytes (wasi-libc's memchr goes byte by byte). */
/* Any ';' in p[0..n)? Eight bytes at a time (the test of find2: a flag means a
 * ';' in that word), the last eight overlapping the ones before. */
static int has_semicolon(const char *p, size_t n) {
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull, semi = ones * ';';
    uint64_t w;
    if (n < 8) return memchr(p, ';', n) != NULL;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        if (((w ^ semi) - ones) & ~w & highs) return 1;
    }
    memcpy(&w, p + n - 8, 8);
    return (((w ^ semi) - ones) & ~w & highs) != 0;
}

static void command(wl_mysql_decoder *d, const uint8_t *h, size_t n) {
    wl_mysql_side *s = &d->side[WL_DIR_CLIENT];
    if (s->seq != 0) protocol_error(d, WL_DIR_CLIENT, "command with a non-zero sequence id");
    if (n == 0) {
        decoder_error(d, WL_DIR_CLIENT, "empty command packet");
        return;
    }
    wl_mysql_event ev;
    ev_init(&ev, WL_MYSQL_EV_COMMAND, WL_DIR_CLIENT);
    wl_mysql_pending p = {0};
    p.command = h[0];
    p.cmd_no = d->next_cmd_no++;
    p.resp_seq = (uint8_t)(s->seq + 1);
    p.verb = WL_MYSQL_VERB_NONE;
    p.clock = d->clock;
    p.count = 1;
    size_t split_from = 0;
    size_t total = s->pkt_len; /* first fragment; >= 16 MiB payloads are longer */
    int has_response = 1, stop_after = 0;
    switch (p.command) {
    case WL_MYSQL_COM_QUERY: {
        size_t i = 1;
        if (d->caps & WL_MYSQL_CLIENT_QUERY_ATTRIBUTES) {
            if (!skip_query_attributes(h, n, &i)) {
                i = n; /* attributes did not fit in the head: SQL unknown */
                p.verb = WL_MYSQL_VERB_UNKNOWN;
            }
        }
        ev.text = (const char *)h + i;
        ev.text_len = n - i;
        ev.text_total = total >= i ? total - i : 0;
        if (p.verb == WL_MYSQL_VERB_NONE) {
            p.verb = (uint8_t)classify(ev.text, ev.text_len, &p.is_call);
            split_from = i;
            /* a whole text without ';' is one statement: nothing to split */
            p.splitting = (d->caps & WL_MYSQL_CLIENT_MULTI_STATEMENTS) &&
                          (ev.text_total > ev.text_len || s->cont || has_semicolon(ev.text, ev.text_len));
        }
        break;
    }
    case WL_MYSQL_COM_STMT_PREPARE:
        ev.text = (const char *)h + 1;
        ev.text_len = n - 1;
        ev.text_total = total - 1;
        p.verb = (uint8_t)wl_mysql_classify(ev.text, ev.text_len);
        break;
    case WL_MYSQL_COM_STMT_EXECUTE:
    case WL_MYSQL_COM_STMT_BULK_EXECUTE:
    case WL_MYSQL_COM_STMT_CLOSE:
    case WL_MYSQL_COM_STMT_RESET:
    case WL_MYSQL_COM_STMT_SEND_LONG_DATA:
    case WL_MYSQL_COM_STMT_FETCH:
        if (n < 5) {
            decoder_error(d, WL_DIR_CLIENT, "short statement command");
            return;
        }
        p.stmt_id = wl_le32(h + 1);
        p.verb = stmt_verb(d, p.stmt_id);
        if (p.command == WL_MYSQL_COM_STMT_EXECUTE && n >= 6) p.cursor = h[5];
        if (p.command == WL_MYSQL_COM_STMT_CLOSE) {
            stmt_forget(d, p.stmt_id);
            has_response = 0;
        }
        if (p.command == WL_MYSQL_COM_STMT_SEND_LONG_DATA) has_response = 0;
        break;
    case WL_MYSQL_COM_RESET_CONNECTION:
    case WL_MYSQL_COM_CHANGE_USER:
        /* the server drops the session's prepared statements */
        memset(d->stmts, 0, sizeof d->stmts);
        d->last_prepared_verb = 0;
        if (p.command == WL_MYSQL_COM_CHANGE_USER) {
            size_t i = 1, l;
            ev.user = cstr(h, n, &i, &l);
            ev.user_len = l;
        }
        break;
    case WL_MYSQL_COM_QUIT:
        has_response = 0;
        break;
    case WL_MYSQL_COM_INIT_DB:
    case WL_MYSQL_COM_CREATE_DB:
    case WL_MYSQL_COM_DROP_DB:
    case WL_MYSQL_COM_FIELD_LIST:
        ev.text = (const char *)h + 1;
        ev.text_len = n - 1;
        ev.text_total = total - 1;
        if (p.command == WL_MYSQL_COM_FIELD_LIST) {
            size_t i = 1, l;
            ev.text = cstr(h, n, &i, &l);
            ev.text_len = ev.text_total = l;
        } else {
            ev.database = ev.text;
            ev.database_len = ev.text_len;
        }
        break;
    case WL_MYSQL_COM_BINLOG_DUMP:
    case WL_MYSQL_COM_BINLOG_DUMP_GTID:
    case WL_MYSQL_COM_TABLE_DUMP:
    case WL_MYSQL_COM_CLONE:
    case WL_MYSQL_COM_MULTI:
        stop_after = 1; /* streams and batches this decoder does not follow */
        break;
    default:
        break;
    }
    ev.command = p.command;
    ev.verb = p.verb;
    ev.cmd_no = p.cmd_no;
    ev.stmt_id = p.stmt_id;
    ev.cursor = p.cursor;
    ev.is_call = p.is_call;
    ev.started = p.clock;
    int queued = 0;
    if (has_response && !stop_after) {
        queued = enqueue_command(d, &p);
        ev.unattributed = (uint8_t)!queued;
        d->last_cmd_queued = (uint8_t)queued;
    }
    emit(d, &ev);
    if (d->phase == PH_STOPPED) return;
    if (stop_after) {
        stop(d);
        return;
    }
    if (has_response) {
        if (p.splitting) { /* statement boundaries: this head now, the rest as it passes */
            split_start(d, queued);
            split_feed(d, h + split_from, n - split_from);
            if (s->pkt_len > n || s->cont) s->scan = 1;
            else split_finish(d);
        }
    } else {
        d->last_cmd_queued = 0;
        wl_mysql_pending saved = d->cur;
        uint8_t saved_state = d->resp_state;
        d->cur = p;
        d->total_rows = d->total_affected = 0;
        d->total_warnings = 0;
        d->results = 0;
        wl_mysql_event done;
        ev_init(&done, WL_MYSQL_EV_COMMAND_DONE, WL_DIR_CLIENT);
        done.command = p.command;
        done.verb = p.verb;
        done.cmd_no = p.cmd_no;
        done.stmt_id = p.stmt_id;
        done.outcome = WL_MYSQL_OUTCOME_NONE;
        done.started = p.clock;
        d->cur = saved;
        d->resp_state = saved_state;
        emit(d, &done);
    }
}

static void login(wl_mysql_decoder *d, const uint8_t *h, size_t n) {
    wl_mysql_side *s = &d->side[WL_DIR_CLIENT];
    check_seq(d, WL_DIR_CLIENT, d->exp_seq[WL_DIR_CLIENT]);
    if (n < 4) {
        decoder_error(d, WL_DIR_CLIENT, "short handshake response");
        return;
    }
    uint64_t caps = wl_le16(h);
    wl_mysql_event ev;
    ev_init(&ev, WL_MYSQL_EV_LOGIN, WL_DIR_CLIENT);
    size_t i;
    if (caps & WL_MYSQL_CLIENT_PROTOCOL_41) {
        if (n < 32) {
            decoder_error(d, WL_DIR_CLIENT, "short handshake response");
            return;
        }
        caps = wl_le32(h);
        if (!(caps & WL_MYSQL_CLIENT_LONG_PASSWORD) && !(d->server_caps & WL_MYSQL_CLIENT_LONG_PASSWORD))
            caps |= (uint64_t)wl_le32(h + 28) << 32;
        d->client_caps = caps;
        d->caps = caps & d->server_caps;
        if ((caps & WL_MYSQL_CLIENT_SSL) && s->pkt_len == 32) {
            wl_mysql_event t;
            ev_init(&t, WL_MYSQL_EV_SSL_REQUEST, WL_DIR_CLIENT);
            t.capabilities = caps;
            stop(d);
            emit(d, &t);
            return;
        }
        i = 32;
    } else {
        if (caps & WL_MYSQL_CLIENT_SSL && s->pkt_len == 5) {
            wl_mysql_event t;
            ev_init(&t, WL_MYSQL_EV_SSL_REQUEST, WL_DIR_CLIENT);
            t.capabilities = caps;
            stop(d);
            emit(d, &t);
            return;
        }
        d->client_caps = caps;
        d->caps = caps & d->server_caps;
        i = 5;
    }
    size_t l;
    ev.user = cstr(h, n, &i, &l);
    ev.user_len = l;
    if (caps & WL_MYSQL_CLIENT_PROTOCOL_41) {
        uint64_t alen = 0;
        if (caps & WL_MYSQL_CLIENT_PLUGIN_AUTH_LENENC) {
            if (!lenenc(h, n, &i, &alen)) alen = n;
        } else if (caps & WL_MYSQL_CLIENT_SECURE_CONNECTION) {
            alen = i < n ? h[i] : 0;
            i++;
        } else {
            (void)cstr(h, n, &i, &l);
        }
        i = alen > n - (i < n ? i : n) ? n + 1 : i + (size_t)alen;
        if (i <= n && (caps & WL_MYSQL_CLIENT_CONNECT_WITH_DB)) {
            ev.database = cstr(h, n, &i, &l);
            ev.database_len = l;
        }
        if (i <= n && (caps & WL_MYSQL_CLIENT_PLUGIN_AUTH)) {
            ev.auth_plugin = cstr(h, n, &i, &l);
            ev.auth_plugin_len = l;
        }
        if (i < n && (caps & WL_MYSQL_CLIENT_CONNECT_ATTRS)) {
            uint64_t alen2;
            if (lenenc(h, n, &i, &alen2)) {
                ev.attrs = h + i;
                ev.attrs_len = alen2 < n - i ? (size_t)alen2 : n - i;
            }
        }
    }
    ev.capabilities = caps;
    d->phase = PH_AUTH;
    d->exp_seq[WL_DIR_SERVER] = (uint8_t)(s->seq + 1);
    emit(d, &ev);
}

/* A server event of an authentication exchange; cu: 1 for COM_CHANGE_USER. */
static void auth_ev_init(wl_mysql_event *ev, wl_mysql_event_type type, int cu) {
    ev_init(ev, type, WL_DIR_SERVER);
    ev->change_user = (uint8_t)cu;
}

/* The OK or ERR that ends a COM_CHANGE_USER: the command's response is done. */
static void change_user_done(wl_mysql_decoder *d, wl_mysql_event *ev, wl_mysql_outcome outcome) {
    d->change_user = 0;
    emit(d, ev);
    if (d->phase != PH_STOPPED) response_done(d, outcome, ev);
}

/* Server packets of an authentication exchange (login or COM_CHANGE_USER). */
static void auth_packet(wl_mysql_decoder *d, const uint8_t *h, size_t n) {
    wl_mysql_side *s = &d->side[WL_DIR_SERVER];
    wl_mysql_event ev;
    int cu = d->change_user;
    if (n == 0) {
        decoder_error(d, WL_DIR_SERVER, "empty authentication packet");
        return;
    }
    d->exp_seq[WL_DIR_CLIENT] = (uint8_t)(s->seq + 1);
    switch (h[0]) {
    case 0x00:
        auth_ev_init(&ev, WL_MYSQL_EV_LOGIN_OK, cu);
        parse_ok(h, n, 1, &ev);
        ev.capabilities = d->caps;
        if (!cu) {
            d->phase = PH_COMMAND;
            d->resp_state = RS_IDLE;
            emit(d, &ev);
            if (d->phase != PH_STOPPED &&
                (d->caps & (WL_MYSQL_CLIENT_COMPRESS | WL_MYSQL_CLIENT_ZSTD_COMPRESSION))) {
                wl_mysql_event c;
                ev_init(&c, WL_MYSQL_EV_COMPRESSED, WL_DIR_SERVER);
                c.capabilities = d->caps;
                stop(d);
                emit(d, &c);
            }
        } else {
            change_user_done(d, &ev, WL_MYSQL_OUTCOME_OK);
        }
        return;
    case 0xff:
        auth_ev_init(&ev, WL_MYSQL_EV_LOGIN_FAILED, cu);
        parse_err(h, n, &ev);
        if (!cu) {
            stop(d);
            emit(d, &ev);
        } else {
            change_user_done(d, &ev, WL_MYSQL_OUTCOME_ERR);
        }
        return;
    case 0xfe:
    case 0x02: { /* AuthSwitchRequest; AuthNextFactor (MySQL multi-factor) */
        auth_ev_init(&ev, WL_MYSQL_EV_AUTH_SWITCH, cu);
        size_t i = 1, l;
        ev.auth_plugin = cstr(h, n, &i, &l);
        ev.auth_plugin_len = l;
        ev.auth_more = h[0];
        emit(d, &ev);
        return;
    }
    case 0x01:
        auth_ev_init(&ev, WL_MYSQL_EV_AUTH_MORE_DATA, cu);
        ev.auth_more = n > 1 ? h[1] : 0;
        emit(d, &ev);
        return;
    default:
        decoder_error(d, WL_DIR_SERVER, "unexpected packet during authentication");
        return;
    }
}

static int valid_coldef(const uint8_t *h, size_t n) {
    /* catalog is always the length-encoded string "def" */
    return n >= 1 && h[0] == 3 && (n < 4 || (h[1] == 'd' && h[2] == 'e' && h[3] == 'f'));
}

/* A COM_FIELD_LIST response packet other than ERR: a column definition or the terminator. */
static void field_list_packet(wl_mysql_decoder *d, const uint8_t *h, size_t n, wl_mysql_event *ev) {
    if (is_terminator(d, h, n)) {
        parse_terminator(d, h, n, ev);
        end_result(d, ev, 1);
    } else if (!valid_coldef(h, n)) {
        decoder_error(d, WL_DIR_SERVER, "bad field list definition");
    } else {
        d->columns++;
    }
}

static void response_first(wl_mysql_decoder *d, const uint8_t *h, size_t n) {
    wl_mysql_side *s = &d->side[WL_DIR_SERVER];
    wl_mysql_event ev;
    ev_init(&ev, WL_MYSQL_EV_RESULT, WL_DIR_SERVER);
    uint8_t cmd = d->cur.command;
    if (n == 0) {
        decoder_error(d, WL_DIR_SERVER, "empty response packet");
        return;
    }
    if (h[0] == 0xff) {
        parse_err(h, n, &ev);
        if (ev.err_code == 0xffff && (d->caps & WL_MYSQL_MARIADB_CLIENT_PROGRESS)) return; /* progress report */
        ev.outcome = WL_MYSQL_OUTCOME_ERR;
        response_done(d, WL_MYSQL_OUTCOME_ERR, &ev);
        return;
    }
    switch (cmd) {
    case WL_MYSQL_COM_STATISTICS:
        response_done(d, WL_MYSQL_OUTCOME_OK, NULL);
        return;
    case WL_MYSQL_COM_FIELD_LIST:
        d->resp_state = RS_FIELDS;
        begin_result(d);
        field_list_packet(d, h, n, &ev);
        return;
    case WL_MYSQL_COM_STMT_PREPARE:
        if (h[0] != 0x00 || n < 12) {
            decoder_error(d, WL_DIR_SERVER, "bad COM_STMT_PREPARE response");
            return;
        }
        d->prep_stmt_id = wl_le32(h + 1);
        d->prep_cols = wl_le16(h + 5);
        d->prep_params = wl_le16(h + 7);
        d->total_warnings += wl_le16(h + 10);
        d->cur.stmt_id = d->prep_stmt_id;
        d->metadata = 1;
        if ((d->caps & WL_MYSQL_CLIENT_OPTIONAL_METADATA) && s->pkt_len >= 13 && n >= 13) d->metadata = h[12];
        stmt_remember(d, d->prep_stmt_id, d->cur.verb);
        d->last_prepared = d->prep_stmt_id;
        d->last_prepared_verb = d->cur.verb;
        d->coldefs_left = d->prep_params;
        d->prep_stage = PREP_PARAMS;
        d->resp_state = RS_PREP;
        if (!d->metadata || (d->prep_params == 0 && d->prep_cols == 0)) goto prepared;
        if (d->prep_params == 0) {
            d->prep_stage = PREP_COLS;
            d->coldefs_left = d->prep_cols;
        }
        return;
    prepared:
        ev.stmt_id = d->prep_stmt_id;
        ev.columns = d->prep_cols;
        ev.params = d->prep_params;
        ev.command = cmd;
        ev.verb = d->cur.verb;
        ev.cmd_no = d->cur.cmd_no;
        d->results++;
        emit(d, &ev);
        if (d->phase != PH_STOPPED) response_done(d, WL_MYSQL_OUTCOME_OK, &ev);
        return;
    default:
        break;
    }
    if (h[0] == 0x00) {
        parse_ok(h, n, (d->caps & WL_MYSQL_CLIENT_PROTOCOL_41) != 0, &ev);
        end_result(d, &ev, 0);
        return;
    }
    if (h[0] == 0xfe && s->pkt_len < 9) {
        parse_eof(h, n, &ev);
        end_result(d, &ev, 0);
        return;
    }
    if (h[0] == 0xfb && cmd == WL_MYSQL_COM_QUERY) {
        wl_mysql_event f;
        ev_init(&f, WL_MYSQL_EV_LOCAL_INFILE, WL_DIR_SERVER);
        f.command = cmd;
        f.cmd_no = d->cur.cmd_no;
        f.text = (const char *)h + 1;
        f.text_len = n - 1;
        f.text_total = s->pkt_len - 1;
        d->client_state = CS_INFILE;
        d->resp_state = RS_INFILE;
        emit(d, &f);
        return;
    }
    /* a result set: column count, [metadata flag] */
    size_t i = 0;
    uint64_t cols;
    if (!lenenc(h, n, &i, &cols) || cols == 0 || cols > 0xffff || s->pkt_len > i + 1) {
        decoder_error(d, WL_DIR_SERVER, "bad result set header");
        return;
    }
    begin_result(d);
    d->columns = cols;
    d->metadata = 1;
    if (s->pkt_len == i + 1) d->metadata = h[i] != 0;
    d->coldefs_left = cols;
    if (d->metadata) d->resp_state = RS_COLDEFS;
    else d->resp_state = (d->caps & WL_MYSQL_CLIENT_DEPRECATE_EOF) ? RS_ROWS : RS_COLDEFS_EOF;
}

/* The next command to answer into d->cur; 0 when it is unattributed. */
static int take_command(wl_mysql_decoder *d) {
    wl_mysql_pending *e = pend_at(d, 0);
    if (e->count == 0) {
        if (--e->lost == 0) pend_pop(d);
        return 0;
    }
    if (e->splitting) { /* answered before its text ended: keep the verbs found so far */
        e->splitting = 0;
        e->nverbs = d->split.stored;
        d->split.queued = d->split.store = 0;
    }
    d->cur = *e;
    d->cur.count = 1;
    d->cur.lost = 0;
    e->cmd_no++;
    if (--e->count == 0) {
        if (e->lost == 0) pend_pop(d);
        else e->nverbs = 0;
    }
    return 1;
}

static void response_packet(wl_mysql_decoder *d, const uint8_t *h, size_t n) {
    wl_mysql_side *s = &d->side[WL_DIR_SERVER];
    if (d->resp_state == RS_LOST) {
        if (s->seq == d->exp_seq[WL_DIR_SERVER]) { /* still the skipped answer */
            d->exp_seq[WL_DIR_SERVER] = (uint8_t)(s->seq + 1);
            return;
        }
        d->resp_state = RS_IDLE; /* a new answer starts */
    }
    if (d->resp_state == RS_IDLE) {
        if (d->pend_count == 0) {
            protocol_error(d, WL_DIR_SERVER, "server packet without a pending command");
            d->exp_seq[WL_DIR_SERVER] = (uint8_t)(s->seq + 1);
            return;
        }
        if (!take_command(d)) { /* an unattributed command's answer */
            d->resp_state = RS_LOST;
            d->exp_seq[WL_DIR_SERVER] = (uint8_t)(s->seq + 1);
            return;
        }
        d->stmt_idx = 0;
        d->total_rows = d->total_affected = 0;
        d->total_warnings = 0;
        d->results = 0;
        begin_result(d);
        check_seq(d, WL_DIR_SERVER, d->cur.resp_seq);
        if (d->cur.command == WL_MYSQL_COM_CHANGE_USER) {
            d->resp_state = RS_AUTH;
            d->change_user = 1;
        } else if (d->cur.command == WL_MYSQL_COM_STMT_FETCH) {
            d->resp_state = RS_ROWS;
        } else {
            d->resp_state = RS_FIRST;
        }
    } else {
        check_seq(d, WL_DIR_SERVER, d->exp_seq[WL_DIR_SERVER]);
    }
    d->exp_seq[WL_DIR_SERVER] = (uint8_t)(s->seq + 1);
    d->exp_seq[WL_DIR_CLIENT] = (uint8_t)(s->seq + 1);

    wl_mysql_event ev;
    ev_init(&ev, WL_MYSQL_EV_RESULT, WL_DIR_SERVER);
    switch (d->resp_state) {
    case RS_FIRST:
        response_first(d, h, n);
        return;
    case RS_AUTH:
        auth_packet(d, h, n);
        return;
    case RS_COLDEFS:
        if (!valid_coldef(h, n)) {
            decoder_error(d, WL_DIR_SERVER, "bad column definition");
            return;
        }
        if (--d->coldefs_left == 0)
            d->resp_state = (d->caps & WL_MYSQL_CLIENT_DEPRECATE_EOF) ? RS_ROWS : RS_COLDEFS_EOF;
        return;
    case RS_COLDEFS_EOF:
        if (!(n >= 1 && h[0] == 0xfe && s->pkt_len < 9)) {
            decoder_error(d, WL_DIR_SERVER, "missing EOF after column definitions");
            return;
        }
        parse_eof(h, n, &ev);
        if ((d->cur.command == WL_MYSQL_COM_STMT_EXECUTE) && (ev.status_flags & WL_MYSQL_STATUS_CURSOR_EXISTS)) {
            ev.cursor = 1;
            end_result(d, &ev, 1);
            return;
        }
        d->resp_state = RS_ROWS;
        return;
    case RS_ROWS:
        if (n >= 1 && h[0] == 0xff) {
            parse_err(h, n, &ev);
            ev.outcome = WL_MYSQL_OUTCOME_ERR;
            d->total_rows += d->rows;
            response_done(d, WL_MYSQL_OUTCOME_ERR, &ev);
            return;
        }
        if (is_terminator(d, h, n)) {
            parse_terminator(d, h, n, &ev);
            if (ev.status_flags & WL_MYSQL_STATUS_CURSOR_EXISTS && d->cur.command == WL_MYSQL_COM_STMT_EXECUTE)
                ev.cursor = 1;
            end_result(d, &ev, 1);
            return;
        }
        d->rows++;
        return;
    case RS_FIELDS:
        if (n >= 1 && h[0] == 0xff) {
            parse_err(h, n, &ev);
            response_done(d, WL_MYSQL_OUTCOME_ERR, &ev);
        } else {
            field_list_packet(d, h, n, &ev);
        }
        return;
    case RS_PREP:
        switch (d->prep_stage) {
        case PREP_PARAMS:
        case PREP_COLS:
            if (!valid_coldef(h, n)) {
                decoder_error(d, WL_DIR_SERVER, "bad prepared statement definition");
                return;
            }
            if (--d->coldefs_left > 0) return;
            if (!(d->caps & WL_MYSQL_CLIENT_DEPRECATE_EOF)) {
                d->prep_stage++;
                return;
            }
            break;
        default: /* an EOF */
            if (!(n >= 1 && h[0] == 0xfe && s->pkt_len < 9)) {
                decoder_error(d, WL_DIR_SERVER, "missing EOF after prepared statement definitions");
                return;
            }
            parse_eof(h, n, &ev);
            break;
        }
        if ((d->prep_stage == PREP_PARAMS || d->prep_stage == PREP_PARAMS_EOF) && d->prep_cols > 0) {
            d->prep_stage = PREP_COLS;
            d->coldefs_left = d->prep_cols;
            return;
        }
        ev_init(&ev, WL_MYSQL_EV_RESULT, WL_DIR_SERVER);
        ev.stmt_id = d->prep_stmt_id;
        ev.columns = d->prep_cols;
        ev.params = d->prep_params;
        ev.command = d->cur.command;
        ev.verb = d->cur.verb;
        ev.cmd_no = d->cur.cmd_no;
        d->results++;
        emit(d, &ev);
        if (d->phase != PH_STOPPED) response_done(d, WL_MYSQL_OUTCOME_OK, &ev);
        return;
    case RS_INFILE:
        protocol_error(d, WL_DIR_SERVER, "server packet during LOCAL INFILE upload");
        return;
    default:
        decoder_error(d, WL_DIR_SERVER, "internal state");
        return;
    }
}

static void client_packet(wl_mysql_decoder *d, const uint8_t *h, size_t n) {
    wl_mysql_side *s = &d->side[WL_DIR_CLIENT];
    switch (d->phase) {
    case PH_GREETING:
        decoder_error(d, WL_DIR_CLIENT, "client spoke before the server greeting");
        return;
    case PH_LOGIN:
        login(d, h, n);
        return;
    case PH_AUTH:
        if (s->seq == 0) { /* a command pipelined behind the handshake */
            command(d, h, n);
            return;
        }
        check_seq(d, WL_DIR_CLIENT, d->exp_seq[WL_DIR_CLIENT]);
        d->exp_seq[WL_DIR_SERVER] = (uint8_t)(s->seq + 1);
        return;
    case PH_COMMAND:
        if (d->client_state == CS_INFILE) {
            check_seq(d, WL_DIR_CLIENT, d->exp_seq[WL_DIR_CLIENT]);
            d->exp_seq[WL_DIR_SERVER] = (uint8_t)(s->seq + 1);
            if (s->pkt_len == 0) { /* end of the upload */
                d->client_state = CS_COMMAND;
                if (d->resp_state == RS_INFILE) d->resp_state = RS_FIRST;
            }
            return;
        }
        if (d->resp_state == RS_AUTH && s->seq != 0) { /* COM_CHANGE_USER auth data */
            check_seq(d, WL_DIR_CLIENT, d->exp_seq[WL_DIR_CLIENT]);
            d->exp_seq[WL_DIR_SERVER] = (uint8_t)(s->seq + 1);
            return;
        }
        command(d, h, n);
        return;
    default:
        return;
    }
}

static void server_packet(wl_mysql_decoder *d, const uint8_t *h, size_t n) {
    wl_mysql_side *s = &d->side[WL_DIR_SERVER];
    switch (d->phase) {
    case PH_GREETING:
        greeting(d, h, n);
        return;
    case PH_LOGIN:
        protocol_error(d, WL_DIR_SERVER, "server packet before the handshake response");
        return;
    case PH_AUTH:
        check_seq(d, WL_DIR_SERVER, d->exp_seq[WL_DIR_SERVER]);
        d->exp_seq[WL_DIR_SERVER] = (uint8_t)(s->seq + 1);
        auth_packet(d, h, n);
        return;
    case PH_COMMAND:
        response_packet(d, h, n);
        return;
    default:
        return;
    }
}

/* A whole packet head (or the packet, if shorter) is available at h[0..n). */
static void packet(wl_mysql_decoder *d, wl_dir dir, const uint8_t *h, size_t n) {
    wl_mysql_side *s = &d->side[dir];
    if (s->in_cont) {
        /* the rest of a >= 16 MiB payload: only the sequence matters */
        check_seq(d, dir, d->exp_seq[dir]);
        d->exp_seq[dir] = (uint8_t)(s->seq + 1);
        d->exp_seq[!dir] = (uint8_t)(s->seq + 1);
        if (dir == WL_DIR_CLIENT && d->phase == PH_COMMAND && d->client_state == CS_COMMAND &&
            d->last_cmd_queued && d->pend_count > 0) {
            wl_mysql_pending *p = pend_tail(d);
            p->resp_seq = (uint8_t)(s->seq + 1);
        }
        if (dir == WL_DIR_CLIENT && d->split.active) {
            s->scan = 1;
            if (s->skip == 0 && !s->cont) { /* an empty last fragment */
                s->scan = 0;
                split_finish(d);
            }
        }
        return;
    }
    if (dir == WL_DIR_CLIENT) {
        client_packet(d, h, n);
        if (d->phase != PH_STOPPED) d->exp_seq[WL_DIR_CLIENT] = (uint8_t)(s->seq + 1);
    } else {
        server_packet(d, h, n);
    }
}

/* The scanned text of a packet has passed: the query ends unless a fragment follows. */
static void scan_done(wl_mysql_decoder *d, wl_mysql_side *s) {
    s->scan = 0;
    if (!s->cont) split_finish(d);
}

/* How many payload bytes of the packet just started must be seen. */
static uint32_t head_want(const wl_mysql_decoder *d, wl_dir dir) {
    const wl_mysql_side *s = &d->side[dir];
    if (s->in_cont) return 0;
    uint32_t cap = WL_MYSQL_HEAD_MAX;
    if (dir == WL_DIR_SERVER && d->phase == PH_COMMAND &&
        (d->resp_state == RS_ROWS || d->resp_state == RS_COLDEFS || d->resp_state == RS_FIELDS ||
         d->resp_state == RS_PREP || d->resp_state == RS_COLDEFS_EOF || d->resp_state == RS_LOST))
        cap = SMALL_HEAD;
    if (dir == WL_DIR_CLIENT && d->phase == PH_COMMAND && d->client_state == CS_INFILE) cap = 0;
    return s->pkt_len < cap ? s->pkt_len : cap;
}

static void start_packet(wl_mysql_decoder *d, wl_dir dir, const uint8_t *hdr) {
    wl_mysql_side *s = &d->side[dir];
    s->pkt_len = wl_le24(hdr);
    s->seq = hdr[3];
    s->in_cont = s->cont;
    s->cont = s->pkt_len == MAX_PAYLOAD;
    s->hdr_have = 0;
    s->head_have = 0;
}

/* Handshake packets are small; a first "packet" claiming megabytes is another
 * protocol. Checked on the header so the decoder never waits for its body. */
static int plausible_start(wl_mysql_decoder *d, wl_dir dir) {
    const wl_mysql_side *s = &d->side[dir];
    if (d->phase == PH_GREETING) {
        if (dir == WL_DIR_CLIENT) {
            decoder_error(d, dir, "client spoke before the server greeting");
            return 0;
        }
        if (s->pkt_len > 1024 || s->pkt_len == 0) {
            decoder_error(d, dir, "not a MySQL greeting");
            return 0;
        }
    } else if (d->phase == PH_LOGIN && dir == WL_DIR_CLIENT && (s->pkt_len > 65536 || s->pkt_len < 4)) {
        decoder_error(d, dir, "not a MySQL handshake response");
        return 0;
    }
    return 1;
}

void wl_mysql_init(wl_mysql_decoder *d, wl_mysql_event_fn cb, void *ud) {
    memset(d, 0, sizeof *d);
    d->cb = cb;
    d->ud = ud;
    d->phase = PH_GREETING;
    d->pend_cap = WL_MYSQL_PENDING_INLINE;
    d->verbs_cap = WL_MYSQL_VERBS_INLINE;
}

void wl_mysql_release(wl_mysql_decoder *d) {
    free(d->pend);
    free(d->verbs);
    d->pend = NULL;
    d->verbs = NULL;
    d->pend_cap = WL_MYSQL_PENDING_INLINE;
    d->verbs_cap = WL_MYSQL_VERBS_INLINE;
    d->pend_count = d->pend_head = d->verbs_count = d->verbs_head = 0;
}

void wl_mysql_set_clock(wl_mysql_decoder *d, uint64_t now) { d->clock = now; }

int wl_mysql_active(const wl_mysql_decoder *d) { return d->phase != PH_STOPPED; }

void wl_mysql_feed(wl_mysql_decoder *d, wl_dir dir, size_t len, wl_fetch_fn fetch, void *fetch_ctx) {
    if ((unsigned)dir > 1) return;
    wl_mysql_side *s = &d->side[dir];
    size_t off = 0;
    while (off < len && d->phase != PH_STOPPED) {
        if (s->skip && !s->head_need && !s->scan) {
            size_t k = len - off < s->skip ? len - off : s->skip;
            s->skip -= (uint32_t)k;
            off += k;
            continue;
        }
        size_t want = len - off < WL_MYSQL_WINDOW ? len - off : WL_MYSQL_WINDOW;
        if (s->head_need && s->head_need + 4 < want) want = s->head_need + 4;
        size_t got = 0;
        const uint8_t *w = fetch(fetch_ctx, off, want, &got);
        if (!w || got == 0) return;
        if (got > want) got = want;
        size_t p = 0;
        while (p < got && d->phase != PH_STOPPED) {
            if (s->head_need) {
                size_t k = got - p < s->head_need ? got - p : s->head_need;
                memcpy(s->head + s->head_have, w + p, k);
                s->head_have += (uint32_t)k;
                s->head_need -= (uint32_t)k;
                p += k;
                if (s->head_need == 0) packet(d, dir, s->head, s->head_have);
                continue;
            }
            if (s->skip) {
                size_t k = got - p < s->skip ? got - p : s->skip;
                if (s->scan) split_feed(d, w + p, k);
                s->skip -= (uint32_t)k;
                p += k;
                if (s->scan && s->skip == 0) scan_done(d, s);
                continue;
            }
            const uint8_t *hdr;
            if (s->hdr_have == 0 && got - p >= 4) {
                hdr = w + p;
                p += 4;
            } else {
                size_t k = 4u - s->hdr_have;
                if (k > got - p) k = got - p;
                memcpy(s->hdr + s->hdr_have, w + p, k);
                s->hdr_have = (uint8_t)(s->hdr_have + k);
                p += k;
                if (s->hdr_have < 4) break;
                hdr = s->hdr;
            }
            start_packet(d, dir, hdr);
            if (!plausible_start(d, dir)) return;
            uint32_t need = head_want(d, dir);
            s->skip = s->pkt_len - need;
            if (got - p >= need) {
                const uint8_t *h = w + p;
                p += need;
                packet(d, dir, h, need);
            } else {
                size_t k = got - p;
                memcpy(s->head, w + p, k);
                s->head_have = (uint32_t)k;
                s->head_need = need - (uint32_t)k;
                p = got;
            }
        }
        off += got;
    }
}
