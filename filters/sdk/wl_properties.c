/* Properties every backend answers the same way, over its own wl_property_raw
 * (wasm/wl_host.c asks Envoy through proxy-wasm, native/wl_native_host.c from
 * Envoy's connection callbacks): dotted paths, strings, integers, connection facts. */
#include <string.h>

#include "wirelab_filter.h"

#ifndef WL_PROPERTY_PATH_MAX
#define WL_PROPERTY_PATH_MAX 256
#endif

/* "a.b.c" -> "a\0b\0c" (the ABI's segment form); returns the byte length, 0 if
 * the path is empty or does not fit. */
static size_t wl__segments(const char *dotted, char *out, size_t cap) {
    size_t n = strlen(dotted);
    if (n >= cap) return 0;
    for (size_t i = 0; i < n; i++) out[i] = dotted[i] == '.' ? '\0' : dotted[i];
    out[n] = '\0';
    return n;
}

static int wl__property_dotted(const char *path, uint8_t *out, size_t cap) {
    char segs[WL_PROPERTY_PATH_MAX];
    size_t len = wl__segments(path, segs, sizeof segs);
    return len ? wl_property_raw(segs, len, out, cap) : -1;
}

int wl_property_string(const char *path, char *out, size_t cap) {
    if (!cap) return -1;
    int n = wl__property_dotted(path, (uint8_t *)out, cap - 1);
    if (n < 0) {
        out[0] = '\0';
        return -1;
    }
    out[(size_t)n < cap - 1 ? (size_t)n : cap - 1] = '\0';
    return n;
}

int wl_property_int(const char *path, int64_t *out) {
    uint8_t b[8];
    if (wl__property_dotted(path, b, sizeof b) != 8) return -1;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
    *out = (int64_t)v;
    return 0;
}

static int64_t wl__int_or_minus1(const char *path) {
    int64_t v;
    return wl_property_int(path, &v) == 0 ? v : -1;
}

int wl_source_address(char *out, size_t cap) { return wl_property_string("source.address", out, cap); }
int wl_destination_address(char *out, size_t cap) {
    return wl_property_string("destination.address", out, cap);
}
int64_t wl_source_port(void) { return wl__int_or_minus1("source.port"); }
int64_t wl_destination_port(void) { return wl__int_or_minus1("destination.port"); }
int64_t wl_connection_id(void) { return wl__int_or_minus1("connection.id"); }
