/* kernels/kq_x16_q5k.c: Q5_K in the x16 layout (kq_x16.h), the reference: group layout, repack,
 * dequantization and the GEMM whose bits every SIMD level reproduces.
 *
 * Group layout: Q4_K's (kq_x16_q4k.c) with the fifth bits inserted before the nibbles. A group
 * holds rows 16g..16g+15; its column block b (256 elements) takes the 16 × 176 = 2816 bytes the
 * 16 rows' block b took, at offset 2816·b, in this order:
 *   0     d[16]      f16, row i's super-block scale in half-word i
 *   32    dmin[16]   f16, row i's super-block min scale
 *   64    sw[3][16]  u32: sw[k][i] = little-endian word k of row i's 12 scale bytes (GGUF's
 *                    packing kept, words transposed: one 64-byte load holds word k of 16 rows)
 *   256   qh[8][16][4]   vector j = 0..7, lane i = row i's bytes qh[4j .. 4j + 3]: bit s of
 *                    byte e is the fifth bit of element 32s + 4j + e (sub-block s)
 *   768   qs[32][16][4]  vector v = 8c + j (c = 0..3, j = 0..7), lane i = row i's bytes
 *                    qs[32c + 4j .. 32c + 4j + 3]: low nibbles are elements 64c + 4j .. +3
 *                    (sub-block 2c), high nibbles elements 64c + 32 + 4j .. +3 (sub-block 2c+1)
 * So qs vector 8c + j and qh vector j (bits 2c and 2c + 1) give, per nibble half, 4 consecutive
 * 5-bit weights of each of 16 rows: one VPDPBUSD operand against 4 broadcast activation bytes.
 * Every vector sits at a multiple of 64 bytes from the group's start (2816 = 44·64).
 *
 * Arithmetic (Q4_K's, with 5-bit q), per (row i, token t), activation row a in Q8_K, over blocks
 * b in order, acc = 0:
 *   isum_s = Σ_{e<32} q_i[32s + e] · a.qs[32s + e]           exact int32, s = 0..7
 *   sumi   = Σ_s sc_s · isum_s                                 exact int32 (|sumi| < 2^26)
 *   summ   = Σ_s m_s · (a.bsums[2s] + a.bsums[2s + 1])          exact int32
 *   dd = f16(d_i) · a.d;  dm = f16(dmin_i) · a.d               float products
 *   acc = fmaf(dd, (float)sumi, acc);  acc = fmaf(-dm, (float)summ, acc)
 *   y = acc
 * The int → float conversions round to nearest even (C's and VCVTDQ2PS's rule alike); the FMAs
 * are written as fmaf so that no compiler contraction choice changes the bits. The row-major dot
 * (kq_ref.c) adds the same exact integers in another float order. */
#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"
#include "kernels/kq_x16_k4.h"

#define R KQ_X16_ROWS
#define GROUP_BLOCK_BYTES (R * sizeof(struct kq_block_q5_K))
#define OFF_QH 256
#define OFF_QS 768
_Static_assert(OFF_QS + 32 * 64 == 16 * 176, "a group's block is 16 Q5_K blocks");

static void put_block(void *gb, int i, const void *block)
{
    const struct kq_block_q5_K *x = block;
    uint8_t *g = gb;
    k4_put_head(g, i, &x->d, &x->dmin, x->scales);
    for (int j = 0; j < 8; j++)
        memcpy(g + OFF_QH + 64 * j + 4 * i, x->qh + 4 * j, 4);
    k4_put_qs(g + OFF_QS, i, x->qs);
}

static void get_block(const void *gb, int i, void *block)
{
    struct kq_block_q5_K *x = block;
    const uint8_t *g = gb;
    k4_get_head(g, i, &x->d, &x->dmin, x->scales);
    for (int j = 0; j < 8; j++)
        memcpy(x->qh + 4 * j, g + OFF_QH + 64 * j + 4 * i, 4);
    k4_get_qs(g + OFF_QS, i, x->qs);
}

/* The 5-bit weights q[i][e] of one group block, element order per row. */
static void unpack_weights(const uint8_t *g, uint8_t q[R][QK_K])
{
    for (int s = 0; s < 8; s++) {
        const int c = s / 2, shift = 4 * (s % 2);
        for (int j = 0; j < 8; j++) {
            const uint8_t *qs = g + OFF_QS + 64 * (8 * c + j), *qh = g + OFF_QH + 64 * j;
            for (int i = 0; i < R; i++)
                for (int e = 0; e < 4; e++)
                    q[i][32 * s + 4 * j + e] = (uint8_t)(((qs[4 * i + e] >> shift) & 0xF) |
                                                         (((qh[4 * i + e] >> s) & 1) << 4));
        }
    }
}

/* sumi and summ of one group block against one activation block, 16 rows at once. */
static void block_sums(const uint8_t q[R][QK_K], const int32_t sc[8][R], const int32_t m[8][R],
                       const struct kq_block_q8_K *a, int32_t sumi[R], int32_t summ[R])
{
    int16_t bsums[16];
    memcpy(bsums, KQ_Q8K_BSUMS(a), sizeof(bsums));
    for (int i = 0; i < R; i++) {
        sumi[i] = summ[i] = 0;
        for (int s = 0; s < 8; s++) {
            int32_t isum = 0;
            for (int e = 0; e < 32; e++)
                isum += q[i][32 * s + e] * a->qs[32 * s + e];
            sumi[i] += sc[s][i] * isum;
            summ[i] += m[s][i] * (bsums[2 * s] + bsums[2 * s + 1]);
        }
    }
}

/* Tokens per pass over the group: a block's weights and scales are unpacked once per pass. */
#define TILE 8

static void tile(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                 size_t y_stride)
{
    const int64_t nb = n_cols / QK_K;
    float acc[TILE][R] = {{0}};
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = (const uint8_t *)w + (size_t)b * GROUP_BLOCK_BYTES;
        int32_t sc[8][R], m[8][R];
        uint8_t q[R][QK_K];
        k4_unpack_scales(g, sc, m);
        unpack_weights(g, q);
        for (int t = 0; t < nt; t++) {
            const struct kq_block_q8_K *a = act[t];
            int32_t sumi[R], summ[R];
            block_sums((const uint8_t(*)[QK_K])q, (const int32_t(*)[R])sc, (const int32_t(*)[R])m,
                       &a[b], sumi, summ);
            k4_add_block(g, a[b].d, sumi, summ, acc[t]);
        }
    }
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < R; i++)
            y[(size_t)t * y_stride + i] = acc[t][i];
}

void kq_x16_register_q5k_ref(struct kq_x16_ops *ops)
{
    *ops = (struct kq_x16_ops){put_block, get_block, tile, TILE};
}
