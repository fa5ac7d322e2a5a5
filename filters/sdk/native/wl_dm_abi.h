/* The part of Envoy 1.40's dynamic-modules ABI that the native backend uses,
 * declared here from the facts of the ABI (names read from the binary,
 * shapes from Envoy's abi.h). Envoy never checks signatures, only names, so
 * tests/unit/test_native_abi.py checks every callback named here against the
 * `nm -D` list of the pinned Envoy binary, and the native e2e tests exercise
 * each one in a running Envoy.
 *
 * Pointers Envoy hands out ("envoy ptr") are opaque; pointers the module
 * hands back ("module ptr") are ours. */
#ifndef WIRELAB_WL_DM_ABI_H
#define WIRELAB_WL_DM_ABI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The ABI version string Envoy 1.40 expects from program_init. */
#define WL_DM_ABI_VERSION "v0.2.0"

/* {pointer, length} pairs: Envoy-owned bytes (valid for the call or hook
 * that produced them) and module-owned bytes passed to Envoy. */
typedef struct {
    const char *ptr;
    size_t length;
} wl_dm_envoy_buffer;

typedef struct {
    const char *ptr;
    size_t length;
} wl_dm_module_buffer;

/* on_network_filter_{new_connection,read,write} results. */
enum { WL_DM_CONTINUE = 0, WL_DM_STOP_ITERATION = 1 };

/* on_network_filter_event's connection events. */
enum {
    WL_DM_EVENT_REMOTE_CLOSE = 0,
    WL_DM_EVENT_LOCAL_CLOSE = 1,
    WL_DM_EVENT_CONNECTED = 2,
    WL_DM_EVENT_CONNECTED_ZERO_RTT = 3
};

/* Envoy's log levels (spdlog's order); the same numbers as wl_log_level. */
enum { WL_DM_LOG_TRACE = 0, WL_DM_LOG_CRITICAL = 5 };

/* envoy_dynamic_module_type_metrics_result: 0 is success. */
typedef int wl_dm_metrics_result;

/* ---- hooks the module exports (all required unless marked optional) ------- */
#define WL_DM_EXPORT __attribute__((visibility("default")))

WL_DM_EXPORT const char *envoy_dynamic_module_on_program_init(void);
WL_DM_EXPORT void *envoy_dynamic_module_on_network_filter_config_new(void *config_envoy,
                                                                     wl_dm_envoy_buffer name,
                                                                     wl_dm_envoy_buffer config);
WL_DM_EXPORT void envoy_dynamic_module_on_network_filter_config_destroy(void *config_module);
WL_DM_EXPORT void *envoy_dynamic_module_on_network_filter_new(void *config_module,
                                                              void *filter_envoy);
WL_DM_EXPORT int envoy_dynamic_module_on_network_filter_new_connection(void *filter_envoy,
                                                                       void *filter_module);
WL_DM_EXPORT int envoy_dynamic_module_on_network_filter_read(void *filter_envoy, void *filter_module,
                                                             size_t data_length, bool end_stream);
WL_DM_EXPORT int envoy_dynamic_module_on_network_filter_write(void *filter_envoy,
                                                              void *filter_module,
                                                              size_t data_length, bool end_stream);
WL_DM_EXPORT void envoy_dynamic_module_on_network_filter_event(void *filter_envoy,
                                                               void *filter_module, int event);
WL_DM_EXPORT void envoy_dynamic_module_on_network_filter_destroy(void *filter_module);
/* optional: a scheduler_commit'ed event, run on the connection's worker */
WL_DM_EXPORT void envoy_dynamic_module_on_network_filter_scheduled(void *filter_envoy,
                                                                   void *filter_module,
                                                                   uint64_t event_id);

/* ---- callbacks Envoy exports --------------------------------------------- */

/* logging */
void envoy_dynamic_module_callback_log(int level, wl_dm_module_buffer message);
bool envoy_dynamic_module_callback_log_enabled(int level);

/* the server's worker count; main thread only */
uint32_t envoy_dynamic_module_callback_get_concurrency(void);

/* the bytes of the read (or write) being delivered: total size, number of
 * chunks, and the chunks themselves, pointing into Envoy's buffer */
size_t envoy_dynamic_module_callback_network_filter_get_read_buffer_size(void *filter_envoy);
size_t envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks_size(void *filter_envoy);
bool envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks(void *filter_envoy,
                                                                         wl_dm_envoy_buffer *out);
size_t envoy_dynamic_module_callback_network_filter_get_write_buffer_size(void *filter_envoy);
size_t envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks_size(void *filter_envoy);
bool envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks(void *filter_envoy,
                                                                          wl_dm_envoy_buffer *out);

/* connection facts */
uint64_t envoy_dynamic_module_callback_network_filter_get_connection_id(void *filter_envoy);
bool envoy_dynamic_module_callback_network_filter_get_remote_address(void *filter_envoy,
                                                                     wl_dm_envoy_buffer *address,
                                                                     uint32_t *port);
bool envoy_dynamic_module_callback_network_filter_get_local_address(void *filter_envoy,
                                                                    wl_dm_envoy_buffer *address,
                                                                    uint32_t *port);
bool envoy_dynamic_module_callback_network_filter_is_ssl(void *filter_envoy);
bool envoy_dynamic_module_callback_network_filter_get_requested_server_name(void *filter_envoy,
                                                                            wl_dm_envoy_buffer *out);
bool envoy_dynamic_module_callback_network_filter_get_ssl_subject(void *filter_envoy,
                                                                  wl_dm_envoy_buffer *out);
uint32_t envoy_dynamic_module_callback_network_filter_get_worker_index(void *filter_envoy);

/* metrics: defined on a filter config, updated through it from any thread */
wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_define_counter(
    void *config_envoy, wl_dm_module_buffer name, size_t *id);
wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_define_gauge(
    void *config_envoy, wl_dm_module_buffer name, size_t *id);
wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_define_histogram(
    void *config_envoy, wl_dm_module_buffer name, size_t *id);
wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_increment_counter(
    void *config_envoy, size_t id, uint64_t value);
wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_increment_gauge(
    void *config_envoy, size_t id, uint64_t value);
wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_decrement_gauge(
    void *config_envoy, size_t id, uint64_t value);
wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_set_gauge(
    void *config_envoy, size_t id, uint64_t value);
wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_record_histogram_value(
    void *config_envoy, size_t id, uint64_t value);

/* a per-connection scheduler: commit() (any thread) makes Envoy call
 * on_network_filter_scheduled on the connection's worker, unless the
 * connection is gone by then */
void *envoy_dynamic_module_callback_network_filter_scheduler_new(void *filter_envoy);
void envoy_dynamic_module_callback_network_filter_scheduler_delete(void *scheduler);
void envoy_dynamic_module_callback_network_filter_scheduler_commit(void *scheduler,
                                                                   uint64_t event_id);

#endif
