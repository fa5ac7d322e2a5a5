/* Host-independent metric helpers: printf-formatted names, per-callback
 * batching and tag sanitising. Defining and updating a metric is the
 * backend's (wasm/wl_wasm_metrics.c, native/wl_native_metrics.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wirelab_filter.h"

#ifndef WL_METRIC_NAME_MAX
#define WL_METRIC_NAME_MAX 256
#endif
#ifndef WL_BATCH_SLOTS
#define WL_BATCH_SLOTS 64
#endif

static wl_metric wl__vdefine(wl_metric_type type, const char *fmt, va_list ap) {
    char name[WL_METRIC_NAME_MAX];
    int n = vsnprintf(name, sizeof name, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof name) {
        wl_log(WL_LOG_ERROR, "wirelab: metric name too long: %s...", name);
        return WL_METRIC_INVALID;
    }
    return wl_metric_define(type, name);
}

wl_metric wl_counter(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    wl_metric id = wl__vdefine(WL_COUNTER, fmt, ap);
    va_end(ap);
    return id;
}

wl_metric wl_gauge(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    wl_metric id = wl__vdefine(WL_GAUGE, fmt, ap);
    va_end(ap);
    return id;
}

wl_metric wl_histogram(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    wl_metric id = wl__vdefine(WL_HISTOGRAM, fmt, ap);
    va_end(ap);
    return id;
}

/* ---- batching ------------------------------------------------------------------
 * One batch per plugin instance: a plugin that holds its counters
 * (wl_batch_hold_ms) must not have them sent by another plugin's callbacks or
 * tick in the same VM. A callback adds to the batch of the plugin it runs for.
 * Adds are O(1) (open addressing on the metric id): with counters held, a
 * batch carries every counter touched since the last tick, and several of
 * them move on every message. */
#define WL_BATCH_TABLE (2 * WL_BATCH_SLOTS)
#define WL_BATCH_PREFETCH_SLOTS 32 /* natively: the slots of the first 32 counters defined */

/* Slots hold id + 1 so that zeroed memory is an empty table: Envoy's metric
 * ids start at 0, and WL_METRIC_INVALID never enters a batch. */
typedef struct wl_batch {
    uint32_t hold_ms;
    uint32_t len;
    uint16_t used[WL_BATCH_SLOTS]; /* occupied table slots, in insertion order */
    struct {
        uint32_t key; /* metric id + 1; 0: empty */
        int64_t delta;
    } slot[WL_BATCH_TABLE];
} wl_batch;

/* Natively every worker thread runs callbacks at once, each for its own
 * plugin, so "the batch of the current callback" is per thread (initial-exec:
 * see WL_DM_TLS in native/wl_native.h). */
#if defined(WL_TARGET_WASM)
#define WL_TLS
#else
#define WL_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#endif

/* Callbacks with no plugin (proxy_on_vm_start), or whose plugin's batch could
 * not be allocated. Natively that is only ever the main thread: a plugin's
 * batch is allocated while its configuration loads, or the load fails. */
static wl_batch wl__vm_batch;
static WL_TLS wl_batch *wl__cur;

static wl_batch *wl__current(void) { return wl__cur ? wl__cur : &wl__vm_batch; }

void wl__batch_enter(wl_plugin *p) {
    if (p && !p->batch) p->batch = calloc(1, sizeof(wl_batch));
    /* no plugin, or out of memory: the VM's batch, sent after every callback */
    wl__cur = p && p->batch ? p->batch : &wl__vm_batch;
#if !defined(WL_TARGET_WASM)
    wl_batch *b = wl__cur;
    /* Natively the first metrics a filter defines take the first slots
     * (wl__slot_of), and filters define the ones every read moves first
     * (filters/postgres and filters/mysql: their per-query counters, before
     * the rest). Between two reads the caches forget them: asking for those
     * lines now overlaps the misses instead of taking them one by one at each
     * add. Fixed lines, not the slots the batch holds (used[]): those
     * addresses would first need a load of used[], itself a miss here, and a
     * loop over it on every callback. */
    for (int i = 0; i < WL_BATCH_PREFETCH_SLOTS; i += 4) __builtin_prefetch(&b->slot[i], 1);
#endif
}

int wl__batch_held(void) { return wl__current()->hold_ms != 0; }

void wl__batch_free(wl_plugin *p) {
    if (!p->batch) return;
    wl__cur = p->batch;
    wl_batch_flush();
    wl__cur = &wl__vm_batch;
    free(p->batch);
    p->batch = NULL;
}

void wl_batch_hold_ms(uint32_t period_ms) {
    if (wl__current() == &wl__vm_batch) return; /* outside a plugin's callback: nothing to hold */
    wl__cur->hold_ms = period_ms;
    wl_set_tick_ms(period_ms);
}

void wl_batch_flush(void) {
    wl_batch *b = wl__current();
    if (b->len == 0) return;
    for (uint32_t i = 0; i < b->len; i++) {
        uint16_t at = b->used[i];
        wl_metric_add(b->slot[at].key - 1, b->slot[at].delta);
        b->slot[at].key = 0;
    }
    b->len = 0;
}

/* Natively a metric id is its index among the config's metrics of its type
 * (type in the top bits), so a filter's metrics are numbered 0, 1, 2, ... in
 * the order it defines them: mapped straight to slots, the counters one read
 * moves share a few cache lines instead of scattering over the whole table.
 * Envoy's Wasm ids carry no such order: they are hashed. */
static inline uint32_t wl__slot_of(wl_metric id) {
#if defined(WL_TARGET_WASM)
    return (id * 2654435761u) % WL_BATCH_TABLE;
#else
    return (id + (id >> 30) * (WL_BATCH_TABLE / 2)) % WL_BATCH_TABLE;
#endif
}

/* A metric's first add since the last flush: claims the empty slot `at`.
 * Out of line, so the common add (the metric is already in the batch, held
 * since the last tick) runs without saving registers for a flush. */
__attribute__((noinline)) static void wl__batch_insert(wl_batch *b, wl_metric id, uint32_t at,
                                                       int64_t delta) {
    if (b->len == WL_BATCH_SLOTS) { /* full: send it, then start over */
        wl_batch_flush();
        at = wl__slot_of(id);
    }
    b->slot[at].key = id + 1;
    b->slot[at].delta = delta;
    b->used[b->len++] = (uint16_t)at;
}

void wl_batch_add(wl_metric id, int64_t delta) {
    if (id == WL_METRIC_INVALID || delta == 0) return;
    wl_batch *b = wl__current();
    uint32_t key = id + 1;
    uint32_t at = wl__slot_of(id);
    while (b->slot[at].key) {
        if (b->slot[at].key == key) {
            b->slot[at].delta += delta;
            return;
        }
        at = (at + 1) % WL_BATCH_TABLE;
    }
    wl__batch_insert(b, id, at, delta);
}

void wl_sanitize_tag(char *s) {
    for (; *s; s++) {
        char c = *s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
        if (!ok) *s = '_';
    }
}
