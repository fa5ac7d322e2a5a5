/* What the statement trackers (postgres_tracker.h, mysql_tracker.h) report:
 * one event per statement the server executed and one per transaction end,
 * in the same shape for both protocols, so the C filters and the Lua runtime
 * consume them alike. Counts follow the server's own bookkeeping
 * (pg_stat_statements / pg_stat_database, MySQL's Com_* status), not the
 * number of protocol messages; each filter's README says which figure each
 * counter equals. */
#ifndef WIRELAB_STATEMENT_H
#define WIRELAB_STATEMENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One statement, reported once when it is finished (its last fetch, its
 * error, or the end of the portal/cursor that held it). */
typedef struct {
    uint8_t kind;           /* protocol's kind enum: wl_pg_cmd or wl_mysql_verb */
    const char *kind_name;  /* lower case: "select", "insert", ... */
    uint8_t failed;         /* ended with an error (the server may still count it: see not_counted) */
    uint8_t not_counted;    /* the server does not count it in its own statistics:
                             * PostgreSQL's pg_stat_statements counts only statements that
                             * finished (every failed one is not_counted); MySQL's Com_*
                             * every statement it executed, failed or not, but not one its
                             * parser rejected (wl_mysql_stmt_counted) */
    uint8_t prepared;       /* extended protocol (PG) / binary protocol (MySQL) */
    uint8_t has_rows;       /* rows_returned / rows_affected are known */
    uint8_t untimed;        /* start_ns is not known (a tracker's queue overflowed): do not time it */
    char sqlstate[6];       /* failed: SQLSTATE, NUL-terminated ("" when unknown) */
    uint16_t err_code;      /* failed, MySQL: the error number */
    uint32_t fetches;       /* batches the rows came in (Execute/FETCH/COM_STMT_FETCH), >= 1 */
    uint64_t rows_returned; /* rows sent to the client, summed over fetches */
    uint64_t rows_affected; /* rows written (INSERT/UPDATE/DELETE/MERGE/COPY FROM) */
    uint64_t start_ns;      /* the tracker's clock: its request was seen, or the server
                             * answered the request before it, whichever is later
                             * (pipelined statements are timed from when the server
                             * could start them) */
    uint64_t end_ns;        /* the read that finished it */
    const char *sql;        /* prefix of the statement's text; may be NULL */
    size_t sql_len;
    uint8_t sql_truncated;
} wl_stmt_event;

typedef enum {
    WL_TXN_COMMIT = 1,
    WL_TXN_ROLLBACK,
} wl_txn_outcome;

/* One transaction, reported when it ends. */
typedef struct {
    uint8_t outcome;        /* wl_txn_outcome */
    uint8_t implicit;       /* no BEGIN: one statement / one pipeline (PG), autocommit (MySQL) */
    uint32_t statements;    /* statements it held, as counted above */
    uint64_t start_ns, end_ns;
} wl_txn_event;

typedef struct {
    void (*on_statement)(void *user, const wl_stmt_event *ev);
    void (*on_transaction)(void *user, const wl_txn_event *ev);
} wl_stmt_callbacks;

#ifdef __cplusplus
}
#endif

#endif
