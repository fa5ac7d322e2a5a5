/* Statement and transaction events (filters/protocols/statement.h) as Lua
 * tables for envoy_on_statement(conn, stmt) / envoy_on_transaction(conn, txn).
 * Protocol-neutral: every statement tracker (postgres_tracker, mysql_tracker)
 * reports through these, so a script reads the same fields for both. */
#include "wl_lua.h"

static lua_Integer micros(uint64_t start_ns, uint64_t end_ns) {
    return end_ns > start_ns ? (lua_Integer)((end_ns - start_ns) / 1000u) : 0;
}

void wl_lua_push_stmt(lua_State *L, const wl_stmt_event *ev) {
    lua_createtable(L, 0, 13);
    wl_lua_setcstr(L, WL_LUA_KEY(kind), ev->kind_name ? ev->kind_name : "other");
    wl_lua_setbool(L, WL_LUA_KEY(failed), ev->failed);
    wl_lua_setbool(L, WL_LUA_KEY(counted), !ev->not_counted);
    if (ev->failed) {
        wl_lua_setcstr(L, WL_LUA_KEY(sqlstate), ev->sqlstate);
        if (ev->err_code) wl_lua_setint(L, WL_LUA_KEY(err_code), ev->err_code);
    }
    wl_lua_setbool(L, WL_LUA_KEY(prepared), ev->prepared);
    if (ev->has_rows) {
        wl_lua_setint(L, WL_LUA_KEY(rows_returned), (lua_Integer)ev->rows_returned);
        wl_lua_setint(L, WL_LUA_KEY(rows_affected), (lua_Integer)ev->rows_affected);
    }
    wl_lua_setint(L, WL_LUA_KEY(fetches), ev->fetches);
    if (!ev->untimed) wl_lua_setint(L, WL_LUA_KEY(latency_us), micros(ev->start_ns, ev->end_ns));
    wl_lua_setint(L, WL_LUA_KEY(end_us), (lua_Integer)(ev->end_ns / 1000u));
    wl_lua_setstr(L, WL_LUA_KEY(sql), ev->sql, ev->sql_len);
    wl_lua_setbool(L, WL_LUA_KEY(sql_truncated), ev->sql_truncated);
}

void wl_lua_push_txn(lua_State *L, const wl_txn_event *ev) {
    lua_createtable(L, 0, 5);
    wl_lua_setcstr(L, WL_LUA_KEY(outcome), ev->outcome == WL_TXN_COMMIT ? "commit" : "rollback");
    wl_lua_setbool(L, WL_LUA_KEY(implicit), ev->implicit);
    wl_lua_setint(L, WL_LUA_KEY(statements), ev->statements);
    wl_lua_setint(L, WL_LUA_KEY(latency_us), micros(ev->start_ns, ev->end_ns));
    wl_lua_setint(L, WL_LUA_KEY(end_us), (lua_Integer)(ev->end_ns / 1000u));
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
    wl_lua_push_global(L, txn ? WL_LUA_KEY(envoy_on_transaction) : WL_LUA_KEY(envoy_on_statement));
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
