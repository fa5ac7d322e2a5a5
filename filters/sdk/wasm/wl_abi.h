/* proxy-wasm ABI v0.2.1 as seen from a network filter: the enumerations and
 * the host functions Envoy registers under module "env". Included by
 * wirelab_filter.h when compiling for wasm32 (its enumerations live there);
 * filters normally use the wl_* helpers instead of calling these directly. */
#ifndef WIRELAB_WL_ABI_H
#define WIRELAB_WL_ABI_H

#include <stddef.h>
#include <stdint.h>

#define WL_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))

WL_IMPORT(proxy_log)
uint32_t proxy_log(uint32_t level, const char *msg, size_t msg_size);
WL_IMPORT(proxy_get_log_level)
uint32_t proxy_get_log_level(uint32_t *ret_level);
WL_IMPORT(proxy_get_buffer_bytes)
uint32_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max_size, uint8_t **ret_ptr,
                                size_t *ret_size);
WL_IMPORT(proxy_get_buffer_status)
uint32_t proxy_get_buffer_status(uint32_t type, size_t *ret_size, uint32_t *ret_flags);
WL_IMPORT(proxy_define_metric)
uint32_t proxy_define_metric(uint32_t type, const char *name, size_t name_size, uint32_t *ret_id);
WL_IMPORT(proxy_increment_metric)
uint32_t proxy_increment_metric(uint32_t id, int64_t delta);
WL_IMPORT(proxy_record_metric)
uint32_t proxy_record_metric(uint32_t id, uint64_t value);
WL_IMPORT(proxy_get_metric)
uint32_t proxy_get_metric(uint32_t id, uint64_t *ret_value);
WL_IMPORT(proxy_get_property)
uint32_t proxy_get_property(const char *path, size_t path_size, uint8_t **ret_ptr,
                            size_t *ret_size);
WL_IMPORT(proxy_set_tick_period_milliseconds)
uint32_t proxy_set_tick_period_milliseconds(uint32_t period_ms);
WL_IMPORT(proxy_set_effective_context)
uint32_t proxy_set_effective_context(uint32_t context_id);

#endif
