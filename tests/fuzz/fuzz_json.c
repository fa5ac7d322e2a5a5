/* libFuzzer target: the SDK's JSON configuration reader (filters/sdk/wl_json.c).
 *
 * Input: a (dotted) key, a NUL byte, then the JSON text (the whole input is
 * the text, with key "a", when there is no NUL). The text is passed in a heap
 * block of exactly its length and without a terminator, as a plugin
 * configuration arrives from the host.
 *
 * Checks, beyond "no memory error, no undefined behaviour":
 *  - wl_json_string never writes past `cap` and, when it succeeds,
 *    NUL-terminates with strlen(out) < cap, for every cap from 1 up;
 *  - a string that fits a small buffer fits every larger one and reads the
 *    same from each;
 *  - number, int and bool leave `out` untouched when they fail; an int
 *    also reads as the same number (no clamping, no undefined conversion);
 *  - the same lookup gives the same answer twice (no hidden state). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wirelab_filter.h"

static void check(int ok, const char *what) {
    if (!ok) {
        fprintf(stderr, "json: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    char key[128] = "a";
    const uint8_t *text = data;
    size_t len = size;
    if (nul) {
        size_t klen = (size_t)(nul - data);
        if (klen >= sizeof key) klen = sizeof key - 1;
        memcpy(key, data, klen);
        key[klen] = '\0';
        text = nul + 1;
        len = size - (size_t)(nul - data) - 1;
    }
    char *json = malloc(len ? len : 1);
    if (len) memcpy(json, text, len);

    /* Strings: the large buffer first, then every smaller capacity that
     * matters (the answer's length and its neighbours, and a few fixed). */
    enum { BIG = 1 << 16 };
    /* The two large blocks are allocated once (each still exactly BIG bytes,
     * so a write past the cap is caught): a fresh 64 KiB block per execution
     * cost more than the lookups. */
    static char *big, *again;
    if (!big) {
        big = malloc(BIG);
        again = malloc(BIG);
    }
    /* A string read from `len` bytes of text is shorter than them, so its
     * terminator lies in the first len + 1 bytes; those are refilled with a
     * non-NUL byte before each use, so a missing terminator is seen. */
    size_t span = len + 1 < BIG ? len + 1 : BIG;
    memset(big, 0xbe, span);
    int big_rc = wl_json_string(json, len, key, big, BIG);
    if (big_rc == 0) {
        check(memchr(big, 0, span) != NULL, "string not NUL-terminated");
        memset(again, 0xbe, span);
        check(wl_json_string(json, len, key, again, BIG) == 0 && memchr(again, 0, span) != NULL &&
                  strcmp(again, big) == 0,
              "the same string lookup gave another answer");
    }
    /* Capacities in increasing order: once one is enough, every larger one
     * is too, and all give the same string. (strlen is not the written
     * length: the reader passes a raw NUL byte inside a string through.) */
    size_t caps[] = {1, 2, 3, 4, 5, 8, 16, 64, 256, 4096, BIG};
    int fitted = 0;
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
        size_t cap = caps[i];
        char *out = cap == BIG ? again : malloc(cap);
        if (cap == BIG) memset(out, 0xbe, span);
        int rc = wl_json_string(json, len, key, out, cap);
        if (rc == 0) {
            check(big_rc == 0, "a string fits a small buffer but not a large one");
            check(memchr(out, 0, cap) != NULL, "small string not NUL-terminated");
            check(strcmp(out, big) == 0, "small buffer read another string");
            fitted = 1;
        } else {
            check(!fitted, "a string fits a buffer but not a larger one");
        }
        if (out != again) free(out);
    }

    double num = 12345.5, num2 = 0;
    int64_t i64 = 777, i64b = 0;
    int b = 3, b2 = 0;
    int nrc = wl_json_number(json, len, key, &num);
    if (nrc != 0) check(num == 12345.5, "number written on failure");
    else check(wl_json_number(json, len, key, &num2) == 0 && (num2 == num || num != num), "number changed");
    int irc = wl_json_int(json, len, key, &i64);
    if (irc != 0) check(i64 == 777, "int written on failure");
    else check(wl_json_int(json, len, key, &i64b) == 0 && i64b == i64, "int changed");
    int brc = wl_json_bool(json, len, key, &b);
    if (brc != 0) check(b == 3, "bool written on failure");
    else check((b == 0 || b == 1) && wl_json_bool(json, len, key, &b2) == 0 && b2 == b, "bool changed");
    /* One value has one type. */
    check(!(brc == 0 && (nrc == 0 || big_rc == 0)), "a bool is also a number or a string");
    check(!(nrc == 0 && big_rc == 0), "a number is also a string");
    /* An int is a number whose value it is (both round the same decimal). */
    check(irc != 0 || (nrc == 0 && (double)i64 == num), "an int that reads as another number");

    free(json);
    return 0;
}
