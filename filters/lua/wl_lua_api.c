/* The script-facing API: the `wirelab` library, connection objects, data
 * buffers and metric objects. Documented in API.md. */
#include <string.h>

#include "wl_lua.h"
#if !defined(WL_TARGET_WASM)
#include "wl_native.h" /* wl__dm_filter: the connection a host call is for */
#endif

#define CONN_MT "wirelab.connection"
#define BUFFER_MT "wirelab.buffer"
#define METRIC_MT "wirelab.metric"
#define MAX_TAGS 16
#define MAX_TAG_VALUE 64

/* ---- logging ---------------------------------------------------------------- */

/* Joins the arguments from `first` with spaces, like print(). */
static const char *wl_lua_join(lua_State *L, int first, size_t *len) {
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = first; i <= n; i++) {
        if (i > first) luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return lua_tolstring(L, -1, len);
}

static int wl_lua_log_at(lua_State *L, wl_log_level level, int first) {
    size_t len;
    const char *msg = wl_lua_join(L, first, &len);
    wl_log(level, "%.*s", (int)len, msg);
    return 0;
}

#define LOG_FNS(Suffix, level)                                                                    \
    static int wl_lua_log##Suffix(lua_State *L) { return wl_lua_log_at(L, level, 1); }            \
    static int wl_lua_conn_log##Suffix(lua_State *L) {                                            \
        luaL_checkudata(L, 1, CONN_MT);                                                           \
        return wl_lua_log_at(L, level, 2);                                                        \
    }
LOG_FNS(Trace, WL_LOG_TRACE)
LOG_FNS(Debug, WL_LOG_DEBUG)
LOG_FNS(Info, WL_LOG_INFO)
LOG_FNS(Warn, WL_LOG_WARN)
LOG_FNS(Err, WL_LOG_ERROR)
LOG_FNS(Critical, WL_LOG_CRITICAL)

/* ---- connection objects ------------------------------------------------------
 * A full userdata holding the wl_conn* (NULL once the connection ended) with
 * the per-connection state table as its user value. */

/* luaL_checkudata finds the metatable by its name, a C string that Lua
 * checks against its string cache with strcmp, on every metric update and
 * connection method. Comparing with the metatable held by reference costs no
 * string work; a mismatch falls back to luaL_checkudata for its message. */
static void *wl_lua_check_class(lua_State *L, int ref, const char *mt) {
    void *p = lua_touserdata(L, 1);
    if (p && lua_getmetatable(L, 1)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
        int same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (same) return p;
    }
    return luaL_checkudata(L, 1, mt);
}

void wl_lua_push_conn(lua_State *L, wl_conn *c) {
    wl_lua_conn *lc = c->state;
    if (lc->ref != LUA_NOREF && lc->ref != 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, lc->ref);
        return;
    }
    wl_conn **slot = lua_newuserdatauv(L, sizeof(wl_conn *), 1);
    *slot = c;
    lua_newtable(L);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, CONN_MT);
}

static int wl_lua_nil(lua_State *L) {
    lua_pushnil(L);
    return 1;
}

static wl_conn *wl_lua_check_conn(lua_State *L) {
    wl_conn **slot = wl_lua_check_class(L, wl_lua_vm_of(L)->ref_conn_mt, CONN_MT);
    return *slot;
}

static int wl_lua_conn_id(lua_State *L) {
    wl_conn *c = wl_lua_check_conn(L);
    if (!c) return wl_lua_nil(L);
    lua_pushinteger(L, (lua_Integer)c->context_id);
    return 1;
}

static int wl_lua_push_property(lua_State *L, wl_conn *c, const char *path) {
    if (!c) return wl_lua_nil(L);
    char buf[256];
    /* A connection object kept from another connection's callback: read its
     * properties in its own context, then switch back. */
#if defined(WL_TARGET_WASM)
    int other = c->context_id != wl_lua_current_context;
    if (other) proxy_set_effective_context(c->context_id);
    int n = wl_property_string(path, buf, sizeof buf);
    if (other && wl_lua_current_context) proxy_set_effective_context(wl_lua_current_context);
#else
    /* Natively a property is read through the connection's own Envoy pointer
     * (live: an ended connection's object holds NULL; one worker, one VM). */
    void *current = wl__dm_filter;
    wl__dm_filter = c->host;
    int n = wl_property_string(path, buf, sizeof buf);
    wl__dm_filter = current;
#endif
    if (n < 0) return wl_lua_nil(L);
    if ((size_t)n >= sizeof buf) n = sizeof buf - 1;
    lua_pushlstring(L, buf, (size_t)n);
    return 1;
}

static int wl_lua_conn_source(lua_State *L) {
    return wl_lua_push_property(L, wl_lua_check_conn(L), "source.address");
}

static int wl_lua_conn_destination(lua_State *L) {
    return wl_lua_push_property(L, wl_lua_check_conn(L), "destination.address");
}

/* conn:property("upstream.address") -> string, or nil when absent. */
static int wl_lua_conn_property(lua_State *L) {
    wl_conn *c = wl_lua_check_conn(L);
    return wl_lua_push_property(L, c, luaL_checkstring(L, 2));
}

static int wl_lua_conn_bytes(lua_State *L) {
    wl_conn *c = wl_lua_check_conn(L);
    if (!c) return wl_lua_nil(L);
    lua_pushinteger(L, (lua_Integer)c->bytes[WL_DIR_CLIENT]);
    lua_pushinteger(L, (lua_Integer)c->bytes[WL_DIR_SERVER]);
    return 2;
}

static int wl_lua_conn_age_us(lua_State *L) {
    wl_conn *c = wl_lua_check_conn(L);
    if (!c) return wl_lua_nil(L);
    lua_pushinteger(L, (lua_Integer)((wl_now_ns() - c->started_ns) / 1000));
    return 1;
}

static int wl_lua_conn_index(lua_State *L) {
    const char *key = lua_tostring(L, 2);
    if (key && strcmp(key, "state") == 0) {
        lua_getiuservalue(L, 1, 1);
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int wl_lua_conn_tostring(lua_State *L) {
    wl_conn *c = wl_lua_check_conn(L);
    if (c) lua_pushfstring(L, "connection#%d", (int)c->context_id);
    else lua_pushliteral(L, "connection (closed)");
    return 1;
}

/* ---- data buffers ---------------------------------------------------------------
 * Reused objects (one per direction) that point at the read being handled;
 * bytes are copied out of the host only when the script asks for them. */

static wl_read *wl_lua_check_read(lua_State *L) {
    wl_read **slot = luaL_checkudata(L, 1, BUFFER_MT);
    if (!*slot) luaL_error(L, "data buffer used outside its callback");
    return *slot;
}

static int wl_lua_buffer_length(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)wl_lua_check_read(L)->size);
    return 1;
}

static void wl_lua_push_range(lua_State *L, wl_read *r, size_t off, size_t len) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (len > 0) {
        size_t got = 0;
        const uint8_t *p = wl_read_fetch(r, off, len, &got);
        if (!p || got == 0) luaL_error(L, "the host returned fewer bytes than the read holds");
        luaL_addlstring(&b, (const char *)p, got);
        off += got;
        len -= got;
    }
    luaL_pushresult(&b);
}

/* data:getBytes(index, length): `length` bytes from 0-based `index`. */
static int wl_lua_buffer_get(lua_State *L) {
    wl_read *r = wl_lua_check_read(L);
    lua_Integer index = luaL_checkinteger(L, 2);
    lua_Integer length = luaL_optinteger(L, 3, (lua_Integer)r->size - index);
    if (index < 0 || length < 0 || (lua_Unsigned)index + (lua_Unsigned)length > r->size)
        return luaL_error(L, "getBytes(%I, %I): index and length must be >= 0 and index + length "
                             "<= %I (the buffer's length)",
                          (LUAI_UACINT)index, (LUAI_UACINT)length, (LUAI_UACINT)r->size);
    wl_lua_push_range(L, r, (size_t)index, (size_t)length);
    return 1;
}

static int wl_lua_buffer_bytes(lua_State *L) {
    wl_read *r = wl_lua_check_read(L);
    wl_lua_push_range(L, r, 0, r->size);
    return 1;
}

static int wl_lua_buffer_tostring(lua_State *L) {
    wl_read **slot = luaL_checkudata(L, 1, BUFFER_MT);
    if (*slot) lua_pushfstring(L, "buffer (%I bytes)", (LUAI_UACINT)(*slot)->size);
    else lua_pushliteral(L, "buffer (expired)");
    return 1;
}

/* ---- metrics ------------------------------------------------------------------- */

typedef struct {
    wl_metric id;
    int type;
} wl_lua_metric;

static const char *const wl_lua_type_names[] = {"counter", "gauge", "histogram"};

static int wl_lua_name_char(int ch, int dot_ok) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || (dot_ok && ch == '.');
}

static void wl_lua_check_name(lua_State *L, const char *s, size_t len, int dot_ok, const char *what) {
    if (len == 0 || len > 100) luaL_error(L, "%s must be 1 to 100 characters", what);
    for (size_t i = 0; i < len; i++) {
        if (!wl_lua_name_char((unsigned char)s[i], dot_ok))
            luaL_error(L, "%s \"%s\" may only use letters, digits and '_'%s", what, s,
                       dot_ok ? " and '.'" : "");
    }
    if (dot_ok && (s[0] == '.' || s[len - 1] == '.' || strstr(s, "..")))
        luaL_error(L, "%s \"%s\" has an empty segment", what, s);
}

/* Appends ".key=value" for each tag (sorted by key); `other` replaces values. */
static void wl_lua_add_tags(lua_State *L, luaL_Buffer *b, const char **keys, const char **vals,
                            int n, int other) {
    for (int i = 0; i < n; i++) {
        luaL_addchar(b, '.');
        luaL_addstring(b, keys[i]);
        luaL_addchar(b, '=');
        if (other) {
            luaL_addstring(b, "other");
            continue;
        }
        size_t vlen = strlen(vals[i]);
        if (vlen == 0) luaL_addchar(b, '_');
        if (vlen > MAX_TAG_VALUE) vlen = MAX_TAG_VALUE;
        for (size_t j = 0; j < vlen; j++) {
            int ch = (unsigned char)vals[i][j];
            luaL_addchar(b, (char)(wl_lua_name_char(ch, 0) || ch == '-' ? ch : '_'));
        }
    }
}

static int wl_lua_define(lua_State *L, int type) {
    wl_lua_vm *vm = wl_lua_vm_of(L);
    size_t nlen;
    const char *name = luaL_checklstring(L, 1, &nlen);
    wl_lua_check_name(L, name, nlen, 1, "metric name");
    static const char *const reserved[] = {"script_errors", "budget_exceeded", "memory_exceeded",
                                           "decoder_errors", NULL};
    for (int i = 0; reserved[i]; i++) {
        if (strcmp(name, reserved[i]) == 0)
            luaL_error(L, "metric name \"%s\" is reserved for the runtime", name);
    }
    const char *keys[MAX_TAGS], *vals[MAX_TAGS];
    int ntags = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "metric tag keys must be strings");
            if (ntags == MAX_TAGS) luaL_error(L, "a metric takes at most %d tags", MAX_TAGS);
            luaL_checkstack(L, 4, "too many tags");
            size_t klen;
            const char *k = lua_tolstring(L, -2, &klen);
            wl_lua_check_name(L, k, klen, 0, "tag key");
            int vt = lua_type(L, -1);
            if (vt != LUA_TSTRING && vt != LUA_TNUMBER && vt != LUA_TBOOLEAN)
                luaL_error(L, "tag \"%s\" must be a string, number or boolean", k);
            const char *v = luaL_tolstring(L, -1, NULL); /* kept on the stack */
            lua_pushvalue(L, -3);                          /* key, for the next lua_next */
            keys[ntags] = k;
            vals[ntags] = v;
            ntags++;
        }
        /* Stack per tag: value, tostring(value), key. Keys stay alive in the table. */
        for (int i = 1; i < ntags; i++) {
            for (int j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
                const char *tk = keys[j], *tv = vals[j];
                keys[j] = keys[j - 1];
                vals[j] = vals[j - 1];
                keys[j - 1] = tk;
                vals[j - 1] = tv;
            }
        }
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "lua.");
    luaL_addstring(&b, vm->stat_prefix);
    luaL_addchar(&b, '.');
    luaL_addlstring(&b, name, nlen);
    wl_lua_add_tags(L, &b, keys, vals, ntags, 0);
    luaL_pushresult(&b);
    int full = lua_gettop(L);

    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_metrics);
    int cache = lua_gettop(L);
    lua_pushvalue(L, full);
    if (lua_rawget(L, cache) == LUA_TUSERDATA) {
        wl_lua_metric *m = lua_touserdata(L, -1);
        if (m->type != type)
            luaL_error(L, "metric %s is already a %s", lua_tostring(L, full), wl_lua_type_names[m->type]);
        return 1;
    }
    lua_pop(L, 1);
    if (ntags > 0) {
        /* Cap distinct tag sets per name: past the cap, every value is "other". */
        lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_tagsets);
        lua_pushvalue(L, 1);
        lua_rawget(L, -2);
        lua_Integer count = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (count >= vm->max_tag_sets) {
            lua_pop(L, 1);
            luaL_buffinit(L, &b);
            luaL_addstring(&b, "lua.");
            luaL_addstring(&b, vm->stat_prefix);
            luaL_addchar(&b, '.');
            luaL_addlstring(&b, name, nlen);
            wl_lua_add_tags(L, &b, keys, vals, ntags, 1);
            luaL_pushresult(&b);
            lua_replace(L, full);
            lua_pushvalue(L, full);
            if (lua_rawget(L, cache) == LUA_TUSERDATA) return 1;
            lua_pop(L, 1);
        } else {
            lua_pushvalue(L, 1);
            lua_pushinteger(L, count + 1);
            lua_rawset(L, -3);
            lua_pop(L, 1);
        }
    }
    const char *full_name = lua_tostring(L, full);
    if (lua_rawlen(L, full) >= 250) luaL_error(L, "metric name %s is too long", full_name);
    wl_metric id = wl_metric_define((wl_metric_type)type, full_name);
    if (id == WL_METRIC_INVALID) luaL_error(L, "the host refused metric %s", full_name);
    wl_lua_metric *m = lua_newuserdatauv(L, sizeof *m, 0);
    m->id = id;
    m->type = type;
    luaL_setmetatable(L, METRIC_MT);
    lua_pushvalue(L, full);
    lua_pushvalue(L, -2);
    lua_rawset(L, cache);
    return 1;
}

static int wl_lua_counter(lua_State *L) { return wl_lua_define(L, WL_COUNTER); }
static int wl_lua_gauge(lua_State *L) { return wl_lua_define(L, WL_GAUGE); }
static int wl_lua_histogram(lua_State *L) { return wl_lua_define(L, WL_HISTOGRAM); }

static wl_lua_metric *wl_lua_check_metric(lua_State *L, int type_mask, const char *op) {
    wl_lua_metric *m = wl_lua_check_class(L, wl_lua_vm_of(L)->ref_metric_mt, METRIC_MT);
    if (!(type_mask & (1 << m->type)))
        luaL_error(L, "%s() is not available on a %s", op, wl_lua_type_names[m->type]);
    return m;
}

static lua_Integer wl_lua_amount(lua_State *L, int idx, lua_Integer dflt) {
    if (lua_isnoneornil(L, idx)) return dflt;
    lua_Number n = luaL_checknumber(L, idx);
    lua_Integer i;
    if (!lua_numbertointeger(n >= 0 ? n + 0.5 : n - 0.5, &i))
        luaL_error(L, "metric value %f is out of range", (double)n);
    return i;
}

static int wl_lua_metric_inc(lua_State *L) {
    wl_lua_metric *m = wl_lua_check_metric(L, 1 << WL_COUNTER | 1 << WL_GAUGE, "inc");
    lua_Integer n = wl_lua_amount(L, 2, 1);
    if (m->type == WL_COUNTER) {
        if (n < 0) luaL_error(L, "a counter cannot go down (inc(%I))", (LUAI_UACINT)n);
        wl_batch_add(m->id, n); /* one host call per counter per callback */
    } else {
        wl_metric_add(m->id, n);
    }
    return 0;
}

static int wl_lua_metric_dec(lua_State *L) {
    wl_lua_metric *m = wl_lua_check_metric(L, 1 << WL_GAUGE, "dec");
    wl_metric_add(m->id, -wl_lua_amount(L, 2, 1));
    return 0;
}

static int wl_lua_metric_add(lua_State *L) {
    wl_lua_metric *m = wl_lua_check_metric(L, 1 << WL_GAUGE, "add");
    wl_metric_add(m->id, wl_lua_amount(L, 2, 0));
    return 0;
}

static int wl_lua_metric_set(lua_State *L) {
    wl_lua_metric *m = wl_lua_check_metric(L, 1 << WL_GAUGE, "set");
    lua_Integer v = wl_lua_amount(L, 2, 0);
    if (v < 0) luaL_error(L, "a gauge holds values >= 0 (set(%I))", (LUAI_UACINT)v);
    wl_metric_set(m->id, (uint64_t)v);
    return 0;
}

static int wl_lua_metric_observe(lua_State *L) {
    wl_lua_metric *m = wl_lua_check_metric(L, 1 << WL_HISTOGRAM, "observe");
    lua_Integer v = wl_lua_amount(L, 2, 0);
    if (lua_isnoneornil(L, 2)) luaL_error(L, "observe() needs a value");
    if (v < 0) luaL_error(L, "a histogram records values >= 0 (observe(%I))", (LUAI_UACINT)v);
    wl_metric_record(m->id, (uint64_t)v);
    return 0;
}

static int wl_lua_metric_value(lua_State *L) {
    wl_lua_metric *m = wl_lua_check_metric(L, 1 << WL_COUNTER | 1 << WL_GAUGE, "value");
    wl_batch_flush();
    lua_pushinteger(L, (lua_Integer)wl_metric_get(m->id));
    return 1;
}

/* ---- wirelab.* ---------------------------------------------------------------- */

static int wl_lua_now_us(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)(wl_now_ns() / 1000));
    return 1;
}

static int wl_lua_wall_us(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)(wl_wall_ns() / 1000));
    return 1;
}

static int wl_lua_print(lua_State *L) { return wl_lua_log_at(L, WL_LOG_INFO, 1); }

/* Returns a registry reference to the class's metatable. */
static int wl_lua_new_class(lua_State *L, const char *mt, const luaL_Reg *methods,
                            const luaL_Reg *meta) {
    luaL_newmetatable(L, mt);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    if (lua_getfield(L, -2, "__index") == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, "__index");
    } else {
        lua_pop(L, 1);
    }
    lua_setfield(L, -2, "methods");
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

void wl_lua_open_keys(lua_State *L) {
    static const char *const names[WL_LUA_KEY_COUNT] = {
#define WL_LUA_KEY_NAME(name) #name,
        WL_LUA_KEYS(WL_LUA_KEY_NAME)
#undef WL_LUA_KEY_NAME
    };
    wl_lua_vm *vm = wl_lua_vm_of(L);
    for (int k = 0; k < WL_LUA_KEY_COUNT; k++) {
        lua_pushstring(L, names[k]);
        vm->key_ref[k] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

void wl_lua_push_global(lua_State *L, wl_lua_key k) {
    lua_pushglobaltable(L);
    wl_lua_push_key(L, k);
    lua_gettable(L, -2);
    lua_remove(L, -2);
}

void wl_lua_open_api(lua_State *L) {
    wl_lua_vm *vm = wl_lua_vm_of(L);
    wl_lua_open_keys(L);

    static const luaL_Reg conn_methods[] = {
        {"id", wl_lua_conn_id},
        {"sourceAddress", wl_lua_conn_source},
        {"destinationAddress", wl_lua_conn_destination},
        {"property", wl_lua_conn_property},
        {"bytes", wl_lua_conn_bytes},
        {"ageMicros", wl_lua_conn_age_us},
        {"logTrace", wl_lua_conn_logTrace},
        {"logDebug", wl_lua_conn_logDebug},
        {"logInfo", wl_lua_conn_logInfo},
        {"logWarn", wl_lua_conn_logWarn},
        {"logErr", wl_lua_conn_logErr},
        {"logCritical", wl_lua_conn_logCritical},
        {NULL, NULL},
    };
    static const luaL_Reg conn_meta[] = {
        {"__index", wl_lua_conn_index},
        {"__tostring", wl_lua_conn_tostring},
        {NULL, NULL},
    };
    vm->ref_conn_mt = wl_lua_new_class(L, CONN_MT, conn_methods, conn_meta);

    static const luaL_Reg buffer_methods[] = {
        {"length", wl_lua_buffer_length},
        {"getBytes", wl_lua_buffer_get},
        {"bytes", wl_lua_buffer_bytes},
        {NULL, NULL},
    };
    static const luaL_Reg buffer_meta[] = {
        {"__len", wl_lua_buffer_length},
        {"__tostring", wl_lua_buffer_tostring},
        {NULL, NULL},
    };
    luaL_unref(L, LUA_REGISTRYINDEX, wl_lua_new_class(L, BUFFER_MT, buffer_methods, buffer_meta));
    for (int i = 0; i < 2; i++) {
        wl_read **slot = lua_newuserdatauv(L, sizeof(wl_read *), 0);
        *slot = NULL;
        luaL_setmetatable(L, BUFFER_MT);
        vm->ref_buffer[i] = luaL_ref(L, LUA_REGISTRYINDEX);
    }

    static const luaL_Reg metric_methods[] = {
        {"inc", wl_lua_metric_inc},         {"dec", wl_lua_metric_dec},
        {"add", wl_lua_metric_add},         {"set", wl_lua_metric_set},
        {"observe", wl_lua_metric_observe}, {"value", wl_lua_metric_value},
        {NULL, NULL},
    };
    static const luaL_Reg metric_meta[] = {{NULL, NULL}};
    vm->ref_metric_mt = wl_lua_new_class(L, METRIC_MT, metric_methods, metric_meta);
    lua_newtable(L);
    vm->ref_metrics = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    vm->ref_tagsets = luaL_ref(L, LUA_REGISTRYINDEX);

    static const luaL_Reg lib[] = {
        {"counter", wl_lua_counter},
        {"gauge", wl_lua_gauge},
        {"histogram", wl_lua_histogram},
        {"now_us", wl_lua_now_us},
        {"wall_us", wl_lua_wall_us},
        {"logTrace", wl_lua_logTrace},
        {"logDebug", wl_lua_logDebug},
        {"logInfo", wl_lua_logInfo},
        {"logWarn", wl_lua_logWarn},
        {"logErr", wl_lua_logErr},
        {"logCritical", wl_lua_logCritical},
        {NULL, NULL},
    };
    luaL_newlib(L, lib);
    lua_setglobal(L, "wirelab");
    lua_pushcfunction(L, wl_lua_print);
    lua_setglobal(L, "print");
}
