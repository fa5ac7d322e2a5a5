/* Shared by every wirelab protocol decoder: directions, the fetch contract and
 * byte-order readers. Decoders are host-agnostic: a proxy-wasm filter backs
 * `wl_fetch_fn` with ranged proxy_get_buffer_bytes reads, a native test backs
 * it with a plain memory buffer. */
#ifndef WIRELAB_WIRE_H
#define WIRELAB_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* Client->server bytes are Envoy's downstream data; server->client bytes are
 * its upstream data. */
typedef enum { WL_DIR_CLIENT = 0, WL_DIR_SERVER = 1 } wl_dir;

/* Returns a pointer to bytes [off, off + *got) of the current read, with
 * *got <= want (fewer only at the end of the read). The pointer stays valid
 * until the next fetch on the same direction. Decoders ask for windows (a few
 * KB), parse every header inside in place, and never fetch body bytes they do
 * not need. */
typedef const uint8_t *(*wl_fetch_fn)(void *fetch_ctx, size_t off, size_t want, size_t *got);

static inline uint16_t wl_be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t wl_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t wl_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t wl_le24(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
}
static inline uint32_t wl_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

#endif
