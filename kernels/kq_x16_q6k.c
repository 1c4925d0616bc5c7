/* kernels/kq_x16_q6k.c: Q6_K in the x16 layout (kq_x16.h), the reference: group layout, repack,
 * dequantization and the GEMM whose bits every SIMD level reproduces.
 *
 * Group layout. A group holds rows 16g..16g+15; its column block b (256 elements) takes the
 * 16 × 210 = 3360 bytes the 16 rows' block b took, at offset 3360·b, in this order:
 *   0     d[16]          f16, row i's super-block scale.
 *   32    sc[16][16]     int8, sc[s][i] = row i's scale of sub-block s: one 16-byte load
 *                        sign-extends to the 16 rows' int32 scales of a sub-block.
 *   288   qs[16][3][64]  sub-block s (elements 16s..16s+15, one scale), vector v = 0..2 at
 *                        288 + 192·s + 64·v; lane i (bytes 4i..4i+3) is row i. Byte e of lane i:
 *                          bits 0..5  q_i[16s + 4v + e]       (the unsigned 6-bit value 0..63)
 *                          bits 6..7  bits 2v, 2v+1 of q_i[16s + 12 + e]
 *                        so a 64-byte load masked with 0x3F is one VPDPBUSD operand (4
 *                        consecutive weights of 16 rows, unsigned) for v = 0..2, and the fourth
 *                        (elements 12..15) is gathered from the three top-bit pairs with shifts.
 * Scales before weights, so that a kernel reads each block front to back as one stream (with the
 * scales last, each block would start with a read 3 KB ahead of the weights it streams).
 * 16·192 + 256 + 32 = 3360: nothing added, nothing lost. The weights are stored unsigned
 * (GGUF's q, not q − 32) because VPDPBUSD multiplies unsigned by signed bytes; the offset is
 * taken out exactly through the activations' bsums (Q8_K keeps one per 16 elements).
 *
 * Arithmetic, per (row i, token t), activation row a in Q8_K, over blocks b in order, acc = 0:
 *   isum_s = Σ_{e<16} q_i[16s + e] · a.qs[16s + e] − 32·a.bsums[s]     exact int32, s = 0..15
 *   sumi   = Σ_s sc_s · isum_s                                           exact int32
 *   acc    = fmaf(f16(d_i) · a.d, (float)sumi, acc)
 *   y = acc
 * Bounds: |isum_s| ≤ 16·63·128 + 32·2048 < 2^18, |sumi| < 16·128·2^18 = 2^29: no overflow.
 * (float)sumi rounds to nearest even (C's and VCVTDQ2PS's rule alike); the FMA is written as
 * fmaf so that no compiler contraction choice changes the bits. The row-major dot (kq_ref.c)
 * adds the same exact integers (Σ sc_s·Σ (q − 32)·a) in another float order. */
#include <math.h>

#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

#define R KQ_X16_ROWS
#define GROUP_BLOCK_BYTES (R * sizeof(struct kq_block_q6_K))
#define OFF_QS 288
#define OFF_SC 32
#define OFF_D 0
_Static_assert(OFF_QS + 16 * 192 == 16 * 210, "a group's block is 16 Q6_K blocks");

/* The 256 unsigned 6-bit values of a row-major Q6_K block, in element order (gguf.md §4: low
 * nibbles in ql, top bit pairs in qh, 128 elements per half). */
static void q6_unpack(const struct kq_block_q6_K *x, uint8_t q[QK_K])
{
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
        uint8_t *out = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            out[l] = (uint8_t)((ql[l] & 0xF) | (qh[l] & 3) << 4);
            out[l + 32] = (uint8_t)((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3) << 4);
            out[l + 64] = (uint8_t)((ql[l] >> 4) | ((qh[l] >> 4) & 3) << 4);
            out[l + 96] = (uint8_t)((ql[l + 32] >> 4) | (qh[l] >> 6) << 4);
        }
    }
}

/* The inverse of q6_unpack: writes ql and qh of x from q. */
static void q6_pack(const uint8_t q[QK_K], struct kq_block_q6_K *x)
{
    for (int h = 0; h < 2; h++) {
        uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
        const uint8_t *in = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((in[l] & 0xF) | (in[l + 64] & 0xF) << 4);
            ql[l + 32] = (uint8_t)((in[l + 32] & 0xF) | (in[l + 96] & 0xF) << 4);
            qh[l] = (uint8_t)((in[l] >> 4) | (in[l + 32] >> 4) << 2 | (in[l + 64] >> 4) << 4 |
                              (in[l + 96] >> 4) << 6);
        }
    }
}

/* Writes row i's weights q into its lanes of a group block (layout above). */
static void put_row_weights(const uint8_t q[QK_K], int i, uint8_t *g)
{
    for (int s = 0; s < 16; s++) {
        uint8_t *lane = g + OFF_QS + 192 * s + 4 * i;
        const uint8_t *in = q + 16 * s;
        for (int e = 0; e < 4; e++) {
            const uint8_t fourth = in[12 + e];
            lane[e] = (uint8_t)(in[e] | (fourth & 3) << 6);
            lane[64 + e] = (uint8_t)(in[4 + e] | ((fourth >> 2) & 3) << 6);
            lane[128 + e] = (uint8_t)(in[8 + e] | (fourth >> 4) << 6);
        }
    }
}

/* Reads row i's weights back from its lanes of a group block. */
static void get_row_weights(const uint8_t *g, int i, uint8_t q[QK_K])
{
    for (int s = 0; s < 16; s++) {
        const uint8_t *lane = g + OFF_QS + 192 * s + 4 * i;
        uint8_t *out = q + 16 * s;
        for (int e = 0; e < 4; e++) {
            out[e] = lane[e] & 0x3F;
            out[4 + e] = lane[64 + e] & 0x3F;
            out[8 + e] = lane[128 + e] & 0x3F;
            out[12 + e] =
                (uint8_t)((lane[e] >> 6) | (lane[64 + e] >> 6) << 2 | (lane[128 + e] >> 6) << 4);
        }
    }
}

static void put_block(void *gb, int i, const void *block)
{
    const struct kq_block_q6_K *x = block;
    uint8_t *g = gb, q[QK_K];
    q6_unpack(x, q);
    put_row_weights(q, i, g);
    for (int s = 0; s < 16; s++)
        g[OFF_SC + R * s + i] = (uint8_t)x->scales[s];
    memcpy(g + OFF_D + 2 * i, &x->d, 2);
}

static void get_block(const void *gb, int i, void *block)
{
    struct kq_block_q6_K *x = block;
    const uint8_t *g = gb;
    uint8_t q[QK_K];
    get_row_weights(g, i, q);
    q6_pack(q, x);
    for (int s = 0; s < 16; s++)
        x->scales[s] = (int8_t)g[OFF_SC + R * s + i];
    memcpy(&x->d, g + OFF_D + 2 * i, 2);
}

/* The unsigned weights of one group block, q[i][j] for row i, element j. */
static void unpack_weights(const uint8_t *g, uint8_t q[R][QK_K])
{
    for (int i = 0; i < R; i++)
        get_row_weights(g, i, q[i]);
}

/* sumi of one group block against one activation block, 16 rows. */
static void block_sumi(const uint8_t *g, const uint8_t q[R][QK_K], const struct kq_block_q8_K *a,
                       int32_t sumi[R])
{
    int16_t bsums[16];
    memcpy(bsums, KQ_Q8K_BSUMS(a), sizeof(bsums));
    for (int i = 0; i < R; i++) {
        int32_t total = 0;
        for (int s = 0; s < 16; s++) {
            int32_t isum = -32 * bsums[s];
            for (int e = 0; e < 16; e++)
                isum += q[i][16 * s + e] * a->qs[16 * s + e];
            total += (int8_t)g[OFF_SC + R * s + i] * isum;
        }
        sumi[i] = total;
    }
}

/* Tokens per pass over the group: a block's weights are unpacked once per pass. */
#define TILE 8

static void tile(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                 size_t y_stride)
{
    const int64_t nb = n_cols / QK_K;
    float acc[TILE][R] = {{0}};
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *g = (const uint8_t *)w + (size_t)b * GROUP_BLOCK_BYTES;
        uint8_t q[R][QK_K];
        unpack_weights(g, q);
        for (int t = 0; t < nt; t++) {
            const struct kq_block_q8_K *a = act[t];
            int32_t sumi[R];
            block_sumi(g, q, &a[b], sumi);
            for (int i = 0; i < R; i++) {
                uint16_t d;
                memcpy(&d, g + OFF_D + 2 * i, 2);
                acc[t][i] = fmaf(kq_f16_to_f32(d) * a[b].d, (float)sumi[i], acc[t][i]);
            }
        }
    }
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < R; i++)
            y[(size_t)t * y_stride + i] = acc[t][i];
}

void kq_x16_register_q6k_ref(struct kq_x16_ops *ops)
{
    *ops = (struct kq_x16_ops){put_block, get_block, tile, TILE};
}
