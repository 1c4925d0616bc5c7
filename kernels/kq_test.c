/* kernels/kq_test.c: unit test of the format table, the SIMD kernels, matmul and the pool.
 *
 * For every SIMD level this CPU has (switched in-process with kq_init_level) and every format
 * moepool computes with, on random data with fixed seeds: dequantization and activation
 * conversion are bit-identical to kq_ref.c; dots agree with the reference dot and with an exact
 * (double) dot of the dequantized operands within float-reordering noise; matmul over 1 and 2
 * threads equals one dot per output. Also: half/bfloat16 conversions on all 65536 inputs, the
 * quality of the weight quantizers, and the table's sizes. Exit status 0 iff all pass. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kq_impl.h"
#include "kernels/matmul.h"

static int n_fail;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            if (n_fail++ < 30) {                                          \
                fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);      \
                fprintf(stderr, __VA_ARGS__);                             \
                fputc('\n', stderr);                                      \
            }                                                             \
        }                                                                 \
    } while (0)

/* ---- deterministic random data ---- */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9E3779B97F4A7C15ull + 1;
}

static uint64_t rng_u64(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static float rng_unit(void) /* [0, 1) */
{
    return (float)(rng_u64() >> 40) * 0x1p-24f;
}

static float rng_gauss(void)
{
    float u = rng_unit() + 0x1p-25f, v = rng_unit();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

/* n floats in groups of 32 with a magnitude chosen per group (1e-5 .. 1e4), some groups zero,
 * some with one large outlier: the cases where scales, rounding and saturation go wrong. */
static void gen_floats(float *x, int64_t n)
{
    for (int64_t g = 0; g < n; g += 32) {
        const int kind = (int)(rng_u64() % 16);
        const float mag = powf(10.0f, -5.0f + 9.0f * rng_unit());
        for (int64_t j = g; j < g + 32 && j < n; j++)
            x[j] = kind == 0 ? 0.0f : mag * rng_gauss();
        if (kind == 1)
            x[g + (int64_t)(rng_u64() % 32) % (n - g)] = 100.0f * mag;
    }
}

/* Keeps data for F16 inside the half range (65504): beyond it both sides turn into infinities
 * and NaNs, which compare unequal to themselves and test nothing. */
static void fit_type(enum kq_type type, float *x, int64_t n)
{
    if (type != KQ_F16)
        return;
    for (int64_t i = 0; i < n; i++)
        x[i] = fmaxf(-60000.0f, fminf(60000.0f, x[i]));
}

/* A sane random f16 scale: magnitude 2^-20 .. 2^2, random sign when allowed. */
static uint16_t gen_f16_scale(bool allow_negative)
{
    float v = ldexpf(1.0f + rng_unit(), -20 + (int)(rng_u64() % 23));
    if (allow_negative && (rng_u64() & 1))
        v = -v;
    return kq_f32_to_f16(v);
}

/* Random weight blocks: random bytes everywhere (all bit patterns of the integer fields), then
 * the float scale fields replaced by sane values; occasionally a zero scale. */
static void gen_weights(enum kq_type type, void *data, int64_t n)
{
    const struct kq_format *f = &kq_ref_table[type];
    const int64_t nb = n / f->block_elems;
    uint8_t *p = data;
    for (size_t i = 0; i < (size_t)nb * (size_t)f->block_bytes; i++)
        p[i] = (uint8_t)rng_u64();
    if (type == KQ_F32 || type == KQ_F16 || type == KQ_BF16) {
        float *tmp = malloc((size_t)n * sizeof(float));
        gen_floats(tmp, n);
        fit_type(type, tmp, n);
        f->from_f32(tmp, data, n);
        free(tmp);
        return;
    }
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = p + (size_t)b * (size_t)f->block_bytes;
        uint16_t d = (rng_u64() % 16) ? gen_f16_scale(true) : 0;
        uint16_t dmin = gen_f16_scale(false);
        switch (type) {
        case KQ_Q6_K:
            memcpy(blk + 208, &d, 2);
            break;
        case KQ_Q4_K:
        case KQ_Q5_K:
            memcpy(blk, &d, 2);
            memcpy(blk + 2, &dmin, 2);
            break;
        default:
            memcpy(blk, &d, 2);
            break;
        }
    }
}

/* ---- helpers ---- */

static const enum kq_type computable[] = {KQ_F32, KQ_F16, KQ_BF16, KQ_Q4_0, KQ_Q5_0,
                                          KQ_Q8_0, KQ_Q4_K, KQ_Q5_K, KQ_Q6_K};
#define N_COMPUTABLE (int)(sizeof(computable) / sizeof(computable[0]))

static const char *name(enum kq_type t)
{
    return kq_ref_table[t].name;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* The weight's two parts for error bounds: K-quants with mins dequantize as d·sc·q − dmin·m;
 * zeroing dmin (or d) in a copy isolates each part, so |d part| + |min part| bounds the terms
 * the kernels sum even when the two cancel in w. */
static void weight_abs_parts(enum kq_type type, const void *w, int64_t n, double *wabs)
{
    const struct kq_format *f = &kq_ref_table[type];
    const size_t bytes = kq_row_bytes(type, n);
    float *tmp = xmalloc((size_t)n * sizeof(float));
    uint8_t *copy = xmalloc(bytes);
    memcpy(copy, w, bytes);
    if (type == KQ_Q4_K || type == KQ_Q5_K)
        for (size_t b = 0; b < bytes; b += (size_t)f->block_bytes)
            memset(copy + b + 2, 0, 2); /* dmin = 0: scale part only */
    f->to_f32(copy, tmp, n);
    for (int64_t i = 0; i < n; i++)
        wabs[i] = fabs(tmp[i]);
    if (type == KQ_Q4_K || type == KQ_Q5_K) {
        memcpy(copy, w, bytes);
        for (size_t b = 0; b < bytes; b += (size_t)f->block_bytes)
            memset(copy + b, 0, 2); /* d = 0: min part only */
        f->to_f32(copy, tmp, n);
        for (int64_t i = 0; i < n; i++)
            wabs[i] += fabs(tmp[i]);
    }
    free(copy);
    free(tmp);
}

/* ---- tests ---- */

static void test_table(void)
{
    CHECK(kq_format(KQ_TYPE_COUNT) == NULL, "id past the table must be unknown");
    CHECK(kq_format(4) == NULL && kq_format(31) == NULL, "unused ids must be unknown");
    CHECK(kq_row_bytes(KQ_Q4_K, 4096) == 16 * 144, "Q4_K row bytes");
    CHECK(kq_row_bytes(KQ_Q4_K, 100) == 0, "partial block must be rejected");
    CHECK(kq_row_bytes(KQ_IQ4_XS, 512) == 2 * 136, "IQ4_XS row bytes");
    CHECK(kq_row_bytes(KQ_MXFP4, 64) == 34, "MXFP4 row bytes");
    CHECK(!kq_can_compute(KQ_Q8_K), "Q8_K is activation-only");
    CHECK(!kq_can_compute(KQ_Q2_K), "Q2_K is not computable");
    for (int i = 0; i < N_COMPUTABLE; i++)
        CHECK(kq_can_compute(computable[i]), "%s must be computable", name(computable[i]));
}

static void test_f16_bf16(void)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = kq_f16_to_f32((uint16_t)h);
        uint16_t back = kq_f32_to_f16(f);
        bool nan = ((h >> 10) & 0x1F) == 0x1F && (h & 0x3FF);
        if (nan)
            CHECK(isnan(f) && ((back >> 10) & 0x1F) == 0x1F && (back & 0x3FF),
                  "f16 NaN %04x must stay NaN", h);
        else
            CHECK(back == h, "f16 round trip %04x -> %g -> %04x", h, f, back);
        float g = kq_bf16_to_f32((uint16_t)h);
        uint16_t gb = kq_f32_to_bf16(g);
        if (isnan(g))
            CHECK(isnan(kq_bf16_to_f32(gb)), "bf16 NaN %04x must stay NaN", h);
        else
            CHECK(gb == h, "bf16 round trip %04x -> %04x", h, gb);
    }
    /* rounding: random f32 bit patterns round to the nearest half, ties to even */
    rng_seed(7);
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)rng_u64();
        float x;
        memcpy(&x, &u, 4);
        if (isnan(x))
            continue;
        uint16_t h = kq_f32_to_f16(x);
        double v = kq_f16_to_f32(h), dx = x;
        if (isinf(v)) {
            CHECK(fabs(dx) >= 65520.0, "f16(%g) overflowed early", dx);
            continue;
        }
        uint16_t up = (uint16_t)(h + 1), down = (uint16_t)(h - 1);
        double e = fabs(v - dx);
        if ((h & 0x7FFF) != 0x7BFF) {
            double eu = fabs(kq_f16_to_f32(up) - dx);
            CHECK(e < eu || (e == eu && !(h & 1)), "f16(%a) not nearest-even", dx);
        }
        if ((h & 0x7FFF) != 0) {
            double ed = fabs(kq_f16_to_f32(down) - dx);
            CHECK(e < ed || (e == ed && !(h & 1)), "f16(%a) not nearest-even", dx);
        }
        uint16_t b = kq_f32_to_bf16(x);
        double bv = kq_bf16_to_f32(b);
        if (!isinf(bv)) {
            double eb = fabs(bv - dx), ebu = fabs(kq_bf16_to_f32((uint16_t)(b + 1)) - dx);
            CHECK(eb < ebu || (eb == ebu && !(b & 1)) || (b & 0x7FFF) == 0x7F7F,
                  "bf16(%a) not nearest-even", dx);
        }
    }
    CHECK(kq_f32_to_f16(65504.0f) == 0x7BFF && kq_f32_to_f16(65520.0f) == 0x7C00, "f16 max");
    CHECK(kq_f32_to_f16(0x1p-24f) == 1 && kq_f32_to_f16(0x1p-25f) == 0, "f16 subnormal ties");
    CHECK(kq_f32_to_f16(0x1.8p-24f) == 2 && kq_f32_to_f16(-0.0f) == 0x8000, "f16 ties/sign");
    CHECK(kq_f32_to_f16(INFINITY) == 0x7C00 && kq_f32_to_f16(NAN) == 0x7E00, "f16 inf/nan");
}

/* Relative RMS error of each weight quantizer on Gaussian data; thresholds are about 1.5× what
 * the ggml schemes reach (Q4_0 ~0.11, Q4_K ~0.07, Q5_0 ~0.055, Q5_K ~0.035, Q6_K ~0.018,
 * Q8_0 ~0.004), so a broken layout or scale search fails clearly. */
static void test_quantizer_quality(void)
{
    static const struct {
        enum kq_type type;
        double max_rel_rms;
    } cases[] = {{KQ_Q4_0, 0.17}, {KQ_Q5_0, 0.085}, {KQ_Q8_0, 0.007},
                 {KQ_Q4_K, 0.11}, {KQ_Q5_K, 0.055}, {KQ_Q6_K, 0.03}};
    const int64_t n = 256 * 64;
    float *x = xmalloc((size_t)n * sizeof(float)), *y = xmalloc((size_t)n * sizeof(float));
    uint8_t *q = xmalloc(kq_row_bytes(KQ_Q8_0, n));
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const struct kq_format *f = &kq_ref_table[cases[c].type];
        rng_seed(100 + c);
        for (int64_t i = 0; i < n; i++)
            x[i] = rng_gauss();
        f->from_f32(x, q, n);
        f->to_f32(q, y, n);
        double se = 0, sx = 0;
        for (int64_t i = 0; i < n; i++) {
            se += (double)(y[i] - x[i]) * (y[i] - x[i]);
            sx += (double)x[i] * x[i];
        }
        double rel = sqrt(se / sx);
        CHECK(rel < cases[c].max_rel_rms, "%s quantizer relative RMS %.4f > %.4f",
              f->name, rel, cases[c].max_rel_rms);
    }
    free(q);
    free(y);
    free(x);
}

/* Dequantization, conversion and quantization on this level must equal the reference bit for
 * bit: they involve no sums, so there is no order to differ in. */
static void test_bit_identical(const char *level)
{
    static const enum kq_type types[] = {KQ_F32, KQ_F16, KQ_BF16, KQ_Q4_0, KQ_Q5_0, KQ_Q8_0,
                                         KQ_Q4_K, KQ_Q5_K, KQ_Q6_K, KQ_Q8_K};
    const int64_t n = 256 * 24;
    float *x = xmalloc((size_t)n * sizeof(float));
    float *y1 = xmalloc((size_t)n * sizeof(float)), *y2 = xmalloc((size_t)n * sizeof(float));
    uint8_t *b1 = xmalloc((size_t)n * 4), *b2 = xmalloc((size_t)n * 4);
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        const struct kq_format *ref = &kq_ref_table[types[t]], *cur = kq_format(types[t]);
        const size_t bytes = kq_row_bytes(types[t], n);
        for (int rep = 0; rep < 4; rep++) {
            rng_seed(1000 * t + (uint64_t)rep);
            gen_floats(x, n);
            if (rep == 3) /* extreme but finite scales for every format */
                for (int64_t i = 0; i < n; i++)
                    x[i] *= (i / 256) % 2 ? 1e-30f : 60000.0f / 1e4f;
            memset(b1, 0, bytes);
            memset(b2, 0xAB, bytes);
            ref->from_f32(x, b1, n);
            cur->from_f32(x, b2, n);
            CHECK(!memcmp(b1, b2, bytes), "[%s] %s from_f32 differs from ref (rep %d)", level,
                  ref->name, rep);
            if (types[t] != KQ_Q8_K)
                gen_weights(types[t], b1, n);
            ref->to_f32(b1, y1, n);
            cur->to_f32(b1, y2, n);
            CHECK(!memcmp(y1, y2, (size_t)n * sizeof(float)), "[%s] %s to_f32 differs", level,
                  ref->name);
        }
    }
    free(b2);
    free(b1);
    free(y2);
    free(y1);
    free(x);
}

/* One dot on this level against (a) the reference dot and (b) the exact dot of the dequantized
 * operands. Both kernels form exact integer sums per block and differ only in how the float
 * block terms are scaled and added, so each differs from the exact value by at most about
 * (n_terms + a few) · eps · Σ|terms|; Σ|terms| ≤ Σ|w_i|·|a_i| over the isolated weight parts.
 * The bound is (n_blocks + 64)·FLT_EPSILON·Σ|w_i a_i|: a wrong integer sum is off by at least
 * one term, far above it unless that term is itself below float noise. */
static void check_dot(const char *level, enum kq_type type, int64_t n, const void *w,
                      const void *a, double *wabs, float *tmp)
{
    const struct kq_format *ref = &kq_ref_table[type], *cur = kq_format(type);
    const struct kq_format *act = &kq_ref_table[ref->act_type];
    float r, s;
    ref->dot(n, &r, w, a);
    cur->dot(n, &s, w, a);

    double exact = 0, sabs = 0;
    float *wf = tmp, *af = tmp + n;
    ref->to_f32(w, wf, n);
    act->to_f32(a, af, n);
    weight_abs_parts(type, w, n, wabs);
    for (int64_t i = 0; i < n; i++) {
        exact += (double)wf[i] * af[i];
        sabs += wabs[i] * fabs(af[i]);
    }
    const double tol = (double)(n / ref->block_elems + 64) * FLT_EPSILON * sabs + 1e-37;
    CHECK(fabs((double)s - r) <= tol, "[%s] %s n=%lld dot %.9g vs ref %.9g (tol %.3g)", level,
          ref->name, (long long)n, s, r, tol);
    CHECK(fabs((double)r - exact) <= tol, "[%s] %s n=%lld ref dot %.9g vs exact %.9g", level,
          ref->name, (long long)n, r, exact);
}

static void test_dots(const char *level)
{
    static const int64_t sizes[] = {256, 512, 768, 2048, 4096, 11008 - 11008 % 256};
    const int64_t nmax = 11008;
    float *x = xmalloc((size_t)nmax * sizeof(float)), *tmp = xmalloc(2 * (size_t)nmax * 4);
    double *wabs = xmalloc((size_t)nmax * sizeof(double));
    uint8_t *w = xmalloc((size_t)nmax * 4), *a = xmalloc((size_t)nmax * 4);
    for (int t = 0; t < N_COMPUTABLE; t++) {
        const enum kq_type type = computable[t];
        const struct kq_format *ref = &kq_ref_table[type];
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
            for (int rep = 0; rep < 3; rep++) {
                const int64_t n = sizes[si];
                rng_seed(5000 + 100 * (uint64_t)t + 10 * si + (uint64_t)rep);
                gen_floats(x, n);
                fit_type(ref->act_type, x, n);
                kq_ref_table[ref->act_type].from_f32(x, a, n);
                if (rep == 2) { /* weights from the quantizer instead of random bytes */
                    gen_floats(x, n);
                    fit_type(type, x, n);
                    ref->from_f32(x, w, n);
                } else {
                    gen_weights(type, w, n);
                }
                check_dot(level, type, n, w, a, wabs, tmp);
            }
        }
        /* all-zero activations and weights: every kernel must return exactly 0 */
        memset(a, 0, kq_row_bytes(ref->act_type, 512));
        gen_weights(type, w, 512);
        float s = 1;
        kq_format(type)->dot(512, &s, w, a);
        CHECK(s == 0.0f, "[%s] %s dot with zero activations = %g", level, ref->name, s);
    }
    free(a);
    free(w);
    free(wabs);
    free(tmp);
    free(x);
}

/* Every dot4 on this level: each of its four outputs memcmp-equal to the level's single dot, on
 * random blocks (zero and negative scales included) and quantizer output, for block counts that
 * leave odd tails; batch invariance (model/forward_test.c) rests on this. */
static void test_dot4(const char *level)
{
    static const int64_t n_blocks[] = {1, 2, 3, 8, 16, 43};
    const int64_t nmax = 43 * 256;
    float *x = xmalloc((size_t)nmax * sizeof(float));
    uint8_t *w = xmalloc((size_t)nmax * 4), *act[4];
    for (int k = 0; k < 4; k++)
        act[k] = xmalloc((size_t)nmax * 4);
    for (int t = 0; t < N_COMPUTABLE; t++) {
        const enum kq_type type = computable[t];
        const struct kq_format *f = kq_format(type), *af = kq_format(f->act_type);
        if (!f->dot4)
            continue;
        for (size_t bi = 0; bi < sizeof(n_blocks) / sizeof(n_blocks[0]); bi++) {
            for (int rep = 0; rep < 4; rep++) {
                const int64_t n = n_blocks[bi] * f->block_elems;
                rng_seed(7000 + 100 * (uint64_t)t + 10 * bi + (uint64_t)rep);
                for (int k = 0; k < 4; k++) {
                    gen_floats(x, n);
                    fit_type(f->act_type, x, n);
                    af->from_f32(x, act[k], n);
                }
                if (rep == 3) {
                    gen_floats(x, n);
                    fit_type(type, x, n);
                    kq_ref_table[type].from_f32(x, w, n);
                } else {
                    gen_weights(type, w, n);
                }
                const void *a[4] = {act[0], act[1], act[2], act[3]};
                float s4[4], s1[4];
                f->dot4(n, s4, w, a);
                for (int k = 0; k < 4; k++)
                    f->dot(n, &s1[k], w, act[k]);
                CHECK(!memcmp(s4, s1, sizeof(s4)),
                      "[%s] %s n=%lld dot4 (%.9g %.9g %.9g %.9g) != dot (%.9g %.9g %.9g %.9g)",
                      level, f->name, (long long)n, s4[0], s4[1], s4[2], s4[3], s1[0], s1[1],
                      s1[2], s1[3]);
            }
        }
    }
    for (int k = 0; k < 4; k++)
        free(act[k]);
    free(w);
    free(x);
}

/* The weighted F16 row sum (attention's V sum) equals the reference bit for bit, for widths that
 * leave SIMD tails, strided rows (several heads per cache row) and a nonzero starting y. */
static void test_mad_rows(const char *level)
{
    static const int64_t widths[] = {1, 7, 8, 16, 33, 64, 80, 128, 200};
    const int64_t n_rows = 37, stride = 260;
    float *x = xmalloc((size_t)(n_rows * stride) * sizeof(float)), p[37];
    uint16_t *v = xmalloc((size_t)(n_rows * stride) * sizeof(uint16_t));
    float y1[200], y2[200];
    rng_seed(4242);
    gen_floats(x, n_rows * stride);
    for (int64_t i = 0; i < n_rows * stride; i++)
        v[i] = kq_f32_to_f16(x[i]);
    gen_floats(p, n_rows);
    for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
        const int64_t n = widths[w];
        gen_floats(y1, n);
        memcpy(y2, y1, (size_t)n * sizeof(float));
        kq_mad_rows_f16_ref(n, n_rows, y1, p, v + 3, (size_t)stride);
        kq_mad_rows_f16(n, n_rows, y2, p, v + 3, (size_t)stride);
        CHECK(!memcmp(y1, y2, (size_t)n * sizeof(float)),
              "[%s] mad_rows_f16 n=%lld differs from ref", level, (long long)n);
    }
    free(v);
    free(x);
}

/* matmul and convert over a pool equal per-row dots and per-row conversion exactly. */
static void test_matmul(const char *level, struct tp_pool *pool)
{
    static const int n_toks[] = {1, 2, 3, 5, 7, 17};
    const int64_t K = 512, M = 67;
    const int max_tok = 17;
    float *x = xmalloc((size_t)(max_tok * K) * sizeof(float));
    float *y = xmalloc((size_t)(max_tok * M) * sizeof(float));
    uint8_t *w = xmalloc((size_t)(M * K) * 4);
    uint8_t *xq = xmalloc((size_t)(max_tok * K) * 4), *xq1 = xmalloc((size_t)K * 4);
    int32_t rows[17];
    for (int t = 0; t < N_COMPUTABLE; t++) {
        const enum kq_type type = computable[t];
        const struct kq_format *f = kq_format(type), *act = kq_format(f->act_type);
        const size_t row_bytes = kq_row_bytes(type, K), act_stride = kq_act_row_bytes(type, K);
        rng_seed(9000 + (uint64_t)t);
        gen_weights(type, w, M * K);
        const struct kq_matrix W = {w, type, K, M, row_bytes, KQ_LAYOUT_ROWS};
        for (size_t ni = 0; ni < sizeof(n_toks) / sizeof(n_toks[0]); ni++) {
            const int n_tok = n_toks[ni];
            gen_floats(x, (int64_t)n_tok * K);
            fit_type(f->act_type, x, (int64_t)n_tok * K);
            kq_convert_act(pool, type, x, (size_t)K, n_tok, K, xq, act_stride);
            for (int tok = 0; tok < n_tok; tok++) {
                act->from_f32(x + (size_t)tok * K, xq1, K);
                CHECK(!memcmp(xq1, xq + (size_t)tok * act_stride, act_stride),
                      "[%s] %s convert_act row %d differs", level, f->name, tok);
            }
            kq_matmul(pool, &W, xq, act_stride, n_tok, y, (size_t)M);
            for (int tok = 0; tok < n_tok; tok++)
                for (int64_t m = 0; m < M; m++) {
                    float s;
                    f->dot(K, &s, w + (size_t)m * row_bytes, xq + (size_t)tok * act_stride);
                    CHECK(s == y[(size_t)tok * M + (size_t)m], "[%s] %s matmul t=%d m=%lld",
                          level, f->name, tok, (long long)m);
                }
            for (int i = 0; i < n_tok; i++)
                rows[i] = (int32_t)((i * 7 + 3) % n_tok);
            kq_matmul_rows(pool, &W, xq, act_stride, rows, n_tok, y, (size_t)M);
            for (int tok = 0; tok < n_tok; tok++)
                for (int64_t m = 0; m < M; m += 5) {
                    float s;
                    f->dot(K, &s, w + (size_t)m * row_bytes, xq + (size_t)rows[tok] * act_stride);
                    CHECK(s == y[(size_t)tok * M + (size_t)m], "[%s] %s matmul_rows t=%d", level,
                          f->name, tok);
                }
        }
    }
    /* a conversion big enough to run on the pool's threads */
    const int64_t Kbig = 256 * 64;
    float *xb = xmalloc((size_t)(8 * Kbig) * sizeof(float));
    uint8_t *qb = xmalloc((size_t)kq_act_row_bytes(KQ_Q4_K, Kbig) * 8);
    gen_floats(xb, 8 * Kbig);
    const size_t stride = kq_act_row_bytes(KQ_Q4_K, Kbig);
    kq_convert_act(pool, KQ_Q4_K, xb, (size_t)Kbig, 8, Kbig, qb, stride);
    for (int tok = 0; tok < 8; tok++) {
        uint8_t *one = xmalloc(stride);
        kq_format(KQ_Q8_K)->from_f32(xb + (size_t)tok * Kbig, one, Kbig);
        CHECK(!memcmp(one, qb + (size_t)tok * stride, stride), "[%s] threaded convert row %d",
              level, tok);
        free(one);
    }
    free(qb);
    free(xb);
    free(xq1);
    free(xq);
    free(w);
    free(y);
    free(x);
}

static int counter_hits[4];

static void count_task(void *ctx, int ith, int nth)
{
    int *calls = ctx;
    __atomic_fetch_add(&calls[ith], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&counter_hits[nth < 4 ? nth : 3], 1, __ATOMIC_RELAXED);
}

static void test_pool(void)
{
    struct tp_pool *pool = tp_new(3);
    CHECK(pool && tp_n_threads(pool) == 3, "tp_new(3)");
    int calls[3] = {0};
    for (int i = 0; i < 20000; i++)
        tp_run(pool, count_task, calls);
    CHECK(calls[0] == 20000 && calls[1] == 20000 && calls[2] == 20000,
          "every thread runs every step: %d %d %d", calls[0], calls[1], calls[2]);
    /* Sent to sleep between steps (as while a cluster waits on its workers): every step still
     * runs on every thread, the sleepers are woken. */
    for (int i = 0; i < 2000; i++) {
        tp_sleep_now(pool);
        if (i % 100 == 0)
            usleep(200);
        tp_run(pool, count_task, calls);
    }
    CHECK(calls[0] == 22000 && calls[1] == 22000 && calls[2] == 22000,
          "after tp_sleep_now every thread runs every step: %d %d %d", calls[0], calls[1],
          calls[2]);
    tp_sleep_now(NULL);
    tp_free(pool);
    tp_run(NULL, count_task, calls);
    CHECK(calls[0] == 22001 && tp_n_threads(NULL) == 1, "NULL pool runs inline");
    tp_free(NULL);
}

/* A random row-major M x K matrix of `type` in *w (described by *W), and the n_tok rows of x
 * fitted to its activation type and converted into *xq; returns the activation row stride. */
static size_t random_product(enum kq_type type, int64_t K, int64_t M, const float *x, int n_tok,
                             uint8_t **w, uint8_t **xq, struct kq_matrix *W)
{
    const size_t act_stride = kq_act_row_bytes(type, K);
    *w = xmalloc((size_t)M * K * 4);
    *xq = xmalloc(act_stride * (size_t)n_tok);
    gen_weights(type, *w, M * K);
    float *xf = xmalloc((size_t)n_tok * (size_t)K * sizeof(float));
    memcpy(xf, x, (size_t)n_tok * (size_t)K * sizeof(float));
    fit_type(kq_format(type)->act_type, xf, n_tok * K);
    kq_convert_act(NULL, type, xf, K, n_tok, K, *xq, act_stride);
    free(xf);
    *W = (struct kq_matrix){*w, type, K, M, kq_row_bytes(type, K), KQ_LAYOUT_ROWS};
    return act_stride;
}

/* kq_matmul_multi: more products than one step takes (64), every format, single tokens and
 * batches, token lists, an empty product; each output equal to the level's dot. */
static void test_matmul_multi(const char *level, struct tp_pool *pool)
{
    enum { N_MM = 70, K = 256, MAX_TOK = 5 };
    struct kq_matrix W[N_MM];
    struct kq_mm mm[N_MM];
    uint8_t *w[N_MM], *xq[N_MM];
    float *y[N_MM], x[MAX_TOK * K];
    static const int32_t rows[MAX_TOK] = {4, 0, 2, 1, 3};
    rng_seed(31337);
    gen_floats(x, MAX_TOK * K);
    for (int i = 0; i < N_MM; i++) {
        const enum kq_type type = computable[i % N_COMPUTABLE];
        const int64_t M = 1 + (i * 37) % 90;
        const int n_tok = i % 4 == 3 ? 0 : 1 + (i % 3) * 2;
        const size_t act_stride = random_product(type, K, M, x, MAX_TOK, &w[i], &xq[i], &W[i]);
        y[i] = xmalloc((size_t)(M * MAX_TOK) * sizeof(float));
        mm[i] = (struct kq_mm){&W[i], xq[i], act_stride, i % 2 ? rows : NULL, n_tok, y[i],
                               (size_t)M};
    }
    kq_matmul_multi(pool, N_MM, mm);
    for (int i = 0; i < N_MM; i++) {
        const struct kq_format *f = kq_format(W[i].type);
        for (int t = 0; t < mm[i].n_tok; t++)
            for (int64_t m = 0; m < W[i].n_rows; m++) {
                float s;
                const int src = mm[i].rows ? mm[i].rows[t] : t;
                f->dot(K, &s, w[i] + (size_t)m * W[i].row_bytes, xq[i] + src * mm[i].act_stride);
                CHECK(s == y[i][(size_t)t * W[i].n_rows + (size_t)m],
                      "[%s] %s matmul_multi product %d t=%d m=%lld", level, f->name, i, t,
                      (long long)m);
            }
        free(w[i]);
        free(xq[i]);
        free(y[i]);
    }
}

/* A gated activation for test_matmul_glu: any elementwise function of (gate, up) will do. */
static void test_act(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* kq_matmul_glu against its definition (kq_matmul_multi, the activation, kq_convert_act one
 * after the other), bit for bit: 40 pairs (more than one step's 32) of every weight format, row-
 * major and x16, 16 to 1056 rows (whole and partial 256-row units), 0 to 5 tokens with and
 * without a rows list, h converted for Q6_K (Q8_K blocks of 256), Q8_0 (32) and F32 downs. */
static void test_matmul_glu(const char *level, struct tp_pool *pool)
{
    enum { N_PAIR = 40, K = 256, MAX_TOK = 5 };
    static const int32_t rows[MAX_TOK] = {3, 0, 4, 1, 2};
    static const enum kq_type downs[] = {KQ_Q6_K, KQ_Q8_0, KQ_F32};
    for (int d = 0; d < 3; d++) {
        const enum kq_type down = downs[d];
        const enum kq_type hq_type = kq_format(down)->act_type;
        const struct kq_format *hf = kq_format(hq_type);
        struct kq_matrix W[2 * N_PAIR];
        struct kq_glu glu[N_PAIR], ref[N_PAIR];
        uint8_t *w[2 * N_PAIR], *xq[2 * N_PAIR], *hq[2 * N_PAIR];
        float *y[4 * N_PAIR], x[MAX_TOK * K];
        size_t hq_stride[N_PAIR];
        rng_seed(4242 + (uint64_t)d);
        gen_floats(x, MAX_TOK * K);
        for (int i = 0; i < 2 * N_PAIR; i++) {
            const int pair = i / 2;
            const enum kq_type type = computable[(pair + d) % N_COMPUTABLE];
            int64_t M = (int64_t)(1 + (pair * 7) % 4) * 256 + (pair % 3 == 1 ? 32 : 0);
            M = M / hf->block_elems * hf->block_elems;
            const size_t act_stride = random_product(type, K, M, x, MAX_TOK, &w[i], &xq[i], &W[i]);
            if (pair % 2 && kq_x16_supported(type, K, M) &&
                kq_x16_repack(type, K, M, w[i], w[i]) == 0)
                W[i].layout = KQ_LAYOUT_X16;
            for (int c = 0; c < 2; c++)
                y[2 * i + c] = xmalloc((size_t)(M * MAX_TOK) * sizeof(float));
            if (i % 2 == 0) {
                const int n_tok = pair % 6 == 5 ? 0 : 1 + pair % 5;
                hq_stride[pair] = kq_row_bytes(hq_type, M);
                for (int c = 0; c < 2; c++)
                    hq[2 * pair + c] = xmalloc(hq_stride[pair] * MAX_TOK);
                glu[pair].gate = (struct kq_mm){&W[i], xq[i], act_stride, pair % 4 ? rows : NULL,
                                                n_tok, y[2 * i], (size_t)M};
            } else {
                const struct kq_mm g = glu[pair].gate;
                glu[pair].up = (struct kq_mm){&W[i], xq[i], act_stride, pair % 3 ? NULL : rows,
                                              g.n_tok, y[2 * i], (size_t)M};
                glu[pair].hq = hq[2 * pair];
                glu[pair].hq_stride = hq_stride[pair];
                ref[pair] = glu[pair];
                ref[pair].gate.y = y[2 * (i - 1) + 1];
                ref[pair].up.y = y[2 * i + 1];
                ref[pair].hq = hq[2 * pair + 1];
            }
        }
        kq_matmul_glu(pool, down, test_act, N_PAIR, glu);
        for (int p = 0; p < N_PAIR; p++) {
            const struct kq_glu *r = &ref[p];
            const int64_t M = r->gate.W->n_rows;
            const struct kq_mm mm[2] = {r->gate, r->up};
            kq_matmul_multi(pool, 2, mm);
            for (int t = 0; t < r->gate.n_tok; t++)
                test_act(r->gate.y + t * M, r->up.y + t * M, M);
            kq_convert_act(pool, down, r->gate.y, (size_t)M, r->gate.n_tok, M, r->hq,
                           r->hq_stride);
            const size_t n = (size_t)(r->gate.n_tok * M);
            CHECK(!memcmp(glu[p].gate.y, r->gate.y, n * sizeof(float)) &&
                      !memcmp(glu[p].up.y, r->up.y, n * sizeof(float)) &&
                      !memcmp(glu[p].hq, r->hq, r->hq_stride * (size_t)r->gate.n_tok),
                  "[%s] matmul_glu pair %d (%s, %s rows %lld, %d tokens) down %s", level, p,
                  name(r->gate.W->type), r->gate.W->layout ? "x16" : "row-major",
                  (long long)M, r->gate.n_tok, name(down));
        }
        for (int i = 0; i < 2 * N_PAIR; i++) {
            free(w[i]);
            free(xq[i]);
            free(y[2 * i]);
            free(y[2 * i + 1]);
            free(hq[i]);
        }
    }
}

/* kq_init honours MOEPOOL_SIMD (ctest runs this binary once more with MOEPOOL_SIMD=avx2). */
static void test_simd_cap(void)
{
    const char *cap = getenv("MOEPOOL_SIMD");
    const enum kq_level best = cpu_detect().level;
    enum kq_level want = best;
    if (cap && !strcmp(cap, "ref"))
        want = KQ_LEVEL_REF;
    else if (cap && !strcmp(cap, "avx2") && best > KQ_LEVEL_AVX2)
        want = KQ_LEVEL_AVX2;
    CHECK(!strcmp(kq_simd_name(), kq_level_name(want)), "MOEPOOL_SIMD=%s gave level %s",
          cap ? cap : "(unset)", kq_simd_name());
}

int main(void)
{
    kq_init();
    test_simd_cap();
    test_table();
    test_f16_bf16();
    test_quantizer_quality();
    test_pool();
    const struct cpu_features cf = cpu_detect();
    for (int lv = KQ_LEVEL_REF; lv <= (int)cf.level; lv++) {
        const char *level = kq_level_name(kq_init_level((enum kq_level)lv));
        const int before = n_fail;
        test_bit_identical(level);
        test_dots(level);
        test_dot4(level);
        test_mad_rows(level);
        for (int nth = 1; nth <= 2; nth++) {
            struct tp_pool *pool = tp_new(nth);
            test_matmul(level, pool);
            test_matmul_multi(level, pool);
            test_matmul_glu(level, pool);
            tp_free(pool);
        }
        printf("kq_test: level %-6s %s\n", level, n_fail == before ? "ok" : "FAILED");
    }
    printf("kq_test: %s (%d failures)\n", n_fail ? "FAILED" : "passed", n_fail);
    return n_fail ? 1 : 0;
}
