/* kernels/kq_x16_test.c: unit test of the x16 layout (kq_x16.h), generic over every format that
 * registers x16 ops, at every SIMD level this CPU has (switched in-process with kq_init_level).
 *
 * On matrices from the format's own quantizer (fixed seeds, magnitudes varying per 32 elements,
 * zero groups and outliers included) and of random blocks (every bit pattern): repacking (into a copy and in place) loses nothing, as
 * row_to_f32 equals the row-major to_f32 bit for bit; gemm agrees with the row-major reference
 * dot within float-reordering noise, and is bit-identical across SIMD levels, numbers of tokens
 * per call, token positions and `rows` indirection (batch invariance and --exact rest on it);
 * kq_matmul_multi on a KQ_LAYOUT_X16 matrix equals direct gemm calls; kq_x16_supported refuses
 * shapes the layout cannot hold. Exit status 0 iff all pass. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "kernels/kq_impl.h"
#include "kernels/matmul.h"

#define MAX_TOK 64

static uint64_t rng_state;

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

/* n floats in groups of 32 with a magnitude per group (1e-4 .. 1e3), some groups zero, some
 * with one outlier: where scales and rounding go wrong. */
static void gen_floats(float *x, int64_t n)
{
    for (int64_t g = 0; g < n; g += 32) {
        const int kind = (int)(rng_u64() % 16);
        const float mag = powf(10.0f, -4.0f + 7.0f * rng_unit());
        for (int64_t j = g; j < g + 32; j++)
            x[j] = kind == 0 ? 0.0f : mag * (2.0f * rng_unit() - 1.0f);
        if (kind == 1)
            x[g + (int64_t)(rng_u64() % 32)] = 50.0f * mag;
    }
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

/* |w| as the kernels see it: K-quants with mins dequantize as d·sc·q − dmin·m, and the two parts
 * are summed separately, so the error bound takes |d part| + |min part| (zeroing dmin, then d,
 * in a copy of each block isolates them). Other formats have one part. */
static void weight_abs(enum kq_type type, const uint8_t *w, int64_t n, double *wabs, float *tmp)
{
    const struct kq_format *f = &kq_ref_table[type];
    const size_t bytes = kq_row_bytes(type, n);
    const bool has_mins = type == KQ_Q4_K || type == KQ_Q5_K; /* d, dmin: the first 4 bytes */
    uint8_t *copy = xmalloc(bytes);
    for (int part = 0; part < (has_mins ? 2 : 1); part++) {
        memcpy(copy, w, bytes);
        for (size_t b = 0; has_mins && b < bytes; b += (size_t)f->block_bytes)
            memset(copy + b + (part == 0 ? 2 : 0), 0, 2);
        f->to_f32(copy, tmp, n);
        for (int64_t i = 0; i < n; i++)
            wabs[i] = (part ? wabs[i] : 0.0) + fabs(tmp[i]);
    }
    free(copy);
}

/* One test matrix: row-major weights, the same repacked, and MAX_TOK converted activations. */
struct mat {
    enum kq_type type;
    int64_t n_cols, n_rows;
    size_t row_bytes, act_stride;
    uint8_t *rows_w, *x16_w, *xq;
    float *yref; /* MAX_TOK × n_rows: the reference level's gemm, all tokens in one call */
};

/* Random bytes for one block (every bit pattern of the integer and scale fields), drawn again
 * until the block dequantizes to finite values: the float fields' Inf and NaN patterns would
 * only compare NaN payloads. */
static void random_block(const struct kq_format *f, uint8_t *blk, float *tmp)
{
    for (;;) {
        for (int i = 0; i < f->block_bytes; i++)
            blk[i] = (uint8_t)rng_u64();
        f->to_f32(blk, tmp, f->block_elems);
        bool finite = true;
        for (int i = 0; i < f->block_elems; i++)
            finite = finite && isfinite(tmp[i]);
        if (finite)
            return;
    }
}

static void mat_alloc(struct mat *m, enum kq_type type, int64_t n_cols, int64_t n_rows)
{
    const struct kq_format *f = &kq_ref_table[type];
    *m = (struct mat){type, n_cols, n_rows, kq_row_bytes(type, n_cols),
                      kq_row_bytes(f->act_type, n_cols), NULL, NULL, NULL, NULL};
    m->rows_w = xmalloc(m->row_bytes * (size_t)n_rows);
    m->x16_w = xmalloc(m->row_bytes * (size_t)n_rows);
    m->xq = xmalloc(m->act_stride * MAX_TOK);
    m->yref = xmalloc(sizeof(float) * (size_t)(n_rows * MAX_TOK));
}

/* A matrix from the format's quantizer, or (random_bytes) from random_block. */
static void mat_make(struct mat *m, enum kq_type type, int64_t n_cols, int64_t n_rows,
                     uint64_t seed, bool random_bytes)
{
    const struct kq_format *f = &kq_ref_table[type], *act = &kq_ref_table[f->act_type];
    mat_alloc(m, type, n_cols, n_rows);
    float *x = xmalloc(sizeof(float) * (size_t)n_cols);
    rng_state = seed;
    for (int64_t r = 0; r < n_rows; r++) {
        uint8_t *row = m->rows_w + (size_t)r * m->row_bytes;
        if (random_bytes) {
            for (int64_t b = 0; b < n_cols / f->block_elems; b++)
                random_block(f, row + (size_t)b * (size_t)f->block_bytes, x);
        } else {
            gen_floats(x, n_cols);
            f->from_f32(x, row, n_cols);
        }
    }
    for (int t = 0; t < MAX_TOK; t++) {
        gen_floats(x, n_cols);
        act->from_f32(x, m->xq + (size_t)t * m->act_stride, n_cols);
    }
    free(x);
}

/* ---- edge matrices: raw blocks at the limits of a format's integer arithmetic ---- */

/* Sets element j (0..255) of a row-major Q6_K block to the unsigned 6-bit value q (gguf.md §4:
 * low nibble in ql, top two bits in qh). */
static void q6k_set(struct kq_block_q6_K *x, int j, int q)
{
    const int h = j / 128, l = j % 32, quarter = (j % 128) / 32, shift = quarter < 2 ? 0 : 4;
    uint8_t *ql = &x->ql[64 * h + l + 32 * (quarter & 1)];
    uint8_t *qh = &x->qh[32 * h + l];
    *ql = (uint8_t)((*ql & ~(0xF << shift)) | (q & 0xF) << shift);
    *qh = (uint8_t)((*qh & ~(3 << 2 * quarter)) | (q >> 4) << 2 * quarter);
}

/* Q6_K: weights all 0 (q − 32 = −32, the offset at its largest), all 63, alternating 0/63 or
 * random, per block; scales −128, 127 or random per sub-block; activation bytes all −128
 * (bsums −2048), all 127, alternating or random, activation scales of both signs. Sums of
 * (q − 32)·a reach ±2^16 per sub-block and 2^23..2^27 per block: an int16 step that saturated
 * or an offset applied with the wrong sign shows up far outside the tolerance. */
static void fill_q6k_edges(struct mat *m)
{
    const int64_t nb = m->n_cols / QK_K;
    for (int64_t r = 0; r < m->n_rows; r++)
        for (int64_t b = 0; b < nb; b++) {
            struct kq_block_q6_K *x =
                (void *)(m->rows_w + (size_t)r * m->row_bytes + (size_t)b * sizeof(*x));
            const int kind = (int)((r + b) % 4);
            for (int j = 0; j < QK_K; j++)
                q6k_set(x, j,
                        kind == 0   ? 0
                        : kind == 1 ? 63
                        : kind == 2 ? 63 * (j & 1)
                                    : (int)(rng_u64() % 64));
            for (int s = 0; s < 16; s++) {
                const int sk = (int)((r + s) % 3);
                x->scales[s] = (int8_t)(sk == 0   ? -128
                                        : sk == 1 ? 127
                                                  : (int)(rng_u64() % 256) - 128);
            }
            x->d = kq_f32_to_f16((r % 2 ? -1.0f : 1.0f) * (0.001f + rng_unit()));
        }
    for (int t = 0; t < MAX_TOK; t++)
        for (int64_t b = 0; b < nb; b++) {
            struct kq_block_q8_K *a =
                (void *)(m->xq + (size_t)t * m->act_stride + (size_t)b * sizeof(*a));
            const int kind = (int)((t + 3 * b) % 4);
            int16_t bsums[16] = {0};
            for (int j = 0; j < QK_K; j++) {
                const int v = kind == 0   ? -128
                              : kind == 1 ? 127
                              : kind == 2 ? (j & 2 ? 127 : -128)
                                          : (int)(rng_u64() % 256) - 128;
                a->qs[j] = (int8_t)v;
                bsums[j / 16] = (int16_t)(bsums[j / 16] + v);
            }
            memcpy((uint8_t *)a + offsetof(struct kq_block_q8_K, bsums), bsums, sizeof(bsums));
            a->d = (t % 3 ? 1.0f : -1.0f) * (0.001f + rng_unit()) / 127.0f;
        }
}

/* Edge-case filler per format (NULL: its quantizer's matrices are all the test uses). */
static void (*const edge_fill[KQ_TYPE_COUNT])(struct mat *) = {[KQ_Q6_K] = fill_q6k_edges};

static void mat_free(struct mat *m)
{
    free(m->rows_w);
    free(m->x16_w);
    free(m->xq);
    free(m->yref);
}

/* Out of place and in place give the same bytes, the same size as row-major, and every row
 * dequantizes to the row-major bits. */
static void test_repack(struct mat *m)
{
    const char *name = kq_ref_table[m->type].name;
    const size_t bytes = m->row_bytes * (size_t)m->n_rows;
    CHECK(kq_x16_repack(m->type, m->n_cols, m->n_rows, m->rows_w, m->x16_w) == 0, "%s", name);
    uint8_t *inplace = xmalloc(bytes);
    memcpy(inplace, m->rows_w, bytes);
    CHECK(kq_x16_repack(m->type, m->n_cols, m->n_rows, inplace, inplace) == 0, "%s", name);
    CHECK(!memcmp(inplace, m->x16_w, bytes), "%s %lldx%lld in-place repack differs", name,
          (long long)m->n_cols, (long long)m->n_rows);
    free(inplace);
    float *a = xmalloc(sizeof(float) * (size_t)m->n_cols);
    float *b = xmalloc(sizeof(float) * (size_t)m->n_cols);
    for (int64_t r = 0; r < m->n_rows; r++) {
        kq_ref_table[m->type].to_f32(m->rows_w + (size_t)r * m->row_bytes, a, m->n_cols);
        kq_x16_row_to_f32(m->type, m->n_cols, m->x16_w, r, b);
        CHECK(!memcmp(a, b, sizeof(float) * (size_t)m->n_cols), "%s %lldx%lld row %lld", name,
              (long long)m->n_cols, (long long)m->n_rows, (long long)r);
    }
    free(a);
    free(b);
}

/* The live level's gemm over every group: token t of the call reads xq row rows[t] (or t). */
static void gemm_all(const struct mat *m, const int32_t *rows, int n_tok, float *y)
{
    const struct kq_x16_ops *ops = kq_x16_ops(m->type);
    const size_t group_bytes = KQ_X16_ROWS * m->row_bytes;
    for (int64_t g = 0; g < m->n_rows / KQ_X16_ROWS; g++)
        kq_x16_gemm(ops, m->n_cols, m->x16_w + (size_t)g * group_bytes, m->xq, m->act_stride, rows,
                    n_tok, y + g * KQ_X16_ROWS, (size_t)m->n_rows);
}

/* The reference level's outputs against the row-major reference dot. Both sum the same exact
 * integer block sums; they differ in the float products and additions, each rounding by at most
 * FLT_EPSILON/2 relative to a partial sum bounded by Σ|w|·|a| (mins part included): with one
 * or two roundings per block and per addition, (blocks + 64)·FLT_EPSILON·Σ|w|·|a| bounds both
 * sides' error with room to spare (the same bound kq_test puts on the SIMD dots). */
static void test_ref_against_rows(struct mat *m)
{
    const struct kq_format *f = &kq_ref_table[m->type], *act = &kq_ref_table[f->act_type];
    const int64_t n = m->n_cols;
    double *wabs = xmalloc(sizeof(double) * (size_t)n);
    float *tmp = xmalloc(sizeof(float) * (size_t)n), *af = xmalloc(sizeof(float) * (size_t)n);
    gemm_all(m, NULL, MAX_TOK, m->yref);
    for (int64_t r = 0; r < m->n_rows; r++) {
        const uint8_t *w = m->rows_w + (size_t)r * m->row_bytes;
        weight_abs(m->type, w, n, wabs, tmp);
        for (int t = 0; t < MAX_TOK; t += 7) {
            const uint8_t *a = m->xq + (size_t)t * m->act_stride;
            act->to_f32(a, af, n);
            double sabs = 0;
            for (int64_t i = 0; i < n; i++)
                sabs += wabs[i] * fabs(af[i]);
            float s;
            f->dot(n, &s, w, a);
            const float y = m->yref[(size_t)t * (size_t)m->n_rows + (size_t)r];
            const double tol = (double)(n / f->block_elems + 64) * FLT_EPSILON * sabs + 1e-37;
            CHECK(fabs((double)y - s) <= tol, "%s %lldx%lld row %lld tok %d: x16 %.9g rows %.9g",
                  f->name, (long long)n, (long long)m->n_rows, (long long)r, t, y, s);
        }
    }
    free(wabs);
    free(tmp);
    free(af);
}

/* Output t of a call must be yref's row for the activation it read, bit for bit. */
static void check_bits(const struct mat *m, const char *level, const char *what, int n_tok,
                       const int32_t *rows, const float *y)
{
    for (int t = 0; t < n_tok; t++) {
        const int src = rows ? rows[t] : t;
        const float *got = y + (size_t)t * (size_t)m->n_rows;
        const float *want = m->yref + (size_t)src * (size_t)m->n_rows;
        CHECK(!memcmp(got, want, sizeof(float) * (size_t)m->n_rows),
              "[%s] %s %lldx%lld %s n_tok=%d tok %d (xq row %d) differs from the reference",
              level, kq_ref_table[m->type].name, (long long)m->n_cols, (long long)m->n_rows, what,
              n_tok, t, src);
    }
}

/* Every n_tok from 1 to 17 (each tail of any token tiling), and 64, from the first rows, from
 * a shifted start and through a shuffled `rows` list with repeats. */
static void test_gemm_bits(const struct mat *m, const char *level)
{
    float *y = xmalloc(sizeof(float) * (size_t)(m->n_rows * MAX_TOK));
    int32_t rows[MAX_TOK];
    for (int n_tok = 1; n_tok <= MAX_TOK; n_tok = n_tok == 17 ? MAX_TOK : n_tok + 1) {
        gemm_all(m, NULL, n_tok, y);
        check_bits(m, level, "direct", n_tok, NULL, y);
        for (int t = 0; t < n_tok; t++)
            rows[t] = (int32_t)((t * 37 + n_tok) % MAX_TOK);
        if (n_tok > 2)
            rows[2] = rows[0];
        gemm_all(m, rows, n_tok, y);
        check_bits(m, level, "rows", n_tok, rows, y);
    }
    free(y);
}

/* kq_matmul_multi over several products on repacked matrices (chunks of 16-row groups, threads
 * taking them in any order) equals the direct gemm calls. */
static void test_matmul(struct mat *mats, int n_mats, const char *level, int nth)
{
    struct kq_matrix W[8];
    struct kq_mm mm[8];
    float *y[8];
    static const int32_t rows[5] = {9, 0, 33, 9, 63};
    struct tp_pool *pool = tp_new(nth);
    for (int i = 0; i < n_mats && i < 8; i++) {
        const struct mat *m = &mats[i];
        const int n_tok = i % 3 == 0 ? 1 : i % 3 == 1 ? 5 : 19;
        y[i] = xmalloc(sizeof(float) * (size_t)(m->n_rows * MAX_TOK));
        W[i] = (struct kq_matrix){m->x16_w, m->type, m->n_cols, m->n_rows, m->row_bytes,
                                  KQ_LAYOUT_X16};
        mm[i] = (struct kq_mm){&W[i], m->xq, m->act_stride, n_tok == 5 ? rows : NULL, n_tok, y[i],
                               (size_t)m->n_rows};
    }
    const int n = n_mats < 8 ? n_mats : 8;
    kq_matmul_multi(pool, n, mm);
    for (int i = 0; i < n; i++) {
        check_bits(&mats[i], level, nth == 1 ? "matmul 1 thread" : "matmul 2 threads",
                   mm[i].n_tok, mm[i].rows, y[i]);
        free(y[i]);
    }
    tp_free(pool);
}

static void test_supported(enum kq_type type)
{
    const char *name = kq_ref_table[type].name;
    const int64_t be = kq_ref_table[type].block_elems;
    CHECK(kq_x16_supported(type, 2 * be, 32), "%s", name);
    CHECK(!kq_x16_supported(type, 2 * be, 24), "%s n_rows 24", name);
    CHECK(!kq_x16_supported(type, 2 * be, 8), "%s n_rows 8", name);
    CHECK(!kq_x16_supported(type, 2 * be, 0), "%s n_rows 0", name);
    CHECK(!kq_x16_supported(type, be + be / 2, 16), "%s partial block", name);
    uint8_t dummy[64] = {0};
    CHECK(kq_x16_repack(type, 2 * be, 8, dummy, dummy) == -1, "%s repack of 8 rows", name);
}

int main(void)
{
    /* n_cols, n_rows, random bytes (else the quantizer's output) */
    static const int64_t shapes[][3] = {{256, 16, 0},   {512, 48, 0}, {1024, 32, 0},
                                        {4096, 128, 0}, {2816, 64, 0}, {512, 32, 1},
                                        {2048, 48, 1}};
    enum { N_SHAPES = sizeof(shapes) / sizeof(shapes[0]) };
    kq_init(); /* the best level, capped by MOEPOOL_SIMD (ctest runs this once with avx2) */
    enum kq_level best = KQ_LEVEL_REF;
    for (int lv = KQ_LEVEL_REF; lv <= KQ_LEVEL_AVX512; lv++)
        if (!strcmp(kq_simd_name(), kq_level_name((enum kq_level)lv)))
            best = (enum kq_level)lv;
    CHECK(!kq_x16_supported(KQ_F32, 256, 16), "F32 has no x16 layout");
    int n_types = 0;
    for (int type = 0; type < KQ_TYPE_COUNT; type++) {
        kq_init_level(KQ_LEVEL_REF);
        if (!kq_x16_ops((enum kq_type)type))
            continue;
        n_types++;
        test_supported((enum kq_type)type);
        struct mat mats[N_SHAPES + 1];
        int n_mats = N_SHAPES;
        for (int s = 0; s < N_SHAPES; s++)
            mat_make(&mats[s], (enum kq_type)type, shapes[s][0], shapes[s][1],
                     1000 * (uint64_t)type + s, shapes[s][2]);
        if (edge_fill[type]) {
            mat_alloc(&mats[n_mats], (enum kq_type)type, 1024, 32);
            edge_fill[type](&mats[n_mats++]);
        }
        for (int s = 0; s < n_mats; s++) {
            test_repack(&mats[s]);
            test_ref_against_rows(&mats[s]);
        }
        for (int lv = KQ_LEVEL_REF; lv <= (int)best; lv++) {
            const char *level = kq_level_name(kq_init_level((enum kq_level)lv));
            const int before = failures;
            for (int s = 0; s < n_mats; s++)
                test_gemm_bits(&mats[s], level);
            test_matmul(mats, n_mats, level, 1);
            test_matmul(mats, n_mats, level, 2);
            printf("kq_x16_test: %s level %-6s %s\n", kq_ref_table[type].name, level,
                   failures == before ? "ok" : "FAILED");
        }
        for (int s = 0; s < n_mats; s++)
            mat_free(&mats[s]);
    }
    CHECK(n_types > 0, "no format registers x16 ops");
    printf("kq_x16_test: %d format(s), %s (%d failures)\n", n_types,
           failures ? "FAILED" : "passed", failures);
    return failures ? 1 : 0;
}
