/* kernels/kq_x16_q8_0_avx512.c: Q8_0 x16 GEMM for AVX-512 VNNI (layout and arithmetic:
 * kq_x16_q8_0.c). The weights are stored as w + 128, VPDPBUSD's unsigned operand, one 64-byte
 * vector per 4 columns of 16 rows; each token's 4 activation bytes come as an embedded
 * broadcast. The bias is removed exactly by starting each block's accumulator at −128·Σx:
 * Σx is one horizontal sum per token and block, shared by the 16 rows. Then one VCVTDQ2PS,
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
#define KQ_ALWAYS_INLINE inline __attribute__((always_inline))

static inline int32_t load32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* −128·Σx of one activation block, in every lane: VPDPBUSD of 128 (unsigned) against the 32
 * activation bytes gives 128 × each 4-byte sum, then three adds fold the 8 lanes. */
static inline __m512i minus_bias(const int8_t *x)
{
    const __m256i s8 = _mm256_dpbusd_epi32(_mm256_setzero_si256(),
                                           _mm256_set1_epi8((char)0x80),
                                           _mm256_loadu_si256((const __m256i *)x));
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_broadcastd_epi32(s));
}

/* nt tokens (a compile-time constant per instance) against one group: y[t·y_stride + i]. */
static KQ_ALWAYS_INLINE void gemm_tile(int nt, int64_t nb, const uint8_t *w,
                                       const struct kq_block_q8_0 *const *a, float *y,
                                       size_t y_stride)
{
    __m512 acc[MAX_NT];
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * GROUP_BLOCK_BYTES;
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + OFF_D)));
        __m512i wv[8];
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            wv[j] = _mm512_loadu_si512(g + OFF_QS + 64 * j);
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const struct kq_block_q8_0 *x = &a[t][b];
            __m512i isum = minus_bias(x->qs);
            #pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
                isum = _mm512_dpbusd_epi32(isum, wv[j], _mm512_set1_epi32(load32(x->qs + 4 * j)));
            const __m512 dd = _mm512_mul_ps(dw, _mm512_set1_ps(_cvtsh_ss(x->d)));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dd, acc[t]);
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(y + (size_t)t * y_stride, acc[t]);
}

static void gemm(int64_t n_cols, const void *w, const uint8_t *xq, size_t act_stride,
                 const int32_t *rows, int n_tok, float *y, size_t y_stride)
{
    const int64_t nb = n_cols / QK;
    for (int t0 = 0; t0 < n_tok;) {
        const struct kq_block_q8_0 *a[MAX_NT];
        const int nt = n_tok - t0 >= MAX_NT ? MAX_NT : n_tok - t0 >= 2 ? 2 : 1;
        for (int t = 0; t < nt; t++)
            a[t] = (const void *)(xq + (size_t)(rows ? rows[t0 + t] : t0 + t) * act_stride);
        float *yt = y + (size_t)t0 * y_stride;
        if (nt == MAX_NT)
            gemm_tile(MAX_NT, nb, w, a, yt, y_stride);
        else if (nt == 2)
            gemm_tile(2, nb, w, a, yt, y_stride);
        else
            gemm_tile(1, nb, w, a, yt, y_stride);
        t0 += nt;
    }
}

void kq_x16_register_q8_0_avx512(struct kq_x16_ops *ops)
{
    ops->gemm = gemm;
}
