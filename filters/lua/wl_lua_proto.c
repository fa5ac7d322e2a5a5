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
#endif
#ifdef WL_LUA_WITH_MYSQL
#include "mysql.h"
#endif

typedef struct {
    wl_lua_vm *vm;
    wl_conn *c;
    const void *ev;
} wl_lua_event_ctx;

static void wl_lua_setstr(lua_State *L, const char *key, const char *s, size_t n) {
    lua_pushlstring(L, s ? s : "", s ? n : 0);
    lua_setfield(L, -2, key);
}

static void wl_lua_setcstr(lua_State *L, const char *key, const char *s) {
    lua_pushstring(L, s);
    lua_setfield(L, -2, key);
}

static void wl_lua_setint(lua_State *L, const char *key, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, key);
}

static void wl_lua_setbool(lua_State *L, const char *key, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, key);
}

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

#define PGS(key, s) wl_lua_setstr(L, key, (s).ptr, (s).len)

static void wl_lua_pg_table(lua_State *L, const wl_pg_event *ev) {
    lua_createtable(L, 0, 8);
    wl_lua_setcstr(L, "kind", wl_lua_pg_kinds[ev->kind <= WL_PG_EV_ERROR ? ev->kind : 0]);
    wl_lua_setcstr(L, "direction", wl_lua_dir_name(ev->dir));
    wl_lua_setint(L, "length", ev->length);
    wl_lua_setint(L, "size", ev->size);
    switch (ev->kind) {
    case WL_PG_EV_STARTUP:
        wl_lua_setint(L, "version", ev->u.startup.version);
        PGS("user", ev->u.startup.user);
        PGS("database", ev->u.startup.database);
        PGS("application_name", ev->u.startup.application_name);
        return;
    case WL_PG_EV_CANCEL_REQUEST:
        wl_lua_setint(L, "pid", ev->u.cancel.pid);
        return;
    case WL_PG_EV_ENCRYPTION_RESPONSE: {
        char a = (char)ev->u.encryption.answer, r = (char)ev->u.encryption.requested;
        wl_lua_setstr(L, "answer", &a, 1);
        wl_lua_setstr(L, "requested", &r, 1);
        return;
    }
    case WL_PG_EV_ERROR: {
        unsigned code = ev->u.error.code;
        const char *e = code <= WL_PG_ERR_MALFORMED ? wl_lua_pg_errors[code] : "malformed";
        wl_lua_setcstr(L, "error", e);
        return;
    }
    case WL_PG_EV_MESSAGE: break;
    default: return;
    }
    char t = (char)ev->type;
    wl_lua_setstr(L, "type", &t, 1);
    const char *name = wl_lua_pg_message_name(ev->dir, ev->type);
    wl_lua_setcstr(L, "name", name);
    if (ev->dir == WL_DIR_CLIENT) {
        switch (t) {
        case 'Q':
        case 'P': {
            PGS("sql", ev->u.query.sql);
            wl_lua_setbool(L, "sql_truncated", ev->u.query.sql_truncated);
            if (t == 'P') PGS("statement", ev->u.query.name);
            const char *verb = wl_pg_cmd_name(wl_pg_cmd_from_sql(ev->u.query.sql.ptr, ev->u.query.sql.len));
            wl_lua_setcstr(L, "verb", verb);
            break;
        }
        case 'B':
            PGS("portal", ev->u.bind.portal);
            PGS("statement", ev->u.bind.statement);
            break;
        case 'E':
            PGS("portal", ev->u.execute.portal);
            wl_lua_setint(L, "max_rows", ev->u.execute.max_rows);
            break;
        case 'D':
        case 'C': {
            const char *what = ev->u.target.what == 'S' ? "statement" : "portal";
            wl_lua_setcstr(L, "target", what);
            PGS(what, ev->u.target.name);
            break;
        }
        case 'p':
            if (ev->u.auth_response.mechanism.len) PGS("mechanism", ev->u.auth_response.mechanism);
            break;
        }
        return;
    }
    switch (t) {
    case 'C': {
        PGS("tag", ev->u.cc.tag);
        const char *verb = wl_pg_cmd_name(ev->u.cc.kind);
        wl_lua_setcstr(L, "verb", verb);
        if (ev->u.cc.has_rows) wl_lua_setint(L, "rows", (lua_Integer)ev->u.cc.rows);
        break;
    }
    case 'E':
    case 'N':
        PGS("severity", ev->u.notice.severity);
        wl_lua_setcstr(L, "sqlstate", ev->u.notice.sqlstate);
        break;
    case 'Z': {
        char s = (char)ev->u.ready.status;
        wl_lua_setstr(L, "status", &s, 1);
        break;
    }
    case 'R':
        wl_lua_setint(L, "auth_code", ev->u.auth.code);
        if (ev->u.auth.mechanism.len) PGS("mechanism", ev->u.auth.mechanism);
        break;
    case 'S':
        PGS("param", ev->u.param.name);
        PGS("value", ev->u.param.value);
        break;
    case 'K':
        wl_lua_setint(L, "pid", ev->u.key.pid);
        break;
    }
}

static void wl_lua_pg_thunk(lua_State *L, void *ud) {
    wl_lua_event_ctx *x = ud;
    lua_getglobal(L, "envoy_on_pg_message");
    wl_lua_push_conn(L, x->c);
    wl_lua_pg_table(L, x->ev);
    lua_call(L, 2, 0);
}

static void wl_lua_pg_event(void *user, const wl_pg_event *ev) {
    wl_conn *c = user;
    wl_lua_vm *vm = c->plugin->state;
    if (ev->kind == WL_PG_EV_ERROR) wl_batch_add(vm->m_decoder_errors, 1);
    wl_lua_event_ctx x = {vm, c, ev};
    wl_lua_protected(vm, "envoy_on_pg_message", wl_lua_pg_thunk, &x);
}

static const wl_pg_callbacks wl_lua_pg_callbacks = {wl_lua_pg_event};
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
    wl_lua_setcstr(L, "kind", wl_lua_mysql_kinds[k]);
    wl_lua_setcstr(L, "direction", wl_lua_dir_name(ev->dir));
    switch (ev->type) {
    case WL_MYSQL_EV_COMMAND:
    case WL_MYSQL_EV_RESULT:
    case WL_MYSQL_EV_COMMAND_DONE:
    case WL_MYSQL_EV_LOCAL_INFILE: {
        const char *cmd = wl_mysql_command_name(ev->command);
        if (cmd) wl_lua_setcstr(L, "command", cmd);
        wl_lua_setint(L, "command_code", ev->command);
        wl_lua_setint(L, "cmd_no", ev->cmd_no);
        if (ev->type != WL_MYSQL_EV_RESULT) {
            const char *verb = wl_mysql_verb_name((wl_mysql_verb)ev->verb);
            if (verb) wl_lua_setcstr(L, "verb", verb);
        }
        break;
    }
    default: break;
    }
    switch (ev->type) {
    case WL_MYSQL_EV_GREETING:
        wl_lua_setstr(L, "server_version", ev->text, ev->text_len);
        wl_lua_setint(L, "conn_id", ev->conn_id);
        wl_lua_setstr(L, "auth_plugin", ev->auth_plugin, ev->auth_plugin_len);
        break;
    case WL_MYSQL_EV_LOGIN:
        wl_lua_setstr(L, "user", ev->user, ev->user_len);
        wl_lua_setstr(L, "database", ev->database, ev->database_len);
        wl_lua_setstr(L, "auth_plugin", ev->auth_plugin, ev->auth_plugin_len);
        break;
    case WL_MYSQL_EV_AUTH_SWITCH:
        wl_lua_setstr(L, "auth_plugin", ev->auth_plugin, ev->auth_plugin_len);
        break;
    case WL_MYSQL_EV_LOGIN_FAILED:
        wl_lua_setint(L, "err_code", ev->err_code);
        wl_lua_setcstr(L, "sqlstate", ev->sqlstate);
        break;
    case WL_MYSQL_EV_COMMAND:
        if (ev->command == WL_MYSQL_COM_INIT_DB) {
            wl_lua_setstr(L, "database", ev->text, ev->text_len);
        } else if (ev->command == WL_MYSQL_COM_CHANGE_USER) {
            wl_lua_setstr(L, "user", ev->user, ev->user_len);
        } else if (ev->text) {
            wl_lua_setstr(L, "sql", ev->text, ev->text_len);
            wl_lua_setbool(L, "sql_truncated", ev->text_total > ev->text_len);
        }
        if (ev->stmt_id) wl_lua_setint(L, "stmt_id", ev->stmt_id);
        break;
    case WL_MYSQL_EV_RESULT:
    case WL_MYSQL_EV_COMMAND_DONE: {
        static const char *const outcomes[] = {"ok", "error", "none"};
        const char *o = ev->outcome <= 2 ? outcomes[ev->outcome] : "ok";
        wl_lua_setcstr(L, "outcome", o);
        if (ev->outcome == WL_MYSQL_OUTCOME_ERR) {
            wl_lua_setint(L, "err_code", ev->err_code);
            wl_lua_setcstr(L, "sqlstate", ev->sqlstate);
        }
        wl_lua_setint(L, "rows", (lua_Integer)ev->rows);
        wl_lua_setint(L, "affected_rows", (lua_Integer)ev->affected_rows);
        wl_lua_setint(L, "warnings", ev->warnings);
        if (ev->type == WL_MYSQL_EV_COMMAND_DONE) wl_lua_setint(L, "results", ev->results);
        else wl_lua_setbool(L, "result_set", ev->is_result_set);
        break;
    }
    case WL_MYSQL_EV_LOCAL_INFILE:
        wl_lua_setstr(L, "file", ev->text, ev->text_len);
        break;
    case WL_MYSQL_EV_PROTOCOL_ERROR:
    case WL_MYSQL_EV_DECODER_ERROR:
        wl_lua_setstr(L, "error", ev->text, ev->text_len);
        break;
    default: break;
    }
}

static void wl_lua_mysql_thunk(lua_State *L, void *ud) {
    wl_lua_event_ctx *x = ud;
    const wl_mysql_event *ev = x->ev;
    const char *fn = ev->type == WL_MYSQL_EV_COMMAND        ? "envoy_on_mysql_command"
                     : ev->type == WL_MYSQL_EV_COMMAND_DONE ? "envoy_on_mysql_result"
                                                            : "envoy_on_mysql_event";
    wl_lua_vm *vm = x->vm;
    int table_made = 0;
    /* The specific callback first, then the catch-all for every event. */
    if ((ev->type == WL_MYSQL_EV_COMMAND && (vm->callbacks & WL_LUA_CB_MYSQL_COMMAND)) ||
        (ev->type == WL_MYSQL_EV_COMMAND_DONE && (vm->callbacks & WL_LUA_CB_MYSQL_RESULT))) {
        lua_getglobal(L, fn);
        wl_lua_push_conn(L, x->c);
        wl_lua_mysql_table(L, ev);
        lua_pushvalue(L, -1);
        lua_insert(L, 1);
        table_made = 1;
        lua_call(L, 2, 0);
    }
    if (vm->callbacks & WL_LUA_CB_MYSQL_EVENT) {
        lua_getglobal(L, "envoy_on_mysql_event");
        wl_lua_push_conn(L, x->c);
        if (table_made) lua_pushvalue(L, 1);
        else wl_lua_mysql_table(L, ev);
        lua_call(L, 2, 0);
    }
}

static void wl_lua_mysql_event_cb(void *ud, const wl_mysql_event *ev) {
    wl_conn *c = ud;
    wl_lua_vm *vm = c->plugin->state;
    if (ev->type == WL_MYSQL_EV_DECODER_ERROR) wl_batch_add(vm->m_decoder_errors, 1);
    uint32_t want = WL_LUA_CB_MYSQL_EVENT;
    if (ev->type == WL_MYSQL_EV_COMMAND) want |= WL_LUA_CB_MYSQL_COMMAND;
    if (ev->type == WL_MYSQL_EV_COMMAND_DONE) want |= WL_LUA_CB_MYSQL_RESULT;
    if (!(vm->callbacks & want)) return;
    wl_lua_event_ctx x = {vm, c, ev};
    wl_lua_protected(vm, ev->type == WL_MYSQL_EV_COMMAND ? "envoy_on_mysql_command"
                         : ev->type == WL_MYSQL_EV_COMMAND_DONE ? "envoy_on_mysql_result"
                                                                : "envoy_on_mysql_event",
                     wl_lua_mysql_thunk, &x);
}
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

void wl_lua_decoder_init(wl_lua_vm *vm, wl_conn *c) {
    wl_lua_conn *lc = c->state;
    switch (vm->protocol) {
#ifdef WL_LUA_WITH_POSTGRES
    case WL_LUA_POSTGRES:
        if (!(vm->callbacks & WL_LUA_CB_PG_MESSAGE)) return;
        lc->decoder = malloc(sizeof(wl_pg_decoder));
        if (lc->decoder) wl_pg_init(lc->decoder, &wl_lua_pg_callbacks, c);
        return;
#endif
#ifdef WL_LUA_WITH_MYSQL
    case WL_LUA_MYSQL:
        if (!(vm->callbacks &
              (WL_LUA_CB_MYSQL_COMMAND | WL_LUA_CB_MYSQL_RESULT | WL_LUA_CB_MYSQL_EVENT)))
            return;
        lc->decoder = malloc(sizeof(wl_mysql_decoder));
        if (lc->decoder) wl_mysql_init(lc->decoder, wl_lua_mysql_event_cb, c);
        return;
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
        if (wl_pg_active(lc->decoder)) wl_pg_feed(lc->decoder, r->dir, r->size, wl_read_fetch, r);
        return;
#endif
#ifdef WL_LUA_WITH_MYSQL
    case WL_LUA_MYSQL:
        if (wl_mysql_active(lc->decoder)) wl_mysql_feed(lc->decoder, r->dir, r->size, wl_read_fetch, r);
        return;
#endif
    default: (void)lc; return;
    }
}
