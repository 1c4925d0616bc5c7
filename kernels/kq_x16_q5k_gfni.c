/* kernels/kq_x16_q5k_gfni.c: Q5_K x16 GEMM for AVX-512 VNNI + GFNI (body: kq_x16_q5k_avx512.h;
 * why GFNI and only for a single token: kq_x16_q5k_avx512.c, which registers it). */
#include "kernels/kq_x16_q5k_avx512.h"

/* GF2P8AFFINEQB: output bit 4 of each byte is the parity of matrix byte 7 − 4 = 3 AND the
 * input byte; with only bit `bit` set in that matrix byte (and the other rows zero) it is the
 * input's bit `bit`, every other output bit 0. */
static KQ_ALWAYS_INLINE __m512i fifth_bit_1tok(__m512i v, int bit)
{
    return _mm512_gf2p8affine_epi64_epi8(
        v, _mm512_set1_epi64((long long)((uint64_t)1 << bit << 24)), 0);
}

void kq_x16_q5k_tile_gfni(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                          size_t y_stride)
{
    tile(n_cols, w, act, nt, y, y_stride);
}
