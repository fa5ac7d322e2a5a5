"""proxy-wasm ABI v0.2.1 numbers and the import surface Envoy links.

Sources: the v0.2.1 spec and Envoy's host (proxy-wasm cpp-host), as summarised in
the project's reference notes. The list of imports Envoy provides is owned by
`wirelab.build.abi`; the tables below are the signatures of what the emulator
implements (anything else Envoy links gets a stub typed from the module's import).
"""

from __future__ import annotations

# proxy_status_t
OK, NOT_FOUND, BAD_ARGUMENT, SERIALIZATION_FAILURE, PARSE_FAILURE = 0, 1, 2, 3, 4
INVALID_MEMORY_ACCESS, EMPTY, CAS_MISMATCH, INTERNAL_FAILURE, UNIMPLEMENTED = 6, 7, 8, 10, 12

# proxy_action_t
CONTINUE, PAUSE = 0, 1

# proxy_buffer_type_t
HTTP_REQUEST_BODY, HTTP_RESPONSE_BODY, DOWNSTREAM_DATA, UPSTREAM_DATA = 0, 1, 2, 3
HTTP_CALL_RESPONSE_BODY, GRPC_CALL_MESSAGE, VM_CONFIGURATION, PLUGIN_CONFIGURATION = 4, 5, 6, 7
FOREIGN_FUNCTION_ARGUMENTS = 8

# proxy_peer_type_t
PEER_UNKNOWN, PEER_LOCAL, PEER_REMOTE = 0, 1, 2

# proxy_stream_type_t
STREAM_HTTP_REQUEST, STREAM_HTTP_RESPONSE, STREAM_DOWNSTREAM, STREAM_UPSTREAM = 0, 1, 2, 3

# proxy_metric_type_t
COUNTER, GAUGE, HISTOGRAM = 0, 1, 2
METRIC_TYPE_NAMES = {COUNTER: "counter", GAUGE: "gauge", HISTOGRAM: "histogram"}

LOG_LEVELS = ("trace", "debug", "info", "warn", "error", "critical")

# WASI
WASI_SUCCESS, WASI_BADF, WASI_FAULT, WASI_INVAL, WASI_NOSYS, WASI_NOTSUP = 0, 8, 21, 28, 52, 58
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
WASI_MODULES = ("wasi_snapshot_preview1", "wasi_unstable")

# Signatures: params / results, 'i' = i32, 'I' = i64.
PROXY_FUNCTIONS: dict[str, tuple[str, str]] = {
    "proxy_log": ("iii", "i"),
    "proxy_get_log_level": ("i", "i"),
    "proxy_get_buffer_bytes": ("iiiii", "i"),
    "proxy_get_buffer_status": ("iii", "i"),
    "proxy_set_buffer_bytes": ("iiiii", "i"),
    "proxy_continue_stream": ("i", "i"),
    "proxy_close_stream": ("i", "i"),
    "proxy_define_metric": ("iiii", "i"),
    "proxy_increment_metric": ("iI", "i"),
    "proxy_record_metric": ("iI", "i"),
    "proxy_get_metric": ("ii", "i"),
    "proxy_get_property": ("iiii", "i"),
    "proxy_set_property": ("iiii", "i"),
    "proxy_set_tick_period_milliseconds": ("i", "i"),
    "proxy_get_current_time_nanoseconds": ("i", "i"),
    "proxy_set_shared_data": ("iiiii", "i"),
    "proxy_get_shared_data": ("iiiii", "i"),
    "proxy_register_shared_queue": ("iii", "i"),
    "proxy_resolve_shared_queue": ("iiiii", "i"),
    "proxy_enqueue_shared_queue": ("iii", "i"),
    "proxy_dequeue_shared_queue": ("iii", "i"),
    "proxy_set_effective_context": ("i", "i"),
    "proxy_done": ("", "i"),
    "proxy_call_foreign_function": ("iiiiii", "i"),
    # Provided by Envoy, not emulated (HTTP-only, or callouts an L4 metrics
    # filter does not make); strict mode reports a call to any of them.
    "proxy_http_call": ("iiiiiiiiii", "i"),
    "proxy_grpc_call": ("iiiiiiiiiiii", "i"),
    "proxy_grpc_stream": ("iiiiiiiii", "i"),
    "proxy_grpc_send": ("iiii", "i"),
    "proxy_grpc_cancel": ("i", "i"),
    "proxy_grpc_close": ("i", "i"),
    "proxy_get_status": ("iii", "i"),
    "proxy_get_header_map_pairs": ("iii", "i"),
    "proxy_set_header_map_pairs": ("iii", "i"),
    "proxy_get_header_map_value": ("iiiii", "i"),
    "proxy_add_header_map_value": ("iiiii", "i"),
    "proxy_replace_header_map_value": ("iiiii", "i"),
    "proxy_remove_header_map_value": ("iii", "i"),
    "proxy_get_header_map_size": ("ii", "i"),
    "proxy_send_local_response": ("iiiiiiii", "i"),
}

WASI_FUNCTIONS: dict[str, tuple[str, str]] = {
    "fd_write": ("iiii", "i"),
    "fd_read": ("iiii", "i"),
    "fd_seek": ("iIii", "i"),
    "fd_close": ("i", "i"),
    "fd_fdstat_get": ("ii", "i"),
    "fd_fdstat_set_flags": ("ii", "i"),
    "fd_prestat_get": ("ii", "i"),
    "fd_prestat_dir_name": ("iii", "i"),
    "fd_filestat_get": ("ii", "i"),
    "environ_get": ("ii", "i"),
    "environ_sizes_get": ("ii", "i"),
    "args_get": ("ii", "i"),
    "args_sizes_get": ("ii", "i"),
    "clock_time_get": ("iIi", "i"),
    "clock_res_get": ("ii", "i"),
    "random_get": ("ii", "i"),
    "proc_exit": ("i", ""),
    "path_open": ("iiiiiIIii", "i"),
    "path_filestat_get": ("iiiii", "i"),
    "poll_oneoff": ("iiii", "i"),
    "sched_yield": ("", "i"),
}

ENV_EXTRAS: dict[str, tuple[str, str]] = {
    "pthread_equal": ("ii", "i"),
    "emscripten_notify_memory_growth": ("i", ""),
}


def envoy_provides(module: str, name: str) -> bool:
    """Would Envoy link this import? The build helper's list is the one source of truth."""
    try:
        from wirelab.build.abi import is_allowed_import
    except ImportError:  # a partial install without the build package
        if module == "env":
            return name in PROXY_FUNCTIONS or name in ENV_EXTRAS
        return module in WASI_MODULES and name in WASI_FUNCTIONS
    return is_allowed_import(module, name)
