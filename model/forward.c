/* model/forward.c: the forward pass (see forward.h). Reads like the architecture specs in
 * ../shared/docs/models/: embed; per block: norm → mixer (attention or short conv) → residual →
 * norm → FFN (dense or MoE through the expert backend) → residual; final norm; head. */
#include "model/forward.h"

#include <stdlib.h>
#include <string.h>

#include "model/ops.h"
#include "model/repack.h"
#include "model/router.h"

void fwd_matmul(struct fwd_state *st, const struct kq_matrix *W, const float *x, int n_tok,
                float *y)
{
    kq_convert_act(st->tp, W->type, x, (size_t)W->n_cols, n_tok, W->n_cols, st->xq,
                   st->xq_stride);
    kq_matmul(st->tp, W, st->xq, st->xq_stride, n_tok, y, (size_t)W->n_rows);
}

void fwd_matmul_many(struct fwd_state *st, const float *x, int n_tok, int n,
                     const struct kq_matrix *const *W, float *const *y)
{
    bool done[8] = {false};
    struct kq_mm mm[8];
    MP_ASSERT(n <= 8);
    for (int i = 0; i < n; i++) {
        if (done[i])
            continue;
        enum kq_type act = kq_format(W[i]->type)->act_type;
        kq_convert_act(st->tp, W[i]->type, x, (size_t)W[i]->n_cols, n_tok, W[i]->n_cols, st->xq,
                       st->xq_stride);
        /* every matrix taking this act type, as one parallel step */
        int n_mm = 0;
        for (int j = i; j < n; j++) {
            if (done[j] || kq_format(W[j]->type)->act_type != act)
                continue;
            mm[n_mm++] = (struct kq_mm){W[j], st->xq, st->xq_stride, NULL, n_tok, y[j],
                                        (size_t)W[j]->n_rows};
            done[j] = true;
        }
        kq_matmul_multi(st->tp, n_mm, mm);
    }
}

static int64_t widest_input(const struct model *m)
{
    const struct hparams *hp = &m->hp;
    int64_t w = 3 * hp->n_embd;
    w = hp->n_head * hp->head_dim > w ? hp->n_head * hp->head_dim : w;
    w = hp->n_ff_exp > w ? hp->n_ff_exp : w;
    for (int64_t il = 0; il < hp->n_layer; il++)
        w = !hp->is_moe[il] && hp->n_ff[il] > w ? hp->n_ff[il] : w;
    return w;
}

static int64_t widest_kv(const struct model *m)
{
    int64_t w = 0;
    for (int64_t il = 0; il < m->hp.n_layer; il++)
        w = m->hp.n_head_kv[il] > w ? m->hp.n_head_kv[il] : w;
    return w * m->hp.head_dim;
}

int fwd_state_new(const struct model *m, int n_max, int32_t n_ctx_max, struct tp_pool *tp,
                  struct fwd_state **out, struct mp_error *err)
{
    const struct hparams *hp = &m->hp;
    const size_t n = (size_t)n_max, n_embd = (size_t)hp->n_embd;
    const size_t n_q = (size_t)(hp->n_head * hp->head_dim), n_kv = (size_t)widest_kv(m);
    const size_t wide = (size_t)widest_input(m), k = (size_t)hp->n_expert_used;
    *out = NULL;
    int rc = repack_model_dense(m, tp_n_threads(tp), err); /* once per model: the first state */
    if (rc)
        return rc;
    struct fwd_state *st = calloc(1, sizeof(*st));
    if (!st)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    st->m = m;
    st->tp = tp;
    st->n_max = n_max;
    st->n_ctx_max = n_ctx_max;
    st->xq_stride = kq_act_row_bytes_max((int64_t)wide);
    st->h = malloc(n * n_embd * sizeof(float));
    st->a = malloc(n * n_embd * sizeof(float));
    st->mix = malloc(n * n_embd * sizeof(float));
    st->q = malloc(n * n_q * sizeof(float));
    st->k = malloc(n * (n_kv ? n_kv : 1) * sizeof(float));
    st->v = malloc(n * (n_kv ? n_kv : 1) * sizeof(float));
    st->att = malloc(n * n_q * sizeof(float));
    st->scores = malloc((size_t)tp_n_threads(tp) * (size_t)n_ctx_max * sizeof(float));
    st->big0 = malloc(n * wide * sizeof(float));
    st->big1 = malloc(n * wide * sizeof(float));
    st->xq = malloc(n * st->xq_stride);
    st->xq_up = malloc(n * st->xq_stride);
    st->hq = malloc(n * st->xq_stride);
    st->router = malloc(n * (size_t)hp->n_expert * sizeof(float));
    st->top = malloc(n * k * sizeof(int32_t));
    st->weights = malloc(n * k * sizeof(float));
    st->head_tmp = malloc(n * n_embd * sizeof(float));
    if (!st->h || !st->a || !st->mix || !st->q || !st->k || !st->v || !st->att || !st->scores ||
        !st->big0 || !st->big1 || !st->xq || !st->xq_up || !st->hq || !st->router || !st->top ||
        !st->weights || !st->head_tmp) {
        fwd_state_free(st);
        return mp_error_set(err, MP_ENOMEM, "out of memory for a batch of %d tokens", n_max);
    }
    *out = st;
    return 0;
}

void fwd_state_free(struct fwd_state *st)
{
    if (!st)
        return;
    free(st->h);
    free(st->a);
    free(st->mix);
    free(st->q);
    free(st->k);
    free(st->v);
    free(st->att);
    free(st->scores);
    free(st->big0);
    free(st->big1);
    free(st->xq);
    free(st->xq_up);
    free(st->hq);
    free(st->router);
    free(st->top);
    free(st->weights);
    free(st->head_tmp);
    free(st);
}

/* Each token must extend its sequence at the next position, inside the context. */
static int check_batch(const struct fwd_state *st, const struct fwd_batch *b,
                       struct mp_error *err)
{
    if (b->n_tokens < 1 || b->n_tokens > st->n_max)
        return mp_error_set(err, MP_EINVAL, "batch of %d tokens (at most %d)", b->n_tokens,
                            st->n_max);
    for (int t = 0; t < b->n_tokens; t++) {
        if (b->token[t] < 0 || b->token[t] >= st->m->hp.n_vocab)
            return mp_error_set(err, MP_ERANGE, "token id %d is outside the vocabulary (%lld)",
                                (int)b->token[t], (long long)st->m->hp.n_vocab);
        int32_t expect = b->seq[t]->n_pos;
        for (int u = 0; u < t; u++)
            expect += b->seq[u] == b->seq[t];
        if (b->pos[t] != expect)
            return mp_error_set(err, MP_EINVAL, "token %d is at position %d, expected %d", t,
                                (int)b->pos[t], (int)expect);
        if (b->pos[t] >= b->seq[t]->n_ctx || b->pos[t] >= st->n_ctx_max)
            return mp_error_set(err, MP_ERANGE, "position %d is past the context of %d",
                                (int)b->pos[t], (int)b->seq[t]->n_ctx);
    }
    return 0;
}

static void embed(struct fwd_state *st, const struct fwd_batch *b)
{
    const struct kq_matrix *E = &st->m->tok_embd;
    for (int t = 0; t < b->n_tokens; t++)
        kq_matrix_row_to_f32(E, b->token[t], st->h + (size_t)t * E->n_cols);
}

static void norm_rows(struct fwd_state *st, int n_tok, const float *w)
{
    const struct hparams *hp = &st->m->hp;
    for (int t = 0; t < n_tok; t++)
        op_rmsnorm(st->a + t * hp->n_embd, st->h + t * hp->n_embd, w, hp->n_embd, hp->rms_eps);
}

static void add_residual(struct fwd_state *st, int n_tok)
{
    const size_t n = (size_t)n_tok * (size_t)st->m->hp.n_embd;
    for (size_t i = 0; i < n; i++)
        st->h[i] += st->mix[i];
}

/* gate and up with SwiGLU and the down's conversion in one parallel step (kq_matmul_glu), then
 * down. */
static void dense_ffn(struct fwd_state *st, const struct layer *L, int n_tok)
{
    const int64_t n_embd = st->m->hp.n_embd, n_ff = L->ffn_gate.n_rows;
    const void *xq_up = st->xq;
    kq_convert_act(st->tp, L->ffn_gate.type, st->a, (size_t)n_embd, n_tok, n_embd, st->xq,
                   st->xq_stride);
    if (kq_format(L->ffn_up.type)->act_type != kq_format(L->ffn_gate.type)->act_type) {
        kq_convert_act(st->tp, L->ffn_up.type, st->a, (size_t)n_embd, n_tok, n_embd, st->xq_up,
                       st->xq_stride);
        xq_up = st->xq_up;
    }
    const struct kq_glu glu = {
        .gate = {&L->ffn_gate, st->xq, st->xq_stride, NULL, n_tok, st->big0, (size_t)n_ff},
        .up = {&L->ffn_up, xq_up, st->xq_stride, NULL, n_tok, st->big1, (size_t)n_ff},
        .hq = st->hq,
        .hq_stride = st->xq_stride};
    kq_matmul_glu(st->tp, L->ffn_down.type, op_swiglu, 1, &glu);
    kq_matmul(st->tp, &L->ffn_down, st->hq, st->xq_stride, n_tok, st->mix, (size_t)n_embd);
}

/* Routes every token (optionally forced, optionally traced) and runs the experts. */
static int moe_ffn(struct fwd_state *st, int il, const struct fwd_batch *b,
                   struct expert_backend *eb, const struct fwd_trace *trace, int *ticket,
                   struct mp_error *err)
{
    const struct hparams *hp = &st->m->hp;
    const struct layer *L = &st->m->layers[il];
    const int k = (int)hp->n_expert_used;
    const int64_t moe = model_moe_index(st->m, il);
    int32_t own[64];
    fwd_matmul(st, &L->router, st->a, b->n_tokens, st->router);
    for (int t = 0; t < b->n_tokens; t++) {
        if (trace && b->pos[t] >= trace->n_pos)
            return mp_error_set(err, MP_ERANGE, "routing trace has no position %d",
                                (int)b->pos[t]);
        const int64_t at = (moe * (trace ? trace->n_pos : 0) + b->pos[t]) * k;
        const int32_t *forced = trace && trace->force ? trace->force + at : NULL;
        if (router_route(hp, st->router + t * hp->n_expert, L->expert_bias, forced, own,
                         st->top + t * k, st->weights + t * k))
            return mp_error_set(err, MP_ERANGE, "forced routing names an expert outside 0..%lld "
                                "(layer %d, position %d)", (long long)hp->n_expert - 1, il,
                                (int)b->pos[t]);
        if (trace && trace->dump)
            memcpy(trace->dump + at, own, (size_t)k * sizeof(int32_t));
    }
    struct eb_job job = {.layer = il, .n_tokens = b->n_tokens, .k = k, .n_embd = hp->n_embd,
                         .x = st->a, .ids = st->top, .weights = st->weights};
    if (ticket)
        return eb->ops->submit(eb->self, &job, st->mix, ticket, err);
    return eb_run(eb, &job, st->mix, err);
}

/* A block up to its FFN's output in st->mix, without the last residual add. With ticket set,
 * a MoE layer's experts are only submitted (*ticket; -1 for a dense FFN): eb's wait finishes
 * them. */
static int layer_front(struct fwd_state *st, int il, const struct fwd_batch *b,
                       struct expert_backend *eb, const struct fwd_trace *trace, int *ticket,
                       struct mp_error *err)
{
    const struct layer *L = &st->m->layers[il];
    int rc = 0;
    if (ticket)
        *ticket = -1;
    norm_rows(st, b->n_tokens, L->attn_norm);
    if (L->kind == LAYER_ATTENTION)
        rc = attn_forward(st, il, b, st->a, st->mix, err);
    else
        conv_forward(st, il, b, st->a, st->mix);
    if (rc)
        return rc;
    add_residual(st, b->n_tokens);
    norm_rows(st, b->n_tokens, L->ffn_norm);
    if (L->is_moe)
        return moe_ffn(st, il, b, eb, trace, ticket, err);
    dense_ffn(st, L, b->n_tokens);
    return 0;
}

static int run_layer(struct fwd_state *st, int il, const struct fwd_batch *b,
                     struct expert_backend *eb, const struct fwd_trace *trace,
                     struct mp_error *err)
{
    int rc = layer_front(st, il, b, eb, trace, NULL, err);
    if (!rc)
        add_residual(st, b->n_tokens);
    return rc;
}

/* Final norm and head, only for the rows whose logits are wanted. */
static void head(struct fwd_state *st, const struct fwd_batch *b, float *logits)
{
    const struct hparams *hp = &st->m->hp;
    int n = 0;
    for (int t = 0; t < b->n_tokens; t++)
        if (!b->want_logits || b->want_logits[t])
            op_rmsnorm(st->head_tmp + n++ * hp->n_embd, st->h + t * hp->n_embd,
                       st->m->output_norm, hp->n_embd, hp->rms_eps);
    if (n)
        fwd_matmul(st, &st->m->output, st->head_tmp, n, logits);
}

/* st's scratch from row `first` on: the rows of a batch's second half. Every per-token buffer
 * is [n_max][width], so the halves' rows never overlap; the attention scores are per thread
 * and the halves never compute at the same time. */
static struct fwd_state rows_from(const struct fwd_state *st, int first)
{
    const struct model *m = st->m;
    const size_t f = (size_t)first, n_embd = (size_t)m->hp.n_embd;
    const size_t n_q = (size_t)(m->hp.n_head * m->hp.head_dim), n_kv = (size_t)widest_kv(m);
    const size_t wide = (size_t)widest_input(m), k = (size_t)m->hp.n_expert_used;
    struct fwd_state v = *st;
    v.h += f * n_embd;
    v.a += f * n_embd;
    v.mix += f * n_embd;
    v.q += f * n_q;
    v.k += f * (n_kv ? n_kv : 1);
    v.v += f * (n_kv ? n_kv : 1);
    v.att += f * n_q;
    v.big0 += f * wide;
    v.big1 += f * wide;
    v.xq = (uint8_t *)v.xq + f * st->xq_stride;
    v.xq_up = (uint8_t *)v.xq_up + f * st->xq_stride;
    v.hq = (uint8_t *)v.hq + f * st->xq_stride;
    v.router += f * (size_t)m->hp.n_expert;
    v.top += f * k;
    v.weights += f * k;
    v.n_max = st->n_max - first;
    return v;
}

/* The batch in two halves, pipelined through every layer so that one half's mixer computes
 * while the other half's experts are out (a pipelining backend: the cluster's workers):
 *   layer l: [wait A(l-1)] A mixer l, submit A(l); [wait B(l-1)] B mixer l, submit B(l).
 * A runs each layer before B, so B's tokens find the keys, values and conv state of A's tokens
 * of the same sequence exactly as in one batch; every token's arithmetic is its own (batch
 * invariance), so the output is the unsplit batch's, bit for bit. */
static int run_split(struct fwd_state *st, const struct fwd_batch *b, struct expert_backend *eb,
                     const struct fwd_trace *trace, struct mp_error *err)
{
    const int cut = (b->n_tokens + 1) / 2;
    struct fwd_state half[2] = {*st, rows_from(st, cut)};
    struct fwd_batch hb[2] = {*b, *b};
    hb[0].n_tokens = cut;
    hb[1].n_tokens = b->n_tokens - cut;
    hb[1].token += cut;
    hb[1].pos += cut;
    hb[1].seq += cut;
    hb[1].want_logits = b->want_logits ? b->want_logits + cut : NULL;
    int ticket[2] = {-1, -1}, rc = 0;
    for (int il = 0; il < st->m->hp.n_layer && !rc; il++)
        for (int h = 0; h < 2 && !rc; h++) {
            if (ticket[h] >= 0 && !(rc = eb->ops->wait(eb->self, ticket[h], err)))
                add_residual(&half[h], hb[h].n_tokens);
            ticket[h] = -1;
            if (!rc && !(rc = layer_front(&half[h], il, &hb[h], eb, trace, &ticket[h], err)) &&
                ticket[h] < 0)
                add_residual(&half[h], hb[h].n_tokens); /* a dense FFN is done */
        }
    for (int h = 0; h < 2 && !rc; h++) {
        if (ticket[h] >= 0 && !(rc = eb->ops->wait(eb->self, ticket[h], err)))
            add_residual(&half[h], hb[h].n_tokens);
        ticket[h] = -1;
    }
    if (rc && eb->ops->cancel)
        eb->ops->cancel(eb->self);
    return rc;
}

int fwd_run(struct fwd_state *st, const struct fwd_batch *b, struct expert_backend *eb,
            const struct fwd_trace *trace, float *logits, struct mp_error *err)
{
    int rc = check_batch(st, b, err);
    if (rc)
        return rc;
    embed(st, b);
    if (eb->ops->submit && eb->ops->wait && b->n_tokens >= 2) {
        if ((rc = run_split(st, b, eb, trace, err)))
            return rc;
    } else {
        for (int il = 0; il < st->m->hp.n_layer; il++)
            if ((rc = run_layer(st, il, b, eb, trace, err)))
                return rc;
    }
    for (int t = 0; t < b->n_tokens; t++)
        b->seq[t]->n_pos = b->pos[t] + 1;
    if (logits)
        head(st, b, logits);
    return 0;
}
