/* JSON text -> Lua values, for the plugin configuration. Objects become
 * tables, arrays become sequences (1-based), null becomes nil, integers stay
 * integers. Runs inside a protected call: errors are Lua errors. */
#include <string.h>

#include "wl_lua.h"

#define MAX_DEPTH 64

typedef struct {
    const char *p, *start, *end;
    int depth;
} wl_lj_cur;

static void wl_lj_fail(lua_State *L, wl_lj_cur *c, const char *what) {
    luaL_error(L, "configuration: invalid JSON at byte %d: %s", (int)(c->p - c->start), what);
}

static void wl_lj_ws(wl_lj_cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) c->p++;
}

static int wl_lj_hex4(wl_lj_cur *c, unsigned *out) {
    if (c->end - c->p < 4) return 0;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = c->p[i];
        v <<= 4;
        if (ch >= '0' && ch <= '9') v |= (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f') v |= (unsigned)(ch - 'a' + 10);
        else if (ch >= 'A' && ch <= 'F') v |= (unsigned)(ch - 'A' + 10);
        else return 0;
    }
    c->p += 4;
    *out = v;
    return 1;
}

static void wl_lj_utf8(luaL_Buffer *b, unsigned cp) {
    char o[4];
    int n;
    if (cp < 0x80) { o[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    luaL_addlstring(b, o, (size_t)n);
}

static void wl_lj_string(lua_State *L, wl_lj_cur *c) {
    c->p++; /* opening quote */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (;;) {
        const char *run = c->p;
        while (c->p < c->end && *c->p != '"' && *c->p != '\\' && (unsigned char)*c->p >= 0x20) c->p++;
        luaL_addlstring(&b, run, (size_t)(c->p - run));
        if (c->p >= c->end) wl_lj_fail(L, c, "unterminated string");
        char ch = *c->p++;
        if (ch == '"') break;
        if (ch != '\\') wl_lj_fail(L, c, "control character in string");
        if (c->p >= c->end) wl_lj_fail(L, c, "unterminated escape");
        ch = *c->p++;
        switch (ch) {
        case '"': luaL_addchar(&b, '"'); break;
        case '\\': luaL_addchar(&b, '\\'); break;
        case '/': luaL_addchar(&b, '/'); break;
        case 'b': luaL_addchar(&b, '\b'); break;
        case 'f': luaL_addchar(&b, '\f'); break;
        case 'n': luaL_addchar(&b, '\n'); break;
        case 'r': luaL_addchar(&b, '\r'); break;
        case 't': luaL_addchar(&b, '\t'); break;
        case 'u': {
            unsigned cp;
            if (!wl_lj_hex4(c, &cp)) wl_lj_fail(L, c, "bad \\u escape");
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (c->end - c->p >= 6 && c->p[0] == '\\' && c->p[1] == 'u') {
                    c->p += 2;
                    if (!wl_lj_hex4(c, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        wl_lj_fail(L, c, "bad surrogate pair");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    wl_lj_fail(L, c, "lone surrogate");
                }
            }
            wl_lj_utf8(&b, cp);
            break;
        }
        default: wl_lj_fail(L, c, "bad escape");
        }
    }
    luaL_pushresult(&b);
}

static void wl_lj_number(lua_State *L, wl_lj_cur *c) {
    char buf[64];
    size_t n = 0;
    while (c->p < c->end && n < sizeof buf - 1 &&
           (strchr("+-0123456789.eE", *c->p) != NULL)) buf[n++] = *c->p++;
    buf[n] = '\0';
    if (n == 0 || lua_stringtonumber(L, buf) != n + 1) wl_lj_fail(L, c, "bad number");
}

static void wl_lj_literal(lua_State *L, wl_lj_cur *c, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) wl_lj_fail(L, c, "unexpected token");
    c->p += n;
}

static void wl_lj_value(lua_State *L, wl_lj_cur *c) {
    wl_lj_ws(c);
    if (c->p >= c->end) wl_lj_fail(L, c, "unexpected end");
    luaL_checkstack(L, 4, "JSON nesting");
    char ch = *c->p;
    if (ch == '{' || ch == '[') {
        if (++c->depth > MAX_DEPTH) wl_lj_fail(L, c, "nested too deeply");
        c->p++;
        lua_newtable(L);
        wl_lj_ws(c);
        char close = ch == '{' ? '}' : ']';
        lua_Integer i = 0;
        if (c->p < c->end && *c->p == close) {
            c->p++;
        } else {
            for (;;) {
                if (ch == '{') {
                    wl_lj_ws(c);
                    if (c->p >= c->end || *c->p != '"') wl_lj_fail(L, c, "expected a key");
                    wl_lj_string(L, c);
                    wl_lj_ws(c);
                    if (c->p >= c->end || *c->p != ':') wl_lj_fail(L, c, "expected ':'");
                    c->p++;
                    wl_lj_value(L, c);
                    lua_rawset(L, -3);
                } else {
                    wl_lj_value(L, c);
                    lua_rawseti(L, -2, ++i);
                }
                wl_lj_ws(c);
                if (c->p < c->end && *c->p == ',') { c->p++; continue; }
                if (c->p < c->end && *c->p == close) { c->p++; break; }
                wl_lj_fail(L, c, ch == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
            }
        }
        c->depth--;
    } else if (ch == '"') {
        wl_lj_string(L, c);
    } else if (ch == 't') {
        wl_lj_literal(L, c, "true");
        lua_pushboolean(L, 1);
    } else if (ch == 'f') {
        wl_lj_literal(L, c, "false");
        lua_pushboolean(L, 0);
    } else if (ch == 'n') {
        wl_lj_literal(L, c, "null");
        lua_pushnil(L);
    } else {
        wl_lj_number(L, c);
    }
}

void wl_lua_push_json(lua_State *L, const char *json, size_t len) {
    wl_lj_cur c = {json, json, json + len, 0};
    wl_lj_ws(&c);
    if (c.p == c.end) { /* no configuration at all */
        lua_newtable(L);
        return;
    }
    wl_lj_value(L, &c);
    wl_lj_ws(&c);
    if (c.p != c.end) wl_lj_fail(L, &c, "trailing characters");
}
