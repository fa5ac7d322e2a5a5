/* The one WASI call the SDK makes (filters/sdk/wl_host.c: clocks), for the
 * native fuzz build of the Lua runtime. The clock is a counter, not the real
 * time: two replays of the same bytes must see the same values. */
#ifndef WIRELAB_FUZZ_WASI_API_H
#define WIRELAB_FUZZ_WASI_API_H

#include <stdint.h>

typedef uint32_t __wasi_clockid_t;
typedef uint64_t __wasi_timestamp_t;
#define __WASI_CLOCKID_REALTIME ((__wasi_clockid_t)0)
#define __WASI_CLOCKID_MONOTONIC ((__wasi_clockid_t)1)

extern uint64_t wl_fuzz_clock_ns;

static inline uint16_t __wasi_clock_time_get(__wasi_clockid_t id, __wasi_timestamp_t precision,
                                             __wasi_timestamp_t *out) {
    (void)id;
    (void)precision;
    *out = wl_fuzz_clock_ns += 1000;
    return 0;
}

#endif
