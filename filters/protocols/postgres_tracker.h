/* PostgreSQL statement tracker: turns the message events of the decoder
 * (postgres.h) into statement and transaction events (statement.h) whose
 * counts equal the server's own: pg_stat_statements calls and
 * pg_stat_database xact_commit / xact_rollback.
 *
 * Feed it every decoder event with wl_pgt_event(), in order, with the time of
 * the read that carried it. It keeps fixed-size per-connection state and never
 * allocates:
 *   - a FIFO of the requests the server has yet to answer (Query, Execute,
 *     Sync, FunctionCall, and "portal ends here" markers), so each answer is
 *     paired with its request however deep the client pipelines;
 *   - the portals the server suspended (PortalSuspended), whose execution goes
 *     on over several Executes and ends with CommandComplete, Close, a Bind or
 *     Query that replaces the portal, or the end of the transaction;
 *   - the SQL prefix and kind of the unnamed and of recent named statements.
 * When a bound overflows (a pipeline deeper than the queue, more named
 * statements or suspended portals than the tables hold), statements are still
 * counted from the server's answers; what is lost is latency (ev->untimed),
 * the SQL text, or the kind of a statement that never gets a CommandComplete.
 * The tracker returns to exact tracking as soon as the queue drains.
 *
 * The rules, in the words of filters/postgres/README.md:
 *   - one statement per execution of a portal: reported at CommandComplete,
 *     or, for a suspended portal, when the portal ends; rows summed over its
 *     fetches; latency from its first Execute (or from when the server could
 *     start it, if the previous answer came later) to its end;
 *   - an Execute the server skips after an error (until Sync) is no statement;
 *     the failing one is reported with failed = 1 and its SQLSTATE;
 *   - EmptyQueryResponse and FunctionCall are no statements;
 *   - transactions: explicit (BEGIN ... COMMIT/ROLLBACK, decided by the next
 *     ReadyForQuery status so ROLLBACK TO SAVEPOINT is no rollback) and
 *     implicit (a simple Query, FunctionCall or extended-protocol batch up to
 *     Sync that ran while the server was idle, and left it idle). */
#ifndef WIRELAB_POSTGRES_TRACKER_H
#define WIRELAB_POSTGRES_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "postgres.h"
#include "statement.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Requests awaiting an answer (pipelining depth). */
#ifndef WL_PGT_QUEUE
#define WL_PGT_QUEUE 32
#endif
/* SQL bytes kept per statement (for the slow log and Lua's stmt.sql). */
#ifndef WL_PGT_SQL
#define WL_PGT_SQL 128
#endif
/* Named prepared statements remembered (kind and SQL prefix). */
#ifndef WL_PGT_NAMED
#define WL_PGT_NAMED 16
#endif
/* Portals suspended at the same time (and portals executed with a row limit
 * whose end the client side watches for). */
#ifndef WL_PGT_PORTALS
#define WL_PGT_PORTALS 4
#endif

#define WL_PGT_UNNAMED 254
#define WL_PGT_UNKNOWN 255

typedef struct {
    uint64_t start_ns;
    uint32_t portal; /* hash of the portal name; 0 = unnamed */
    uint8_t what;    /* WL_PGT_Q_* (postgres_tracker.c) */
    uint8_t flag;    /* Sync: the batch ran something; Query: an error ended its statement */
    uint8_t sql_len;
    char sql[WL_PGT_SQL];
} wl_pgt_entry;

typedef struct {
    uint32_t hash; /* 0: free */
    uint8_t sql_len;
    char sql[WL_PGT_SQL];
} wl_pgt_stmt;

typedef struct {
    uint8_t used;
    uint8_t kind;
    uint8_t sql_len;
    uint32_t portal;
    uint32_t fetches;
    uint64_t rows, start_ns;
    char sql[WL_PGT_SQL];
} wl_pgt_portal;

typedef struct {
    const wl_stmt_callbacks *cb;
    void *user;
    uint64_t now;

    uint8_t ready;           /* the first ReadyForQuery was seen: the session is up */
    uint8_t in_block;        /* the last ReadyForQuery status was T or E */
    uint8_t txn;             /* inside an explicit transaction (BEGIN seen) */
    uint8_t rollback_pending;
    uint8_t cycle_begin;     /* a BEGIN completed since the last ReadyForQuery */
    uint8_t cycle_error;     /* an ErrorResponse since the last ReadyForQuery */
    uint8_t copy_dir;        /* 'G', 'H', 'W' while a COPY runs */
    uint8_t overflowed;      /* requests were dropped: pairing resumes when the queue drains */
    uint8_t group_active;    /* client: Parse/Bind/Describe/Execute since the last Sync */
    uint8_t bound;           /* the statement of the last Bind: named[i], or WL_PGT_UNNAMED / _UNKNOWN */
    uint8_t last_named;      /* named[] slot of the last Bind of a named statement */
    uint8_t n_portals;       /* portals[] in use */
    uint8_t n_limited;       /* limited[] in use */
    uint8_t unnamed_len;
    uint32_t lost_z;         /* dropped requests that the server answers with ReadyForQuery */
    uint32_t named_next;
    uint32_t txn_stmts, cycle_stmts;
    uint64_t rows;           /* DataRows since the last completion */
    uint64_t group_start_ns, txn_start_ns, rollback_ns, last_done_ns, ready_ns;
    uint32_t limited[WL_PGT_PORTALS]; /* client: portals executed with a row limit (hash + 1) */

    wl_stmt_event ev;        /* the event being reported (kept here, off the stack) */
    wl_txn_event tev;
    uint32_t q_head, q_len;
    wl_pgt_entry q[WL_PGT_QUEUE];
    wl_pgt_portal portals[WL_PGT_PORTALS];
    char unnamed_sql[WL_PGT_SQL];
    wl_pgt_stmt named[WL_PGT_NAMED];
} wl_pg_tracker;

/* Prepares a tracker for a new connection. */
void wl_pgt_init(wl_pg_tracker *t, const wl_stmt_callbacks *cb, void *user);

/* One decoder event, in order, with the time of the read that carried it. */
void wl_pgt_event(wl_pg_tracker *t, const wl_pg_event *ev, uint64_t now_ns);

/* The same, split for a caller that already knows the direction and sets the
 * time once per read (wl_pgt_set_time): one call and no checks per message. */
static inline void wl_pgt_set_time(wl_pg_tracker *t, uint64_t now_ns) { t->now = now_ns; }
void wl_pgt_client(wl_pg_tracker *t, const wl_pg_event *ev); /* typed client message */
void wl_pgt_server(wl_pg_tracker *t, const wl_pg_event *ev); /* typed server message */

/* The connection ended: the server rolls back an open transaction and ends
 * every portal. */
void wl_pgt_close(wl_pg_tracker *t, uint64_t now_ns);

#ifdef __cplusplus
}
#endif

#endif
