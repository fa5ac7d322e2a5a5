/* Every stat of the mysql filter, in one table. Names are rooted at
 * `mysql.<stat_prefix>.` and follow docs/metrics-naming.md; the README lists
 * them with their meaning. The first nine keep the names and meanings of
 * Envoy's contrib mysql_proxy. */
#ifndef WIRELAB_MYSQL_STATS_H
#define WIRELAB_MYSQL_STATS_H

#define MYSQL_KIND_COUNTER 0
#define MYSQL_KIND_GAUGE 1

/* X(ID, kind, name) for untagged stats; kind is COUNTER or GAUGE. */
#define MYSQL_SCALAR_STATS(X)                                   \
    X(SESSIONS, COUNTER, "sessions")                            \
    X(LOGIN_ATTEMPTS, COUNTER, "login_attempts")                \
    X(LOGIN_FAILURES, COUNTER, "login_failures")                \
    X(AUTH_SWITCH_REQUEST, COUNTER, "auth_switch_request")      \
    X(UPGRADED_TO_SSL, COUNTER, "upgraded_to_ssl")              \
    X(PROTOCOL_ERRORS, COUNTER, "protocol_errors")              \
    X(DECODER_ERRORS, COUNTER, "decoder_errors")                \
    X(QUERIES_PARSED, COUNTER, "queries_parsed")                \
    X(QUERIES_PARSE_ERROR, COUNTER, "queries_parse_error")      \
    X(SESSIONS_ACTIVE, GAUGE, "sessions_active")                \
    X(LOGIN_SUCCESSES, COUNTER, "login_successes")              \
    X(AUTH_MORE_DATA, COUNTER, "auth_more_data")                \
    X(COMPRESSED_SESSIONS, COUNTER, "compressed_sessions")      \
    X(ROWS_RETURNED, COUNTER, "rows_returned")                  \
    X(ROWS_AFFECTED, COUNTER, "rows_affected")                  \
    X(RESULT_SETS, COUNTER, "result_sets")                      \
    X(WARNINGS, COUNTER, "warnings")                            \
    X(TRANSACTIONS_COMMITTED, COUNTER, "transactions_committed")  \
    X(TRANSACTIONS_ROLLED_BACK, COUNTER, "transactions_rolled_back") \
    X(LOCAL_INFILE_REQUESTS, COUNTER, "local_infile_requests")  \
    X(SLOW_STATEMENTS, COUNTER, "slow_statements")              \
    X(COMMANDS_UNATTRIBUTED, COUNTER, "commands_unattributed")

enum {
#define MYSQL_STAT_ENUM(id, kind, name) MYSQL_STAT_##id,
    MYSQL_SCALAR_STATS(MYSQL_STAT_ENUM)
#undef MYSQL_STAT_ENUM
    MYSQL_STAT_COUNT
};

/* Tagged families: name, tag key; the values come from the tables below. */
#define MYSQL_STAT_COMMANDS "commands"                        /* .command=<command> */
#define MYSQL_STAT_COMMAND_DURATION "command_duration_us"     /* .command=<command> histogram */
#define MYSQL_STAT_STATEMENTS "statements"                    /* .verb=<verb>[.database=][.user=] */
#define MYSQL_STAT_STATEMENT_DURATION "statement_duration_us" /* .verb=<verb>[.database=][.user=] histogram */
#define MYSQL_STAT_ERRORS "errors"                            /* .code=<code> */
#define MYSQL_STAT_LOGIN_FAILURE_REASONS "login_failures_by_reason" /* .reason=<reason> */
#define MYSQL_STAT_PREPARED "prepared_statements"             /* .type=prepared|executed|closed */
#define MYSQL_STAT_BYTES "bytes"                              /* .direction=client|server */

/* Verbs of the statement families ("unknown" is counted as "other"). */
#define MYSQL_VERBS(X) X(select) X(insert) X(update) X(delete) X(replace) X(begin) X(commit) X(rollback) X(other)
#define MYSQL_VERB_SLOTS 9

/* Commands: one slot per named command, then "unknown" for every other code. */
#define MYSQL_COMMAND_SLOTS 36 /* 0x00..0x20, stmt_bulk_execute, multi, unknown */

/* Error codes with their own errors.code=<n> counter; others go to code=other. */
#define MYSQL_ERROR_CODES(X)                                                                \
    X(1040) X(1044) X(1045) X(1046) X(1047) X(1048) X(1049) X(1050) X(1051) X(1054)         \
    X(1060) X(1061) X(1062) X(1064) X(1091) X(1105) X(1129) X(1130) X(1136) X(1142)         \
    X(1143) X(1146) X(1193) X(1203) X(1205) X(1210) X(1213) X(1226) X(1227) X(1243)         \
    X(1251) X(1264) X(1265) X(1290) X(1292) X(1305) X(1317) X(1364) X(1366) X(1406)         \
    X(1451) X(1452) X(1461) X(1644) X(1690) X(1698) X(1820) X(1862) X(1927) X(1969)         \
    X(3024) X(3118) X(4031) X(4151)

/* Login failure reasons: X(reason, error codes...) via mysql_login_reason(). */
#define MYSQL_LOGIN_REASONS(X)                                                              \
    X(access_denied) X(db_access_denied) X(unknown_database) X(too_many_connections)        \
    X(user_limit) X(host_blocked) X(host_not_allowed) X(auth_not_supported)                 \
    X(password_expired) X(account_locked) X(other)

#endif
