/* bench/native_code_time.py's stand-in for Envoy: an executable that exports
 * the dynamic-modules callbacks a wirelab native module uses (answering from
 * static data, doing nothing with metrics), dlopens the module and feeds one
 * connection the same client read and server read N times. What it times is
 * the module's own code: the SDK, the decoder and the filter (or the Lua
 * runtime and the script), and nothing of Envoy's.
 *
 *   native_code_time MODULE.so CONFIG_FILE READS_DIR TXNS REPEAT [CONNS EVICT_KIB]
 *
 * READS_DIR holds open_client, open_server (the connection's opening reads;
 * before them `greeting`, when present, is a server read: MySQL's server
 * speaks first; after them open2_client, open2_server when present) and
 * client, server (one transaction's reads). Prints the best run's
 * nanoseconds per transaction and the callbacks into "Envoy" per transaction.
 *
 * With EVICT_KIB > 0 the run is "cold": CONNS connections take turns, and
 * before every transaction the driver writes EVICT_KIB of unrelated memory,
 * as the kernel's network stack, Envoy and the database do between two reads
 * of one connection in a real proxy. Only the module's calls are timed. In
 * Envoy the module's code costs several times its warm figure; this is the
 * figure that tracks it. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wl_dm_abi.h"

#define API __attribute__((visibility("default")))

typedef struct {
    char *data;
    size_t len;
} blob;

static blob cur_read, cur_write; /* what the current hook's buffer holds */
static unsigned long long calls;
static size_t next_metric;
static char sched_token;

API void envoy_dynamic_module_callback_log(int level, wl_dm_module_buffer message) {
    (void)level, (void)message;
    calls++;
}
API bool envoy_dynamic_module_callback_log_enabled(int level) {
    calls++;
    return level >= 3; /* warnings and up, like Envoy's default info level for modules */
}
API uint32_t envoy_dynamic_module_callback_get_concurrency(void) { return 1; }

static size_t size_of(const blob *b) {
    calls++;
    return b->len;
}
static bool chunks_of(const blob *b, wl_dm_envoy_buffer *out) {
    calls++;
    out[0].ptr = b->data;
    out[0].length = b->len;
    return true;
}
API size_t envoy_dynamic_module_callback_network_filter_get_read_buffer_size(void *f) {
    (void)f;
    return size_of(&cur_read);
}
API size_t envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks_size(void *f) {
    (void)f;
    calls++;
    return cur_read.len ? 1 : 0;
}
API bool envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks(void *f,
                                                                             wl_dm_envoy_buffer *out) {
    (void)f;
    return chunks_of(&cur_read, out);
}
API size_t envoy_dynamic_module_callback_network_filter_get_write_buffer_size(void *f) {
    (void)f;
    return size_of(&cur_write);
}
API size_t envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks_size(void *f) {
    (void)f;
    calls++;
    return cur_write.len ? 1 : 0;
}
API bool envoy_dynamic_module_callback_network_filter_get_write_buffer_chunks(void *f,
                                                                              wl_dm_envoy_buffer *out) {
    (void)f;
    return chunks_of(&cur_write, out);
}

API uint64_t envoy_dynamic_module_callback_network_filter_get_connection_id(void *f) {
    (void)f;
    return 1;
}
static bool address(wl_dm_envoy_buffer *out, uint32_t *port) {
    static const char ip[] = "127.0.0.1";
    out->ptr = ip;
    out->length = sizeof ip - 1;
    *port = 5432;
    return true;
}
API bool envoy_dynamic_module_callback_network_filter_get_remote_address(void *f,
                                                                         wl_dm_envoy_buffer *a,
                                                                         uint32_t *port) {
    (void)f;
    return address(a, port);
}
API bool envoy_dynamic_module_callback_network_filter_get_local_address(void *f,
                                                                        wl_dm_envoy_buffer *a,
                                                                        uint32_t *port) {
    (void)f;
    return address(a, port);
}
API bool envoy_dynamic_module_callback_network_filter_is_ssl(void *f) {
    (void)f;
    return false;
}
API bool envoy_dynamic_module_callback_network_filter_get_requested_server_name(
    void *f, wl_dm_envoy_buffer *out) {
    (void)f, (void)out;
    return false;
}
API bool envoy_dynamic_module_callback_network_filter_get_ssl_subject(void *f,
                                                                      wl_dm_envoy_buffer *out) {
    (void)f, (void)out;
    return false;
}
API uint32_t envoy_dynamic_module_callback_network_filter_get_worker_index(void *f) {
    (void)f;
    return 0;
}

static wl_dm_metrics_result define(size_t *id) {
    *id = next_metric++;
    return 0;
}
API wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_define_counter(
    void *c, wl_dm_module_buffer n, size_t *id) {
    (void)c, (void)n;
    return define(id);
}
API wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_define_gauge(
    void *c, wl_dm_module_buffer n, size_t *id) {
    (void)c, (void)n;
    return define(id);
}
API wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_define_histogram(
    void *c, wl_dm_module_buffer n, size_t *id) {
    (void)c, (void)n;
    return define(id);
}
static wl_dm_metrics_result update(void) {
    calls++;
    return 0;
}
API wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_increment_counter(
    void *c, size_t id, uint64_t v) {
    (void)c, (void)id, (void)v;
    return update();
}
API wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_increment_gauge(
    void *c, size_t id, uint64_t v) {
    (void)c, (void)id, (void)v;
    return update();
}
API wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_decrement_gauge(
    void *c, size_t id, uint64_t v) {
    (void)c, (void)id, (void)v;
    return update();
}
API wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_set_gauge(
    void *c, size_t id, uint64_t v) {
    (void)c, (void)id, (void)v;
    return update();
}
API wl_dm_metrics_result envoy_dynamic_module_callback_network_filter_config_record_histogram_value(
    void *c, size_t id, uint64_t v) {
    (void)c, (void)id, (void)v;
    return update();
}
API void *envoy_dynamic_module_callback_network_filter_scheduler_new(void *f) {
    (void)f;
    return &sched_token;
}
API void envoy_dynamic_module_callback_network_filter_scheduler_delete(void *s) { (void)s; }
API void envoy_dynamic_module_callback_network_filter_scheduler_commit(void *s, uint64_t e) {
    (void)s, (void)e;
}

/* ---- the driver ------------------------------------------------------------- */

static blob load_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    blob b = {NULL, 0};
    fseek(f, 0, SEEK_END);
    b.len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc(b.len ? b.len : 1);
    if (b.len && fread(b.data, 1, b.len, f) != b.len) exit(2);
    fclose(f);
    return b;
}

static blob load(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return load_file(path);
}

static blob load_optional(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return (blob){NULL, 0};
    fclose(f);
    return load_file(path);
}

static void *need(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) {
        fprintf(stderr, "the module lacks %s\n", name);
        exit(2);
    }
    return p;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef int (*data_hook)(void *, void *, size_t, bool);

/* Between two transactions, what else runs on the core overwrites the caches;
 * writing `evict` bytes does that here. Each transaction is timed alone. */
static int cold(data_hook on_read, data_hook on_write, void **fm, char *filter_envoy, long conns,
                blob client, blob server, long txns, long repeat, char *junk, size_t evict) {
    double best = 1e30;
    unsigned long long per_txn_calls = 0;
    for (long r = -1; r < repeat; r++) {
        unsigned long long c0 = calls;
        double took = 0;
        for (long i = 0; i < txns; i++) {
            long k = i % conns;
            for (size_t j = 0; j < evict; j += 64) junk[j] = (char)(junk[j] + 1);
            double t0 = now();
            cur_read = client;
            on_read(&filter_envoy[k], fm[k], client.len, false);
            cur_write = server;
            on_write(&filter_envoy[k], fm[k], server.len, false);
            took += now() - t0;
        }
        double t0 = now(), empty = now() - t0; /* what reading the clock adds */
        took -= empty * (double)txns;
        if (r >= 0 && took < best) best = took;
        per_txn_calls = (calls - c0) / (unsigned long long)txns;
    }
    printf("%.1f %llu\n", best / (double)txns * 1e9, per_txn_calls);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 6 && argc != 8) {
        fprintf(stderr, "usage: %s MODULE.so CONFIG_FILE READS_DIR TXNS REPEAT [CONNS EVICT_KIB]\n",
                argv[0]);
        return 2;
    }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 2;
    }
    const char *(*init)(void) = need(lib, "envoy_dynamic_module_on_program_init");
    void *(*config_new)(void *, wl_dm_envoy_buffer, wl_dm_envoy_buffer) =
        need(lib, "envoy_dynamic_module_on_network_filter_config_new");
    void *(*filter_new)(void *, void *) = need(lib, "envoy_dynamic_module_on_network_filter_new");
    int (*new_conn)(void *, void *) = need(lib, "envoy_dynamic_module_on_network_filter_new_connection");
    int (*on_read)(void *, void *, size_t, bool) = need(lib, "envoy_dynamic_module_on_network_filter_read");
    int (*on_write)(void *, void *, size_t, bool) = need(lib, "envoy_dynamic_module_on_network_filter_write");
    if (!init()) return 2;

    blob config = load_file(argv[2]);
    blob open_client = load(argv[3], "open_client"), open_server = load(argv[3], "open_server");
    blob client = load(argv[3], "client"), server = load(argv[3], "server");
    blob greeting = load_optional(argv[3], "greeting");
    blob open2_client = load_optional(argv[3], "open2_client");
    blob open2_server = load_optional(argv[3], "open2_server");
    long txns = atol(argv[4]), repeat = atol(argv[5]);
    long conns = argc == 8 ? atol(argv[6]) : 1;
    size_t evict = argc == 8 ? (size_t)atol(argv[7]) * 1024 : 0;
    if (conns < 1 || conns > 64) conns = 1;
    char *junk = evict ? malloc(evict) : NULL;
    if (evict && !junk) return 2;

    static char config_envoy, filter_envoy[64];
    wl_dm_envoy_buffer name = {"bench", 5}, cfg = {config.data, config.len};
    void *cm = config_new(&config_envoy, name, cfg);
    if (!cm) {
        fprintf(stderr, "the module refused its configuration\n");
        return 1;
    }
    void *fm[64];
    for (long k = 0; k < conns; k++) {
        fm[k] = filter_new(cm, &filter_envoy[k]);
        new_conn(&filter_envoy[k], fm[k]);
        if (greeting.len) { /* MySQL: the server speaks first */
            cur_write = greeting;
            on_write(&filter_envoy[k], fm[k], greeting.len, false);
        }
        cur_read = open_client;
        on_read(&filter_envoy[k], fm[k], open_client.len, false);
        cur_write = open_server;
        on_write(&filter_envoy[k], fm[k], open_server.len, false);
        if (open2_client.len) { /* MySQL: a statement prepared once, after the login */
            cur_read = open2_client;
            on_read(&filter_envoy[k], fm[k], open2_client.len, false);
            cur_write = open2_server;
            on_write(&filter_envoy[k], fm[k], open2_server.len, false);
        }
    }
    if (evict) return cold(on_read, on_write, fm, filter_envoy, conns, client, server, txns, repeat,
                           junk, evict);

    double best = 1e30;
    unsigned long long per_txn_calls = 0;
    for (long r = -1; r < repeat; r++) { /* round -1 warms the caches */
        unsigned long long c0 = calls;
        double t0 = now();
        for (long i = 0; i < txns; i++) {
            cur_read = client;
            on_read(&filter_envoy[0], fm[0], client.len, false);
            cur_write = server;
            on_write(&filter_envoy[0], fm[0], server.len, false);
        }
        double took = now() - t0;
        if (r >= 0 && took < best) best = took;
        per_txn_calls = (calls - c0) / (unsigned long long)txns;
    }
    printf("%.1f %llu\n", best / (double)txns * 1e9, per_txn_calls);
    return 0;
}
