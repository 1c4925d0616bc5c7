/* model/model.c: binds a GGUF file to an architecture (see model.h).
 *
 * Generic keys ({arch}.block_count, embedding_length, ...) and the tensors that every supported
 * architecture names the same way are handled here; arch_*.c add what is theirs. Each tensor is
 * checked for presence, exact shape and a computable type before the forward pass may use it,
 * so a wrong file fails at load time with the tensor's name, never mid-generation. */
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "model/arch.h"

static int tensor_problem(const struct model *m, const char *name, const char *what,
                          struct mp_error *err)
{
    return mp_error_set(err, MP_ECORRUPT, "%s: tensor %s %s", m->gguf->path, name, what);
}

static int check_shape(const struct model *m, const struct gguf_tensor *t, const int64_t *ne,
                       int n_dims, struct mp_error *err)
{
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        int64_t want = d < n_dims ? ne[d] : 1;
        if (t->ne[d] != want) {
            char what[160];
            snprintf(what, sizeof(what), "has shape {%lld, %lld, %lld}, expected {%lld, %lld, %lld}",
                     (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2],
                     (long long)ne[0], (long long)(n_dims > 1 ? ne[1] : 1),
                     (long long)(n_dims > 2 ? ne[2] : 1));
            return tensor_problem(m, t->name, what, err);
        }
    }
    return 0;
}

static int find(const struct model *m, const char *name, bool required,
                const struct gguf_tensor **out, struct mp_error *err)
{
    *out = gguf_find_tensor(m->gguf, name);
    if (!*out && required)
        return tensor_problem(m, name, "is missing", err);
    return 0;
}

static int check_computable(const struct model *m, const struct gguf_tensor *t,
                            struct mp_error *err)
{
    if (kq_can_compute(t->type))
        return 0;
    const struct kq_format *f = kq_format(t->type);
    char what[96];
    snprintf(what, sizeof(what), "has type %s, which moepool cannot compute with yet",
             f && f->name ? f->name : "?");
    return mp_error_set(err, MP_EUNSUPPORTED, "%s: tensor %s %s", m->gguf->path, t->name, what);
}

/* A 2-D weight of n_rows outputs by n_cols inputs. */
static int bind_matrix(const struct model *m, const char *name, int64_t n_cols, int64_t n_rows,
                       struct kq_matrix *out, struct mp_error *err)
{
    const struct gguf_tensor *t;
    int64_t ne[2] = {n_cols, n_rows};
    int rc = find(m, name, true, &t, err);
    if (!rc)
        rc = check_shape(m, t, ne, 2, err);
    if (!rc)
        rc = check_computable(m, t, err);
    if (rc)
        return rc;
    *out = (struct kq_matrix){.data = t->data, .type = (enum kq_type)t->type, .n_cols = n_cols,
                              .n_rows = n_rows, .row_bytes = kq_row_bytes(t->type, n_cols)};
    return 0;
}

/* An F32 vector (norm weights, biases, conv kernels) of n elements in n_dims dims. */
static int bind_f32(const struct model *m, const char *name, const int64_t *ne, int n_dims,
                    bool required, const float **out, struct mp_error *err)
{
    const struct gguf_tensor *t;
    int rc = find(m, name, required, &t, err);
    if (rc || !t)
        return rc;
    if ((rc = check_shape(m, t, ne, n_dims, err)))
        return rc;
    if (t->type != KQ_F32)
        return tensor_problem(m, name, "must be F32", err);
    if ((uintptr_t)t->data % sizeof(float))
        return tensor_problem(m, name, "data is not 4-byte aligned", err);
    *out = (const float *)t->data;
    return 0;
}

static int bind_experts(const struct model *m, const char *name, int64_t n_cols, int64_t n_rows,
                        struct expert_matrix *out, struct mp_error *err)
{
    const struct gguf_tensor *t;
    int64_t ne[3] = {n_cols, n_rows, m->hp.n_expert};
    int rc = find(m, name, true, &t, err);
    if (!rc)
        rc = check_shape(m, t, ne, 3, err);
    if (!rc)
        rc = check_computable(m, t, err);
    if (rc)
        return rc;
    size_t row_bytes = kq_row_bytes(t->type, n_cols);
    *out = (struct expert_matrix){.data = t->data,
                                  .x16 = calloc((size_t)ne[2], sizeof(*out->x16)),
                                  .type = (enum kq_type)t->type,
                                  .n_cols = n_cols, .n_rows = n_rows, .n_expert = ne[2],
                                  .row_bytes = row_bytes, .expert_bytes = row_bytes * n_rows};
    return out->x16 ? 0 : mp_error_set(err, MP_ENOMEM, "out of memory");
}

struct kq_matrix model_expert(const struct expert_matrix *x, int64_t e)
{
    const uint8_t *x16 = x->x16 ? x->x16[e] : NULL;
    return (struct kq_matrix){.data = x16 ? x16 : x->data + (size_t)e * x->expert_bytes,
                              .type = x->type, .n_cols = x->n_cols, .n_rows = x->n_rows,
                              .row_bytes = x->row_bytes,
                              .layout = x16 ? KQ_LAYOUT_X16 : KQ_LAYOUT_ROWS};
}

int model_moe_index(const struct model *m, int il)
{
    if (!m->hp.is_moe[il])
        return -1;
    int idx = 0;
    for (int j = 0; j < il; j++)
        idx += m->hp.is_moe[j];
    return idx;
}

static int bind_attention(const struct model *m, int il, struct layer *L, struct mp_error *err)
{
    const struct hparams *hp = &m->hp;
    int64_t hd = hp->head_dim, n_q = hp->n_head * hd, n_kv = hp->n_head_kv[il] * hd;
    char name[GGUF_NAME_MAX];
    int rc = 0;
#define NAME(suffix) (snprintf(name, sizeof(name), "blk.%d." suffix, il), name)
    if (!rc) rc = bind_matrix(m, NAME("attn_q.weight"), hp->n_embd, n_q, &L->attn_q, err);
    if (!rc) rc = bind_matrix(m, NAME("attn_k.weight"), hp->n_embd, n_kv, &L->attn_k, err);
    if (!rc) rc = bind_matrix(m, NAME("attn_v.weight"), hp->n_embd, n_kv, &L->attn_v, err);
    if (!rc) rc = bind_matrix(m, NAME("attn_output.weight"), n_q, hp->n_embd, &L->attn_output, err);
    if (!rc) rc = bind_f32(m, NAME("attn_q_norm.weight"), &hd, 1, true, &L->attn_q_norm, err);
    if (!rc) rc = bind_f32(m, NAME("attn_k_norm.weight"), &hd, 1, true, &L->attn_k_norm, err);
    return rc;
}

static int bind_shortconv(const struct model *m, int il, struct layer *L, struct mp_error *err)
{
    const struct hparams *hp = &m->hp;
    int64_t kernel_ne[2] = {hp->conv_l_cache, hp->n_embd};
    char name[GGUF_NAME_MAX];
    int rc = 0;
    if (!rc) rc = bind_matrix(m, NAME("shortconv.in_proj.weight"), hp->n_embd, 3 * hp->n_embd,
                              &L->conv_in, err);
    if (!rc) rc = bind_matrix(m, NAME("shortconv.out_proj.weight"), hp->n_embd, hp->n_embd,
                              &L->conv_out, err);
    if (!rc) rc = bind_f32(m, NAME("shortconv.conv.weight"), kernel_ne, 2, true, &L->conv_kernel,
                           err);
    return rc;
}

static int bind_ffn(const struct model *m, int il, struct layer *L, struct mp_error *err)
{
    const struct hparams *hp = &m->hp;
    int64_t n_ff = hp->n_ff[il];
    char name[GGUF_NAME_MAX];
    int rc = 0;
    if (!rc) rc = bind_matrix(m, NAME("ffn_gate.weight"), hp->n_embd, n_ff, &L->ffn_gate, err);
    if (!rc) rc = bind_matrix(m, NAME("ffn_up.weight"), hp->n_embd, n_ff, &L->ffn_up, err);
    if (!rc) rc = bind_matrix(m, NAME("ffn_down.weight"), n_ff, hp->n_embd, &L->ffn_down, err);
    return rc;
}

static int bind_moe(const struct model *m, int il, struct layer *L, struct mp_error *err)
{
    const struct hparams *hp = &m->hp;
    char name[GGUF_NAME_MAX];
    int rc = 0;
    if (!rc) rc = bind_matrix(m, NAME("ffn_gate_inp.weight"), hp->n_embd, hp->n_expert,
                              &L->router, err);
    if (!rc) rc = bind_f32(m, NAME("exp_probs_b.bias"), &hp->n_expert, 1, false, &L->expert_bias,
                           err);
    if (!rc) rc = bind_experts(m, NAME("ffn_gate_exps.weight"), hp->n_embd, hp->n_ff_exp,
                               &L->gate_exps, err);
    if (!rc) rc = bind_experts(m, NAME("ffn_up_exps.weight"), hp->n_embd, hp->n_ff_exp,
                               &L->up_exps, err);
    if (!rc) rc = bind_experts(m, NAME("ffn_down_exps.weight"), hp->n_ff_exp, hp->n_embd,
                               &L->down_exps, err);
    return rc;
}

static int bind_layer(struct model *m, int il, struct mp_error *err)
{
    const struct hparams *hp = &m->hp;
    struct layer *L = &m->layers[il];
    char name[GGUF_NAME_MAX];
    L->kind = hp->kind[il];
    L->is_moe = hp->is_moe[il];
    int rc = bind_f32(m, NAME("attn_norm.weight"), &hp->n_embd, 1, true, &L->attn_norm, err);
    if (!rc)
        rc = bind_f32(m, NAME("ffn_norm.weight"), &hp->n_embd, 1, true, &L->ffn_norm, err);
#undef NAME
    if (!rc)
        rc = L->kind == LAYER_ATTENTION ? bind_attention(m, il, L, err)
                                        : bind_shortconv(m, il, L, err);
    if (!rc)
        rc = L->is_moe ? bind_moe(m, il, L, err) : bind_ffn(m, il, L, err);
    return rc;
}

static int bind_globals(struct model *m, struct mp_error *err)
{
    const struct hparams *hp = &m->hp;
    const struct gguf_tensor *embd, *out;
    int rc = find(m, "token_embd.weight", true, &embd, err);
    if (rc)
        return rc;
    int64_t n_vocab = embd->ne[1];
    rc = bind_matrix(m, "token_embd.weight", hp->n_embd, n_vocab, &m->tok_embd, err);
    if (!rc)
        rc = find(m, "output.weight", !m->arch->tied_output, &out, err);
    if (!rc)
        rc = out ? bind_matrix(m, "output.weight", hp->n_embd, n_vocab, &m->output, err) : 0;
    if (!rc && !out)
        m->output = m->tok_embd;
    if (!rc)
        rc = bind_f32(m, m->arch->output_norm_name, &hp->n_embd, 1, true, &m->output_norm, err);
    m->hp.n_vocab = n_vocab;
    return rc;
}

/* Keys every supported architecture shares, with llama.cpp's defaults for optional ones. */
static int load_generic_hparams(struct model *m, struct mp_error *err)
{
    struct hparams *hp = &m->hp;
    int rc = 0;
    if (!rc) rc = arch_key_int(m, "block_count", true, &hp->n_layer, err);
    if (!rc && (hp->n_layer < 1 || hp->n_layer > MODEL_MAX_LAYERS))
        return mp_error_set(err, MP_ECORRUPT, "%s: block_count %lld is out of range",
                            m->gguf->path, (long long)hp->n_layer);
    if (!rc) rc = arch_key_int(m, "context_length", true, &hp->n_ctx_train, err);
    if (!rc) rc = arch_key_int(m, "embedding_length", true, &hp->n_embd, err);
    if (!rc) rc = arch_key_int(m, "attention.head_count", true, &hp->n_head, err);
    if (!rc) rc = arch_key_per_layer(m, "feed_forward_length", false, hp->n_ff, err);
    if (!rc) rc = arch_key_int(m, "expert_count", true, &hp->n_expert, err);
    if (!rc) rc = arch_key_int(m, "expert_used_count", true, &hp->n_expert_used, err);
    if (!rc) rc = arch_key_int(m, "expert_feed_forward_length", true, &hp->n_ff_exp, err);
    if (!rc) rc = arch_key_float(m, "attention.layer_norm_rms_epsilon", true, &hp->rms_eps, err);
    hp->rope_base = 10000.0f;
    if (!rc) rc = arch_key_float(m, "rope.freq_base", false, &hp->rope_base, err);
    if (rc)
        return rc;
    if (hp->n_embd < 1 || hp->n_head < 1 || hp->n_embd > (1 << 20) || hp->n_head > 4096)
        return mp_error_set(err, MP_ECORRUPT, "%s: embedding_length or head_count out of range",
                            m->gguf->path);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = arch_key_int(m, "attention.key_length", false, &hp->head_dim, err)))
        return rc;
    hp->n_rot = hp->head_dim;
    return arch_key_int(m, "rope.dimension_count", false, &hp->n_rot, err);
}

static int check_hparams(const struct model *m, struct mp_error *err)
{
    const struct hparams *hp = &m->hp;
    const char *bad = NULL;
    if (hp->n_expert < 1 || hp->n_expert > 4096)
        bad = "expert_count";
    else if (hp->n_expert_used < 1 || hp->n_expert_used > hp->n_expert ||
             hp->n_expert_used > 64) /* router.c keeps the top-k on the stack */
        bad = "expert_used_count";
    else if (hp->n_ff_exp < 1)
        bad = "expert_feed_forward_length";
    else if (hp->head_dim < 2 || hp->head_dim % 2 || hp->head_dim > 1024)
        bad = "attention.key_length";
    else if (hp->n_rot < 2 || hp->n_rot > hp->head_dim || hp->n_rot % 2)
        bad = "rope.dimension_count";
    else if (!(hp->rms_eps > 0.0f) || !(hp->rope_base > 0.0f))
        bad = "layer_norm_rms_epsilon or rope.freq_base";
    for (int64_t il = 0; !bad && il < hp->n_layer; il++) {
        if (hp->kind[il] == LAYER_ATTENTION &&
            (hp->n_head_kv[il] < 1 || hp->n_head % hp->n_head_kv[il]))
            bad = "attention.head_count_kv";
        else if (hp->kind[il] == LAYER_SHORTCONV && (hp->conv_l_cache < 1 || hp->conv_l_cache > 64))
            bad = "shortconv.l_cache";
        else if (!hp->is_moe[il] && hp->n_ff[il] < 1)
            bad = "feed_forward_length";
    }
    if (bad)
        return mp_error_set(err, MP_ECORRUPT, "%s: %s.%s has a value moepool cannot use",
                            m->gguf->path, m->arch->name, bad);
    return 0;
}

static int load(struct model *m, struct mp_error *err)
{
    struct gguf_str arch_name;
    int rc = gguf_get_str(m->gguf, "general.architecture", &arch_name, err);
    if (rc == MP_ENOTFOUND)
        return mp_error_set(err, MP_ECORRUPT, "%s: general.architecture is missing",
                            m->gguf->path);
    if (rc)
        return rc;
    m->arch = arch_find(arch_name);
    if (!m->arch)
        return mp_error_set(err, MP_EUNSUPPORTED,
                            "%s: architecture '%.*s' is not supported (lfm2moe, qwen3moe are)",
                            m->gguf->path, (int)arch_name.len, arch_name.ptr);
    if ((rc = load_generic_hparams(m, err)) || (rc = m->arch->load_hparams(m, err)) ||
        (rc = check_hparams(m, err)))
        return rc;
    m->layers = calloc((size_t)m->hp.n_layer, sizeof(*m->layers));
    if (!m->layers)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    for (int il = 0; il < m->hp.n_layer; il++) {
        if ((rc = bind_layer(m, il, err)))
            return rc;
        m->n_moe_layers += m->hp.is_moe[il];
    }
    return bind_globals(m, err);
}

int model_from_gguf(struct gguf_file *gguf, struct model **out, struct mp_error *err)
{
    *out = NULL;
    struct model *m = calloc(1, sizeof(*m));
    if (!m)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    m->gguf = gguf;
    m->repack = calloc(1, sizeof(*m->repack));
    int rc = m->repack ? load(m, err) : mp_error_set(err, MP_ENOMEM, "out of memory");
    if (rc) {
        m->gguf = NULL; /* the caller still owns it on failure */
        model_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

int model_open(const char *path, struct model **out, struct mp_error *err)
{
    struct gguf_file *gguf;
    int rc = gguf_open(path, &gguf, err);
    if (rc)
        return rc;
    rc = model_from_gguf(gguf, out, err);
    if (rc)
        gguf_close(gguf);
    return rc;
}

void model_close(struct model *m)
{
    if (!m)
        return;
    gguf_close(m->gguf);
    for (int64_t il = 0; m->layers && il < m->hp.n_layer; il++) {
        free(m->layers[il].gate_exps.x16);
        free(m->layers[il].up_exps.x16);
        free(m->layers[il].down_exps.x16);
    }
    free(m->layers);
    for (size_t i = 0; m->repack && i < m->repack->n_regions; i++)
        munmap(m->repack->regions[i].p, m->repack->regions[i].bytes);
    if (m->repack)
        free(m->repack->regions);
    free(m->repack);
    free(m);
}
