/* model/attention.c: GQA self-attention with per-head Q/K RMSNorm and NEOX RoPE, over an F16
 * KV cache (../shared/docs/models/lfm2moe.md §5.2, qwen3moe.md §5). Keys and values of the whole
 * batch are written to their sequences' caches first, then every (token, head) attends causally
 * to positions 0..pos of its own sequence, so one batch may mix sequences and prefill chunks.
 *
 * Numerics follow llama.cpp's CPU path for short batches: K and V stored as F16, Q rounded to F16
 * for the Q·K dot (the F16 table dot, lanes summed as ggml_vec_dot_f16 does), softmax in F32 with
 * a double sum, V accumulated in F32 in position order. */
#include <math.h>
#include <string.h>

#include "kernels/kq.h"
#include "model/forward.h"
#include "model/ops.h"

struct attn_ctx {
    struct fwd_state *st;
    const struct fwd_batch *b;
    int il;
    float *out; /* [n_tok][n_head * head_dim] */
};

/* Per-head RMSNorm of Q and K, then RoPE with one set of angles per token for all its heads
 * (head_dim <= 1024, checked at load, so n_rot/2 pairs fit). */
static void normalise_and_rotate(struct fwd_state *st, int il, const struct fwd_batch *b)
{
    const struct hparams *hp = &st->m->hp;
    const struct layer *L = &st->m->layers[il];
    const int64_t hd = hp->head_dim, n_q = hp->n_head * hd, n_kv = hp->n_head_kv[il] * hd;
    float cs[1024];
    for (int t = 0; t < b->n_tokens; t++) {
        op_rope_angles(cs, hp->n_rot, b->pos[t], hp->rope_base);
        for (int64_t h = 0; h < hp->n_head; h++) {
            float *qh = st->q + t * n_q + h * hd;
            op_rmsnorm(qh, qh, L->attn_q_norm, hd, hp->rms_eps);
            op_rope_neox_cs(qh, hp->n_rot, cs);
        }
        for (int64_t h = 0; h < hp->n_head_kv[il]; h++) {
            float *kh = st->k + t * n_kv + h * hd;
            op_rmsnorm(kh, kh, L->attn_k_norm, hd, hp->rms_eps);
            op_rope_neox_cs(kh, hp->n_rot, cs);
        }
    }
}

static void store_kv(struct fwd_state *st, int il, const struct fwd_batch *b)
{
    const int64_t n_kv = st->m->hp.n_head_kv[il] * st->m->hp.head_dim;
    const struct kq_format *f16 = kq_format(KQ_F16);
    for (int t = 0; t < b->n_tokens; t++) {
        f16->from_f32(st->k + t * n_kv, b->seq[t]->k[il] + (size_t)b->pos[t] * n_kv, n_kv);
        f16->from_f32(st->v + t * n_kv, b->seq[t]->v[il] + (size_t)b->pos[t] * n_kv, n_kv);
    }
}

/* One query head of one token against its sequence's cache: Q rounded to F16, scores through the
 * table's F16 dot (the SIMD level's), softmax, then the weighted V sum kept in registers. */
static void attend(struct attn_ctx *c, int t, int64_t h, float *scores)
{
    const struct hparams *hp = &c->st->m->hp;
    const int64_t hd = hp->head_dim, n_kv_heads = hp->n_head_kv[c->il];
    const int64_t n_kv = n_kv_heads * hd, kv_head = h / (hp->n_head / n_kv_heads);
    const struct kv_seq *s = c->b->seq[t];
    const int32_t n = c->b->pos[t] + 1;
    const float *q = c->st->q + t * hp->n_head * hd + h * hd;
    const float scale = 1.0f / sqrtf((float)hd);
    const struct kq_format *f16 = kq_format(KQ_F16);
    uint16_t qh[1024];
    f16->from_f32(q, qh, hd);
    const uint16_t *k = s->k[c->il] + kv_head * hd;
    for (int32_t j = 0; j < n; j++, k += n_kv) {
        float dot;
        f16->dot(hd, &dot, k, qh);
        scores[j] = dot * scale;
    }
    op_softmax(scores, n);
    float *out = c->out + t * hp->n_head * hd + h * hd;
    memset(out, 0, (size_t)hd * sizeof(float));
    kq_mad_rows_f16(hd, n, out, scores, s->v[c->il] + kv_head * hd, (size_t)n_kv);
}

static void attend_task(void *ctx, int ith, int nth)
{
    struct attn_ctx *c = ctx;
    const int64_t n_head = c->st->m->hp.n_head;
    const int64_t n_pairs = c->b->n_tokens * n_head;
    float *scores = c->st->scores + (size_t)ith * c->st->n_ctx_max;
    for (int64_t i = ith; i < n_pairs; i += nth)
        attend(c, (int)(i / n_head), i % n_head, scores);
}

int attn_forward(struct fwd_state *st, int il, const struct fwd_batch *b, const float *a,
                 float *out, struct mp_error *err)
{
    const struct layer *L = &st->m->layers[il];
    const struct kq_matrix *W[3] = {&L->attn_q, &L->attn_k, &L->attn_v};
    float *Y[3] = {st->q, st->k, st->v};
    (void)err;
    fwd_matmul_many(st, a, b->n_tokens, 3, W, Y);
    normalise_and_rotate(st, il, b);
    store_kv(st, il, b);
    struct attn_ctx c = {.st = st, .b = b, .il = il, .out = st->att};
    tp_run(st->tp, attend_task, &c);
    fwd_matmul(st, &L->attn_output, st->att, b->n_tokens, out);
    return 0;
}
