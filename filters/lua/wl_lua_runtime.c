/* The Lua runtime's lifecycle: SDK hooks -> a sandboxed Lua VM per plugin.
 *
 * Every entry into Lua goes through wl_lua_protected(), which runs the work as
 * a C function under lua_pcall with a fresh instruction budget: a script error,
 * an exhausted budget or the memory cap aborts that one callback, is counted
 * and logged, and traffic keeps flowing. The VM never traps. */
#include <stdlib.h>
#include <string.h>

#include "lualib.h"
#include "wl_lua.h"

WL_PLUGIN_STATE(wl_lua_vm)
WL_CONN_STATE(wl_lua_conn)

#define HOOK_STEP 1000

WL_LUA_THREAD uint32_t wl_lua_current_context;
static uint32_t wl_lua_generations; /* natively: configures run on Envoy's main thread */

/* ---- memory cap ---------------------------------------------------------- */

static void *wl_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    wl_lua_vm *vm = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        vm->mem_used -= old;
        return NULL;
    }
    if (nsize > old && vm->mem_used - old + nsize > vm->mem_limit) return NULL;
    void *p = realloc(ptr, nsize);
    if (p) vm->mem_used = vm->mem_used - old + nsize;
    return p;
}

/* ---- instruction budget -------------------------------------------------- */

static void wl_lua_budget_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    wl_lua_vm *vm = wl_lua_vm_of(L);
    vm->budget_left -= lua_gethookcount(L);
    if (vm->budget_left > 0) return;
    vm->budget_hit = 1;
    /* From now on every instruction fails, so a pcall loop cannot outlive it. */
    lua_sethook(L, wl_lua_budget_hook, LUA_MASKCOUNT, 1);
    /* Name the script line that was running (level 0: hooks have no frame). */
    lua_Debug d;
    if (lua_getstack(L, 0, &d) && lua_getinfo(L, "Sl", &d) && d.currentline > 0)
        lua_pushfstring(L, "%s:%d: ", d.short_src, d.currentline);
    else
        lua_pushliteral(L, "");
    lua_pushfstring(L, "instruction budget exceeded (%I instructions)",
                    (LUAI_UACINT)(vm->in_load ? vm->budget * WL_LUA_LOAD_BUDGET_FACTOR : vm->budget));
    lua_concat(L, 2);
    lua_error(L);
}

/* ---- protected entry ----------------------------------------------------- */

typedef struct {
    wl_lua_thunk fn;
    void *ud;
} wl_lua_call;

static int wl_lua_trampoline(lua_State *L) {
    wl_lua_call *call = lua_touserdata(L, 1);
    lua_settop(L, 0);
    call->fn(L, call->ud);
    return 0;
}

static void wl_lua_report(wl_lua_vm *vm, int status, const char *what) {
    lua_State *L = vm->L;
    const char *msg = "(error object is not a string)";
    if (lua_type(L, -1) == LUA_TSTRING) msg = lua_tostring(L, -1);
    const char *kind = "error";
    if (status == LUA_ERRMEM) {
        kind = "memory limit";
        msg = "not enough memory (the VM's memory_limit_kb was reached)";
        wl_metric_add(vm->m_memory, 1);
    } else if (vm->budget_hit) {
        kind = "budget";
        wl_metric_add(vm->m_budget, 1);
    }
    wl_metric_add(vm->m_errors, 1);
    vm->errors++;
    /* A script that fails on every message would otherwise write a line per
     * message: a connection's first error says what is wrong, the counters say
     * how often. */
    wl_lua_conn *lc = vm->conn ? vm->conn->state : NULL;
    if (lc && lc->error_logged) return;
    if (vm->log_lines >= WL_LUA_ERROR_LOG_FIRST && vm->errors - vm->last_logged < WL_LUA_ERROR_LOG_EVERY) return;
    if (lc) {
        lc->error_logged = 1;
        wl_log(WL_LOG_ERROR, "lua %s in %s on connection %u: %s (error #%llu)", kind, what,
               (unsigned)vm->conn->context_id, msg, (unsigned long long)vm->errors);
    } else {
        wl_log(WL_LOG_ERROR, "lua %s in %s: %s (error #%llu)", kind, what, msg, (unsigned long long)vm->errors);
    }
    vm->log_lines++;
    vm->last_logged = vm->errors;
}

static void wl_lua_arm_budget(wl_lua_vm *vm) {
    int64_t budget = vm->budget * (vm->in_load ? WL_LUA_LOAD_BUDGET_FACTOR : 1);
    vm->budget_left = budget;
    vm->budget_hit = 0;
    lua_sethook(vm->L, wl_lua_budget_hook, LUA_MASKCOUNT, budget < HOOK_STEP ? (int)budget : HOOK_STEP);
}

int wl_lua_protected(wl_lua_vm *vm, const char *what, wl_lua_thunk fn, void *ud) {
    lua_State *L = vm->L;
    if (!L) return -1;
    wl_lua_arm_budget(vm);
    int top = lua_gettop(L);
    wl_lua_call call = {fn, ud};
    lua_pushcfunction(L, wl_lua_trampoline); /* light C function: no allocation */
    lua_pushlightuserdata(L, &call);
    int status = lua_pcall(L, 1, 0, 0);
    if (status != LUA_OK) wl_lua_report(vm, status, what);
    lua_settop(L, top);
    lua_sethook(L, NULL, 0, 0);
    return status;
}

int wl_lua_call_callback(wl_lua_vm *vm, int nargs, const char *what) {
    lua_State *L = vm->L;
    int base = lua_gettop(L) - nargs - 1;
    wl_lua_arm_budget(vm); /* each callback gets its own budget */
    int status = lua_pcall(L, nargs, 0, 0);
    if (status != LUA_OK) wl_lua_report(vm, status, what);
    lua_settop(L, base);
    return status;
}

/* ---- sandbox ------------------------------------------------------------- */

/* load() that only accepts text chunks. */
static int wl_lua_load_text(lua_State *L) {
    int n = lua_gettop(L);
    if (n < 3) lua_settop(L, 3);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n < 3 ? 3 : n, LUA_MULTRET);
    return lua_gettop(L);
}

static int wl_lua_collectgarbage(lua_State *L) {
    static const char *const opts[] = {"collect", "count", "step", NULL};
    int opt = luaL_checkoption(L, 1, "collect", opts);
    switch (opt) {
    case 1:
        lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT) +
                              (lua_Number)lua_gc(L, LUA_GCCOUNTB) / 1024.0);
        return 1;
    case 2:
        lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, 0));
        return 1;
    default:
        lua_gc(L, LUA_GCCOLLECT);
        lua_pushinteger(L, 0);
        return 1;
    }
}

static void wl_lua_open_safe_libs(lua_State *L) {
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},         {LUA_COLIBNAME, luaopen_coroutine},
        {LUA_TABLIBNAME, luaopen_table},   {LUA_STRLIBNAME, luaopen_string},
        {LUA_MATHLIBNAME, luaopen_math},   {LUA_UTF8LIBNAME, luaopen_utf8},
        {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    /* No file access, no bytecode. */
    lua_pushnil(L);
    lua_setglobal(L, "dofile");
    lua_pushnil(L);
    lua_setglobal(L, "loadfile");
    lua_getglobal(L, "load");
    lua_pushcclosure(L, wl_lua_load_text, 1);
    lua_setglobal(L, "load");
    lua_pushcfunction(L, wl_lua_collectgarbage);
    lua_setglobal(L, "collectgarbage");
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
}

static void wl_lua_warn(void *ud, const char *msg, int tocont) {
    (void)ud;
    (void)tocont;
    if (msg[0] == '@') return; /* control messages */
    wl_log(WL_LOG_WARN, "lua warning: %s", msg);
}

static int wl_lua_panic(lua_State *L) {
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?";
    wl_log(WL_LOG_CRITICAL, "lua panic (unprotected error): %s", msg);
    return 0;
}

/* ---- configuration ------------------------------------------------------- */

static const struct {
    const char *name;
    uint32_t flag;
} wl_lua_callback_names[] = {
    {"envoy_on_new_connection", WL_LUA_CB_NEW_CONNECTION},
    {"envoy_on_downstream_data", WL_LUA_CB_DOWNSTREAM_DATA},
    {"envoy_on_upstream_data", WL_LUA_CB_UPSTREAM_DATA},
    {"envoy_on_close", WL_LUA_CB_CLOSE},
    {"envoy_on_pg_message", WL_LUA_CB_PG_MESSAGE},
    {"envoy_on_mysql_command", WL_LUA_CB_MYSQL_COMMAND},
    {"envoy_on_mysql_result", WL_LUA_CB_MYSQL_RESULT},
    {"envoy_on_mysql_event", WL_LUA_CB_MYSQL_EVENT},
    {"envoy_on_statement", WL_LUA_CB_STATEMENT},
    {"envoy_on_transaction", WL_LUA_CB_TRANSACTION},
};

static void wl_lua_copy_field(lua_State *L, int cfg, const char *key, char *out, size_t cap,
                              const char *dflt) {
    lua_getfield(L, cfg, key);
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : dflt;
    size_t n = strlen(s);
    if (n >= cap) luaL_error(L, "configuration: \"%s\" is longer than %d bytes", key, (int)cap - 1);
    memcpy(out, s, n + 1);
    lua_pop(L, 1);
}

static int64_t wl_lua_int_field(lua_State *L, int tbl, const char *key, int64_t dflt, int64_t min) {
    if (tbl == 0) return dflt;
    lua_getfield(L, tbl, key);
    int64_t v = dflt;
    if (!lua_isnil(L, -1)) {
        int ok = 0;
        v = (int64_t)lua_tointegerx(L, -1, &ok);
        if (!ok || v < min) luaL_error(L, "configuration: \"%s\" must be an integer >= %d", key, (int)min);
    }
    lua_pop(L, 1);
    return v;
}

/* envoy_pg_message_types = { client = "QPBES", server = "CEZ" }: call
 * envoy_on_pg_message only for these message types (other kinds: startup,
 * SSL negotiation, errors, are always delivered). Absent: every message. */
static void wl_lua_read_pg_types(lua_State *L, wl_lua_vm *vm) {
    static const char *const sides[2] = {"client", "server"}; /* indexed by wl_dir */
    memset(vm->pg_want, 1, sizeof vm->pg_want);
    vm->pg_filtered = 0;
    int t = lua_getglobal(L, "envoy_pg_message_types");
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (t != LUA_TTABLE)
        luaL_error(L, "envoy_pg_message_types must be a table like { client = \"QPBES\", server = \"CEZ\" }");
    vm->pg_filtered = 1;
    memset(vm->pg_want, 0, sizeof vm->pg_want);
    for (int d = 0; d < 2; d++) {
        int vt = lua_getfield(L, -1, sides[d]);
        if (vt == LUA_TSTRING) {
            size_t n;
            const char *types = lua_tolstring(L, -1, &n);
            for (size_t i = 0; i < n; i++) vm->pg_want[d][(uint8_t)types[i]] = 1;
        } else if (vt != LUA_TNIL) {
            luaL_error(L, "envoy_pg_message_types.%s must be a string of message type letters", sides[d]);
        }
        lua_pop(L, 1);
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!k || (strcmp(k, "client") != 0 && strcmp(k, "server") != 0))
            luaL_error(L, "envoy_pg_message_types: keys are \"client\" and \"server\"");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* Runs protected: parse the configuration, load and run the script. */
static void wl_lua_setup(lua_State *L, void *ud) {
    wl_lua_vm *vm = ud;
    wl_lua_open_safe_libs(L);
    const wl_plugin *p = vm->plugin;
    wl_lua_push_json(L, p->config, p->config_len);
    if (!lua_istable(L, -1)) luaL_error(L, "configuration: expected a JSON object");
    int cfg = lua_gettop(L);

    wl_lua_copy_field(L, cfg, "stat_prefix", vm->stat_prefix, sizeof vm->stat_prefix, "lua");
    wl_sanitize_tag(vm->stat_prefix);
    wl_lua_copy_field(L, cfg, "script_name", vm->script_name, sizeof vm->script_name, "filter.lua");
    char proto[16];
    wl_lua_copy_field(L, cfg, "protocol", proto, sizeof proto, "tcp");
    if (strcmp(proto, "tcp") == 0) vm->protocol = WL_LUA_TCP;
    else if (strcmp(proto, "postgres") == 0) vm->protocol = WL_LUA_POSTGRES;
    else if (strcmp(proto, "mysql") == 0) vm->protocol = WL_LUA_MYSQL;
    else luaL_error(L, "configuration: unknown protocol \"%s\" (tcp, postgres or mysql)", proto);
    if (!wl_lua_protocol_supported(vm->protocol))
        luaL_error(L, "configuration: this runtime was built without the %s decoder", proto);

    /* Counter increments wait in the module and reach Envoy on a tick: a read
     * then costs no metric host call (histograms and gauges go at once). */
    int64_t flush_ms = wl_lua_int_field(L, cfg, "metrics_flush_ms", WL_LUA_DEFAULT_FLUSH_MS, 0);
    if (flush_ms > 60000) luaL_error(L, "configuration: \"metrics_flush_ms\" must be at most 60000");
    wl_batch_hold_ms((uint32_t)flush_ms);

    lua_getfield(L, cfg, "limits");
    int limits = lua_istable(L, -1) ? lua_gettop(L) : 0;
    vm->budget = wl_lua_int_field(L, limits, "instructions", WL_LUA_DEFAULT_BUDGET, 1);
    vm->mem_limit = (size_t)wl_lua_int_field(L, limits, "memory_kb", WL_LUA_DEFAULT_MEMORY_KB, 256) * 1024;
    vm->max_tag_sets = (int)wl_lua_int_field(L, limits, "tag_sets", WL_LUA_DEFAULT_TAG_SETS, 1);
    lua_pop(L, 1);
    vm->budget_left = vm->budget * WL_LUA_LOAD_BUDGET_FACTOR;

    vm->m_errors = wl_counter("lua.%s.script_errors", vm->stat_prefix);
    vm->m_budget = wl_counter("lua.%s.budget_exceeded", vm->stat_prefix);
    vm->m_memory = wl_counter("lua.%s.memory_exceeded", vm->stat_prefix);
    if (vm->protocol != WL_LUA_TCP) vm->m_decoder_errors = wl_counter("lua.%s.decoder_errors", vm->stat_prefix);

    wl_lua_open_api(L);
    wl_lua_proto_open(L);
    lua_getglobal(L, "wirelab");
    lua_getfield(L, cfg, "settings");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newtable(L);
    }
    lua_setfield(L, -2, "settings");
    lua_pushstring(L, proto);
    lua_setfield(L, -2, "protocol");
    lua_pushstring(L, vm->stat_prefix);
    lua_setfield(L, -2, "stat_prefix");
    lua_pop(L, 1);

    lua_getfield(L, cfg, "script");
    size_t len = 0;
    const char *src = lua_tolstring(L, -1, &len);
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "configuration: \"script\" (the Lua source) is missing");
    char chunk[70];
    chunk[0] = '=';
    memcpy(chunk + 1, vm->script_name, strlen(vm->script_name) + 1);
    if (luaL_loadbufferx(L, src, len, chunk, "t") != LUA_OK) lua_error(L);
    lua_call(L, 0, 0);

    vm->callbacks = 0;
    for (size_t i = 0; i < sizeof wl_lua_callback_names / sizeof wl_lua_callback_names[0]; i++) {
        int t = lua_getglobal(L, wl_lua_callback_names[i].name);
        if (t == LUA_TFUNCTION) vm->callbacks |= wl_lua_callback_names[i].flag;
        else if (t != LUA_TNIL)
            luaL_error(L, "%s must be a function, not a %s", wl_lua_callback_names[i].name,
                       lua_typename(L, t));
        lua_pop(L, 1);
    }
    wl_lua_read_pg_types(L, vm);
    lua_settop(L, 0);
}

static void wl_lua_close_vm(wl_lua_vm *vm) {
    if (vm->L) lua_close(vm->L);
    vm->L = NULL;
}

int wl_on_configure(wl_plugin *plugin) {
    wl_lua_vm *vm = plugin->state;
    wl_lua_close_vm(vm);
    memset(vm, 0, sizeof *vm);
    vm->plugin = plugin;
    vm->generation = ++wl_lua_generations;
    vm->mem_limit = (size_t)WL_LUA_DEFAULT_MEMORY_KB * 1024;
    vm->budget = WL_LUA_DEFAULT_BUDGET;
    vm->m_errors = vm->m_budget = vm->m_memory = vm->m_decoder_errors = WL_METRIC_INVALID;
    lua_State *L = lua_newstate(wl_lua_alloc, vm);
    if (!L) {
        wl_log(WL_LOG_CRITICAL, "lua: cannot create a Lua state (out of memory)");
        return 0;
    }
    *(wl_lua_vm **)lua_getextraspace(L) = vm;
    /* Every statement and message hands the script a fresh table that is
     * garbage by the next one: generational collection frees those young
     * objects without walking the whole heap each cycle, as incremental
     * collection does (about a third of the runtime's cache misses). */
    lua_gc(L, LUA_GCGEN, 0, 0);
    lua_atpanic(L, wl_lua_panic);
    lua_setwarnf(L, wl_lua_warn, vm);
    vm->L = L;
    vm->in_load = 1;
    int status = wl_lua_protected(vm, "configuration", wl_lua_setup, vm);
    vm->in_load = 0;
    if (status != LUA_OK) {
        /* Refuse the configuration: Envoy rejects it instead of running a broken script. */
        wl_lua_close_vm(vm);
        return 0;
    }
    wl_log(WL_LOG_INFO, "lua: %s loaded (protocol %s, stat_prefix %s)", vm->script_name,
           vm->protocol == WL_LUA_POSTGRES ? "postgres" : vm->protocol == WL_LUA_MYSQL ? "mysql" : "tcp",
           vm->stat_prefix);
    return 1;
}

/* ---- connection callbacks ------------------------------------------------ */

static wl_lua_vm *wl_lua_vm_for(wl_conn *c) {
    if (!c->plugin) return NULL;
    wl_lua_vm *vm = c->plugin->state;
    wl_lua_conn *lc = c->state;
    if (!vm || !vm->L || lc->L != vm->L || lc->generation != vm->generation) return NULL;
    return vm;
}

static void wl_lua_new_connection_thunk(lua_State *L, void *ud) {
    wl_conn *c = ud;
    wl_lua_conn *lc = c->state;
    wl_lua_push_conn(L, c); /* creates the object */
    lua_pushvalue(L, -1);
    lc->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    wl_lua_vm *vm = wl_lua_vm_of(L);
    if (vm->callbacks & WL_LUA_CB_NEW_CONNECTION) {
        lua_getglobal(L, "envoy_on_new_connection");
        lua_insert(L, -2);
        lua_call(L, 1, 0);
    }
}

void wl_on_new_connection(wl_conn *c) {
    if (!c->plugin) return;
    wl_lua_vm *vm = c->plugin->state;
    wl_lua_conn *lc = c->state;
    if (!vm || !vm->L) return;
    lc->L = vm->L;
    lc->generation = vm->generation;
    lc->ref = LUA_NOREF;
    wl_lua_current_context = c->context_id;
    vm->conn = c;
    if (vm->protocol != WL_LUA_TCP) wl_lua_decoder_init(vm, c);
    if (wl_lua_protected(vm, "envoy_on_new_connection", wl_lua_new_connection_thunk, c) != LUA_OK &&
        lc->ref == LUA_NOREF) {
        lc->L = NULL; /* no Lua object: this connection is not scripted */
    }
    vm->conn = NULL;
}

typedef struct {
    wl_conn *c;
    wl_read *r;
} wl_lua_data_args;

static void wl_lua_data_thunk(lua_State *L, void *ud) {
    wl_lua_data_args *a = ud;
    wl_lua_vm *vm = wl_lua_vm_of(L);
    int server = a->r->dir == WL_DIR_SERVER;
    wl_lua_push_global(L, server ? WL_LUA_KEY(envoy_on_upstream_data) : WL_LUA_KEY(envoy_on_downstream_data));
    wl_lua_push_conn(L, a->c);
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_buffer[server]);
    wl_read **slot = lua_touserdata(L, -1);
    *slot = a->r;
    lua_pushboolean(L, a->r->end_of_stream);
    lua_call(L, 3, 0);
}

static void wl_lua_buffer_expire(wl_lua_vm *vm, int server) {
    /* The buffer object outlives the callback; the read it points at does not. */
    lua_State *L = vm->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, vm->ref_buffer[server]);
    wl_read **slot = lua_touserdata(L, -1);
    if (slot) *slot = NULL;
    lua_pop(L, 1);
}

#ifdef WL_LUA_PROFILE
/* Profiling build (-DWL_LUA_PROFILE): time spent in wl_on_data, reads and
 * decoded messages, as counters lua.<prefix>.profile_{ns,reads,messages}. */
uint64_t wl_lua_profile_messages;
static void wl_lua_on_data(wl_conn *c, wl_read *r);
void wl_on_data(wl_conn *c, wl_read *r) {
    static wl_metric ns = WL_METRIC_INVALID, reads, msgs;
    wl_lua_vm *vm = c->plugin ? c->plugin->state : NULL;
    if (vm && ns == WL_METRIC_INVALID) {
        ns = wl_counter("lua.%s.profile_ns", vm->stat_prefix);
        reads = wl_counter("lua.%s.profile_reads", vm->stat_prefix);
        msgs = wl_counter("lua.%s.profile_messages", vm->stat_prefix);
    }
    uint64_t m0 = wl_lua_profile_messages, t0 = wl_now_ns();
    wl_lua_on_data(c, r);
    wl_batch_add(ns, (int64_t)(wl_now_ns() - t0));
    wl_batch_add(reads, 1);
    wl_batch_add(msgs, (int64_t)(wl_lua_profile_messages - m0));
}
#define wl_on_data wl_lua_on_data
static
#endif
void wl_on_data(wl_conn *c, wl_read *r) {
    wl_lua_vm *vm = wl_lua_vm_for(c);
    if (!vm) return;
    int server = r->dir == WL_DIR_SERVER;
    wl_lua_current_context = c->context_id;
    vm->conn = c;
    uint32_t want = server ? WL_LUA_CB_UPSTREAM_DATA : WL_LUA_CB_DOWNSTREAM_DATA;
    if (vm->callbacks & want) {
        wl_lua_data_args a = {c, r};
        wl_lua_protected(vm, server ? "envoy_on_upstream_data" : "envoy_on_downstream_data",
                         wl_lua_data_thunk, &a);
        wl_lua_buffer_expire(vm, server);
    }
    wl_lua_conn *lc = c->state;
    if (lc->decoder && wl_lua_vm_for(c)) wl_lua_decoder_feed(vm, c, r);
    vm->conn = NULL;
}

static void wl_lua_close_thunk(lua_State *L, void *ud) {
    lua_getglobal(L, "envoy_on_close");
    wl_lua_push_conn(L, ud);
    lua_call(L, 1, 0);
}

static void wl_lua_unref_thunk(lua_State *L, void *ud) {
    wl_conn *c = ud;
    wl_lua_conn *lc = c->state;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lc->ref);
    wl_conn **slot = lua_touserdata(L, -1);
    if (slot) *slot = NULL; /* methods on a stored object now see a closed connection */
    luaL_unref(L, LUA_REGISTRYINDEX, lc->ref);
    lc->ref = LUA_NOREF;
}

void wl_on_connection_end(wl_conn *c) {
    wl_lua_conn *lc = c->state;
    wl_lua_vm *vm = wl_lua_vm_for(c);
    if (vm) {
        wl_lua_current_context = c->context_id;
        vm->conn = c;
        wl_lua_decoder_close(vm, c); /* last statements and transactions, before envoy_on_close */
        if (vm->callbacks & WL_LUA_CB_CLOSE) wl_lua_protected(vm, "envoy_on_close", wl_lua_close_thunk, c);
        /* Unref outside the budget's reach: give it its own protected run. */
        wl_lua_protected(vm, "connection cleanup", wl_lua_unref_thunk, c);
        vm->conn = NULL;
    }
    wl_lua_decoder_free(c);
    lc->L = NULL;
}

/* ---- build-time syntax check ---------------------------------------------
 * `wirelab build` runs this export under wasmtime: the script is compiled by
 * the very Lua that will run it, without running it. Returns NULL when the
 * script compiles, else a NUL-terminated "name:line: message". */
static char wl_lua_check_msg[1024];

#if defined(WL_TARGET_WASM)
__attribute__((export_name("wirelab_lua_check")))
#endif
const char *wirelab_lua_check(const char *src, size_t len, const char *name) {
    lua_State *L = luaL_newstate();
    if (!L) return "out of memory";
    char chunk[80];
    size_t n = strlen(name);
    if (n > sizeof chunk - 2) n = sizeof chunk - 2;
    chunk[0] = '=';
    memcpy(chunk + 1, name, n);
    chunk[n + 1] = '\0';
    const char *result = NULL;
    if (luaL_loadbufferx(L, src, len, chunk, "t") != LUA_OK) {
        const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "unknown error";
        strncpy(wl_lua_check_msg, msg, sizeof wl_lua_check_msg - 1);
        wl_lua_check_msg[sizeof wl_lua_check_msg - 1] = '\0';
        result = wl_lua_check_msg;
    }
    lua_close(L);
    return result;
}
