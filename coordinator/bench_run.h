/* coordinator/bench_run.h: the measurements of `moepool bench`, each on fresh sequences through
 * the same forward pass and expert backend the server uses:
 *   prompt  one sequence's prompt in ubatches (pp512),
 *   decode  n_seq sequences, each after its prompt, decoding one token per step together
 *           (tg128 is n_seq 1 after a short prompt; batchN is llama-batched-bench's S_TG).
 * Token ids are random (a fixed LCG, the same as tools/llama/llama_bench.c): decode speed does
 * not depend on which tokens are sampled, and random ids spread the routing as real text does. */
#ifndef BENCH_RUN_H
#define BENCH_RUN_H

#include "kernels/tp.h"
#include "model/expert_backend.h"
#include "model/forward.h"

struct bench_ctx {
    const struct model *m;
    struct fwd_state *st;
    struct expert_backend *eb; /* borrowed: eb_local, or the cluster's backend */
    int ubatch;                /* most tokens per forward pass */
    int n_seq_max;             /* most sequences decoding together */
    int32_t n_ctx_max;         /* longest sequence */
    float *logits;             /* [n_seq_max][n_vocab] */
    int32_t *tok, *pos;        /* [ubatch] */
    bool *want;                /* [ubatch] */
    struct kv_seq **bseq;      /* [ubatch] each token's sequence */
    uint32_t rng;
};

int bench_ctx_init(struct bench_ctx *c, const struct model *m, struct tp_pool *tp,
                   struct expert_backend *eb, int ubatch, int n_seq_max, int32_t n_ctx_max,
                   struct mp_error *err);
void bench_ctx_free(struct bench_ctx *c);

/* Tokens per second of prefilling n_prompt tokens of one new sequence. */
int bench_prompt(struct bench_ctx *c, int n_prompt, double *tok_s, struct mp_error *err);

/* n_seq new sequences get n_prompt tokens each (all prompts batched together, ubatch tokens at a
 * time, as a server admitting them at once), then n_gen steps of one token per sequence.
 * prompt_tok_s (may be NULL): the prompt phase's rate; decode_tok_s: n_seq * n_gen / time. */
int bench_decode(struct bench_ctx *c, int n_seq, int n_prompt, int n_gen, double *prompt_tok_s,
                 double *decode_tok_s, struct mp_error *err);

#endif
