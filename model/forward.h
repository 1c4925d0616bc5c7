/* model/forward.h: one forward pass for a batch of tokens from any number of sequences, for
 * prefill and decode alike (decode is a batch with one token per sequence), local or distributed
 * (experts go through an expert_backend). */
#ifndef FORWARD_H
#define FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/tp.h"
#include "model/expert_backend.h"
#include "model/kvcache.h"
#include "model/model.h"

/* Tokens of one sequence must appear in position order, each at its sequence's next position. */
struct fwd_batch {
    int n_tokens;
    const int32_t *token;      /* [n_tokens] */
    const int32_t *pos;        /* [n_tokens] position within its sequence */
    struct kv_seq *const *seq; /* [n_tokens] the sequence each token extends */
    const bool *want_logits;   /* [n_tokens], or NULL for all */
};

/* Optional routing trace, laid out [moe layer][position][k] (the conformance format). */
struct fwd_trace {
    const int32_t *force; /* experts to use instead of the router's top-k, or NULL */
    int32_t *dump;        /* where to write the router's own top-k, or NULL */
    int64_t n_pos;        /* positions per MoE layer in both arrays */
};

/* Scratch for the largest batch, allocated once (no allocation per step). */
struct fwd_state {
    const struct model *m;
    struct tp_pool *tp;
    int n_max;
    float *h;          /* [n_max][n_embd] residual stream */
    float *a;          /* [n_max][n_embd] normalised input of the current block part */
    float *mix;        /* [n_max][n_embd] output of the mixer / FFN before the residual add */
    float *q, *k, *v;  /* [n_max][n_head * head_dim], [n_max][n_kv_max * head_dim] x2 */
    float *att;        /* [n_max][n_head * head_dim] attention output */
    float *scores;     /* [n_threads][n_ctx_max] attention scores */
    int32_t n_ctx_max;
    float *big0, *big1; /* [n_max][max(3 n_embd, n_ff)] conv projections, dense FFN */
    void *xq;          /* [n_max] activation rows converted for a weight type */
    void *xq_up;       /* [n_max] the dense FFN's input for ffn_up when its act type differs */
    void *hq;          /* [n_max] the dense FFN's SwiGLU output converted for ffn_down */
    size_t xq_stride;  /* of xq, xq_up and hq */
    float *router;     /* [n_max][n_expert] router logits, then probabilities */
    int32_t *top;      /* [n_max][k] chosen experts */
    float *weights;    /* [n_max][k] mixing weights */
    float *head_tmp;   /* [n_embd] */
};

/* The first state of a model also puts its dense matrices in the x16 layout (model/repack.h). */
int fwd_state_new(const struct model *m, int n_max, int32_t n_ctx_max, struct tp_pool *tp,
                  struct fwd_state **out, struct mp_error *err);
void fwd_state_free(struct fwd_state *st); /* NULL-safe */

/* Runs the batch; for each token with want_logits, writes n_vocab logits to the next row of
 * logits (rows in batch order). Updates each sequence's state. On error (bad token id, position,
 * expert backend failure) the sequences touched are left in an unspecified state. */
int fwd_run(struct fwd_state *st, const struct fwd_batch *b, struct expert_backend *eb,
            const struct fwd_trace *trace, float *logits, struct mp_error *err);

/* y = W x for n_tok rows: converts x for W's type into st->xq, then multiplies on st->tp. */
void fwd_matmul(struct fwd_state *st, const struct kq_matrix *W, const float *x, int n_tok,
                float *y);

/* Several matrices over the same input (q/k/v, gate/up): x is converted once per act type. */
void fwd_matmul_many(struct fwd_state *st, const float *x, int n_tok, int n,
                     const struct kq_matrix *const *W, float *const *y);

/* Mixers, in their own files. a: [n_tok][n_embd] normalised input; out: [n_tok][n_embd]. */
int attn_forward(struct fwd_state *st, int il, const struct fwd_batch *b, const float *a,
                 float *out, struct mp_error *err);
void conv_forward(struct fwd_state *st, int il, const struct fwd_batch *b, const float *a,
                  float *out);

#endif
