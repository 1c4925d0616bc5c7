/* model/synth_test.c: unit tests of gguf_write.c and synth.c.
 *
 * `synth_test [CONFORMANCE_DIR]`:
 *   - GGUF writer round trip: every value type, scalar and array, and tensors written both in
 *     order and out of order from positions, read back with gguf.h and compared; misuse
 *     (duplicate key, short tensor) fails cleanly and abort removes the partial file.
 *   - Q4_K_M rules: the layers llama-quantize promotes for LFM2-8B-A1B and Qwen3-30B-A3B
 *     (gguf.md §5, lfm2moe.md §4, qwen3moe.md §4), the 8-expert case and the fallbacks; and when
 *     CONFORMANCE_DIR is given, the type of every tensor of the *_q4_k_m.gguf models that
 *     llama-quantize produced.
 *   - tiny presets in each type: the file loads as a model, its tokenizer loads and round-trips.
 * `synth_test --finite FILE.f32 N_VOCAB`: checks a `moepool logits` output is all finite with a
 * whole number of rows (used by tests/synth.cmake). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/check.h"
#include "kernels/kq.h"
#include "model/gguf.h"
#include "model/gguf_write.h"
#include "model/model.h"
#include "model/synth.h"
#include "model/tokenizer.h"


static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof(buf[k]), "%s/%s", tmpdir, name);
    return buf[k];
}

/* ---- writer round trip ---- */

struct rt_data {
    uint8_t u8;
    int8_t i8;
    uint16_t u16;
    int16_t i16;
    uint32_t u32;
    int32_t i32;
    float f32;
    bool b;
    uint64_t u64;
    int64_t i64;
    double f64;
};

static const struct rt_data rt = {250, -7, 65000, -30000, 4000000000u, -2000000000, 1.5f, true,
                                  1ull << 60, -(1ll << 50), 3.25};
static const int32_t rt_arr_i32[] = {0, -1, 7, INT32_MIN, INT32_MAX};
static const float rt_arr_f32[] = {0.5f, -2.0f, 1e-5f};
static const bool rt_arr_bool[] = {true, false, true};
static const char *const rt_strs[] = {"", "a", "Ġthe", "<|im_end|>", "x y z"};

static int add_scalars(struct gguf_writer *w, struct mp_error *err)
{
    int rc = 0;
    rc = rc ? rc : gguf_w_add_scalar(w, "t.u8", GGUF_U8, &rt.u8, err);
    rc = rc ? rc : gguf_w_add_scalar(w, "t.i8", GGUF_I8, &rt.i8, err);
    rc = rc ? rc : gguf_w_add_scalar(w, "t.u16", GGUF_U16, &rt.u16, err);
    rc = rc ? rc : gguf_w_add_scalar(w, "t.i16", GGUF_I16, &rt.i16, err);
    rc = rc ? rc : gguf_w_add_u32(w, "t.u32", rt.u32, err);
    rc = rc ? rc : gguf_w_add_scalar(w, "t.i32", GGUF_I32, &rt.i32, err);
    rc = rc ? rc : gguf_w_add_f32(w, "t.f32", rt.f32, err);
    rc = rc ? rc : gguf_w_add_bool(w, "t.bool", rt.b, err);
    rc = rc ? rc : gguf_w_add_scalar(w, "t.u64", GGUF_U64, &rt.u64, err);
    rc = rc ? rc : gguf_w_add_scalar(w, "t.i64", GGUF_I64, &rt.i64, err);
    rc = rc ? rc : gguf_w_add_scalar(w, "t.f64", GGUF_F64, &rt.f64, err);
    rc = rc ? rc : gguf_w_add_str(w, "t.str", "héllo", err);
    rc = rc ? rc : gguf_w_add_arr(w, "t.arr_i32", GGUF_I32, rt_arr_i32, 5, err);
    rc = rc ? rc : gguf_w_add_arr(w, "t.arr_f32", GGUF_F32, rt_arr_f32, 3, err);
    rc = rc ? rc : gguf_w_add_arr(w, "t.arr_bool", GGUF_BOOL, rt_arr_bool, 3, err);
    rc = rc ? rc : gguf_w_add_arr(w, "t.arr_empty", GGUF_U8, NULL, 0, err);
    rc = rc ? rc : gguf_w_add_arr_str(w, "t.arr_str", rt_strs, 5, err);
    return rc;
}

static void check_scalars(const struct gguf_file *f)
{
    int64_t i;
    double d;
    bool b;
    struct gguf_str s;
    const struct gguf_value *a;
    struct { const char *key; int64_t want; } ints[] = {
        {"t.u8", rt.u8}, {"t.i8", rt.i8}, {"t.u16", rt.u16}, {"t.i16", rt.i16},
        {"t.u32", rt.u32}, {"t.i32", rt.i32}, {"t.u64", (int64_t)rt.u64}, {"t.i64", rt.i64},
    };
    for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++)
        CHECK(!gguf_get_int(f, ints[k].key, &i, NULL) && i == ints[k].want, "%s", ints[k].key);
    CHECK(!gguf_get_float(f, "t.f32", &d, NULL) && d == 1.5, "f32");
    CHECK(!gguf_get_float(f, "t.f64", &d, NULL) && d == 3.25, "f64");
    CHECK(!gguf_get_bool(f, "t.bool", &b, NULL) && b, "bool");
    CHECK(!gguf_get_str(f, "t.str", &s, NULL) && gguf_str_eq(s, "héllo"), "str");
    CHECK(!gguf_get_arr(f, "t.arr_i32", &a, NULL) && a->arr.n == 5 && a->arr.type == GGUF_I32,
          "arr_i32");
    for (int k = 0; k < 5 && a && a->arr.n == 5; k++)
        CHECK(gguf_arr_int(a, (uint64_t)k) == rt_arr_i32[k], "arr_i32[%d]", k);
    CHECK(!gguf_get_arr(f, "t.arr_f32", &a, NULL) && a->arr.n == 3 &&
          gguf_arr_float(a, 2) == (double)1e-5f, "arr_f32");
    CHECK(!gguf_get_arr(f, "t.arr_bool", &a, NULL) && a->arr.n == 3 &&
          !memcmp(a->arr.data, "\1\0\1", 3), "arr_bool");
    CHECK(!gguf_get_arr(f, "t.arr_empty", &a, NULL) && a->arr.n == 0, "arr_empty");
    CHECK(!gguf_get_arr(f, "t.arr_str", &a, NULL) && a->arr.n == 5 &&
          a->arr.type == GGUF_STRING, "arr_str");
    for (int k = 0; k < 5 && a && a->arr.n == 5; k++)
        CHECK(gguf_str_eq(a->arr.str[k], rt_strs[k]), "arr_str[%d]", k);
    CHECK(f->n_kv == 17, "n_kv %llu", (unsigned long long)f->n_kv);
    CHECK(gguf_str_eq(f->kv[0].key, "t.u8") && gguf_str_eq(f->kv[16].key, "t.arr_str"), "order");
}

/* Three tensors: 1-D F32 (odd size, needs padding), 2-D Q8_0, 3-D Q4_K. Bytes are a pattern. */
static const struct { const char *name; int n_dims; int64_t ne[3]; uint32_t type; } rt_t[] = {
    {"norm.weight", 1, {5, 1, 1}, KQ_F32},
    {"blk.0.attn_q.weight", 2, {64, 3, 1}, KQ_Q8_0},
    {"blk.0.ffn_up_exps.weight", 3, {256, 2, 3}, KQ_Q4_K},
};

static uint8_t pattern(int ti, uint64_t i)
{
    return (uint8_t)(i * 31 + (uint64_t)ti * 7 + 1);
}

static int write_rt_file(const char *path, bool positional, struct mp_error *err)
{
    struct gguf_writer *w = gguf_w_new();
    int rc = w ? add_scalars(w, err) : MP_ENOMEM;
    for (int t = 0; t < 3 && !rc; t++) {
        int ti = gguf_w_add_tensor(w, rt_t[t].name, rt_t[t].n_dims, rt_t[t].ne, rt_t[t].type,
                                   err);
        rc = ti < 0 ? ti : 0;
    }
    rc = rc ? rc : gguf_w_open(w, path, err);
    for (int t = positional ? 2 : 0; !rc && t >= 0 && t < 3; t += positional ? -1 : 1) {
        uint64_t n = gguf_w_tensor_bytes(w, t);
        uint8_t *b = malloc(n);
        for (uint64_t i = 0; b && i < n; i++)
            b[i] = pattern(t, i);
        if (!b)
            rc = MP_ENOMEM;
        else if (positional) /* second half first */
            rc = gguf_w_write_at(w, t, n / 2, b + n / 2, n - n / 2, err) ||
                 gguf_w_write_at(w, t, 0, b, n / 2, err);
        else
            rc = gguf_w_append(w, b, n, err);
        free(b);
    }
    rc = rc ? rc : gguf_w_finish(w, err);
    if (rc)
        gguf_w_abort(w);
    gguf_w_free(w);
    return rc;
}

static void check_tensors(const struct gguf_file *f)
{
    CHECK(f->n_tensors == 3, "n_tensors");
    for (int t = 0; t < 3 && f->n_tensors == 3; t++) {
        const struct gguf_tensor *g = &f->tensors[t];
        CHECK(!strcmp(g->name, rt_t[t].name) && g->type == rt_t[t].type &&
              g->n_dims == (uint32_t)rt_t[t].n_dims, "tensor %d info", t);
        for (int d = 0; d < rt_t[t].n_dims; d++)
            CHECK(g->ne[d] == rt_t[t].ne[d], "tensor %d ne[%d]", t, d);
        CHECK(g->offset % 32 == 0, "tensor %d offset", t);
        bool same = true;
        for (uint64_t i = 0; i < g->n_bytes; i++)
            same &= g->data[i] == pattern(t, i);
        CHECK(same, "tensor %d data", t);
    }
}

static void test_roundtrip(void)
{
    for (int positional = 0; positional < 2; positional++) {
        struct mp_error err = {0};
        const char *path = tmp_path("rt.gguf");
        int rc = write_rt_file(path, positional, &err);
        CHECK(!rc, "write: %s", err.msg);
        struct gguf_file *f = NULL;
        rc = rc ? rc : gguf_open(path, &f, &err);
        CHECK(!rc, "read back: %s", err.msg);
        if (f) {
            CHECK(f->version == 3 && f->alignment == 32, "header");
            check_scalars(f);
            check_tensors(f);
        }
        gguf_close(f);
    }
}

static void test_writer_errors(void)
{
    struct mp_error err = {0};
    struct gguf_writer *w = gguf_w_new();
    int64_t ne[2] = {32, 2}, bad[2] = {33, 2};
    CHECK(!gguf_w_add_u32(w, "k", 1, &err), "first key");
    CHECK(gguf_w_add_u32(w, "k", 2, &err) == MP_EINVAL, "duplicate key");
    CHECK(gguf_w_add_u32(w, "general.alignment", 64, &err) == MP_EUNSUPPORTED, "alignment");
    CHECK(gguf_w_add_tensor(w, "a", 2, ne, KQ_Q8_0, &err) == 0, "tensor");
    CHECK(gguf_w_add_tensor(w, "a", 2, ne, KQ_Q8_0, &err) == MP_EINVAL, "duplicate tensor");
    CHECK(gguf_w_add_tensor(w, "b", 2, bad, KQ_Q8_0, &err) == MP_EINVAL, "partial block");
    const char *path = tmp_path("short.gguf");
    CHECK(!gguf_w_open(w, path, &err), "open: %s", err.msg);
    uint8_t buf[68] = {0};
    CHECK(gguf_w_append(w, buf, 60, &err) == 0, "append");
    CHECK(gguf_w_write_at(w, 0, 60, buf, 9, &err) == MP_EINVAL, "write past the tensor");
    CHECK(gguf_w_finish(w, &err) == MP_EINVAL && strstr(err.msg, "60 of its 68"),
          "short tensor: %s", err.msg);
    gguf_w_abort(w);
    CHECK(access(path, F_OK) != 0, "abort removes the partial file");
    gguf_w_free(w);
    w = gguf_w_new();
    CHECK(gguf_w_open(w, "/nonexistent-dir/x.gguf", &err) == MP_EIO &&
          strstr(err.msg, "nonexistent"), "open error names the path: %s", err.msg);
    gguf_w_abort(w);
    gguf_w_free(w);
}

/* ---- Q4_K_M rules ---- */

static enum kq_type q4km(struct synth_q4km_state *q, const char *name, int64_t ne0)
{
    int64_t ne[3] = {ne0, 64, 1};
    return synth_q4_k_m_type(q, name, 2, ne);
}

static void test_q4km_lfm2_8b(void)
{
    struct synth_q4km_state q = {.n_layer = 24, .n_expert = 32, .n_attn_v = 6};
    static const int attn[6] = {2, 6, 10, 14, 18, 21};
    char name[64];
    CHECK(q4km(&q, "token_embd.weight", 2048) == KQ_Q6_K, "tied token_embd -> Q6_K");
    for (int i = 0; i < 6; i++) {
        snprintf(name, sizeof(name), "blk.%d.attn_v.weight", attn[i]);
        enum kq_type want = attn[i] == 10 || attn[i] == 21 ? KQ_Q6_K : KQ_Q4_K;
        CHECK(q4km(&q, name, 2048) == want, "%s", name);
        snprintf(name, sizeof(name), "blk.%d.attn_k.weight", attn[i]);
        CHECK(q4km(&q, name, 2048) == KQ_Q4_K, "%s", name);
    }
    static const int more[] = {0, 1, 2, 5, 8, 11, 14, 17, 20, 21, 22, 23};
    for (int il = 0, k = 0; il < 24; il++) {
        bool m = k < 12 && more[k] == il;
        k += m;
        snprintf(name, sizeof(name), il < 2 ? "blk.%d.ffn_down.weight" :
                 "blk.%d.ffn_down_exps.weight", il);
        CHECK(q4km(&q, name, 1792) == (m ? KQ_Q6_K : KQ_Q4_K), "%s", name);
    }
    CHECK(q4km(&q, "blk.3.ffn_gate_exps.weight", 2048) == KQ_Q4_K, "gate_exps");
    CHECK(q4km(&q, "blk.3.shortconv.in_proj.weight", 2048) == KQ_Q4_K, "in_proj");
    CHECK(q4km(&q, "blk.3.ffn_gate_inp.weight", 2048) == KQ_F32, "router stays F32");
    CHECK(q4km(&q, "blk.3.shortconv.conv.weight", 3) == KQ_F32, "conv stays F32");
    int64_t ne1[1] = {2048};
    CHECK(synth_q4_k_m_type(&q, "blk.3.ffn_norm.weight", 1, ne1) == KQ_F32, "norm");
    CHECK(synth_q4_k_m_type(&q, "blk.3.exp_probs_b.bias", 1, ne1) == KQ_F32, "bias");
}

static void test_q4km_qwen3_30b(void)
{
    struct synth_q4km_state q = {.n_layer = 48, .n_expert = 128, .n_attn_v = 48,
                                 .has_output = true};
    char name[64];
    CHECK(q4km(&q, "output.weight", 2048) == KQ_Q6_K, "output -> Q6_K");
    CHECK(q4km(&q, "token_embd.weight", 2048) == KQ_Q4_K, "untied token_embd stays Q4_K");
    for (int il = 0; il < 48; il++) {
        /* qwen3moe.md §4: {0-5, 8, 11, ..., 41, 42-47} */
        bool m = il < 6 || il >= 42 || (il - 6) % 3 == 2;
        snprintf(name, sizeof(name), "blk.%d.attn_v.weight", il);
        CHECK(q4km(&q, name, 2048) == (m ? KQ_Q6_K : KQ_Q4_K), "%s", name);
        snprintf(name, sizeof(name), "blk.%d.ffn_down_exps.weight", il);
        CHECK(q4km(&q, name, 768) == (m ? KQ_Q6_K : KQ_Q4_K), "%s", name);
        snprintf(name, sizeof(name), "blk.%d.attn_output.weight", il);
        CHECK(q4km(&q, name, 4096) == KQ_Q4_K, "%s", name);
    }
}

static void test_q4km_special_cases(void)
{
    struct synth_q4km_state q = {.n_layer = 4, .n_expert = 8, .n_attn_v = 4};
    CHECK(q4km(&q, "blk.0.attn_v.weight", 256) == KQ_Q8_0, "8 experts: attn_v Q8_0");
    CHECK(q4km(&q, "blk.0.attn_k.weight", 256) == KQ_Q8_0, "8 experts: attn_k Q8_0");
    CHECK(q4km(&q, "blk.0.attn_output.weight", 256) == KQ_Q5_K, "8 experts: attn_output Q5_K");
    struct synth_q4km_state r = {.n_layer = 8, .n_expert = 4, .n_attn_v = 8};
    CHECK(q4km(&r, "blk.1.attn_q.weight", 288) == KQ_Q5_0, "Q4_K falls back to Q5_0");
    CHECK(q4km(&r, "blk.0.ffn_down_exps.weight", 288) == KQ_Q8_0, "Q6_K falls back to Q8_0");
    CHECK(q4km(&r, "output.weight", 288) == KQ_Q8_0, "output, ne0 not whole 256-blocks: Q8_0");
    CHECK(q4km(&r, "blk.1.attn_q.weight", 48) == KQ_F16, "no 32-block: F16");
}

/* Every tensor of a model llama-quantize wrote must get the type it gave, in file order. */
static void test_q4km_against(const char *dir, const char *model)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/models/%s", dir, model);
    struct gguf_file *f = NULL;
    struct mp_error err = {0};
    if (gguf_open(path, &f, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    int64_t n_layer = 0, n_expert = 0;
    const char *arch = strstr(model, "qwen3") ? "qwen3moe" : "lfm2moe";
    char key[64];
    snprintf(key, sizeof(key), "%s.block_count", arch);
    gguf_get_int(f, key, &n_layer, NULL);
    snprintf(key, sizeof(key), "%s.expert_count", arch);
    gguf_get_int(f, key, &n_expert, NULL);
    struct synth_q4km_state q = {.n_layer = (int)n_layer, .n_expert = (int)n_expert};
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        q.n_attn_v += strstr(f->tensors[i].name, "attn_v.weight") != NULL;
        q.has_output |= !strcmp(f->tensors[i].name, "output.weight");
    }
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const struct gguf_tensor *t = &f->tensors[i];
        enum kq_type got = synth_q4_k_m_type(&q, t->name, (int)t->n_dims, t->ne);
        CHECK(got == t->type, "%s %s: rules say %u, llama-quantize wrote %u", model, t->name,
              got, t->type);
    }
    gguf_close(f);
}

/* ---- tiny models ---- */

static void check_tokenizer(const char *path, const struct gguf_file *f, bool lfm2)
{
    struct tok_vocab *v = NULL;
    struct mp_error err = {0};
    CHECK(!tok_load(f, &v, &err), "%s: tok_load: %s", path, err.msg);
    if (!v)
        return;
    CHECK(tok_n_vocab(v) == 2048, "n_vocab %d", tok_n_vocab(v));
    CHECK(tok_add_bos(v) == lfm2, "add_bos");
    CHECK(tok_find(v, "<|im_end|>") == tok_eos(v), "eos is <|im_end|>");
    const char *text = "Hello world! The model's answer: 42 tokens, naïve café.\n\tdef f(x): ok";
    int32_t ids[256];
    int n = tok_encode(v, text, strlen(text), false, false, ids, 256, &err);
    CHECK(n > 0 && n < (int)strlen(text), "encode: %d ids (merges must shorten the text)", n);
    char out[512];
    int64_t m = n > 0 ? tok_decode(v, ids, (size_t)n, false, out, sizeof(out)) : -1;
    CHECK(m == (int64_t)strlen(text) && !memcmp(out, text, (size_t)m), "round trip");
    n = tok_encode(v, "<|im_start|>user", 16, false, true, ids, 256, &err);
    CHECK(n >= 2 && ids[0] == tok_find(v, "<|im_start|>"), "special token parsed");
    tok_free(v);
}

static void test_tiny(const char *preset, const char *type)
{
    struct synth_params p;
    struct mp_error err = {0};
    char name[64];
    snprintf(name, sizeof(name), "%s-%s.gguf", preset, type);
    const char *path = tmp_path(name);
    int rc = synth_preset(preset, &p, &err);
    rc = rc ? rc : synth_parse_ftype(type, &p.ftype, &err);
    rc = rc ? rc : synth_write(&p, path, 2, NULL, NULL, NULL, &err);
    CHECK(!rc, "%s: %s", name, err.msg);
    struct model *m = NULL;
    rc = rc ? rc : model_open(path, &m, &err);
    CHECK(!rc, "%s: model_open: %s", name, err.msg);
    if (m) {
        CHECK(m->hp.n_layer == p.n_layer && m->hp.n_expert == p.n_expert, "%s: shape", name);
        check_tokenizer(path, m->gguf, p.arch == SYNTH_LFM2MOE);
    }
    model_close(m);
}

/* Same seed, same bytes; another seed, other bytes. */
static void test_deterministic(void)
{
    struct synth_params p;
    struct mp_error err = {0};
    synth_preset("qwen3-tiny", &p, &err);
    p.ftype = SYNTH_Q8_0;
    const char *a = tmp_path("a.gguf"), *b = tmp_path("b.gguf"), *c = tmp_path("c.gguf");
    CHECK(!synth_write(&p, a, 1, NULL, NULL, NULL, &err), "%s", err.msg);
    CHECK(!synth_write(&p, b, 2, NULL, NULL, NULL, &err), "%s", err.msg);
    p.seed = 2;
    CHECK(!synth_write(&p, c, 2, NULL, NULL, NULL, &err), "%s", err.msg);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "cmp -s %s %s", a, b);
    CHECK(system(cmd) == 0, "1 and 2 threads give the same file");
    snprintf(cmd, sizeof(cmd), "cmp -s %s %s", a, c);
    CHECK(system(cmd) != 0, "another seed gives other weights");
}

static void test_bad_params(void)
{
    struct synth_params p;
    struct mp_error err = {0};
    CHECK(synth_preset("nope", &p, &err) == MP_EINVAL && strstr(err.msg, "tiny"), "preset");
    synth_preset("tiny", &p, &err);
    CHECK(synth_set_attn_layers(&p, "2,9", &err) == MP_EINVAL, "layer out of range");
    CHECK(synth_set_attn_layers(&p, "1,x", &err) == MP_EINVAL, "not a number");
    p.n_embd = 100;
    CHECK(synth_check(&p, &err) == MP_EINVAL && strstr(err.msg, "n_embd"), "n_embd");
    synth_preset("tiny", &p, &err);
    p.n_head_kv = 3;
    CHECK(synth_check(&p, &err) == MP_EINVAL, "n_head not a multiple of n_head_kv");
}

static int check_finite(const char *path, long n_vocab)
{
    FILE *f = fopen(path, "rb");
    if (!f || n_vocab <= 0) {
        fprintf(stderr, "%s: cannot open\n", path);
        return 1;
    }
    float x[4096];
    size_t n, total = 0, bad = 0;
    while ((n = fread(x, sizeof(float), 4096, f)) > 0) {
        for (size_t i = 0; i < n; i++)
            bad += !isfinite(x[i]);
        total += n;
    }
    fclose(f);
    printf("%zu logits, %zu rows, %zu not finite\n", total, total / (size_t)n_vocab, bad);
    return total == 0 || total % (size_t)n_vocab || bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--finite"))
        return check_finite(argv[2], atol(argv[3]));
    kq_init();
    snprintf(tmpdir, sizeof(tmpdir), "%s/synth_test.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_roundtrip();
    test_writer_errors();
    test_q4km_lfm2_8b();
    test_q4km_qwen3_30b();
    test_q4km_special_cases();
    if (argc > 1) {
        test_q4km_against(argv[1], "lfm2moe-tiny-q4_k_m.gguf");
        test_q4km_against(argv[1], "lfm2moe-small-q4_k_m.gguf");
        test_q4km_against(argv[1], "qwen3moe-tiny-q4_k_m.gguf");
    }
    static const char *const types[] = {"f32", "q8_0", "q4_k_m"};
    for (int t = 0; t < 3; t++) {
        test_tiny("tiny", types[t]);
        test_tiny("qwen3-tiny", types[t]);
    }
    test_deterministic();
    test_bad_params();
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("synth_test: all passed\n");
    return 0;
}
