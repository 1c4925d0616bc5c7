/* model/kvcache.c: see kvcache.h. */
#include "model/kvcache.h"

#include <stdlib.h>
#include <string.h>

static size_t kv_row_elems(const struct model *m, int il)
{
    return (size_t)(m->hp.n_head_kv[il] * m->hp.head_dim);
}

static size_t conv_elems(const struct model *m)
{
    return (size_t)((m->hp.conv_l_cache - 1) * m->hp.n_embd);
}

size_t kv_seq_bytes(const struct model *m, int32_t n_ctx)
{
    size_t total = 0;
    for (int il = 0; il < m->hp.n_layer; il++)
        total += m->hp.kind[il] == LAYER_ATTENTION
                     ? 2 * (size_t)n_ctx * kv_row_elems(m, il) * sizeof(uint16_t)
                     : conv_elems(m) * sizeof(float);
    return total;
}

int kv_seq_new(const struct model *m, int32_t n_ctx, struct kv_seq **out, struct mp_error *err)
{
    *out = NULL;
    if (n_ctx < 1)
        return mp_error_set(err, MP_EINVAL, "context size must be at least 1");
    struct kv_seq *s = calloc(1, sizeof(*s));
    if (!s)
        return mp_error_set(err, MP_ENOMEM, "out of memory for a sequence");
    s->n_ctx = n_ctx;
    s->n_layer = m->hp.n_layer;
    s->k = calloc((size_t)s->n_layer, sizeof(*s->k));
    s->v = calloc((size_t)s->n_layer, sizeof(*s->v));
    s->conv = calloc((size_t)s->n_layer, sizeof(*s->conv));
    bool ok = s->k && s->v && s->conv;
    for (int il = 0; ok && il < s->n_layer; il++) {
        if (m->hp.kind[il] == LAYER_ATTENTION) {
            size_t n = (size_t)n_ctx * kv_row_elems(m, il);
            s->k[il] = malloc(n * sizeof(uint16_t));
            s->v[il] = malloc(n * sizeof(uint16_t));
            ok = s->k[il] && s->v[il];
        } else {
            s->conv[il] = calloc(conv_elems(m) ? conv_elems(m) : 1, sizeof(float));
            ok = s->conv[il] != NULL;
        }
    }
    if (!ok) {
        kv_seq_free(s);
        return mp_error_set(err, MP_ENOMEM, "out of memory for a KV cache of %d positions",
                            (int)n_ctx);
    }
    *out = s;
    return 0;
}

void kv_seq_clear(struct kv_seq *s, const struct model *m)
{
    s->n_pos = 0;
    for (int il = 0; il < s->n_layer; il++)
        if (s->conv[il])
            memset(s->conv[il], 0, conv_elems(m) * sizeof(float));
}

void kv_seq_free(struct kv_seq *s)
{
    if (!s)
        return;
    for (int il = 0; il < s->n_layer; il++) {
        if (s->k)
            free(s->k[il]);
        if (s->v)
            free(s->v[il]);
        if (s->conv)
            free(s->conv[il]);
    }
    free(s->k);
    free(s->v);
    free(s->conv);
    free(s);
}
