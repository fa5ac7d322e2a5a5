/* Every stat of the PostgreSQL metrics filter, in one table.
 *
 * Names are rooted at `postgres.<stat_prefix>.` (docs/metrics-naming.md).
 * Names that exist in Envoy's contrib postgres_proxy keep their meaning.
 * README.md lists the same names; tests/unit/test_postgres_filter.py checks
 * that it does. */
#ifndef WIRELAB_POSTGRES_STATS_H
#define WIRELAB_POSTGRES_STATS_H

/* X(ID, name-string): plain counters. */
#define PG_COUNTERS(X)                                                                  \
    /* contrib postgres_proxy counters, same meaning */                                \
    X(SESSIONS, "sessions")                                                            \
    X(SESSIONS_UNENCRYPTED, "sessions_unencrypted")                                    \
    X(SESSIONS_ENCRYPTED, "sessions_encrypted")                                        \
    X(MESSAGES, "messages")                                                            \
    X(MESSAGES_FRONTEND, "messages_frontend")                                          \
    X(MESSAGES_BACKEND, "messages_backend")                                            \
    X(MESSAGES_UNKNOWN, "messages_unknown")                                            \
    X(STATEMENTS, "statements")                                                        \
    X(STATEMENTS_SELECT, "statements_select")                                          \
    X(STATEMENTS_INSERT, "statements_insert")                                          \
    X(STATEMENTS_UPDATE, "statements_update")                                          \
    X(STATEMENTS_DELETE, "statements_delete")                                          \
    X(STATEMENTS_OTHER, "statements_other")                                            \
    X(STATEMENTS_PARSED, "statements_parsed")                                          \
    X(STATEMENTS_PARSE_ERROR, "statements_parse_error")                                \
    X(TRANSACTIONS, "transactions")                                                    \
    X(TRANSACTIONS_COMMIT, "transactions_commit")                                      \
    X(TRANSACTIONS_ROLLBACK, "transactions_rollback")                                  \
    X(ERRORS, "errors")                                                                \
    X(ERRORS_ERROR, "errors_error")                                                    \
    X(ERRORS_FATAL, "errors_fatal")                                                    \
    X(ERRORS_PANIC, "errors_panic")                                                    \
    X(ERRORS_UNKNOWN, "errors_unknown")                                                \
    X(NOTICES, "notices")                                                              \
    X(NOTICES_NOTICE, "notices_notice")                                                \
    X(NOTICES_WARNING, "notices_warning")                                              \
    X(NOTICES_DEBUG, "notices_debug")                                                  \
    X(NOTICES_INFO, "notices_info")                                                    \
    X(NOTICES_LOG, "notices_log")                                                      \
    X(NOTICES_UNKNOWN, "notices_unknown")                                              \
    /* wirelab additions */                                                            \
    X(CONNECTIONS, "connections")                                                      \
    X(LOGIN_FAILURES, "login_failures")                                                \
    X(CANCEL_REQUESTS, "cancel_requests")                                              \
    X(SSL_REQUESTS, "ssl_requests")                                                    \
    X(GSSENC_REQUESTS, "gssenc_requests")                                              \
    X(SIMPLE_QUERIES, "simple_queries")                                                \
    X(EXTENDED_PARSE, "extended_parse")                                                \
    X(EXTENDED_PARSE_NAMED, "extended_parse_named")                                    \
    X(EXTENDED_BIND, "extended_bind")                                                  \
    X(EXTENDED_BIND_NAMED, "extended_bind_named")                                      \
    X(EXTENDED_EXECUTE, "extended_execute")                                            \
    X(FUNCTION_CALLS, "function_calls")                                                \
    X(NOTIFICATIONS, "notifications")                                                  \
    X(ROWS_RETURNED, "rows_returned")                                                  \
    X(ROWS_AFFECTED, "rows_affected")                                                  \
    X(COPY_IN, "copy_in")                                                              \
    X(COPY_OUT, "copy_out")                                                            \
    X(COPY_BOTH, "copy_both")                                                          \
    X(SLOW_STATEMENTS, "slow_statements")                                              \
    X(DECODER_ERRORS, "decoder_errors")

/* Gauges. */
#define PG_GAUGES(X)                                                                   \
    X(SESSIONS_ACTIVE, "sessions_active")                                              \
    X(SESSIONS_IN_TRANSACTION, "sessions_in_transaction")

/* Histograms without tags (microseconds). */
#define PG_HISTOGRAMS(X) X(TRANSACTION_LATENCY_US, "transaction_latency_us")

/* Tagged families, one metric per value defined at configure time:
 *   statement_latency_us.type=<kind>    histogram, kinds = wl_pg_cmd_name()
 *   errors_by_class.class=<class>       counter, classes = PG_SQLSTATE_CLASSES + other
 *   login_failures_by_sqlstate.sqlstate=<code>  counter, codes = PG_LOGIN_SQLSTATES + other
 *   bytes.direction=client|server       counter
 *   copy_bytes.direction=client|server  counter (CopyData payload)
 * With `tags` on, per database/user (values capped by tags.max_values,
 * overflow -> "other"), defined on first use:
 *   db_sessions, db_statements, db_errors, db_rows_returned, db_rows_affected
 *   with .database=<db> and/or .user=<user>. */
#define PG_FAMILY_STATEMENT_LATENCY "statement_latency_us"
#define PG_FAMILY_ERRORS_BY_CLASS "errors_by_class"
#define PG_FAMILY_LOGIN_FAILURES "login_failures_by_sqlstate"
#define PG_FAMILY_BYTES "bytes"
#define PG_FAMILY_COPY_BYTES "copy_bytes"

#define PG_TAGGED(X)                                                                   \
    X(DB_SESSIONS, "db_sessions")                                                      \
    X(DB_STATEMENTS, "db_statements")                                                  \
    X(DB_ERRORS, "db_errors")                                                          \
    X(DB_ROWS_RETURNED, "db_rows_returned")                                            \
    X(DB_ROWS_AFFECTED, "db_rows_affected")

/* SQLSTATE classes of PostgreSQL's Appendix A. */
#define PG_SQLSTATE_CLASSES                                                            \
    "00", "01", "02", "03", "08", "09", "0A", "0B", "0F", "0L", "0P", "0Z", "20", "21", \
        "22", "23", "24", "25", "26", "27", "28", "2B", "2D", "2F", "34", "38", "39",   \
        "3B", "3D", "3F", "40", "42", "44", "53", "54", "55", "57", "58", "72", "F0",   \
        "HV", "P0", "XX"

/* SQLSTATEs a failed login usually carries. */
#define PG_LOGIN_SQLSTATES                                                             \
    "28P01", "28000", "3D000", "53300", "57P03", "08P01", "08004", "42501"

#define PG_ENUM_ID(id, name) PG_##id,
enum { PG_COUNTERS(PG_ENUM_ID) PG_N_COUNTERS };
enum { PG_GAUGES(PG_ENUM_ID) PG_N_GAUGES };
enum { PG_HISTOGRAMS(PG_ENUM_ID) PG_N_HISTOGRAMS };
enum { PG_TAGGED(PG_ENUM_ID) PG_N_TAGGED };
#undef PG_ENUM_ID

#endif
