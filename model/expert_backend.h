/* model/expert_backend.h: all the forward pass knows about experts.
 *
 * For each MoE layer the forward pass routes its tokens and hands the backend one job: the
 * normalised hidden states, each token's k expert ids and mixing weights. The backend returns,
 * per token, sum_k weight_k * expert_k(x) added in k order (llama.cpp's order). eb_local.c runs
 * experts in this process; the cluster's remote backend scatters the same job to workers, which
 * run eb_local on their shard, so expert math exists once. */
#ifndef EXPERT_BACKEND_H
#define EXPERT_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct eb_job {
    int layer;            /* block index */
    int n_tokens;
    int k;                /* experts per token */
    int64_t n_embd;
    const float *x;       /* [n_tokens][n_embd] input (after ffn_norm) */
    const int32_t *ids;   /* [n_tokens][k] expert ids */
    const float *weights; /* [n_tokens][k] mixing weights */
    /* Optional: x already converted to the layer's expert activation type (the act_type of
     * ffn_gate_exps and ffn_up_exps, which must agree), rows xq_stride bytes apart, as
     * kq_convert_act writes them. A backend then skips the conversion, with the same result;
     * x may be NULL. A cluster worker gets its tokens this way (Q8_K is 3.5x smaller than f32). */
    const void *xq;
    size_t xq_stride;
};

/* Jobs a pipelining backend holds in flight at once (the forward pass uses two: one per half). */
#define EB_MAX_INFLIGHT 2

struct eb_ops {
    /* Writes out[n_tokens][n_embd]. Fails (e.g. a dead worker) with a code and message. */
    int (*run)(void *self, const struct eb_job *job, float *out, struct mp_error *err);
    void (*free)(void *self);
    /* Optional (NULL: the backend does not pipeline). submit starts a job and returns at once
     * with a ticket; the job's inputs may be reused as soon as it returns, and out is written by
     * wait(ticket), which returns the job's outcome. At most EB_MAX_INFLIGHT jobs in flight;
     * results are exactly run's. cancel forgets every job in flight (after an error). */
    int (*submit)(void *self, const struct eb_job *job, float *out, int *ticket,
                  struct mp_error *err);
    int (*wait)(void *self, int ticket, struct mp_error *err);
    void (*cancel)(void *self);
};

struct expert_backend {
    const struct eb_ops *ops;
    void *self;
};

static inline int eb_run(struct expert_backend *eb, const struct eb_job *job, float *out,
                         struct mp_error *err)
{
    return eb->ops->run(eb->self, job, out, err);
}

static inline void eb_free(struct expert_backend *eb)
{
    if (eb && eb->ops)
        eb->ops->free(eb->self);
}

#endif
