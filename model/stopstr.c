/* model/stopstr.c: the stop-string matcher of stopstr.h. The held tail is shorter than the
 * longest stop string, so each push scans at most (longest stop + piece) bytes per stop string:
 * trivial next to a decode step. */
#include "model/stopstr.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct stopstr {
    int n;
    char *stop[STOPSTR_MAX];
    size_t len[STOPSTR_MAX];
    size_t max_len; /* longest stop string */
    size_t max_piece;
    char *buf; /* held tail, then the piece appended: [max_len + max_piece] */
    size_t n_held;
    bool stopped;
};

int stopstr_new(const char *const *stops, int n, size_t max_piece, struct stopstr **out,
                struct mp_error *err)
{
    *out = NULL;
    if (n < 0 || n > STOPSTR_MAX)
        return mp_error_set(err, MP_EINVAL, "at most %d stop strings are allowed", STOPSTR_MAX);
    struct stopstr *s = calloc(1, sizeof(*s));
    if (!s)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    s->max_piece = max_piece;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(stops[i]);
        if (len == 0 || len > STOPSTR_MAX_LEN) {
            stopstr_free(s);
            return mp_error_set(err, MP_EINVAL, "stop string %d must have 1 to %d bytes", i,
                                STOPSTR_MAX_LEN);
        }
        if (!(s->stop[i] = strdup(stops[i]))) {
            stopstr_free(s);
            return mp_error_set(err, MP_ENOMEM, "out of memory");
        }
        s->n = i + 1;
        s->len[i] = len;
        s->max_len = len > s->max_len ? len : s->max_len;
    }
    if (!(s->buf = malloc(s->max_len + max_piece + 1))) {
        stopstr_free(s);
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    }
    *out = s;
    return 0;
}

void stopstr_free(struct stopstr *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        free(s->stop[i]);
    free(s->buf);
    free(s);
}

void stopstr_reset(struct stopstr *s)
{
    s->n_held = 0;
    s->stopped = false;
}

size_t stopstr_out_cap(const struct stopstr *s)
{
    return s->max_len + s->max_piece + 1;
}

/* Where the stop string that completes first in b[0..n) starts, or n. "Completes first" (the
 * earliest end; on a tie the earliest start) is what a token-by-token stream sees, so the result
 * does not depend on how the text was cut into pieces. */
static size_t find_stop(const struct stopstr *s, const char *b, size_t n)
{
    size_t best_start = n, best_end = SIZE_MAX;
    for (int i = 0; i < s->n; i++) {
        const char *hit = memmem(b, n, s->stop[i], s->len[i]);
        if (!hit)
            continue;
        size_t start = (size_t)(hit - b), end = start + s->len[i];
        if (end < best_end || (end == best_end && start < best_start)) {
            best_start = start;
            best_end = end;
        }
    }
    return best_start;
}

/* The earliest j such that b[j..n) is a proper prefix of some stop string: the text that must
 * be held back. n if none. */
static size_t partial_start(const struct stopstr *s, const char *b, size_t n)
{
    size_t from = n >= s->max_len ? n - s->max_len + 1 : 0;
    for (size_t j = from; j < n; j++)
        for (int i = 0; i < s->n; i++)
            if (n - j < s->len[i] && !memcmp(b + j, s->stop[i], n - j))
                return j;
    return n;
}

size_t stopstr_push(struct stopstr *s, const char *piece, size_t n, char *out, bool *stopped)
{
    *stopped = s->stopped;
    if (s->stopped)
        return 0;
    if (s->n == 0) {
        memcpy(out, piece, n);
        return n;
    }
    MP_ASSERT(n <= s->max_piece);
    memcpy(s->buf + s->n_held, piece, n);
    size_t total = s->n_held + n;
    size_t at = find_stop(s, s->buf, total);
    if (at < total) {
        memcpy(out, s->buf, at);
        s->n_held = 0;
        s->stopped = *stopped = true;
        return at;
    }
    size_t keep = partial_start(s, s->buf, total);
    memcpy(out, s->buf, keep);
    memmove(s->buf, s->buf + keep, total - keep);
    s->n_held = total - keep;
    return keep;
}

size_t stopstr_flush(struct stopstr *s, char *out)
{
    size_t n = s->stopped ? 0 : s->n_held;
    memcpy(out, s->buf, n);
    s->n_held = 0;
    return n;
}
