"""What a proxy-wasm v0.2.1 module may import and must export to load in Envoy 1.40.

Envoy embeds proxy-wasm-cpp-host; its `WasmBase::registerCallbacks` registers
exactly these host functions (include/proxy-wasm/exports.h: FOR_ALL_HOST_FUNCTIONS,
the 0.2.1 ABI-specific ones, FOR_ALL_WASI_FUNCTIONS, plus two `env` helpers).
A module importing anything else fails to link in Envoy, so the build rejects
it first; the emulator links the same set so a module that runs there loads in
Envoy too.
"""

from __future__ import annotations

ABI_VERSION_EXPORT = "proxy_abi_version_0_2_1"

# env.proxy_* registered for every ABI version (FOR_ALL_HOST_FUNCTIONS).
PROXY_HOST_FUNCTIONS: frozenset[str] = frozenset(
    "proxy_" + n
    for n in (
        "log get_status set_property get_property send_local_response "
        "get_shared_data set_shared_data register_shared_queue resolve_shared_queue "
        "dequeue_shared_queue enqueue_shared_queue get_header_map_value "
        "add_header_map_value replace_header_map_value remove_header_map_value "
        "get_header_map_pairs set_header_map_pairs get_header_map_size "
        "get_buffer_status get_buffer_bytes set_buffer_bytes "
        "http_call grpc_call grpc_stream grpc_close grpc_cancel grpc_send "
        "set_tick_period_milliseconds get_current_time_nanoseconds define_metric "
        "increment_metric record_metric get_metric set_effective_context done "
        "call_foreign_function"
    ).split()
)

# Registered only when the module declares ABI 0.2.1.
PROXY_HOST_FUNCTIONS_0_2_1: frozenset[str] = frozenset(
    {"proxy_continue_stream", "proxy_close_stream", "proxy_get_log_level"}
)

ENV_HELPERS: frozenset[str] = frozenset({"pthread_equal", "emscripten_notify_memory_growth"})

# FOR_ALL_WASI_FUNCTIONS; most are stubs in Envoy, but they link.
WASI_FUNCTIONS: frozenset[str] = frozenset(
    (
        "fd_write fd_read fd_seek fd_close fd_fdstat_get fd_fdstat_set_flags "
        "fd_fdstat_set_rights environ_get environ_sizes_get args_get args_sizes_get "
        "clock_time_get clock_res_get fd_advise fd_allocate fd_datasync "
        "fd_filestat_set_size fd_filestat_set_times fd_pread fd_pwrite fd_readdir "
        "fd_renumber fd_sync fd_tell path_create_directory path_filestat_set_times "
        "path_link path_readlink path_remove_directory path_rename path_symlink "
        "path_unlink_file sock_accept sock_recv sock_send sock_shutdown random_get "
        "sched_yield poll_oneoff proc_exit path_open fd_prestat_get fd_prestat_dir_name "
        "path_filestat_get fd_filestat_get"
    ).split()
)

WASI_MODULES: tuple[str, ...] = ("wasi_snapshot_preview1", "wasi_unstable")

ALLOWED_IMPORTS: frozenset[tuple[str, str]] = frozenset(
    {("env", n) for n in PROXY_HOST_FUNCTIONS | PROXY_HOST_FUNCTIONS_0_2_1 | ENV_HELPERS}
    | {(m, n) for m in WASI_MODULES for n in WASI_FUNCTIONS}
)

# cpp-host looks up `malloc` first and falls back to `proxy_on_memory_allocate`.
ALLOCATOR_EXPORTS: tuple[str, ...] = ("malloc", "proxy_on_memory_allocate")

# The callbacks an L4 filter may export (the SDK exports all of them).
NETWORK_CALLBACKS: tuple[str, ...] = (
    "proxy_on_context_create",
    "proxy_on_vm_start",
    "proxy_on_configure",
    "proxy_on_tick",
    "proxy_on_new_connection",
    "proxy_on_downstream_data",
    "proxy_on_upstream_data",
    "proxy_on_downstream_connection_close",
    "proxy_on_upstream_connection_close",
    "proxy_on_done",
    "proxy_on_log",
    "proxy_on_delete",
)


def is_allowed_import(module: str, name: str) -> bool:
    return (module, name) in ALLOWED_IMPORTS
