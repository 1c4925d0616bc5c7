/* kernels/kq_x16_q4k.c: Q4_K in the x16 layout (kq_x16.h), the reference: group layout, repack,
 * dequantization and the GEMM whose bits every SIMD level reproduces.
 *
 * Group layout. A group holds rows 16g..16g+15; its column block b (256 elements) takes the
 * 16 × 144 = 2304 bytes the 16 rows' block b took, at offset 2304·b, in this order:
 *   0     d[16]      f16, row i's super-block scale in half-word i
 *   32    dmin[16]   f16, row i's super-block min scale
 *   64    sw[3][16]  u32: sw[k][i] = little-endian word k of row i's 12 scale bytes (GGUF's
 *                    bit packing kept, words transposed so that one 64-byte load holds word k of
 *                    16 rows and kq_scale_min_k4 runs on 16 rows with a few lane-wise shifts)
 *   256   qs[32][16][4]  vector v = 8c + j (c = 0..3, j = 0..7), lane i = row i's bytes
 *                    qs[32c + 4j .. 32c + 4j + 3]: the low nibbles are elements 64c + 4j .. +3
 *                    (sub-block 2c), the high nibbles elements 64c + 32 + 4j .. +3 (sub-block
 *                    2c + 1). One 64-byte load thus gives, per nibble half, 4 consecutive weights
 *                    of each of 16 rows: one VPDPBUSD operand against 4 broadcast activation bytes.
 * Every vector sits at a multiple of 64 bytes from the group's start (2304 = 36·64).
 *
 * Arithmetic, per (row i, token t), activation row a in Q8_K, over blocks b in order, acc = 0:
 *   isum_s = Σ_{e<32} q_i[32s + e] · a.qs[32s + e]           exact int32, s = 0..7
 *   sumi   = Σ_s sc_s · isum_s                                 exact int32 (|sumi| < 2^25)
 *   summ   = Σ_s m_s · (a.bsums[2s] + a.bsums[2s + 1])          exact int32
 *   dd = f16(d_i) · a.d;  dm = f16(dmin_i) · a.d               float products
 *   acc = fmaf(dd, (float)sumi, acc);  acc = fmaf(-dm, (float)summ, acc)
 *   y = acc
 * The int → float conversions round to nearest even (C's and VCVTDQ2PS's rule alike); the two
 * FMAs are written as fmaf so that no compiler contraction choice changes the bits. The row-major
 * dot (kq_ref.c) adds the same exact integers in another float order. */
#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"
#include "kernels/kq_x16_k4.h"

#define R KQ_X16_ROWS
#define GROUP_BLOCK_BYTES (R * sizeof(struct kq_block_q4_K))
#define OFF_QS 256
_Static_assert(OFF_QS + 32 * 64 == 16 * 144, "a group's block is 16 Q4_K blocks");

static void put_block(void *gb, int i, const void *block)
{
    const struct kq_block_q4_K *x = block;
    k4_put_head(gb, i, &x->d, &x->dmin, x->scales);
    k4_put_qs((uint8_t *)gb + OFF_QS, i, x->qs);
}

static void get_block(const void *gb, int i, void *block)
{
    struct kq_block_q4_K *x = block;
    k4_get_head(gb, i, &x->d, &x->dmin, x->scales);
    k4_get_qs((const uint8_t *)gb + OFF_QS, i, x->qs);
}

/* sumi and summ of one group block against one activation block, 16 rows (lanes) at once. */
static void block_sums(const uint8_t *g, const int32_t sc[8][R], const int32_t m[8][R],
                       const struct kq_block_q8_K *a, int32_t sumi[R], int32_t summ[R])
{
    int16_t bsums[16];
    memcpy(bsums, KQ_Q8K_BSUMS(a), sizeof(bsums));
    for (int i = 0; i < R; i++)
        sumi[i] = summ[i] = 0;
    for (int s = 0; s < 8; s++) {
        const int c = s / 2, shift = 4 * (s % 2);
        /* lane-byte products summed over the 8 vectors first (64 independent sums: a loop
         * compilers vectorise), then the 4 bytes of each lane: the same exact integers */
        int32_t part[4 * R] = {0};
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = g + OFF_QS + 64 * (8 * c + j);
            const int8_t *x = a->qs + 64 * c + 32 * (s % 2) + 4 * j;
            int8_t xr[4 * R]; /* the 4 activations once per lane, as the kernels broadcast them */
            for (int i = 0; i < R; i++)
                memcpy(xr + 4 * i, x, 4);
            for (int k = 0; k < 4 * R; k++)
                part[k] += ((q[k] >> shift) & 0xF) * xr[k];
        }
        int32_t isum[R];
        for (int i = 0; i < R; i++)
            isum[i] = part[4 * i] + part[4 * i + 1] + part[4 * i + 2] + part[4 * i + 3];
        const int32_t bsum = bsums[2 * s] + bsums[2 * s + 1];
        for (int i = 0; i < R; i++) {
            sumi[i] += sc[s][i] * isum[i];
            summ[i] += m[s][i] * bsum;
        }
    }
}

/* Tokens per pass over the group: a block's scales are unpacked once per pass. */
#define TILE 8

static void tile(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                 size_t y_stride)
{
    const int64_t nb = n_cols / QK_K;
    float acc[TILE][R] = {{0}};
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = (const uint8_t *)w + (size_t)b * GROUP_BLOCK_BYTES;
        int32_t sc[8][R], m[8][R];
        k4_unpack_scales(g, sc, m);
        for (int t = 0; t < nt; t++) {
            const struct kq_block_q8_K *a = act[t];
            int32_t sumi[R], summ[R];
            block_sums(g, sc, m, &a[b], sumi, summ);
            k4_add_block(g, a[b].d, sumi, summ, acc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < R; i++)
            y[(size_t)t * y_stride + i] = acc[t][i];
}

void kq_x16_register_q4k_ref(struct kq_x16_ops *ops)
{
    *ops = (struct kq_x16_ops){put_block, get_block, tile, TILE};
}
