/* kernels/kq_x16_q4k_avx2.c: Q4_K x16 GEMM for AVX2, bit-identical to the reference
 * (kq_x16_q4k.c documents the group layout and the arithmetic).
 *
 * A group's 16 rows are two YMM halves (rows 0..7 are bytes 0..31 of each 64-byte vector, rows
 * 8..15 bytes 32..63), one row per 32-bit lane. VPDPBUSD is emulated exactly: VPMADDUBSW of
 * 4-bit weights (0..15) and signed activations gives word pairs of at most 2·15·128 = 3840 in
 * magnitude (no saturation), the 8 VPMADDUBSWs of a sub-block add up in words (8·3840 = 30720 <
 * 2^15, still exact), and one VPMADDWD against the sub-block scale in both words of each lane
 * gives sc_s · isum_s in 32 bits, added into sumi: the same integer as the reference. The mins
 * term is VPMADDWD of (m_s, m_s) word pairs against the token's broadcast bsums pair. Then the
 * reference's float steps with FMA.
 *
 * Tokens go through in tiles of TILE, each 8-row half of a block decoded once per tile; every
 * token runs the same operations whatever the tile, so outputs do not depend on n_tok. */
#include <immintrin.h>

#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

#define TILE 4
_Static_assert(TILE == 4, "tile() has instances for 1 to 4 tokens (KQ_X16_TILE_SIZES_4)");
#define GROUP_BLOCK_BYTES (KQ_X16_ROWS * sizeof(struct kq_block_q4_K))
#define OFF_D 0
#define OFF_DMIN 32
#define OFF_SW 64
#define OFF_QS 256

static inline __m256i load256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline __m256i bcast32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* Lane-wise kq_scale_min_k4 of the 8 rows of half h: bytes 0..3 of each lane of sc[0] / m[0]
 * are the scales / mins of sub-blocks 0..3, those of sc[1] / m[1] of sub-blocks 4..7. */
static KQ_ALWAYS_INLINE void unpack_scales(const uint8_t *g, int h, __m256i sc[2], __m256i m[2])
{
    const __m256i u0 = load256(g + OFF_SW + 32 * h), u1 = load256(g + OFF_SW + 64 + 32 * h);
    const __m256i u2 = load256(g + OFF_SW + 128 + 32 * h);
    const __m256i m6 = _mm256_set1_epi8(0x3F), m4 = _mm256_set1_epi8(0x0F);
    const __m256i m2 = _mm256_set1_epi8(0x30);
    sc[0] = _mm256_and_si256(u0, m6);
    m[0] = _mm256_and_si256(u1, m6);
    /* (u2 & 0x0f) | ((u0 >> 6) & 3) << 4 == (u2 & 0x0f) | ((u0 >> 2) & 0x30) */
    sc[1] = _mm256_or_si256(_mm256_and_si256(u2, m4),
                            _mm256_and_si256(_mm256_srli_epi32(u0, 2), m2));
    m[1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), m4),
                           _mm256_and_si256(_mm256_srli_epi32(u1, 2), m2));
}

/* PSHUFB controls putting byte k of each 32-bit lane into the low byte of both 16-bit halves
 * (PSHUFB indexes bytes within 128 bits: lane L of each quarter picks byte 4L + k). */
#define PAIR(k) (k) | 0x80u << 8 | (k) << 16 | 0x80u << 24
#define PAIRS(k) PAIR(k), PAIR(4 + k), PAIR(8 + k), PAIR(12 + k)
static const uint32_t pair_ctrl[4][8] = {{PAIRS(0), PAIRS(0)}, {PAIRS(1), PAIRS(1)},
                                         {PAIRS(2), PAIRS(2)}, {PAIRS(3), PAIRS(3)}};

static inline int32_t bsums_pair(const struct kq_block_q8_K *a, int s)
{
    int32_t v;
    memcpy(&v, KQ_Q8K_BSUMS(a) + 4 * s, 4);
    return v;
}

/* sumi and summ of half h of one block for the tile's tokens. */
static KQ_ALWAYS_INLINE void half_sums(int nt, const uint8_t *g, int h,
                                       const struct kq_block_q8_K *const *ab, __m256i *sumi,
                                       __m256i *summ)
{
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i sc[2], mn[2];
    unpack_scales(g, h, sc, mn);
    #pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        sumi[t] = summ[t] = _mm256_setzero_si256();
    /* sub-blocks in a loop, not unrolled: unrolled, GCC 12 spills the broadcast activations */
    #pragma GCC unroll 1
    for (int s = 0; s < 8; s++) {
        const int c = s / 2;
        const __m128i shift = _mm_cvtsi32_si128(4 * (s % 2));
        __m256i p16[TILE];
        #pragma GCC unroll 8
        for (int t = 0; t < nt; t++)
            p16[t] = _mm256_setzero_si256();
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m256i q = load256(g + OFF_QS + 64 * (8 * c + j) + 32 * h);
            q = _mm256_and_si256(_mm256_srl_epi16(q, shift), m4);
            #pragma GCC unroll 8
            for (int t = 0; t < nt; t++)
                p16[t] = _mm256_add_epi16(
                    p16[t], _mm256_maddubs_epi16(q, bcast32(ab[t]->qs + 32 * s + 4 * j)));
        }
        const __m256i ctrl = load256(pair_ctrl[s % 4]);
        const __m256i scs = _mm256_shuffle_epi8(sc[s / 4], ctrl);
        const __m256i mns = _mm256_shuffle_epi8(mn[s / 4], ctrl);
        #pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            sumi[t] = _mm256_add_epi32(sumi[t], _mm256_madd_epi16(p16[t], scs));
            summ[t] = _mm256_add_epi32(
                summ[t], _mm256_madd_epi16(mns, _mm256_set1_epi32(bsums_pair(ab[t], s))));
        }
    }
}

static KQ_ALWAYS_INLINE void gemm_tile(int nt, int64_t nb, const uint8_t *w,
                                       const struct kq_block_q8_K *const *a, float *y,
                                       size_t y_stride)
{
    __m256 acc[2][TILE];
    #pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        acc[0][t] = acc[1][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * GROUP_BLOCK_BYTES;
        const struct kq_block_q8_K *ab[TILE];
        #pragma GCC unroll 8
        for (int t = 0; t < nt; t++)
            ab[t] = &a[t][b];
        #pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            __m256i sumi[TILE], summ[TILE];
            half_sums(nt, g, h, ab, sumi, summ);
            const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + OFF_D + 16 * h)));
            const __m256 dmin =
                _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + OFF_DMIN + 16 * h)));
            #pragma GCC unroll 8
            for (int t = 0; t < nt; t++) {
                const __m256 ad = _mm256_set1_ps(ab[t]->d);
                const __m256 dd = _mm256_mul_ps(d, ad), dm = _mm256_mul_ps(dmin, ad);
                acc[h][t] = _mm256_fmadd_ps(dd, _mm256_cvtepi32_ps(sumi[t]), acc[h][t]);
                acc[h][t] = _mm256_fnmadd_ps(dm, _mm256_cvtepi32_ps(summ[t]), acc[h][t]);
            }
        }
    }
    #pragma GCC unroll 8
    for (int t = 0; t < nt; t++) {
        _mm256_storeu_ps(y + (size_t)t * y_stride, acc[0][t]);
        _mm256_storeu_ps(y + (size_t)t * y_stride + 8, acc[1][t]);
    }
}

static void tile(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                 size_t y_stride)
{
    const struct kq_block_q8_K *const *a = (const void *)act;
    const int64_t nb = n_cols / QK_K;
#define RUN(n) gemm_tile(n, nb, w, a, y, y_stride)
    KQ_X16_TILE_SIZES_4(nt, RUN)
#undef RUN
}

void kq_x16_register_q4k_avx2(struct kq_x16_ops *ops)
{
    ops->tile = tile;
    ops->max_tile = TILE;
}
