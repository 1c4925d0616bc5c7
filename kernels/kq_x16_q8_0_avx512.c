/* kernels/kq_x16_q8_0_avx512.c: Q8_0 x16 GEMM for AVX-512 VNNI (layout and arithmetic:
 * kq_x16_q8_0.c). The weights are stored as w + 128, VPDPBUSD's unsigned operand, one 64-byte
 * vector per 4 columns of 16 rows; each token's 4 activation bytes come as an embedded
 * broadcast. The bias is removed exactly by starting each block's accumulator at −128·Σx:
 * Σx is one horizontal sum per token and block (folded two blocks at a time), shared by the
 * 16 rows. Then one VCVTDQ2PS,
 * one multiply (d_w·d_a) and one FMA per 16 rows, the reference's operations in its order.
 * Tokens go through in tiles of up to 4: the block's 8 weight vectors stay in registers for all
 * of them, so a single token (decode) streams each group exactly once. */
#include <immintrin.h>

#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

#define R KQ_X16_ROWS
#define GROUP_BLOCK_BYTES (R * sizeof(struct kq_block_q8_0))
#define OFF_D 0
#define OFF_QS 32
#define MAX_NT 4

static inline int32_t load32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* −128·Σx of activation blocks x0 and x1, each in every lane of its vector: VPDPBUSD of 128
 * (unsigned) against x0's 32 bytes (low half) and x1's (high half) gives 128 × each 4-byte sum;
 * three adds fold each half's 8 lanes; a lane shuffle broadcasts each half's total. Two blocks
 * per fold halve the horizontal work, the one cost the 16 rows do not share. */
static inline void minus_bias2(const int8_t *x0, const int8_t *x1, __m512i *b0, __m512i *b1)
{
    const __m512i xx =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x0)),
                           _mm256_loadu_si256((const __m256i *)x1), 1);
    __m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8((char)0x80), xx);
    s = _mm512_add_epi32(s, _mm512_shuffle_i64x2(s, s, 0xb1)); /* 128-bit lanes 1 0 3 2 */
    s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, 0x4e));
    s = _mm512_add_epi32(s, _mm512_shuffle_epi32(s, 0xb1));
    s = _mm512_sub_epi32(_mm512_setzero_si512(), s);
    *b0 = _mm512_shuffle_i32x4(s, s, 0x00);
    *b1 = _mm512_shuffle_i32x4(s, s, 0xaa);
}

/* One block of the group (weights wv, scales dw) for one token, starting from its bias. */
static inline __m512 block_term(const __m512i wv[8], __m512 dw, const struct kq_block_q8_0 *x,
                                __m512i isum, __m512 acc)
{
    #pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
        isum = _mm512_dpbusd_epi32(isum, wv[j], _mm512_set1_epi32(load32(x->qs + 4 * j)));
    const __m512 dd = _mm512_mul_ps(dw, _mm512_set1_ps(_cvtsh_ss(x->d)));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dd, acc);
}

static inline void load_block(const uint8_t *g, __m512i wv[8], __m512 *dw)
{
    *dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + OFF_D)));
    #pragma GCC unroll 8
    for (int j = 0; j < 8; j++)
        wv[j] = _mm512_loadu_si512(g + OFF_QS + 64 * j);
}

/* nt tokens (a compile-time constant per instance) against one group: y[t·y_stride + i].
 * Blocks go two at a time (for the bias fold), in order, so each token's accumulator sees
 * the reference's sequence of FMAs. */
static KQ_ALWAYS_INLINE void gemm_tile(int nt, int64_t nb, const uint8_t *w,
                                       const struct kq_block_q8_0 *const *a, float *y,
                                       size_t y_stride)
{
    __m512 acc[MAX_NT];
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        const uint8_t *g = w + (size_t)b * GROUP_BLOCK_BYTES;
        __m512i wv0[8], wv1[8];
        __m512 dw0, dw1;
        load_block(g, wv0, &dw0);
        load_block(g + GROUP_BLOCK_BYTES, wv1, &dw1);
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            __m512i bias0, bias1;
            minus_bias2(a[t][b].qs, a[t][b + 1].qs, &bias0, &bias1);
            acc[t] = block_term(wv0, dw0, &a[t][b], bias0, acc[t]);
            acc[t] = block_term(wv1, dw1, &a[t][b + 1], bias1, acc[t]);
        }
    }
    if (b < nb) { /* odd block count: the last block folds its bias alone */
        __m512i wv[8];
        __m512 dw;
        load_block(w + (size_t)b * GROUP_BLOCK_BYTES, wv, &dw);
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            __m512i bias, unused;
            minus_bias2(a[t][b].qs, a[t][b].qs, &bias, &unused);
            acc[t] = block_term(wv, dw, &a[t][b], bias, acc[t]);
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(y + (size_t)t * y_stride, acc[t]);
}

static void tile(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                 size_t y_stride)
{
    const struct kq_block_q8_0 *const *a = (const void *)act;
    const int64_t nb = n_cols / QK;
#define RUN(n, t) gemm_tile(n, nb, w, a + (t), y + (size_t)(t)*y_stride, y_stride)
    KQ_X16_TILE_RUNS(MAX_NT, nt, RUN)
#undef RUN
}

void kq_x16_register_q8_0_avx512(struct kq_x16_ops *ops)
{
    ops->tile = tile;
    ops->max_tile = MAX_NT;
}
