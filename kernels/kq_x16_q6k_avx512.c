/* kernels/kq_x16_q6k_avx512.c: Q6_K x16 GEMM for AVX-512 VNNI, bit-identical to the reference
 * (kq_x16_q6k.c documents the group layout and the arithmetic).
 *
 * One zmm lane per row. Per sub-block (16 elements) and token: the accumulator starts at
 * −32·bsum_s (broadcast), four VPDPBUSD add q·a for 4 elements of all 16 rows each (unsigned
 * weights in the register, the token's 4 activation bytes broadcast from memory), VPMULLD by the
 * 16 rows' scales and VPADDD into sumi: exactly isum_s, sc_s·isum_s and Σ_s of the reference,
 * in int32 without overflow. Per block and token: one VCVTDQ2PS and one FMA, the reference's
 * fmaf. A sub-block's weights are decoded once (9 logic ops for 64 weights × 4) and serve up to
 * TILE tokens held in registers; one token streams each group block exactly once. */
#include <immintrin.h>

#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

#define R KQ_X16_ROWS
#define GROUP_BLOCK_BYTES (R * sizeof(struct kq_block_q6_K))
#define OFF_QS 288
#define OFF_SC 32
#define OFF_D 0
#define TILE 8

/* The four weight vectors (elements 4v..4v+3 of each row, v = 0..3) of one sub-block. The
 * fourth is gathered from the top bit pairs of the three stored vectors: 16-bit shifts bring
 * each pair into place (the neighbouring byte's bits that come along are selected away), two
 * bit selects merge them and 0x3F clears what is left above bit 5. */
static KQ_ALWAYS_INLINE void decode_sub(const uint8_t *qs, __m512i w[4])
{
    const __m512i m3f = _mm512_set1_epi8(0x3F);
    const __m512i m03 = _mm512_set1_epi8(0x03);
    const __m512i m0f = _mm512_set1_epi8(0x0F);
    const __m512i b0 = _mm512_loadu_si512(qs);
    const __m512i b1 = _mm512_loadu_si512(qs + 64);
    const __m512i b2 = _mm512_loadu_si512(qs + 128);
    w[0] = _mm512_and_si512(b0, m3f);
    w[1] = _mm512_and_si512(b1, m3f);
    w[2] = _mm512_and_si512(b2, m3f);
    const __m512i s0 = _mm512_srli_epi16(b0, 6); /* bits 0,1: b0's top pair */
    const __m512i s1 = _mm512_srli_epi16(b1, 4); /* bits 2,3: b1's */
    const __m512i s2 = _mm512_srli_epi16(b2, 2); /* bits 4,5: b2's */
    /* 0xE4 = C ? A : B with A, B, C the first, second and third operand */
    const __m512i lo = _mm512_ternarylogic_epi32(s0, s1, m03, 0xE4);
    const __m512i all = _mm512_ternarylogic_epi32(lo, s2, m0f, 0xE4);
    w[3] = _mm512_and_si512(all, m3f);
}

/* −32·bsums[s] of one activation block as 16 int32: the accumulator start of each sub-block. */
static KQ_ALWAYS_INLINE __m512i offset32(const struct kq_block_q8_K *a)
{
    const __m512i b = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)KQ_Q8K_BSUMS(a)));
    return _mm512_slli_epi32(_mm512_sub_epi32(_mm512_setzero_si512(), b), 5);
}

/* acc += VPDPBUSD(q, the 4 activation bytes at p broadcast to every lane), the broadcast being
 * the instruction's {1to16} memory operand. GCC's intrinsic never folds the broadcast and emits a
 * VPBROADCASTD per call; on this Zen 4 class machine the folded form measured 1.62 -> 1.49 ns
 * per row-block per token with 8 tokens. The bytes are read through a may_alias type. */
typedef int32_t KQ_ALIAS_I32 __attribute__((may_alias, aligned(1)));

static KQ_ALWAYS_INLINE __m512i dpbusd_bcast(__m512i acc, __m512i q, const int8_t *p)
{
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(q), "m"(*(const KQ_ALIAS_I32 *)p));
    return acc;
}

/* Sub-block s of group block g for nt tokens: sumi[t] += sc_s · (Σ q·a − 32·bsum_s). */
static KQ_ALWAYS_INLINE void sub_block(const uint8_t *g, int s,
                                       const struct kq_block_q8_K *const a[TILE], int64_t b, int nt,
                                       const int32_t off[TILE][16], __m512i sumi[TILE])
{
    __m512i q[4];
    decode_sub(g + OFF_QS + 192 * s, q);
    const __m512i sc = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(g + OFF_SC + R * s)));
#pragma GCC unroll 8
    for (int t = 0; t < nt; t++) {
        const int8_t *x = a[t][b].qs + 16 * s;
        __m512i isum = _mm512_set1_epi32(off[t][s]);
        isum = dpbusd_bcast(isum, q[0], x);
        isum = dpbusd_bcast(isum, q[1], x + 4);
        isum = dpbusd_bcast(isum, q[2], x + 8);
        isum = dpbusd_bcast(isum, q[3], x + 12);
        sumi[t] = _mm512_add_epi32(sumi[t], _mm512_mullo_epi32(isum, sc));
    }
}

/* nt tokens (a compile-time constant in each instance) over the whole group: acc[t] ends as the
 * reference's acc for token t. */
static KQ_ALWAYS_INLINE void gemm_tile(int64_t nb, const uint8_t *w,
                                       const struct kq_block_q8_K *const a[TILE], int nt,
                                       __m512 acc[TILE])
{
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * GROUP_BLOCK_BYTES;
        int32_t off[TILE][16] __attribute__((aligned(64)));
        __m512i sumi[TILE];
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            _mm512_store_si512(off[t], offset32(&a[t][b]));
            sumi[t] = _mm512_setzero_si512();
        }
        if (nt == 1) {
            /* one token: two sub-blocks per iteration let the out-of-order core overlap two
             * VPDPBUSD chains (measured 2.9 -> 2.6 ns per row-block; with more tokens, whose
             * chains are independent already, unrolling measured a little slower) */
#pragma GCC unroll 2
            for (int s = 0; s < 16; s++)
                sub_block(g, s, a, b, 1, off, sumi);
        } else {
            for (int s = 0; s < 16; s++)
                sub_block(g, s, a, b, nt, off, sumi);
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + OFF_D)));
#pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const __m512 dd = _mm512_mul_ps(d, _mm512_set1_ps(a[t][b].d));
            acc[t] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(sumi[t]), acc[t]);
        }
    }
}

#define TILE_INSTANCE(n)                                                                           \
    static void gemm_tile_##n(int64_t nb, const uint8_t *w,                                        \
                              const struct kq_block_q8_K *const a[TILE], __m512 acc[TILE])         \
    {                                                                                              \
        gemm_tile(nb, w, a, n, acc);                                                               \
    }
TILE_INSTANCE(1)
TILE_INSTANCE(2)
TILE_INSTANCE(3)
TILE_INSTANCE(4)
TILE_INSTANCE(5)
TILE_INSTANCE(6)
TILE_INSTANCE(7)
TILE_INSTANCE(8)

typedef void (*tile_fn)(int64_t, const uint8_t *, const struct kq_block_q8_K *const[TILE],
                        __m512[TILE]);
static const tile_fn tiles[TILE + 1] = {NULL,        gemm_tile_1, gemm_tile_2,
                                        gemm_tile_3, gemm_tile_4, gemm_tile_5,
                                        gemm_tile_6, gemm_tile_7, gemm_tile_8};

static void tile(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                 size_t y_stride)
{
    __m512 acc[TILE];
    tiles[nt](n_cols / QK_K, w, (const void *)act, acc);
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(y + (size_t)t * y_stride, acc[t]);
}

void kq_x16_register_q6k_avx512(struct kq_x16_ops *ops)
{
    ops->tile = tile;
    ops->max_tile = TILE;
}
