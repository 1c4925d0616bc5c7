/* kernels/kq_x16_q8_0_avx2.c: Q8_0 x16 GEMM for AVX2 (layout and arithmetic: kq_x16_q8_0.c).
 * Without VNNI, the products go through VPMADDUBSW, which saturates its 16-bit pair sums: the
 * stored w + 128 (up to 255) against x would overflow, so each block's weights are turned back
 * into w once per tile and multiplied as |w| (unsigned) × x·sign(w) (VPSIGNB): pair sums are at
 * most 2·128·127 < 2^15 because activations from kq_quantize_q8_0 lie in [−127, 127]. VPMADDWD
 * with ones widens the pairs to exact int32 lanes. A 256-bit vector holds 8 rows, so a group is
 * two halves; then the reference's VCVTDQ2PS, multiply and FMA per 8 rows. */
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

/* nt tokens (a compile-time constant per instance) against one group: y[t·y_stride + i]. */
static KQ_ALWAYS_INLINE void gemm_tile(int nt, int64_t nb, const uint8_t *w,
                                       const struct kq_block_q8_0 *const *a, float *y,
                                       size_t y_stride)
{
    const __m256i bias = _mm256_set1_epi8((char)0x80), ones = _mm256_set1_epi16(1);
    __m256 acc[MAX_NT][2];
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        acc[t][0] = acc[t][1] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * GROUP_BLOCK_BYTES;
        __m256i sw[8][2], aw[8][2]; /* w (for its sign) and |w|, rows 0-7 and 8-15 */
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            for (int h = 0; h < 2; h++) {
                sw[j][h] = _mm256_xor_si256(
                    _mm256_loadu_si256((const __m256i *)(g + OFF_QS + 64 * j + 32 * h)), bias);
                aw[j][h] = _mm256_abs_epi8(sw[j][h]);
            }
        const __m256 dw[2] = {_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + OFF_D))),
                              _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + OFF_D + 16)))};
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const struct kq_block_q8_0 *x = &a[t][b];
            const __m256 da = _mm256_set1_ps(_cvtsh_ss(x->d));
            for (int h = 0; h < 2; h++) {
                __m256i isum = _mm256_setzero_si256();
                #pragma GCC unroll 8
                for (int j = 0; j < 8; j++) {
                    const __m256i xs =
                        _mm256_sign_epi8(_mm256_set1_epi32(load32(x->qs + 4 * j)), sw[j][h]);
                    isum = _mm256_add_epi32(
                        isum, _mm256_madd_epi16(_mm256_maddubs_epi16(aw[j][h], xs), ones));
                }
                acc[t][h] =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw[h], da), acc[t][h]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        _mm256_storeu_ps(y + (size_t)t * y_stride, acc[t][0]);
        _mm256_storeu_ps(y + (size_t)t * y_stride + 8, acc[t][1]);
    }
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

void kq_x16_register_q8_0_avx2(struct kq_x16_ops *ops)
{
    ops->tile = tile;
    ops->max_tile = MAX_NT;
}
