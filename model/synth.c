/* model/synth.c: the synthetic model generator declared in synth.h: presets and shape checks, the
 * tensor list of each architecture, llama-quantize's type rules, seeded weights, a small byte-level
 * BPE vocabulary and the streaming, multi-threaded write.
 *
 * Spec: docs/synth.md. Keys, key order, tensor names and order follow what the conformance models
 * (written by llama.cpp's converter, then llama-quantize) contain: ../shared/docs/models/ and
 * `moepool inspect` on ../shared/conformance/models/. llama-quantize writes tensors sorted by
 * llama_model_loader's weight_name_comparer: non-block tensors first, then blocks in order, each by
 * name; the converter's keys come first and general.quantization_version / file_type last.
 * The GGUF container is gguf_write.c's; the quantizers are kernels/kq.h's. */
#include "model/synth.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/gguf_write.h"

/* ---- presets and shape checks ---- */

struct preset {
    const char *name;
    const char *attn_layers; /* lfm2moe */
    struct synth_params p;
};

static const struct preset presets[] = {
    {"tiny", "2,4",
     {.arch = SYNTH_LFM2MOE, .name = "lfm2moe-tiny", .n_vocab = 2048, .n_embd = 256,
      .n_layer = 5, .n_ctx = 4096, .n_head = 4, .n_head_kv = 2, .head_dim = 64, .n_ff = 512,
      .n_dense = 1, .n_expert = 8, .n_expert_used = 2, .n_ff_exp = 256, .l_cache = 3,
      .rope_base = 1e6f, .rms_eps = 1e-5f}},
    /* LFM2-8B-A1B: ../shared/docs/models/lfm2moe.md §2 */
    {"lfm2-8b-a1b", "2,6,10,14,18,21",
     {.arch = SYNTH_LFM2MOE, .name = "LFM2-8B-A1B", .n_vocab = 65536, .n_embd = 2048,
      .n_layer = 24, .n_ctx = 128000, .n_head = 32, .n_head_kv = 8, .head_dim = 64,
      .n_ff = 7168, .n_dense = 2, .n_expert = 32, .n_expert_used = 4, .n_ff_exp = 1792,
      .l_cache = 3, .rope_base = 1e6f, .rms_eps = 1e-5f}},
    {"qwen3-tiny", NULL,
     {.arch = SYNTH_QWEN3MOE, .name = "qwen3moe-tiny", .n_vocab = 2048, .n_embd = 256,
      .n_layer = 3, .n_ctx = 4096, .n_head = 4, .n_head_kv = 2, .head_dim = 128, .n_ff = 1024,
      .n_expert = 8, .n_expert_used = 4, .n_ff_exp = 256, .rope_base = 1e6f,
      .rms_eps = 1e-6f}},
    /* Qwen3-30B-A3B: ../shared/docs/models/qwen3moe.md §2 */
    {"qwen3-30b-a3b", NULL,
     {.arch = SYNTH_QWEN3MOE, .name = "Qwen3-30B-A3B", .n_vocab = 151936, .n_embd = 2048,
      .n_layer = 48, .n_ctx = 40960, .n_head = 32, .n_head_kv = 4, .head_dim = 128,
      .n_ff = 6144, .n_expert = 128, .n_expert_used = 8, .n_ff_exp = 768, .rope_base = 1e6f,
      .rms_eps = 1e-6f}},
};

#define N_PRESETS (int)(sizeof(presets) / sizeof(presets[0]))

const char *synth_preset_names(void)
{
    return "tiny, lfm2-8b-a1b, qwen3-tiny, qwen3-30b-a3b";
}

int synth_set_attn_layers(struct synth_params *p, const char *list, struct mp_error *err)
{
    if (p->arch != SYNTH_LFM2MOE)
        return mp_error_set(err, MP_EINVAL, "attention layers can only be chosen for lfm2moe");
    memset(p->is_attn, 0, sizeof(p->is_attn));
    for (const char *s = list; *s;) {
        char *end;
        long il = strtol(s, &end, 10);
        if (end == s || il < 0 || il >= p->n_layer || (*end && *end != ','))
            return mp_error_set(err, MP_EINVAL, "attention layers '%s': want indices below "
                                "n_layer %lld separated by commas", list, (long long)p->n_layer);
        p->is_attn[il] = true;
        s = *end ? end + 1 : end;
    }
    return 0;
}

int synth_preset(const char *name, struct synth_params *p, struct mp_error *err)
{
    for (int i = 0; i < N_PRESETS; i++) {
        if (strcmp(presets[i].name, name))
            continue;
        *p = presets[i].p;
        p->seed = 1;
        p->ftype = SYNTH_Q4_K_M;
        if (p->arch == SYNTH_QWEN3MOE) {
            for (int64_t il = 0; il < p->n_layer; il++)
                p->is_attn[il] = true;
            return 0;
        }
        return synth_set_attn_layers(p, presets[i].attn_layers, err);
    }
    return mp_error_set(err, MP_EINVAL, "unknown preset '%s' (presets: %s)", name,
                        synth_preset_names());
}

int synth_parse_ftype(const char *s, enum synth_ftype *out, struct mp_error *err)
{
    if (!strcmp(s, "f32"))
        *out = SYNTH_F32;
    else if (!strcmp(s, "q8_0"))
        *out = SYNTH_Q8_0;
    else if (!strcmp(s, "q4_k_m"))
        *out = SYNTH_Q4_K_M;
    else
        return mp_error_set(err, MP_EINVAL, "unknown type '%s' (f32, q8_0, q4_k_m)", s);
    return 0;
}

static int n_special(const struct synth_params *p);

/* A count that must lie in [lo, hi] and, when mult > 1, be a multiple of mult. */
static int check_count(const char *what, int64_t v, int64_t lo, int64_t hi, int64_t mult,
                       struct mp_error *err)
{
    if (v >= lo && v <= hi && v % mult == 0)
        return 0;
    if (mult > 1)
        return mp_error_set(err, MP_EINVAL, "%s = %lld: want %lld..%lld, a multiple of %lld",
                            what, (long long)v, (long long)lo, (long long)hi, (long long)mult);
    return mp_error_set(err, MP_EINVAL, "%s = %lld: want %lld..%lld", what, (long long)v,
                        (long long)lo, (long long)hi);
}

int synth_check(const struct synth_params *p, struct mp_error *err)
{
    /* Rows must be whole Q8_0/Q5_0 blocks (32); anything else would fall back to F16 in
     * llama-quantize, which this generator does not need to reproduce. */
    int rc = check_count("n_embd", p->n_embd, 32, 65536, 32, err);
    if (!rc)
        rc = check_count("n_layer", p->n_layer, 1, SYNTH_MAX_LAYERS, 1, err);
    if (!rc)
        rc = check_count("n_head", p->n_head, 1, 1024, 1, err);
    if (!rc)
        rc = check_count("n_head_kv", p->n_head_kv, 1, p->n_head, 1, err);
    if (!rc)
        rc = check_count("head_dim", p->head_dim, 32, 1024, 32, err);
    if (!rc)
        rc = check_count("n_ff", p->n_ff, 32, 1 << 20, 32, err);
    if (!rc)
        rc = check_count("n_ff_exp", p->n_ff_exp, 32, 1 << 20, 32, err);
    if (!rc)
        rc = check_count("n_expert", p->n_expert, 1, 4096, 1, err);
    if (!rc)
        rc = check_count("n_expert_used", p->n_expert_used, 1, p->n_expert, 1, err);
    if (!rc)
        rc = check_count("n_vocab", p->n_vocab, 256 + n_special(p) + 1, 1 << 24, 1, err);
    if (!rc)
        rc = check_count("n_ctx", p->n_ctx, 1, INT32_MAX, 1, err);
    if (!rc && p->arch == SYNTH_LFM2MOE)
        rc = check_count("n_dense", p->n_dense, 0, p->n_layer, 1, err);
    if (!rc && p->arch == SYNTH_LFM2MOE)
        rc = check_count("l_cache", p->l_cache, 2, 64, 1, err);
    if (rc)
        return rc;
    if (p->n_head % p->n_head_kv)
        return mp_error_set(err, MP_EINVAL, "n_head %lld is not a multiple of n_head_kv %lld",
                            (long long)p->n_head, (long long)p->n_head_kv);
    if (!(p->rms_eps > 0) || !(p->rope_base > 0))
        return mp_error_set(err, MP_EINVAL, "rms_eps and rope_base must be positive");
    return 0;
}

/* ---- the tensor list ---- */

/* One tensor: its GGUF info and how its values are drawn: offset + scale * noise, noise roughly
 * N(0, 1) or, when uniform, U(-1, 1). */
struct tspec {
    char name[GGUF_NAME_MAX];
    int n_dims;
    int64_t ne[3];
    float offset, scale;
    bool uniform;
    uint32_t type;
};

struct tlist {
    struct tspec *t;
    int n, cap;
};

static int add_t(struct tlist *l, const char *name, int n_dims, int64_t ne0, int64_t ne1,
                 int64_t ne2, float offset, float scale)
{
    if (l->n == l->cap) {
        int cap = l->cap * 2 + 32;
        struct tspec *t = realloc(l->t, (size_t)cap * sizeof(*t));
        if (!t)
            return MP_ENOMEM;
        l->t = t;
        l->cap = cap;
    }
    struct tspec *t = &l->t[l->n++];
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = ne2;
    t->offset = offset;
    t->scale = scale;
    return 0;
}

/* A weight y = W x with x of length fan_in: std gain/sqrt(fan_in). */
static float proj_std(float gain, int64_t fan_in)
{
    return gain / sqrtf((float)fan_in);
}

/* Scales, chosen like a trained model's (and like the conformance models'): norms near 1, input
 * projections keep unit variance, output projections add a small step to the residual stream
 * (relative to the embedding scale `e`), so each block is a perturbation. */
struct scales {
    float e;      /* token embedding std */
    float out;    /* attention / conv output projection gain, times e */
    float down;   /* FFN down projection gain, times e */
};

static int add_attention(struct tlist *l, const struct synth_params *p, const char *pre,
                         const struct scales *s)
{
    char n[GGUF_NAME_MAX];
    int64_t q = p->n_head * p->head_dim, kv = p->n_head_kv * p->head_dim;
    float in = proj_std(1, p->n_embd);
    int rc = 0;
#define T(suffix, ...) \
    (snprintf(n, sizeof(n), "%s%s", pre, suffix), rc = rc ? rc : add_t(l, n, __VA_ARGS__))
    T("attn_q.weight", 2, p->n_embd, q, 1, 0, in);
    T("attn_k.weight", 2, p->n_embd, kv, 1, 0, in);
    T("attn_v.weight", 2, p->n_embd, kv, 1, 0, in);
    T("attn_output.weight", 2, q, p->n_embd, 1, 0, proj_std(s->out * s->e, q));
    T("attn_q_norm.weight", 1, p->head_dim, 1, 1, 1, 0.1f);
    T("attn_k_norm.weight", 1, p->head_dim, 1, 1, 1, 0.1f);
    return rc;
}

static int add_ffn(struct tlist *l, const struct synth_params *p, const char *pre, bool moe,
                   const struct scales *s)
{
    char n[GGUF_NAME_MAX];
    float in = proj_std(1, p->n_embd);
    int rc = 0;
    if (!moe) {
        T("ffn_gate.weight", 2, p->n_embd, p->n_ff, 1, 0, in);
        T("ffn_up.weight", 2, p->n_embd, p->n_ff, 1, 0, in);
        T("ffn_down.weight", 2, p->n_ff, p->n_embd, 1, 0, proj_std(s->down * s->e, p->n_ff));
        return rc;
    }
    int64_t e = p->n_expert, f = p->n_ff_exp;
    /* Router logits of std ~2: sigmoid/softmax probabilities spread, so top-k choices vary. */
    T("ffn_gate_inp.weight", 2, p->n_embd, e, 1, 0, proj_std(2, p->n_embd));
    T("ffn_gate_exps.weight", 3, p->n_embd, f, e, 0, in);
    T("ffn_up_exps.weight", 3, p->n_embd, f, e, 0, in);
    T("ffn_down_exps.weight", 3, f, p->n_embd, e, 0, proj_std(s->down * s->e, f));
    if (p->arch == SYNTH_LFM2MOE) {
        T("exp_probs_b.bias", 1, e, 1, 1, 0, 0.1f);
        if (!rc)
            l->t[l->n - 1].uniform = true; /* a small selection bias, |b| < 0.1 */
    }
    return rc;
}

static int add_layer(struct tlist *l, const struct synth_params *p, int il,
                     const struct scales *s)
{
    char pre[32], n[GGUF_NAME_MAX];
    snprintf(pre, sizeof(pre), "blk.%d.", il);
    int rc = 0;
    T("attn_norm.weight", 1, p->n_embd, 1, 1, 1, 0.1f);
    T("ffn_norm.weight", 1, p->n_embd, 1, 1, 1, 0.1f);
    bool attn = p->arch == SYNTH_QWEN3MOE || p->is_attn[il];
    if (!rc && attn)
        rc = add_attention(l, p, pre, s);
    if (!rc && !attn) {
        T("shortconv.in_proj.weight", 2, p->n_embd, 3 * p->n_embd, 1, 0,
          proj_std(1, p->n_embd));
        T("shortconv.conv.weight", 2, p->l_cache, p->n_embd, 1, 0, 0.6f);
        T("shortconv.out_proj.weight", 2, p->n_embd, p->n_embd, 1, 0,
          proj_std(s->out * s->e, p->n_embd));
    }
    bool moe = p->arch == SYNTH_QWEN3MOE || il >= p->n_dense;
    return rc ? rc : add_ffn(l, p, pre, moe, s);
}

static int add_globals(struct tlist *l, const struct synth_params *p, const struct scales *s)
{
    int rc;
    if (p->arch == SYNTH_LFM2MOE) {
        /* Tied head: logits = token_embd . norm(h). A final norm of random sign (mean 0) keeps
         * a token's own embedding from dominating its logits, which all-ones weights would do
         * with an untrained embedding. */
        rc = add_t(l, "token_embd.weight", 2, p->n_embd, p->n_vocab, 1, 0, s->e);
        return rc ? rc : add_t(l, "token_embd_norm.weight", 1, p->n_embd, 1, 1, 0, 1);
    }
    rc = add_t(l, "output.weight", 2, p->n_embd, p->n_vocab, 1, 0, proj_std(3, p->n_embd));
    if (!rc)
        rc = add_t(l, "output_norm.weight", 1, p->n_embd, 1, 1, 1, 0.1f);
    return rc ? rc : add_t(l, "token_embd.weight", 2, p->n_embd, p->n_vocab, 1, 0, s->e);
}
#undef T

static int cmp_tspec(const void *a, const void *b)
{
    return strcmp(((const struct tspec *)a)->name, ((const struct tspec *)b)->name);
}

/* All tensors in llama-quantize's order (non-block by name, then each block by name). */
static int build_tensors(const struct synth_params *p, struct tlist *l, struct mp_error *err)
{
    struct scales s = {.out = 0.25f, .down = 0.5f};
    /* Logits of std ~3 whichever matrix is the head. */
    s.e = p->arch == SYNTH_LFM2MOE ? proj_std(3, p->n_embd) : 1.0f;
    int rc = add_globals(l, p, &s);
    qsort(l->t, (size_t)l->n, sizeof(*l->t), cmp_tspec);
    for (int il = 0; il < p->n_layer && !rc; il++) {
        int first = l->n;
        rc = add_layer(l, p, il, &s);
        qsort(l->t + first, (size_t)(l->n - first), sizeof(*l->t), cmp_tspec);
    }
    if (rc)
        return mp_error_set(err, MP_ENOMEM, "synth: out of memory for the tensor list");
    return 0;
}

/* ---- tensor types ---- */

/* llama-quant.cpp tensor_allows_quantization, reduced to the names these architectures have. */
static bool is_quantizable(const char *name, int n_dims)
{
    size_t n = strlen(name);
    return n_dims >= 2 && n >= 6 && !strcmp(name + n - 6, "weight") &&
           !strstr(name, "_norm.weight") && !strstr(name, "ffn_gate_inp.weight") &&
           !strstr(name, "shortconv.conv.weight") && !strstr(name, "ssm_conv1d");
}

static bool use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* llama-quant.cpp tensor_type_fallback: the type a row length that is not a whole number of
 * 256-blocks falls back to. */
static enum kq_type fallback(enum kq_type t, int64_t ne0)
{
    const struct kq_format *f = kq_format(t);
    if (!f || ne0 % f->block_elems == 0)
        return t;
    enum kq_type r = t == KQ_Q4_K ? KQ_Q5_0 : t == KQ_Q5_K ? KQ_Q5_1 : t == KQ_Q6_K ? KQ_Q8_0 : t;
    return ne0 % kq_format(r)->block_elems == 0 ? r : KQ_F16;
}

/* Layer index of a "blk.N." name, or -1. */
static int name_layer(const char *name)
{
    int il;
    return sscanf(name, "blk.%d.", &il) == 1 ? il : -1;
}

enum kq_type synth_q4_k_m_type(struct synth_q4km_state *q, const char *name, int n_dims,
                               const int64_t *ne)
{
    if (!is_quantizable(name, n_dims))
        return KQ_F32;
    enum kq_type t = KQ_Q4_K;
    if (!strcmp(name, "output.weight") || (!q->has_output && !strcmp(name, "token_embd.weight"))) {
        t = ne[0] % 256 ? KQ_Q8_0 : KQ_Q6_K;
    } else if (strstr(name, "token_embd.weight")) {
        t = KQ_Q4_K;
    } else if (strstr(name, "attn_v.weight")) {
        if (use_more_bits(q->i_attn_v, q->n_attn_v))
            t = KQ_Q6_K;
        if (q->n_expert == 8) /* "the 8-expert model": Mixtral, ~128 MB for better V */
            t = KQ_Q8_0;
        q->i_attn_v++;
    } else if (strstr(name, "attn_k.weight")) {
        if (q->n_expert == 8)
            t = KQ_Q8_0;
    } else if (strstr(name, "attn_output.weight")) {
        if (q->n_expert == 8)
            t = KQ_Q5_K;
    } else if (!strstr(name, "ffn_up") && !strstr(name, "ffn_gate") && strstr(name, "ffn_down")) {
        /* MoE models take the layer from the name (llama-quant.cpp's layer_info) */
        int il = q->n_expert > 1 ? name_layer(name) : q->i_ffn_down;
        if (use_more_bits(il, q->n_layer))
            t = KQ_Q6_K;
        q->i_ffn_down++;
    }
    return fallback(t, ne[0]);
}

enum kq_type synth_tensor_type(enum synth_ftype ftype, struct synth_q4km_state *q,
                               const char *name, int n_dims, const int64_t *ne)
{
    if (ftype == SYNTH_Q4_K_M)
        return synth_q4_k_m_type(q, name, n_dims, ne);
    if (ftype == SYNTH_Q8_0 && is_quantizable(name, n_dims) && ne[0] % 32 == 0)
        return KQ_Q8_0;
    return KQ_F32;
}

static int assign_types(const struct synth_params *p, struct tlist *l, struct mp_error *err)
{
    struct synth_q4km_state q = {.n_layer = (int)p->n_layer, .n_expert = (int)p->n_expert};
    for (int i = 0; i < l->n; i++) {
        q.n_attn_v += strstr(l->t[i].name, "attn_v.weight") != NULL;
        q.has_output |= !strcmp(l->t[i].name, "output.weight");
    }
    for (int i = 0; i < l->n; i++) {
        struct tspec *t = &l->t[i];
        t->type = synth_tensor_type(p->ftype, &q, t->name, t->n_dims, t->ne);
        const struct kq_format *f = kq_format(t->type);
        if (!f || !f->from_f32)
            return mp_error_set(err, MP_EUNSUPPORTED, "synth: %s needs type %s, which moepool "
                                "cannot quantize", t->name, f ? f->name : "?");
    }
    return 0;
}

/* ---- weights: counter-based noise, so any slice of any tensor is generated on its own ---- */

static uint64_t mix64(uint64_t z) /* splitmix64's finalizer */
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t tensor_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const char *s = name; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return mix64(seed ^ mix64(h));
}

/* Elements [first, first + n) of tensor t. The sum of four 16-bit uniforms (Irwin-Hall) is close
 * to normal, bounded at 3.5 sigma, and costs one hash per element. */
static void gen_values(const struct tspec *t, uint64_t key, uint64_t first, int64_t n, float *x)
{
    const float k_normal = 1.7320508f / 65536.0f; /* sqrt(3) / 2^16: unit variance */
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = mix64(key + (first + (uint64_t)i + 1) * 0x9e3779b97f4a7c15ull);
        float u;
        if (t->uniform) {
            u = (float)(r >> 40) * (2.0f / 16777216.0f) - 1.0f;
        } else {
            float s = (float)((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) +
                              (r >> 48));
            u = (s - 131070.0f) * k_normal;
        }
        x[i] = t->offset + t->scale * u;
    }
}

/* ---- tokenizer: byte-level BPE ---- */

/* Special tokens. lfm2moe: ids 0-13 (lfm2moe.md §8); qwen3moe: after the BPE tokens, as Qwen3's
 * added tokens (control, then user-defined from <tool_call>). */
static const char *const lfm2_special[] = {
    "<|pad|>", "<|startoftext|>", "<|endoftext|>", "<|fim_pre|>", "<|fim_mid|>",
    "<|fim_suf|>", "<|im_start|>", "<|im_end|>", "<|tool_list_start|>", "<|tool_list_end|>",
    "<|tool_call_start|>", "<|tool_call_end|>", "<|tool_response_start|>",
    "<|tool_response_end|>",
};
static const char *const qwen3_special[] = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>",
    "</think>",
};
#define N_LFM2_SPECIAL 14
#define N_QWEN3_SPECIAL 26
#define QWEN3_N_CONTROL 14 /* the rest are user-defined (token type 4) */

static int n_special(const struct synth_params *p)
{
    return p->arch == SYNTH_LFM2MOE ? N_LFM2_SPECIAL : N_QWEN3_SPECIAL;
}

/* Merges are learned from this text (pairs seen at least twice), then the vocabulary is filled
 * systematically: letter words extended by one letter, in id order. */
static const char corpus[] =
    "The quick brown fox jumps over the lazy dog. A model that is trained on text learns which\n"
    "words follow which, and the tokenizer splits that text into pieces it has seen often.\n"
    "When the weather is good we go outside; when it rains we read, write and think about the\n"
    "things that matter. The people in the city work, eat, talk and sleep, and then they do it\n"
    "again the next day. Numbers like 42, 1000 and 3.14159 appear in text too, as do names such\n"
    "as London, Paris and Tokyo. What is the answer? It is the one you find by asking again.\n"
    "\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    for (int i = 0; i < argc; i++)\n"
    "        printf(\"%s\\n\", argv[i]);\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "def tokenize(text):\n"
    "    return [token for token in text.split() if token]\n"
    "\n"
    "class Model:\n"
    "    def __init__(self, name, layers):\n"
    "        self.name = name\n"
    "        self.layers = layers\n"
    "\n"
    "The user asked the assistant a question, and the assistant answered with a short reply\n"
    "that was both helpful and correct. Then the user thanked the assistant and asked another\n"
    "question about the weather, the time and the best way to learn a new language.\n";

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100 onwards.
 * Writes the UTF-8 of byte b's character to out (at most 2 bytes + NUL). */
static void byte_char(int b, char *out)
{
    int cp = b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
        int k = 0;
        for (int i = 0; i < b; i++)
            k += !((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255));
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

static bool is_printable_byte(int b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

struct vocab {
    char **tok;         /* [n_tok] owned strings (byte-level form) */
    int32_t *type;      /* [n_tok] */
    char **merges;      /* [n_merges] "a b" */
    int64_t n_tok, n_merges, cap;
    uint32_t *slot;     /* hash table: id + 1, 0 = empty */
    uint64_t n_slot;    /* power of two */
    int byte_id[256];   /* token id of each byte */
};

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* Slot of string s: its id's slot, or the empty slot where it would go. */
static uint64_t vocab_slot(const struct vocab *v, const char *s)
{
    uint64_t i = str_hash(s) & (v->n_slot - 1);
    while (v->slot[i] && strcmp(v->tok[v->slot[i] - 1], s))
        i = (i + 1) & (v->n_slot - 1);
    return i;
}

static int64_t vocab_find(const struct vocab *v, const char *s)
{
    uint64_t i = vocab_slot(v, s);
    return v->slot[i] ? (int64_t)v->slot[i] - 1 : -1;
}

/* Adds a token (owning s); the caller checked that it is new and that there is room. */
static void vocab_add(struct vocab *v, char *s, int32_t type)
{
    v->slot[vocab_slot(v, s)] = (uint32_t)(v->n_tok + 1);
    v->tok[v->n_tok] = s;
    v->type[v->n_tok++] = type;
}

static void vocab_free(struct vocab *v)
{
    for (int64_t i = 0; i < v->n_tok; i++)
        free(v->tok[i]);
    for (int64_t i = 0; i < v->n_merges; i++)
        free(v->merges[i]);
    free(v->tok);
    free(v->type);
    free(v->merges);
    free(v->slot);
}

static char *concat(const char *a, const char *sep, const char *b)
{
    size_t na = strlen(a), ns = strlen(sep), nb = strlen(b);
    char *s = malloc(na + ns + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, sep, ns);
        memcpy(s + na + ns, b, nb + 1);
    }
    return s;
}

/* Records merge "a b" and returns the id of the token a+b, adding it if new; -1 on ENOMEM. */
static int64_t vocab_merge(struct vocab *v, int64_t a, int64_t b)
{
    char *m = concat(v->tok[a], " ", v->tok[b]);
    char *s = concat(v->tok[a], "", v->tok[b]);
    if (!m || !s) {
        free(m);
        free(s);
        return -1;
    }
    v->merges[v->n_merges++] = m;
    int64_t id = vocab_find(v, s);
    if (id >= 0) {
        free(s);
        return id;
    }
    vocab_add(v, s, 1);
    return v->n_tok - 1;
}

/* The corpus as byte-token ids, words separated by -1: a word is an optional space followed by
 * a run of letters, of digits, or of other characters; newlines stand alone. */
static int32_t *corpus_words(const struct vocab *v, int64_t *n_out)
{
    int64_t n = (int64_t)sizeof(corpus) - 1;
    int32_t *seq = malloc((size_t)(2 * n + 1) * sizeof(*seq));
    if (!seq)
        return NULL;
    int64_t k = 0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i + (corpus[i] == ' ' && i + 1 < n && corpus[i + 1] != ' ');
        int cls = (corpus[j] >= 'a' && corpus[j] <= 'z') || (corpus[j] >= 'A' && corpus[j] <= 'Z')
                      ? 1 : corpus[j] >= '0' && corpus[j] <= '9' ? 2 : corpus[j] == '\n' ? 3 : 4;
        int64_t e = j + 1;
        while (cls != 3 && e < n && corpus[e] != ' ' && corpus[e] != '\n') {
            char c = corpus[e];
            int c2 = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ? 1
                     : c >= '0' && c <= '9' ? 2 : 4;
            if (c2 != cls)
                break;
            e++;
        }
        for (int64_t x = i; x < e; x++)
            seq[k++] = v->byte_id[(uint8_t)corpus[x]];
        seq[k++] = -1;
        i = e;
    }
    *n_out = k;
    return seq;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The most frequent adjacent pair (ties: smallest ids) and its count. */
static int64_t best_pair(const int32_t *seq, int64_t n, uint64_t *pairs, uint64_t *best)
{
    int64_t np = 0, best_n = 0;
    for (int64_t i = 0; i + 1 < n; i++)
        if (seq[i] >= 0 && seq[i + 1] >= 0)
            pairs[np++] = (uint64_t)seq[i] << 32 | (uint32_t)seq[i + 1];
    qsort(pairs, (size_t)np, sizeof(*pairs), cmp_u64);
    for (int64_t i = 0; i < np;) {
        int64_t j = i;
        while (j < np && pairs[j] == pairs[i])
            j++;
        if (j - i > best_n) {
            best_n = j - i;
            *best = pairs[i];
        }
        i = j;
    }
    return best_n;
}

/* Replaces every (a, b) in seq with id; returns the new length. */
static int64_t apply_merge(int32_t *seq, int64_t n, int32_t a, int32_t b, int32_t id)
{
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i + 1 < n && seq[i] == a && seq[i + 1] == b) {
            seq[k++] = id;
            i++;
        } else {
            seq[k++] = seq[i];
        }
    }
    return k;
}

/* BPE training on the corpus until no pair repeats or the vocabulary is full. */
static int learn_merges(struct vocab *v, int64_t n_max)
{
    int64_t n = 0;
    int32_t *seq = corpus_words(v, &n);
    uint64_t *pairs = malloc((size_t)n * sizeof(*pairs) + 1);
    int rc = seq && pairs ? 0 : MP_ENOMEM;
    while (!rc && v->n_tok < n_max) {
        uint64_t p = 0;
        if (best_pair(seq, n, pairs, &p) < 2)
            break;
        int64_t id = vocab_merge(v, (int64_t)(p >> 32), (int64_t)(p & 0xffffffffu));
        if (id < 0)
            rc = MP_ENOMEM;
        else
            n = apply_merge(seq, n, (int32_t)(p >> 32), (int32_t)(p & 0xffffffffu), (int32_t)id);
    }
    free(seq);
    free(pairs);
    return rc;
}

/* A word token: ASCII letters, optionally after the byte-level space "Ġ" (U+0120). */
static bool is_word(const char *s)
{
    if (!strncmp(s, "\xc4\xa0", 2))
        s += 2;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return false;
    return true;
}

/* Fills up to n_max tokens with merges word + letter, visiting words in id order. Terminates:
 * every word yields longer words. */
static int fill_merges(struct vocab *v, int64_t n_max)
{
    for (int64_t i = 0; v->n_tok < n_max; i++) {
        if (!is_word(v->tok[i]))
            continue;
        for (int c = 'a'; c <= 'z' && v->n_tok < n_max; c++) {
            char *s = concat(v->tok[i], "", v->tok[v->byte_id[c]]);
            if (!s)
                return MP_ENOMEM;
            bool have = vocab_find(v, s) >= 0;
            free(s);
            if (!have && vocab_merge(v, i, v->byte_id[c]) < 0)
                return MP_ENOMEM;
        }
    }
    return 0;
}

static int add_specials(struct vocab *v, const struct synth_params *p)
{
    bool lfm2 = p->arch == SYNTH_LFM2MOE;
    const char *const *sp = lfm2 ? lfm2_special : qwen3_special;
    for (int i = 0; i < n_special(p); i++) {
        char *s = strdup(sp[i]);
        if (!s)
            return MP_ENOMEM;
        vocab_add(v, s, lfm2 || i < QWEN3_N_CONTROL ? 3 : 4);
    }
    return 0;
}

static int add_bytes(struct vocab *v)
{
    /* GPT-2 order: printable bytes first, then the remapped ones */
    for (int pass = 0; pass < 2; pass++) {
        for (int b = 0; b < 256; b++) {
            if (is_printable_byte(b) != (pass == 0))
                continue;
            char c[4];
            byte_char(b, c);
            char *s = strdup(c);
            if (!s)
                return MP_ENOMEM;
            v->byte_id[b] = (int)v->n_tok;
            vocab_add(v, s, 1);
        }
    }
    return 0;
}

static int build_vocab(const struct synth_params *p, struct vocab *v, struct mp_error *err)
{
    memset(v, 0, sizeof(*v));
    v->cap = p->n_vocab;
    v->n_slot = 1;
    while (v->n_slot < 2 * (uint64_t)p->n_vocab)
        v->n_slot *= 2;
    v->tok = calloc((size_t)v->cap, sizeof(*v->tok));
    v->type = calloc((size_t)v->cap, sizeof(*v->type));
    /* a learned merge may rebuild an existing token: at most one per corpus byte */
    v->merges = calloc((size_t)v->cap + sizeof(corpus), sizeof(*v->merges));
    v->slot = calloc((size_t)v->n_slot, sizeof(*v->slot));
    int rc = v->tok && v->type && v->merges && v->slot ? 0 : MP_ENOMEM;
    bool lfm2 = p->arch == SYNTH_LFM2MOE;
    int64_t n_bpe_end = lfm2 ? p->n_vocab : p->n_vocab - N_QWEN3_SPECIAL;
    if (!rc && lfm2)
        rc = add_specials(v, p);
    if (!rc)
        rc = add_bytes(v);
    if (!rc)
        rc = learn_merges(v, n_bpe_end);
    if (!rc)
        rc = fill_merges(v, n_bpe_end);
    if (!rc && !lfm2)
        rc = add_specials(v, p);
    if (rc)
        return mp_error_set(err, MP_ENOMEM, "synth: out of memory building the vocabulary");
    return 0;
}

/* ---- metadata ---- */

/* The real templates, as stored in the conformance models' tokenizer.chat_template: LFM2's
 * (llama.cpp models/templates/LFM2-8B-A1B.jinja) and Qwen3's. */
static const char tmpl_lfm2[] =
    "{{- bos_token -}}\n"
    "{%- set system_prompt = \"\" -%}\n"
    "{%- set ns = namespace(system_prompt=\"\") -%}\n"
    "{%- if messages[0][\"role\"] == \"system\" -%}\n"
    "\t{%- set ns.system_prompt = messages[0][\"content\"] -%}\n"
    "\t{%- set messages = messages[1:] -%}\n"
    "{%- endif -%}\n"
    "{%- if tools -%}\n"
    "\t{%- set ns.system_prompt = ns.system_prompt + (\"\\n\" if ns.system_prompt else \"\") + "
    "\"List of tools: <|tool_list_start|>[\" -%}\n"
    "\t{%- for tool in tools -%}\n"
    "\t\t{%- if tool is not string -%}\n"
    "\t\t\t{%- set tool = tool | tojson -%}\n"
    "\t\t{%- endif -%}\n"
    "\t\t{%- set ns.system_prompt = ns.system_prompt + tool -%}\n"
    "\t\t{%- if not loop.last -%}\n"
    "\t\t\t{%- set ns.system_prompt = ns.system_prompt + \", \" -%}\n"
    "\t\t{%- endif -%}\n"
    "\t{%- endfor -%}\n"
    "\t{%- set ns.system_prompt = ns.system_prompt + \"]<|tool_list_end|>\" -%}\n"
    "{%- endif -%}\n"
    "{%- if ns.system_prompt -%}\n"
    "\t{{- \"<|im_start|>system\\n\" + ns.system_prompt + \"<|im_end|>\\n\" -}}\n"
    "{%- endif -%}\n"
    "{%- for message in messages -%}\n"
    "\t{{- \"<|im_start|>\" + message[\"role\"] + \"\\n\" -}}\n"
    "\t{%- set content = message[\"content\"] -%}\n"
    "\t{%- if content is not string -%}\n"
    "\t\t{%- set content = content | tojson -%}\n"
    "\t{%- endif -%}\n"
    "\t{%- if message[\"role\"] == \"tool\" -%}\n"
    "\t\t{%- set content = \"<|tool_response_start|>\" + content + \"<|tool_response_end|>\" -%"
    "}\n"
    "\t{%- endif -%}\n"
    "\t{{- content + \"<|im_end|>\\n\" -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "\t{{- \"<|im_start|>assistant\\n\" -}}\n"
    "{%- endif -%}";
static const char tmpl_qwen3[] =
    "{%- if tools %}\n"
    "    {{- '<|im_start|>system\\n' }}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- messages[0].content + '\\n\\n' }}\n"
    "    {%- endif %}\n"
    "    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query.\\"
    "n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\""
    " }}\n"
    "    {%- for tool in tools %}\n"
    "        {{- \"\\n\" }}\n"
    "        {{- tool | tojson }}\n"
    "    {%- endfor %}\n"
    "    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name"
    " and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <fu"
    "nction-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n"
    "{%- else %}\n"
    "    {%- if messages[0].role == 'system' %}\n"
    "        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}\n"
    "{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n"
    "{%- for message in messages[::-1] %}\n"
    "    {%- set index = (messages|length - 1) - loop.index0 %}\n"
    "    {%- if ns.multi_step_tool and message.role == \"user\" and not(message.content.startsw"
    "ith('<tool_response>') and message.content.endswith('</tool_response>')) %}\n"
    "        {%- set ns.multi_step_tool = false %}\n"
    "        {%- set ns.last_query_index = index %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- for message in messages %}\n"
    "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %"
    "}\n"
    "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n'"
    " }}\n"
    "    {%- elif message.role == \"assistant\" %}\n"
    "        {%- set content = message.content %}\n"
    "        {%- set reasoning_content = '' %}\n"
    "        {%- if message.reasoning_content is defined and message.reasoning_content is not n"
    "one %}\n"
    "            {%- set reasoning_content = message.reasoning_content %}\n"
    "        {%- else %}\n"
    "            {%- if '</think>' in message.content %}\n"
    "                {%- set content = message.content.split('</think>')[-1].lstrip('\\n') %}\n"
    "                {%- set reasoning_content = message.content.split('</think>')[0].rstrip('"
    "\\n').split('<think>')[-1].lstrip('\\n') %}\n"
    "            {%- endif %}\n"
    "        {%- endif %}\n"
    "        {%- if loop.index0 > ns.last_query_index %}\n"
    "            {%- if loop.last or (not loop.last and reasoning_content) %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.st"
    "rip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n"
    "            {%- else %}\n"
    "                {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "            {%- endif %}\n"
    "        {%- else %}\n"
    "            {{- '<|im_start|>' + message.role + '\\n' + content }}\n"
    "        {%- endif %}\n"
    "        {%- if message.tool_calls %}\n"
    "            {%- for tool_call in message.tool_calls %}\n"
    "                {%- if (loop.first and content) or (not loop.first) %}\n"
    "                    {{- '\\n' }}\n"
    "                {%- endif %}\n"
    "                {%- if tool_call.function %}\n"
    "                    {%- set tool_call = tool_call.function %}\n"
    "                {%- endif %}\n"
    "                {{- '<tool_call>\\n{\"name\": \"' }}\n"
    "                {{- tool_call.name }}\n"
    "                {{- '\", \"arguments\": ' }}\n"
    "                {%- if tool_call.arguments is string %}\n"
    "                    {{- tool_call.arguments }}\n"
    "                {%- else %}\n"
    "                    {{- tool_call.arguments | tojson }}\n"
    "                {%- endif %}\n"
    "                {{- '}\\n</tool_call>' }}\n"
    "            {%- endfor %}\n"
    "        {%- endif %}\n"
    "        {{- '<|im_end|>\\n' }}\n"
    "    {%- elif message.role == \"tool\" %}\n"
    "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n"
    "            {{- '<|im_start|>user' }}\n"
    "        {%- endif %}\n"
    "        {{- '\\n<tool_response>\\n' }}\n"
    "        {{- message.content }}\n"
    "        {{- '\\n</tool_response>' }}\n"
    "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n"
    "            {{- '<|im_end|>\\n' }}\n"
    "        {%- endif %}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "    {%- if enable_thinking is defined and enable_thinking is false %}\n"
    "        {{- '<think>\\n\\n</think>\\n\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endif %}";

struct kvw {
    struct gguf_writer *w;
    const char *arch;
    struct mp_error *err;
    int rc;
};

static void arch_key(struct kvw *k, char *buf, size_t n, const char *suffix)
{
    snprintf(buf, n, "%s.%s", k->arch, suffix);
}

static void kv_u32(struct kvw *k, const char *suffix, int64_t v)
{
    char key[96];
    arch_key(k, key, sizeof(key), suffix);
    if (!k->rc)
        k->rc = gguf_w_add_u32(k->w, key, (uint32_t)v, k->err);
}

static void kv_f32(struct kvw *k, const char *suffix, float v)
{
    char key[96];
    arch_key(k, key, sizeof(key), suffix);
    if (!k->rc)
        k->rc = gguf_w_add_f32(k->w, key, v, k->err);
}

/* The architecture's keys, in the converter's order (see the conformance models). */
static void write_arch_keys(struct kvw *k, const struct synth_params *p)
{
    bool lfm2 = p->arch == SYNTH_LFM2MOE;
    kv_u32(k, "block_count", p->n_layer);
    kv_u32(k, "context_length", p->n_ctx);
    kv_u32(k, "embedding_length", p->n_embd);
    kv_u32(k, "attention.head_count", p->n_head);
    kv_f32(k, "rope.freq_base", p->rope_base);
    kv_u32(k, "expert_count", p->n_expert);
    kv_u32(k, "expert_used_count", p->n_expert_used);
    kv_u32(k, "expert_feed_forward_length", p->n_ff_exp);
    kv_u32(k, "feed_forward_length", p->n_ff);
    if (lfm2) {
        /* per layer: 0 marks a short-conv layer (lfm2moe.md §3) */
        int32_t kv[SYNTH_MAX_LAYERS];
        for (int64_t il = 0; il < p->n_layer; il++)
            kv[il] = p->is_attn[il] ? (int32_t)p->n_head_kv : 0;
        if (!k->rc)
            k->rc = gguf_w_add_arr(k->w, "lfm2moe.attention.head_count_kv", GGUF_I32, kv,
                                   (uint64_t)p->n_layer, k->err);
    } else {
        kv_u32(k, "attention.head_count_kv", p->n_head_kv);
    }
    /* lfm2moe has no key_length unless the head size differs from n_embd / n_head */
    if (!lfm2 || p->head_dim * p->n_head != p->n_embd) {
        kv_u32(k, "attention.key_length", p->head_dim);
        kv_u32(k, "attention.value_length", p->head_dim);
    }
    kv_f32(k, "attention.layer_norm_rms_epsilon", p->rms_eps);
    if (lfm2) {
        kv_u32(k, "leading_dense_block_count", p->n_dense);
        kv_u32(k, "expert_gating_func", 2); /* sigmoid */
        kv_u32(k, "vocab_size", p->n_vocab);
        kv_u32(k, "shortconv.l_cache", p->l_cache);
    }
}

static void write_tokenizer_keys(struct kvw *k, const struct synth_params *p,
                                 const struct vocab *v)
{
    bool lfm2 = p->arch == SYNTH_LFM2MOE;
    /* lfm2: <|startoftext|> 1 / <|im_end|> 7 / <|pad|> 0; qwen3: <|endoftext|> / <|im_end|> */
    uint32_t bos = lfm2 ? 1 : (uint32_t)(p->n_vocab - N_QWEN3_SPECIAL);
    uint32_t eos = lfm2 ? 7 : bos + 2, pad = lfm2 ? 0 : bos;
    struct gguf_writer *w = k->w;
    struct mp_error *err = k->err;
    int rc = k->rc;
    if (!rc)
        rc = gguf_w_add_str(w, "tokenizer.ggml.model", "gpt2", err);
    if (!rc)
        rc = gguf_w_add_str(w, "tokenizer.ggml.pre", lfm2 ? "lfm2" : "qwen2", err);
    if (!rc)
        rc = gguf_w_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tok,
                                (uint64_t)v->n_tok, err);
    if (!rc)
        rc = gguf_w_add_arr(w, "tokenizer.ggml.token_type", GGUF_I32, v->type,
                            (uint64_t)v->n_tok, err);
    if (!rc)
        rc = gguf_w_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                (uint64_t)v->n_merges, err);
    if (!rc)
        rc = gguf_w_add_u32(w, "tokenizer.ggml.bos_token_id", bos, err);
    if (!rc)
        rc = gguf_w_add_u32(w, "tokenizer.ggml.eos_token_id", eos, err);
    if (!rc)
        rc = gguf_w_add_u32(w, "tokenizer.ggml.padding_token_id", pad, err);
    if (!rc)
        rc = gguf_w_add_bool(w, "tokenizer.ggml.add_bos_token", lfm2, err);
    if (!rc)
        rc = gguf_w_add_bool(w, "tokenizer.ggml.add_eos_token", false, err);
    if (!rc)
        rc = gguf_w_add_str(w, "tokenizer.chat_template", lfm2 ? tmpl_lfm2 : tmpl_qwen3, err);
    k->rc = rc;
}

static int write_keys(struct gguf_writer *w, const struct synth_params *p, const struct vocab *v,
                      struct mp_error *err)
{
    struct kvw k = {w, p->arch == SYNTH_LFM2MOE ? "lfm2moe" : "qwen3moe", err, 0};
    k.rc = gguf_w_add_str(w, "general.architecture", k.arch, err);
    if (!k.rc)
        k.rc = gguf_w_add_str(w, "general.name", p->name, err);
    write_arch_keys(&k, p);
    write_tokenizer_keys(&k, p, v);
    if (!k.rc)
        k.rc = gguf_w_add_u32(w, "general.quantization_version", 2, err);
    if (!k.rc)
        k.rc = gguf_w_add_u32(w, "general.file_type", (uint32_t)p->ftype, err);
    return k.rc;
}

/* ---- streaming, parallel tensor data ---- */

#define CHUNK_ELEMS (1 << 20) /* floats generated at once per thread: 4 MiB + its quantized form */

struct item {
    int ti;
    int64_t row0, n_rows;
};

struct job {
    const struct tlist *tl;
    struct gguf_writer *w;
    uint64_t seed;
    struct item *items;
    int n_items;
    atomic_int next;
    atomic_bool failed;
    _Atomic uint64_t done;
    uint64_t total;
    pthread_mutex_t lock; /* guards err and rc */
    struct mp_error err;
    int rc;
};

static int make_items(struct job *j, struct mp_error *err)
{
    int64_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int ti = 0; ti < j->tl->n; ti++) {
            const struct tspec *t = &j->tl->t[ti];
            int64_t rows = t->ne[1] * t->ne[2], step = CHUNK_ELEMS / t->ne[0];
            step = step < 1 ? 1 : step;
            for (int64_t r = 0; r < rows; r += step, n++)
                if (pass == 1)
                    j->items[n] = (struct item){ti, r, rows - r < step ? rows - r : step};
        }
        if (pass == 0 && !(j->items = malloc((size_t)n * sizeof(*j->items))))
            return mp_error_set(err, MP_ENOMEM, "synth: out of memory");
        j->n_items = (int)n;
        n = 0;
    }
    return 0;
}

/* Slow formats (the 256-element K-quants: ggml's reference Q4_K quantizer costs ~90 ns per
 * weight, so 8B weights would take minutes per core) are tiled from a codebook: CODEBOOK_BLOCKS
 * blocks quantized from the tensor's own noise, block b of the tensor being codebook entry
 * hash(key, b). Every block is a real quantization of the intended distribution and rows stay
 * distinct (8 blocks of a 2048-wide row: 1024^8 arrangements); writing becomes a copy. */
#define CODEBOOK_BLOCKS 1024

static bool uses_codebook(const struct tspec *t)
{
    const struct kq_format *f = kq_format(t->type);
    int64_t n_blocks = t->ne[0] * t->ne[1] * t->ne[2] / f->block_elems;
    return f->block_elems >= 256 && n_blocks > 4 * CODEBOOK_BLOCKS;
}

/* Per-thread scratch: a chunk of floats, its quantized form, and the codebook of one tensor. */
struct scratch {
    float *x;    /* [CHUNK_ELEMS] */
    uint8_t *q;  /* [CHUNK_ELEMS * 4]: no format is larger than F32 */
    uint8_t *cb; /* [CODEBOOK_BLOCKS] blocks of the largest format */
    int cb_ti;   /* tensor the codebook belongs to, or -1 */
};

static void build_codebook(const struct tspec *t, uint64_t key, struct scratch *s, int ti)
{
    const struct kq_format *f = kq_format(t->type);
    int64_t n = (int64_t)CODEBOOK_BLOCKS * f->block_elems;
    gen_values(t, mix64(key ^ 0xc0deb00cull), 0, n, s->x); /* its own stream */
    f->from_f32(s->x, s->cb, n);
    s->cb_ti = ti;
}

/* Quantized bytes of the item's rows into s->q; returns a pointer to them. */
static const void *tile_rows(const struct tspec *t, uint64_t key, const struct item *it,
                             struct scratch *s)
{
    const struct kq_format *f = kq_format(t->type);
    int64_t per_row = t->ne[0] / f->block_elems;
    uint64_t first = (uint64_t)(it->row0 * per_row);
    for (int64_t b = 0; b < it->n_rows * per_row; b++) {
        uint64_t e = mix64(key + (first + (uint64_t)b) * 0x9e3779b97f4a7c15ull);
        memcpy(s->q + b * f->block_bytes, s->cb + (e % CODEBOOK_BLOCKS) * f->block_bytes,
               (size_t)f->block_bytes);
    }
    return s->q;
}

static int do_item(struct job *j, const struct item *it, struct scratch *s, struct mp_error *err)
{
    const struct tspec *t = &j->tl->t[it->ti];
    const struct kq_format *f = kq_format(t->type);
    uint64_t key = tensor_key(j->seed, t->name);
    int64_t n = it->n_rows * t->ne[0];
    const void *out = s->x;
    if (uses_codebook(t)) {
        if (s->cb_ti != it->ti)
            build_codebook(t, key, s, it->ti);
        out = tile_rows(t, key, it, s);
    } else {
        gen_values(t, key, (uint64_t)(it->row0 * t->ne[0]), n, s->x);
        if (t->type != KQ_F32) {
            f->from_f32(s->x, s->q, n);
            out = s->q;
        }
    }
    size_t row_bytes = kq_row_bytes(t->type, t->ne[0]);
    size_t n_bytes = row_bytes * (size_t)it->n_rows;
    int rc = gguf_w_write_at(j->w, it->ti, row_bytes * (uint64_t)it->row0, out, n_bytes, err);
    if (!rc)
        atomic_fetch_add(&j->done, n_bytes);
    return rc;
}

struct worker {
    struct job *job;
    synth_progress_fn progress; /* the calling thread's worker only */
    void *progress_ctx;
};

static void *work(void *arg)
{
    struct worker *wk = arg;
    struct job *j = wk->job;
    struct mp_error err = {0};
    struct scratch s = {malloc(CHUNK_ELEMS * sizeof(float)), malloc(CHUNK_ELEMS * sizeof(float)),
                        malloc(CODEBOOK_BLOCKS * 256 * sizeof(float)), -1};
    int rc = s.x && s.q && s.cb ? 0 : mp_error_set(&err, MP_ENOMEM, "synth: out of memory");
    while (!rc && !atomic_load(&j->failed)) {
        int i = atomic_fetch_add(&j->next, 1);
        if (i >= j->n_items)
            break;
        rc = do_item(j, &j->items[i], &s, &err);
        if (!rc && wk->progress)
            wk->progress(wk->progress_ctx, atomic_load(&j->done), j->total);
    }
    if (rc) {
        pthread_mutex_lock(&j->lock);
        if (!j->rc) {
            j->rc = rc;
            j->err = err;
        }
        pthread_mutex_unlock(&j->lock);
        atomic_store(&j->failed, true);
    }
    free(s.x);
    free(s.q);
    free(s.cb);
    return NULL;
}

static int write_data(struct job *j, int n_threads, synth_progress_fn progress, void *ctx,
                      struct mp_error *err)
{
    pthread_t th[64];
    struct worker wk[64];
    int n = n_threads < 1 ? 1 : n_threads > 64 ? 64 : n_threads, started = 0;
    int rc = make_items(j, err);
    if (rc)
        return rc;
    pthread_mutex_init(&j->lock, NULL);
    for (int i = 0; i < n; i++)
        wk[i] = (struct worker){j, i == 0 ? progress : NULL, ctx};
    for (int i = 1; i < n; i++, started++)
        if (pthread_create(&th[i], NULL, work, &wk[i]))
            break; /* fewer threads: the rest of the work still gets done */
    work(&wk[0]);
    for (int i = 1; i <= started; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&j->lock);
    free(j->items);
    if (j->rc) {
        if (err)
            *err = j->err;
        return j->rc;
    }
    return 0;
}

/* ---- the whole file ---- */

static int declare_tensors(struct gguf_writer *w, const struct tlist *tl, int64_t *n_params,
                           struct mp_error *err)
{
    *n_params = 0;
    for (int i = 0; i < tl->n; i++) {
        const struct tspec *t = &tl->t[i];
        int rc = gguf_w_add_tensor(w, t->name, t->n_dims, t->ne, t->type, err);
        if (rc < 0)
            return rc;
        *n_params += t->ne[0] * t->ne[1] * t->ne[2];
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int write_file(struct gguf_writer *w, const struct synth_params *p, const struct tlist *tl,
                      const char *path, int n_threads, synth_progress_fn progress, void *ctx,
                      struct mp_error *err)
{
    struct vocab v;
    int rc = build_vocab(p, &v, err);
    if (!rc)
        rc = write_keys(w, p, &v, err);
    vocab_free(&v);
    if (rc)
        return rc;
    struct job j = {.tl = tl, .w = w, .seed = p->seed};
    for (int i = 0; i < tl->n; i++)
        j.total += gguf_w_tensor_bytes(w, i);
    rc = gguf_w_open(w, path, err);
    if (!rc)
        rc = write_data(&j, n_threads, progress, ctx, err);
    return rc ? rc : gguf_w_finish(w, err);
}

int synth_write(const struct synth_params *p, const char *path, int n_threads,
                synth_progress_fn progress, void *progress_ctx, struct synth_stats *stats,
                struct mp_error *err)
{
    double t0 = now_s();
    int rc = synth_check(p, err);
    if (rc)
        return rc;
    struct tlist tl = {0};
    struct gguf_writer *w = gguf_w_new();
    int64_t n_params = 0;
    if (!w)
        rc = mp_error_set(err, MP_ENOMEM, "synth: out of memory");
    if (!rc)
        rc = build_tensors(p, &tl, err);
    if (!rc)
        rc = assign_types(p, &tl, err);
    if (!rc)
        rc = declare_tensors(w, &tl, &n_params, err);
    if (!rc)
        rc = write_file(w, p, &tl, path, n_threads, progress, progress_ctx, err);
    if (rc) {
        gguf_w_abort(w);
    } else if (stats) {
        *stats = (struct synth_stats){gguf_w_file_bytes(w), tl.n, n_params, now_s() - t0};
    }
    gguf_w_free(w);
    free(tl.t);
    return rc;
}
