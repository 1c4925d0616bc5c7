/* kernels/kq_x16_q5k_avx512.h: the body of the Q5_K x16 GEMM for AVX-512 VNNI (layout and
 * arithmetic: kq_x16_q5k.c), included by two files that differ in one ISA extension:
 * kq_x16_q5k_avx512.c (AVX-512 F/BW/VL/DQ + VNNI) and kq_x16_q5k_gfni.c (the same plus GFNI).
 * The includer defines fifth_bit_1tok(v, bit) (bit `bit` of every byte moved to bit 4, all
 * other bits cleared; declared below) for the single-token tile; every other tile uses
 * fifth_bit. The integer results are the same either way, and so are the output bits.
 *
 * Per block and per 4 columns of a sub-block pair, one qs vector and one qh vector become two
 * vectors of 5-bit weights (nibble | fifth bit << 4) that every token of the tile reuses:
 * VPDPBUSD (unsigned weights × 4 broadcast activation bytes) adds 4 exact products for each of
 * 16 rows. Sub-block sums are scaled with VPMULLD (they exceed 16 bits), the mins term is 4
 * VPDPWSSD of (m_2k, m_2k+1) word pairs against the activation's paired bsums, then the
 * reference's conversions, products and two FMAs. Tiles of up to 4 tokens; a single token
 * streams each group exactly once. */
#ifndef KQ_X16_Q5K_AVX512_H
#define KQ_X16_Q5K_AVX512_H

#include <immintrin.h>

#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

/* The GFNI build's tile (kq_x16_q5k_gfni.c), chosen at registration when the CPU has GFNI. */
void kq_x16_q5k_tile_gfni(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                          size_t y_stride);

#define R KQ_X16_ROWS
#define GROUP_BLOCK_BYTES (R * sizeof(struct kq_block_q5_K))
#define OFF_D 0
#define OFF_DMIN 32
#define OFF_SW 64
#define OFF_QH 256
#define OFF_QS 768
#define MAX_NT 4

/* Defined by the including file (see the top). */
static KQ_ALWAYS_INLINE __m512i fifth_bit_1tok(__m512i v, int bit);

static inline int32_t load32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline __m512i load512(const void *p)
{
    return _mm512_loadu_si512(p);
}

/* PSHUFB control picking, in every dword, bytes b0..b3 of that dword (0x80: zero). */
static inline __m512i dword_bytes(uint32_t pattern)
{
    const __m512i offs = _mm512_set_epi32(0x0c0c0c0c, 0x08080808, 0x04040404, 0, 0x0c0c0c0c,
                                          0x08080808, 0x04040404, 0, 0x0c0c0c0c, 0x08080808,
                                          0x04040404, 0, 0x0c0c0c0c, 0x08080808, 0x04040404, 0);
    return _mm512_add_epi8(_mm512_set1_epi32((int32_t)pattern), offs);
}

/* One block's scales sc[s] (int32 per row) and mins as word pairs mp[k] = (m_2k, m_2k+1):
 * kq_scale_min_k4 on 16 rows with dword-wise operations (word k of the 12 scale bytes of
 * row i sits in lane i of vector k). */
static inline void unpack_scales(const uint8_t *g, __m512i sc[8], __m512i mp[4])
{
    const __m512i u0 = load512(g + OFF_SW), u1 = load512(g + OFF_SW + 64),
                  u2 = load512(g + OFF_SW + 128);
    const __m512i m6 = _mm512_set1_epi8(0x3f), m4 = _mm512_set1_epi8(0x0f),
                  top = _mm512_set1_epi8(0x30);
    const __m512i sc_lo = _mm512_and_si512(u0, m6), m_lo = _mm512_and_si512(u1, m6);
    /* bytes 8..11 give the low nibbles of scales/mins 4..7, bits 6-7 of bytes 0..7 the rest */
    const __m512i sc_hi =
        _mm512_or_si512(_mm512_and_si512(u2, m4), _mm512_and_si512(_mm512_srli_epi32(u0, 2), top));
    const __m512i m_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), m4),
                                         _mm512_and_si512(_mm512_srli_epi32(u1, 2), top));
    #pragma GCC unroll 4
    for (int s = 0; s < 4; s++) {
        const __m512i ctrl = dword_bytes(0x80808000u | (uint32_t)s);
        sc[s] = _mm512_shuffle_epi8(sc_lo, ctrl);
        sc[s + 4] = _mm512_shuffle_epi8(sc_hi, ctrl);
    }
    const __m512i pair0 = dword_bytes(0x80018000u), pair1 = dword_bytes(0x80038002u);
    mp[0] = _mm512_shuffle_epi8(m_lo, pair0);
    mp[1] = _mm512_shuffle_epi8(m_lo, pair1);
    mp[2] = _mm512_shuffle_epi8(m_hi, pair0);
    mp[3] = _mm512_shuffle_epi8(m_hi, pair1);
}

/* Bit `bit` of every byte of v moved to bit 4, all other bits cleared: a shift and an and. */
static KQ_ALWAYS_INLINE __m512i fifth_bit(__m512i v, int bit)
{
    const __m512i b4 = _mm512_set1_epi8(0x10);
    if (bit < 4)
        v = _mm512_slli_epi16(v, (unsigned)(4 - bit));
    else if (bit > 4)
        v = _mm512_srli_epi16(v, (unsigned)(bit - 4));
    return _mm512_and_si512(v, b4);
}

/* The mins term of a token: Σ_s m_s·(bsums[2s] + bsums[2s+1]) per row. The paired bsums fit
 * int16 (|Σ of 32 int8| ≤ 4096); VPDPWSSD then adds two exact word products per lane. */
static inline __m512i mins_term(const __m512i mp[4], const struct kq_block_q8_K *a)
{
    const __m256i bs = _mm256_loadu_si256((const __m256i *)KQ_Q8K_BSUMS(a));
    const __m256i b32 = _mm256_madd_epi16(bs, _mm256_set1_epi16(1)); /* B_0 .. B_7 */
    const __m256i b16 = _mm256_packs_epi32(b32, b32); /* dwords 0,1,4,5: (B0,B1) (B2,B3) ... */
    int32_t p[8];
    _mm256_storeu_si256((__m256i *)p, b16);
    __m512i summ = _mm512_setzero_si512();
    summ = _mm512_dpwssd_epi32(summ, mp[0], _mm512_set1_epi32(p[0]));
    summ = _mm512_dpwssd_epi32(summ, mp[1], _mm512_set1_epi32(p[1]));
    summ = _mm512_dpwssd_epi32(summ, mp[2], _mm512_set1_epi32(p[4]));
    summ = _mm512_dpwssd_epi32(summ, mp[3], _mm512_set1_epi32(p[5]));
    return summ;
}

/* nt tokens (a compile-time constant per instance) against one group: y[t·y_stride + i]. */
static KQ_ALWAYS_INLINE void gemm_tile(int nt, int64_t nb, const uint8_t *w,
                                       const struct kq_block_q8_K *const *a, float *y,
                                       size_t y_stride)
{
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512 acc[MAX_NT];
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * GROUP_BLOCK_BYTES;
        __m512i sc[8], mp[4], sumi[MAX_NT];
        unpack_scales(g, sc, mp);
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            sumi[t] = _mm512_setzero_si512();
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512i lo[MAX_NT], hi[MAX_NT];
            #pragma GCC unroll 4
            for (int t = 0; t < nt; t++)
                lo[t] = hi[t] = _mm512_setzero_si512();
            #pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                const __m512i qs = load512(g + OFF_QS + 64 * (8 * c + j));
                const __m512i qh = load512(g + OFF_QH + 64 * j);
                const __m512i q_lo = _mm512_ternarylogic_epi32(
                    qs, m4, nt == 1 ? fifth_bit_1tok(qh, 2 * c) : fifth_bit(qh, 2 * c),
                    0xEA); /* (A & B) | C */
                const __m512i q_hi = _mm512_ternarylogic_epi32(
                    _mm512_srli_epi16(qs, 4), m4,
                    nt == 1 ? fifth_bit_1tok(qh, 2 * c + 1) : fifth_bit(qh, 2 * c + 1), 0xEA);
                #pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    const int8_t *x = a[t][b].qs + 64 * c + 4 * j;
                    lo[t] = _mm512_dpbusd_epi32(lo[t], q_lo, _mm512_set1_epi32(load32(x)));
                    hi[t] = _mm512_dpbusd_epi32(hi[t], q_hi, _mm512_set1_epi32(load32(x + 32)));
                }
            }
            #pragma GCC unroll 4
            for (int t = 0; t < nt; t++)
                sumi[t] = _mm512_add_epi32(
                    sumi[t], _mm512_add_epi32(_mm512_mullo_epi32(lo[t], sc[2 * c]),
                                              _mm512_mullo_epi32(hi[t], sc[2 * c + 1])));
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + OFF_D)));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + OFF_DMIN)));
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const __m512 da = _mm512_set1_ps(a[t][b].d);
            const __m512i summ = mins_term(mp, &a[t][b]);
            acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(d, da), _mm512_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dmin, da), _mm512_cvtepi32_ps(summ), acc[t]);
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(y + (size_t)t * y_stride, acc[t]);
}

static void tile(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                 size_t y_stride)
{
    const struct kq_block_q8_K *const *a = (const void *)act;
    const int64_t nb = n_cols / QK_K;
#define RUN(n, t) gemm_tile(n, nb, w, a + (t), y + (size_t)(t)*y_stride, y_stride)
    KQ_X16_TILE_RUNS(MAX_NT, nt, RUN)
#undef RUN
}

#endif
