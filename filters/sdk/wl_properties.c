/* Connection facts every backend answers the same way, through its own
 * wl_property_string / wl_property_int (wasm/wl_host.c, native/wl_native_host.c). */
#include "wirelab_filter.h"

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
