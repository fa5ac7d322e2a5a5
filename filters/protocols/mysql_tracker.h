/* MySQL / MariaDB statement tracker: decoder events (mysql.h) in, statement
 * and transaction events (statement.h) out, counted the way the server counts
 * its Com_* status variables.
 *
 * Rules (measured against MariaDB 10.11; filters/mysql/README.md has the table):
 * - COM_QUERY: one statement per statement of its text. With multi-statements
 *   each result names its statement; a CALL is one statement whose result sets
 *   end with its OK. An ERR ends the query: the failing statement is reported
 *   failed, the ones after it were never run and are not reported.
 * - COM_STMT_EXECUTE / COM_STMT_BULK_EXECUTE: one statement of the prepared
 *   kind. When it opens a cursor, the COM_STMT_FETCH rows are added to it and
 *   it is reported when the cursor ends (last row sent, STMT_RESET/CLOSE, the
 *   next EXECUTE of the id, COM_CHANGE_USER / COM_RESET_CONNECTION, release).
 * - COM_STMT_PREPARE, CLOSE, RESET, SEND_LONG_DATA and the other commands are
 *   not statements (the server does not count them in Com_select etc.).
 * - Transactions: an executed COMMIT / ROLLBACK statement ends one
 *   (Com_commit / Com_rollback); `statements` counts those since the previous
 *   end. Implicit commits (DDL, autocommit) and XA are not reported.
 *
 * - Timing: a statement runs from its command (or, behind pipelined ones,
 *   from the end of the answer before it) to the result that ends it; the
 *   statements of a multi-statement query follow one another.
 *
 * A failed statement still counts in Com_* unless the parser rejected it:
 * wl_mysql_stmt_counted() says which, and each event carries it (not_counted). */
#ifndef WIRELAB_MYSQL_TRACKER_H
#define WIRELAB_MYSQL_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "mysql.h"
#include "statement.h"

/* Cursors followed at once per connection; past it a cursor's statement is
 * reported at its EXECUTE with the rows known then. */
#define WL_MYSQL_TRACKER_CURSORS 8
/* SQL bytes kept of the latest query for wl_stmt_event.sql. */
#define WL_MYSQL_TRACKER_SQL 256

typedef struct {
    uint32_t stmt_id;
    uint8_t used;
    uint8_t kind;
    uint32_t fetches;
    uint64_t rows;
    uint64_t start_ns;
} wl_mysql_cursor;

typedef struct {
    wl_stmt_callbacks cb;
    void *user;
    /* the statement being answered */
    uint64_t rows, affected;
    uint64_t stmt_start;       /* when the current statement of a query began */
    uint64_t last_answer;      /* when the latest answer ended (pipelined commands start then) */
    uint32_t cmd_no;
    uint8_t in_command;
    /* transaction */
    uint32_t txn_statements;
    uint64_t txn_start;
    uint8_t txn_explicit;
    /* cursors opened by COM_STMT_EXECUTE */
    uint32_t open_cursors;     /* cursors[] in use: most connections never open one */
    wl_mysql_cursor cursors[WL_MYSQL_TRACKER_CURSORS];
    /* commands the decoder had no room to follow (their statements are lost) */
    uint64_t unattributed;
    /* text of the latest COM_QUERY / COM_STMT_PREPARE */
    uint32_t sql_cmd_no;
    uint8_t sql_query;
    uint16_t sql_len;
    uint8_t sql_truncated;
    char sql[WL_MYSQL_TRACKER_SQL];
} wl_mysql_tracker;

void wl_mysql_tracker_init(wl_mysql_tracker *t, const wl_stmt_callbacks *cb, void *user);

/* Every decoder event, with the time of the read it came from. */
void wl_mysql_tracker_event(wl_mysql_tracker *t, const wl_mysql_event *ev, uint64_t now_ns);

/* The connection ended: open cursors are reported. */
void wl_mysql_tracker_end(wl_mysql_tracker *t, uint64_t now_ns);

/* 1 when the server counted the statement in its Com_* status: every
 * executed statement, failed or not, but not one the parser rejected
 * (1064 ER_PARSE_ERROR, 1065 ER_EMPTY_QUERY, 1149 ER_SYNTAX_ERROR). */
int wl_mysql_stmt_counted(const wl_stmt_event *ev);

#endif
