/* worker/worker_stream.c: see stream_begin in worker_impl.h. The worker pulls: it sends a Fetch
 * for the next window of missing bytes, the coordinator answers with Chunks (the last one
 * flagged), each written into the sparse cache file at its offset. */
#include <stdlib.h>
#include <time.h>

#include "base/log.h"
#include "worker/worker_impl.h"

#define WINDOW_BYTES (64u << 20)

struct stream {
    enum stream_phase phase;
    struct file_range *todo;
    size_t n_todo, next; /* todo[next] from offset `at` is the first byte not yet asked for */
    uint64_t at;
    uint64_t total, done;
    struct timespec t0;
    double last_print;
};

static double since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) * 1e-9;
}

/* Asks for up to WINDOW_BYTES of what remains. */
static int send_window(struct worker *w, struct mp_error *err)
{
    struct stream *st = w->stream;
    Range ranges[64], *rp[64];
    Fetch f = FETCH__INIT;
    uint64_t bytes = 0;
    while (st->next < st->n_todo && f.n_ranges < 64 && bytes < WINDOW_BYTES) {
        const struct file_range *r = &st->todo[st->next];
        uint64_t len = r->len - st->at;
        len = len < WINDOW_BYTES - bytes ? len : WINDOW_BYTES - bytes;
        range__init(&ranges[f.n_ranges]);
        ranges[f.n_ranges].offset = r->offset + st->at;
        ranges[f.n_ranges].len = len;
        rp[f.n_ranges] = &ranges[f.n_ranges];
        f.n_ranges++;
        bytes += len;
        st->at += len;
        if (st->at == r->len) {
            st->next++;
            st->at = 0;
        }
    }
    f.ranges = rp;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_FETCH;
    env.fetch = &f;
    if (msg_send_env(w->pipe_compute, &env, 0))
        return mp_error_set(err, MP_EIO, "cannot send a fetch");
    return 0;
}

int stream_begin(struct worker *w, enum stream_phase phase, const struct file_range *want,
                 size_t n, struct mp_error *err)
{
    stream_free(w);
    struct stream *st = calloc(1, sizeof(*st));
    if (!st)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    w->stream = st;
    int rc = shard_cache_missing(w->cache, want, n, &st->todo, &st->n_todo, err);
    if (rc || !st->n_todo)
        return rc;
    for (size_t i = 0; i < st->n_todo; i++)
        st->total += st->todo[i].len;
    st->phase = phase;
    clock_gettime(CLOCK_MONOTONIC, &st->t0);
    mp_info("worker: fetching %.3f GB of the model %s from the coordinator",
            (double)st->total / 1e9, phase == STREAM_HEADER ? "header" : "shard");
    return send_window(w, err);
}

int stream_chunk(struct worker *w, const Chunk *ch, const void *data, size_t len,
                 enum stream_phase *done, struct mp_error *err)
{
    struct stream *st = w->stream;
    *done = STREAM_NONE;
    if (!st || st->phase == STREAM_NONE)
        return 0; /* a late chunk of an abandoned stream */
    int rc = shard_cache_write(w->cache, ch->offset, data, len, err);
    if (rc)
        return rc;
    st->done += len;
    const double t = since(&st->t0);
    if (t - st->last_print > 0.5 || st->done == st->total) {
        st->last_print = t;
        mp_info("worker: fetched %.3f of %.3f GB (%.0f%%, %.1f MB/s)", (double)st->done / 1e9,
                (double)st->total / 1e9, 100.0 * (double)st->done / (double)st->total,
                t > 0 ? (double)st->done / t / 1e6 : 0);
    }
    if (!ch->last)
        return 0;
    if (st->next < st->n_todo)
        return send_window(w, err);
    if ((rc = shard_cache_sync(w->cache, err)))
        return rc;
    *done = st->phase;
    st->phase = STREAM_NONE;
    return 0;
}

void stream_free(struct worker *w)
{
    if (!w->stream)
        return;
    free(w->stream->todo);
    free(w->stream);
    w->stream = NULL;
}

bool stream_active(const struct worker *w)
{
    return w->stream && w->stream->phase != STREAM_NONE;
}
