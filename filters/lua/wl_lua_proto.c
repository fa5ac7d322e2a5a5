/* Protocol glue: the shared C decoders (filters/protocols) turn each read into
 * events; each event becomes one Lua table handed to the script's callback.
 * A decoder runs only when the script defines a callback that needs it. The
 * builder defines WL_LUA_WITH_POSTGRES / WL_LUA_WITH_MYSQL when the decoder
 * sources are present. */
#include <stdlib.h>
#include <string.h>

#include "wl_lua.h"

#ifdef WL_LUA_WITH_POSTGRES
#include "postgres.h"
#include "postgres_tracker.h"
#endif
#ifdef WL_LUA_WITH_MYSQL
#include <stddef.h>

#include "mysql.h"
#include "mysql_tracker.h"
#endif

/* Scripts that define these get a protocol's statement tracker. */
#define WL_LUA_STMT_CBS (WL_LUA_CB_STATEMENT | WL_LUA_CB_TRANSACTION)

typedef struct {
    wl_lua_vm *vm;
    wl_conn *c;
    const void *ev;
} wl_lua_event_ctx;

static const char *wl_lua_dir_name(wl_dir d) { return d == WL_DIR_SERVER ? "server" : "client"; }

/* ---- PostgreSQL --------------------------------------------------------------- */
#ifdef WL_LUA_WITH_POSTGRES

static const char *wl_lua_pg_message_name(wl_dir dir, uint8_t t) {
    if (dir == WL_DIR_CLIENT) {
        switch (t) {
        case 'Q': return "Query";
        case 'P': return "Parse";
        case 'B': return "Bind";
        case 'E': return "Execute";
        case 'D': return "Describe";
        case 'C': return "Close";
        case 'S': return "Sync";
        case 'H': return "Flush";
        case 'X': return "Terminate";
        case 'F': return "FunctionCall";
        case 'p': return "PasswordMessage";
        case 'd': return "CopyData";
        case 'c': return "CopyDone";
        case 'f': return "CopyFail";
        }
    } else {
        switch (t) {
        case 'R': return "Authentication";
        case 'K': return "BackendKeyData";
        case 'S': return "ParameterStatus";
        case 'Z': return "ReadyForQuery";
        case 'C': return "CommandComplete";
        case 'E': return "ErrorResponse";
        case 'N': return "NoticeResponse";
        case 'T': return "RowDescription";
        case 'D': return "DataRow";
        case 'I': return "EmptyQueryResponse";
        case '1': return "ParseComplete";
        case '2': return "BindComplete";
        case '3': return "CloseComplete";
        case 'n': return "NoData";
        case 's': return "PortalSuspended";
        case 't': return "ParameterDescription";
        case 'A': return "NotificationResponse";
        case 'G': return "CopyInResponse";
        case 'H': return "CopyOutResponse";
        case 'W': return "CopyBothResponse";
        case 'd': return "CopyData";
        case 'c': return "CopyDone";
        case 'V': return "FunctionCallResponse";
        case 'v': return "NegotiateProtocolVersion";
        }
    }
    return "Unknown";
}

static const char *const wl_lua_pg_kinds[] = {
    "?", "message", "startup", "ssl_request", "gssenc_request", "cancel_request",
    "encryption_response", "direct_tls", "error",
};

static const char *const wl_lua_pg_errors[] = {
    "none", "bad_length", "unknown_type", "bad_startup", "bad_answer", "malformed",
};

/* The message object: one full userdata per VM, reused for every message.
 * It points at the event being dispatched and computes a field only when the
 * script reads it (most scripts read two or three); outside its callback it
 * points at nothing and any read raises an error. */
#define PG_MSG_MT "wirelab.pg_message"

static const wl_pg_event **wl_lua_pg_slot(lua_State *L) {
    return luaL_checkudata(L, 1, PG_MSG_MT);
}

static int wl_lua_pushpg(lua_State *L, wl_pg_str s) {
    lua_pushlstring(L, s.ptr ? s.ptr : "", s.ptr ? s.len : 0);
    return 1;
}

static int wl_lua_push1(lua_State *L, uint8_t ch) {
    char c = (char)ch;
    lua_pushlstring(L, &c, 1);
    return 1;
}

static int wl_lua_pushint(lua_State *L, lua_Integer v) {
    lua_pushinteger(L, v);
    return 1;
}

#define KEY(lit) (len == sizeof(lit) - 1 && memcmp(k, lit, sizeof(lit) - 1) == 0)

/* Pushes field `k` of `ev` (nil when the message has no such field). */
static int wl_lua_pg_field(lua_State *L, const wl_pg_event *ev, const char *k, size_t len) {
    if (KEY("kind")) {
        lua_pushstring(L, wl_lua_pg_kinds[ev->kind <= WL_PG_EV_ERROR ? ev->kind : 0]);
        return 1;
    }
    if (KEY("direction")) {
        lua_pushstring(L, wl_lua_dir_name(ev->dir));
        return 1;
    }
    if (KEY("length")) return wl_lua_pushint(L, ev->length);
    if (KEY("size")) return wl_lua_pushint(L, ev->size);
    switch (ev->kind) {
    case WL_PG_EV_STARTUP:
        if (KEY("user")) return wl_lua_pushpg(L, ev->u.startup.user);
        if (KEY("database")) return wl_lua_pushpg(L, ev->u.startup.database);
        if (KEY("application_name")) return wl_lua_pushpg(L, ev->u.startup.application_name);
        if (KEY("version")) return wl_lua_pushint(L, ev->u.startup.version);
        break;
    case WL_PG_EV_CANCEL_REQUEST:
        if (KEY("pid")) return wl_lua_pushint(L, ev->u.cancel.pid);
        break;
    case WL_PG_EV_ENCRYPTION_RESPONSE:
        if (KEY("answer")) return wl_lua_push1(L, ev->u.encryption.answer);
        if (KEY("requested")) return wl_lua_push1(L, ev->u.encryption.requested);
        break;
    case WL_PG_EV_ERROR:
        if (KEY("error")) {
            unsigned code = ev->u.error.code;
            lua_pushstring(L, code <= WL_PG_ERR_MALFORMED ? wl_lua_pg_errors[code] : "malformed");
            return 1;
        }
        break;
    case WL_PG_EV_MESSAGE: {
        uint8_t t = ev->type;
        if (KEY("type")) return wl_lua_push1(L, t);
        if (KEY("name")) {
            lua_pushstring(L, wl_lua_pg_message_name(ev->dir, t));
            return 1;
        }
        if (ev->dir == WL_DIR_CLIENT) {
            switch (t) {
            case 'Q':
            case 'P':
                if (KEY("sql")) return wl_lua_pushpg(L, ev->u.query.sql);
                if (KEY("sql_truncated")) {
                    lua_pushboolean(L, ev->u.query.sql_truncated);
                    return 1;
                }
                if (KEY("verb")) {
                    wl_pg_cmd cmd = wl_pg_cmd_from_sql(ev->u.query.sql.ptr, ev->u.query.sql.len);
                    lua_pushstring(L, wl_pg_cmd_name(cmd));
                    return 1;
                }
                if (t == 'P' && KEY("statement")) return wl_lua_pushpg(L, ev->u.query.name);
                break;
            case 'B':
                if (KEY("portal")) return wl_lua_pushpg(L, ev->u.bind.portal);
                if (KEY("statement")) return wl_lua_pushpg(L, ev->u.bind.statement);
                break;
            case 'E':
                if (KEY("portal")) return wl_lua_pushpg(L, ev->u.execute.portal);
                if (KEY("max_rows")) return wl_lua_pushint(L, ev->u.execute.max_rows);
                break;
            case 'D':
            case 'C': {
                const char *what = ev->u.target.what == 'S' ? "statement" : "portal";
                if (KEY("target")) {
                    lua_pushstring(L, what);
                    return 1;
                }
                if (len == strlen(what) && memcmp(k, what, len) == 0)
                    return wl_lua_pushpg(L, ev->u.target.name);
                break;
            }
            case 'p':
                if (KEY("mechanism") && ev->u.auth_response.mechanism.len)
                    return wl_lua_pushpg(L, ev->u.auth_response.mechanism);
                break;
            }
            break;
        }
        switch (t) {
        case 'C':
            if (KEY("verb")) {
                lua_pushstring(L, wl_pg_cmd_name(ev->u.cc.kind));
                return 1;
            }
            if (KEY("tag")) return wl_lua_pushpg(L, ev->u.cc.tag);
            if (KEY("rows") && ev->u.cc.has_rows) return wl_lua_pushint(L, (lua_Integer)ev->u.cc.rows);
            break;
        case 'E':
        case 'N':
            if (KEY("sqlstate")) {
                lua_pushstring(L, ev->u.notice.sqlstate);
                return 1;
            }
            if (KEY("severity")) return wl_lua_pushpg(L, ev->u.notice.severity);
            break;
        case 'Z':
            if (KEY("status")) return wl_lua_push1(L, ev->u.ready.status);
            break;
        case 'R':
            if (KEY("auth_code")) return wl_lua_pushint(L, ev->u.auth.code);
            if (KEY("mechanism") && ev->u.auth.mechanism.len) return wl_lua_pushpg(L, ev->u.auth.mechanism);
            break;
        case 'S':
            if (KEY("param")) return wl_lua_pushpg(L, ev->u.param.name);
            if (KEY("value")) return wl_lua_pushpg(L, ev->u.param.value);
            break;
        case 'K':
            if (KEY("pid")) return wl_lua_pushint(L, ev->u.key.pid);
            break;
        }
        break;
    }
    default: break;
    }
    lua_pushnil(L);
    return 1;
}

static int wl_lua_pg_index(lua_State *L) {
    /* Only reachable through the (locked) metatable: arg 1 is a message object. */
    const wl_pg_event **slot = lua_touserdata(L, 1);
    if (!*slot) return luaL_error(L, "message used outside its callback (copy the fields you need)");
    size_t len = 0;
    const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
    if (!k) {
        lua_pushnil(L);
        return 1;
    }
    return wl_lua_pg_field(L, *slot, k, len);
}

static int wl_lua_pg_newindex(lua_State *L) {
    return luaL_error(L, "message objects are read-only (keep your data in conn.state)");
}

static int wl_lua_pg_tostring(lua_State *L) {
    const wl_pg_event **slot = wl_lua_pg_slot(L);
    const wl_pg_event *ev = *slot;
    if (!ev) lua_pushliteral(L, "pg message (expired)");
    else if (ev->kind == WL_PG_EV_MESSAGE)
        lua_pushfstring(L, "pg message %s (%s, %d bytes)", wl_lua_pg_message_name(ev->dir, ev->type),
                        wl_lua_dir_name(ev->dir), (int)ev->size);
    else
        lua_pushfstring(L, "pg message %s (%s)", wl_lua_pg_kinds[ev->kind <= WL_PG_EV_ERROR ? ev->kind : 0],
                        wl_lua_dir_name(ev->dir));
    return 1;
}

/* The fields a message of this kind/type can have, for msg:fields(). */
static const char *const wl_lua_pg_all_fields[] = {
    "kind", "direction", "length", "size", "type", "name", "user", "database",
    "application_name", "version", "pid", "answer", "requested", "error", "sql",
    "sql_truncated", "verb", "statement", "portal", "max_rows", "target", "mechanism",
    "tag", "rows", "sqlstate", "severity", "status", "auth_code", "param", "value", NULL,
};

/* wirelab.pg_fields(msg): every field of the message in a plain table (for
 * logging, or for keeping a message past its callback). */
static int wl_lua_pg_fields(lua_State *L) {
    const wl_pg_event **slot = wl_lua_pg_slot(L);
    if (!*slot) return luaL_error(L, "message used outside its callback (copy the fields you need)");
    lua_createtable(L, 0, 8);
    for (int i = 0; wl_lua_pg_all_fields[i]; i++) {
        const char *k = wl_lua_pg_all_fields[i];
        wl_lua_pg_field(L, *slot, k, strlen(k));
        if (lua_isnil(L, -1)) lua_pop(L, 1);
        else lua_setfield(L, -2, k);
    }
    return 1;
}

/* Per connection: the decoder, and the statement tracker when the script
 * wants statements or transactions (allocated only then). */
typedef struct {
    wl_pg_decoder dec;
    wl_pg_tracker trk;
} wl_lua_pg_state;

typedef struct {
    wl_read *r;
    wl_lua_vm *vm;
    wl_conn *c;
    const wl_pg_event **slot; /* NULL: decode without calling Lua */
    int fed;
} wl_lua_pg_feed_ctx;

static void wl_lua_pg_event(void *user, const wl_pg_event *ev) {
    wl_lua_pg_feed_ctx *x = user;
    wl_lua_vm *vm = x->vm;
    lua_State *L = vm->L;
    if (ev->kind == WL_PG_EV_ERROR) wl_batch_add(vm->m_decoder_errors, 1);
    if (x->slot && (vm->callbacks & WL_LUA_CB_PG_MESSAGE) &&
        (ev->kind != WL_PG_EV_MESSAGE || vm->pg_want[ev->dir == WL_DIR_SERVER][ev->type])) {
#ifdef WL_LUA_PROFILE
        extern uint64_t wl_lua_profile_messages;
        wl_lua_profile_messages++;
#endif
        /* Stack reserved by the thunk, values already there: nothing here can
         * raise an error outside the callback's own protected call. */
        lua_pushvalue(L, 2); /* envoy_on_pg_message */
        lua_pushvalue(L, 3); /* conn */
        lua_pushvalue(L, 1); /* the message object */
        *x->slot = ev;
        wl_lua_call_callback(vm, 2, "envoy_on_pg_message");
        *x->slot = NULL;
    }
    /* The tracker sees every event, Lua or not, so it stays in step. */
    if (vm->callbacks & WL_LUA_STMT_CBS) {
        wl_lua_pg_state *st = ((wl_lua_conn *)x->c->state)->decoder;
        wl_pgt_event(&st->trk, ev, st->trk.now);
    }
}

static const wl_pg_callbacks wl_lua_pg_callbacks = {wl_lua_pg_event};

/* The tracker's user pointer: the read being fed (statements found while
 * decoding it are dispatched inside its protected run), or, with no read
 * (the connection's end, or no Lua stack), the connection alone. */
typedef struct {
    wl_lua_pg_feed_ctx *feed;
    wl_lua_vm *vm;
    wl_conn *c;
} wl_lua_pg_trk_ctx;

static void wl_lua_pg_stmt(void *user, const wl_stmt_event *ev) {
    wl_lua_pg_trk_ctx *t = user;
    if (t->feed && t->feed->slot) wl_lua_call_stmt(t->vm, 3, ev);
    else wl_lua_on_stmt(t->vm, t->c, ev); /* no dispatch running: a run of its own */
}

static void wl_lua_pg_txn(void *user, const wl_txn_event *ev) {
    wl_lua_pg_trk_ctx *t = user;
    if (t->feed && t->feed->slot) wl_lua_call_txn(t->vm, 3, ev);
    else wl_lua_on_txn(t->vm, t->c, ev);
}

static const wl_stmt_callbacks wl_lua_pg_stmt_callbacks = {wl_lua_pg_stmt, wl_lua_pg_txn};

static void wl_lua_pg_feed(wl_lua_pg_feed_ctx *x) {
    wl_lua_pg_state *st = ((wl_lua_conn *)x->c->state)->decoder;
    wl_lua_pg_trk_ctx t = {x, x->vm, x->c};
    st->dec.user = x; /* this read's events go to this context */
    if (x->vm->callbacks & WL_LUA_STMT_CBS) {
        st->trk.user = &t;
        wl_pgt_set_time(&st->trk, wl_now_ns());
    }
    wl_pg_feed(&st->dec, x->r->dir, x->r->size, wl_read_fetch, x->r);
    st->dec.user = NULL;
    if (x->vm->callbacks & WL_LUA_STMT_CBS) st->trk.user = NULL;
}

/* One protected run per read: every message of the read is dispatched from
 * inside it, each in its own protected call with its own budget. */
static void wl_lua_pg_feed_thunk(lua_State *L, void *ud) {
    wl_lua_pg_feed_ctx *x = ud;
    luaL_checkstack(L, 8, "message dispatch");
    lua_rawgeti(L, LUA_REGISTRYINDEX, x->vm->ref_message);  /* 1 */
    wl_lua_push_global(L, WL_LUA_KEY(envoy_on_pg_message)); /* 2 (nil: statements only) */
    wl_lua_push_conn(L, x->c);                               /* 3 */
    x->slot = lua_touserdata(L, 1);
    x->fed = 1;
    wl_lua_pg_feed(x);
    x->slot = NULL;
}

static void wl_lua_pg_open(lua_State *L) {
    static const luaL_Reg meta[] = {
        {"__index", wl_lua_pg_index},
        {"__newindex", wl_lua_pg_newindex},
        {"__tostring", wl_lua_pg_tostring},
        {NULL, NULL},
    };
    luaL_newmetatable(L, PG_MSG_MT);
    luaL_setfuncs(L, meta, 0);
    lua_pushliteral(L, "locked");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    const wl_pg_event **slot = lua_newuserdatauv(L, sizeof *slot, 0);
    *slot = NULL;
    luaL_setmetatable(L, PG_MSG_MT);
    wl_lua_vm_of(L)->ref_message = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_getglobal(L, "wirelab");
    lua_pushcfunction(L, wl_lua_pg_fields);
    lua_setfield(L, -2, "pg_fields");
    lua_pop(L, 1);
}
#endif

/* ---- MySQL --------------------------------------------------------------------- */
#ifdef WL_LUA_WITH_MYSQL

static const char *const wl_lua_mysql_kinds[] = {
    "?", "greeting", "ssl_request", "login", "auth_switch", "auth_more_data", "login_ok",
    "login_failed", "compressed", "command", "result", "local_infile", "command_done",
    "protocol_error", "decoder_error",
};

static void wl_lua_mysql_table(lua_State *L, const wl_mysql_event *ev) {
    lua_createtable(L, 0, 12);
    unsigned k = ev->type <= WL_MYSQL_EV_DECODER_ERROR ? ev->type : 0;
    wl_lua_setcstr(L, WL_LUA_KEY(kind), wl_lua_mysql_kinds[k]);
    wl_lua_setcstr(L, WL_LUA_KEY(direction), wl_lua_dir_name(ev->dir));
    switch (ev->type) {
    case WL_MYSQL_EV_COMMAND:
    case WL_MYSQL_EV_RESULT:
    case WL_MYSQL_EV_COMMAND_DONE:
    case WL_MYSQL_EV_LOCAL_INFILE: {
        const char *cmd = wl_mysql_command_name(ev->command);
        if (cmd) wl_lua_setcstr(L, WL_LUA_KEY(command), cmd);
        wl_lua_setint(L, WL_LUA_KEY(command_code), ev->command);
        wl_lua_setint(L, WL_LUA_KEY(cmd_no), ev->cmd_no);
        if (ev->type != WL_MYSQL_EV_RESULT) {
            const char *verb = wl_mysql_verb_name((wl_mysql_verb)ev->verb);
            if (verb) wl_lua_setcstr(L, WL_LUA_KEY(verb), verb);
        }
        break;
    }
    default: break;
    }
    switch (ev->type) {
    case WL_MYSQL_EV_GREETING:
        wl_lua_setstr(L, WL_LUA_KEY(server_version), ev->text, ev->text_len);
        wl_lua_setint(L, WL_LUA_KEY(conn_id), ev->conn_id);
        wl_lua_setstr(L, WL_LUA_KEY(auth_plugin), ev->auth_plugin, ev->auth_plugin_len);
        break;
    case WL_MYSQL_EV_LOGIN:
        wl_lua_setstr(L, WL_LUA_KEY(user), ev->user, ev->user_len);
        wl_lua_setstr(L, WL_LUA_KEY(database), ev->database, ev->database_len);
        wl_lua_setstr(L, WL_LUA_KEY(auth_plugin), ev->auth_plugin, ev->auth_plugin_len);
        break;
    case WL_MYSQL_EV_AUTH_SWITCH:
        wl_lua_setstr(L, WL_LUA_KEY(auth_plugin), ev->auth_plugin, ev->auth_plugin_len);
        break;
    case WL_MYSQL_EV_LOGIN_FAILED:
        wl_lua_setint(L, WL_LUA_KEY(err_code), ev->err_code);
        wl_lua_setcstr(L, WL_LUA_KEY(sqlstate), ev->sqlstate);
        break;
    case WL_MYSQL_EV_COMMAND:
        if (ev->command == WL_MYSQL_COM_INIT_DB) {
            wl_lua_setstr(L, WL_LUA_KEY(database), ev->text, ev->text_len);
        } else if (ev->command == WL_MYSQL_COM_CHANGE_USER) {
            wl_lua_setstr(L, WL_LUA_KEY(user), ev->user, ev->user_len);
        } else if (ev->text) {
            wl_lua_setstr(L, WL_LUA_KEY(sql), ev->text, ev->text_len);
            wl_lua_setbool(L, WL_LUA_KEY(sql_truncated), ev->text_total > ev->text_len);
        }
        if (ev->stmt_id) wl_lua_setint(L, WL_LUA_KEY(stmt_id), ev->stmt_id);
        break;
    case WL_MYSQL_EV_RESULT:
    case WL_MYSQL_EV_COMMAND_DONE: {
        static const char *const outcomes[] = {"ok", "error", "none"};
        const char *o = ev->outcome <= 2 ? outcomes[ev->outcome] : "ok";
        wl_lua_setcstr(L, WL_LUA_KEY(outcome), o);
        if (ev->outcome == WL_MYSQL_OUTCOME_ERR) {
            wl_lua_setint(L, WL_LUA_KEY(err_code), ev->err_code);
            wl_lua_setcstr(L, WL_LUA_KEY(sqlstate), ev->sqlstate);
        }
        wl_lua_setint(L, WL_LUA_KEY(rows), (lua_Integer)ev->rows);
        wl_lua_setint(L, WL_LUA_KEY(affected_rows), (lua_Integer)ev->affected_rows);
        wl_lua_setint(L, WL_LUA_KEY(warnings), ev->warnings);
        if (ev->type == WL_MYSQL_EV_COMMAND_DONE) wl_lua_setint(L, WL_LUA_KEY(results), ev->results);
        else wl_lua_setbool(L, WL_LUA_KEY(result_set), ev->is_result_set);
        break;
    }
    case WL_MYSQL_EV_LOCAL_INFILE:
        wl_lua_setstr(L, WL_LUA_KEY(file), ev->text, ev->text_len);
        break;
    case WL_MYSQL_EV_PROTOCOL_ERROR:
    case WL_MYSQL_EV_DECODER_ERROR:
        wl_lua_setstr(L, WL_LUA_KEY(error), ev->text, ev->text_len);
        break;
    default: break;
    }
}

static void wl_lua_mysql_thunk(lua_State *L, void *ud) {
    wl_lua_event_ctx *x = ud;
    const wl_mysql_event *ev = x->ev;
    wl_lua_vm *vm = x->vm;
    int table_made = 0;
    /* The specific callback first, then the catch-all for every event. */
    if ((ev->type == WL_MYSQL_EV_COMMAND && (vm->callbacks & WL_LUA_CB_MYSQL_COMMAND)) ||
        (ev->type == WL_MYSQL_EV_COMMAND_DONE && (vm->callbacks & WL_LUA_CB_MYSQL_RESULT))) {
        wl_lua_push_global(L, ev->type == WL_MYSQL_EV_COMMAND ? WL_LUA_KEY(envoy_on_mysql_command)
                                                              : WL_LUA_KEY(envoy_on_mysql_result));
        wl_lua_push_conn(L, x->c);
        wl_lua_mysql_table(L, ev);
        lua_pushvalue(L, -1);
        lua_insert(L, 1);
        table_made = 1;
        lua_call(L, 2, 0);
    }
    if (vm->callbacks & WL_LUA_CB_MYSQL_EVENT) {
        wl_lua_push_global(L, WL_LUA_KEY(envoy_on_mysql_event));
        wl_lua_push_conn(L, x->c);
        if (table_made) lua_pushvalue(L, 1);
        else wl_lua_mysql_table(L, ev);
        lua_call(L, 2, 0);
    }
}

/* Per connection: the decoder, the clock of the read being fed, and the
 * statement tracker when the script wants statements or transactions
 * (allocated only then). */
typedef struct {
    wl_mysql_decoder dec;
    uint64_t now;
    wl_mysql_tracker trk;
} wl_lua_my_state;

static void wl_lua_mysql_event_cb(void *ud, const wl_mysql_event *ev) {
    wl_conn *c = ud;
    wl_lua_vm *vm = c->plugin->state;
    if (ev->type == WL_MYSQL_EV_DECODER_ERROR) wl_batch_add(vm->m_decoder_errors, 1);
    uint32_t want = WL_LUA_CB_MYSQL_EVENT;
    if (ev->type == WL_MYSQL_EV_COMMAND) want |= WL_LUA_CB_MYSQL_COMMAND;
    if (ev->type == WL_MYSQL_EV_COMMAND_DONE) want |= WL_LUA_CB_MYSQL_RESULT;
    if (vm->callbacks & want) {
        wl_lua_event_ctx x = {vm, c, ev};
        wl_lua_protected(vm, ev->type == WL_MYSQL_EV_COMMAND ? "envoy_on_mysql_command"
                             : ev->type == WL_MYSQL_EV_COMMAND_DONE ? "envoy_on_mysql_result"
                                                                    : "envoy_on_mysql_event",
                         wl_lua_mysql_thunk, &x);
    }
    /* The tracker sees every event, after the script's own callbacks for it,
     * so a statement follows the result that finished it. */
    if (vm->callbacks & WL_LUA_STMT_CBS) {
        wl_lua_my_state *st = ((wl_lua_conn *)c->state)->decoder;
        wl_mysql_tracker_event(&st->trk, ev, st->now);
    }
}

/* Tracker events: MySQL's events are dispatched one protected run each, so
 * statements and transactions get one of their own too. */
static void wl_lua_my_stmt(void *user, const wl_stmt_event *ev) {
    wl_conn *c = user;
    wl_lua_on_stmt(c->plugin->state, c, ev);
}

static void wl_lua_my_txn(void *user, const wl_txn_event *ev) {
    wl_conn *c = user;
    wl_lua_on_txn(c->plugin->state, c, ev);
}

static const wl_stmt_callbacks wl_lua_my_stmt_callbacks = {wl_lua_my_stmt, wl_lua_my_txn};
#endif

/* ---- dispatch ------------------------------------------------------------------- */

int wl_lua_protocol_supported(wl_lua_protocol proto) {
    switch (proto) {
    case WL_LUA_TCP: return 1;
#ifdef WL_LUA_WITH_POSTGRES
    case WL_LUA_POSTGRES: return 1;
#endif
#ifdef WL_LUA_WITH_MYSQL
    case WL_LUA_MYSQL: return 1;
#endif
    default: return 0;
    }
}

void wl_lua_proto_open(lua_State *L) {
#ifdef WL_LUA_WITH_POSTGRES
    wl_lua_pg_open(L);
#else
    (void)L;
#endif
}

void wl_lua_decoder_init(wl_lua_vm *vm, wl_conn *c) {
    wl_lua_conn *lc = c->state;
    lc->decoder_protocol = (uint8_t)vm->protocol;
    switch (vm->protocol) {
#ifdef WL_LUA_WITH_POSTGRES
    case WL_LUA_POSTGRES:
    {
        if (!(vm->callbacks & (WL_LUA_CB_PG_MESSAGE | WL_LUA_STMT_CBS))) return;
        int track = (vm->callbacks & WL_LUA_STMT_CBS) != 0;
        wl_lua_pg_state *st = malloc(track ? sizeof *st : sizeof st->dec);
        lc->decoder = st;
        if (!st) return;
        wl_pg_init(&st->dec, &wl_lua_pg_callbacks, NULL);
        if (track) wl_pgt_init(&st->trk, &wl_lua_pg_stmt_callbacks, NULL);
        return;
    }
#endif
#ifdef WL_LUA_WITH_MYSQL
    case WL_LUA_MYSQL:
    {
        if (!(vm->callbacks & (WL_LUA_CB_MYSQL_COMMAND | WL_LUA_CB_MYSQL_RESULT |
                               WL_LUA_CB_MYSQL_EVENT | WL_LUA_STMT_CBS)))
            return;
        int track = (vm->callbacks & WL_LUA_STMT_CBS) != 0;
        wl_lua_my_state *st = malloc(track ? sizeof *st : offsetof(wl_lua_my_state, trk));
        lc->decoder = st;
        if (!st) return;
        wl_mysql_init(&st->dec, wl_lua_mysql_event_cb, c);
        st->now = 0;
        if (track) wl_mysql_tracker_init(&st->trk, &wl_lua_my_stmt_callbacks, c);
        return;
    }
#endif
    default: return;
    }
}

void wl_lua_decoder_feed(wl_lua_vm *vm, wl_conn *c, wl_read *r) {
    wl_lua_conn *lc = c->state;
    (void)r;
    switch (vm->protocol) {
#ifdef WL_LUA_WITH_POSTGRES
    case WL_LUA_POSTGRES:
        if (wl_pg_active(&((wl_lua_pg_state *)lc->decoder)->dec)) {
            wl_lua_pg_feed_ctx x = {r, vm, c, NULL, 0};
            wl_lua_protected(vm, "envoy_on_pg_message", wl_lua_pg_feed_thunk, &x);
            /* Failed before decoding (no memory for the stack)? Decode anyway,
             * without Lua, so the decoder stays in step with the stream. */
            if (!x.fed) wl_lua_pg_feed(&x);
        }
        return;
#endif
#ifdef WL_LUA_WITH_MYSQL
    case WL_LUA_MYSQL:
    {
        wl_lua_my_state *st = lc->decoder;
        if (!wl_mysql_active(&st->dec) || r->size == 0) return;
        /* one clock per read: commands are stamped with it (latency at any
         * pipeline depth) and the tracker ends statements at it */
        st->now = wl_now_ns();
        wl_mysql_set_clock(&st->dec, st->now);
        wl_mysql_feed(&st->dec, r->dir, r->size, wl_read_fetch, r);
        return;
    }
#endif
    default: (void)lc; return;
    }
}

void wl_lua_decoder_close(wl_lua_vm *vm, wl_conn *c) {
    wl_lua_conn *lc = c->state;
    if (!lc->decoder) return;
    switch (vm->protocol) {
#ifdef WL_LUA_WITH_POSTGRES
    case WL_LUA_POSTGRES:
        if (vm->callbacks & WL_LUA_STMT_CBS) {
            /* The server rolls back an open transaction when the connection ends. */
            wl_lua_pg_state *st = lc->decoder;
            wl_lua_pg_trk_ctx t = {NULL, vm, c};
            st->trk.user = &t;
            wl_pgt_close(&st->trk, wl_now_ns());
            st->trk.user = NULL;
        }
        return;
#endif
#ifdef WL_LUA_WITH_MYSQL
    case WL_LUA_MYSQL:
        if (vm->callbacks & WL_LUA_STMT_CBS) {
            wl_lua_my_state *st = lc->decoder;
            wl_mysql_tracker_end(&st->trk, wl_now_ns()); /* cursors still open */
        }
        return;
#endif
    default: return;
    }
}

void wl_lua_decoder_free(wl_conn *c) {
    wl_lua_conn *lc = c->state;
    if (!lc->decoder) return;
#ifdef WL_LUA_WITH_MYSQL
    /* the decoder's pending queue may have grown onto the heap */
    if (lc->decoder_protocol == WL_LUA_MYSQL) wl_mysql_release(&((wl_lua_my_state *)lc->decoder)->dec);
#endif
    free(lc->decoder);
    lc->decoder = NULL;
}
