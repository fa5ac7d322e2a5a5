/* bytes-counter: connections and bytes per direction, for any TCP protocol.
 * Metric names follow docs/metrics-naming.md; see README.md. */
#include "wirelab_filter.h"

typedef struct {
    wl_metric connections; /* counter */
    wl_metric active;      /* gauge */
    wl_metric bytes[2];    /* counters, indexed by wl_dir */
} metrics;

WL_PLUGIN_STATE(metrics)

int wl_on_configure(wl_plugin *plugin) {
    metrics *m = plugin->state;
    char prefix[64];
    wl_config_string(plugin, "stat_prefix", prefix, sizeof prefix, "bytes_counter");
    wl_sanitize_tag(prefix);
    m->connections = wl_counter("tcp.%s.connections_total", prefix);
    m->active = wl_gauge("tcp.%s.connections_active", prefix);
    m->bytes[WL_DIR_CLIENT] = wl_counter("tcp.%s.bytes_total.direction=client", prefix);
    m->bytes[WL_DIR_SERVER] = wl_counter("tcp.%s.bytes_total.direction=server", prefix);
    return 1;
}

void wl_on_new_connection(wl_conn *conn) {
    metrics *m = conn->plugin->state;
    wl_batch_add(m->connections, 1);
    wl_batch_add(m->active, 1);
}

void wl_on_data(wl_conn *conn, wl_read *read) {
    metrics *m = conn->plugin->state;
    wl_batch_add(m->bytes[read->dir], (int64_t)read->size);
}

void wl_on_connection_end(wl_conn *conn) {
    metrics *m = conn->plugin->state;
    wl_batch_add(m->active, -1);
}
