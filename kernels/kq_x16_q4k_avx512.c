/* kernels/kq_x16_q4k_avx512.c: Q4_K x16 GEMM for AVX-512 VNNI, bit-identical to the reference
 * (kq_x16_q4k.c documents the group layout and the arithmetic).
 *
 * One ZMM lane per row. Per sub-block s of a block, 8 vectors of 4-bit weights (4 consecutive
 * weights of each of 16 rows; low nibbles for even s, high nibbles for odd s, kept in place as
 * 16·q) meet 8 broadcast 4-byte groups of each token's Q8_K activations in VPDPBUSD (unsigned
 * weights × signed activations, 4 products per lane, exact: |sum| ≤ 32·240·128 < 2^31). The
 * sub-block sum is scaled by the lane's 6-bit scale (×16 for even s) with VPMULLD and added
 * into 16·sumi; the mins term is 8 VPDPWSSD of (m_s, m_s) word pairs against the token's
 * broadcast bsums pairs. Then the reference's float steps.
 *
 * Tokens go through in tiles of TILE: the weights of a block are decoded once per tile and each
 * token of the tile keeps its sums in registers. Every token runs exactly the same operations
 * whatever the tile size, so outputs do not depend on n_tok; a single token streams the group
 * once. */
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

static inline __m512i load512(const void *p)
{
    return _mm512_loadu_si512(p);
}

/* acc + VPDPBUSD(q, the 4 bytes at p in every lane), with the activation bytes as the
 * instruction's {1to16} broadcast memory operand: GCC 12 does not fold _mm512_set1_epi32 of a
 * load into it and issues a separate VPBROADCASTD, one more operation per 4 × 16 products. */
struct bytes4 {
    uint8_t b[4];
};
static inline __m512i dpbusd_bcast(__m512i acc, __m512i q, const void *p)
{
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(q), "m"(*(const struct bytes4 *)p));
    return acc;
}

/* Lane-wise kq_scale_min_k4 of 16 rows: bytes 0..3 of each lane of sc[0] / m[0] are the scales /
 * mins of sub-blocks 0..3, those of sc[1] / m[1] of sub-blocks 4..7. */
static KQ_ALWAYS_INLINE void unpack_scales(const uint8_t *g, __m512i sc[2], __m512i m[2])
{
    const __m512i u0 = load512(g + OFF_SW), u1 = load512(g + OFF_SW + 64);
    const __m512i u2 = load512(g + OFF_SW + 128);
    const __m512i m6 = _mm512_set1_epi8(0x3F), m4 = _mm512_set1_epi8(0x0F);
    const __m512i m2 = _mm512_set1_epi8(0x30);
    sc[0] = _mm512_and_si512(u0, m6);
    m[0] = _mm512_and_si512(u1, m6);
    /* (u2 & 0x0f) | ((u0 >> 6) & 3) << 4 == (u2 & 0x0f) | ((u0 >> 2) & 0x30) */
    sc[1] = _mm512_or_si512(_mm512_and_si512(u2, m4),
                            _mm512_and_si512(_mm512_srli_epi32(u0, 2), m2));
    m[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(u2, 4), m4),
                           _mm512_and_si512(_mm512_srli_epi32(u1, 2), m2));
}

/* PSHUFB control taking byte k of each 32-bit lane (PSHUFB indexes bytes within 128 bits, so
 * lane L of each 128-bit quarter picks byte 4L + k): into the low byte, zeros above (pair = 0),
 * or into the low byte of both 16-bit halves (pair = 1: the (m, m) words of the mins term). */
static inline __m512i byte_ctrl(int k, int pair)
{
    uint32_t c[16];
    for (int lane = 0; lane < 16; lane++) {
        const uint32_t src = (uint32_t)(4 * (lane % 4) + k);
        c[lane] = src | 0x80u << 8 | (pair ? src : 0x80u) << 16 | 0x80u << 24;
    }
    return _mm512_loadu_si512(c);
}

/* sumi·16 of one block for the tile's tokens: the high nibbles are taken in place (q & 0xF0 is
 * 16·q_hi, saving a shift per vector) and the even sub-blocks' scales multiplied by 16 to match,
 * so each lane holds exactly 16·sumi (|16·sumi| < 2^29: no overflow). */
static KQ_ALWAYS_INLINE void block_sumi16(int nt, const uint8_t *g, const __m512i sc[2],
                                          const struct kq_block_q8_K *const *ab, __m512i *sumi16)
{
    const __m512i lo_mask = _mm512_set1_epi8(0x0F), hi_mask = _mm512_set1_epi8((char)0xF0);
    #pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512i il[TILE], ih[TILE];
        #pragma GCC unroll 8
        for (int t = 0; t < nt; t++)
            il[t] = ih[t] = _mm512_setzero_si512();
        #pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i q = load512(g + OFF_QS + 64 * (8 * c + j));
            /* in a register: GCC would fold the load into both ANDs, and a 64-byte load takes
             * this core's load port for a whole cycle */
            __asm__("" : "+v"(q));
            const __m512i lo = _mm512_and_si512(q, lo_mask), hi = _mm512_and_si512(q, hi_mask);
            #pragma GCC unroll 8
            for (int t = 0; t < nt; t++) {
                il[t] = dpbusd_bcast(il[t], lo, ab[t]->qs + 64 * c + 4 * j);
                ih[t] = dpbusd_bcast(ih[t], hi, ab[t]->qs + 64 * c + 32 + 4 * j);
            }
        }
        const __m512i sc_even16 =
            _mm512_slli_epi32(_mm512_shuffle_epi8(sc[c / 2], byte_ctrl((2 * c) % 4, 0)), 4);
        const __m512i sc_odd = _mm512_shuffle_epi8(sc[c / 2], byte_ctrl((2 * c + 1) % 4, 0));
        #pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            sumi16[t] = _mm512_add_epi32(sumi16[t], _mm512_mullo_epi32(il[t], sc_even16));
            sumi16[t] = _mm512_add_epi32(sumi16[t], _mm512_mullo_epi32(ih[t], sc_odd));
        }
    }
}

static inline int32_t bsums_pair(const struct kq_block_q8_K *a, int s)
{
    int32_t v;
    memcpy(&v, KQ_Q8K_BSUMS(a) + 4 * s, 4);
    return v;
}

/* summ = Σ_s m_s·(bsums[2s] + bsums[2s+1]): (m_s, m_s) words against a broadcast bsums pair. */
static KQ_ALWAYS_INLINE void block_summ(int nt, const __m512i mn[2],
                                        const struct kq_block_q8_K *const *ab, __m512i *summ)
{
    #pragma GCC unroll 8
    for (int s = 0; s < 8; s++) {
        const __m512i mns = _mm512_shuffle_epi8(mn[s / 4], byte_ctrl(s % 4, 1));
        #pragma GCC unroll 8
        for (int t = 0; t < nt; t++)
            summ[t] = _mm512_dpwssd_epi32(summ[t], mns, _mm512_set1_epi32(bsums_pair(ab[t], s)));
    }
}

static KQ_ALWAYS_INLINE void gemm_tile(int nt, int64_t nb, const uint8_t *w,
                                       const struct kq_block_q8_K *const *a, float *y,
                                       size_t y_stride)
{
    __m512 acc[TILE];
    #pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = w + (size_t)b * GROUP_BLOCK_BYTES;
        const struct kq_block_q8_K *ab[TILE];
        __m512i sc[2], mn[2], sumi[TILE], summ[TILE];
        unpack_scales(g, sc, mn);
        #pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            ab[t] = &a[t][b];
            sumi[t] = summ[t] = _mm512_setzero_si512();
        }
        block_sumi16(nt, g, sc, ab, sumi);
        block_summ(nt, mn, ab, summ);
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + OFF_D)));
        const __m512 dmin = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(g + OFF_DMIN)));
        #pragma GCC unroll 8
        for (int t = 0; t < nt; t++) {
            const __m512 ad = _mm512_set1_ps(ab[t]->d);
            const __m512 dd = _mm512_mul_ps(d, ad), dm = _mm512_mul_ps(dmin, ad);
            const __m512i si = _mm512_srai_epi32(sumi[t], 4); /* exact: 16·sumi */
            acc[t] = _mm512_fmadd_ps(dd, _mm512_cvtepi32_ps(si), acc[t]);
            acc[t] = _mm512_fnmadd_ps(dm, _mm512_cvtepi32_ps(summ[t]), acc[t]);
        }
    }
    #pragma GCC unroll 8
    for (int t = 0; t < nt; t++)
        _mm512_storeu_ps(y + (size_t)t * y_stride, acc[t]);
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

void kq_x16_register_q4k_avx512(struct kq_x16_ops *ops)
{
    ops->tile = tile;
    ops->max_tile = TILE;
}
