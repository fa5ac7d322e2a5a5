/* wirelab C SDK for Envoy network (L4) filters: one source, two targets.
 *
 * A filter built with --target=wasm32-wasi is a proxy-wasm v0.2.1 module (the
 * backend in wasm/); built for the host it is an Envoy dynamic module (the
 * backend in native/). The SDK owns every host entry point of both. A filter
 * implements only the wl_on_* hooks it needs (the rest have weak defaults) and declares its state types
 * with WL_PLUGIN_STATE(type) and WL_CONN_STATE(type). Filters observe traffic and never
 * pause or modify it: every data callback returns CONTINUE to the host.
 *
 * Lifecycle, as Envoy drives it:
 *   wl_on_vm_start()                          once per VM (one VM per worker);
 *                                             native: once per process
 *   wl_on_configure(plugin)                   per plugin instance and worker
 *                                             (see "Threading"); read config,
 *                                             define metrics, keep their ids
 *   wl_on_new_connection(conn)                per downstream connection
 *   wl_on_data(conn, read)                    per read, either direction
 *   wl_on_close(conn, dir, peer)              a side closed
 *   wl_on_connection_end(conn)                once, before conn state is freed
 *   wl_on_tick(plugin)                        after wl_set_tick_ms(period)
 *
 * Metric updates made with wl_batch_add() inside a callback are flushed once,
 * as one host call per metric, when the callback returns.
 *
 * Threading: both targets give every Envoy worker its own wl_plugin (state,
 * metric batch, tick), so a plugin's state is only ever touched by the thread
 * that owns it and needs no locks. Wasm gets this from one VM per worker; the
 * native backend runs wl_on_configure once per worker on Envoy's main thread
 * (with the same configuration) and hands each connection the plugin of the
 * worker it runs on. Globals in a filter are per worker in Wasm but shared by
 * all workers natively: keep mutable data in the plugin or connection state. */
#ifndef WIRELAB_FILTER_H
#define WIRELAB_FILTER_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    WL_OK = 0,
    WL_NOT_FOUND = 1,
    WL_BAD_ARGUMENT = 2,
    WL_SERIALIZATION_FAILURE = 3,
    WL_PARSE_FAILURE = 4,
    WL_INVALID_MEMORY_ACCESS = 6,
    WL_EMPTY = 7,
    WL_CAS_MISMATCH = 8,
    WL_INTERNAL_FAILURE = 10,
    WL_UNIMPLEMENTED = 12
} wl_status;

typedef enum {
    WL_LOG_TRACE = 0,
    WL_LOG_DEBUG = 1,
    WL_LOG_INFO = 2,
    WL_LOG_WARN = 3,
    WL_LOG_ERROR = 4,
    WL_LOG_CRITICAL = 5
} wl_log_level;

typedef enum {
    WL_BUFFER_DOWNSTREAM_DATA = 2,
    WL_BUFFER_UPSTREAM_DATA = 3,
    WL_BUFFER_VM_CONFIGURATION = 6,
    WL_BUFFER_PLUGIN_CONFIGURATION = 7
} wl_buffer_type;

typedef enum { WL_PEER_UNKNOWN = 0, WL_PEER_LOCAL = 1, WL_PEER_REMOTE = 2 } wl_peer;

typedef enum { WL_COUNTER = 0, WL_GAUGE = 1, WL_HISTOGRAM = 2 } wl_metric_type;

/* Which backend this translation unit is compiled for. WL_PROXY_WASM_ON_HOST
 * compiles the proxy-wasm backend for the host against a stand-in Envoy (the
 * Lua runtime's fuzz target, tests/fuzz/fuzz_lua.c). */
#if defined(__wasm__) || defined(WL_PROXY_WASM_ON_HOST)
#define WL_TARGET_WASM 1
#include "wasm/wl_abi.h" /* proxy-wasm imports, for code that needs them directly */
#else
#define WL_TARGET_NATIVE 1
#endif

/* Bytes per direction of the static read window (one ranged read). */
#ifndef WL_WINDOW_SIZE
#define WL_WINDOW_SIZE 8192
#endif

/* ---- contexts ------------------------------------------------------------ */

/* One plugin instance (root context). Several can share a VM when the same
 * filter is configured twice, so per-instance settings live here, not in
 * globals. */
typedef struct wl_plugin {
    uint32_t context_id;    /* Wasm: the root context id; native: worker index + 1 */
    void *state;        /* zeroed WL_PLUGIN_STATE type, or NULL */
    const char *config; /* plugin configuration bytes, NUL-terminated ("" if none) */
    size_t config_len;
    struct wl_batch *batch; /* the SDK's: this plugin's metric batch */
    void *host;             /* the backend's (native: its per-worker record) */
} wl_plugin;

/* One downstream connection (stream context). */
typedef struct wl_conn {
    uint32_t context_id;
    wl_plugin *plugin;      /* never NULL */
    void *state;            /* zeroed WL_CONN_STATE type, or NULL */
    uint64_t started_ns;    /* wl_now_ns() when the connection was created */
    uint64_t bytes[2];      /* bytes seen so far, indexed by wl_dir */
    uint8_t closed[2];      /* a close was reported for that side */
    uint8_t ended;          /* wl_on_connection_end already ran */
    void *host;             /* the backend's (native: Envoy's filter pointer) */
} wl_conn;

/* One read handed to wl_on_data. Pass it as the fetch_ctx of wl_read_fetch. */
typedef struct wl_read {
    wl_dir dir;         /* WL_DIR_CLIENT: downstream data, WL_DIR_SERVER: upstream */
    size_t size;        /* bytes in this read */
    int end_of_stream;
    /* window cache, managed by wl_read_fetch */
    size_t win_off;
    size_t win_len;
    /* native backend: Envoy's chunks of this read, walked by wl_read_fetch */
    const void *chunks;
    size_t n_chunks;
    size_t at_chunk;  /* chunk holding the last fetched offset */
    size_t at_base;   /* read offset where chunk at_chunk starts */
    size_t skip;      /* bytes of the buffer before this read (already seen) */
    void *gather;     /* native backend: WL_WINDOW_SIZE bytes for ranges that span chunks */
} wl_read;

/* Declare the state types (at file scope, once each); the SDK allocates
 * them zeroed for every plugin instance / connection and frees them. */
#define WL_PLUGIN_STATE(type) \
    size_t wl_plugin_state_size(void) { return sizeof(type); }
#define WL_CONN_STATE(type) \
    size_t wl_conn_state_size(void) { return sizeof(type); }

/* ---- hooks (all optional; weak defaults do nothing and accept) ----------- */

int wl_on_vm_start(void);                 /* return 0 to refuse the VM */
int wl_on_configure(wl_plugin *plugin);   /* return 0 to refuse the config */
void wl_on_new_connection(wl_conn *conn);
void wl_on_data(wl_conn *conn, wl_read *read);
void wl_on_close(wl_conn *conn, wl_dir side, wl_peer peer);
void wl_on_connection_end(wl_conn *conn);
void wl_on_tick(wl_plugin *plugin);

size_t wl_plugin_state_size(void);
size_t wl_conn_state_size(void);

/* ---- reading the data buffers -------------------------------------------- */

/* Returns bytes [off, off+want) of the current read (want is capped at
 * WL_WINDOW_SIZE); *got says how many are there. Wasm: copied into the
 * direction's static window, and a range already in the window costs no host
 * call. Native: a pointer straight into Envoy's buffer chunk, copied into the
 * window only when the range spans two chunks. Matches wl_fetch_fn; fetch_ctx
 * is the wl_read*. Valid until the next fetch on the same direction and never
 * after the callback returns. */
const uint8_t *wl_read_fetch(void *read, size_t off, size_t want, size_t *got);

/* Ranged read of any buffer into the window of `dir`; NULL when empty.
 * Wasm only (the native backend returns NULL). */
const uint8_t *wl_buffer_window(uint32_t buffer_type, wl_dir dir, size_t start, size_t want,
                                size_t *got);

/* ---- metrics -------------------------------------------------------------- */

typedef uint32_t wl_metric;
#define WL_METRIC_INVALID ((wl_metric)0xffffffffu)

/* Define (or look up, by name) a metric; the name is printf-formatted.
 * Returns WL_METRIC_INVALID if the host refuses it. Call at configure time. */
wl_metric wl_counter(const char *name_fmt, ...) __attribute__((format(printf, 1, 2)));
wl_metric wl_gauge(const char *name_fmt, ...) __attribute__((format(printf, 1, 2)));
wl_metric wl_histogram(const char *name_fmt, ...) __attribute__((format(printf, 1, 2)));
wl_metric wl_metric_define(wl_metric_type type, const char *name);

void wl_metric_add(wl_metric id, int64_t delta);   /* counter (delta > 0) or gauge */
void wl_metric_set(wl_metric id, uint64_t value);  /* gauge */
void wl_metric_record(wl_metric id, uint64_t value); /* histogram sample */
uint64_t wl_metric_get(wl_metric id);              /* counter or gauge; 0 on error;
                                                      native: always 0 (Envoy has no getter) */

/* Accumulate a delta; flushed once per metric when the current callback
 * returns (or by wl_batch_flush). Zero net deltas are dropped. */
void wl_batch_add(wl_metric id, int64_t delta);
void wl_batch_flush(void);
/* Call in wl_on_configure. period_ms > 0: this plugin's batch outlives data
 * callbacks and reaches Envoy on its tick every period_ms, when it fills, and
 * when one of its connections closes or ends, so a data or new-connection
 * callback costs no metric host call at all; counts lag by up to period_ms while connections
 * stay open. 0 (the default): flushed after every callback. Starts the tick
 * (wl_set_tick_ms), which wl_on_tick shares. Each plugin instance has its own
 * batch and setting, also when several share a VM. */
void wl_batch_hold_ms(uint32_t period_ms);

/* ---- logging -------------------------------------------------------------- */

void wl_log(wl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void wl_vlog(wl_log_level level, const char *fmt, va_list ap);
#define wl_trace(...) wl_log(WL_LOG_TRACE, __VA_ARGS__)
#define wl_debug(...) wl_log(WL_LOG_DEBUG, __VA_ARGS__)
#define wl_info(...) wl_log(WL_LOG_INFO, __VA_ARGS__)
#define wl_warn(...) wl_log(WL_LOG_WARN, __VA_ARGS__)
#define wl_error(...) wl_log(WL_LOG_ERROR, __VA_ARGS__)

/* ---- properties ------------------------------------------------------------ */

/* `path` is dotted ("source.address"); use wl_property_raw for segments that
 * contain dots. String values are copied NUL-terminated into out; the return
 * is the value length (possibly > cap-1 when truncated) or -1 if absent. */
int wl_property_string(const char *path, char *out, size_t cap);
/* 8-byte little-endian integer properties; returns 0 on success, -1 if absent. */
int wl_property_int(const char *path, int64_t *out);
/* path is NUL-separated segments, path_len bytes; copies up to cap bytes. */
int wl_property_raw(const char *path, size_t path_len, uint8_t *out, size_t cap);

int wl_source_address(char *out, size_t cap);      /* "ip:port" */
int wl_destination_address(char *out, size_t cap);
int64_t wl_source_port(void);                      /* -1 if unknown */
int64_t wl_destination_port(void);
int64_t wl_connection_id(void);                    /* -1 if unknown */
/* 1 when the downstream connection is TLS, 0 when plain, -1 if unknown.
 * Wasm: from connection.tls_version; native: Envoy's is_ssl. */
int wl_connection_tls(void);

/* ---- time ------------------------------------------------------------------ */

uint64_t wl_now_ns(void);   /* monotonic */
uint64_t wl_wall_ns(void);  /* since the Unix epoch */
void wl_set_tick_ms(uint32_t period_ms); /* 0 stops the tick */

/* ---- plugin configuration (a flat JSON object) ----------------------------- */

/* `key` may be dotted to reach into nested objects ("tags.database"). */
int wl_config_string(const wl_plugin *p, const char *key, char *out, size_t cap,
                     const char *dflt);           /* returns strlen(out) */
int64_t wl_config_int(const wl_plugin *p, const char *key, int64_t dflt);
int wl_config_bool(const wl_plugin *p, const char *key, int dflt);

/* The same lookups over any JSON text. Return 0 when found with the right
 * type, -1 otherwise (out untouched). wl_json_string unescapes into out and
 * always NUL-terminates when cap > 0; it fails if the value does not fit or
 * contains \u0000. */
int wl_json_string(const char *json, size_t len, const char *key, char *out, size_t cap);
int wl_json_number(const char *json, size_t len, const char *key, double *out);
int wl_json_int(const char *json, size_t len, const char *key, int64_t *out);
int wl_json_bool(const char *json, size_t len, const char *key, int *out);

/* Replaces every byte outside [A-Za-z0-9_-] with '_' (metric tag values). */
void wl_sanitize_tag(char *s);

#ifdef __cplusplus
}
#endif

#endif
