/* kernels/kq_ref.c: the reference format table: names and block sizes of every GGUF type id,
 * and portable C11 kernels (dequantize, convert activations, dot) for the formats moepool
 * computes with. This file is the specification the SIMD files are tested against.
 *
 * Spec: ../shared/docs/gguf.md §2-§6. Numerics mirror llama.cpp's CPU backend on x86:
 * ggml-quants.c (dequantize_row_*, quantize_row_q8_K_ref), ggml-cpu/arch/x86/quants.c
 * (quantize_row_q8_0: round half to even), ggml-cpu/quants.c (ggml_vec_dot_*_generic: integer
 * sums per block, then float scaling in the same order), ggml-cpu/vec.cpp (F16/BF16 dots:
 * products and lane sums in f32, lanes reduced into double). Weight quantizers live in
 * kq_quantize.c. */
#include <math.h>
#include <string.h>

#include "kernels/kq_impl.h"

/* ---- scalar conversions (gguf.md §3) ---- */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

float kq_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;

    if (exp == 0x1F) /* inf or NaN: the payload moves up with the mantissa */
        return f32_from_bits(sign | 0x7F800000 | (man << 13));
    if (exp != 0)
        return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
    /* zero or subnormal: man · 2^-24 is exact in f32 */
    float v = (float)man * 0x1p-24f;
    return f32_from_bits(sign | f32_bits(v));
}

uint16_t kq_f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7FFFFFFF;

    if (ax > 0x7F800000) /* NaN: ggml_compute_fp32_to_fp16 returns the canonical quiet NaN */
        return sign | 0x7E00;
    if (ax >= 0x477FF000) /* >= 65520 rounds to infinity (65504 is the largest half) */
        return sign | 0x7C00;
    if (ax >= 0x38800000) { /* normal half: rebias the exponent, round 13 bits to even */
        uint32_t r = ax - 0x38000000;
        r = (r + 0xFFF + ((r >> 13) & 1)) >> 13;
        return sign | (uint16_t)r;
    }
    /* subnormal half (or zero): round |f|·2^24 to an integer, ties to even; 1024 becomes the
     * smallest normal, whose encoding is the same number */
    float v = f32_from_bits(ax) * 0x1p24f;
    return sign | (uint16_t)kq_nearest_int(v);
}

float kq_bf16_to_f32(uint16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t kq_f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFF) > 0x7F800000) /* NaN: force quiet, as ggml_compute_fp32_to_bf16 */
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

/* ---- dequantization (gguf.md §4; ggml-quants.c dequantize_row_*) ---- */

static void f32_to_f32(const void *blocks, float *y, int64_t n)
{
    memcpy(y, blocks, (size_t)n * sizeof(float));
}

/* F16 and BF16 rows differ only in how a half widens to float. */
static void halves_to_f32(const void *blocks, float *y, int64_t n, float (*widen)(uint16_t))
{
    const uint8_t *p = blocks;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        y[i] = widen(h);
    }
}

static void f16_to_f32_row(const void *blocks, float *y, int64_t n)
{
    halves_to_f32(blocks, y, n, kq_f16_to_f32);
}

static void bf16_to_f32_row(const void *blocks, float *y, int64_t n)
{
    halves_to_f32(blocks, y, n, kq_bf16_to_f32);
}

static void q4_0_to_f32(const void *blocks, float *y, int64_t n)
{
    const struct kq_block_q4_0 *b = blocks;
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        const float d = kq_f16_to_f32(b[i].d);
        for (int j = 0; j < 16; j++) {
            y[j] = ((b[i].qs[j] & 0xF) - 8) * d;
            y[j + 16] = ((b[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void q5_0_to_f32(const void *blocks, float *y, int64_t n)
{
    const struct kq_block_q5_0 *b = blocks;
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        const float d = kq_f16_to_f32(b[i].d);
        uint32_t qh;
        memcpy(&qh, b[i].qh, 4);
        for (int j = 0; j < 16; j++) {
            int hi0 = (qh >> j) & 1, hi1 = (qh >> (j + 16)) & 1;
            y[j] = (((b[i].qs[j] & 0xF) | (hi0 << 4)) - 16) * d;
            y[j + 16] = (((b[i].qs[j] >> 4) | (hi1 << 4)) - 16) * d;
        }
    }
}

static void q8_0_to_f32(const void *blocks, float *y, int64_t n)
{
    const struct kq_block_q8_0 *b = blocks;
    for (int64_t i = 0; i < n / QK; i++, y += QK) {
        const float d = kq_f16_to_f32(b[i].d);
        for (int j = 0; j < QK; j++)
            y[j] = b[i].qs[j] * d;
    }
}

static void q4_K_to_f32(const void *blocks, float *y, int64_t n)
{
    const struct kq_block_q4_K *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = kq_f16_to_f32(b[i].d), dmin = kq_f16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs;
        for (int c = 0; c < 4; c++, q += 32) {
            uint8_t sc, m;
            kq_scale_min_k4(2 * c, b[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            kq_scale_min_k4(2 * c + 1, b[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

static void q5_K_to_f32(const void *blocks, float *y, int64_t n)
{
    const struct kq_block_q5_K *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = kq_f16_to_f32(b[i].d), dmin = kq_f16_to_f32(b[i].dmin);
        const uint8_t *q = b[i].qs, *qh = b[i].qh;
        for (int c = 0; c < 4; c++, q += 32) {
            uint8_t sc, m;
            kq_scale_min_k4(2 * c, b[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            kq_scale_min_k4(2 * c + 1, b[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * ((q[l] & 0xF) + (((qh[l] >> (2 * c)) & 1) << 4)) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * ((q[l] >> 4) + (((qh[l] >> (2 * c + 1)) & 1) << 4)) - m2;
        }
    }
}

/* The 256 signed 6-bit values of a Q6_K block, in element order (gguf.md §4). */
static void q6_K_unpack(const struct kq_block_q6_K *b, int8_t *a)
{
    for (int h = 0; h < 2; h++, a += 128) {
        const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int l = 0; l < 32; l++) {
            a[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            a[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            a[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            a[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

static void q6_K_to_f32(const void *blocks, float *y, int64_t n)
{
    const struct kq_block_q6_K *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K) {
        const float d = kq_f16_to_f32(b[i].d);
        int8_t a[QK_K];
        q6_K_unpack(&b[i], a);
        /* d·scale first, then ·q: ggml's dequantize_row_q6_K evaluates d * sc * q */
        for (int j = 0; j < QK_K; j++)
            y[j] = d * b[i].scales[j / 16] * a[j];
    }
}

static void q8_K_to_f32(const void *blocks, float *y, int64_t n)
{
    const struct kq_block_q8_K *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, y += QK_K)
        for (int j = 0; j < QK_K; j++)
            y[j] = b[i].d * b[i].qs[j];
}

/* ---- activation conversion (gguf.md §6) ---- */

static void f32_from_f32(const float *x, void *blocks, int64_t n)
{
    memcpy(blocks, x, (size_t)n * sizeof(float));
}

static void f16_from_f32(const float *x, void *blocks, int64_t n)
{
    uint8_t *p = blocks;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = kq_f32_to_f16(x[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

static void bf16_from_f32(const float *x, void *blocks, int64_t n)
{
    uint8_t *p = blocks;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = kq_f32_to_bf16(x[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

/* llama.cpp's x86 quantize_row_q8_0: d = amax/127 stored as f16, q = round_half_even(x·127/amax)
 * (the portable quantize_row_q8_0_ref rounds halves away from zero; x86 is what we match). */
void kq_quantize_q8_0_ref(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q8_0 *b = blocks;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        float amax = 0.0f;
        for (int j = 0; j < QK; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        b[i].d = kq_f32_to_f16(amax / 127.f);
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        for (int j = 0; j < QK; j++)
            b[i].qs[j] = (int8_t)kq_nearest_int(x[j] * id);
    }
}

/* ggml's quantize_row_q8_K_ref: scale by the signed element of largest magnitude, so that element
 * becomes -127 and d = 1/iscale may be negative. bsums are zeroed for an all-zero block (ggml
 * leaves them unwritten; any consumer multiplies them by d = 0). */
void kq_quantize_q8_K_ref(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q8_K *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            memset(&b[i], 0, sizeof(b[i]));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = kq_nearest_int(iscale * x[j]);
            b[i].qs[j] = (int8_t)(v < 127 ? v : 127);
        }
        for (int g = 0; g < QK_K / 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += b[i].qs[16 * g + l];
            b[i].bsums[g] = (int16_t)sum;
        }
        b[i].d = 1 / iscale;
    }
}

/* ---- dot products ---- */

/* F32/F16/BF16: llama.cpp's x86 kernels multiply in f32 and keep f32 partial sums in SIMD lanes;
 * 32 lanes, reduced in order into a double, reproduce that scheme portably. */
#define FLOAT_LANES 32

static float reduce_lanes(const float *lanes)
{
    double s = 0;
    for (int l = 0; l < FLOAT_LANES; l++)
        s += lanes[l];
    return (float)s;
}

static void dot_f32_ref(int64_t n, float *s, const void *w, const void *a)
{
    const float *x = w, *y = a;
    float lanes[FLOAT_LANES] = {0};
    for (int64_t i = 0; i < n; i++)
        lanes[i % FLOAT_LANES] += x[i] * y[i];
    *s = reduce_lanes(lanes);
}

/* F16 and BF16 rows differ only in how a half widens to float. */
static float dot_halves(int64_t n, const void *w, const void *a, float (*widen)(uint16_t))
{
    const uint8_t *x = w, *y = a;
    float lanes[FLOAT_LANES] = {0};
    for (int64_t i = 0; i < n; i++) {
        uint16_t hx, hy;
        memcpy(&hx, x + 2 * i, 2);
        memcpy(&hy, y + 2 * i, 2);
        lanes[i % FLOAT_LANES] += widen(hx) * widen(hy);
    }
    return reduce_lanes(lanes);
}

void kq_mad_rows_f16_ref(int64_t n, int64_t n_rows, float *y, const float *p, const uint16_t *v,
                         size_t v_stride)
{
    for (int64_t j = 0; j < n_rows; j++, v += v_stride)
        for (int64_t i = 0; i < n; i++)
            y[i] += p[j] * kq_f16_to_f32(v[i]);
}

static void dot_f16_ref(int64_t n, float *s, const void *w, const void *a)
{
    *s = dot_halves(n, w, a, kq_f16_to_f32);
}

static void dot_bf16_ref(int64_t n, float *s, const void *w, const void *a)
{
    *s = dot_halves(n, w, a, kq_bf16_to_f32);
}

/* ggml_vec_dot_q4_0_q8_0_generic: sumf += sumi·d_w·d_a, left to right */
static void dot_q4_0_q8_0_ref(int64_t n, float *s, const void *w, const void *a)
{
    const struct kq_block_q4_0 *x = w;
    const struct kq_block_q8_0 *y = a;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            sumi += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j];
            sumi += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        }
        sumf += sumi * kq_f16_to_f32(x[i].d) * kq_f16_to_f32(y[i].d);
    }
    *s = sumf;
}

/* ggml_vec_dot_q5_0_q8_0_generic: sumf += (d_w·d_a)·sumi */
static void dot_q5_0_q8_0_ref(int64_t n, float *s, const void *w, const void *a)
{
    const struct kq_block_q5_0 *x = w;
    const struct kq_block_q8_0 *y = a;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        uint32_t qh;
        memcpy(&qh, x[i].qh, 4);
        int sumi = 0;
        for (int j = 0; j < 16; j++) {
            int v0 = ((x[i].qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16;
            int v1 = ((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16;
            sumi += v0 * y[i].qs[j] + v1 * y[i].qs[j + 16];
        }
        sumf += (kq_f16_to_f32(x[i].d) * kq_f16_to_f32(y[i].d)) * sumi;
    }
    *s = sumf;
}

/* ggml_vec_dot_q8_0_q8_0_generic: sumf += sumi·(d_w·d_a) */
static void dot_q8_0_q8_0_ref(int64_t n, float *s, const void *w, const void *a)
{
    const struct kq_block_q8_0 *x = w;
    const struct kq_block_q8_0 *y = a;
    float sumf = 0;
    for (int64_t i = 0; i < n / QK; i++) {
        int sumi = 0;
        for (int j = 0; j < QK; j++)
            sumi += x[i].qs[j] * y[i].qs[j];
        sumf += sumi * (kq_f16_to_f32(x[i].d) * kq_f16_to_f32(y[i].d));
    }
    *s = sumf;
}

/* K-quant tail shared by Q4_K/Q5_K: ggml's generic kernels keep 8 integer lanes (element j goes
 * to lane j % 8), add d·lane into 8 float sums per super-block, subtract dmin·d_a·mins from one
 * running float, and add the 8 float sums last. q holds the unsigned 4/5-bit values. */
static void dot_kx_q8_K(int64_t nb, float *s, const uint8_t *blocks, size_t block_bytes,
                        const struct kq_block_q8_K *y, void (*unpack)(const uint8_t *, uint8_t *))
{
    float sums[8] = {0};
    float sumf = 0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = blocks + (size_t)i * block_bytes;
        /* d, dmin and scales sit at the same offsets in Q4_K and Q5_K */
        const struct kq_block_q4_K *hdr = (const void *)blk;
        uint8_t q[QK_K];
        unpack(blk, q);
        int32_t lanes[8] = {0};
        int mins = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            kq_scale_min_k4(j, hdr->scales, &sc, &m);
            mins += (y[i].bsums[2 * j] + y[i].bsums[2 * j + 1]) * m;
            for (int l = 0; l < 32; l++)
                lanes[l % 8] += sc * (q[32 * j + l] * y[i].qs[32 * j + l]);
        }
        const float d = kq_f16_to_f32(hdr->d) * y[i].d;
        for (int l = 0; l < 8; l++)
            sums[l] += d * lanes[l];
        sumf -= kq_f16_to_f32(hdr->dmin) * y[i].d * mins;
    }
    for (int l = 0; l < 8; l++)
        sumf += sums[l];
    *s = sumf;
}

static void q4_K_unpack(const uint8_t *blk, uint8_t *q)
{
    const struct kq_block_q4_K *b = (const void *)blk;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = b->qs[32 * c + l] & 0xF;
            q[64 * c + 32 + l] = b->qs[32 * c + l] >> 4;
        }
}

static void q5_K_unpack(const uint8_t *blk, uint8_t *q)
{
    const struct kq_block_q5_K *b = (const void *)blk;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (b->qs[32 * c + l] & 0xF) | (((b->qh[l] >> (2 * c)) & 1) << 4);
            q[64 * c + 32 + l] = (b->qs[32 * c + l] >> 4) | (((b->qh[l] >> (2 * c + 1)) & 1) << 4);
        }
}

static void dot_q4_K_q8_K_ref(int64_t n, float *s, const void *w, const void *a)
{
    dot_kx_q8_K(n / QK_K, s, w, sizeof(struct kq_block_q4_K), a, q4_K_unpack);
}

static void dot_q5_K_q8_K_ref(int64_t n, float *s, const void *w, const void *a)
{
    dot_kx_q8_K(n / QK_K, s, w, sizeof(struct kq_block_q5_K), a, q5_K_unpack);
}

/* ggml_vec_dot_q6_K_q8_K_generic: same 8-lane scheme, signed scales per 16 elements, no mins */
static void dot_q6_K_q8_K_ref(int64_t n, float *s, const void *w, const void *a)
{
    const struct kq_block_q6_K *x = w;
    const struct kq_block_q8_K *y = a;
    float sums[8] = {0};
    for (int64_t i = 0; i < n / QK_K; i++) {
        int8_t q[QK_K];
        q6_K_unpack(&x[i], q);
        int32_t lanes[8] = {0};
        for (int j = 0; j < QK_K; j++)
            lanes[j % 8] += x[i].scales[j / 16] * (q[j] * y[i].qs[j]);
        const float d = kq_f16_to_f32(x[i].d) * y[i].d;
        for (int l = 0; l < 8; l++)
            sums[l] += d * lanes[l];
    }
    float sumf = 0;
    for (int l = 0; l < 8; l++)
        sumf += sums[l];
    *s = sumf;
}

/* ---- the table (ggml's type_traits + type_traits_cpu; sizes from ggml-common.h) ---- */

#define SIZED(id, nm, elems, bytes) [id] = {.name = nm, .block_elems = elems, .block_bytes = bytes}

/* No reference dot4: matmul falls back to `dot` per token, which is what a dot4 must equal. */
const struct kq_format kq_ref_table[KQ_TYPE_COUNT] = {
    [KQ_F32] = {"F32", 1, 4, KQ_F32, f32_to_f32, f32_from_f32, dot_f32_ref, NULL},
    [KQ_F16] = {"F16", 1, 2, KQ_F16, f16_to_f32_row, f16_from_f32, dot_f16_ref, NULL},
    [KQ_BF16] = {"BF16", 1, 2, KQ_BF16, bf16_to_f32_row, bf16_from_f32, dot_bf16_ref, NULL},
    [KQ_Q4_0] = {"Q4_0", 32, 18, KQ_Q8_0, q4_0_to_f32, kq_quantize_q4_0, dot_q4_0_q8_0_ref, NULL},
    [KQ_Q5_0] = {"Q5_0", 32, 22, KQ_Q8_0, q5_0_to_f32, kq_quantize_q5_0, dot_q5_0_q8_0_ref, NULL},
    [KQ_Q8_0] = {"Q8_0", 32, 34, KQ_Q8_0,
        q8_0_to_f32, kq_quantize_q8_0_ref, dot_q8_0_q8_0_ref, NULL},
    [KQ_Q4_K] = {"Q4_K", 256, 144, KQ_Q8_K, q4_K_to_f32, kq_quantize_q4_K, dot_q4_K_q8_K_ref, NULL},
    [KQ_Q5_K] = {"Q5_K", 256, 176, KQ_Q8_K, q5_K_to_f32, kq_quantize_q5_K, dot_q5_K_q8_K_ref, NULL},
    [KQ_Q6_K] = {"Q6_K", 256, 210, KQ_Q8_K, q6_K_to_f32, kq_quantize_q6_K, dot_q6_K_q8_K_ref, NULL},
    /* activation-only format: converts and dequantizes, never a weight */
    [KQ_Q8_K] = {"Q8_K", 256, 292, KQ_Q8_K, q8_K_to_f32, kq_quantize_q8_K_ref, NULL, NULL},
    /* known formats moepool can size and skip, not compute with */
    SIZED(KQ_Q4_1, "Q4_1", 32, 20),
    SIZED(KQ_Q5_1, "Q5_1", 32, 24),
    SIZED(KQ_Q8_1, "Q8_1", 32, 36),
    SIZED(KQ_Q2_K, "Q2_K", 256, 84),
    SIZED(KQ_Q3_K, "Q3_K", 256, 110),
    SIZED(KQ_IQ2_XXS, "IQ2_XXS", 256, 66),
    SIZED(KQ_IQ2_XS, "IQ2_XS", 256, 74),
    SIZED(KQ_IQ3_XXS, "IQ3_XXS", 256, 98),
    SIZED(KQ_IQ1_S, "IQ1_S", 256, 50),
    SIZED(KQ_IQ4_NL, "IQ4_NL", 32, 18),
    SIZED(KQ_IQ3_S, "IQ3_S", 256, 110),
    SIZED(KQ_IQ2_S, "IQ2_S", 256, 82),
    SIZED(KQ_IQ4_XS, "IQ4_XS", 256, 136),
    SIZED(KQ_I8, "I8", 1, 1),
    SIZED(KQ_I16, "I16", 1, 2),
    SIZED(KQ_I32, "I32", 1, 4),
    SIZED(KQ_I64, "I64", 1, 8),
    SIZED(KQ_F64, "F64", 1, 8),
    SIZED(KQ_IQ1_M, "IQ1_M", 256, 56),
    SIZED(KQ_TQ1_0, "TQ1_0", 256, 54),
    SIZED(KQ_TQ2_0, "TQ2_0", 256, 66),
    SIZED(KQ_MXFP4, "MXFP4", 32, 17),
};
