/* Logging, properties and clocks on the native backend.
 *
 * Properties keep the proxy-wasm attribute paths and value shapes (strings as
 * bytes, integers as 8-byte little-endian), answered from Envoy's connection
 * callbacks for the connection the current callback runs for. */
/* clock_gettime, pthread_*: POSIX, also when a project builds with -std=c11 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "wl_native.h"

#ifndef WL_LOG_LINE_MAX
#define WL_LOG_LINE_MAX 1024
#endif

void wl_vlog(wl_log_level level, const char *fmt, va_list ap) {
    /* Formatting costs more than asking; skip lines Envoy would drop. */
    if (!envoy_dynamic_module_callback_log_enabled((int)level)) return;
    char line[WL_LOG_LINE_MAX];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    envoy_dynamic_module_callback_log((int)level, (wl_dm_module_buffer){line, (size_t)n});
}

void wl_log(wl_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    wl_vlog(level, fmt, ap);
    va_end(ap);
}

/* ---- properties ------------------------------------------------------------ */

static int wl__put_bytes(const char *src, size_t len, uint8_t *out, size_t cap) {
    size_t n = len < cap ? len : cap;
    if (n) memcpy(out, src, n);
    return (int)len;
}

static int wl__put_int(int64_t v, uint8_t *out, size_t cap) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)v >> (8 * i));
    return wl__put_bytes((const char *)b, 8, out, cap);
}

/* "ip:port", bracketing IPv6 as Envoy's own address strings do. */
static int wl__put_address(wl_dm_envoy_buffer a, uint32_t port, uint8_t *out, size_t cap) {
    char s[128];
    int v6 = memchr(a.ptr, ':', a.length) != NULL;
    int n = snprintf(s, sizeof s, v6 ? "[%.*s]:%u" : "%.*s:%u", (int)a.length, a.ptr, port);
    if (n < 0 || (size_t)n >= sizeof s) return -1;
    return wl__put_bytes(s, (size_t)n, out, cap);
}

/* One dotted attribute path of the current connection. */
static int wl__property(const char *path, uint8_t *out, size_t cap) {
    void *f = wl__dm_filter;
    if (!f) return -1;
    wl_dm_envoy_buffer a = {0, 0};
    uint32_t port = 0;
    int remote = strncmp(path, "source.", 7) == 0;
    int local = strncmp(path, "destination.", 12) == 0;
    if (remote || local) {
        int ok = remote ? envoy_dynamic_module_callback_network_filter_get_remote_address(f, &a, &port)
                        : envoy_dynamic_module_callback_network_filter_get_local_address(f, &a, &port);
        if (!ok || !a.ptr) return -1;
        const char *leaf = path + (remote ? 7 : 12);
        if (strcmp(leaf, "address") == 0) return wl__put_address(a, port, out, cap);
        if (strcmp(leaf, "port") == 0) return wl__put_int(port, out, cap);
        return -1;
    }
    if (strcmp(path, "connection.id") == 0)
        return wl__put_int((int64_t)envoy_dynamic_module_callback_network_filter_get_connection_id(f),
                           out, cap);
    if (strcmp(path, "connection.requested_server_name") == 0) {
        if (!envoy_dynamic_module_callback_network_filter_get_requested_server_name(f, &a)) return -1;
        return wl__put_bytes(a.ptr, a.length, out, cap);
    }
    if (strcmp(path, "connection.subject_peer_certificate") == 0) {
        if (!envoy_dynamic_module_callback_network_filter_get_ssl_subject(f, &a)) return -1;
        return wl__put_bytes(a.ptr, a.length, out, cap);
    }
    return -1;
}

int wl_property_raw(const char *path, size_t path_len, uint8_t *out, size_t cap) {
    char dotted[256];
    if (path_len == 0 || path_len >= sizeof dotted) return -1;
    for (size_t i = 0; i < path_len; i++) dotted[i] = path[i] == '\0' ? '.' : path[i];
    dotted[path_len] = '\0';
    return wl__property(dotted, out, cap);
}

int wl_connection_tls(void) {
    if (!wl__dm_filter) return -1;
    return envoy_dynamic_module_callback_network_filter_is_ssl(wl__dm_filter) ? 1 : 0;
}

/* ---- clocks and buffers ------------------------------------------------------- */

static uint64_t wl__clock(clockid_t id) {
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0) return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t wl_now_ns(void) { return wl__clock(CLOCK_MONOTONIC); }
uint64_t wl_wall_ns(void) { return wl__clock(CLOCK_REALTIME); }

const uint8_t *wl_buffer_window(uint32_t buffer_type, wl_dir dir, size_t start, size_t want,
                                size_t *got) {
    (void)buffer_type, (void)dir, (void)start, (void)want;
    *got = 0;
    return NULL;
}
