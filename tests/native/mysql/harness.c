/* Native harness for the MySQL decoder: reads reads from stdin and prints one
 * line per decoder event.
 *
 * Input: records of  u8 conn, u8 dir (0 client, 1 server, 2 close), u32le len,
 * len bytes. Each record is one read, fed through a fetch function that hands
 * out at most `max_fetch` bytes at a time (argv[1], default 4096), so windows
 * smaller than the read are exercised too. A new conn id starts a new decoder.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mysql.h"

typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t max_fetch;
    size_t fetches;
} src;

static const uint8_t *fetch(void *ctx, size_t off, size_t want, size_t *got) {
    src *s = ctx;
    s->fetches++;
    if (off >= s->len) {
        *got = 0;
        return NULL;
    }
    size_t n = s->len - off;
    if (n > want) n = want;
    if (n > s->max_fetch) n = s->max_fetch;
    *got = n;
    return s->buf + off;
}

static void put_str(const char *k, const char *p, size_t n) {
    if (!p) return;
    printf(" %s=", k);
    for (size_t i = 0; i < n && i < 60; i++) {
        unsigned char c = (unsigned char)p[i];
        putchar(c >= 0x20 && c < 0x7f && c != ' ' ? c : '_');
    }
}

static const char *evname(int t) {
    static const char *const n[] = {"?", "greeting", "ssl_request", "login", "auth_switch", "auth_more_data",
                                    "login_ok", "login_failed", "compressed", "command", "result",
                                    "local_infile", "command_done", "protocol_error", "decoder_error"};
    return t >= 0 && t < (int)(sizeof n / sizeof n[0]) ? n[t] : "?";
}

static void on_event(void *ud, const wl_mysql_event *e) {
    (void)ud;
    printf("%s", evname(e->type));
    switch (e->type) {
    case WL_MYSQL_EV_COMMAND: {
        const char *cn = wl_mysql_command_name(e->command);
        printf(" #%u cmd=%s verb=%s", e->cmd_no, cn ? cn : "?", wl_mysql_verb_name(e->verb));
        if (e->unattributed) printf(" unattributed");
        if (e->stmt_id) printf(" stmt=%u", e->stmt_id);
        put_str("text", e->text, e->text_len);
        put_str("user", e->user, e->user_len);
        break;
    }
    case WL_MYSQL_EV_RESULT:
        printf(" #%u stmt#%u verb=%s end=%u call=%u", e->cmd_no, e->stmt_index, wl_mysql_verb_name(e->stmt_verb),
               e->stmt_end, e->is_call);
        printf(" rs=%u cols=%llu rows=%llu affected=%llu warn=%u status=0x%x cursor=%u",
               e->is_result_set, (unsigned long long)e->columns, (unsigned long long)e->rows,
               (unsigned long long)e->affected_rows, e->warnings, e->status_flags, e->cursor);
        if (e->command == WL_MYSQL_COM_STMT_PREPARE) printf(" stmt=%u params=%u", e->stmt_id, e->params);
        break;
    case WL_MYSQL_EV_COMMAND_DONE:
        printf(" #%u stmts=%u", e->cmd_no, e->statements);
        if (e->outcome == WL_MYSQL_OUTCOME_ERR) printf(" failed#%u verb=%s", e->stmt_index, wl_mysql_verb_name(e->stmt_verb));
        printf(" outcome=%u results=%u rows=%llu affected=%llu warn=%u", e->outcome, e->results,
               (unsigned long long)e->rows, (unsigned long long)e->affected_rows, e->warnings);
        if (e->outcome == WL_MYSQL_OUTCOME_ERR) {
            printf(" err=%u", e->err_code);
            put_str("state", e->sqlstate, strlen(e->sqlstate));
        }
        break;
    case WL_MYSQL_EV_LOGIN_FAILED:
        printf(" err=%u", e->err_code);
        put_str("state", e->sqlstate, strlen(e->sqlstate));
        printf(" cu=%u", e->change_user);
        break;
    case WL_MYSQL_EV_AUTH_SWITCH:
    case WL_MYSQL_EV_AUTH_MORE_DATA:
        printf(" more=%u", e->auth_more);
        put_str("plugin", e->auth_plugin, e->auth_plugin_len);
        break;
    case WL_MYSQL_EV_LOGIN:
        put_str("user", e->user, e->user_len);
        put_str("db", e->database, e->database_len);
        put_str("plugin", e->auth_plugin, e->auth_plugin_len);
        printf(" attrs=%zu", e->attrs_len);
        break;
    case WL_MYSQL_EV_GREETING:
        put_str("version", e->text, e->text_len);
        put_str("plugin", e->auth_plugin, e->auth_plugin_len);
        break;
    case WL_MYSQL_EV_LOCAL_INFILE:
    case WL_MYSQL_EV_PROTOCOL_ERROR:
    case WL_MYSQL_EV_DECODER_ERROR:
        put_str("text", e->text, e->text_len);
        break;
    default:
        break;
    }
    putchar('\n');
}

int main(int argc, char **argv) {
    size_t max_fetch = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 4096;
    if (max_fetch == 0) max_fetch = 1;
    static wl_mysql_decoder dec;
    int cur = -1;
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    for (;;) {
        uint8_t h[6];
        if (fread(h, 1, 6, stdin) != 6) break;
        size_t len = wl_le32(h + 2);
        if (len > cap) {
            while (cap < len) cap *= 2;
            buf = realloc(buf, cap);
        }
        if (len && fread(buf, 1, len, stdin) != len) return 2;
        if (h[0] != cur) {
            if (cur >= 0) printf("-- end %d\n", cur);
            if (cur >= 0) wl_mysql_release(&dec);
            cur = h[0];
            wl_mysql_init(&dec, on_event, NULL);
            printf("-- conn %d\n", cur);
        }
        if (h[1] == 2) continue;
        src s = {buf, len, max_fetch, 0};
        wl_mysql_feed(&dec, h[1] ? WL_DIR_SERVER : WL_DIR_CLIENT, len, fetch, &s);
    }
    if (cur >= 0) printf("-- end %d active=%d\n", cur, wl_mysql_active(&dec));
    if (cur >= 0) wl_mysql_release(&dec);
    free(buf);
    return 0;
}
