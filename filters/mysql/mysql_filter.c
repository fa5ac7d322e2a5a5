/* mysql: MySQL / MariaDB metrics filter. Decoder events (filters/protocols/
 * mysql.h) become the command-level stats of mysql_stats.h; the statement
 * tracker (mysql_tracker.h) turns the same events into the statement and
 * transaction stats; see README.md. Traffic is never paused or modified. */
#include <stdio.h>
#include <string.h>

#include "mysql.h"
#include "mysql_tracker.h"
#include "mysql_stats.h"
#include "wirelab_filter.h"

#define MAX_TAG_VALUES 64
#define TAG_VALUE_LEN 48
#define MAX_COMBOS 64
#define SQL_KEEP 256
#define OTHER_VALUE 0xff

static const int error_codes[] = {
#define ERR_CODE(c) c,
    MYSQL_ERROR_CODES(ERR_CODE)
#undef ERR_CODE
};
#define N_ERROR_CODES ((int)(sizeof error_codes / sizeof error_codes[0]))

static const char *const login_reasons[] = {
#define REASON(r) #r,
    MYSQL_LOGIN_REASONS(REASON)
#undef REASON
};
#define N_LOGIN_REASONS ((int)(sizeof login_reasons / sizeof login_reasons[0]))

static const char *const verb_names[MYSQL_VERB_SLOTS] = {
#define VERB(v) #v,
    MYSQL_VERBS(VERB)
#undef VERB
};

enum { PREP_PREPARED = 0, PREP_EXECUTED, PREP_CLOSED, PREP_SLOTS };
static const char *const prep_names[PREP_SLOTS] = {"prepared", "executed", "closed"};

/* Statement metrics of one (database, user) pair; OTHER_VALUE = "other". */
typedef struct {
    uint8_t db, user, defined;
    wl_metric count[MYSQL_VERB_SLOTS];
    wl_metric duration[MYSQL_VERB_SLOTS];
} combo;

typedef struct {
    char prefix[64];
    int64_t slow_us;          /* <= 0: slow statement detection off */
    int slow_sql_bytes;
    int tag_db, tag_user, max_values;
    wl_metric stat[MYSQL_STAT_COUNT];
    wl_metric commands[MYSQL_COMMAND_SLOTS];
    wl_metric command_us[MYSQL_COMMAND_SLOTS];
    wl_metric errors[N_ERROR_CODES + 1];
    wl_metric login_reason[N_LOGIN_REASONS];
    wl_metric prepared[PREP_SLOTS];
    wl_metric bytes[2];
    char dbs[MAX_TAG_VALUES][TAG_VALUE_LEN];
    char users[MAX_TAG_VALUES][TAG_VALUE_LEN];
    int n_dbs, n_users;
    combo combos[MAX_COMBOS];
    int n_combos;
    combo overflow; /* database=other, user=other */
} plugin_state;

typedef struct {
    wl_mysql_decoder dec;
    wl_mysql_tracker trk;
    wl_conn *conn;
    uint64_t now;                            /* wl_now_ns() of the current callback */
    uint8_t db, user;                        /* tag value indexes (OTHER_VALUE when unknown) */
    uint8_t pending_db;                      /* INIT_DB / USE awaiting its OK */
    uint8_t pending_user;                    /* CHANGE_USER awaiting its OK */
    uint8_t have_pending_db, have_pending_user;
} conn_state;

WL_PLUGIN_STATE(plugin_state)
WL_CONN_STATE(conn_state)

static int command_slot(uint8_t c) {
    if (c <= WL_MYSQL_COM_CLONE) return c;
    if (c == WL_MYSQL_COM_STMT_BULK_EXECUTE) return 33;
    if (c == WL_MYSQL_COM_MULTI) return 34;
    return 35;
}

static int verb_slot(uint8_t v) {
    if (v >= WL_MYSQL_VERB_SELECT && v <= WL_MYSQL_VERB_ROLLBACK) return v - WL_MYSQL_VERB_SELECT;
    return MYSQL_VERB_SLOTS - 1; /* other, unknown */
}

static int error_slot(uint16_t code) {
    for (int i = 0; i < N_ERROR_CODES; i++)
        if (error_codes[i] == code) return i;
    return N_ERROR_CODES;
}

static int login_reason_slot(uint16_t code) {
    switch (code) {
    case 1045: case 1698: return 0;   /* access denied */
    case 1044: return 1;              /* no access to the database */
    case 1049: return 2;              /* unknown database */
    case 1040: return 3;              /* too many connections */
    case 1203: case 1226: return 4;   /* per-user connection or resource limit */
    case 1129: return 5;              /* host blocked */
    case 1130: return 6;              /* host not allowed */
    case 1251: return 7;              /* client does not support the auth protocol */
    case 1820: case 1862: return 8;   /* password expired */
    case 3118: case 4151: return 9;   /* account locked */
    default: return N_LOGIN_REASONS - 1;
    }
}

/* ------------------------------------------------------------ tag values */

static uint8_t tag_index(char (*table)[TAG_VALUE_LEN], int *n, int max, const char *s, size_t len) {
    char v[TAG_VALUE_LEN];
    if (!s || len == 0) return OTHER_VALUE;
    if (len >= sizeof v) len = sizeof v - 1;
    memcpy(v, s, len);
    v[len] = 0;
    wl_sanitize_tag(v);
    for (int i = 0; i < *n; i++)
        if (strcmp(table[i], v) == 0) return (uint8_t)i;
    if (*n >= max) return OTHER_VALUE;
    memcpy(table[*n], v, len + 1);
    return (uint8_t)(*n)++;
}

static void define_combo(plugin_state *s, combo *c) {
    char tags[2 * TAG_VALUE_LEN + 32];
    size_t k = 0;
    tags[0] = 0;
    if (s->tag_db)
        k += (size_t)snprintf(tags + k, sizeof tags - k, ".database=%s",
                              c->db == OTHER_VALUE ? "other" : s->dbs[c->db]);
    if (s->tag_user)
        snprintf(tags + k, sizeof tags - k, ".user=%s", c->user == OTHER_VALUE ? "other" : s->users[c->user]);
    for (int v = 0; v < MYSQL_VERB_SLOTS; v++) {
        c->count[v] = wl_counter("mysql.%s." MYSQL_STAT_STATEMENTS ".verb=%s%s", s->prefix, verb_names[v], tags);
        c->duration[v] =
            wl_histogram("mysql.%s." MYSQL_STAT_STATEMENT_DURATION ".verb=%s%s", s->prefix, verb_names[v], tags);
    }
    c->defined = 1;
}

/* Statement metrics for the connection's current database and user. */
static combo *combo_for(plugin_state *s, conn_state *cs) {
    if (!s->tag_db && !s->tag_user) return &s->combos[0];
    uint8_t db = s->tag_db ? cs->db : 0, user = s->tag_user ? cs->user : 0;
    for (int i = 0; i < s->n_combos; i++)
        if (s->combos[i].db == db && s->combos[i].user == user) return &s->combos[i];
    if (s->n_combos >= MAX_COMBOS || s->n_combos >= s->max_values) return &s->overflow;
    combo *c = &s->combos[s->n_combos++];
    c->db = db;
    c->user = user;
    define_combo(s, c); /* once per distinct pair, bounded by max_values */
    return c;
}

/* ------------------------------------------------------------- configure */

static void define_command(plugin_state *s, int i) {
    const char *name = i == 33 ? "stmt_bulk_execute" : i == 34 ? "multi" : i == 35 ? "unknown"
                                                                         : wl_mysql_command_name((uint8_t)i);
    s->commands[i] = wl_counter("mysql.%s." MYSQL_STAT_COMMANDS ".command=%s", s->prefix, name);
    s->command_us[i] = wl_histogram("mysql.%s." MYSQL_STAT_COMMAND_DURATION ".command=%s", s->prefix, name);
}

int wl_on_configure(wl_plugin *p) {
    plugin_state *s = p->state;
    static const char *const scalar_names[MYSQL_STAT_COUNT] = {
#define STAT_NAME(id, kind, name) name,
        MYSQL_SCALAR_STATS(STAT_NAME)
#undef STAT_NAME
    };
    static const int scalar_gauge[MYSQL_STAT_COUNT] = {
#define STAT_KIND(id, kind, name) MYSQL_KIND_##kind,
        MYSQL_SCALAR_STATS(STAT_KIND)
#undef STAT_KIND
    };
    wl_config_string(p, "stat_prefix", s->prefix, sizeof s->prefix, "mysql");
    if (!s->prefix[0]) {
        wl_error("mysql filter: stat_prefix must not be empty");
        return 0;
    }
    wl_sanitize_tag(s->prefix);
    s->slow_us = wl_config_int(p, "slow_threshold_ms", 1000) * 1000;
    int64_t sql_bytes = wl_config_int(p, "slow_log_sql_bytes", 200);
    s->slow_sql_bytes = sql_bytes < 0 ? 0 : sql_bytes > SQL_KEEP ? SQL_KEEP : (int)sql_bytes;
    s->tag_db = wl_config_bool(p, "tags.database", 0);
    s->tag_user = wl_config_bool(p, "tags.user", 0);
    int64_t mv = wl_config_int(p, "tags.max_values", 20);
    s->max_values = mv < 1 ? 1 : mv > MAX_TAG_VALUES ? MAX_TAG_VALUES : (int)mv;
    int64_t flush_ms = wl_config_int(p, "metrics_flush_ms", 1000);
    if (flush_ms < 0 || flush_ms > 60000) {
        wl_error("mysql filter: metrics_flush_ms must be between 0 and 60000, not %lld", (long long)flush_ms);
        return 0;
    }
    wl_batch_hold_ms((uint32_t)flush_ms);

    /* Natively, metrics defined one after the other sit side by side in the
     * SDK's batch, which prefetches the slots of the first 32 counters on
     * every callback (wl_metrics.c): the counters of every query first (26 of
     * them), so a transaction's adds hit lines already on their way. */
    s->bytes[WL_DIR_CLIENT] = wl_counter("mysql.%s." MYSQL_STAT_BYTES ".direction=client", s->prefix);
    s->bytes[WL_DIR_SERVER] = wl_counter("mysql.%s." MYSQL_STAT_BYTES ".direction=server", s->prefix);
    s->n_combos = 0;
    if (!s->tag_db && !s->tag_user) {
        define_combo(s, &s->combos[0]);
        s->n_combos = 1;
    } else {
        s->overflow.db = s->overflow.user = OTHER_VALUE;
        define_combo(s, &s->overflow);
    }
    for (int i = 0; i < PREP_SLOTS; i++)
        s->prepared[i] = wl_counter("mysql.%s." MYSQL_STAT_PREPARED ".type=%s", s->prefix, prep_names[i]);
    static const uint8_t per_query[] = {
        MYSQL_STAT_QUERIES_PARSED, MYSQL_STAT_RESULT_SETS,         MYSQL_STAT_ROWS_RETURNED,
        MYSQL_STAT_ROWS_AFFECTED,  MYSQL_STAT_WARNINGS,            MYSQL_STAT_TRANSACTIONS_COMMITTED,
        MYSQL_STAT_TRANSACTIONS_ROLLED_BACK};
    static const uint8_t per_query_commands[] = {WL_MYSQL_COM_QUERY, WL_MYSQL_COM_STMT_PREPARE,
                                                 WL_MYSQL_COM_STMT_EXECUTE, WL_MYSQL_COM_STMT_CLOSE,
                                                 WL_MYSQL_COM_STMT_FETCH};
    uint8_t stat_defined[MYSQL_STAT_COUNT] = {0}, command_defined[MYSQL_COMMAND_SLOTS] = {0};
    for (size_t k = 0; k < sizeof per_query; k++) {
        int i = per_query[k];
        s->stat[i] = wl_counter("mysql.%s.%s", s->prefix, scalar_names[i]);
        stat_defined[i] = 1;
    }
    for (size_t k = 0; k < sizeof per_query_commands; k++) {
        define_command(s, per_query_commands[k]);
        command_defined[per_query_commands[k]] = 1;
    }
    for (int i = 0; i < MYSQL_STAT_COUNT; i++)
        if (!stat_defined[i])
            s->stat[i] = scalar_gauge[i] ? wl_gauge("mysql.%s.%s", s->prefix, scalar_names[i])
                                         : wl_counter("mysql.%s.%s", s->prefix, scalar_names[i]);
    for (int i = 0; i < MYSQL_COMMAND_SLOTS; i++)
        if (!command_defined[i]) define_command(s, i);
    for (int i = 0; i <= N_ERROR_CODES; i++) {
        if (i < N_ERROR_CODES) s->errors[i] = wl_counter("mysql.%s." MYSQL_STAT_ERRORS ".code=%d", s->prefix, error_codes[i]);
        else s->errors[i] = wl_counter("mysql.%s." MYSQL_STAT_ERRORS ".code=other", s->prefix);
    }
    for (int i = 0; i < N_LOGIN_REASONS; i++)
        s->login_reason[i] =
            wl_counter("mysql.%s." MYSQL_STAT_LOGIN_FAILURE_REASONS ".reason=%s", s->prefix, login_reasons[i]);
    return 1;
}

/* ---------------------------------------------------------------- events */

static void count(plugin_state *s, int id) { wl_batch_add(s->stat[id], 1); }

/* A statement the tracker reports: counted as the server counts Com_*. */
static void on_statement(void *user, const wl_stmt_event *e) {
    conn_state *cs = user;
    plugin_state *s = cs->conn->plugin->state;
    if (e->not_counted) return; /* rejected by the parser: not in Com_* */
    combo *c = combo_for(s, cs);
    int v = verb_slot(e->kind);
    uint64_t us = e->end_ns > e->start_ns ? (e->end_ns - e->start_ns) / 1000 : 0;
    wl_batch_add(c->count[v], 1);
    wl_metric_record(c->duration[v], us);
    if (s->slow_us <= 0 || (int64_t)us < s->slow_us) return;
    count(s, MYSQL_STAT_SLOW_STATEMENTS);
    unsigned long long ms = (unsigned long long)(us / 1000);
    if (e->prepared) {
        wl_warn("mysql.%s: slow statement %llu ms verb=%s prepared", s->prefix, ms, verb_names[v]);
        return;
    }
    char sql[SQL_KEEP];
    size_t n = e->sql ? (e->sql_len < (size_t)s->slow_sql_bytes ? e->sql_len : (size_t)s->slow_sql_bytes) : 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)e->sql[i];
        sql[i] = (char)(ch < 0x20 || ch == 0x7f ? ' ' : ch);
    }
    wl_warn("mysql.%s: slow statement %llu ms verb=%s: %.*s", s->prefix, ms, verb_names[v], (int)n, sql);
}

static void on_transaction(void *user, const wl_txn_event *e) {
    conn_state *cs = user;
    plugin_state *s = cs->conn->plugin->state;
    count(s, e->outcome == WL_TXN_COMMIT ? MYSQL_STAT_TRANSACTIONS_COMMITTED : MYSQL_STAT_TRANSACTIONS_ROLLED_BACK);
}

static const wl_stmt_callbacks stmt_callbacks = {on_statement, on_transaction};

static uint8_t use_target(plugin_state *s, const char *sql, size_t len, int *found) {
    /* "USE db" / "USE `db`": the database the session switches to */
    size_t i = 0;
    *found = 0;
    while (i < len && (sql[i] == ' ' || sql[i] == '\t' || sql[i] == '\n' || sql[i] == '\r')) i++;
    if (len - i < 4 || (sql[i] | 0x20) != 'u' || (sql[i + 1] | 0x20) != 's' || (sql[i + 2] | 0x20) != 'e' ||
        !(sql[i + 3] == ' ' || sql[i + 3] == '\t' || sql[i + 3] == '`'))
        return OTHER_VALUE;
    i += 3;
    while (i < len && (sql[i] == ' ' || sql[i] == '\t')) i++;
    int quoted = i < len && sql[i] == '`';
    if (quoted) i++;
    size_t b = i;
    while (i < len && (quoted ? sql[i] != '`' : !(sql[i] == ' ' || sql[i] == ';' || sql[i] == '\n'))) i++;
    *found = 1;
    return tag_index(s->dbs, &s->n_dbs, s->max_values, sql + b, i - b);
}

static void on_event(void *ud, const wl_mysql_event *e) {
    conn_state *cs = ud;
    plugin_state *s = cs->conn->plugin->state;
    /* statements first: one that switches the database still counts under the old one */
    wl_mysql_tracker_event(&cs->trk, e, cs->now);
    switch (e->type) {
    case WL_MYSQL_EV_GREETING:
        break;
    case WL_MYSQL_EV_SSL_REQUEST:
        count(s, MYSQL_STAT_LOGIN_ATTEMPTS);
        count(s, MYSQL_STAT_UPGRADED_TO_SSL);
        break;
    case WL_MYSQL_EV_LOGIN:
        count(s, MYSQL_STAT_LOGIN_ATTEMPTS);
        if (s->tag_db) cs->db = tag_index(s->dbs, &s->n_dbs, s->max_values, e->database, e->database_len);
        if (s->tag_user) cs->user = tag_index(s->users, &s->n_users, s->max_values, e->user, e->user_len);
        break;
    case WL_MYSQL_EV_AUTH_SWITCH:
        count(s, MYSQL_STAT_AUTH_SWITCH_REQUEST);
        break;
    case WL_MYSQL_EV_AUTH_MORE_DATA:
        count(s, MYSQL_STAT_AUTH_MORE_DATA);
        break;
    case WL_MYSQL_EV_LOGIN_OK:
        count(s, MYSQL_STAT_LOGIN_SUCCESSES);
        if (e->change_user && cs->have_pending_user) cs->user = cs->pending_user;
        cs->have_pending_user = 0;
        break;
    case WL_MYSQL_EV_LOGIN_FAILED:
        count(s, MYSQL_STAT_LOGIN_FAILURES);
        wl_batch_add(s->login_reason[login_reason_slot(e->err_code)], 1);
        wl_batch_add(s->errors[error_slot(e->err_code)], 1);
        cs->have_pending_user = 0;
        break;
    case WL_MYSQL_EV_COMPRESSED:
        count(s, MYSQL_STAT_COMPRESSED_SESSIONS);
        break;
    case WL_MYSQL_EV_COMMAND: {
        wl_batch_add(s->commands[command_slot(e->command)], 1);
        if (e->unattributed) count(s, MYSQL_STAT_COMMANDS_UNATTRIBUTED);
        switch (e->command) {
        case WL_MYSQL_COM_QUERY: {
            count(s, e->verb == WL_MYSQL_VERB_UNKNOWN ? MYSQL_STAT_QUERIES_PARSE_ERROR : MYSQL_STAT_QUERIES_PARSED);
            if (s->tag_db && e->verb == WL_MYSQL_VERB_OTHER) {
                int found;
                uint8_t db = use_target(s, e->text, e->text_len, &found);
                cs->have_pending_db = (uint8_t)found;
                cs->pending_db = db;
            }
            break;
        }
        case WL_MYSQL_COM_STMT_CLOSE:
            wl_batch_add(s->prepared[PREP_CLOSED], 1);
            break;
        case WL_MYSQL_COM_INIT_DB:
            if (s->tag_db) {
                cs->pending_db = tag_index(s->dbs, &s->n_dbs, s->max_values, e->database, e->database_len);
                cs->have_pending_db = 1;
            }
            break;
        case WL_MYSQL_COM_CHANGE_USER:
            if (s->tag_user) {
                cs->pending_user = tag_index(s->users, &s->n_users, s->max_values, e->user, e->user_len);
                cs->have_pending_user = 1;
            }
            break;
        default:
            break;
        }
        break;
    }
    case WL_MYSQL_EV_RESULT:
        if (e->is_result_set) count(s, MYSQL_STAT_RESULT_SETS);
        break;
    case WL_MYSQL_EV_LOCAL_INFILE:
        count(s, MYSQL_STAT_LOCAL_INFILE_REQUESTS);
        break;
    case WL_MYSQL_EV_COMMAND_DONE: {
        if (e->outcome == WL_MYSQL_OUTCOME_NONE) break; /* no answer: nothing to time */
        uint64_t us = cs->now > e->started ? (cs->now - e->started) / 1000 : 0;
        wl_metric_record(s->command_us[command_slot(e->command)], us);
        if (e->rows) wl_batch_add(s->stat[MYSQL_STAT_ROWS_RETURNED], (int64_t)e->rows);
        if (e->affected_rows) wl_batch_add(s->stat[MYSQL_STAT_ROWS_AFFECTED], (int64_t)e->affected_rows);
        if (e->warnings) wl_batch_add(s->stat[MYSQL_STAT_WARNINGS], e->warnings);
        int ok = e->outcome == WL_MYSQL_OUTCOME_OK;
        /* a failed COM_CHANGE_USER was counted at WL_MYSQL_EV_LOGIN_FAILED */
        if (!ok && e->command != WL_MYSQL_COM_CHANGE_USER) wl_batch_add(s->errors[error_slot(e->err_code)], 1);
        if (e->command == WL_MYSQL_COM_STMT_PREPARE && ok) wl_batch_add(s->prepared[PREP_PREPARED], 1);
        if (e->command == WL_MYSQL_COM_STMT_EXECUTE && ok) wl_batch_add(s->prepared[PREP_EXECUTED], 1);
        if (e->command == WL_MYSQL_COM_INIT_DB || e->command == WL_MYSQL_COM_QUERY) {
            if (ok && cs->have_pending_db) cs->db = cs->pending_db;
            cs->have_pending_db = 0;
        }
        break;
    }
    case WL_MYSQL_EV_PROTOCOL_ERROR:
        count(s, MYSQL_STAT_PROTOCOL_ERRORS);
        break;
    case WL_MYSQL_EV_DECODER_ERROR:
        count(s, MYSQL_STAT_DECODER_ERRORS);
        wl_debug("mysql.%s: decoder error (%.*s); no longer inspecting this connection", s->prefix,
                 (int)e->text_len, e->text);
        break;
    }
}

/* ------------------------------------------------------------- lifecycle */

void wl_on_new_connection(wl_conn *c) {
    plugin_state *s = c->plugin->state;
    conn_state *cs = c->state;
    cs->conn = c;
    cs->db = cs->user = OTHER_VALUE;
    wl_mysql_init(&cs->dec, on_event, cs);
    wl_mysql_tracker_init(&cs->trk, &stmt_callbacks, cs);
    count(s, MYSQL_STAT_SESSIONS);
    wl_metric_add(s->stat[MYSQL_STAT_SESSIONS_ACTIVE], 1); /* gauges are never held */
}

void wl_on_data(wl_conn *c, wl_read *r) {
    plugin_state *s = c->plugin->state;
    conn_state *cs = c->state;
    wl_batch_add(s->bytes[r->dir], (int64_t)r->size);
    if (!wl_mysql_active(&cs->dec) || r->size == 0) return;
    cs->now = wl_now_ns();
    wl_mysql_set_clock(&cs->dec, cs->now);
    wl_mysql_feed(&cs->dec, r->dir, r->size, wl_read_fetch, r);
}

void wl_on_connection_end(wl_conn *c) {
    plugin_state *s = c->plugin->state;
    conn_state *cs = c->state;
    wl_mysql_tracker_end(&cs->trk, wl_now_ns()); /* cursors still open */
    wl_mysql_release(&cs->dec);
    /* a closed connection's counts are all visible once sessions_active drops */
    wl_batch_flush();
    wl_metric_add(s->stat[MYSQL_STAT_SESSIONS_ACTIVE], -1);
}
