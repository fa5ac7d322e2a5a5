/* The proxy-wasm exports: allocator, lifecycle dispatch to the wl_on_* hooks,
 * the context table and the windowed buffer reads. */
#include <stdlib.h>
#include <string.h>

#include "wirelab_filter.h"

#define WL_EXPORT(name) __attribute__((export_name(#name)))

/* Batch flushing lives in wl_metrics.c; every callback ends with it. */
void wl_batch_flush(void);
/* wl_metrics.c: the batch of the plugin the current callback runs for */
void wl__batch_enter(wl_plugin *p);
int wl__batch_held(void);
void wl__batch_free(wl_plugin *p);

/* ---- allocator -------------------------------------------------------------
 * The host copies data into the module through this allocator. Right before a
 * ranged read the SDK arms it with a static window, so the copy lands there
 * directly: no malloc, free or memcpy per read. Unarmed, it is libc malloc,
 * which the SDK's free() matches. */
static uint8_t wl__window[2][WL_WINDOW_SIZE];
static uint8_t *wl__armed;
static size_t wl__armed_cap;

WL_EXPORT(malloc) void *wl__export_malloc(size_t size) {
    uint8_t *p = wl__armed;
    if (p) {
        wl__armed = NULL;
        if (size <= wl__armed_cap) return p;
    }
    return malloc(size);
}

WL_EXPORT(proxy_on_memory_allocate) void *wl__export_allocate(size_t size) {
    return wl__export_malloc(size);
}

WL_EXPORT(proxy_abi_version_0_2_1) void wl__abi_version_0_2_1(void) {}

const uint8_t *wl_buffer_window(uint32_t buffer_type, wl_dir dir, size_t start, size_t want,
                                size_t *got) {
    uint8_t *window = wl__window[dir == WL_DIR_SERVER];
    uint8_t *ptr = NULL;
    size_t size = 0;
    if (want > WL_WINDOW_SIZE) want = WL_WINDOW_SIZE;
    *got = 0;
    if (want == 0) return window;
    wl__armed = window;
    wl__armed_cap = WL_WINDOW_SIZE;
    uint32_t rc = proxy_get_buffer_bytes(buffer_type, start, want, &ptr, &size);
    wl__armed = NULL; /* the host skips the allocator for empty results */
    if (rc != WL_OK || ptr == NULL || size == 0) return NULL;
    if (ptr != window) {
        /* A host that allocated more than asked: keep the contract anyway. */
        if (size > WL_WINDOW_SIZE) size = WL_WINDOW_SIZE;
        memcpy(window, ptr, size);
        free(ptr);
    }
    *got = size;
    return window;
}

const uint8_t *wl_read_fetch(void *ctx, size_t off, size_t want, size_t *got) {
    wl_read *r = (wl_read *)ctx;
    uint8_t *window = wl__window[r->dir == WL_DIR_SERVER];
    *got = 0;
    if (off >= r->size) return window;
    if (want > r->size - off) want = r->size - off;
    if (want > WL_WINDOW_SIZE) want = WL_WINDOW_SIZE;
    if (off >= r->win_off && off + want <= r->win_off + r->win_len) {
        *got = want;
        return window + (off - r->win_off);
    }
    uint32_t type = r->dir == WL_DIR_SERVER ? WL_BUFFER_UPSTREAM_DATA : WL_BUFFER_DOWNSTREAM_DATA;
    /* Read the whole window, not just `want`: the next header usually follows. */
    size_t ask = r->size - off;
    if (ask > WL_WINDOW_SIZE) ask = WL_WINDOW_SIZE;
    size_t n = 0;
    if (!wl_buffer_window(type, r->dir, off, ask, &n)) {
        r->win_len = 0;
        return window;
    }
    r->win_off = off;
    r->win_len = n;
    *got = want < n ? want : n;
    return window;
}

/* ---- context table -----------------------------------------------------------
 * context_id -> plugin or connection, open addressing with linear probing and
 * backward-shift deletion: O(1) per callback at any connection count. */
enum { WL_SLOT_EMPTY = 0, WL_SLOT_PLUGIN = 1, WL_SLOT_CONN = 2 };

typedef struct {
    uint32_t id;
    uint32_t kind;
    void *ptr;
} wl_slot;

static wl_slot *wl__slots;
static uint32_t wl__cap; /* power of two */
static uint32_t wl__used;

static uint32_t wl__hash(uint32_t id) { return (id * 2654435761u); }

static wl_slot *wl__find(uint32_t id) {
    if (!wl__cap) return NULL;
    uint32_t mask = wl__cap - 1;
    for (uint32_t i = wl__hash(id) & mask;; i = (i + 1) & mask) {
        wl_slot *s = &wl__slots[i];
        if (s->kind == WL_SLOT_EMPTY) return NULL;
        if (s->id == id) return s;
    }
}

static int wl__grow(void) {
    uint32_t ncap = wl__cap ? wl__cap * 2 : 64;
    wl_slot *nslots = calloc(ncap, sizeof(wl_slot));
    if (!nslots) return -1;
    for (uint32_t j = 0; j < wl__cap; j++) {
        wl_slot *s = &wl__slots[j];
        if (s->kind == WL_SLOT_EMPTY) continue;
        uint32_t i = wl__hash(s->id) & (ncap - 1);
        while (nslots[i].kind != WL_SLOT_EMPTY) i = (i + 1) & (ncap - 1);
        nslots[i] = *s;
    }
    free(wl__slots);
    wl__slots = nslots;
    wl__cap = ncap;
    return 0;
}

static int wl__insert(uint32_t id, uint32_t kind, void *ptr) {
    wl_slot *s = wl__find(id);
    if (s) {
        s->kind = kind;
        s->ptr = ptr;
        return 0;
    }
    if ((wl__used + 1) * 2 > wl__cap && wl__grow() != 0) return -1;
    uint32_t mask = wl__cap - 1;
    uint32_t i = wl__hash(id) & mask;
    while (wl__slots[i].kind != WL_SLOT_EMPTY) i = (i + 1) & mask;
    wl__slots[i] = (wl_slot){id, kind, ptr};
    wl__used++;
    return 0;
}

static void wl__remove(uint32_t id) {
    wl_slot *s = wl__find(id);
    if (!s) return;
    uint32_t mask = wl__cap - 1;
    uint32_t hole = (uint32_t)(s - wl__slots);
    /* Shift later members of the probe run back so lookups never stop early. */
    for (uint32_t i = (hole + 1) & mask; wl__slots[i].kind != WL_SLOT_EMPTY; i = (i + 1) & mask) {
        uint32_t home = wl__hash(wl__slots[i].id) & mask;
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            wl__slots[hole] = wl__slots[i];
            hole = i;
        }
    }
    wl__slots[hole] = (wl_slot){0, WL_SLOT_EMPTY, NULL};
    wl__used--;
}

static wl_conn *wl__conn(uint32_t id) {
    wl_slot *s = wl__find(id);
    return s && s->kind == WL_SLOT_CONN ? (wl_conn *)s->ptr : NULL;
}

static wl_plugin *wl__plugin(uint32_t id) {
    wl_slot *s = wl__find(id);
    return s && s->kind == WL_SLOT_PLUGIN ? (wl_plugin *)s->ptr : NULL;
}

/* ---- lifecycle exports ------------------------------------------------------ */

static wl_plugin *wl__new_plugin(uint32_t id) {
    wl_plugin *p = calloc(1, sizeof(wl_plugin));
    if (!p) return NULL;
    size_t n = wl_plugin_state_size();
    p->state = n ? calloc(1, n) : NULL;
    if ((n && !p->state) || wl__insert(id, WL_SLOT_PLUGIN, p) != 0) {
        free(p->state);
        free(p);
        return NULL;
    }
    p->context_id = id;
    p->config = "";
    return p;
}

static void wl__free_plugin(wl_plugin *p) {
    wl__batch_free(p); /* sends what it still held */
    if (p->config_len) free((void *)p->config);
    free(p->state);
    free(p);
}

WL_EXPORT(proxy_on_context_create)
void wl__on_context_create(uint32_t id, uint32_t parent_id) {
    if (parent_id == 0) {
        if (!wl__plugin(id)) wl__new_plugin(id);
        return;
    }
    /* Without its plugin a connection has no config or metrics: ignore it. */
    wl_plugin *plugin = wl__plugin(parent_id);
    if (!plugin) return;
    wl_conn *c = calloc(1, sizeof(wl_conn));
    if (!c) return;
    size_t n = wl_conn_state_size();
    c->state = n ? calloc(1, n) : NULL;
    if ((n && !c->state) || wl__insert(id, WL_SLOT_CONN, c) != 0) {
        free(c->state);
        free(c);
        return;
    }
    c->context_id = id;
    c->plugin = plugin;
    c->started_ns = wl_now_ns();
}

WL_EXPORT(proxy_on_vm_start)
uint32_t wl__on_vm_start(uint32_t id, uint32_t vm_config_size) {
    (void)id;
    (void)vm_config_size;
    wl__batch_enter(NULL);
    int ok = wl_on_vm_start();
    wl_batch_flush();
    return ok ? 1 : 0;
}

WL_EXPORT(proxy_on_configure)
uint32_t wl__on_configure(uint32_t id, uint32_t config_size) {
    wl_plugin *p = wl__plugin(id);
    if (!p && !(p = wl__new_plugin(id))) return 0;
    if (p->config_len) free((void *)p->config);
    p->config = "";
    p->config_len = 0;
    if (config_size) {
        uint8_t *ptr = NULL;
        size_t size = 0;
        if (proxy_get_buffer_bytes(WL_BUFFER_PLUGIN_CONFIGURATION, 0, config_size, &ptr, &size) ==
                WL_OK &&
            ptr && size) {
            char *copy = malloc(size + 1);
            if (!copy) {
                free(ptr);
                return 0;
            }
            memcpy(copy, ptr, size);
            copy[size] = '\0';
            free(ptr);
            p->config = copy;
            p->config_len = size;
        }
    }
    wl__batch_enter(p);
    wl_batch_flush(); /* a reconfigure keeps the counts held so far */
    int ok = wl_on_configure(p);
    wl_batch_flush();
    return ok ? 1 : 0;
}

WL_EXPORT(proxy_on_new_connection)
uint32_t wl__on_new_connection(uint32_t id) {
    wl_conn *c = wl__conn(id);
    if (c) {
        wl__batch_enter(c->plugin);
        wl_on_new_connection(c);
        if (!wl__batch_held()) wl_batch_flush();
    }
    return 0; /* CONTINUE */
}

static uint32_t wl__data(uint32_t id, wl_dir dir, uint32_t size, uint32_t eos) {
    wl_conn *c = wl__conn(id);
    if (!c) return 0;
    c->bytes[dir] += size;
    wl_read r = {0};
    r.dir = dir;
    r.size = size;
    r.end_of_stream = (int)eos;
    wl__batch_enter(c->plugin);
    wl_on_data(c, &r);
    if (!wl__batch_held()) wl_batch_flush();
    return 0; /* CONTINUE: filters never hold traffic */
}

WL_EXPORT(proxy_on_downstream_data)
uint32_t wl__on_downstream_data(uint32_t id, uint32_t size, uint32_t eos) {
    return wl__data(id, WL_DIR_CLIENT, size, eos);
}

WL_EXPORT(proxy_on_upstream_data)
uint32_t wl__on_upstream_data(uint32_t id, uint32_t size, uint32_t eos) {
    return wl__data(id, WL_DIR_SERVER, size, eos);
}

static void wl__close(uint32_t id, wl_dir side, uint32_t peer) {
    wl_conn *c = wl__conn(id);
    if (!c) return;
    c->closed[side] = 1;
    wl__batch_enter(c->plugin);
    wl_on_close(c, side, (wl_peer)peer);
    wl_batch_flush();
}

WL_EXPORT(proxy_on_downstream_connection_close)
void wl__on_downstream_close(uint32_t id, uint32_t peer) { wl__close(id, WL_DIR_CLIENT, peer); }

WL_EXPORT(proxy_on_upstream_connection_close)
void wl__on_upstream_close(uint32_t id, uint32_t peer) { wl__close(id, WL_DIR_SERVER, peer); }

static void wl__end(wl_conn *c) {
    if (c->ended) return;
    c->ended = 1;
    wl__batch_enter(c->plugin);
    wl_on_connection_end(c);
    wl_batch_flush();
}

WL_EXPORT(proxy_on_done)
uint32_t wl__on_done(uint32_t id) {
    wl_conn *c = wl__conn(id);
    if (c) wl__end(c);
    return 1; /* nothing pending: the host may finalise */
}

WL_EXPORT(proxy_on_log) void wl__on_log(uint32_t id) { (void)id; }

WL_EXPORT(proxy_on_delete)
void wl__on_delete(uint32_t id) {
    wl_slot *s = wl__find(id);
    if (!s) return;
    if (s->kind == WL_SLOT_CONN) {
        wl_conn *c = (wl_conn *)s->ptr;
        wl__end(c); /* a host that skips on_done still ends the connection once */
        wl__remove(id);
        free(c->state);
        free(c);
    } else {
        wl_plugin *p = (wl_plugin *)s->ptr;
        wl__remove(id);
        wl__free_plugin(p);
    }
}

WL_EXPORT(proxy_on_tick)
void wl__on_tick(uint32_t id) {
    wl_plugin *p = wl__plugin(id);
    if (!p) return;
    wl__batch_enter(p);
    wl_on_tick(p);
    wl_batch_flush();
}
