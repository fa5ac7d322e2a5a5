/* proxy-wasm metrics: define (cached by name), update, read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wirelab_filter.h"

/* One VM is one thread: a flush needs no lock. */

/* ---- name -> id cache ----------------------------------------------------------
 * Filters define metrics at configure time; a second plugin instance or a
 * reconfigure asks for the same names again, so answer those without a host
 * call. Chained hash buckets; names are copied once. */
typedef struct wl_metric_entry {
    struct wl_metric_entry *next;
    wl_metric id;
    uint32_t type;
    char name[];
} wl_metric_entry;

#define WL_METRIC_BUCKETS 256
static wl_metric_entry *wl__metric_buckets[WL_METRIC_BUCKETS];

static uint32_t wl__fnv1a(const char *s) {
    uint32_t h = 2166136261u;
    while (*s) h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

wl_metric wl_metric_define(wl_metric_type type, const char *name) {
    uint32_t b = wl__fnv1a(name) & (WL_METRIC_BUCKETS - 1);
    for (wl_metric_entry *e = wl__metric_buckets[b]; e; e = e->next) {
        if (e->type == (uint32_t)type && strcmp(e->name, name) == 0) return e->id;
    }
    uint32_t id = 0;
    if (proxy_define_metric(type, name, strlen(name), &id) != WL_OK) {
        wl_log(WL_LOG_ERROR, "wirelab: the host refused metric %s", name);
        return WL_METRIC_INVALID;
    }
    size_t len = strlen(name);
    wl_metric_entry *e = malloc(sizeof(*e) + len + 1);
    if (e) {
        e->id = id;
        e->type = type;
        memcpy(e->name, name, len + 1);
        e->next = wl__metric_buckets[b];
        wl__metric_buckets[b] = e;
    }
    return id;
}

void wl_metric_add(wl_metric id, int64_t delta) {
    if (id != WL_METRIC_INVALID && delta != 0) proxy_increment_metric(id, delta);
}

void wl_metric_set(wl_metric id, uint64_t value) {
    if (id != WL_METRIC_INVALID) proxy_record_metric(id, value);
}

void wl_metric_record(wl_metric id, uint64_t value) {
    if (id != WL_METRIC_INVALID) proxy_record_metric(id, value);
}

uint64_t wl_metric_get(wl_metric id) {
    uint64_t v = 0;
    if (id == WL_METRIC_INVALID || proxy_get_metric(id, &v) != WL_OK) return 0;
    return v;
}

