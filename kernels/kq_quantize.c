/* kernels/kq_quantize.c: reference weight quantizers (F32 -> Q4_0, Q5_0, Q4_K, Q5_K, Q6_K), used
 * to write synthetic model files (`moepool synth`) and test data. Never on a hot path.
 *
 * Spec: ../shared/docs/gguf.md §4 for the layouts. The search for scales follows the schemes of
 * ggml-quants.c's quantize_row_*_ref (no importance matrix): Q4_0/Q5_0 scale by the signed
 * element of largest magnitude; Q4_K/Q5_K fit scale and min per 32 by a weighted least-squares
 * search over candidate scales (make_qkx2_quants); Q6_K fits a signed scale per 16 with a
 * weighted search around nmax (make_qx_quants), then quantizes the scales to 8 bits. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/kq_impl.h"

static int clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Scale by the signed extreme so it lands on -2^(bits-1), as ggml does: one more level is
 * used on that side. Returns d; writes q[j] in [0, 2^bits - 1]. */
static float quantize_signed_extreme(const float *x, int bits, uint8_t *q)
{
    float amax = 0, max = 0;
    for (int j = 0; j < QK; j++) {
        if (fabsf(x[j]) > amax) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    }
    const int half = 1 << (bits - 1);
    const float d = max / -half;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < QK; j++) {
        /* truncation after adding half + 0.5 rounds to nearest; the clamp catches max itself */
        int v = (int)(x[j] * id + (float)half + 0.5f);
        q[j] = (uint8_t)clampi(v, 0, 2 * half - 1);
    }
    return d;
}

void kq_quantize_q4_0(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q4_0 *b = blocks;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        uint8_t q[QK];
        b[i].d = kq_f32_to_f16(quantize_signed_extreme(x, 4, q));
        for (int j = 0; j < 16; j++)
            b[i].qs[j] = (uint8_t)(q[j] | (q[j + 16] << 4));
    }
}

void kq_quantize_q5_0(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q5_0 *b = blocks;
    for (int64_t i = 0; i < n / QK; i++, x += QK) {
        uint8_t q[QK];
        b[i].d = kq_f32_to_f16(quantize_signed_extreme(x, 5, q));
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            b[i].qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
            qh |= (uint32_t)(q[j] >> 4) << j;
            qh |= (uint32_t)(q[j + 16] >> 4) << (j + 16);
        }
        memcpy(b[i].qh, &qh, 4);
    }
}

/* Fits x[i] ≈ scale·L[i] - the_min with L in [0, nmax] and the_min >= 0, minimizing the
 * weighted squared error: start from the min/max grid, then try nstep+1 scales around it and
 * solve scale and min by least squares for each rounding (ggml's make_qkx2_quants). */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *the_min, float rmin, float rdelta, int nstep)
{
    float min = x[0], max = x[0], sum_w = 0, sum_x = 0;
    for (int i = 0; i < n; i++) {
        min = fminf(min, x[i]);
        max = fmaxf(max, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min), scale = 1 / iscale, best = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(kq_nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        best += w[i] * diff * diff;
    }
    uint8_t Laux[QK];
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(kq_nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D <= 0)
            continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            err += w[i] * diff * diff;
        }
        if (err < best) {
            memcpy(L, Laux, (size_t)n);
            best = err;
            scale = this_scale;
            min = this_min;
        }
    }
    *the_min = -min;
    return scale;
}

/* Packs the 6-bit scale ls and min lm of sub-block j into the 12-byte Q4_K/Q5_K field. */
static void put_scale_min_k4(int j, uint8_t ls, uint8_t lm, uint8_t *s)
{
    if (j < 4) {
        s[j] = ls;
        s[j + 4] = lm;
    } else {
        s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        s[j - 4] |= (uint8_t)((ls >> 4) << 6);
        s[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32 fit scale and min, quantize them to 6
 * bits against the largest, then requantize x with the stored scales. Writes d, dmin, scales
 * and L[256] in [0, nmax]. */
static void quantize_kx(const float *x, int nmax, uint16_t *d_out, uint16_t *dmin_out,
                        uint8_t *scales_out, uint8_t *L)
{
    float scales[8], mins[8], weights[32], max_scale = 0, max_min = 0;
    /* ggml's search grid: Q4_K tries 21 scales from nmax-1, Q5_K 16 from nmax-0.5 */
    const float rmin = nmax == 15 ? -1.f : -0.5f;
    const int nstep = nmax == 15 ? 20 : 15;

    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(xs[l]);
        scales[j] = fit_scale_min(32, nmax, xs, weights, L + 32 * j, &mins[j], rmin, 0.1f, nstep);
        max_scale = fmaxf(max_scale, scales[j]);
        max_min = fmaxf(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    memset(scales_out, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)clampi(kq_nearest_int(inv_scale * scales[j]), 0, 63);
        uint8_t lm = (uint8_t)clampi(kq_nearest_int(inv_min * mins[j]), 0, 63);
        put_scale_min_k4(j, ls, lm, scales_out);
    }
    *d_out = kq_f32_to_f16(max_scale / 63.f);
    *dmin_out = kq_f32_to_f16(max_min / 63.f);

    const float d = kq_f16_to_f32(*d_out), dmin = kq_f16_to_f32(*dmin_out);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        kq_scale_min_k4(j, scales_out, &sc, &m);
        const float ds = d * sc, dm = dmin * m;
        if (ds == 0.0f)
            continue;
        for (int l = 0; l < 32; l++)
            L[32 * j + l] = (uint8_t)clampi(kq_nearest_int((x[32 * j + l] + dm) / ds), 0, nmax);
    }
}

void kq_quantize_q4_K(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q4_K *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t L[QK_K];
        uint16_t d, dmin;
        quantize_kx(x, 15, &d, &dmin, b[i].scales, L);
        b[i].d = d;
        b[i].dmin = dmin;
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++)
                b[i].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
    }
}

void kq_quantize_q5_K(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q5_K *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        uint8_t L[QK_K];
        uint16_t d, dmin;
        quantize_kx(x, 31, &d, &dmin, b[i].scales, L);
        b[i].d = d;
        b[i].dmin = dmin;
        memset(b[i].qh, 0, sizeof(b[i].qh));
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
                b[i].qs[32 * c + l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
                b[i].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
            }
    }
}

/* Signed scale for n values with L in [-nmax, nmax-1], weighted by x², trying 19 scales near
 * nmax/max and keeping the best least-squares fit (ggml's make_qx_quants, rmse_type 1). */
static float fit_signed_scale(int n, int nmax, const float *x, int8_t *L)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float best_scale = 0, best = -1;
    for (int is = -9; is <= 9; is++) {
        const float iscale = -(nmax + 0.1f * is) / max;
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(kq_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        /* the fit's error drops by sumlx²/suml2; keep the candidate that drops it most */
        if (suml2 > 0 && (best < 0 || sumlx * sumlx > best * suml2)) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)clampi(kq_nearest_int(iscale * x[i]), -nmax, nmax - 1);
            best_scale = sumlx / suml2;
            best = best_scale * sumlx;
        }
    }
    return best_scale;
}

void kq_quantize_q6_K(const float *x, void *blocks, int64_t n)
{
    struct kq_block_q6_K *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        int8_t L[QK_K];
        float scales[16], max_scale = 0, max_abs = 0;
        for (int g = 0; g < 16; g++) {
            scales[g] = fit_signed_scale(16, 32, x + 16 * g, L + 16 * g);
            if (fabsf(scales[g]) > max_abs) {
                max_abs = fabsf(scales[g]);
                max_scale = scales[g];
            }
        }
        memset(&b[i], 0, sizeof(b[i]));
        if (max_abs < 1e-15f)
            continue;
        const float iscale = -128.f / max_scale;
        b[i].d = kq_f32_to_f16(1 / iscale);
        for (int g = 0; g < 16; g++)
            b[i].scales[g] = (int8_t)clampi(kq_nearest_int(iscale * scales[g]), -128, 127);
        const float d = kq_f16_to_f32(b[i].d);
        uint8_t q[QK_K];
        for (int j = 0; j < QK_K; j++) {
            const float ds = d * b[i].scales[j / 16];
            q[j] = ds != 0.0f ? (uint8_t)(clampi(kq_nearest_int(x[j] / ds), -32, 31) + 32) : 32;
        }
        for (int h = 0; h < 2; h++) {
            const uint8_t *qq = q + 128 * h;
            uint8_t *ql = b[i].ql + 64 * h, *qh = b[i].qh + 32 * h;
            for (int l = 0; l < 32; l++) {
                ql[l] = (uint8_t)((qq[l] & 0xF) | ((qq[l + 64] & 0xF) << 4));
                ql[l + 32] = (uint8_t)((qq[l + 32] & 0xF) | ((qq[l + 96] & 0xF) << 4));
                qh[l] = (uint8_t)((qq[l] >> 4) | ((qq[l + 32] >> 4) << 2) |
                                  ((qq[l + 64] >> 4) << 4) | ((qq[l + 96] >> 4) << 6));
            }
        }
    }
}
