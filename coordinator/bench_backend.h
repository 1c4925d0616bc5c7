/* coordinator/bench_backend.h: the experts' backend `moepool bench` measures: this process's
 * threads (eb_local over the whole model), or workers joined to a cluster (--cluster), with the
 * expert traffic the cluster counted, to report bytes per token and MoE layer. */
#ifndef BENCH_BACKEND_H
#define BENCH_BACKEND_H

#include <stdint.h>

#include "coordinator/cluster.h"
#include "model/expert_backend.h"

struct bench_backend {
    struct expert_backend eb;
    struct cluster *cluster; /* NULL in-process */
};

/* o NULL or o->endpoint NULL: in-process. Otherwise starts the cluster and waits (up to
 * wait_ms, < 0 forever) for o->expect_workers workers to join and load their experts. n_max:
 * the most tokens per job. Borrows m and tp. */
int bench_backend_open(struct bench_backend *b, const struct model *m, struct tp_pool *tp,
                       int n_max, const struct cluster_opts *o, int wait_ms,
                       struct mp_error *err);

/* Expert traffic so far, both ways, and the token-layers it carried (zeros in-process). */
void bench_backend_traffic(struct bench_backend *b, uint64_t *bytes, uint64_t *token_layers);

/* The cluster's time breakdown so far (zeros in-process). */
void bench_backend_timing(struct bench_backend *b, struct cluster_timing *out);

void bench_backend_close(struct bench_backend *b); /* safe on a zeroed or half-opened backend */

#endif
