/* Statement and transaction events (filters/protocols/statement.h) as Lua
 * tables for envoy_on_statement(conn, stmt) / envoy_on_transaction(conn, txn).
 * Protocol-neutral: every statement tracker (postgres_tracker, mysql_tracker)
 * reports through these, so a script reads the same fields for both. */
#include "wl_lua.h"

/* The field names, interned once per VM: lua_setfield would look each C
 * string up again (a strcmp against Lua's string cache) for every field of
 * every statement. */
#define WL_STMT_KEYS(X)                                                                  \
    X(KIND, "kind") X(FAILED, "failed") X(COUNTED, "counted") X(SQLSTATE, "sqlstate")    \
    X(ERR_CODE, "err_code") X(PREPARED, "prepared") X(ROWS_RETURNED, "rows_returned")    \
    X(ROWS_AFFECTED, "rows_affected") X(FETCHES, "fetches") X(LATENCY_US, "latency_us")  \
    X(END_US, "end_us") X(SQL, "sql") X(SQL_TRUNCATED, "sql_truncated")                  \
    X(OUTCOME, "outcome") X(IMPLICIT, "implicit") X(STATEMENTS, "statements")            \
    X(ON_STATEMENT, "envoy_on_statement") X(ON_TRANSACTION, "envoy_on_transaction")         \
    X(ON_PG_MESSAGE, "envoy_on_pg_message") X(ON_UPSTREAM_DATA, "envoy_on_upstream_data")    \
    X(ON_DOWNSTREAM_DATA, "envoy_on_downstream_data")

#define WL_KEY_ENUM(id, name) K_##id,
enum { K__NONE = 0, WL_STMT_KEYS(WL_KEY_ENUM) K__COUNT };
#undef WL_KEY_ENUM
#define WL_KEY_NAME(id, name) name,
static const char *const key_names[K__COUNT - 1] = {WL_STMT_KEYS(WL_KEY_NAME)};
#undef WL_KEY_NAME

void wl_lua_open_stmt(lua_State *L) {
    lua_createtable(L, K__COUNT - 1, 0);
    for (int k = 1; k < K__COUNT; k++) {
        lua_pushstring(L, key_names[k - 1]);
        lua_rawseti(L, -2, k);
    }
    wl_lua_vm_of(L)->ref_stmt_keys = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Pushes the keys table; returns its index. */
static int keys(lua_State *L) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, wl_lua_vm_of(L)->ref_stmt_keys);
    return lua_gettop(L);
}

/* t[key] = the value on top of the stack (t is a fresh table: raw is enough). */
static void set(lua_State *L, int t, int kt, int key) {
    lua_rawgeti(L, kt, key);
    lua_insert(L, -2);
    lua_rawset(L, t);
}

static void setint(lua_State *L, int t, int kt, int key, lua_Integer v) {
    lua_pushinteger(L, v);
    set(L, t, kt, key);
}

static void setbool(lua_State *L, int t, int kt, int key, int v) {
    lua_pushboolean(L, v);
    set(L, t, kt, key);
}

static lua_Integer micros(uint64_t start_ns, uint64_t end_ns) {
    return end_ns > start_ns ? (lua_Integer)((end_ns - start_ns) / 1000u) : 0;
}

void wl_lua_push_stmt(lua_State *L, const wl_stmt_event *ev) {
    int kt = keys(L);
    lua_createtable(L, 0, 13);
    int t = lua_gettop(L);
    lua_pushstring(L, ev->kind_name ? ev->kind_name : "other");
    set(L, t, kt, K_KIND);
    setbool(L, t, kt, K_FAILED, ev->failed);
    setbool(L, t, kt, K_COUNTED, !ev->not_counted);
    if (ev->failed) {
        lua_pushstring(L, ev->sqlstate);
        set(L, t, kt, K_SQLSTATE);
        if (ev->err_code) setint(L, t, kt, K_ERR_CODE, ev->err_code);
    }
    setbool(L, t, kt, K_PREPARED, ev->prepared);
    if (ev->has_rows) {
        setint(L, t, kt, K_ROWS_RETURNED, (lua_Integer)ev->rows_returned);
        setint(L, t, kt, K_ROWS_AFFECTED, (lua_Integer)ev->rows_affected);
    }
    setint(L, t, kt, K_FETCHES, ev->fetches);
    if (!ev->untimed) setint(L, t, kt, K_LATENCY_US, micros(ev->start_ns, ev->end_ns));
    setint(L, t, kt, K_END_US, (lua_Integer)(ev->end_ns / 1000u));
    lua_pushlstring(L, ev->sql ? ev->sql : "", ev->sql ? ev->sql_len : 0);
    set(L, t, kt, K_SQL);
    setbool(L, t, kt, K_SQL_TRUNCATED, ev->sql_truncated);
    lua_remove(L, kt);
}

void wl_lua_push_txn(lua_State *L, const wl_txn_event *ev) {
    int kt = keys(L);
    lua_createtable(L, 0, 5);
    int t = lua_gettop(L);
    lua_pushstring(L, ev->outcome == WL_TXN_COMMIT ? "commit" : "rollback");
    set(L, t, kt, K_OUTCOME);
    setbool(L, t, kt, K_IMPLICIT, ev->implicit);
    setint(L, t, kt, K_STATEMENTS, ev->statements);
    setint(L, t, kt, K_LATENCY_US, micros(ev->start_ns, ev->end_ns));
    setint(L, t, kt, K_END_US, (lua_Integer)(ev->end_ns / 1000u));
    lua_remove(L, kt);
}

/* Pushes the global function named by key k (through _ENV's metamethods, as
 * lua_getglobal does, but without the string lookup). */
static void push_global(lua_State *L, int k);

void wl_lua_push_hook(lua_State *L, wl_lua_hook h) {
    static const int key_of[] = {[WL_LUA_HOOK_PG_MESSAGE] = K_ON_PG_MESSAGE,
                                 [WL_LUA_HOOK_UPSTREAM_DATA] = K_ON_UPSTREAM_DATA,
                                 [WL_LUA_HOOK_DOWNSTREAM_DATA] = K_ON_DOWNSTREAM_DATA};
    push_global(L, key_of[h]);
}

static void push_global(lua_State *L, int k) {
    lua_pushglobaltable(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, wl_lua_vm_of(L)->ref_stmt_keys);
    lua_rawgeti(L, -1, k);
    lua_remove(L, -2);
    lua_gettable(L, -2);
    lua_remove(L, -2);
}

/* `txn` picks the event: a transaction (1) or a statement (0). */
static const char *event_callback(int txn) {
    return txn ? "envoy_on_transaction" : "envoy_on_statement";
}

static int script_wants(const wl_lua_vm *vm, int txn) {
    return (vm->callbacks & (txn ? WL_LUA_CB_TRANSACTION : WL_LUA_CB_STATEMENT)) != 0;
}

/* Runs as the protected callback: builds the table there, so a memory error
 * while building it aborts this callback only. Arguments: the event (light
 * userdata), the connection object, whether the event is a transaction. */
static int call_event(lua_State *L) {
    const void *ev = lua_touserdata(L, 1);
    int txn = lua_toboolean(L, 3);
    push_global(L, txn ? K_ON_TRANSACTION : K_ON_STATEMENT);
    lua_pushvalue(L, 2);
    if (txn) wl_lua_push_txn(L, ev);
    else wl_lua_push_stmt(L, ev);
    lua_call(L, 2, 0);
    return 0;
}

static void call_event_at(wl_lua_vm *vm, int conn_index, const void *ev, int txn) {
    if (!script_wants(vm, txn)) return;
    lua_State *L = vm->L;
    lua_pushcfunction(L, call_event); /* light C function, light userdata, boolean: no allocation */
    lua_pushlightuserdata(L, (void *)ev);
    lua_pushvalue(L, conn_index);
    lua_pushboolean(L, txn);
    wl_lua_call_callback(vm, 3, event_callback(txn));
}

void wl_lua_call_stmt(wl_lua_vm *vm, int conn_index, const wl_stmt_event *ev) {
    call_event_at(vm, conn_index, ev, 0);
}

void wl_lua_call_txn(wl_lua_vm *vm, int conn_index, const wl_txn_event *ev) {
    call_event_at(vm, conn_index, ev, 1);
}

typedef struct {
    wl_conn *c;
    const void *ev;
    int txn;
} wl_lua_stmt_args;

static void stmt_thunk(lua_State *L, void *ud) {
    wl_lua_stmt_args *a = ud;
    luaL_checkstack(L, 7, "statement dispatch");
    wl_lua_push_conn(L, a->c);
    call_event_at(wl_lua_vm_of(L), lua_gettop(L), a->ev, a->txn);
}

/* Outside a message dispatch: a protected run of its own, with its own conn object. */
static void on_event(wl_lua_vm *vm, wl_conn *c, const void *ev, int txn) {
    if (!script_wants(vm, txn)) return;
    wl_lua_stmt_args a = {c, ev, txn};
    wl_lua_protected(vm, event_callback(txn), stmt_thunk, &a);
}

void wl_lua_on_stmt(wl_lua_vm *vm, wl_conn *c, const wl_stmt_event *ev) { on_event(vm, c, ev, 0); }

void wl_lua_on_txn(wl_lua_vm *vm, wl_conn *c, const wl_txn_event *ev) { on_event(vm, c, ev, 1); }
