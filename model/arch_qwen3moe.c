/* model/arch_qwen3moe.c: Qwen3-MoE (Qwen3-30B-A3B, 235B-A22B). Spec:
 * ../shared/docs/models/qwen3moe.md §2-§3. Every layer is attention + MoE; the router is a
 * softmax over all experts, top-k renormalised; no selection bias; separate output head. */
#include "model/arch.h"

static int load_hparams(struct model *m, struct mp_error *err)
{
    struct hparams *hp = &m->hp;
    int rc = arch_key_per_layer(m, "attention.head_count_kv", false, hp->n_head_kv, err);
    if (rc)
        return rc;
    for (int64_t il = 0; il < hp->n_layer; il++) {
        if (hp->n_head_kv[il] <= 0)
            hp->n_head_kv[il] = hp->n_head; /* llama.cpp's default: no GQA */
        hp->kind[il] = LAYER_ATTENTION;
        hp->is_moe[il] = true;
    }
    hp->gating = GATING_SOFTMAX; /* hard-coded in llama.cpp's qwen3moe graph */
    hp->norm_topk = true;
    return 0;
}

const struct arch arch_qwen3moe = {
    .name = "qwen3moe",
    .load_hparams = load_hparams,
    .output_norm_name = "output_norm.weight",
    .tied_output = true, /* llama.cpp falls back to token_embd when output.weight is absent */
};
