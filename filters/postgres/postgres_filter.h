/* Shared types of the PostgreSQL metrics filter: plugin settings and metric
 * ids (postgres_metrics.c) and per-connection state (postgres_filter.c). */
#ifndef WIRELAB_POSTGRES_FILTER_H
#define WIRELAB_POSTGRES_FILTER_H

#include "postgres.h"
#include "postgres_tracker.h"
#include "postgres_stats.h"
#include "wirelab_filter.h"

/* SQL bytes the tracker keeps per statement, for the slow-statement log. */
#define PGF_SQL_KEEP WL_PGT_SQL
/* Cap on tags.max_values. */
#define PGF_MAX_TAG_VALUES 32
#define PGF_TAG_LEN 48

#define PGF_N_CLASSES 43
#define PGF_N_LOGIN_CODES 8

typedef struct {
    char prefix[64];
    uint64_t slow_threshold_us; /* 0: off */
    uint32_t slow_log_sql_bytes;
    int tag_database, tag_user;
    uint32_t max_values;
    wl_metric counters[PG_N_COUNTERS];
    wl_metric gauges[PG_N_GAUGES];
    wl_metric histograms[PG_N_HISTOGRAMS];
    wl_metric latency[WL_PG_CMD__COUNT];
    wl_metric errors_by_class[PGF_N_CLASSES + 1];     /* last: other */
    wl_metric login_failures[PGF_N_LOGIN_CODES + 1]; /* last: other */
    wl_metric bytes[2], copy_bytes[2];

    /* database/user tag values seen so far (index 0 is "other") */
    uint32_t n_db, n_user;
    char db_values[PGF_MAX_TAG_VALUES + 1][PGF_TAG_LEN];
    char user_values[PGF_MAX_TAG_VALUES + 1][PGF_TAG_LEN];
    /* tagged metric ids per (db, user) pair, defined on first use */
    uint8_t tagged_defined[PGF_MAX_TAG_VALUES + 1][PGF_MAX_TAG_VALUES + 1];
    wl_metric tagged[PGF_MAX_TAG_VALUES + 1][PGF_MAX_TAG_VALUES + 1][PG_N_TAGGED];
} pg_plugin;

/* postgres_metrics.c */
int pgm_configure(wl_plugin *plugin, pg_plugin *p);
wl_metric pgm_error_class(const pg_plugin *p, const char *sqlstate);
wl_metric pgm_login_failure(const pg_plugin *p, const char *sqlstate);
/* Index of a tag value (0 = other), registering new ones up to the cap. */
uint32_t pgm_tag_index(pg_plugin *p, int user, const char *value, size_t len);
/* The tagged metrics of a (db, user) pair; NULL when tags are off. */
const wl_metric *pgm_tagged(pg_plugin *p, uint32_t db, uint32_t user);

#endif
