/* Metrics on the native backend.
 *
 * Envoy keeps a filter config's metrics in vectors indexed by id; defining
 * one appends to the vector, updating one indexes it. Envoy 1.40 accepts
 * definitions only while config_new runs (afterwards define_* answers Frozen,
 * and Envoy's own code relies on that: its vectors are not locked). So this
 * backend defines only then, on the main thread, before any worker sees the
 * config, and updates need no lock: a tagged metric a filter would define
 * lazily on a worker is refused here, with the reason logged.
 *
 * A wl_metric carries its type in the top two bits: Envoy numbers counters,
 * gauges and histograms separately and has a different call for each. */
#include <string.h>

#include "wl_native.h"

#define WL_DM_TYPE_SHIFT 30
#define WL_DM_INDEX_MASK ((1u << WL_DM_TYPE_SHIFT) - 1)

/* Set by wl_native_runtime.c while config_new runs (main thread only). */
int wl__dm_configuring;

wl_metric wl_metric_define(wl_metric_type type, const char *name) {
    wl_dm_config *cfg = wl__dm_cfg;
    if (!cfg) return WL_METRIC_INVALID;
    if (!wl__dm_configuring) {
        wl_log(WL_LOG_ERROR, "wirelab: Envoy refused metric %s: a native module defines "
               "metrics only while its configuration loads", name);
        return WL_METRIC_INVALID;
    }
    wl_dm_module_buffer n = {name, strlen(name)};
    size_t id = 0;
    wl_dm_metrics_result rc;
    switch (type) {
    case WL_COUNTER:
        rc = envoy_dynamic_module_callback_network_filter_config_define_counter(cfg->envoy, n, &id);
        break;
    case WL_GAUGE:
        rc = envoy_dynamic_module_callback_network_filter_config_define_gauge(cfg->envoy, n, &id);
        break;
    case WL_HISTOGRAM:
        rc = envoy_dynamic_module_callback_network_filter_config_define_histogram(cfg->envoy, n, &id);
        break;
    default:
        rc = -1;
    }
    if (rc != 0 || id > WL_DM_INDEX_MASK) {
        wl_log(WL_LOG_ERROR, "wirelab: Envoy refused metric %s (result %d)", name, (int)rc);
        return WL_METRIC_INVALID;
    }
    return ((uint32_t)type << WL_DM_TYPE_SHIFT) | (uint32_t)id;
}

/* op: 0 add (signed delta), 1 set, 2 record */
static void wl__dm_update(wl_metric m, int op, int64_t v) {
    wl_dm_config *cfg = wl__dm_cfg;
    if (m == WL_METRIC_INVALID || !cfg) return;
    uint32_t type = m >> WL_DM_TYPE_SHIFT;
    size_t id = m & WL_DM_INDEX_MASK;
    void *e = cfg->envoy;
    if (type == WL_COUNTER) {
        if (op == 0 && v > 0)
            envoy_dynamic_module_callback_network_filter_config_increment_counter(e, id, (uint64_t)v);
    } else if (type == WL_GAUGE) {
        if (op == 0 && v > 0)
            envoy_dynamic_module_callback_network_filter_config_increment_gauge(e, id, (uint64_t)v);
        else if (op == 0 && v < 0)
            envoy_dynamic_module_callback_network_filter_config_decrement_gauge(e, id,
                                                                                (uint64_t)-v);
        else if (op != 0)
            envoy_dynamic_module_callback_network_filter_config_set_gauge(e, id, (uint64_t)v);
    } else if (type == WL_HISTOGRAM) {
        if (op != 0)
            envoy_dynamic_module_callback_network_filter_config_record_histogram_value(e, id,
                                                                                       (uint64_t)v);
    }
}

void wl_metric_add(wl_metric id, int64_t delta) {
    if (delta != 0) wl__dm_update(id, 0, delta);
}

/* proxy_record_metric sets a gauge and records a histogram sample: so do these. */
void wl_metric_set(wl_metric id, uint64_t value) { wl__dm_update(id, 1, (int64_t)value); }
void wl_metric_record(wl_metric id, uint64_t value) { wl__dm_update(id, 2, (int64_t)value); }

uint64_t wl_metric_get(wl_metric id) {
    (void)id; /* the dynamic-modules ABI has no way to read a metric back */
    return 0;
}
