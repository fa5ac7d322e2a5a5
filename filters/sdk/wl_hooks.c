/* The filter's hooks as weak defaults, for both backends: a filter defines
 * only the ones it needs (README.md, "Hooks"). */
#include "wirelab_filter.h"

#define WL_WEAK __attribute__((weak))


WL_WEAK int wl_on_vm_start(void) { return 1; }
WL_WEAK int wl_on_configure(wl_plugin *plugin) { (void)plugin; return 1; }
WL_WEAK void wl_on_new_connection(wl_conn *conn) { (void)conn; }
WL_WEAK void wl_on_data(wl_conn *conn, wl_read *read) { (void)conn; (void)read; }
WL_WEAK void wl_on_close(wl_conn *conn, wl_dir side, wl_peer peer) {
    (void)conn; (void)side; (void)peer;
}
WL_WEAK void wl_on_connection_end(wl_conn *conn) { (void)conn; }
WL_WEAK void wl_on_tick(wl_plugin *plugin) { (void)plugin; }
WL_WEAK size_t wl_plugin_state_size(void) { return 0; }
WL_WEAK size_t wl_conn_state_size(void) { return 0; }
