/* kernels/kq_avx512.c: AVX-512 (F, BW, VL, DQ, VNNI; BF16 when present) dot kernels and
 * activation quantizers. Registered by kq_init when cpu.c finds the level; each kernel must
 * beat kq_ref.c (kq_bench) and match it (kq_test).
 *
 * Spec: ../shared/docs/gguf.md §4 (layouts) and §6 (numerics), mirrored from kq_ref.c. Integer
 * sums are exact: q·q8 pairs go through VPMADDUBSW (u8·s8 pairs, at most 2·63·128 = 16128, no
 * saturation) and VPDPWSSD with the sub-block scales, or VPDPBUSD; each 32-bit lane stays
 * below 2^24 so its conversion to float is exact. Only the order in which float block terms are
 * scaled and added differs from the reference, as it does in llama.cpp's own SIMD kernels.
 * Activation quantizers are bit-identical to the reference (same IEEE products, same ties-to-even
 * rounding, same choice of the extreme element). */
#include <immintrin.h>

#include "kernels/kq_impl.h"

static inline float f16(uint16_t h)
{
    return _cvtsh_ss(h); /* exact for every half, like kq_f16_to_f32 */
}

static inline __m512i load512(const void *p)
{
    return _mm512_loadu_si512(p);
}

static inline __m256i load256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline float hsum256(__m256 v)
{
    return _mm512_reduce_add_ps(_mm512_insertf32x8(_mm512_setzero_ps(), v, 0));
}

/* The 8 six-bit scales (low u64) and mins (high u64) of a Q4_K/Q5_K block, one per byte, in
 * sub-block order: kq_scale_min_k4 done with word operations. */
static inline void unpack_scales_k4(const uint8_t *s, uint64_t *sc, uint64_t *mn)
{
    uint32_t u[3];
    memcpy(u, s, 12);
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    *sc = (u[0] & 0x3f3f3f3f) | (uint64_t)sc_hi << 32;
    *mn = (u[1] & 0x3f3f3f3f) | (uint64_t)mn_hi << 32;
}

/* PSHUFB control turning 8 scale bytes (broadcast to every 128-bit lane) into 16-bit lanes:
 * scale lo in the low 256 bits, scale hi in the high 256 bits. */
static inline __m512i scale_ctrl(int lo, int hi)
{
    const __m256i l = _mm256_set1_epi16((int16_t)(uint16_t)(0x8000 | lo));
    const __m256i h = _mm256_set1_epi16((int16_t)(uint16_t)(0x8000 | hi));
    return _mm512_inserti64x4(_mm512_castsi256_si512(l), h, 1);
}

/* The 8 mins of a block as 16 words, each twice (m0 m0 m1 m1 ...): one VPMADDWD with the 16
 * bsums then gives Σ_g bsums[g]·m[g/2] per pair of bsums, the mins term, in 8 exact lanes. */
static inline __m256i mins_dup16(uint64_t mn)
{
    const __m128i dup = _mm_set_epi8(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    return _mm256_cvtepu8_epi16(_mm_shuffle_epi8(_mm_cvtsi64_si128((long long)mn), dup));
}

static inline __m256i mins_times_bsums(const struct kq_block_q8_K *y, __m256i mins16)
{
    return _mm256_madd_epi16(load256(KQ_Q8K_BSUMS(y)), mins16);
}

/* Q4_K, Q6_K and Q8_0 come as one body per format instantiated for 1 token (`dot`) and 4 tokens
 * (`dot4`): the weights are decoded once per block and every token then runs exactly the float
 * operations, in exactly the order, that the 1-token instance runs, so dot4 is bit-identical to
 * dot by construction. nt is a compile-time constant in each instance; the token loops unroll
 * and the per-token accumulators stay in registers (4 tokens need at most ~24 of the 32). */
#define MAX_NT 4
/* Token and sub-block loops carry "#pragma GCC unroll": at -O2 GCC otherwise keeps the per-token
 * accumulator arrays on the stack. */

/* Q4_K and Q5_K: 64 elements per step. The 32 bytes qs[32c..] are broadcast to both halves and
 * the high half shifted by 4, which lays out elements 64c..64c+63 in order, so the activations
 * load contiguously; the low half belongs to sub-block 2c, the high half to 2c+1. */
static KQ_ALWAYS_INLINE void dot_q4_K_n(int nt, int64_t n, float *s, const void *w,
                                        const void *const *a)
{
    const struct kq_block_q4_K *x = w;
    const struct kq_block_q8_K *y[MAX_NT];
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    const __m512i ctrl[4] = {scale_ctrl(0, 1), scale_ctrl(2, 3), scale_ctrl(4, 5),
                             scale_ctrl(6, 7)};
    __m512 acc[MAX_NT];
    __m256 accm[MAX_NT];
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        y[t] = a[t];
        acc[t] = _mm512_setzero_ps();
        accm[t] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint64_t sc, mn;
        unpack_scales_k4(x[i].scales, &sc, &mn);
        const __m512i scv = _mm512_set1_epi64((long long)sc);
        const __m256i mins16 = mins_dup16(mn);
        __m512i isum[MAX_NT];
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            isum[t] = _mm512_setzero_si512();
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512i q = _mm512_broadcast_i64x4(load256(x[i].qs + 32 * c));
            q = _mm512_and_si512(_mm512_srlv_epi16(q, shift), m4);
            const __m512i scl = _mm512_shuffle_epi8(scv, ctrl[c]);
            #pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const __m512i p = _mm512_maddubs_epi16(q, load512(y[t][i].qs + 64 * c));
                isum[t] = _mm512_dpwssd_epi32(isum[t], p, scl);
            }
        }
        const float xd = f16(x[i].d), xdmin = f16(x[i].dmin);
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const float d = xd * y[t][i].d, dmin = xdmin * y[t][i].d;
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), _mm512_set1_ps(d), acc[t]);
            accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins_times_bsums(&y[t][i], mins16)),
                                      _mm256_set1_ps(dmin), accm[t]);
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        s[t] = _mm512_reduce_add_ps(acc[t]) - hsum256(accm[t]);
}

static void dot_q4_K_q8_K_avx512(int64_t n, float *s, const void *w, const void *a)
{
    dot_q4_K_n(1, n, s, w, &a);
}

static void dot4_q4_K_q8_K_avx512(int64_t n, float *s, const void *w, const void *const a[4])
{
    dot_q4_K_n(4, n, s, w, a);
}

/* Q5_K: Q4_K plus the fifth bit, bit 2c (low half) or 2c+1 (high half) of qh[l], added as 16
 * under a byte mask. */
static void dot_q5_K_q8_K_avx512(int64_t n, float *s, const void *w, const void *a)
{
    const struct kq_block_q5_K *x = w;
    const struct kq_block_q8_K *y = a;
    const __m512i m4 = _mm512_set1_epi8(0x0F), sixteen = _mm512_set1_epi8(16);
    const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    const __m512i ctrl[4] = {scale_ctrl(0, 1), scale_ctrl(2, 3), scale_ctrl(4, 5),
                             scale_ctrl(6, 7)};
    __m512i hbit[4];
    #pragma GCC unroll 4
    for (int c = 0; c < 4; c++)
        hbit[c] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi8((char)(1 << 2 * c))),
                                     _mm256_set1_epi8((char)(1 << (2 * c + 1))), 1);
    __m512 acc = _mm512_setzero_ps();
    __m256 accm = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / QK_K; i++) {
        uint64_t sc, mn;
        unpack_scales_k4(x[i].scales, &sc, &mn);
        const __m512i scv = _mm512_set1_epi64((long long)sc);
        const __m512i qh = _mm512_broadcast_i64x4(load256(x[i].qh));
        __m512i isum = _mm512_setzero_si512();
        #pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512i q = _mm512_broadcast_i64x4(load256(x[i].qs + 32 * c));
            q = _mm512_and_si512(_mm512_srlv_epi16(q, shift), m4);
            q = _mm512_mask_add_epi8(q, _mm512_test_epi8_mask(qh, hbit[c]), q, sixteen);
            const __m512i p = _mm512_maddubs_epi16(q, load512(y[i].qs + 64 * c));
            isum = _mm512_dpwssd_epi32(isum, p, _mm512_shuffle_epi8(scv, ctrl[c]));
        }
        const float d = f16(x[i].d) * y[i].d, dmin = f16(x[i].dmin) * y[i].d;
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d), acc);
        accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins_times_bsums(&y[i], mins_dup16(mn))),
                               _mm256_set1_ps(dmin), accm);
    }
    *s = _mm512_reduce_add_ps(acc) - hsum256(accm);
}

/* Q6_K: per half of 128, ql gives elements 0..63 (low nibbles) and 64..127 (high nibbles) in
 * order; qh, broadcast to both 256-bit halves, supplies bits 4-5 with a shift per half. The
 * values are used unsigned (q+32) and 32·Σ scale·bsums is subtracted at the end. */
static KQ_ALWAYS_INLINE void dot_q6_K_n(int nt, int64_t n, float *s, const void *w,
                                        const void *const *a)
{
    const struct kq_block_q6_K *x = w;
    const struct kq_block_q8_K *y[MAX_NT];
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl_lo = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4);
    const __m512i shr_hi = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
    /* 16-bit lane j of idx[v] picks scale 4v + j/8: one scale per 16 elements */
    __m512i idx[4];
    const __m512i lane = _mm512_srli_epi16(
        _mm512_cvtepu8_epi16(_mm256_set_epi8(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20,
                                             19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7,
                                             6, 5, 4, 3, 2, 1, 0)), 3);
    for (int v = 0; v < 4; v++)
        idx[v] = _mm512_add_epi16(lane, _mm512_set1_epi16((int16_t)(4 * v)));
    __m512 acc[MAX_NT];
    __m256 accb[MAX_NT];
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        y[t] = a[t];
        acc[t] = _mm512_setzero_ps();
        accb[t] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < n / QK_K; i++) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)x[i].scales);
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        const __m512i scz = _mm512_castsi256_si512(sc16);
        __m512i isum[MAX_NT];
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            isum[t] = _mm512_setzero_si512();
        #pragma GCC unroll 4
        for (int h = 0; h < 2; h++) {
            const __m512i ql = load512(x[i].ql + 64 * h);
            const __m512i qh = _mm512_broadcast_i64x4(load256(x[i].qh + 32 * h));
            const __m512i lo =
                _mm512_or_si512(_mm512_and_si512(ql, m4),
                                _mm512_and_si512(_mm512_sllv_epi64(qh, shl_lo), m30));
            const __m512i hi =
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                _mm512_and_si512(_mm512_srlv_epi64(qh, shr_hi), m30));
            const __m512i s0 = _mm512_permutexvar_epi16(idx[2 * h], scz);
            const __m512i s1 = _mm512_permutexvar_epi16(idx[2 * h + 1], scz);
            #pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const __m512i p0 = _mm512_maddubs_epi16(lo, load512(y[t][i].qs + 128 * h));
                const __m512i p1 = _mm512_maddubs_epi16(hi, load512(y[t][i].qs + 128 * h + 64));
                isum[t] = _mm512_dpwssd_epi32(isum[t], p0, s0);
                isum[t] = _mm512_dpwssd_epi32(isum[t], p1, s1);
            }
        }
        const float xd = f16(x[i].d);
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const __m256i bias = _mm256_madd_epi16(load256(KQ_Q8K_BSUMS(&y[t][i])), sc16);
            const __m512 d = _mm512_set1_ps(xd * y[t][i].d);
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[t]), d, acc[t]);
            accb[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bias), _mm512_castps512_ps256(d),
                                      accb[t]);
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        s[t] = _mm512_reduce_add_ps(acc[t]) - 32.0f * hsum256(accb[t]);
}

static void dot_q6_K_q8_K_avx512(int64_t n, float *s, const void *w, const void *a)
{
    dot_q6_K_n(1, n, s, w, &a);
}

static void dot4_q6_K_q8_K_avx512(int64_t n, float *s, const void *w, const void *const a[4])
{
    dot_q6_K_n(4, n, s, w, a);
}

/* Two blocks of 32 per vector; lanes 0-7 hold block b, 8-15 block b+1. */
static inline __m512 pair_scales(float d0, float d1)
{
    return _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
}

/* Σ x·y for signed bytes with VPDPBUSD (unsigned × signed): (x+128)·y − 128·y, exact for every
 * byte value. xb is x already offset (x ^ 0x80), so dot4 offsets each weight vector once. */
static inline __m512i dot_i8_biased(__m512i xb, __m512i yq)
{
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const __m512i zero = _mm512_setzero_si512();
    const __m512i p = _mm512_dpbusd_epi32(zero, xb, yq);
    return _mm512_sub_epi32(p, _mm512_dpbusd_epi32(zero, bias, yq));
}

static inline __m512i load2x256(const void *p0, const void *p1)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(load256(p0)), load256(p1), 1);
}

static KQ_ALWAYS_INLINE void dot_q8_0_n(int nt, int64_t n, float *s, const void *w,
                                        const void *const *a)
{
    const struct kq_block_q8_0 *x = w;
    const struct kq_block_q8_0 *y[MAX_NT];
    const int64_t nb = n / QK;
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    __m512 acc[MAX_NT];
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        y[t] = a[t];
        acc[t] = _mm512_setzero_ps();
    }
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        const __m512i xb = _mm512_xor_si512(load2x256(x[b].qs, x[b + 1].qs), bias);
        const float xd0 = f16(x[b].d), xd1 = f16(x[b + 1].d);
        #pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const __m512i yq = load2x256(y[t][b].qs, y[t][b + 1].qs);
            const __m512 dd = pair_scales(xd0 * f16(y[t][b].d), xd1 * f16(y[t][b + 1].d));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot_i8_biased(xb, yq)), dd, acc[t]);
        }
    }
    #pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        float sum = _mm512_reduce_add_ps(acc[t]);
        for (int64_t c = b; c < nb; c++) { /* odd block count */
            int sumi = 0;
            for (int j = 0; j < QK; j++)
                sumi += x[c].qs[j] * y[t][c].qs[j];
            sum += sumi * (f16(x[c].d) * f16(y[t][c].d));
        }
        s[t] = sum;
    }
}

static void dot_q8_0_q8_0_avx512(int64_t n, float *s, const void *w, const void *a)
{
    dot_q8_0_n(1, n, s, w, &a);
}

static void dot4_q8_0_q8_0_avx512(int64_t n, float *s, const void *w, const void *const a[4])
{
    dot_q8_0_n(4, n, s, w, a);
}

/* Q4_0: nibbles used unsigned, Σ(q-8)·y = Σq·y − 8·Σy. The 16 bytes of each block are
 * broadcast to two 128-bit lanes, the second shifted by 4: elements 0..31 in order. */
static void dot_q4_0_q8_0_avx512(int64_t n, float *s, const void *w, const void *a)
{
    const struct kq_block_q4_0 *x = w;
    const struct kq_block_q8_0 *y = a;
    const int64_t nb = n / QK;
    const __m512i m4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    const __m512i shift = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
    const __m512i zero = _mm512_setzero_si512();
    __m512 acc = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        const __m256i q0 = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x[b].qs));
        const __m256i q1 =
            _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)x[b + 1].qs));
        __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(q0), q1, 1);
        q = _mm512_and_si512(_mm512_srlv_epi64(q, shift), m4);
        const __m512i yq = _mm512_inserti64x4(_mm512_castsi256_si512(load256(y[b].qs)),
                                              load256(y[b + 1].qs), 1);
        const __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, q, yq),
                                           _mm512_dpbusd_epi32(zero, eight, yq));
        const __m512 dd = pair_scales(f16(x[b].d) * f16(y[b].d), f16(x[b + 1].d) * f16(y[b + 1].d));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), dd, acc);
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; b < nb; b++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += ((x[b].qs[j] & 0xF) - 8) * y[b].qs[j] +
                    ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + 16];
        sum += sumi * f16(x[b].d) * f16(y[b].d);
    }
    *s = sum;
}

/* Float dots: 64 elements per step in four accumulators; the tail through masked loads. Half
 * and bfloat16 products are exact in f32 (11- and 8-bit significands), so FMA rounds exactly
 * as the reference's multiply-then-add. */
static inline __m512 load_f16x16(const uint8_t *p, __mmask16 m)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

static inline __m512 load_bf16x16(const uint8_t *p, __mmask16 m)
{
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

static inline __m512 load_f32x16(const uint8_t *p, __mmask16 m)
{
    return _mm512_maskz_loadu_ps(m, p);
}

#define DEFINE_FLOAT_DOT(fname, load, elem_bytes)                                          \
    static void fname(int64_t n, float *s, const void *w, const void *a)                   \
    {                                                                                      \
        const uint8_t *x = w, *y = a;                                                      \
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),    \
                         _mm512_setzero_ps()};                                             \
        int64_t i = 0;                                                                     \
        for (; i + 64 <= n; i += 64)                                                       \
            for (int k = 0; k < 4; k++) {                                                  \
                const size_t o = (size_t)(i + 16 * k) * (elem_bytes);                      \
                acc[k] = _mm512_fmadd_ps(load(x + o, 0xFFFF), load(y + o, 0xFFFF), acc[k]); \
            }                                                                              \
        for (; i < n; i += 16) {                                                           \
            const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);   \
            const size_t o = (size_t)i * (elem_bytes);                                     \
            acc[0] = _mm512_fmadd_ps(load(x + o, m), load(y + o, m), acc[0]);              \
        }                                                                                  \
        const __m512 t = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]),                      \
                                       _mm512_add_ps(acc[2], acc[3]));                     \
        *s = (float)(double)_mm512_reduce_add_ps(t);                                       \
    }

DEFINE_FLOAT_DOT(dot_f16_avx512, load_f16x16, 2)
DEFINE_FLOAT_DOT(dot_bf16_avx512, load_bf16x16, 2)
DEFINE_FLOAT_DOT(dot_f32_avx512, load_f32x16, 4)

/* BF16 with VDPBF16PS: 32 pairs per instruction. It treats bf16 subnormals (|x| < 1.2e-38) as
 * zero, a difference far below the float noise of the sum. */
static void dot_bf16_avx512bf16(int64_t n, float *s, const void *w, const void *a)
{
    const uint8_t *x = w, *y = a;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)load512(x + 2 * i), (__m512bh)load512(y + 2 * i));
        acc1 = _mm512_dpbf16_ps(acc1, (__m512bh)load512(x + 2 * i + 64),
                                (__m512bh)load512(y + 2 * i + 64));
    }
    for (; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? 0xFFFFFFFFu : (__mmask32)((1u << (n - i)) - 1);
        acc0 = _mm512_dpbf16_ps(acc0, (__m512bh)_mm512_maskz_loadu_epi16(m, x + 2 * i),
                                (__m512bh)_mm512_maskz_loadu_epi16(m, y + 2 * i));
    }
    *s = (float)(double)_mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

/* ---- activation quantizers, bit-identical to kq_ref.c ---- */

static inline __m512 abs_ps(__m512 v)
{
    return _mm512_abs_ps(v);
}

/* Round to nearest even, as kq_nearest_int, without depending on MXCSR. */
static inline __m512i round_even(__m512 v)
{
    return _mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

static void quantize_q8_0_avx512(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q8_0 *b = blocks;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(abs_ps(v0), abs_ps(v1)));
        b[i].d = kq_f32_to_f16(amax / 127.f);
        const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
        _mm_storeu_si128((__m128i *)b[i].qs,
                         _mm512_cvtsepi32_epi8(round_even(_mm512_mul_ps(v0, id))));
        _mm_storeu_si128((__m128i *)(b[i].qs + 16),
                         _mm512_cvtsepi32_epi8(round_even(_mm512_mul_ps(v1, id))));
    }
}

static void quantize_q8_K_avx512(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q8_K *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m512 m = _mm512_setzero_ps();
        for (int j = 0; j < QK_K; j += 16)
            m = _mm512_max_ps(m, abs_ps(_mm512_loadu_ps(x + j)));
        const float amax = _mm512_reduce_max_ps(m);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof(b[i]));
            continue;
        }
        /* the first element of largest magnitude, sign included, as the reference picks it */
        float max = 0;
        for (int j = 0; j < QK_K; j += 16) {
            const __mmask16 hit = _mm512_cmp_ps_mask(abs_ps(_mm512_loadu_ps(x + j)),
                                                     _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (hit) {
                max = x[j + __builtin_ctz(hit)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m512 vs = _mm512_set1_ps(iscale);
        const __m512i lim = _mm512_set1_epi32(127);
        int16_t bsums[16];
        for (int j = 0; j < QK_K; j += 16) {
            const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + j), vs);
            const __m512i q = _mm512_min_epi32(round_even(v), lim);
            _mm_storeu_si128((__m128i *)(b[i].qs + j), _mm512_cvtsepi32_epi8(q));
            bsums[j / 16] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        memcpy((uint8_t *)&b[i] + offsetof(struct kq_block_q8_K, bsums), bsums, sizeof(bsums));
        b[i].d = 1 / iscale;
    }
}

/* Attention's weighted V sum: 64 outputs at a time stay in registers across all rows; per
 * element the terms are added in row order with a separate multiply and add, as the reference. */
static void mad_rows_f16_avx512(int64_t n, int64_t n_rows, float *y, const float *p,
                                const uint16_t *v, size_t v_stride)
{
    for (int64_t i = 0; i < n; i += 64) {
        __mmask16 m[4];
        __m512 acc[4];
        for (int k = 0; k < 4; k++) {
            const int64_t left = n - i - 16 * k;
            m[k] = left >= 16 ? 0xFFFF : left <= 0 ? 0 : (__mmask16)((1u << left) - 1);
            acc[k] = _mm512_maskz_loadu_ps(m[k], y + i + 16 * k);
        }
        const uint16_t *row = v + i;
        for (int64_t j = 0; j < n_rows; j++, row += v_stride) {
            const __m512 pj = _mm512_set1_ps(p[j]);
            #pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
            {
                const __m512 vk = load_f16x16((const uint8_t *)(row + 16 * k), m[k]);
                acc[k] = _mm512_add_ps(acc[k], _mm512_mul_ps(pj, vk));
            }
        }
        for (int k = 0; k < 4; k++)
            _mm512_mask_storeu_ps(y + i + 16 * k, m[k], acc[k]);
    }
}

void kq_register_avx512(struct kq_format *table, struct kq_vec *vec, const struct cpu_features *f)
{
    vec->mad_rows_f16 = mad_rows_f16_avx512;
    table[KQ_Q4_K].dot = dot_q4_K_q8_K_avx512;
    table[KQ_Q5_K].dot = dot_q5_K_q8_K_avx512;
    table[KQ_Q6_K].dot = dot_q6_K_q8_K_avx512;
    table[KQ_Q8_0].dot = dot_q8_0_q8_0_avx512;
    table[KQ_Q4_K].dot4 = dot4_q4_K_q8_K_avx512;
    table[KQ_Q6_K].dot4 = dot4_q6_K_q8_K_avx512;
    table[KQ_Q8_0].dot4 = dot4_q8_0_q8_0_avx512;
    table[KQ_Q4_0].dot = dot_q4_0_q8_0_avx512;
    table[KQ_F16].dot = dot_f16_avx512;
    table[KQ_F32].dot = dot_f32_avx512;
    table[KQ_BF16].dot = f->avx512_bf16 ? dot_bf16_avx512bf16 : dot_bf16_avx512;
    table[KQ_Q8_0].from_f32 = quantize_q8_0_avx512;
    table[KQ_Q8_K].from_f32 = quantize_q8_K_avx512;
}
