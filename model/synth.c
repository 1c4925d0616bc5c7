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

#include "model/synth_impl.h"

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
        rc = check_count("n_vocab", p->n_vocab, 256 + synth_n_special(p) + 1, 1 << 24, 1, err);
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
    struct synth_vocab v;
    int rc = synth_build_vocab(p, &v, err);
    if (!rc)
        rc = synth_write_keys(w, p, &v, err);
    synth_vocab_free(&v);
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
