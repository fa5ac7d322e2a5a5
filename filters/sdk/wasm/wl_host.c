/* Logging, properties, clocks and the tick timer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#include "wirelab_filter.h"

#ifndef WL_LOG_LINE_MAX
#define WL_LOG_LINE_MAX 1024
#endif
#ifndef WL_PROPERTY_PATH_MAX
#define WL_PROPERTY_PATH_MAX 256
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

/* "a.b.c" -> "a\0b\0c" (the ABI's segment form); returns the byte length. */
static size_t wl__segments(const char *dotted, char *out, size_t cap) {
    size_t n = strlen(dotted);
    if (n >= cap) return 0;
    for (size_t i = 0; i < n; i++) out[i] = dotted[i] == '.' ? '\0' : dotted[i];
    out[n] = '\0';
    return n;
}

int wl_property_string(const char *path, char *out, size_t cap) {
    char segs[WL_PROPERTY_PATH_MAX];
    size_t len = wl__segments(path, segs, sizeof segs);
    if (!len || !cap) return -1;
    int n = wl_property_raw(segs, len, (uint8_t *)out, cap - 1);
    if (n < 0) {
        out[0] = '\0';
        return -1;
    }
    out[(size_t)n < cap - 1 ? (size_t)n : cap - 1] = '\0';
    return n;
}

int wl_property_int(const char *path, int64_t *out) {
    char segs[WL_PROPERTY_PATH_MAX];
    size_t len = wl__segments(path, segs, sizeof segs);
    uint8_t b[8];
    if (!len || wl_property_raw(segs, len, b, sizeof b) != 8) return -1;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    *out = (int64_t)v;
    return 0;
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
