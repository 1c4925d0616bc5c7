/* model/arch_lfm2moe.c: LFM2-MoE (LFM2-8B-A1B, LFM2.5-8B-A1B). Spec:
 * ../shared/docs/models/lfm2moe.md §2-§3; mirrors llama.cpp's load_hparams for LLM_ARCH_LFM2MOE.
 * Hybrid: a layer is short-conv iff its head_count_kv is 0; the first leading_dense_block_count
 * layers have a dense FFN, the rest a sigmoid-gated MoE with a selection-only bias. The final
 * norm is stored as token_embd_norm, and the head is tied to the embedding. */
#include "model/arch.h"

static int load_gating(struct model *m, struct mp_error *err)
{
    int64_t func = 0;
    int rc = arch_key_int(m, "expert_gating_func", true, &func, err);
    if (rc)
        return rc;
    if (func != GATING_SOFTMAX && func != GATING_SIGMOID)
        return mp_error_set(err, MP_EUNSUPPORTED, "%s: expert_gating_func %lld is not supported "
                            "(1 softmax and 2 sigmoid are)", m->gguf->path, (long long)func);
    m->hp.gating = (enum gating)func;
    m->hp.norm_topk = true; /* llama.cpp always renormalises for lfm2moe */
    return 0;
}

static int load_hparams(struct model *m, struct mp_error *err)
{
    struct hparams *hp = &m->hp;
    int64_t n_dense = 0;
    int rc = arch_key_per_layer(m, "attention.head_count_kv", true, hp->n_head_kv, err);
    if (!rc)
        rc = arch_key_int(m, "shortconv.l_cache", true, &hp->conv_l_cache, err);
    if (!rc)
        rc = arch_key_int(m, "leading_dense_block_count", false, &n_dense, err);
    if (!rc)
        rc = load_gating(m, err);
    if (rc)
        return rc;
    if (n_dense < 0 || n_dense > hp->n_layer)
        return mp_error_set(err, MP_ECORRUPT, "%s: leading_dense_block_count %lld is out of range",
                            m->gguf->path, (long long)n_dense);
    for (int64_t il = 0; il < hp->n_layer; il++) {
        hp->kind[il] = hp->n_head_kv[il] == 0 ? LAYER_SHORTCONV : LAYER_ATTENTION;
        hp->is_moe[il] = il >= n_dense;
    }
    return 0;
}

const struct arch arch_lfm2moe = {
    .name = "lfm2moe",
    .load_hparams = load_hparams,
    .output_norm_name = "token_embd_norm.weight",
    .tied_output = true,
};
