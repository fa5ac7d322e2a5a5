/* Metric definitions of the PostgreSQL filter: configuration, the fixed
 * names of postgres_stats.h, and the capped database/user tag values. */
#include <string.h>

#include "postgres_filter.h"

static const char *const classes[PGF_N_CLASSES] = {PG_SQLSTATE_CLASSES};
static const char *const login_codes[PGF_N_LOGIN_CODES] = {PG_LOGIN_SQLSTATES};

#define PG_NAME(id, name) name,
static const char *const counter_names[PG_N_COUNTERS] = {PG_COUNTERS(PG_NAME)};
static const char *const gauge_names[PG_N_GAUGES] = {PG_GAUGES(PG_NAME)};
static const char *const histogram_names[PG_N_HISTOGRAMS] = {PG_HISTOGRAMS(PG_NAME)};
static const char *const tagged_names[PG_N_TAGGED] = {PG_TAGGED(PG_NAME)};
#undef PG_NAME

int pgm_configure(wl_plugin *plugin, pg_plugin *p) {
    wl_config_string(plugin, "stat_prefix", p->prefix, sizeof p->prefix, "postgres");
    if (!p->prefix[0]) {
        wl_error("postgres filter: stat_prefix must not be empty");
        return 0;
    }
    wl_sanitize_tag(p->prefix);
    int64_t slow = wl_config_int(plugin, "slow_threshold_ms", 1000);
    int64_t sql_bytes = wl_config_int(plugin, "slow_log_sql_bytes", 100);
    int64_t max_values = wl_config_int(plugin, "tags.max_values", 20);
    if (slow < 0 || sql_bytes < 0 || max_values < 0) {
        wl_error("postgres filter: slow_threshold_ms, slow_log_sql_bytes and tags.max_values "
                 "must not be negative");
        return 0;
    }
    p->slow_threshold_us = (uint64_t)slow * 1000u;
    p->slow_log_sql_bytes = (uint32_t)(sql_bytes > PGF_SQL_KEEP ? PGF_SQL_KEEP : sql_bytes);
    p->max_values = (uint32_t)(max_values > PGF_MAX_TAG_VALUES ? PGF_MAX_TAG_VALUES : max_values);
    int64_t flush_ms = wl_config_int(plugin, "metrics_flush_ms", 1000);
    if (flush_ms < 0 || flush_ms > 60000) {
        wl_error("postgres filter: metrics_flush_ms must be between 0 and 60000, not %lld",
                 (long long)flush_ms);
        return 0;
    }
    wl_batch_hold_ms((uint32_t)flush_ms);
    p->tag_database = wl_config_bool(plugin, "tags.database", 0);
    p->tag_user = wl_config_bool(plugin, "tags.user", 0);

    const char *pre = p->prefix;
    /* Natively, metrics defined one after the other sit side by side in the
     * SDK's batch (wl_metrics.c): the counters of every query first, so a
     * transaction's adds touch a few cache lines. */
    static const char *const dirs[2] = {"client", "server"};
    for (int d = 0; d < 2; d++)
        p->bytes[d] = wl_counter("postgres.%s." PG_FAMILY_BYTES ".direction=%s", pre, dirs[d]);
    static const uint8_t per_query[] = {
        PG_MESSAGES,          PG_MESSAGES_FRONTEND,   PG_MESSAGES_BACKEND, PG_SIMPLE_QUERIES,
        PG_STATEMENTS_PARSED, PG_EXTENDED_PARSE,      PG_EXTENDED_BIND,    PG_EXTENDED_EXECUTE,
        PG_STATEMENTS,        PG_STATEMENTS_SELECT,   PG_ROWS_RETURNED,    PG_TRANSACTIONS,
        PG_TRANSACTIONS_COMMIT, PG_STATEMENTS_INSERT, PG_STATEMENTS_UPDATE, PG_ROWS_AFFECTED};
    uint8_t defined[PG_N_COUNTERS] = {0};
    for (size_t k = 0; k < sizeof per_query; k++) {
        p->counters[per_query[k]] = wl_counter("postgres.%s.%s", pre, counter_names[per_query[k]]);
        defined[per_query[k]] = 1;
    }
    for (int i = 0; i < PG_N_COUNTERS; i++)
        if (!defined[i]) p->counters[i] = wl_counter("postgres.%s.%s", pre, counter_names[i]);
    for (int i = 0; i < PG_N_GAUGES; i++)
        p->gauges[i] = wl_gauge("postgres.%s.%s", pre, gauge_names[i]);
    for (int i = 0; i < PG_N_HISTOGRAMS; i++)
        p->histograms[i] = wl_histogram("postgres.%s.%s", pre, histogram_names[i]);
    for (int i = 0; i < WL_PG_CMD__COUNT; i++)
        p->latency[i] = wl_histogram("postgres.%s." PG_FAMILY_STATEMENT_LATENCY ".type=%s", pre,
                                     wl_pg_cmd_name((wl_pg_cmd)i));
    for (int i = 0; i < PGF_N_CLASSES; i++)
        p->errors_by_class[i] =
            wl_counter("postgres.%s." PG_FAMILY_ERRORS_BY_CLASS ".class=%s", pre, classes[i]);
    p->errors_by_class[PGF_N_CLASSES] =
        wl_counter("postgres.%s." PG_FAMILY_ERRORS_BY_CLASS ".class=other", pre);
    for (int i = 0; i < PGF_N_LOGIN_CODES; i++)
        p->login_failures[i] = wl_counter("postgres.%s." PG_FAMILY_LOGIN_FAILURES ".sqlstate=%s",
                                          pre, login_codes[i]);
    p->login_failures[PGF_N_LOGIN_CODES] =
        wl_counter("postgres.%s." PG_FAMILY_LOGIN_FAILURES ".sqlstate=other", pre);
    for (int d = 0; d < 2; d++)
        p->copy_bytes[d] =
            wl_counter("postgres.%s." PG_FAMILY_COPY_BYTES ".direction=%s", pre, dirs[d]);
    strcpy(p->db_values[0], "other");
    strcpy(p->user_values[0], "other");
    p->n_db = p->n_user = 0;
    return 1;
}

wl_metric pgm_error_class(const pg_plugin *p, const char *sqlstate) {
    if (sqlstate[0] && sqlstate[1])
        for (int i = 0; i < PGF_N_CLASSES; i++)
            if (classes[i][0] == sqlstate[0] && classes[i][1] == sqlstate[1])
                return p->errors_by_class[i];
    return p->errors_by_class[PGF_N_CLASSES];
}

wl_metric pgm_login_failure(const pg_plugin *p, const char *sqlstate) {
    for (int i = 0; i < PGF_N_LOGIN_CODES; i++)
        if (strcmp(login_codes[i], sqlstate) == 0) return p->login_failures[i];
    return p->login_failures[PGF_N_LOGIN_CODES];
}

uint32_t pgm_tag_index(pg_plugin *p, int user, const char *value, size_t len) {
    char clean[PGF_TAG_LEN];
    if (len >= sizeof clean) len = sizeof clean - 1;
    memcpy(clean, value, len);
    clean[len] = 0;
    if (!clean[0]) return 0;
    wl_sanitize_tag(clean);
    char (*vals)[PGF_TAG_LEN] = user ? p->user_values : p->db_values;
    uint32_t *n = user ? &p->n_user : &p->n_db;
    for (uint32_t i = 1; i <= *n; i++)
        if (strcmp(vals[i], clean) == 0) return i;
    if (*n >= p->max_values) return 0;
    *n += 1;
    memcpy(vals[*n], clean, len + 1);
    return *n;
}

const wl_metric *pgm_tagged(pg_plugin *p, uint32_t db, uint32_t user) {
    if (!p->tag_database && !p->tag_user) return NULL;
    if (db > PGF_MAX_TAG_VALUES || user > PGF_MAX_TAG_VALUES) return NULL;
    if (!p->tagged_defined[db][user]) {
        char tags[2 * PGF_TAG_LEN + 32];
        tags[0] = 0;
        size_t at = 0;
        if (p->tag_database) {
            size_t n = strlen(p->db_values[db]);
            memcpy(tags + at, ".database=", 10);
            memcpy(tags + at + 10, p->db_values[db], n + 1);
            at += 10 + n;
        }
        if (p->tag_user) {
            size_t n = strlen(p->user_values[user]);
            memcpy(tags + at, ".user=", 6);
            memcpy(tags + at + 6, p->user_values[user], n + 1);
        }
        for (int i = 0; i < PG_N_TAGGED; i++)
            p->tagged[db][user][i] = wl_counter("postgres.%s.%s%s", p->prefix, tagged_names[i], tags);
        p->tagged_defined[db][user] = 1;
    }
    return p->tagged[db][user];
}
