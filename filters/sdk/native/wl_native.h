/* Shared by the native backend's files: one filter config, its per-worker
 * plugins, one connection, and the thread-local "current" pointers that let
 * the host-agnostic wl_* services find Envoy's objects. */
#ifndef WIRELAB_WL_NATIVE_H
#define WIRELAB_WL_NATIVE_H

#include <pthread.h>

#include "wirelab_filter.h"
#include "wl_dm_abi.h"

typedef struct wl_dm_conn wl_dm_conn;

/* Per-thread "current" pointers use the initial-exec model: one load from the
 * thread pointer instead of a __tls_get_addr call on every access (several
 * per read). Envoy has room for these few bytes in its static TLS block;
 * large per-thread buffers live in the worker instead. */
#define WL_DM_TLS _Thread_local __attribute__((tls_model("initial-exec")))
typedef struct wl_dm_config wl_dm_config;

/* One worker's share of a filter config. Only that worker's thread touches
 * `plugin` and `conns`; the ticker thread reads `sched` under `mu`. */
typedef struct wl_dm_worker {
    wl_plugin plugin;
    wl_dm_config *cfg;
    wl_dm_conn *conns;    /* live connections on this worker (intrusive list) */
    pthread_mutex_t mu;   /* guards sched, anchor, tick_pending */
    void *sched;          /* Envoy scheduler of one live connection: the tick's door */
    wl_dm_conn *anchor;   /* the connection that owns sched */
    int tick_pending;
    uint32_t tick_ms;
    uint8_t *window;      /* 2 x WL_WINDOW_SIZE: wl_read_fetch's gather space, per direction */
} wl_dm_worker;

struct wl_dm_config {
    void *envoy;          /* Envoy's DynamicModuleNetworkFilterConfig */
    uint32_t n_workers;
    wl_dm_worker *workers;
    char *config;         /* plugin configuration, NUL-terminated, shared read-only */
    size_t config_len;
    /* the tick thread, started by the first wl_set_tick_ms */
    pthread_mutex_t tick_mu;
    pthread_cond_t tick_cv;
    pthread_t ticker;
    int ticker_running;
    int ticker_stop;
    uint32_t tick_ms;     /* smallest period any worker asked for */
};

struct wl_dm_conn {
    wl_conn conn;
    wl_dm_worker *worker; /* NULL: the worker index was out of range; unobserved */
    wl_dm_conn *prev, *next;
};

/* The config and connection the current callback on this thread runs for. */
extern WL_DM_TLS wl_dm_config *wl__dm_cfg;
extern WL_DM_TLS void *wl__dm_filter;
extern WL_DM_TLS wl_plugin *wl__dm_plugin;

/* wl_native_runtime.c: starts/retunes the tick thread of a config. */
void wl__dm_set_tick(wl_dm_worker *w, uint32_t period_ms);

#endif
