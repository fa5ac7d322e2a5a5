/* The wirelab Lua runtime: one Lua 5.4 VM per plugin instance, running the
 * author's script from the plugin configuration. Internal header shared by the
 * runtime's C files; the script-facing API is documented in API.md. */
#ifndef WIRELAB_WL_LUA_H
#define WIRELAB_WL_LUA_H

#include <stddef.h>
#include <stdint.h>

#include "lauxlib.h"
#include "lua.h"
#include "statement.h"
#include "wirelab_filter.h"

#ifndef WL_LUA_DEFAULT_BUDGET
#define WL_LUA_DEFAULT_BUDGET 1000000 /* VM instructions per callback */
#endif
#ifndef WL_LUA_DEFAULT_MEMORY_KB
#define WL_LUA_DEFAULT_MEMORY_KB 16384 /* per VM */
#endif
#ifndef WL_LUA_DEFAULT_FLUSH_MS
#define WL_LUA_DEFAULT_FLUSH_MS 1000 /* counters reach Envoy at most this late */
#endif
#ifndef WL_LUA_DEFAULT_TAG_SETS
#define WL_LUA_DEFAULT_TAG_SETS 100 /* distinct tag sets per metric name */
#endif
#define WL_LUA_LOAD_BUDGET_FACTOR 10 /* the script's top level gets this many budgets */
/* Error logging: the first error of each connection (and every error outside a
 * connection) is logged; later errors of a connection are only counted. A
 * safety net against connection floods: past WL_LUA_ERROR_LOG_FIRST lines a VM
 * logs at most one line per WL_LUA_ERROR_LOG_EVERY errors. */
#define WL_LUA_ERROR_LOG_FIRST 100
#define WL_LUA_ERROR_LOG_EVERY 1000

typedef enum { WL_LUA_TCP = 0, WL_LUA_POSTGRES = 1, WL_LUA_MYSQL = 2 } wl_lua_protocol;

/* Which optional global callbacks the script defines (bit flags). */
enum {
    WL_LUA_CB_NEW_CONNECTION = 1u << 0,
    WL_LUA_CB_DOWNSTREAM_DATA = 1u << 1,
    WL_LUA_CB_UPSTREAM_DATA = 1u << 2,
    WL_LUA_CB_CLOSE = 1u << 3,
    WL_LUA_CB_PG_MESSAGE = 1u << 4,
    WL_LUA_CB_MYSQL_COMMAND = 1u << 5,
    WL_LUA_CB_MYSQL_RESULT = 1u << 6,
    WL_LUA_CB_MYSQL_EVENT = 1u << 7,
    WL_LUA_CB_STATEMENT = 1u << 8,   /* envoy_on_statement (a protocol's statement tracker) */
    WL_LUA_CB_TRANSACTION = 1u << 9, /* envoy_on_transaction */
};

/* The names the runtime uses on the data path: the fields of the tables it
 * hands to scripts (statements, transactions, MySQL events) and the
 * callbacks it looks up for every read or event. Each name is written once,
 * as an identifier: WL_LUA_KEY(sql) is its index, and the string is the
 * identifier spelled out, so the two cannot disagree. */
#define WL_LUA_KEYS(X)                                                                        \
    X(kind) X(direction) X(failed) X(counted) X(sqlstate) X(err_code) X(prepared)           \
    X(rows_returned) X(rows_affected) X(fetches) X(latency_us) X(end_us) X(sql)             \
    X(sql_truncated) X(outcome) X(implicit) X(statements) X(command) X(command_code)        \
    X(cmd_no) X(verb) X(server_version) X(conn_id) X(auth_plugin) X(user) X(database)      \
    X(stmt_id) X(rows) X(affected_rows) X(warnings) X(results) X(result_set) X(file)        \
    X(error) X(envoy_on_statement) X(envoy_on_transaction) X(envoy_on_pg_message)          \
    X(envoy_on_upstream_data) X(envoy_on_downstream_data) X(envoy_on_mysql_command)        \
    X(envoy_on_mysql_result) X(envoy_on_mysql_event)

#define WL_LUA_KEY(name) WL_LUA_KEY_##name
typedef enum {
#define WL_LUA_KEY_ENUM(name) WL_LUA_KEY(name),
    WL_LUA_KEYS(WL_LUA_KEY_ENUM)
#undef WL_LUA_KEY_ENUM
    WL_LUA_KEY_COUNT
} wl_lua_key;

/* One plugin instance: its Lua VM, limits and built-in metrics. */
typedef struct wl_lua_vm {
    lua_State *L;
    uint32_t generation; /* changes with every (re)configure */
    wl_plugin *plugin;
    size_t mem_used, mem_limit;
    int64_t budget, budget_left;
    int budget_hit;
    int in_load;
    uint32_t callbacks;  /* WL_LUA_CB_* */
    wl_lua_protocol protocol;
    int max_tag_sets;
    char stat_prefix[64];
    char script_name[64];
    wl_metric m_errors, m_budget, m_memory, m_decoder_errors;
    uint64_t errors;
    uint64_t log_lines;      /* error lines logged */
    uint64_t last_logged;    /* `errors` when the last line was logged */
    wl_conn *conn;           /* the connection whose callback is running, or NULL */
    int ref_buffer[2];   /* registry refs of the two reusable buffer objects */
    int ref_message;     /* registry ref of the reusable protocol message object */
    int pg_filtered;     /* the script named the message types it wants */
    uint8_t pg_want[2][256]; /* [wl_dir][type byte]: call envoy_on_pg_message */
    int ref_metrics;     /* full name -> metric object */
    int ref_tagsets;     /* base name -> distinct tag sets defined */
    int ref_conn_mt, ref_metric_mt; /* the classes' metatables, checked by reference */
    int key_ref[WL_LUA_KEY_COUNT]; /* registry refs of the interned keys (wl_lua_open_keys) */
} wl_lua_vm;

/* Per-connection runtime state (the SDK allocates it zeroed). */
typedef struct wl_lua_conn {
    lua_State *L;  /* the VM the Lua object below lives in (NULL: none) */
    uint32_t generation; /* of that VM: a reconfigure orphans old connections */
    int ref;       /* registry ref of the connection object */
    void *decoder; /* the protocol glue's per-connection state, or NULL */
    uint8_t decoder_protocol; /* wl_lua_protocol of `decoder` (the VM may be gone when it is freed) */
    uint8_t error_logged; /* this connection's first error was logged: later ones are only counted */
} wl_lua_conn;

/* Natively (an Envoy dynamic module) every worker thread runs its own VM at
 * the same time, so "the current callback's" state is per thread. */
#if defined(WL_TARGET_WASM)
#define WL_LUA_THREAD
#else
#define WL_LUA_THREAD _Thread_local __attribute__((tls_model("initial-exec")))
#endif

/* The context whose host callback is running (0: none or the plugin's). */
extern WL_LUA_THREAD uint32_t wl_lua_current_context;

/* The VM of any thread of a plugin's Lua state. */
static inline wl_lua_vm *wl_lua_vm_of(lua_State *L) { return *(wl_lua_vm **)lua_getextraspace(L); }

/* Interns every WL_LUA_KEYS name in the VM, once, when it starts. */
void wl_lua_open_keys(lua_State *L);

/* Pushes the interned string of key k. lua_setfield / lua_getglobal would
 * look the C string up in Lua's string cache (a hash of its address, then a
 * strcmp, and on a miss a hash of the whole string) for every field of every
 * table; this reads one slot of the registry's array part. An enum index
 * rather than the C string's address: no hashing at all. Registry refs
 * rather than one table of keys: one lookup per key instead of two, and no
 * keys table to keep on the stack while a table is built. */
static inline void wl_lua_push_key(lua_State *L, wl_lua_key k) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, wl_lua_vm_of(L)->key_ref[k]);
}

/* Pushes the script's global named by key k, as lua_getglobal would (through
 * _ENV's metamethods). */
void wl_lua_push_global(lua_State *L, wl_lua_key k);

/* Fields of the table on top of the stack, for the event tables scripts
 * receive. The tables are fresh and have no metatable, so a raw set is what
 * lua_setfield would do. */
static inline void wl_lua_setstr(lua_State *L, wl_lua_key k, const char *s, size_t n) {
    wl_lua_push_key(L, k);
    lua_pushlstring(L, s ? s : "", s ? n : 0);
    lua_rawset(L, -3);
}

static inline void wl_lua_setcstr(lua_State *L, wl_lua_key k, const char *s) {
    wl_lua_push_key(L, k);
    lua_pushstring(L, s);
    lua_rawset(L, -3);
}

static inline void wl_lua_setint(lua_State *L, wl_lua_key k, lua_Integer v) {
    wl_lua_push_key(L, k);
    lua_pushinteger(L, v);
    lua_rawset(L, -3);
}

static inline void wl_lua_setbool(lua_State *L, wl_lua_key k, int v) {
    wl_lua_push_key(L, k);
    lua_pushboolean(L, v);
    lua_rawset(L, -3);
}

/* JSON text -> a Lua value on the stack; raises a Lua error when malformed. */
void wl_lua_push_json(lua_State *L, const char *json, size_t len);

/* Opens the `wirelab` library and the connection/buffer/metric metatables. */
void wl_lua_open_api(lua_State *L);

/* Pushes the connection object of `c` (or nil). */
void wl_lua_push_conn(lua_State *L, wl_conn *c);

/* Calls the global function `name` with `nargs` arguments already pushed,
 * inside the protected dispatcher; returns nothing. */
typedef void (*wl_lua_thunk)(lua_State *L, void *ud);
int wl_lua_protected(wl_lua_vm *vm, const char *what, wl_lua_thunk fn, void *ud);

/* Inside a wl_lua_protected() run: calls the function below `nargs` arguments
 * in its own protected call with a fresh budget, so an error aborts only that
 * callback (counted and logged as `what`); pops the function and arguments.
 * Many callbacks can share one wl_lua_protected() entry this way. */
int wl_lua_call_callback(wl_lua_vm *vm, int nargs, const char *what);

/* Protocol glue (lua_proto.c). */
void wl_lua_decoder_init(wl_lua_vm *vm, wl_conn *c);
void wl_lua_decoder_feed(wl_lua_vm *vm, wl_conn *c, wl_read *r);
void wl_lua_decoder_close(wl_lua_vm *vm, wl_conn *c); /* the connection ended: last events */
void wl_lua_decoder_free(wl_conn *c); /* frees it all, with or without a live VM */
int wl_lua_protocol_supported(wl_lua_protocol proto);
void wl_lua_proto_open(lua_State *L); /* message objects and helpers */

/* Statement and transaction events (statement.h) for any protocol's tracker
 * (wl_lua_stmt.c). The tables: */
void wl_lua_push_stmt(lua_State *L, const wl_stmt_event *ev);
void wl_lua_push_txn(lua_State *L, const wl_txn_event *ev);
/* Inside a running wl_lua_protected() dispatch, with the connection object at
 * stack index conn_index: calls envoy_on_statement / envoy_on_transaction (if
 * defined) in its own protected call and budget. */
void wl_lua_call_stmt(wl_lua_vm *vm, int conn_index, const wl_stmt_event *ev);
void wl_lua_call_txn(wl_lua_vm *vm, int conn_index, const wl_txn_event *ev);
/* The same from outside any dispatch: one protected run of its own. */
void wl_lua_on_stmt(wl_lua_vm *vm, wl_conn *c, const wl_stmt_event *ev);
void wl_lua_on_txn(wl_lua_vm *vm, wl_conn *c, const wl_txn_event *ev);

#endif
