/* The Envoy dynamic-module hooks: lifecycle dispatch to the wl_on_* hooks,
 * per-worker plugins, zero-copy reads and the tick.
 *
 * Envoy creates a filter config once, on its main thread, and shares it with
 * every worker. The SDK turns it into one wl_plugin per worker (configured on
 * the main thread, before any worker sees it), so each worker mutates only its
 * own plugin state and metric batch, as each worker's VM does in Wasm. */
/* clock_gettime, pthread_*: POSIX, also when a project builds with -std=c11 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wl_native.h"


WL_DM_TLS wl_dm_config *wl__dm_cfg;
WL_DM_TLS void *wl__dm_filter;
WL_DM_TLS wl_plugin *wl__dm_plugin;

void wl__batch_enter(wl_plugin *p);
extern int wl__dm_configuring; /* wl_native_metrics.c */
int wl__batch_held(void);
void wl__batch_free(wl_plugin *p);

/* ---- program and config ------------------------------------------------------ */

const char *envoy_dynamic_module_on_program_init(void) { return WL_DM_ABI_VERSION; }

static int wl__vm_started; /* main thread only */

void wl__stop_ticker(wl_dm_config *cfg);

static void wl__free_config(wl_dm_config *cfg) {
    for (uint32_t i = 0; i < cfg->n_workers; i++) {
        wl_dm_worker *w = &cfg->workers[i];
        wl__dm_cfg = cfg;
        wl__batch_free(&w->plugin); /* sends what it still held */
        free(w->plugin.state);
        free(w->window);
        pthread_mutex_destroy(&w->mu);
    }
    wl__dm_cfg = NULL;
    pthread_mutex_destroy(&cfg->tick_mu);
    pthread_cond_destroy(&cfg->tick_cv);
    free(cfg->workers);
    free(cfg->config);
    free(cfg);
}

void *envoy_dynamic_module_on_network_filter_config_new(void *config_envoy, wl_dm_envoy_buffer name,
                                                        wl_dm_envoy_buffer config) {
    (void)name;
    if (!wl__vm_started) {
        wl__batch_enter(NULL);
        if (!wl_on_vm_start()) return NULL;
        wl__vm_started = 1;
    }
    wl_dm_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return NULL;
    cfg->envoy = config_envoy;
    pthread_mutex_init(&cfg->tick_mu, NULL);
    pthread_cond_init(&cfg->tick_cv, NULL);
    cfg->config = malloc(config.length + 1);
    uint32_t n = envoy_dynamic_module_callback_get_concurrency();
    cfg->n_workers = n ? n : 1;
    cfg->workers = calloc(cfg->n_workers, sizeof(wl_dm_worker));
    if (!cfg->config || !cfg->workers) {
        free(cfg->config);
        free(cfg->workers);
        free(cfg);
        return NULL;
    }
    if (config.length) memcpy(cfg->config, config.ptr, config.length);
    cfg->config[config.length] = '\0';
    cfg->config_len = config.length;
    size_t state_size = wl_plugin_state_size();
    int ok = 1;
    uint32_t made = 0;
    for (; made < cfg->n_workers && ok; made++) {
        wl_dm_worker *w = &cfg->workers[made];
        pthread_mutex_init(&w->mu, NULL);
        w->cfg = cfg;
        w->plugin.context_id = made + 1;
        w->plugin.host = w;
        w->plugin.config = cfg->config;
        w->plugin.config_len = cfg->config_len;
        w->plugin.state = state_size ? calloc(1, state_size) : NULL;
        w->window = malloc(2 * (size_t)WL_WINDOW_SIZE);
        wl__batch_enter(&w->plugin); /* allocates the plugin's batch, here rather than on a worker */
        if ((state_size && !w->plugin.state) || !w->window || !w->plugin.batch) {
            ok = 0;
            made++; /* freed with the others */
            break;
        }
        wl__dm_cfg = cfg;
        wl__dm_plugin = &w->plugin;
        wl__dm_configuring = 1;
        ok = wl_on_configure(&w->plugin);
        wl__dm_configuring = 0;
        wl_batch_flush();
    }
    wl__dm_cfg = NULL;
    wl__dm_plugin = NULL;
    if (!ok) {
        cfg->n_workers = made; /* the workers initialised so far */
        wl__stop_ticker(cfg);
        wl__free_config(cfg);
        return NULL;
    }
    return cfg;
}

void wl__stop_ticker(wl_dm_config *cfg) {
    pthread_mutex_lock(&cfg->tick_mu);
    int running = cfg->ticker_running;
    cfg->ticker_stop = 1;
    pthread_cond_broadcast(&cfg->tick_cv);
    pthread_mutex_unlock(&cfg->tick_mu);
    if (running) pthread_join(cfg->ticker, NULL);
}

void envoy_dynamic_module_on_network_filter_config_destroy(void *config_module) {
    wl_dm_config *cfg = config_module;
    if (!cfg) return;
    wl__stop_ticker(cfg);
    wl__free_config(cfg);
}

/* ---- the tick ------------------------------------------------------------------
 * Envoy has no timer for network filters, only schedulers that run an event on
 * a connection's worker. A thread per ticking config wakes every period and
 * commits one event through a live connection of each worker (its "anchor");
 * the worker then runs wl_on_tick and sends its held batch. A worker with no
 * live connection has nothing held (closing flushes), so it is not ticked. */

static void *wl__ticker_main(void *arg) {
    wl_dm_config *cfg = arg;
    pthread_mutex_lock(&cfg->tick_mu);
    while (!cfg->ticker_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)cfg->tick_ms * 1000000u;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        int rc = 0;
        while (!cfg->ticker_stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&cfg->tick_cv, &cfg->tick_mu, &until);
        if (cfg->ticker_stop) break;
        pthread_mutex_unlock(&cfg->tick_mu);
        for (uint32_t i = 0; i < cfg->n_workers; i++) {
            wl_dm_worker *w = &cfg->workers[i];
            pthread_mutex_lock(&w->mu);
            if (w->tick_ms && w->sched && !w->tick_pending) {
                w->tick_pending = 1;
                envoy_dynamic_module_callback_network_filter_scheduler_commit(w->sched, 1);
            }
            pthread_mutex_unlock(&w->mu);
        }
        pthread_mutex_lock(&cfg->tick_mu);
    }
    pthread_mutex_unlock(&cfg->tick_mu);
    return NULL;
}

void wl__dm_set_tick(wl_dm_worker *w, uint32_t period_ms) {
    wl_dm_config *cfg = w->cfg;
    w->tick_ms = period_ms;
    if (!period_ms) return;
    pthread_mutex_lock(&cfg->tick_mu);
    if (!cfg->tick_ms || period_ms < cfg->tick_ms) cfg->tick_ms = period_ms;
    if (!cfg->ticker_running && !cfg->ticker_stop &&
        pthread_create(&cfg->ticker, NULL, wl__ticker_main, cfg) == 0)
        cfg->ticker_running = 1;
    pthread_cond_broadcast(&cfg->tick_cv);
    pthread_mutex_unlock(&cfg->tick_mu);
}

/* Ticks belong to the plugin of the current callback: the worker's, or,
 * during wl_on_configure, the worker being configured. */
void wl_set_tick_ms(uint32_t period_ms) {
    if (wl__dm_plugin) wl__dm_set_tick((wl_dm_worker *)wl__dm_plugin->host, period_ms);
}

/* ---- connections ------------------------------------------------------------------ */

/* Every hook on a connection starts here: the thread's current config,
 * connection and plugin, and the plugin's batch. */
static wl_plugin *wl__enter(wl_dm_conn *c, void *filter_envoy) {
    if (!c || !c->worker) return NULL;
    wl__dm_cfg = c->worker->cfg;
    wl__dm_filter = filter_envoy;
    wl__dm_plugin = &c->worker->plugin;
    wl__batch_enter(wl__dm_plugin);
    return wl__dm_plugin;
}

static void wl__leave(int flush) {
    if (flush || !wl__batch_held()) wl_batch_flush();
    wl__dm_filter = NULL;
    wl__dm_plugin = NULL;
}

static void wl__adopt_anchor(wl_dm_worker *w, wl_dm_conn *c) {
    if (!w->tick_ms) return;
    void *s = envoy_dynamic_module_callback_network_filter_scheduler_new(c->conn.host);
    if (!s) return;
    pthread_mutex_lock(&w->mu);
    w->sched = s;
    w->anchor = c;
    w->tick_pending = 0;
    pthread_mutex_unlock(&w->mu);
}

void *envoy_dynamic_module_on_network_filter_new(void *config_module, void *filter_envoy) {
    wl_dm_config *cfg = config_module;
    wl_dm_conn *c = calloc(1, sizeof *c);
    if (!c) return NULL; /* out of memory: Envoy closes the connection */
    c->conn.host = filter_envoy;
    uint32_t idx = envoy_dynamic_module_callback_network_filter_get_worker_index(filter_envoy);
    if (idx >= cfg->n_workers) {
        /* More workers than Envoy reported at config time: forward unobserved. */
        wl__dm_cfg = cfg;
        wl_log(WL_LOG_ERROR, "wirelab: worker %u outside the %u configured; connection not observed",
               idx, cfg->n_workers);
        wl__dm_cfg = NULL;
        return c;
    }
    wl_dm_worker *w = &cfg->workers[idx];
    c->worker = w;
    size_t n = wl_conn_state_size();
    c->conn.state = n ? calloc(1, n) : NULL;
    if (n && !c->conn.state) {
        c->worker = NULL;
        return c;
    }
    c->conn.context_id = (uint32_t)envoy_dynamic_module_callback_network_filter_get_connection_id(
        filter_envoy);
    c->conn.plugin = &w->plugin;
    c->conn.started_ns = wl_now_ns();
    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    if (!w->anchor) wl__adopt_anchor(w, c);
    return c;
}

int envoy_dynamic_module_on_network_filter_new_connection(void *filter_envoy, void *filter_module) {
    wl_dm_conn *c = filter_module;
    if (wl__enter(c, filter_envoy)) {
        wl_on_new_connection(&c->conn);
        wl__leave(0);
    }
    return WL_DM_CONTINUE;
}

/* ---- reads ---------------------------------------------------------------------- */

const uint8_t *wl_read_fetch(void *ctx, size_t off, size_t want, size_t *got) {
    static const uint8_t nothing[1];
    wl_read *r = (wl_read *)ctx;
    uint8_t *win = r->gather;
    const wl_dm_envoy_buffer *ch = r->chunks;
    *got = 0;
    if (off >= r->size || !ch || !win) return nothing;
    if (want > r->size - off) want = r->size - off;
    if (want > WL_WINDOW_SIZE) want = WL_WINDOW_SIZE;
    /* Decoders move forward: continue from the chunk of the last fetch. */
    if (off < r->at_base) {
        r->at_chunk = 0;
        r->at_base = 0;
    }
    while (r->at_chunk < r->n_chunks && off >= r->at_base + ch[r->at_chunk].length) {
        r->at_base += ch[r->at_chunk].length;
        r->at_chunk++;
    }
    if (r->at_chunk >= r->n_chunks) return nothing;
    size_t in = off - r->at_base;
    const wl_dm_envoy_buffer *c = &ch[r->at_chunk];
    if (in + want <= c->length) { /* the common case: no copy at all */
        *got = want;
        return (const uint8_t *)c->ptr + in;
    }
    /* The range spans chunks: gather it into the window. */
    size_t done = 0;
    for (size_t i = r->at_chunk; i < r->n_chunks && done < want; i++) {
        size_t from = i == r->at_chunk ? in : 0;
        size_t take = ch[i].length - from;
        if (take > want - done) take = want - done;
        memcpy(win + done, ch[i].ptr + from, take);
        done += take;
    }
    *got = done;
    return win;
}

enum { WL_DM_STACK_CHUNKS = 16 };

static int wl__data(void *filter_envoy, wl_dm_conn *c, wl_dir dir, size_t size, bool eos) {
    if (!wl__enter(c, filter_envoy)) return WL_DM_CONTINUE;
    /* Between two reads of a connection the caches forget its state. Ask for
     * the heads of the connection's and the plugin's state now: the lines
     * arrive while Envoy answers the two chunk calls below. */
    if (c->conn.state) {
        __builtin_prefetch(c->conn.state, 1);
        __builtin_prefetch((const char *)c->conn.state + 64, 1);
    }
    if (c->worker->plugin.state) {
        __builtin_prefetch(c->worker->plugin.state);
        __builtin_prefetch((const char *)c->worker->plugin.state + 64);
    }
    c->conn.bytes[dir] += size;
    wl_dm_envoy_buffer stack[WL_DM_STACK_CHUNKS];
    wl_dm_envoy_buffer *chunks = stack;
    size_t n = dir == WL_DIR_CLIENT
                   ? envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks_size(filter_envoy)
                   : envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks_size(filter_envoy);
    if (n > WL_DM_STACK_CHUNKS && !(chunks = malloc(n * sizeof *chunks))) n = 0;
    int ok = n && (dir == WL_DIR_CLIENT
                       ? envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks(filter_envoy,
                                                                                             chunks)
                       : envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks(filter_envoy,
                                                                                              chunks));
    wl_read r = {0};
    r.dir = dir;
    r.size = size;
    r.end_of_stream = eos;
    r.chunks = ok ? chunks : NULL;
    r.n_chunks = ok ? n : 0;
    r.gather = c->worker->window + (dir == WL_DIR_SERVER ? WL_WINDOW_SIZE : 0);
    wl_on_data(&c->conn, &r);
    if (chunks != stack) free(chunks);
    wl__leave(0);
    return WL_DM_CONTINUE; /* filters never hold traffic */
}

int envoy_dynamic_module_on_network_filter_read(void *filter_envoy, void *filter_module,
                                                size_t data_length, bool end_stream) {
    return wl__data(filter_envoy, filter_module, WL_DIR_CLIENT, data_length, end_stream);
}

int envoy_dynamic_module_on_network_filter_write(void *filter_envoy, void *filter_module,
                                                 size_t data_length, bool end_stream) {
    return wl__data(filter_envoy, filter_module, WL_DIR_SERVER, data_length, end_stream);
}

/* ---- close, end, scheduled ---------------------------------------------------------- */

void envoy_dynamic_module_on_network_filter_event(void *filter_envoy, void *filter_module, int event) {
    wl_dm_conn *c = filter_module;
    if (event != WL_DM_EVENT_REMOTE_CLOSE && event != WL_DM_EVENT_LOCAL_CLOSE) return;
    if (!wl__enter(c, filter_envoy)) return;
    /* Envoy reports the downstream connection's events to a network filter. */
    c->conn.closed[WL_DIR_CLIENT] = 1;
    wl_on_close(&c->conn, WL_DIR_CLIENT,
                event == WL_DM_EVENT_REMOTE_CLOSE ? WL_PEER_REMOTE : WL_PEER_LOCAL);
    wl__leave(1);
}

void envoy_dynamic_module_on_network_filter_scheduled(void *filter_envoy, void *filter_module,
                                                      uint64_t event_id) {
    (void)event_id;
    wl_dm_conn *c = filter_module;
    if (!c || !c->worker) return;
    wl_dm_worker *w = c->worker;
    pthread_mutex_lock(&w->mu);
    w->tick_pending = 0;
    pthread_mutex_unlock(&w->mu);
    if (!wl__enter(c, filter_envoy)) return;
    wl__dm_filter = NULL; /* a tick belongs to the plugin, not to this connection */
    wl_on_tick(&w->plugin);
    wl__leave(1);
}

void envoy_dynamic_module_on_network_filter_destroy(void *filter_module) {
    wl_dm_conn *c = filter_module;
    if (!c) return;
    wl_dm_worker *w = c->worker;
    if (w) {
        if (!c->conn.ended && wl__enter(c, c->conn.host)) {
            c->conn.ended = 1;
            wl_on_connection_end(&c->conn);
            wl__leave(1);
        }
        if (c->prev) c->prev->next = c->next;
        else w->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        if (w->anchor == c) {
            pthread_mutex_lock(&w->mu);
            void *old = w->sched;
            w->sched = NULL;
            w->anchor = NULL;
            w->tick_pending = 0;
            pthread_mutex_unlock(&w->mu);
            if (old) envoy_dynamic_module_callback_network_filter_scheduler_delete(old);
            if (w->conns) wl__adopt_anchor(w, w->conns);
        }
    }
    wl__dm_cfg = NULL;
    free(c->conn.state);
    free(c);
}
