/* kernels/kq_x16_q6k_avx2.c: Q6_K x16 GEMM for AVX2 + FMA + F16C, bit-identical to the reference
 * (kq_x16_q6k.c documents the group layout and the arithmetic).
 *
 * A ymm holds 8 rows, so the group is computed as two independent halves (rows 0..7 from the
 * low 32 bytes of every 64-byte vector, rows 8..15 from the high 32). VPDPBUSD is emulated
 * exactly: VPMADDUBSW multiplies the unsigned 6-bit weights by the broadcast signed activation
 * bytes in pairs (|pair| ≤ 2·63·128 = 16128, no saturation), two such results are added as
 * int16 (≤ 32256 < 2^15) and VPMADDWD with ones widens them to the row's int32 lane. The
 * accumulator of a sub-block starts at −32·bsum_s; VPMULLD by the scales and VPADDD give sumi as
 * in the reference, then VCVTDQ2PS and one FMA per block and token, the reference's fmaf. */
#include <immintrin.h>

#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

#define R KQ_X16_ROWS
#define GROUP_BLOCK_BYTES (R * sizeof(struct kq_block_q6_K))
#define OFF_QS 288
#define OFF_SC 32
#define OFF_D 0
#define TILE 4 /* tokens per pass: 4 sumi + 4 weights + scales + constants fit the 16 ymm */

static inline __m256i load256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* The four weight vectors of one sub-block for 8 rows (qs points at the half's 32 bytes of the
 * first stored vector). The fourth gathers the top bit pairs: masked first so that the 16-bit
 * shifts carry only zeros across bytes, merged at bits 2..7, then shifted down by 2. */
static KQ_ALWAYS_INLINE void decode_sub(const uint8_t *qs, __m256i w[4])
{
    const __m256i m3f = _mm256_set1_epi8(0x3F);
    const __m256i mc0 = _mm256_set1_epi8((char)0xC0);
    const __m256i b0 = load256(qs), b1 = load256(qs + 64), b2 = load256(qs + 128);
    w[0] = _mm256_and_si256(b0, m3f);
    w[1] = _mm256_and_si256(b1, m3f);
    w[2] = _mm256_and_si256(b2, m3f);
    const __m256i t0 = _mm256_srli_epi16(_mm256_and_si256(b0, mc0), 4); /* bits 2,3 */
    const __m256i t1 = _mm256_srli_epi16(_mm256_and_si256(b1, mc0), 2); /* bits 4,5 */
    const __m256i t2 = _mm256_and_si256(b2, mc0);                       /* bits 6,7 */
    w[3] = _mm256_srli_epi16(_mm256_or_si256(_mm256_or_si256(t0, t1), t2), 2);
}

static KQ_ALWAYS_INLINE __m256i bcast32(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Σ of 8 products per row lane (weights w0, w1 against activation bytes x, x + 4). */
static KQ_ALWAYS_INLINE __m256i dot8(__m256i w0, __m256i w1, const int8_t *x)
{
    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(w0, bcast32(x)),
                                       _mm256_maddubs_epi16(w1, bcast32(x + 4)));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* nt tokens (compile-time constant per instance), 8 rows (half h) of the group: acc[t] gets the
 * reference's acc of those rows for token t. */
static KQ_ALWAYS_INLINE void gemm_half(int64_t nb, const uint8_t *w, int h,
                                       const struct kq_block_q8_K *const a[TILE], int nt,
                                       __m256 acc[TILE])
{
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * GROUP_BLOCK_BYTES;
        int32_t off[TILE][16];
        __m256i sumi[TILE];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            int16_t bsums[16];
            memcpy(bsums, KQ_Q8K_BSUMS(&a[t][b]), sizeof(bsums));
            for (int s = 0; s < 16; s++)
                off[t][s] = -32 * bsums[s];
            sumi[t] = _mm256_setzero_si256();
        }
        for (int s = 0; s < 16; s++) {
            __m256i q[4];
            decode_sub(g + OFF_QS + 192 * s + 32 * h, q);
            int64_t sc8;
            memcpy(&sc8, g + OFF_SC + R * s + 8 * h, 8);
            const __m256i sc = _mm256_cvtepi8_epi32(_mm_cvtsi64_si128(sc8));
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const int8_t *x = a[t][b].qs + 16 * s;
                __m256i isum = _mm256_set1_epi32(off[t][s]);
                isum = _mm256_add_epi32(isum, dot8(q[0], q[1], x));
                isum = _mm256_add_epi32(isum, dot8(q[2], q[3], x + 8));
                sumi[t] = _mm256_add_epi32(sumi[t], _mm256_mullo_epi32(isum, sc));
            }
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + OFF_D + 16 * h)));
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const __m256 dd = _mm256_mul_ps(d, _mm256_set1_ps(a[t][b].d));
            acc[t] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
}

#define TILE_INSTANCE(n)                                                                           \
    static void gemm_half_##n(int64_t nb, const uint8_t *w, int h,                                 \
                              const struct kq_block_q8_K *const a[TILE], __m256 acc[TILE])         \
    {                                                                                              \
        gemm_half(nb, w, h, a, n, acc);                                                            \
    }
TILE_INSTANCE(1)
TILE_INSTANCE(2)
TILE_INSTANCE(3)
TILE_INSTANCE(4)

typedef void (*half_fn)(int64_t, const uint8_t *, int, const struct kq_block_q8_K *const[TILE],
                        __m256[TILE]);
static const half_fn halves[TILE + 1] = {NULL, gemm_half_1, gemm_half_2, gemm_half_3, gemm_half_4};

static void tile(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                 size_t y_stride)
{
    for (int h = 0; h < 2; h++) {
        __m256 acc[TILE];
        halves[nt](n_cols / QK_K, w, h, (const void *)act, acc);
        for (int t = 0; t < nt; t++)
            _mm256_storeu_ps(y + (size_t)t * y_stride + 8 * h, acc[t]);
    }
}

void kq_x16_register_q6k_avx2(struct kq_x16_ops *ops)
{
    ops->tile = tile;
    ops->max_tile = TILE;
}
