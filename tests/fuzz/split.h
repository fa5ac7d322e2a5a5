/* Shared by the protocol fuzz targets: one fuzz input is a conversation (a
 * sequence of reads, each tagged with its direction), replayed through a
 * decoder under several splittings of the same bytes. The decoder's events
 * are serialised into a transcript; every splitting must give the transcript
 * of the first, byte for byte, or the target aborts.
 *
 * Input format (written by wirelab.testing.fuzz when it seeds the corpus from
 * recorded conversations):
 *   chunk := head [len16le] bytes
 *   head  := bit 7 direction (0 client, 1 server);
 *            bits 0-6 length, 127 meaning "a 16-bit little-endian length follows".
 * A chunk that claims more bytes than remain takes what remains.
 *
 * Splittings:
 *   WL_SPLIT_RUNS   consecutive chunks of one direction merged into one read;
 *   WL_SPLIT_CHUNKS each chunk is one read;
 *   WL_SPLIT_BYTES  every byte is a read of its own;
 *   WL_SPLIT_RANDOM reads cut at points drawn from a generator seeded by a
 *                   hash of the input (so a crash reproduces from the file).
 *
 * Every fetch hands out a fresh heap copy of exactly the bytes asked for and
 * frees the previous one, so AddressSanitizer catches a read past the window
 * and a pointer kept after the next fetch (the wl_fetch_fn contract). */
#ifndef WIRELAB_FUZZ_SPLIT_H
#define WIRELAB_FUZZ_SPLIT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire.h"

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

typedef struct {
    const uint8_t *data;
    size_t len;
    size_t max_fetch; /* 0: as much as asked (the contract); else a cap */
    uint8_t *window;  /* the copy handed out last */
} wl_fuzz_read;

static const uint8_t *wl_fuzz_fetch(void *ctx, size_t off, size_t want, size_t *got) {
    wl_fuzz_read *r = ctx;
    free(r->window);
    r->window = NULL;
    if (off >= r->len || want == 0) {
        *got = 0;
        return NULL;
    }
    size_t n = r->len - off;
    if (n > want) n = want;
    if (r->max_fetch && n > r->max_fetch) n = r->max_fetch;
    r->window = malloc(n);
    memcpy(r->window, r->data + off, n);
    *got = n;
    return r->window;
}

/* --- transcript ----------------------------------------------------------- */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    size_t events;
} wl_transcript;

static void wl_t_put(wl_transcript *t, const void *p, size_t n) {
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + n) cap *= 2;
        t->buf = realloc(t->buf, cap);
        t->cap = cap;
    }
    if (n) memcpy(t->buf + t->len, p, n);
    t->len += n;
}

static void wl_t_u64(wl_transcript *t, uint64_t v) { wl_t_put(t, &v, sizeof v); }

/* A string field: its length, then its bytes (read in full, so ASan checks
 * that the decoder's pointer and length describe live memory). */
static void wl_t_str(wl_transcript *t, const void *p, size_t n) {
    wl_t_u64(t, p ? n : (uint64_t)-1);
    if (p) wl_t_put(t, p, n);
}

static void wl_t_free(wl_transcript *t) {
    free(t->buf);
    memset(t, 0, sizeof *t);
}

/* --- the replay driver ---------------------------------------------------- */

static uint64_t wl_fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static uint64_t wl_xorshift(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Feeds one read to the decoder under test. */
typedef void (*wl_feed_fn)(void *decoder, wl_dir dir, size_t len, wl_fetch_fn fetch, void *ctx);

static void wl_feed_read(wl_feed_fn feed, void *dec, wl_dir dir, const uint8_t *p, size_t n,
                         size_t max_fetch) {
    /* A private copy of exactly the read: a fetch past its end is the
     * decoder's bug, not the harness's. */
    uint8_t *copy = malloc(n ? n : 1);
    if (n) memcpy(copy, p, n);
    wl_fuzz_read r = {copy, n, max_fetch, NULL};
    feed(dec, dir, n, wl_fuzz_fetch, &r);
    free(r.window);
    free(copy);
}

/* Replays the chunks under one splitting. */
static void wl_replay(const wl_chunk *c, size_t count, int split, uint64_t seed, size_t max_fetch,
                      wl_feed_fn feed, void *dec) {
    uint64_t rng = seed | 1;
    size_t i = 0;
    while (i < count) {
        if (split == WL_SPLIT_RUNS) {
            /* Merge the run of chunks of one direction into one read. */
            size_t j = i, total = 0;
            while (j < count && c[j].dir == c[i].dir) total += c[j++].len;
            uint8_t *buf = malloc(total ? total : 1);
            size_t at = 0;
            for (size_t k = i; k < j; k++) {
                if (c[k].len) memcpy(buf + at, c[k].data, c[k].len);
                at += c[k].len;
            }
            if (total) wl_feed_read(feed, dec, c[i].dir, buf, total, max_fetch);
            free(buf);
            i = j;
            continue;
        }
        const uint8_t *p = c[i].data;
        size_t left = c[i].len;
        while (left) {
            size_t piece = left;
            if (split == WL_SPLIT_BYTES) piece = 1;
            if (split == WL_SPLIT_RANDOM) {
                uint64_t r = wl_xorshift(&rng);
                size_t cut = (r & 3) == 0 ? (size_t)(r >> 8) % 9000 + 1 : (size_t)(r >> 8) % 16 + 1;
                if (piece > cut) piece = cut;
            }
            wl_feed_read(feed, dec, c[i].dir, p, piece, max_fetch);
            p += piece;
            left -= piece;
        }
        i++;
    }
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
