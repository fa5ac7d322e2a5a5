/* Shared by the protocol fuzz targets: one fuzz input is a conversation (a
 * sequence of reads, each tagged with its direction), replayed through a
 * decoder under several splittings of the same bytes. The decoder's events
 * are serialised into a transcript; every splitting must give the transcript
 * of the first, byte for byte, or the target aborts.
 *
 * Input format (written by tests/fuzz/fuzzing.py when it seeds the corpus from
 * recorded conversations):
 *   chunk := head [len16le] bytes
 *   head  := bit 7 direction (0 client, 1 server);
 *            bits 0-6 length, 127 meaning "a 16-bit little-endian length follows".
 * A chunk that claims more bytes than remain takes what remains.
 *
 * Splittings:
 *   WL_SPLIT_RUNS   consecutive chunks of one direction merged into one read;
 *   WL_SPLIT_CHUNKS each chunk is one read;
 *   WL_SPLIT_BYTES  WL_BYTES_SPAN consecutive bytes (all of a shorter input)
 *                   are reads of one byte each, at an offset drawn from a hash
 *                   of the input; each other chunk is one read;
 *   WL_SPLIT_RANDOM reads cut at points drawn from a generator seeded by a
 *                   hash of the input (so a crash reproduces from the file).
 *
 * A fetch hands out a copy of exactly the bytes asked for, either a fresh
 * heap block or a fresh place in a poisoned arena (wl_fuzz_fetch), and the
 * previous window is freed or poisoned, so AddressSanitizer catches a read
 * past the window and a pointer kept after the next fetch (the wl_fetch_fn
 * contract). */
#ifndef WIRELAB_FUZZ_SPLIT_H
#define WIRELAB_FUZZ_SPLIT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

/* The harness's plumbing (fetch windows, transcripts, replay loops) is left
 * out of the coverage instrumentation: which way it went says nothing about
 * the code under test (a split, an arena slot, a hash), and its traced
 * comparisons ran on every byte fed. The input parser stays instrumented:
 * its branches are the input format. */
#define WL_PLUMBING __attribute__((no_sanitize("coverage")))

enum { WL_SPLIT_RUNS = 0, WL_SPLIT_CHUNKS, WL_SPLIT_BYTES, WL_SPLIT_RANDOM, WL_SPLIT__COUNT };

static const char *const wl_split_names[] = {"runs", "chunks", "bytes", "random"};

typedef struct {
    wl_dir dir;
    const uint8_t *data;
    size_t len;
} wl_chunk;

/* At most this many chunks are read from one input (more is not needed to
 * reach any state, and it bounds the byte-by-byte pass). */
#define WL_MAX_CHUNKS 512

static size_t wl_parse_chunks(const uint8_t *in, size_t n, wl_chunk *out) {
    size_t i = 0, count = 0;
    while (i < n && count < WL_MAX_CHUNKS) {
        uint8_t h = in[i++];
        size_t len = h & 0x7f;
        if (len == 127) {
            if (n - i < 2) break;
            len = (size_t)in[i] | ((size_t)in[i + 1] << 8);
            i += 2;
        }
        if (len > n - i) len = n - i;
        out[count].dir = (h & 0x80) ? WL_DIR_SERVER : WL_DIR_CLIENT;
        out[count].data = in + i;
        out[count].len = len;
        count++;
        i += len;
    }
    return count;
}

/* --- fetch over one read ------------------------------------------------ */

/* Two ways of handing out a window; with both, AddressSanitizer reports a
 * read past the window's end (or before its start) and a read through a
 * pointer kept past the next fetch:
 *  - heap:  a fresh malloc'd copy per fetch, freed at the next one (ASan's
 *           redzones and its quarantine of freed blocks);
 *  - arena: a copy at a fresh 8-aligned place in one large block of which
 *           only the current window is unpoisoned (ASan's manual poisoning;
 *           an 8-aligned start makes the poisoning after the end byte-exact).
 *           Windows advance through the arena, so the previous one stays
 *           poisoned until the arena wraps, like a block in the quarantine.
 * The arena costs a memcpy and two shadow writes instead of two trips
 * through ASan's allocator (which records a stack trace per malloc), which
 * is what made byte-by-byte replays slow; heap windows are kept for the
 * passes with few reads. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/asan_interface.h>
#define WL_HAVE_ASAN 1
#endif
#endif
#ifndef WL_HAVE_ASAN
#define ASAN_POISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(a, n) ((void)(a), (void)(n))
#endif

#define WL_ARENA_SIZE (1u << 20)

static struct {
    uint8_t *base;
    size_t next;        /* where the next window goes, a multiple of 8 */
    uint8_t *live;      /* the window handed out last (unpoisoned) */
    size_t live_len;
} wl_arena;

WL_PLUMBING static void wl_arena_retire(void) {
    if (wl_arena.live) ASAN_POISON_MEMORY_REGION(wl_arena.live, (wl_arena.live_len + 7) & ~(size_t)7);
    wl_arena.live = NULL;
}

WL_PLUMBING static uint8_t *wl_arena_window(const uint8_t *src, size_t n) {
    if (!wl_arena.base) {
        /* Kept for the process's life (reachable, so not a leak). */
        wl_arena.base = malloc(WL_ARENA_SIZE);
        ASAN_POISON_MEMORY_REGION(wl_arena.base, WL_ARENA_SIZE);
    }
    wl_arena_retire();
    size_t span = (n + 7) & ~(size_t)7;
    if (wl_arena.next + span > WL_ARENA_SIZE) wl_arena.next = 0;
    uint8_t *w = wl_arena.base + wl_arena.next;
    wl_arena.next += span;
    ASAN_UNPOISON_MEMORY_REGION(w, n);
    memcpy(w, src, n);
    wl_arena.live = w;
    wl_arena.live_len = n;
    return w;
}

typedef struct {
    const uint8_t *data;
    size_t len;
    size_t max_fetch; /* 0: as much as asked (the contract); else a cap */
    int heap;         /* windows from malloc, else from the arena */
    uint8_t *window;  /* the heap copy handed out last */
} wl_fuzz_read;

WL_PLUMBING static const uint8_t *wl_fuzz_fetch(void *ctx, size_t off, size_t want, size_t *got) {
    wl_fuzz_read *r = ctx;
    if (r->window) {
        free(r->window);
        r->window = NULL;
    }
    wl_arena_retire();
    if (off >= r->len || want == 0) {
        *got = 0;
        return NULL;
    }
    size_t n = r->len - off;
    if (n > want) n = want;
    if (r->max_fetch && n > r->max_fetch) n = r->max_fetch;
    *got = n;
    if (!r->heap && n <= WL_ARENA_SIZE / 4) return wl_arena_window(r->data + off, n);
    r->window = malloc(n);
    memcpy(r->window, r->data + off, n);
    return r->window;
}

/* --- transcript ----------------------------------------------------------- */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    size_t events;
} wl_transcript;

WL_PLUMBING static void wl_t_put(wl_transcript *t, const void *p, size_t n) {
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + n) cap *= 2;
        t->buf = realloc(t->buf, cap);
        t->cap = cap;
    }
    if (n) memcpy(t->buf + t->len, p, n);
    t->len += n;
}

WL_PLUMBING static void wl_t_u64(wl_transcript *t, uint64_t v) { wl_t_put(t, &v, sizeof v); }

/* A string field: its length, then its bytes (read in full, so ASan checks
 * that the decoder's pointer and length describe live memory). */
WL_PLUMBING static void wl_t_str(wl_transcript *t, const void *p, size_t n) {
    wl_t_u64(t, p ? n : (uint64_t)-1);
    if (p) wl_t_put(t, p, n);
}

/* Empties the transcript and keeps its buffer (one per target, reused by
 * every execution). */
static void wl_t_reset(wl_transcript *t) {
    t->len = 0;
    t->events = 0;
}

static void wl_t_free(wl_transcript *t) {
    free(t->buf);
    memset(t, 0, sizeof *t);
}

/* --- the replay driver ---------------------------------------------------- */

WL_PLUMBING static uint64_t wl_fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

WL_PLUMBING static uint64_t wl_xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* One replay of the input: how the bytes are cut into reads and how the
 * decoder's fetches are answered. */
typedef struct {
    int split;
    size_t max_fetch; /* 0: windows as large as asked; else at most this many bytes */
    int heap;         /* windows from malloc (else from the arena) */
    const char *name;
} wl_pass;

/* WL_SPLIT_BYTES feeds this many consecutive bytes one at a time (all of a
 * shorter conversation), at an offset drawn from the input's hash, and every
 * other chunk (or the rest of a cut one) as one read. A byte-by-byte read is
 * what puts a decoder in each of its partial states (inside a header, a
 * length, a carried SQL prefix); those depend on the decoder's state where
 * the span starts and on the bytes inside it, not on how many bytes came
 * before. Each mutation moves the span (the hash changes), so over a run
 * every offset of every corpus conversation is crossed byte by byte, while
 * one execution costs ~WL_BYTES_SPAN feeds instead of one per input byte.
 * The span exceeds the longest carried prefix (WL_PG_CARRY: 586 bytes) so
 * a whole carried header + SQL prefix can arrive byte by byte. */
#ifndef WL_BYTES_SPAN
#define WL_BYTES_SPAN 640
#endif

/* Feeds one read to the decoder under test. */
typedef void (*wl_feed_fn)(void *decoder, wl_dir dir, size_t len, wl_fetch_fn fetch, void *ctx);

WL_PLUMBING static void wl_feed_read(wl_feed_fn feed, void *dec, wl_dir dir, const uint8_t *p, size_t n,
                         const wl_pass *pass) {
    /* Heap passes hand the decoder a private copy of exactly the read, so a
     * fetch past its end is the decoder's bug, not the harness's; arena
     * windows are copies already. */
    uint8_t *copy = NULL;
    if (pass->heap) {
        copy = malloc(n ? n : 1);
        if (n) memcpy(copy, p, n);
        p = copy;
    }
    wl_fuzz_read r = {p, n, pass->max_fetch, pass->heap, NULL};
    feed(dec, dir, n, wl_fuzz_fetch, &r);
    /* The read is over: its last window must not be used any more. */
    if (pass->heap) {
        free(r.window);
        free(copy);
    }
    wl_arena_retire();
}

WL_PLUMBING static size_t wl_min(size_t a, size_t b) { return a < b ? a : b; }

/* Replays the chunks under one pass. */
WL_PLUMBING static void wl_replay(const wl_chunk *c, size_t count, const wl_pass *pass, uint64_t seed,
                      wl_feed_fn feed, void *dec) {
    static uint8_t *run_buf;
    static size_t run_cap;
    int split = pass->split;
    uint64_t rng = seed | 1;
    size_t lo = 0, hi = 0; /* WL_SPLIT_BYTES: conversation bytes [lo, hi) one at a time */
    if (split == WL_SPLIT_BYTES) {
        size_t total = 0;
        for (size_t k = 0; k < count; k++) total += c[k].len;
        uint64_t h = seed ^ 0x9e3779b97f4a7c15ull;
        lo = total > WL_BYTES_SPAN ? (size_t)(wl_xorshift(&h) % (total - WL_BYTES_SPAN + 1)) : 0;
        hi = lo + WL_BYTES_SPAN;
    }
    size_t at = 0; /* conversation offset of the next byte */
    size_t i = 0;
    while (i < count) {
        if (split == WL_SPLIT_RUNS) {
            /* Merge the run of chunks of one direction into one read (in a
             * buffer kept between calls: the read is copied again before the
             * decoder sees it). */
            size_t j = i, total = 0;
            while (j < count && c[j].dir == c[i].dir) total += c[j++].len;
            if (total > run_cap) {
                free(run_buf);
                run_cap = total > 4096 ? total : 4096;
                run_buf = malloc(run_cap);
            }
            size_t o = 0;
            for (size_t k = i; k < j; k++) {
                if (c[k].len) memcpy(run_buf + o, c[k].data, c[k].len);
                o += c[k].len;
            }
            if (total) wl_feed_read(feed, dec, c[i].dir, run_buf, total, pass);
            i = j;
            continue;
        }
        const uint8_t *p = c[i].data;
        size_t left = c[i].len;
        while (left) {
            size_t piece = left;
            if (split == WL_SPLIT_BYTES) {
                if (at < lo) piece = wl_min(left, lo - at);
                else if (at < hi) piece = 1;
            }
            if (split == WL_SPLIT_RANDOM) {
                uint64_t r = wl_xorshift(&rng);
                size_t cut = (r & 3) == 0 ? (size_t)(r >> 8) % 9000 + 1 : (size_t)(r >> 8) % 16 + 1;
                if (piece > cut) piece = cut;
            }
            wl_feed_read(feed, dec, c[i].dir, p, piece, pass);
            p += piece;
            left -= piece;
            at += piece;
        }
        i++;
    }
}

WL_PLUMBING static int wl_t_same(const wl_transcript *a, const wl_transcript *b) {
    return a->len == b->len && (a->len == 0 || memcmp(a->buf, b->buf, a->len) == 0);
}

static void wl_transcript_mismatch(const char *target, const char *how, const wl_transcript *a,
                                   const wl_transcript *b) {
    size_t at = 0;
    while (at < a->len && at < b->len && a->buf[at] == b->buf[at]) at++;
    fprintf(stderr,
            "%s: events differ under split '%s': %zu events / %zu bytes vs %zu events / %zu bytes, "
            "first difference at byte %zu\n",
            target, how, a->events, a->len, b->events, b->len, at);
    abort();
}

#endif
