/* kernels/kq_avx2.c: AVX2 + FMA + F16C dot kernels and activation quantizers, for x86 CPUs
 * without AVX-512 (and as the fallback when MOEPOOL_SIMD=avx2). Registered by kq_init; each
 * kernel must beat kq_ref.c (kq_bench) and match it (kq_test).
 *
 * Spec: ../shared/docs/gguf.md §4 and §6, mirrored from kq_ref.c; the scheme is that of
 * llama.cpp's arch/x86/quants.c AVX2 paths (kq_avx512.c has no Q5_0 kernel, so this one
 * serves the AVX-512 level too). Integer sums are exact: VPMADDUBSW multiplies
 * unsigned weight codes (< 64) by signed activation bytes in pairs (at most 2·63·128, no
 * saturation), VPMADDWD applies the sub-block scale. The Q8_0, Q4_0 and Q5_0 kernels use the
 * sign trick (|x| times y with x's sign), exact while activation bytes are in [-127, 127],
 * which every quantizer here produces (-128 never appears: |round(x·127/amax)| <= 127). Only the
 * order of float block terms differs from the reference. */
#include <immintrin.h>

#include "kernels/kq_impl.h"

static inline float f16(uint16_t h)
{
    return _cvtsh_ss(h);
}

static inline __m256i load256(const void *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

static inline __m128i load128(const void *p)
{
    return _mm_loadu_si128((const __m128i *)p);
}

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* Same as kq_avx512.c: the 8 scales (low u64) and mins (high u64) of a Q4_K/Q5_K block. */
static inline void unpack_scales_k4(const uint8_t *s, uint64_t *sc, uint64_t *mn)
{
    uint32_t u[3];
    memcpy(u, s, 12);
    const uint32_t sc_hi = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
    const uint32_t mn_hi = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
    *sc = (u[0] & 0x3f3f3f3f) | (uint64_t)sc_hi << 32;
    *mn = (u[1] & 0x3f3f3f3f) | (uint64_t)mn_hi << 32;
}

/* PSHUFB control giving 16-bit lanes equal to byte j of each 128-bit lane (zero-extended). */
static inline __m256i byte_to_i16(int j)
{
    return _mm256_set1_epi16((int16_t)(uint16_t)(0x8000 | j));
}

/* PSHUFB control giving 16-bit lanes equal to 16-bit element lo (low lane) or hi (high lane). */
static inline __m256i i16_pick(int lo, int hi)
{
    const int16_t l = (int16_t)((2 * lo) | ((2 * lo + 1) << 8));
    const int16_t h = (int16_t)((2 * hi) | ((2 * hi + 1) << 8));
    return _mm256_setr_m128i(_mm_set1_epi16(l), _mm_set1_epi16(h));
}

static inline __m256i mins_times_bsums(const struct kq_block_q8_K *y, uint64_t mn)
{
    const __m256i pairs = _mm256_madd_epi16(load256(KQ_Q8K_BSUMS(y)), _mm256_set1_epi16(1));
    return _mm256_mullo_epi32(pairs, _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn)));
}

/* Q4_K, Q5_K, Q6_K and Q8_0 come as one body per format instantiated for 1 token (`dot`) and 4
 * tokens (`dot4`): weights are decoded once per block, then every token runs exactly the float
 * operations, in the same order, as the 1-token instance, so dot4 is bit-identical to dot by
 * construction. "#pragma GCC unroll" on the token loops keeps per-token state in registers. */
#define MAX_NT 4

/* Q4_K / Q5_K: chunk c of 64 elements is qs[32c..32c+31]: low nibbles are sub-block 2c, high
 * nibbles 2c+1. With has_qh (Q5_K) the fifth bit, bit 2c or 2c+1 of qh[l], adds 16. */
static KQ_ALWAYS_INLINE void dot_kx_n(int nt, int64_t nb, float *s, const uint8_t *blocks,
                                      size_t block_bytes, size_t qs_off, const void *const *a,
                                      bool has_qh)
{
    const struct kq_block_q8_K *y[MAX_NT];
    const __m256i m4 = _mm256_set1_epi8(0x0F), sixteen = _mm256_set1_epi8(16);
    __m256 acc[MAX_NT], accm[MAX_NT];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        y[t] = a[t];
        acc[t] = _mm256_setzero_ps();
        accm[t] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = blocks + (size_t)i * block_bytes;
        const struct kq_block_q4_K *hdr = (const void *)blk; /* d, dmin, scales shared */
        uint64_t sc, mn;
        unpack_scales_k4(hdr->scales, &sc, &mn);
        const __m256i scv = _mm256_set1_epi64x((long long)sc);
        const __m256i qh = has_qh ? load256(blk + offsetof(struct kq_block_q5_K, qh))
                                  : _mm256_setzero_si256();
        __m256i isum[MAX_NT];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            isum[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m256i q = load256(blk + qs_off + 32 * c);
            __m256i lo = _mm256_and_si256(q, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            if (has_qh) {
                const __m256i b0 = _mm256_set1_epi8((char)(1 << 2 * c));
                const __m256i b1 = _mm256_set1_epi8((char)(1 << (2 * c + 1)));
                lo = _mm256_or_si256(
                    lo, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b0), b0), sixteen));
                hi = _mm256_or_si256(
                    hi, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, b1), b1), sixteen));
            }
            const __m256i s0 = _mm256_shuffle_epi8(scv, byte_to_i16(2 * c));
            const __m256i s1 = _mm256_shuffle_epi8(scv, byte_to_i16(2 * c + 1));
#pragma GCC unroll 4
            for (int t = 0; t < nt; t++) {
                const int8_t *q8 = y[t][i].qs + 64 * c;
                const __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load256(q8)), s0);
                const __m256i p1 =
                    _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load256(q8 + 32)), s1);
                isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(p0, p1));
            }
        }
        const float xd = f16(hdr->d), xdmin = f16(hdr->dmin);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const float d = xd * y[t][i].d, dmin = xdmin * y[t][i].d;
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), _mm256_set1_ps(d), acc[t]);
            accm[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mins_times_bsums(&y[t][i], mn)),
                                      _mm256_set1_ps(dmin), accm[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        s[t] = hsum_ps(acc[t]) - hsum_ps(accm[t]);
}

static void dot_q4_K_q8_K_avx2(int64_t n, float *s, const void *w, const void *a)
{
    dot_kx_n(1, n / QK_K, s, w, sizeof(struct kq_block_q4_K),
             offsetof(struct kq_block_q4_K, qs), &a, false);
}

static void dot4_q4_K_q8_K_avx2(int64_t n, float *s, const void *w, const void *const a[4])
{
    dot_kx_n(4, n / QK_K, s, w, sizeof(struct kq_block_q4_K),
             offsetof(struct kq_block_q4_K, qs), a, false);
}

static void dot_q5_K_q8_K_avx2(int64_t n, float *s, const void *w, const void *a)
{
    dot_kx_n(1, n / QK_K, s, w, sizeof(struct kq_block_q5_K),
             offsetof(struct kq_block_q5_K, qs), &a, true);
}

/* Q6_K: values used unsigned (q+32); 32·Σ scale·bsums subtracted at the end. */
static KQ_ALWAYS_INLINE void dot_q6_K_n(int nt, int64_t n, float *s, const void *w,
                                        const void *const *a)
{
    const struct kq_block_q6_K *x = w;
    const struct kq_block_q8_K *y[MAX_NT];
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    __m256 acc[MAX_NT], accb[MAX_NT];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        y[t] = a[t];
        acc[t] = _mm256_setzero_ps();
        accb[t] = _mm256_setzero_ps();
    }
    for (int64_t i = 0; i < n / QK_K; i++) {
        __m256i isum[MAX_NT];
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++)
            isum[t] = _mm256_setzero_si256();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h;
            const __m256i scv = _mm256_broadcastsi128_si256(
                _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(x[i].scales + 8 * h))));
            const __m256i l0 = load256(ql), l1 = load256(ql + 32);
            const __m256i qh = load256(x[i].qh + 32 * h);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4),
                                   _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_and_si256(qh, m30));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                const __m256i sc = _mm256_shuffle_epi8(scv, i16_pick(2 * k, 2 * k + 1));
#pragma GCC unroll 4
                for (int t = 0; t < nt; t++) {
                    const int8_t *q8 = y[t][i].qs + 128 * h;
                    const __m256i p = _mm256_maddubs_epi16(q[k], load256(q8 + 32 * k));
                    isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p, sc));
                }
            }
        }
        const __m256i sc16 = _mm256_cvtepi8_epi16(load128(x[i].scales));
        const float xd = f16(x[i].d);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const __m256i bias = _mm256_madd_epi16(load256(KQ_Q8K_BSUMS(&y[t][i])), sc16);
            const __m256 d = _mm256_set1_ps(xd * y[t][i].d);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), d, acc[t]);
            accb[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(bias), d, accb[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        s[t] = hsum_ps(acc[t]) - 32.0f * hsum_ps(accb[t]);
}

static void dot_q6_K_q8_K_avx2(int64_t n, float *s, const void *w, const void *a)
{
    dot_q6_K_n(1, n, s, w, &a);
}

static void dot4_q6_K_q8_K_avx2(int64_t n, float *s, const void *w, const void *const a[4])
{
    dot_q6_K_n(4, n, s, w, a);
}

/* Σ x·y over 32 signed bytes as 8 int32 lanes, by the sign trick (see the file comment). */
static inline __m256i dot_i8(__m256i x, __m256i y)
{
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Q8_0: |x| is taken once per weight block; each token then applies x's signs to its bytes. */
static KQ_ALWAYS_INLINE void dot_q8_0_n(int nt, int64_t n, float *s, const void *w,
                                        const void *const *a)
{
    const struct kq_block_q8_0 *x = w;
    const struct kq_block_q8_0 *y[MAX_NT];
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[MAX_NT];
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++) {
        y[t] = a[t];
        acc[t] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < n / QK; b++) {
        const __m256i xq = load256(x[b].qs), xabs = _mm256_sign_epi8(xq, xq);
        const float xd = f16(x[b].d);
#pragma GCC unroll 4
        for (int t = 0; t < nt; t++) {
            const __m256i p = _mm256_madd_epi16(
                _mm256_maddubs_epi16(xabs, _mm256_sign_epi8(load256(y[t][b].qs), xq)), ones);
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(xd * f16(y[t][b].d)),
                                     acc[t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < nt; t++)
        s[t] = hsum_ps(acc[t]);
}

static void dot_q8_0_q8_0_avx2(int64_t n, float *s, const void *w, const void *a)
{
    dot_q8_0_n(1, n, s, w, &a);
}

static void dot4_q8_0_q8_0_avx2(int64_t n, float *s, const void *w, const void *const a[4])
{
    dot_q8_0_n(4, n, s, w, a);
}

static void dot_q4_0_q8_0_avx2(int64_t n, float *s, const void *w, const void *a)
{
    const struct kq_block_q4_0 *x = w;
    const struct kq_block_q8_0 *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++) {
        const __m128i q = load128(x[b].qs);
        __m256i v = _mm256_and_si256(_mm256_setr_m128i(q, _mm_srli_epi16(q, 4)), m4);
        v = _mm256_sub_epi8(v, eight);
        const __m256i p = dot_i8(v, load256(y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16(x[b].d) * f16(y[b].d)),
                              acc);
    }
    *s = hsum_ps(acc);
}

/* Q5_0: the 32 fifth bits of qh spread to one byte each (0x00 or 0xFF), element j taking bit j;
 * low nibbles are elements 0..15, high nibbles 16..31, as in Q4_0. */
static void dot_q5_0_q8_0_avx2(int64_t n, float *s, const void *w, const void *a)
{
    const struct kq_block_q5_0 *x = w;
    const struct kq_block_q8_0 *y = a;
    const __m256i m4 = _mm256_set1_epi8(0x0F), sixteen = _mm256_set1_epi8(16);
    const __m256i spread = _mm256_setr_epi64x(0, 0x0101010101010101, 0x0202020202020202,
                                              0x0303030303030303);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < n / QK; b++) {
        uint32_t qh;
        memcpy(&qh, x[b].qh, 4);
        __m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), spread);
        hb = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit), sixteen);
        const __m128i q = load128(x[b].qs);
        __m256i v = _mm256_and_si256(_mm256_setr_m128i(q, _mm_srli_epi16(q, 4)), m4);
        v = _mm256_sub_epi8(_mm256_or_si256(v, hb), sixteen);
        const __m256i p = dot_i8(v, load256(y[b].qs));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(f16(x[b].d) * f16(y[b].d)),
                              acc);
    }
    *s = hsum_ps(acc);
}

/* Float dots: 32 elements per step in four accumulators, a scalar tail. Half and bfloat16
 * products are exact in f32, so FMA equals the reference's multiply-then-add per term. */
static inline __m256 load_f16x8(const uint8_t *p)
{
    return _mm256_cvtph_ps(load128(p));
}

static inline __m256 load_bf16x8(const uint8_t *p)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(load128(p)), 16));
}

static inline __m256 load_f32x8(const uint8_t *p)
{
    return _mm256_loadu_ps((const float *)(const void *)p);
}

static inline float tail_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return f16(h);
}

static inline float tail_bf16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return kq_bf16_to_f32(h);
}

static inline float tail_f32(const uint8_t *p)
{
    float f;
    memcpy(&f, p, 4);
    return f;
}

#define DEFINE_FLOAT_DOT(fname, load, tail, elem_bytes)                                    \
    static void fname(int64_t n, float *s, const void *w, const void *a)                   \
    {                                                                                      \
        const uint8_t *x = w, *y = a;                                                      \
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),    \
                         _mm256_setzero_ps()};                                             \
        int64_t i = 0;                                                                     \
        for (; i + 32 <= n; i += 32)                                                       \
            for (int k = 0; k < 4; k++) {                                                  \
                const size_t o = (size_t)(i + 8 * k) * (elem_bytes);                       \
                acc[k] = _mm256_fmadd_ps(load(x + o), load(y + o), acc[k]);                \
            }                                                                              \
        const __m256 t = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]),                      \
                                       _mm256_add_ps(acc[2], acc[3]));                     \
        double sum = hsum_ps(t);                                                           \
        for (; i < n; i++)                                                                 \
            sum += (double)(tail(x + (size_t)i * (elem_bytes)) *                           \
                            tail(y + (size_t)i * (elem_bytes)));                           \
        *s = (float)sum;                                                                   \
    }

DEFINE_FLOAT_DOT(dot_f16_avx2, load_f16x8, tail_f16, 2)
DEFINE_FLOAT_DOT(dot_bf16_avx2, load_bf16x8, tail_bf16, 2)
DEFINE_FLOAT_DOT(dot_f32_avx2, load_f32x8, tail_f32, 4)

/* ---- activation quantizers, bit-identical to kq_ref.c ---- */

static inline __m256 abs_ps(__m256 v)
{
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v);
}

static inline __m256i round_even(__m256 v)
{
    return _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

static inline float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* 32 int32 (in [-127, 127]) to 32 bytes in order: the packs work per 128-bit lane. */
static inline __m256i pack32(__m256i a, __m256i b, __m256i c, __m256i d)
{
    const __m256i ab = _mm256_packs_epi32(a, b), cd = _mm256_packs_epi32(c, d);
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd),
                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void quantize_q8_0_avx2(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q8_0 *b = blocks;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        __m256 v[4], m = _mm256_setzero_ps();
        for (int k = 0; k < 4; k++) {
            v[k] = _mm256_loadu_ps(x + 8 * k);
            m = _mm256_max_ps(m, abs_ps(v[k]));
        }
        const float amax = hmax_ps(m);
        b[i].d = kq_f32_to_f16(amax / 127.f);
        const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = round_even(_mm256_mul_ps(v[k], id));
        _mm256_storeu_si256((__m256i *)b[i].qs, pack32(q[0], q[1], q[2], q[3]));
    }
}

static void quantize_q8_K_avx2(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q8_K *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        __m256 m = _mm256_setzero_ps();
        for (int j = 0; j < QK_K; j += 8)
            m = _mm256_max_ps(m, abs_ps(_mm256_loadu_ps(x + j)));
        const float amax = hmax_ps(m);
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof(b[i]));
            continue;
        }
        float max = 0; /* the first element of largest magnitude, as the reference picks it */
        for (int j = 0; j < QK_K; j += 8) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + j)),
                                                             _mm256_set1_ps(amax), _CMP_EQ_OQ));
            if (hit) {
                max = x[j + __builtin_ctz((unsigned)hit)];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m256 vs = _mm256_set1_ps(iscale);
        const __m256i lim = _mm256_set1_epi32(127);
        int16_t bsums[16];
        for (int j = 0; j < QK_K; j += 32) {
            __m256i q[4];
            for (int k = 0; k < 4; k++)
                q[k] = _mm256_min_epi32(
                    round_even(_mm256_mul_ps(_mm256_loadu_ps(x + j + 8 * k), vs)), lim);
            _mm256_storeu_si256((__m256i *)(b[i].qs + j), pack32(q[0], q[1], q[2], q[3]));
            bsums[j / 16] = (int16_t)hsum_epi32(_mm256_add_epi32(q[0], q[1]));
            bsums[j / 16 + 1] = (int16_t)hsum_epi32(_mm256_add_epi32(q[2], q[3]));
        }
        memcpy((uint8_t *)&b[i] + offsetof(struct kq_block_q8_K, bsums), bsums, sizeof(bsums));
        b[i].d = 1 / iscale;
    }
}

static inline const uint8_t *half_at(const uint16_t *p)
{
    return (const uint8_t *)p;
}

/* Attention's weighted V sum: 32 outputs at a time stay in registers across all rows (a scalar
 * tail for n not a multiple of 8); per element the terms are added in row order with a separate
 * multiply and add, as the reference. */
static void mad_rows_f16_avx2(int64_t n, int64_t n_rows, float *y, const float *p,
                              const uint16_t *v, size_t v_stride)
{
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 acc[4];
        for (int k = 0; k < 4; k++)
            acc[k] = _mm256_loadu_ps(y + i + 8 * k);
        const uint16_t *row = v + i;
        for (int64_t j = 0; j < n_rows; j++, row += v_stride) {
            const __m256 pj = _mm256_set1_ps(p[j]);
            #pragma GCC unroll 4
            for (int k = 0; k < 4; k++)
                acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(pj, load_f16x8(half_at(row + 8 * k))));
        }
        for (int k = 0; k < 4; k++)
            _mm256_storeu_ps(y + i + 8 * k, acc[k]);
    }
    for (; i + 8 <= n; i += 8) {
        __m256 acc = _mm256_loadu_ps(y + i);
        for (int64_t j = 0; j < n_rows; j++)
            acc = _mm256_add_ps(acc, _mm256_mul_ps(_mm256_set1_ps(p[j]),
                                                   load_f16x8(half_at(v + j * v_stride + i))));
        _mm256_storeu_ps(y + i, acc);
    }
    if (i < n)
        kq_mad_rows_f16_ref(n - i, n_rows, y + i, p, v + i, v_stride);
}

void kq_register_avx2(struct kq_format *table, struct kq_vec *vec)
{
    vec->mad_rows_f16 = mad_rows_f16_avx2;
    table[KQ_Q4_K].dot = dot_q4_K_q8_K_avx2;
    table[KQ_Q5_K].dot = dot_q5_K_q8_K_avx2;
    table[KQ_Q6_K].dot = dot_q6_K_q8_K_avx2;
    table[KQ_Q8_0].dot = dot_q8_0_q8_0_avx2;
    table[KQ_Q4_K].dot4 = dot4_q4_K_q8_K_avx2;
    table[KQ_Q6_K].dot4 = dot4_q6_K_q8_K_avx2;
    table[KQ_Q8_0].dot4 = dot4_q8_0_q8_0_avx2;
    table[KQ_Q4_0].dot = dot_q4_0_q8_0_avx2;
    table[KQ_Q5_0].dot = dot_q5_0_q8_0_avx2;
    table[KQ_F16].dot = dot_f16_avx2;
    table[KQ_BF16].dot = dot_bf16_avx2;
    table[KQ_F32].dot = dot_f32_avx2;
    table[KQ_Q8_0].from_f32 = quantize_q8_0_avx2;
    table[KQ_Q8_K].from_f32 = quantize_q8_K_avx2;
}
