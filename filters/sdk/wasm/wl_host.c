/* Logging, properties, clocks and the tick timer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#include "wirelab_filter.h"

#ifndef WL_LOG_LINE_MAX
#define WL_LOG_LINE_MAX 1024
#endif

void wl_vlog(wl_log_level level, const char *fmt, va_list ap) {
    uint32_t host_level = 0;
    /* Formatting costs more than asking; skip lines the host would drop. */
    if (proxy_get_log_level(&host_level) == WL_OK && (uint32_t)level < host_level) return;
    char line[WL_LOG_LINE_MAX];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    proxy_log(level, line, (size_t)n);
}

void wl_log(wl_log_level level, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    wl_vlog(level, fmt, ap);
    va_end(ap);
}

/* ---- properties --------------------------------------------------------------- */

int wl_property_raw(const char *path, size_t path_len, uint8_t *out, size_t cap) {
    uint8_t *ptr = NULL;
    size_t size = 0;
    if (proxy_get_property(path, path_len, &ptr, &size) != WL_OK) return -1;
    size_t n = size < cap ? size : cap;
    if (ptr) {
        if (n) memcpy(out, ptr, n);
        free(ptr); /* the host allocated it with our malloc export */
    }
    return (int)size;
}

int wl_connection_tls(void) {
    char v[32];
    return wl_property_string("connection.tls_version", v, sizeof v) > 0 ? 1 : 0;
}

/* ---- clocks --------------------------------------------------------------------- */

static uint64_t wl__clock(__wasi_clockid_t clock) {
    __wasi_timestamp_t t = 0;
    if (__wasi_clock_time_get(clock, 1000, &t) != 0) return 0;
    return t;
}

uint64_t wl_now_ns(void) { return wl__clock(__WASI_CLOCKID_MONOTONIC); }
uint64_t wl_wall_ns(void) { return wl__clock(__WASI_CLOCKID_REALTIME); }

void wl_set_tick_ms(uint32_t period_ms) { proxy_set_tick_period_milliseconds(period_ms); }
