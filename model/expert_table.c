/* model/expert_table.c: see expert_table.h. */
#include "model/expert_table.h"

#include <stdlib.h>

int expert_table_new(int64_t n_layer, int64_t n_expert, struct expert_table **out,
                     struct mp_error *err)
{
    *out = NULL;
    if (n_layer <= 0 || n_expert <= 0 || n_layer > MODEL_MAX_LAYERS || n_expert > (1 << 20))
        return mp_error_set(err, MP_EINVAL, "expert table of %lld layers x %lld experts",
                            (long long)n_layer, (long long)n_expert);
    struct expert_table *t = calloc(1, sizeof(*t));
    if (t)
        t->w = calloc((size_t)(n_layer * n_expert), sizeof(*t->w));
    if (!t || !t->w) {
        free(t);
        return mp_error_set(err, MP_ENOMEM, "out of memory for the expert table");
    }
    t->n_layer = n_layer;
    t->n_expert = n_expert;
    *out = t;
    return 0;
}

struct expert_weights expert_weights_of(const struct layer *L, int64_t e)
{
    const struct kq_matrix g = model_expert(&L->gate_exps, e), u = model_expert(&L->up_exps, e),
                           d = model_expert(&L->down_exps, e);
    return (struct expert_weights){
        .gate = g.data, .up = u.data, .down = d.data, .layout = {g.layout, u.layout, d.layout}};
}

int expert_table_from_model(const struct model *m, struct expert_table **out, struct mp_error *err)
{
    int rc = expert_table_new(m->hp.n_layer, m->hp.n_expert, out, err);
    if (rc)
        return rc;
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        const struct layer *L = &m->layers[il];
        if (!m->hp.is_moe[il])
            continue;
        for (int64_t e = 0; e < m->hp.n_expert; e++)
            (*out)->w[il * m->hp.n_expert + e] = expert_weights_of(L, e);
    }
    return 0;
}

void expert_table_free(struct expert_table *t)
{
    if (!t)
        return;
    free(t->w);
    free(t);
}

const struct expert_weights *expert_table_get(const struct expert_table *t, int64_t il, int64_t e)
{
    if (!t || il < 0 || il >= t->n_layer || e < 0 || e >= t->n_expert)
        return NULL;
    return &t->w[il * t->n_expert + e];
}

bool expert_table_holds(const struct expert_table *t, int64_t il, int64_t e)
{
    const struct expert_weights *w = expert_table_get(t, il, e);
    return w && w->gate;
}

int64_t expert_table_count(const struct expert_table *t)
{
    int64_t n = 0;
    for (int64_t i = 0; t && i < t->n_layer * t->n_expert; i++)
        n += t->w[i].gate != NULL;
    return n;
}

static struct file_range slice(const struct model *m, const struct expert_matrix *x, int64_t e)
{
    const uint8_t *p = x->data + (size_t)e * x->expert_bytes;
    return (struct file_range){.offset = (uint64_t)(p - m->gguf->base), .len = x->expert_bytes};
}

int expert_file_ranges(const struct model *m, int64_t il, int64_t e, struct file_range out[3],
                       struct mp_error *err)
{
    if (il < 0 || il >= m->hp.n_layer || !m->hp.is_moe[il])
        return mp_error_set(err, MP_ERANGE, "block %lld has no experts", (long long)il);
    if (e < 0 || e >= m->hp.n_expert)
        return mp_error_set(err, MP_ERANGE, "block %lld: expert %lld out of range (%lld experts)",
                            (long long)il, (long long)e, (long long)m->hp.n_expert);
    const struct layer *L = &m->layers[il];
    out[0] = slice(m, &L->gate_exps, e);
    out[1] = slice(m, &L->up_exps, e);
    out[2] = slice(m, &L->down_exps, e);
    return 0;
}

size_t expert_bytes(const struct model *m, int64_t il)
{
    if (il < 0 || il >= m->hp.n_layer || !m->hp.is_moe[il])
        return 0;
    const struct layer *L = &m->layers[il];
    return L->gate_exps.expert_bytes + L->up_exps.expert_bytes + L->down_exps.expert_bytes;
}

int expert_refs_all(const struct model *m, struct expert_ref **out, size_t *n, struct mp_error *err)
{
    *out = NULL;
    *n = (size_t)m->n_moe_layers * (size_t)m->hp.n_expert;
    if (*n == 0)
        return 0;
    struct expert_ref *r = malloc(*n * sizeof(*r));
    if (!r)
        return mp_error_set(err, MP_ENOMEM, "out of memory for %zu expert refs", *n);
    size_t k = 0;
    for (int64_t il = 0; il < m->hp.n_layer; il++)
        for (int64_t e = 0; m->hp.is_moe[il] && e < m->hp.n_expert; e++)
            r[k++] = (struct expert_ref){.il = (int32_t)il, .expert = (int32_t)e};
    *out = r;
    return 0;
}
