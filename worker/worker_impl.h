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
    struct cluster_key key;
    /* compute thread only */
    struct numa_topo *numa;
    struct shard *shard;
    struct expert_backend eb;
    int n_max;
    float *x, *out, *weights;
    int32_t *ids;
    float *slot_tmp;   /* [k][n_max][n_embd], exact mode only (allocated on first use) */
    int32_t *ids_tmp;  /* [n_max][k] */
};

void *worker_compute_thread(void *arg);

#endif
