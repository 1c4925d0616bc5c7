/* kernels/kq_x16_q5k_avx2.c: Q5_K x16 GEMM for AVX2 (layout and arithmetic: kq_x16_q5k.c).
 * A 256-bit vector holds 8 rows' lanes, so each group is computed as two halves of 8 rows. The
 * 5-bit weights are built as in the AVX-512 kernel (nibble | fifth bit << 4) once per tile of
 * tokens; VPMADDUBSW (weights ≤ 31 × int8: pair sums ≤ 2·31·128, no saturation) then VPMADDWD
 * with ones is VPDPBUSD's exact result. Sub-block sums scaled with VPMULLD, mins as VPMADDWD of
 * (m_2k, m_2k+1) word pairs against paired bsums, then the reference's conversions, products
 * and two FMAs per 8 rows. */
#include <immintrin.h>

#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

#define R KQ_X16_ROWS
#define GROUP_BLOCK_BYTES (R * sizeof(struct kq_block_q5_K))
#define OFF_D 0
#define OFF_DMIN 32
#define OFF_SW 64
#define OFF_QH 256
#define OFF_QS 768
#define MAX_NT 4

static inline int32_t load32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline __m256i load256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* PSHUFB control picking, in every dword, bytes b0..b3 of that dword (0x80: zero). */
static inline __m256i dword_bytes(uint32_t pattern)
{
    const __m256i offs = _mm256_set_epi32(0x0c0c0c0c, 0x08080808, 0x04040404, 0, 0x0c0c0c0c,
                                          0x08080808, 0x04040404, 0);
    return _mm256_add_epi8(_mm256_set1_epi32((int32_t)pattern), offs);
}

/* The scales sc[s] (int32 per row) and mins as word pairs mp[k] = (m_2k, m_2k+1) of the 8 rows
 * of half h (g points 32·h bytes into the group block). */
static inline void unpack_scales(const uint8_t *g, __m256i sc[8], __m256i mp[4])
{
    const __m256i u0 = load256(g + OFF_SW), u1 = load256(g + OFF_SW + 64),
                  u2 = load256(g + OFF_SW + 128);
    const __m256i m6 = _mm256_set1_epi8(0x3f), m4 = _mm256_set1_epi8(0x0f),
                  top = _mm256_set1_epi8(0x30);
    const __m256i sc_lo = _mm256_and_si256(u0, m6), m_lo = _mm256_and_si256(u1, m6);
    const __m256i sc_hi =
        _mm256_or_si256(_mm256_and_si256(u2, m4), _mm256_and_si256(_mm256_srli_epi32(u0, 2), top));
    const __m256i m_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(u2, 4), m4),
                                         _mm256_and_si256(_mm256_srli_epi32(u1, 2), top));
    #pragma GCC unroll 4
    for (int s = 0; s < 4; s++) {
        const __m256i ctrl = dword_bytes(0x80808000u | (uint32_t)s);
        sc[s] = _mm256_shuffle_epi8(sc_lo, ctrl);
        sc[s + 4] = _mm256_shuffle_epi8(sc_hi, ctrl);
    }
    const __m256i pair0 = dword_bytes(0x80018000u), pair1 = dword_bytes(0x80038002u);
    mp[0] = _mm256_shuffle_epi8(m_lo, pair0);
    mp[1] = _mm256_shuffle_epi8(m_lo, pair1);
    mp[2] = _mm256_shuffle_epi8(m_hi, pair0);
    mp[3] = _mm256_shuffle_epi8(m_hi, pair1);
}

/* Bit `bit` of every byte of v moved to bit 4, all other bits cleared. */
static KQ_ALWAYS_INLINE __m256i bit_to_16(__m256i v, int bit)
{
    const __m256i b4 = _mm256_set1_epi8(0x10);
    if (bit < 4)
        v = _mm256_slli_epi16(v, 4 - bit);
    else if (bit > 4)
        v = _mm256_srli_epi16(v, bit - 4);
    return _mm256_and_si256(v, b4);
}

/* VPDPBUSD for weights below 64: no saturation in VPMADDUBSW's pair sums. */
static inline __m256i dot4(__m256i acc, __m256i q, int32_t x4)
{
    const __m256i p = _mm256_maddubs_epi16(q, _mm256_set1_epi32(x4));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* The mins term of a token: Σ_s m_s·(bsums[2s] + bsums[2s+1]) per row (word pairs, exact). */
static inline __m256i mins_term(const __m256i mp[4], const int32_t p[8])
{
    __m256i summ = _mm256_madd_epi16(mp[0], _mm256_set1_epi32(p[0]));
    summ = _mm256_add_epi32(summ, _mm256_madd_epi16(mp[1], _mm256_set1_epi32(p[1])));
    summ = _mm256_add_epi32(summ, _mm256_madd_epi16(mp[2], _mm256_set1_epi32(p[4])));
    return _mm256_add_epi32(summ, _mm256_madd_epi16(mp[3], _mm256_set1_epi32(p[5])));
}

/* The paired bsums of an activation block as int16 pairs: dwords 0,1,4,5 hold (B0,B1) (B2,B3)
 * (B4,B5) (B6,B7), B_s = bsums[2s] + bsums[2s+1] (|B_s| ≤ 4096). */
static inline void paired_bsums(const struct kq_block_q8_K *a, int32_t p[8])
{
    const __m256i b32 = _mm256_madd_epi16(load256(KQ_Q8K_BSUMS(a)), _mm256_set1_epi16(1));
    _mm256_storeu_si256((__m256i *)p, _mm256_packs_epi32(b32, b32));
}

/* nt tokens against rows 8h..8h+7 of one group: y[t·y_stride + 8h + i]. */
static KQ_ALWAYS_INLINE void gemm_tile(int nt, int64_t nb, const uint8_t *w, int h,
                                       const struct kq_block_q8_K *const *a, float *y,
                                       size_t y_stride)
{
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc[MAX_NT];
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *gb = w + (size_t)b * GROUP_BLOCK_BYTES, *g = gb + 32 * h; /* half h */
        __m256i sc[8], mp[4], sumi[MAX_NT];
        unpack_scales(g, sc, mp);
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            sumi[t] = _mm256_setzero_si256();
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m256i lo[MAX_NT], hi[MAX_NT];
            #pragma GCC unroll 4
            for (int t = 0; t < nt; t++)
                lo[t] = hi[t] = _mm256_setzero_si256();
            #pragma GCC unroll 8
            for (int j = 0; j < 8; j++) {
                const __m256i qs = load256(g + OFF_QS + 64 * (8 * c + j));
                const __m256i qh = load256(g + OFF_QH + 64 * j);
                const __m256i q_lo =
                    _mm256_or_si256(_mm256_and_si256(qs, m4), bit_to_16(qh, 2 * c));
                const __m256i q_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qs, 4), m4),
                                                     bit_to_16(qh, 2 * c + 1));
                #pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    const int8_t *x = a[t][b].qs + 64 * c + 4 * j;
                    lo[t] = dot4(lo[t], q_lo, load32(x));
                    hi[t] = dot4(hi[t], q_hi, load32(x + 32));
                }
            }
            #pragma GCC unroll 4
            for (int t = 0; t < nt; t++)
                sumi[t] = _mm256_add_epi32(
                    sumi[t], _mm256_add_epi32(_mm256_mullo_epi32(lo[t], sc[2 * c]),
                                              _mm256_mullo_epi32(hi[t], sc[2 * c + 1])));
        }
        const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + OFF_D + 16 * h)));
        const __m256 dmin =
            _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(gb + OFF_DMIN + 16 * h)));
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            int32_t p[8];
            paired_bsums(&a[t][b], p);
            const __m256 da = _mm256_set1_ps(a[t][b].d);
            const __m256i summ = mins_term(mp, p);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, da), _mm256_cvtepi32_ps(sumi[t]), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, da), _mm256_cvtepi32_ps(summ), acc[t]);
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        _mm256_storeu_ps(y + (size_t)t * y_stride + 8 * h, acc[t]);
}

static void tile(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                 size_t y_stride)
{
    const struct kq_block_q8_K *const *a = (const void *)act;
    const int64_t nb = n_cols / QK_K;
    /* Each run of tokens passes over the group's two 8-row halves in turn. */
#define RUN(n, t)                                                                                \
    for (int h = 0; h < 2; h++)                                                                  \
    gemm_tile(n, nb, w, h, a + (t), y + (size_t)(t)*y_stride, y_stride)
    KQ_X16_TILE_RUNS(MAX_NT, nt, RUN)
#undef RUN
}

void kq_x16_register_q5k_avx2(struct kq_x16_ops *ops)
{
    ops->tile = tile;
    ops->max_tile = MAX_NT;
}
