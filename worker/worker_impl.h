/* worker/worker_impl.h: state shared by the worker's I/O thread (worker.c) and compute thread
 * (worker_compute.c). */
#ifndef WORKER_IMPL_H
#define WORKER_IMPL_H

#include "kernels/tp.h"
#include "model/expert_backend.h"
#include "model/expert_table.h"
#include "model/model.h"
#include "proto/keyfile.h"
#include "proto/msg.h"
#include "proto/wire.h"
#include "worker/shard_load.h"
#include "worker/shard_backend.h"
#include "worker/shard_cache.h"
#include "worker/worker.h"

struct worker {
    struct worker_opts o;
    struct model *m;
    char fingerprint[33];
    uint64_t instance;
    void *ctx;
    void *dealer, *monitor;            /* I/O thread */
    void *pipe_io, *pipe_compute;      /* inproc pair: I/O end, compute end */
    int has_key;
    int slot; /* from the welcome (compute thread), for hoptrace */
    struct cluster_key key;
    /* written by the compute thread, read by the I/O thread for Stats */
    _Atomic uint64_t stat_jobs, stat_tokens, stat_compute_us;
    /* compute thread only */
    void *data; /* DEALER of the direct data connection (Welcome.data_port), or NULL */
    struct shard_cache *cache;         /* no model file: the streamed parts of the coordinator's */
    struct stream *stream;
    uint64_t file_size, header_bytes;  /* from the welcome */
    struct model_fingerprint fp;
    struct expert_ref *refs;           /* the assignment being loaded */
    size_t n_refs;
    int want_n_max;
    struct numa_topo *numa;
    struct shard *shard;
    struct expert_backend eb;
    int n_max;
    float *x, *out, *weights;
    void *xq;          /* [n_max] rows of converted activations (ExpertRequest.x_act) */
    int32_t *ids;
    float *slot_tmp;   /* [k][n_max][n_embd], exact mode only (allocated on first use) */
    int32_t *ids_tmp;  /* [n_max][k] */
};

void *worker_compute_thread(void *arg);

/* worker_stream.c: fetching missing parts of the model file into the shard cache, one window of
 * at most 64 MiB in flight (the next is asked for when it has arrived). */
enum stream_phase { STREAM_NONE, STREAM_HEADER, STREAM_SHARD };

/* Starts fetching what of want[0..n) the cache lacks; w->stream phase stays STREAM_NONE when
 * nothing is missing. */
int stream_begin(struct worker *w, enum stream_phase phase, const struct file_range *want,
                 size_t n, struct mp_error *err);
/* A chunk arrived. *done: the phase that just completed (data synced), or STREAM_NONE. */
int stream_chunk(struct worker *w, const Chunk *ch, const void *data, size_t len,
                 enum stream_phase *done, struct mp_error *err);
void stream_free(struct worker *w);
/* True while bytes are still on their way. */
bool stream_active(const struct worker *w);

#endif
