/* bench/wasm_code_time.py's harness: the proxy-wasm host functions and the
 * SDK's wl_host.c replaced by stand-ins that answer from module memory, and a
 * driver that feeds one connection the same two reads N times in one call.
 * Linked with the SDK, a decoder and a filter's sources, it runs the filter's
 * own Wasm code and nothing of Envoy's. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "wirelab_filter.h"

void *wl__export_malloc(size_t size);
void wl__on_context_create(uint32_t id, uint32_t parent_id);
uint32_t wl__on_configure(uint32_t id, uint32_t config_size);
uint32_t wl__on_new_connection(uint32_t id);
uint32_t wl__on_downstream_data(uint32_t id, uint32_t size, uint32_t eos);
uint32_t wl__on_upstream_data(uint32_t id, uint32_t size, uint32_t eos);

/* what proxy_get_buffer_bytes serves, by buffer type */
static const uint8_t *bench_buf[8];
static size_t bench_len[8];
static uint64_t bench_clock;
static uint32_t bench_metric_ids = 1;
static uint64_t bench_host_calls;

uint32_t proxy_log(uint32_t level, const char *msg, size_t n) {
    (void)level, (void)msg, (void)n;
    return WL_OK;
}

uint32_t proxy_get_log_level(uint32_t *level) {
    *level = WL_LOG_WARN;
    return WL_OK;
}

uint32_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max, uint8_t **ptr,
                                size_t *size) {
    bench_host_calls++;
    if (type >= 8 || start > bench_len[type]) return WL_NOT_FOUND;
    size_t n = bench_len[type] - start;
    if (n > max) n = max;
    *size = n;
    *ptr = NULL;
    if (!n) return WL_OK;
    /* what Envoy does: allocate through the module's malloc, then copy */
    uint8_t *dst = wl__export_malloc(n);
    memcpy(dst, bench_buf[type] + start, n);
    *ptr = dst;
    return WL_OK;
}

uint32_t proxy_get_buffer_status(uint32_t type, size_t *size, uint32_t *flags) {
    *size = type < 8 ? bench_len[type] : 0;
    *flags = 0;
    return WL_OK;
}

uint32_t proxy_define_metric(uint32_t type, const char *name, size_t n, uint32_t *id) {
    (void)name, (void)n;
    *id = (type << 28) | bench_metric_ids++;
    return WL_OK;
}

uint32_t proxy_increment_metric(uint32_t id, int64_t delta) {
    (void)id, (void)delta;
    bench_host_calls++;
    return WL_OK;
}

uint32_t proxy_record_metric(uint32_t id, uint64_t value) {
    (void)id, (void)value;
    bench_host_calls++;
    return WL_OK;
}

uint32_t proxy_get_metric(uint32_t id, uint64_t *value) {
    (void)id;
    *value = 0;
    return WL_OK;
}

uint32_t proxy_get_property(const char *path, size_t n, uint8_t **ptr, size_t *size) {
    (void)path, (void)n;
    *ptr = NULL;
    *size = 0;
    return WL_NOT_FOUND;
}

uint32_t proxy_set_tick_period_milliseconds(uint32_t ms) {
    (void)ms;
    return WL_OK;
}

uint32_t proxy_set_effective_context(uint32_t id) {
    (void)id;
    return WL_OK;
}

/* ---- wl_host.c's API, without WASI ---------------------------------------------- */

void wl_vlog(wl_log_level level, const char *fmt, va_list ap) { (void)level, (void)fmt, (void)ap; }

void wl_log(wl_log_level level, const char *fmt, ...) { (void)level, (void)fmt; }

int wl_property_raw(const char *path, size_t path_len, uint8_t *out, size_t cap) {
    (void)path, (void)path_len, (void)out, (void)cap;
    return -1;
}

int wl_property_string(const char *path, char *out, size_t cap) {
    (void)path, (void)out, (void)cap;
    return -1;
}

int wl_property_int(const char *path, int64_t *out) {
    (void)path, (void)out;
    return -1;
}

int wl_source_address(char *out, size_t cap) { return wl_property_string("", out, cap); }
int wl_destination_address(char *out, size_t cap) { return wl_property_string("", out, cap); }
int64_t wl_source_port(void) { return -1; }
int64_t wl_destination_port(void) { return -1; }
int64_t wl_connection_id(void) { return -1; }

/* a clock that moves 10 µs per read: latencies are real numbers, never slow */
uint64_t wl_now_ns(void) {
    bench_host_calls++;
    return bench_clock += 10000;
}

uint64_t wl_wall_ns(void) { return bench_clock; }

void wl_set_tick_ms(uint32_t period_ms) { (void)period_ms; }

/* ---- the driver ----------------------------------------------------------------------- */

enum { PLUGIN = 1, CONN = 2 };
static uint8_t *reads[4];
static uint32_t read_len[4];

/* Slot 0/1: the client/server reads that open the session (startup and
 * login); slot 2/3: one transaction's client and server reads. */
__attribute__((export_name("bench_set_read"))) uint8_t *bench_set_read(uint32_t slot, uint32_t len) {
    if (slot >= 4) return NULL;
    free(reads[slot]);
    reads[slot] = malloc(len ? len : 1);
    read_len[slot] = len;
    return reads[slot];
}

static void feed(uint32_t slot) {
    int server = slot & 1;
    uint32_t type = server ? WL_BUFFER_UPSTREAM_DATA : WL_BUFFER_DOWNSTREAM_DATA;
    bench_buf[type] = reads[slot];
    bench_len[type] = read_len[slot];
    if (server) wl__on_upstream_data(CONN, read_len[slot], 0);
    else wl__on_downstream_data(CONN, read_len[slot], 0);
}

/* Configures the plugin (JSON config at `config`), opens a connection and
 * feeds the session's opening reads. */
__attribute__((export_name("bench_open"))) uint32_t bench_open(const char *config, uint32_t len) {
    bench_buf[WL_BUFFER_PLUGIN_CONFIGURATION] = (const uint8_t *)config;
    bench_len[WL_BUFFER_PLUGIN_CONFIGURATION] = len;
    wl__on_context_create(PLUGIN, 0);
    if (!wl__on_configure(PLUGIN, len)) return 0;
    wl__on_context_create(CONN, PLUGIN);
    wl__on_new_connection(CONN);
    feed(0);
    feed(1);
    return 1;
}

/* Runs `n` transactions; returns the host calls they made. */
__attribute__((export_name("bench_run"))) uint64_t bench_run(uint32_t n) {
    uint64_t before = bench_host_calls;
    for (uint32_t i = 0; i < n; i++) {
        feed(2);
        feed(3);
    }
    return bench_host_calls - before;
}
