/* libFuzzer target: the Lua runtime's message API (filters/lua), natively.
 *
 * The runtime, the SDK and Lua 5.4 are compiled for the host; this file is
 * the proxy-wasm host they call (logs, buffers, metrics) and drives them like
 * Envoy does: one plugin per protocol, running the script below, and one
 * connection per replay. The first input byte picks the protocol (bit 0:
 * 0 postgres, 1 mysql); the rest is a conversation (split.h).
 *
 * The script reads every field of every message / event (wirelab.pg_fields,
 * the MySQL event tables, direct field reads). Checks:
 *  - no memory error or undefined behaviour in the runtime, the API or Lua;
 *  - the API never raises for a message the decoder produced (an error-level
 *    log line aborts);
 *  - the Lua heap (collected) after each input's last connection stays
 *    under 256 KiB: nothing of a finished connection is kept;
 *  - the fields' values, in order, and the runtime's metric deltas
 *    (decoder_errors, script_errors, ...) are identical whether each
 *    direction's run of bytes is one read, each chunk is, or the reads are
 *    cut at random. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "split.h"
#include "wirelab_filter.h"

uint64_t wl_fuzz_clock_ns;

/* The SDK's proxy-wasm exports (filters/sdk/wasm/wl_runtime.c). */
void *wl__export_malloc(size_t size);
void wl__on_context_create(uint32_t id, uint32_t parent_id);
uint32_t wl__on_vm_start(uint32_t id, uint32_t vm_config_size);
uint32_t wl__on_configure(uint32_t id, uint32_t config_size);
uint32_t wl__on_new_connection(uint32_t id);
uint32_t wl__on_downstream_data(uint32_t id, uint32_t size, uint32_t eos);
uint32_t wl__on_upstream_data(uint32_t id, uint32_t size, uint32_t eos);
void wl__on_downstream_close(uint32_t id, uint32_t peer);
void wl__on_upstream_close(uint32_t id, uint32_t peer);
uint32_t wl__on_done(uint32_t id);
void wl__on_delete(uint32_t id);

/* The script reads every field of every message or event and checks the
 * splits agree inside the VM: the connection of the whole-runs pass records
 * the values it sees, in order; the connections of the other passes compare
 * theirs with the record, value by value. (Building a log line per message
 * and comparing transcripts in C did the same, but formatting the lines was
 * three quarters of each execution.) A difference is logged at error level,
 * which the host turns into a failure. pairs() order is the same in every
 * pass: the runtime builds each table with the same keys in the same order,
 * in the same VM. */
static const char SCRIPT[] =
    "local record, n, pos, checking = {}, 0, 0, false\n"
    "local function mismatch(p, v)\n"
    "  wirelab.logErr('MISMATCH value ' .. p .. ': ' .. tostring(record[p]) .. ' in the first pass, '\n"
    "    .. tostring(v) .. ' here')\n"
    "end\n"
    /* One loop per table, no call per value: this is the hot path of every
     * execution. Tables compare by kind only (each pass builds its own). */
    "local function see(prefix, t, msg)\n"
    "  local p = pos + 1\n"
    "  if checking then\n"
    "    if record[p] ~= prefix then mismatch(p, prefix) end\n"
    "    for k, v in pairs(t) do\n"
    "      if msg and msg[k] ~= v then error('field ' .. tostring(k) .. ' reads differently') end\n"
    "      local r = record[p + 2]\n"
    "      if record[p + 1] ~= k then mismatch(p + 1, k) end\n"
    "      if r ~= v and not (type(r) == 'table' and type(v) == 'table') then mismatch(p + 2, v) end\n"
    "      p = p + 2\n"
    "    end\n"
    "  else\n"
    "    record[p] = prefix\n"
    "    for k, v in pairs(t) do\n"
    "      if msg and msg[k] ~= v then error('field ' .. tostring(k) .. ' reads differently') end\n"
    "      record[p + 1] = k\n"
    "      record[p + 2] = v\n"
    "      p = p + 2\n"
    "    end\n"
    "    n = p\n"
    "  end\n"
    "  pos = p\n"
    "end\n"
    "local function write(msg) msg.kind = 1 end\n"
    "function envoy_on_new_connection(conn)\n"
    "  checking = conn:property('fuzz_pass') ~= 'record'\n"
    "  pos = 0\n"
    "end\n"
    "function envoy_on_pg_message(conn, msg)\n"
    "  see('pg', wirelab.pg_fields(msg), msg)\n"
    "  if msg.no_such_field ~= nil then error('unknown field not nil') end\n"
    "  if type(tostring(msg)) ~= 'string' then error('tostring') end\n"
    "  if pcall(write, msg) then error('message is writable') end\n"
    "end\n"
    "function envoy_on_mysql_event(conn, ev) see('ev', ev) end\n"
    "function envoy_on_mysql_command(conn, cmd) see('cmd', cmd) end\n"
    "function envoy_on_mysql_result(conn, res) see('res', res) end\n"
    "function envoy_on_close(conn)\n"
    "  if checking and pos ~= n then\n"
    "    wirelab.logErr('MISMATCH ' .. pos .. ' values here, ' .. n .. ' in the first pass')\n"
    "  end\n"
    /* The heap is measured once per input, after its last pass has dropped
     * the record: anything a connection kept would still add up input after
     * input, and a full collection per pass was a quarter of the time. */
    "  if conn:property('fuzz_pass') == 'last' then\n"
    "    record, n = {}, 0\n"
    "    collectgarbage('collect')\n"
    "    wirelab.logDebug('heap ' .. math.floor(collectgarbage('count') * 1024))\n"
    "  end\n"
    "end\n";

/* ---- the host ------------------------------------------------------------ */

#define MAX_METRICS 256
static struct {
    char name[160];
    uint64_t value; /* wraps like Envoy's */
} metrics[MAX_METRICS];
static uint32_t metric_count;

static const uint8_t *cur_data;
static size_t cur_len;
static const char *config;
static size_t config_len;
static wl_transcript *transcript; /* log lines go here while a replay runs */

static void fail(const char *what, const char *detail, size_t n) {
    fprintf(stderr, "lua: %s: %.*s\n", what, (int)n, detail);
    abort();
}

/* The Lua heap after a full collection at the end of a connection: what the
 * VM keeps between connections. It must not grow with the connections run. */
#define HEAP_LIMIT (256 * 1024)

/* Set while a replay runs: the fuzz_pass property the script reads (record,
 * check or last) and, for a failure, the split being checked. */
static const char *pass_name;
static char split_name[64];

uint32_t proxy_log(uint32_t level, const char *msg, size_t msg_size) {
    if (level >= WL_LOG_ERROR) {
        if (msg_size > 9 && memcmp(msg, "MISMATCH ", 9) == 0)
            fail(split_name, msg + 9, msg_size - 9);
        fail("the runtime logged an error", msg, msg_size);
    }
    if (level == WL_LOG_DEBUG && msg_size > 5 && memcmp(msg, "heap ", 5) == 0) {
        if (strtoull(msg + 5, NULL, 10) > HEAP_LIMIT) fail("the Lua heap keeps growing", msg, msg_size);
        return WL_OK;
    }
    if (transcript && level == WL_LOG_INFO) {
        wl_t_str(transcript, msg, msg_size);
        transcript->events++;
    }
    return WL_OK;
}

uint32_t proxy_get_log_level(uint32_t *ret_level) {
    *ret_level = WL_LOG_TRACE;
    return WL_OK;
}

/* Copies through the module's allocator, as a proxy-wasm host does (the SDK
 * arms it with its window buffer right before a ranged read). */
uint32_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max_size, uint8_t **ret_ptr,
                                size_t *ret_size) {
    const uint8_t *src = type == WL_BUFFER_PLUGIN_CONFIGURATION ? (const uint8_t *)config : cur_data;
    size_t len = type == WL_BUFFER_PLUGIN_CONFIGURATION ? config_len : cur_len;
    if (type != WL_BUFFER_PLUGIN_CONFIGURATION && type != WL_BUFFER_DOWNSTREAM_DATA &&
        type != WL_BUFFER_UPSTREAM_DATA)
        return WL_NOT_FOUND;
    if (start > len) return WL_BAD_ARGUMENT;
    size_t n = len - start < max_size ? len - start : max_size;
    *ret_ptr = NULL;
    *ret_size = 0;
    if (n == 0) return WL_OK;
    uint8_t *p = wl__export_malloc(n);
    memcpy(p, src + start, n);
    *ret_ptr = p;
    *ret_size = n;
    return WL_OK;
}

uint32_t proxy_get_buffer_status(uint32_t type, size_t *ret_size, uint32_t *ret_flags) {
    *ret_size = type == WL_BUFFER_PLUGIN_CONFIGURATION ? config_len : cur_len;
    *ret_flags = 0;
    return WL_OK;
}

uint32_t proxy_define_metric(uint32_t type, const char *name, size_t name_size, uint32_t *ret_id) {
    (void)type;
    for (uint32_t i = 0; i < metric_count; i++) {
        if (strlen(metrics[i].name) == name_size && memcmp(metrics[i].name, name, name_size) == 0) {
            *ret_id = i;
            return WL_OK;
        }
    }
    if (metric_count == MAX_METRICS || name_size >= sizeof metrics[0].name) return WL_BAD_ARGUMENT;
    memcpy(metrics[metric_count].name, name, name_size);
    metrics[metric_count].name[name_size] = '\0';
    *ret_id = metric_count++;
    return WL_OK;
}

uint32_t proxy_increment_metric(uint32_t id, int64_t delta) {
    if (id >= metric_count) return WL_NOT_FOUND;
    metrics[id].value += (uint64_t)delta;
    return WL_OK;
}

uint32_t proxy_record_metric(uint32_t id, uint64_t value) {
    if (id >= metric_count) return WL_NOT_FOUND;
    metrics[id].value = value;
    return WL_OK;
}

uint32_t proxy_get_metric(uint32_t id, uint64_t *ret_value) {
    if (id >= metric_count) return WL_NOT_FOUND;
    *ret_value = metrics[id].value;
    return WL_OK;
}

uint32_t proxy_get_property(const char *path, size_t path_size, uint8_t **ret_ptr, size_t *ret_size) {
    *ret_ptr = NULL;
    *ret_size = 0;
    if (!pass_name || path_size != 9 || memcmp(path, "fuzz_pass", 9) != 0) return WL_NOT_FOUND;
    size_t n = strlen(pass_name);
    *ret_ptr = wl__export_malloc(n);
    memcpy(*ret_ptr, pass_name, n);
    *ret_size = n;
    return WL_OK;
}

uint32_t proxy_set_tick_period_milliseconds(uint32_t period_ms) {
    (void)period_ms;
    return WL_OK;
}

uint32_t proxy_set_effective_context(uint32_t context_id) {
    (void)context_id;
    return WL_OK;
}

/* ---- driving it ------------------------------------------------------------ */

enum { PLUGIN_PG = 1, PLUGIN_MYSQL = 2 };

static void configure(uint32_t id, const char *protocol) {
    static char buf[4096];
    int n = snprintf(buf, sizeof buf,
                     "{\"script\": \"%s\", \"script_name\": \"fuzz.lua\", \"protocol\": \"%s\", "
                     "\"stat_prefix\": \"fuzz\", \"settings\": {}, \"metrics_flush_ms\": 0}",
                     "SCRIPT", protocol);
    /* The script goes in as a JSON string: escape it into place. */
    static char json[16384];
    size_t o = 0;
    const char *mark = strstr(buf, "SCRIPT");
    memcpy(json, buf, (size_t)(mark - buf));
    o = (size_t)(mark - buf);
    for (const char *s = SCRIPT; *s; s++) {
        if (*s == '\n') {
            json[o++] = '\\';
            json[o++] = 'n';
        } else {
            if (*s == '"' || *s == '\\') json[o++] = '\\';
            json[o++] = *s;
        }
    }
    size_t rest = (size_t)n - (size_t)(mark + 6 - buf);
    memcpy(json + o, mark + 6, rest);
    o += rest;
    config = json;
    config_len = o;
    wl__on_context_create(id, 0);
    if (!wl__on_configure(id, (uint32_t)config_len)) fail("configuration refused", json, o);
    config = NULL;
    config_len = 0;
}

static void feed(void *plugin_conn, wl_dir dir, size_t len, wl_fetch_fn fetch, void *ctx) {
    /* The host hands the module the whole read; split.h's fetch is not used
     * here, but its private copy of the read is. */
    uint32_t id = (uint32_t)(uintptr_t)plugin_conn;
    wl_fuzz_read *r = ctx;
    (void)fetch;
    cur_data = r->data;
    cur_len = len;
    if (dir == WL_DIR_CLIENT) wl__on_downstream_data(id, (uint32_t)len, 0);
    else wl__on_upstream_data(id, (uint32_t)len, 0);
    cur_data = NULL;
    cur_len = 0;
}

static void replay(uint32_t plugin, const wl_chunk *c, size_t count, const wl_pass *pass,
                   uint64_t seed, wl_transcript *t, const char *role) {
    static uint32_t next_id = 1000;
    static uint64_t before[MAX_METRICS];
    uint32_t id = next_id++;
    for (uint32_t i = 0; i < metric_count; i++) before[i] = metrics[i].value;
    wl_t_reset(t);
    transcript = t;
    pass_name = role;
    snprintf(split_name, sizeof split_name, "the '%s' split differs from the first", pass->name);
    wl__on_context_create(id, plugin);
    wl__on_new_connection(id);
    wl_replay(c, count, pass, seed, feed, (void *)(uintptr_t)id);
    wl__on_downstream_close(id, WL_PEER_REMOTE);
    wl__on_upstream_close(id, WL_PEER_REMOTE);
    wl__on_done(id);
    wl__on_delete(id);
    transcript = NULL;
    pass_name = NULL;
    for (uint32_t i = 0; i < metric_count; i++) {
        uint64_t d = metrics[i].value - before[i];
        if (d) {
            wl_t_str(t, metrics[i].name, strlen(metrics[i].name));
            wl_t_u64(t, d);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    if (!ready) {
        wl__on_vm_start(PLUGIN_PG, 0);
        configure(PLUGIN_PG, "postgres");
        configure(PLUGIN_MYSQL, "mysql");
        ready = 1;
    }
    if (size == 0) return 0;
    uint32_t plugin = (data[0] & 1) ? PLUGIN_MYSQL : PLUGIN_PG;
    static wl_chunk chunks[WL_MAX_CHUNKS];
    size_t count = wl_parse_chunks(data + 1, size - 1, chunks);
    uint64_t seed = wl_fnv1a(data, size);
    static wl_transcript base, other; /* static: their buffers are reused */
    /* Byte-by-byte reads are left to the decoder targets: here every read
     * enters Lua, and the API's fields are what is under test. The host
     * copies every read into the module (proxy_get_buffer_bytes), so the
     * passes' window kind does not matter. */
    static const wl_pass passes[] = {
        {WL_SPLIT_RUNS, 0, 1, "runs"},
        {WL_SPLIT_CHUNKS, 0, 1, "chunks"},
        {WL_SPLIT_RANDOM, 0, 1, "random"},
    };
    const size_t n = sizeof passes / sizeof passes[0];
    replay(plugin, chunks, count, &passes[0], seed, &base, "record");
    for (size_t i = 1; i < n; i++) {
        replay(plugin, chunks, count, &passes[i], seed, &other, i + 1 < n ? "check" : "last");
        if (!wl_t_same(&base, &other)) wl_transcript_mismatch("lua", passes[i].name, &base, &other);
    }
    return 0;
}
