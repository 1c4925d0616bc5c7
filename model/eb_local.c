/* model/eb_local.c: see eb_local.h.
 *
 * A job's (token, slot) pairs are grouped by expert; each expert used by anyone multiplies all its
 * tokens at once (gate and up over the token rows, SwiGLU, down), so a batch reads each expert's
 * weights once. Outputs stay in grouped rows and are mixed per token in slot order,
 * ((y0·w0 + y1·w1) + y2·w2) + ..., as llama.cpp adds them: the result does not depend on which
 * experts were computed first. Skipped slots (EB_SLOT_SKIP) are left out of the grouping and of
 * the sum. Weight pointers come from the expert table, checked per job before any computing. */
#include "model/eb_local.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops.h"
#include "model/repack.h"

struct eb_local {
    const struct model *m;
    const struct expert_table *table;
    struct expert_table *owned; /* the model's own table when the caller passed none */
    struct tp_pool *tp;
    int n_max;
    int k;
    int32_t *count;  /* [n_expert] (token, slot) pairs per expert */
    int32_t *start;  /* [n_expert] first index of each expert's pairs in rows */
    int32_t *rows;   /* [n_max * k] token of each pair, grouped by expert */
    int32_t *at;     /* [n_max * k] grouped row (of y) of pair t * k + slot */
    void *xq_gate;   /* [n_max] inputs converted for the gate matrices */
    void *xq_up;     /* [n_max] ... for the up matrices, when their act type differs */
    size_t xq_stride;
    void *hq;        /* [n_max * k] SwiGLU outputs converted for the down matrices */
    size_t hq_stride;
    float *gate, *up; /* [n_max * k][n_ff_exp] */
    float *y;        /* [n_max * k][n_embd] expert outputs, grouped like rows */
    struct kq_matrix *mat; /* [3 n_expert] gate, up, down of each used expert */
    struct kq_glu *glu;    /* [n_expert] gate and up products, SwiGLU into hq */
    struct kq_mm *down;    /* [n_expert] down products */
};

static int group_by_expert(struct eb_local *b, const struct eb_job *job, struct mp_error *err)
{
    const int64_t n_expert = b->m->hp.n_expert;
    const int n_pairs = job->n_tokens * job->k;
    memset(b->count, 0, (size_t)n_expert * sizeof(*b->count));
    for (int i = 0; i < n_pairs; i++) {
        if (job->ids[i] == EB_SLOT_SKIP)
            continue;
        if (job->ids[i] < 0 || job->ids[i] >= n_expert)
            return mp_error_set(err, MP_ERANGE, "layer %d: expert id %d out of range",
                                job->layer, (int)job->ids[i]);
        if (!expert_table_holds(b->table, job->layer, job->ids[i]))
            return mp_error_set(err, MP_ENOTFOUND, "layer %d: expert %d is not held here",
                                job->layer, (int)job->ids[i]);
        b->count[job->ids[i]]++;
    }
    int32_t next = 0;
    for (int64_t e = 0; e < n_expert; e++) {
        b->start[e] = next;
        next += b->count[e];
    }
    for (int i = 0; i < n_pairs; i++) {
        if (job->ids[i] == EB_SLOT_SKIP)
            continue;
        int32_t at = b->start[job->ids[i]]++;
        b->rows[at] = i / job->k;
        b->at[i] = at;
    }
    for (int64_t e = 0; e < n_expert; e++)
        b->start[e] -= b->count[e];
    return 0;
}

/* Expert matrix x's shape and type (from the model) at the table's address for it, in the
 * layout the table says it has there. */
static struct kq_matrix held(const struct expert_matrix *x, const uint8_t *data,
                             enum kq_layout layout)
{
    struct kq_matrix w = model_expert(x, 0);
    w.data = data;
    w.layout = layout;
    return w;
}

/* Every used expert at once, in two parallel steps whatever the number of experts: gate and up
 * of all experts with SwiGLU and the down conversion done by the threads as rows complete (one
 * row-chunk queue, kq_matmul_glu), then all downs. Grouped pair p keeps row p of
 * gate/up/hq/y. */
static void run_experts(struct eb_local *b, int layer, const struct layer *L,
                        const void *xq_gate, const void *xq_up, size_t xq_stride)
{
    const int64_t n_ff = b->m->hp.n_ff_exp, n_embd = b->m->hp.n_embd;
    int n_mm = 0;
    for (int64_t e = 0; e < b->m->hp.n_expert; e++) {
        const int n = b->count[e];
        if (!n)
            continue;
        const int32_t *rows = b->rows + b->start[e];
        const size_t at = (size_t)b->start[e];
        const struct expert_weights *w = expert_table_get(b->table, layer, e);
        struct kq_matrix *mat = b->mat + 3 * n_mm;
        mat[0] = held(&L->gate_exps, w->gate, w->layout[0]);
        mat[1] = held(&L->up_exps, w->up, w->layout[1]);
        mat[2] = held(&L->down_exps, w->down, w->layout[2]);
        uint8_t *hq = (uint8_t *)b->hq + at * b->hq_stride;
        b->glu[n_mm] = (struct kq_glu){
            .gate = {&mat[0], xq_gate, xq_stride, rows, n, b->gate + at * n_ff, (size_t)n_ff},
            .up = {&mat[1], xq_up, xq_stride, rows, n, b->up + at * n_ff, (size_t)n_ff},
            .hq = hq,
            .hq_stride = b->hq_stride};
        b->down[n_mm] = (struct kq_mm){&mat[2], hq, b->hq_stride, NULL, n, b->y + at * n_embd,
                                       (size_t)n_embd};
        n_mm++;
    }
    kq_matmul_glu(b->tp, L->down_exps.type, op_swiglu, n_mm, b->glu);
    kq_matmul_multi(b->tp, n_mm, b->down);
}

/* The first computed slot sets the sum, the others add to it in slot order: without skipped
 * slots this is exactly y0·w0 + y1·w1 + ... as before. */
static void mix(const struct eb_local *b, const struct eb_job *job, float *out)
{
    const int64_t n_embd = job->n_embd;
    for (int t = 0; t < job->n_tokens; t++) {
        float *o = out + (size_t)t * n_embd;
        const float *w = job->weights + (size_t)t * job->k;
        const int32_t *ids = job->ids + (size_t)t * job->k;
        const int32_t *at = b->at + (size_t)t * job->k;
        bool first = true;
        for (int s = 0; s < job->k; s++) {
            if (ids[s] == EB_SLOT_SKIP)
                continue;
            const float *ys = b->y + (size_t)at[s] * n_embd;
            if (first)
                for (int64_t i = 0; i < n_embd; i++)
                    o[i] = ys[i] * w[s];
            else
                for (int64_t i = 0; i < n_embd; i++)
                    o[i] += ys[i] * w[s];
            first = false;
        }
        if (first)
            memset(o, 0, (size_t)n_embd * sizeof(float));
    }
}

static int local_run(void *self, const struct eb_job *job, float *out, struct mp_error *err)
{
    struct eb_local *b = self;
    const struct model *m = b->m;
    if (job->layer < 0 || job->layer >= m->hp.n_layer || !m->hp.is_moe[job->layer])
        return mp_error_set(err, MP_EINVAL, "layer %d has no experts", job->layer);
    if (job->n_tokens < 0 || job->n_tokens > b->n_max || job->k != b->k ||
        job->n_embd != m->hp.n_embd)
        return mp_error_set(err, MP_EINVAL, "expert job of %d tokens x %d experts does not fit",
                            job->n_tokens, job->k);
    const struct layer *L = &m->layers[job->layer];
    const bool same_act =
        kq_format(L->up_exps.type)->act_type == kq_format(L->gate_exps.type)->act_type;
    if ((job->xq && !same_act) || (!job->xq && !job->x))
        return mp_error_set(err, MP_EINVAL, "layer %d: expert job without usable inputs",
                            job->layer);
    int rc = group_by_expert(b, job, err);
    if (rc)
        return rc;
    const void *xq_gate = job->xq, *xq_up = job->xq;
    size_t stride = job->xq_stride;
    if (!job->xq) {
        stride = b->xq_stride;
        kq_convert_act(b->tp, L->gate_exps.type, job->x, (size_t)m->hp.n_embd, job->n_tokens,
                       m->hp.n_embd, b->xq_gate, stride);
        xq_gate = xq_up = b->xq_gate;
        if (!same_act) {
            kq_convert_act(b->tp, L->up_exps.type, job->x, (size_t)m->hp.n_embd, job->n_tokens,
                           m->hp.n_embd, b->xq_up, stride);
            xq_up = b->xq_up;
        }
    }
    run_experts(b, job->layer, L, xq_gate, xq_up, stride);
    mix(b, job, out);
    return 0;
}

static void local_free(void *self)
{
    struct eb_local *b = self;
    if (!b)
        return;
    expert_table_free(b->owned);
    free(b->count);
    free(b->start);
    free(b->rows);
    free(b->at);
    free(b->xq_gate);
    free(b->xq_up);
    free(b->hq);
    free(b->gate);
    free(b->up);
    free(b->y);
    free(b->mat);
    free(b->glu);
    free(b->down);
    free(b);
}

static const struct eb_ops local_ops = {.run = local_run, .free = local_free};

int eb_local_new(const struct model *m, const struct expert_table *table, struct tp_pool *tp,
                 int n_max, struct expert_backend *out, struct mp_error *err)
{
    struct eb_local *b = calloc(1, sizeof(*b));
    if (!b)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    if (!table) {
        int rc = repack_model_experts(m, NULL, tp_n_threads(tp), err);
        if (!rc)
            rc = expert_table_from_model(m, &b->owned, err);
        if (rc) {
            free(b);
            return rc;
        }
        table = b->owned;
    }
    if (table->n_layer != m->hp.n_layer || table->n_expert != m->hp.n_expert) {
        local_free(b);
        return mp_error_set(err, MP_EINVAL, "expert table of %lld x %lld does not fit the model",
                            (long long)table->n_layer, (long long)table->n_expert);
    }
    b->table = table;
    const int64_t n_expert = m->hp.n_expert, n_ff = m->hp.n_ff_exp, n_embd = m->hp.n_embd;
    const size_t n_pairs = (size_t)n_max * (size_t)m->hp.n_expert_used;
    b->m = m;
    b->tp = tp;
    b->n_max = n_max;
    b->k = (int)m->hp.n_expert_used;
    b->xq_stride = kq_act_row_bytes_max(n_embd);
    b->hq_stride = kq_act_row_bytes_max(n_ff);
    b->count = calloc((size_t)n_expert, sizeof(*b->count));
    b->start = calloc((size_t)n_expert, sizeof(*b->start));
    b->rows = calloc(n_pairs, sizeof(*b->rows));
    b->at = calloc(n_pairs, sizeof(*b->at));
    b->xq_gate = malloc((size_t)n_max * b->xq_stride);
    b->xq_up = malloc((size_t)n_max * b->xq_stride);
    /* One expert may get up to n_pairs rows: a forced routing can name an expert twice. */
    b->hq = malloc(n_pairs * b->hq_stride);
    b->gate = malloc(n_pairs * (size_t)n_ff * sizeof(float));
    b->up = malloc(n_pairs * (size_t)n_ff * sizeof(float));
    b->y = malloc(n_pairs * (size_t)n_embd * sizeof(float));
    b->mat = malloc(3 * (size_t)n_expert * sizeof(*b->mat));
    b->glu = malloc((size_t)n_expert * sizeof(*b->glu));
    b->down = malloc((size_t)n_expert * sizeof(*b->down));
    if (!b->mat || !b->glu || !b->down ||
        !b->count || !b->start || !b->rows || !b->at || !b->xq_gate || !b->xq_up || !b->hq ||
        !b->gate || !b->up || !b->y) {
        local_free(b);
        return mp_error_set(err, MP_ENOMEM, "out of memory for expert scratch (%d tokens)", n_max);
    }
    *out = (struct expert_backend){.ops = &local_ops, .self = b};
    return 0;
}

bool eb_local_converted_input_ok(const struct model *m, int layer)
{
    const struct layer *L = &m->layers[layer];
    const enum kq_type act = kq_format(L->gate_exps.type)->act_type;
    return act != KQ_F32 && kq_format(L->up_exps.type)->act_type == act;
}
