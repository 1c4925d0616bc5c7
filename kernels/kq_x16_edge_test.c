/* kernels/kq_x16_edge_test.c: the x16 kernels of Q8_0 and Q5_K on bytes no quantizer writes but
 * a GGUF file may hold (kq_x16_test covers quantizer output), at every SIMD level this CPU has.
 *
 * Where the SIMD routes to the exact integer sums could break: Q8_0 weights of −128 (the AVX2
 * kernel's |w| = 128, the AVX-512 kernel's w + 128 = 0) and ±127 against activations of ±127
 * (VPMADDUBSW pair sums at their largest, 2·128·127); Q5_K with every weight 31, every scale and
 * min 63 (sumi beyond 2^24, where int → float rounds) and with random bytes in every field
 * (only the f16 scales kept finite). Each level's gemm must give the reference's bits for every
 * n_tok 1..9, and the reference must agree with the row-major dot (kq_ref.c). Exit status 0 iff
 * all pass. Q8_0 runs on 65 blocks per row: the AVX-512 kernel takes blocks in pairs, and an
 * odd count exercises its tail. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

#define N_COLS 2080 /* the most columns a case uses */
#define N_ROWS 32
#define N_TOK 9

static uint64_t rng_state = 42;

static uint64_t rng_u64(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A finite half of either sign, magnitude 2^-10 .. 2^2. */
static uint16_t rng_half(void)
{
    const float v = ldexpf(1.0f + (float)(rng_u64() % 1024) / 1024.0f, (int)(rng_u64() % 13) - 10);
    return kq_f32_to_f16(rng_u64() & 1 ? -v : v);
}

enum fill { FILL_RANDOM, FILL_MAX, FILL_MIN };

/* Weight rows: random bytes with finite f16 scales, or every field at an extreme. */
static void fill_weights(enum kq_type type, enum fill fill, uint8_t *w, size_t bytes)
{
    const int bb = kq_ref_table[type].block_bytes;
    for (size_t o = 0; o < bytes; o += (size_t)bb) {
        uint8_t *b = w + o;
        for (int i = 0; i < bb; i++)
            b[i] = fill == FILL_RANDOM ? (uint8_t)rng_u64() : fill == FILL_MAX ? 0xFF : 0x80;
        if (type == KQ_Q8_0 && fill == FILL_MAX) /* +127 and −128 side by side */
            for (int i = 2; i < bb; i++)
                b[i] = i % 2 ? 0x7F : 0x80;
        const int n_halves = type == KQ_Q5_K ? 2 : 1; /* d (and dmin) lead both formats */
        for (int h = 0; h < n_halves; h++) {
            const uint16_t d = fill == FILL_RANDOM ? rng_half() : kq_f32_to_f16(h ? 0.5f : 1.0f);
            memcpy(b + 2 * h, &d, 2);
        }
    }
}

/* Activations: uniform, all ±1 (every quantized value ±127) or one large element per 32. */
static void fill_acts(enum kq_type act, int kind, int64_t n, uint8_t *xq, size_t stride)
{
    float x[N_COLS];
    for (int t = 0; t < N_TOK; t++) {
        for (int i = 0; i < n; i++) {
            const float u = (float)(rng_u64() >> 40) * 0x1p-24f * 2.0f - 1.0f;
            x[i] = kind == 0     ? u
                   : kind == 1   ? (i + t) % 3 ? 1.0f : -1.0f
                   : i % 32 == t ? 1000.0f
                                 : u;
        }
        kq_ref_table[act].from_f32(x, xq + (size_t)t * stride, n);
    }
}

/* Σ|w|·|a| per row and token bounds every partial sum; for K-quants with mins the d part and
 * the min part are bounded separately (zeroing dmin, then d, in a copy). */
static double abs_dot(enum kq_type type, int64_t n, const uint8_t *w, const uint8_t *a)
{
    const struct kq_format *f = &kq_ref_table[type], *act = &kq_ref_table[f->act_type];
    const size_t bytes = kq_row_bytes(type, n);
    static uint8_t copy[N_COLS * 2];
    static float wf[N_COLS], af[N_COLS];
    act->to_f32(a, af, n);
    double s = 0;
    for (int part = 0; part < (type == KQ_Q5_K ? 2 : 1); part++) {
        memcpy(copy, w, bytes);
        for (size_t b = 0; type == KQ_Q5_K && b < bytes; b += (size_t)f->block_bytes)
            memset(copy + b + (part == 0 ? 2 : 0), 0, 2);
        f->to_f32(copy, wf, n);
        for (int64_t i = 0; i < n; i++)
            s += fabs((double)wf[i]) * fabs((double)af[i]);
    }
    return s;
}

static void gemm_all(enum kq_type type, int64_t n, const uint8_t *w16, const uint8_t *xq,
                     size_t stride, int n_tok, float *y)
{
    const struct kq_x16_ops *ops = kq_x16_ops(type);
    const size_t group_bytes = KQ_X16_ROWS * kq_row_bytes(type, n);
    for (int g = 0; g < N_ROWS / KQ_X16_ROWS; g++)
        kq_x16_gemm(ops, n, w16 + (size_t)g * group_bytes, xq, stride, NULL, n_tok,
                    y + g * KQ_X16_ROWS, N_ROWS);
}

static void test_case(enum kq_type type, enum fill fill, int act_kind, enum kq_level best)
{
    const struct kq_format *f = &kq_ref_table[type];
    const int64_t n = type == KQ_Q8_0 ? 65 * QK : 8 * QK_K;
    const size_t row_bytes = kq_row_bytes(type, n), stride = kq_row_bytes(f->act_type, n);
    uint8_t *w = malloc(row_bytes * N_ROWS), *w16 = malloc(row_bytes * N_ROWS);
    uint8_t *xq = malloc(stride * N_TOK);
    float yref[N_TOK * N_ROWS], y[N_TOK * N_ROWS];
    fill_weights(type, fill, w, row_bytes * N_ROWS);
    fill_acts(f->act_type, act_kind, n, xq, stride);
    kq_init_level(KQ_LEVEL_REF);
    CHECK(kq_x16_repack(type, n, N_ROWS, w, w16) == 0, "%s repack", f->name);
    gemm_all(type, n, w16, xq, stride, N_TOK, yref);
    /* Same exact integers, float products and sums in another order: each rounding is at most
     * FLT_EPSILON/2 of a partial sum bounded by Σ|w|·|a|, one or two per block plus the final
     * additions (kq_x16_test's bound). */
    for (int r = 0; r < N_ROWS; r++)
        for (int t = 0; t < N_TOK; t++) {
            const uint8_t *wr = w + (size_t)r * row_bytes, *a = xq + (size_t)t * stride;
            float s;
            f->dot(n, &s, wr, a);
            const double tol =
                (double)(n / f->block_elems + 64) * FLT_EPSILON * abs_dot(type, n, wr, a);
            const float got = yref[t * N_ROWS + r];
            CHECK(isfinite(got) && fabs((double)got - s) <= tol,
                  "%s fill %d acts %d row %d tok %d: x16 %.9g rows %.9g", f->name, fill, act_kind,
                  r, t, got, s);
        }
    for (int lv = KQ_LEVEL_REF; lv <= (int)best; lv++) {
        const char *level = kq_level_name(kq_init_level((enum kq_level)lv));
        for (int n_tok = 1; n_tok <= N_TOK; n_tok++) {
            gemm_all(type, n, w16, xq, stride, n_tok, y);
            CHECK(!memcmp(y, yref, sizeof(float) * (size_t)(n_tok * N_ROWS)),
                  "[%s] %s fill %d acts %d n_tok %d differs from the reference", level, f->name,
                  fill, act_kind, n_tok);
        }
    }
    free(w);
    free(w16);
    free(xq);
}

int main(void)
{
    kq_init(); /* the best level, capped by MOEPOOL_SIMD */
    enum kq_level best = KQ_LEVEL_REF;
    for (int lv = KQ_LEVEL_REF; lv <= KQ_LEVEL_AVX512; lv++)
        if (!strcmp(kq_simd_name(), kq_level_name((enum kq_level)lv)))
            best = (enum kq_level)lv;
    static const enum kq_type types[] = {KQ_Q8_0, KQ_Q5_K};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        for (int fill = FILL_RANDOM; fill <= FILL_MIN; fill++)
            for (int act_kind = 0; act_kind < 3; act_kind++)
                test_case(types[i], (enum fill)fill, act_kind, best);
    printf("kq_x16_edge_test: up to level %s, %s (%d failures)\n", kq_level_name(best),
           failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}
