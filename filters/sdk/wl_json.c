/* A tiny JSON reader for plugin configuration: find a value by (dotted) key in
 * an object and read it as a string, number or bool. It validates only what
 * it walks over; anything malformed simply reads as "not found". */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wirelab_filter.h"

#define WL_JSON_DEPTH 32

typedef struct {
    const char *p;
    const char *end;
} wl_cur;

static void wl__ws(wl_cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Past a string starting at '"'; 0 on success. */
static int wl__skip_string(wl_cur *c) {
    if (c->p >= c->end || *c->p != '"') return -1;
    for (c->p++; c->p < c->end; c->p++) {
        if (*c->p == '\\') {
            c->p++;
        } else if (*c->p == '"') {
            c->p++;
            return 0;
        }
    }
    return -1;
}

static int wl__is_scalar_char(char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || ch == '-' || ch == '+' ||
           ch == '.' || ch == 'E';
}

/* Past any value; containers are walked with a depth counter, not recursion. */
static int wl__skip_value(wl_cur *c) {
    int depth = 0;
    wl__ws(c);
    do {
        if (c->p >= c->end) return -1;
        char ch = *c->p;
        if (ch == '"') {
            if (wl__skip_string(c)) return -1;
        } else if (ch == '{' || ch == '[') {
            if (++depth > WL_JSON_DEPTH) return -1;
            c->p++;
        } else if (ch == '}' || ch == ']') {
            if (--depth < 0) return -1;
            c->p++;
        } else if (ch == ',' || ch == ':') {
            if (depth == 0) return -1;
            c->p++;
        } else if (wl__is_scalar_char(ch)) {
            while (c->p < c->end && wl__is_scalar_char(*c->p)) c->p++;
        } else {
            return -1;
        }
        wl__ws(c);
    } while (depth > 0);
    return 0;
}

/* With c at '{', moves c to the value of member `key` (key_len bytes). */
static int wl__member(wl_cur *c, const char *key, size_t key_len) {
    wl__ws(c);
    if (c->p >= c->end || *c->p != '{') return -1;
    c->p++;
    wl__ws(c);
    if (c->p < c->end && *c->p == '}') return -1;
    for (;;) {
        const char *k = c->p + 1;
        if (wl__skip_string(c)) return -1;
        size_t klen = (size_t)(c->p - 1 - k);
        wl__ws(c);
        if (c->p >= c->end || *c->p != ':') return -1;
        c->p++;
        wl__ws(c);
        if (klen == key_len && memcmp(k, key, key_len) == 0) return 0;
        if (wl__skip_value(c)) return -1;
        if (c->p >= c->end || *c->p != ',') return -1; /* '}' or garbage: not found */
        c->p++;
        wl__ws(c);
    }
}

static int wl__lookup(const char *json, size_t len, const char *key, wl_cur *c) {
    if (!json || !key) return -1;
    c->p = json;
    c->end = json + len;
    for (;;) {
        const char *dot = strchr(key, '.');
        size_t seg = dot ? (size_t)(dot - key) : strlen(key);
        if (wl__member(c, key, seg)) return -1;
        if (!dot) return 0;
        key = dot + 1;
    }
}

static int wl__hex(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

static int wl__hex4(const char *p, const char *end, uint32_t *out) {
    if (end - p < 4) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = wl__hex(p[i]);
        if (h < 0) return -1;
        v = (v << 4) | (uint32_t)h;
    }
    *out = v;
    return 0;
}

static size_t wl__utf8(uint32_t cp, char *o) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

int wl_json_string(const char *json, size_t len, const char *key, char *out, size_t cap) {
    wl_cur c;
    if (!cap || wl__lookup(json, len, key, &c) || c.p >= c.end || *c.p != '"') return -1;
    size_t n = 0;
    char tmp[4];
    for (c.p++; c.p < c.end && *c.p != '"'; c.p++) {
        const char *piece = c.p;
        size_t plen = 1;
        if (*c.p == '\\') {
            if (++c.p >= c.end) return -1;
            piece = tmp;
            switch (*c.p) {
            case '"': case '\\': case '/': tmp[0] = *c.p; break;
            case 'b': tmp[0] = '\b'; break;
            case 'f': tmp[0] = '\f'; break;
            case 'n': tmp[0] = '\n'; break;
            case 'r': tmp[0] = '\r'; break;
            case 't': tmp[0] = '\t'; break;
            case 'u': {
                uint32_t cp, lo;
                if (wl__hex4(c.p + 1, c.end, &cp)) return -1;
                c.p += 4;
                if (cp >= 0xD800 && cp < 0xDC00 && c.end - c.p > 6 && c.p[1] == '\\' &&
                    c.p[2] == 'u' && wl__hex4(c.p + 3, c.end, &lo) == 0 && lo >= 0xDC00 &&
                    lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    c.p += 6;
                }
                if (cp == 0) return -1; /* a C string cannot hold NUL */
                plen = wl__utf8(cp, tmp);
                break;
            }
            default: return -1;
            }
        }
        if (n + plen >= cap) return -1;
        memcpy(out + n, piece, plen);
        n += plen;
    }
    if (c.p >= c.end) return -1;
    out[n] = '\0';
    return 0;
}

/* The number token at c, NUL-terminated into buf. */
static int wl__number_token(wl_cur *c, char *buf, size_t cap) {
    size_t n = 0;
    if (c->p >= c->end || !(*c->p == '-' || (*c->p >= '0' && *c->p <= '9'))) return -1;
    while (c->p < c->end && wl__is_scalar_char(*c->p) && n + 1 < cap) buf[n++] = *c->p++;
    buf[n] = '\0';
    return 0;
}

int wl_json_number(const char *json, size_t len, const char *key, double *out) {
    wl_cur c;
    char buf[64];
    if (wl__lookup(json, len, key, &c) || wl__number_token(&c, buf, sizeof buf)) return -1;
    char *endp;
    double v = strtod(buf, &endp);
    if (*endp != '\0') return -1;
    *out = v;
    return 0;
}

int wl_json_int(const char *json, size_t len, const char *key, int64_t *out) {
    wl_cur c;
    char buf[64];
    if (wl__lookup(json, len, key, &c) || wl__number_token(&c, buf, sizeof buf)) return -1;
    char *endp;
    errno = 0;
    long long v = strtoll(buf, &endp, 10);
    if (*endp == '\0' && errno == ERANGE) return -1; /* not an int64: no clamped guess */
    if (*endp != '\0') {
        /* 1e3 or 100.0: accept when integral. The range check comes first:
         * converting a double outside int64 (or NaN) is undefined behaviour. */
        double d = strtod(buf, &endp);
        if (*endp != '\0' || !(d >= -0x1p63 && d < 0x1p63) || d != (double)(long long)d) return -1;
        v = (long long)d;
    }
    *out = (int64_t)v;
    return 0;
}

int wl_json_bool(const char *json, size_t len, const char *key, int *out) {
    wl_cur c;
    if (wl__lookup(json, len, key, &c)) return -1;
    size_t left = (size_t)(c.end - c.p);
    if (left >= 4 && memcmp(c.p, "true", 4) == 0) {
        *out = 1;
        return 0;
    }
    if (left >= 5 && memcmp(c.p, "false", 5) == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* ---- plugin configuration ------------------------------------------------------- */

int wl_config_string(const wl_plugin *p, const char *key, char *out, size_t cap,
                     const char *dflt) {
    if (!cap) return 0;
    if (!p || wl_json_string(p->config, p->config_len, key, out, cap) != 0) {
        size_t n = dflt ? strlen(dflt) : 0;
        if (n >= cap) n = cap - 1;
        if (n) memcpy(out, dflt, n);
        out[n] = '\0';
    }
    return (int)strlen(out);
}

int64_t wl_config_int(const wl_plugin *p, const char *key, int64_t dflt) {
    int64_t v;
    return p && wl_json_int(p->config, p->config_len, key, &v) == 0 ? v : dflt;
}

int wl_config_bool(const wl_plugin *p, const char *key, int dflt) {
    int v;
    return p && wl_json_bool(p->config, p->config_len, key, &v) == 0 ? v : dflt;
}
