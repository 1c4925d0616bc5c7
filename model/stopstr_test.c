/* model/stopstr_test.c: the stop-string matcher against a plain reference (cut the whole text at
 * the first stop string to complete), over hand-picked cases and many random texts
 * split into random pieces, so every way a stop can straddle piece boundaries is exercised. */
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "model/stopstr.h"

#define MAX_PIECE 8

/* Streams text through a matcher in pieces of the given sizes (cycled); returns the output. */
static size_t stream(const char *const *stops, int n_stops, const char *text, const int *sizes,
                     int n_sizes, char *out, bool *stopped)
{
    struct stopstr *s;
    struct mp_error err = {0};
    if (stopstr_new(stops, n_stops, MAX_PIECE, &s, &err))
        abort();
    char *tmp = malloc(stopstr_out_cap(s));
    size_t len = strlen(text), o = 0;
    *stopped = false;
    for (size_t at = 0, k = 0; at < len && !*stopped; k++) {
        size_t n = (size_t)sizes[k % (size_t)n_sizes];
        n = n < len - at ? n : len - at;
        size_t got = stopstr_push(s, text + at, n, tmp, stopped);
        memcpy(out + o, tmp, got);
        o += got;
        at += n;
    }
    size_t got = stopstr_flush(s, tmp);
    memcpy(out + o, tmp, got);
    o += got;
    free(tmp);
    stopstr_free(s);
    return o;
}

/* The whole text cut where the first stop string to complete (earliest end, then earliest
 * start) begins: what a reader of the stream token by token would see. */
static size_t reference(const char *const *stops, int n_stops, const char *text, bool *stopped)
{
    size_t len = strlen(text);
    for (size_t end = 1; end <= len; end++)
        for (size_t start = 0; start < end; start++)
            for (int i = 0; i < n_stops; i++)
                if (strlen(stops[i]) == end - start &&
                    !memcmp(text + start, stops[i], end - start)) {
                    *stopped = true;
                    return start;
                }
    *stopped = false;
    return len;
}

static void check_case(const char *const *stops, int n_stops, const char *text, const int *sizes,
                       int n_sizes)
{
    char out[512];
    bool stopped, want_stopped;
    size_t n = stream(stops, n_stops, text, sizes, n_sizes, out, &stopped);
    size_t want = reference(stops, n_stops, text, &want_stopped);
    CHECK(n == want && !memcmp(out, text, n) && stopped == want_stopped,
          "text \"%s\": got \"%.*s\" (stopped %d), want \"%.*s\" (stopped %d)", text, (int)n, out,
          stopped, (int)want, text, want_stopped);
}

static void hand_picked(void)
{
    const char *stops[] = {"</s>", "aab", "\nUser:"};
    const int ones[] = {1}, twos[] = {2}, mixed[] = {3, 1, 5};
    const char *texts[] = {
        "hello</s>world", "hello</s",  "hel</",  "aaab rest", "aaaab", "no stop here",
        "line\nUser: hi", "line\nUse", "</</s>", "a",         "",      "ab aab</s>",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        check_case(stops, 3, texts[i], ones, 1);
        check_case(stops, 3, texts[i], twos, 1);
        check_case(stops, 3, texts[i], mixed, 3);
    }
    check_case(NULL, 0, "passes through", mixed, 3);
}

/* Holds back exactly what could still become a stop string, and nothing more. */
static void holds_only_prefixes(void)
{
    const char *stops[] = {"STOP"};
    struct stopstr *s;
    struct mp_error err = {0};
    char out[64];
    bool stopped;
    if (stopstr_new(stops, 1, MAX_PIECE, &s, &err))
        abort();
    CHECK(stopstr_push(s, "abcST", 5, out, &stopped) == 3, "\"ST\" must be held");
    CHECK(stopstr_push(s, "x", 1, out, &stopped) == 3 && !memcmp(out, "STx", 3),
          "a broken prefix is released at once");
    CHECK(stopstr_push(s, "STO", 3, out, &stopped) == 0, "\"STO\" must be held");
    CHECK(stopstr_push(s, "P!", 2, out, &stopped) == 0 && stopped, "the stop completes");
    CHECK(stopstr_push(s, "more", 4, out, &stopped) == 0 && stopped, "nothing after a stop");
    CHECK(stopstr_flush(s, out) == 0, "a stopped stream has no tail");
    stopstr_reset(s);
    CHECK(stopstr_push(s, "ab", 2, out, &stopped) == 2 && !stopped, "reset starts afresh");
    stopstr_free(s);
}

static void bad_input(void)
{
    const char *empty[] = {""};
    struct stopstr *s = (struct stopstr *)1;
    struct mp_error err = {0};
    CHECK(stopstr_new(empty, 1, MAX_PIECE, &s, &err) == MP_EINVAL && !s, "empty stop refused");
    CHECK(stopstr_new(empty, STOPSTR_MAX + 1, MAX_PIECE, &s, &err) == MP_EINVAL,
          "too many stops refused");
}

/* Random texts over a 3-letter alphabet make overlapping partial matches common. */
static void random_texts(void)
{
    const char *stops[] = {"aba", "bb", "cabac"};
    srand(12345);
    for (int iter = 0; iter < 20000; iter++) {
        char text[64];
        int len = rand() % 40;
        for (int i = 0; i < len; i++)
            text[i] = "abc"[rand() % 3];
        text[len] = 0;
        int sizes[4];
        for (int i = 0; i < 4; i++)
            sizes[i] = 1 + rand() % MAX_PIECE;
        check_case(stops, 1 + iter % 3, text, sizes, 4);
    }
}

int main(void)
{
    hand_picked();
    holds_only_prefixes();
    bad_input();
    random_texts();
    if (!failures)
        printf("stopstr_test: all passed\n");
    return failures != 0;
}
