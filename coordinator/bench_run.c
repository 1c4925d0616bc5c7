/* coordinator/bench_run.c: the timed loops of `moepool bench`. */
#include "coordinator/bench_run.h"

#include <stdlib.h>
#include <time.h>

#include "model/kvcache.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int bench_ctx_init(struct bench_ctx *c, const struct model *m, struct tp_pool *tp,
                   struct expert_backend *eb, int ubatch, int n_seq_max, int32_t n_ctx_max,
                   struct mp_error *err)
{
    *c = (struct bench_ctx){.m = m, .eb = eb, .ubatch = ubatch, .n_seq_max = n_seq_max,
                            .n_ctx_max = n_ctx_max, .rng = 12345};
    c->logits = malloc((size_t)n_seq_max * (size_t)m->hp.n_vocab * sizeof(float));
    c->tok = malloc((size_t)ubatch * sizeof(*c->tok));
    c->pos = malloc((size_t)ubatch * sizeof(*c->pos));
    c->want = malloc((size_t)ubatch * sizeof(*c->want));
    c->bseq = malloc((size_t)ubatch * sizeof(*c->bseq));
    if (!c->logits || !c->tok || !c->pos || !c->want || !c->bseq)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    return fwd_state_new(m, ubatch, n_ctx_max, tp, &c->st, err);
}

void bench_ctx_free(struct bench_ctx *c)
{
    fwd_state_free(c->st);
    free(c->logits);
    free(c->tok);
    free(c->pos);
    free(c->want);
    free(c->bseq);
    *c = (struct bench_ctx){0};
}

/* The same LCG as tools/llama/llama_bench.c. */
static int32_t random_token(struct bench_ctx *c)
{
    c->rng = c->rng * 1664525u + 1013904223u;
    return (int32_t)((c->rng >> 8) % (uint32_t)c->m->hp.n_vocab);
}

/* Appends one token of seq to the pending batch, running the batch first if it is full. */
static int push(struct bench_ctx *c, int *n, struct kv_seq *seq, int32_t pos, bool want,
                struct mp_error *err)
{
    if (*n == c->ubatch) {
        struct fwd_batch b = {*n, c->tok, c->pos, c->bseq, c->want};
        int rc = fwd_run(c->st, &b, c->eb, NULL, c->logits, err);
        if (rc)
            return rc;
        *n = 0;
    }
    c->tok[*n] = random_token(c);
    c->pos[*n] = pos;
    c->bseq[*n] = seq;
    c->want[*n] = want;
    (*n)++;
    return 0;
}

static int flush(struct bench_ctx *c, int n, struct mp_error *err)
{
    struct fwd_batch b = {n, c->tok, c->pos, c->bseq, c->want};
    return n ? fwd_run(c->st, &b, c->eb, NULL, c->logits, err) : 0;
}

/* Prompts of n_prompt tokens for each sequence, sequence after sequence, ubatch tokens per pass;
 * the logits of each prompt's last token are computed (the first sampled token needs them).
 * Never more than n_seq_max rows of logits per pass, since each sequence wants one. */
static int prefill(struct bench_ctx *c, struct kv_seq **seqs, int n_seq, int n_prompt,
                   struct mp_error *err)
{
    int n = 0, rc = 0;
    for (int s = 0; s < n_seq && !rc; s++)
        for (int i = 0; i < n_prompt && !rc; i++)
            rc = push(c, &n, seqs[s], i, i == n_prompt - 1, err);
    return rc ? rc : flush(c, n, err);
}

static int new_seqs(struct bench_ctx *c, struct kv_seq **seqs, int n_seq, int32_t n_ctx,
                    struct mp_error *err)
{
    if (n_seq > c->n_seq_max || n_ctx > c->n_ctx_max)
        return mp_error_set(err, MP_ERANGE, "bench: %d sequences of %d positions exceed the "
                            "prepared %d of %d", n_seq, n_ctx, c->n_seq_max, c->n_ctx_max);
    for (int s = 0; s < n_seq; s++) {
        int rc = kv_seq_new(c->m, n_ctx, &seqs[s], err);
        if (rc)
            return rc;
    }
    return 0;
}

static void free_seqs(struct kv_seq **seqs, int n_seq)
{
    for (int s = 0; s < n_seq; s++)
        kv_seq_free(seqs[s]);
}

int bench_prompt(struct bench_ctx *c, int n_prompt, double *tok_s, struct mp_error *err)
{
    struct kv_seq *seq = NULL;
    int rc = new_seqs(c, &seq, 1, n_prompt, err);
    double t0 = now_s();
    if (!rc)
        rc = prefill(c, &seq, 1, n_prompt, err);
    *tok_s = n_prompt / (now_s() - t0);
    free_seqs(&seq, 1);
    return rc;
}

static int decode_steps(struct bench_ctx *c, struct kv_seq **seqs, int n_seq, int n_prompt,
                        int n_gen, struct mp_error *err)
{
    int rc = 0;
    for (int step = 0; step < n_gen && !rc; step++) {
        int n = 0;
        for (int s = 0; s < n_seq && !rc; s++)
            rc = push(c, &n, seqs[s], n_prompt + step, true, err);
        if (!rc)
            rc = flush(c, n, err);
    }
    return rc;
}

int bench_decode(struct bench_ctx *c, int n_seq, int n_prompt, int n_gen, double *prompt_tok_s,
                 double *decode_tok_s, struct mp_error *err)
{
    struct kv_seq **seqs = calloc((size_t)n_seq, sizeof(*seqs));
    if (!seqs)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    int rc = new_seqs(c, seqs, n_seq, n_prompt + n_gen, err);
    double t0 = now_s();
    if (!rc)
        rc = prefill(c, seqs, n_seq, n_prompt, err);
    double t1 = now_s();
    if (!rc)
        rc = decode_steps(c, seqs, n_seq, n_prompt, n_gen, err);
    double t2 = now_s();
    if (prompt_tok_s)
        *prompt_tok_s = (double)n_seq * n_prompt / (t1 - t0);
    *decode_tok_s = (double)n_seq * n_gen / (t2 - t1);
    free_seqs(seqs, n_seq);
    free(seqs);
    return rc;
}
