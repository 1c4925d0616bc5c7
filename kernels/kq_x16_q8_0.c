/* kernels/kq_x16_q8_0.c: Q8_0 in the x16 layout (kq_x16.h), the reference: group layout, repack,
 * dequantization and the GEMM whose bits every SIMD level reproduces.
 *
 * Group layout. A group holds rows 16g..16g+15; its column block b (32 elements) takes the
 * 16 × 34 = 544 bytes the 16 rows' block b took, at offset 544·b, in this order:
 *   0    d[16]        f16, row i's block scale in half-word i
 *   32   qs[8][16][4] vector j = 0..7, lane i = row i's weights qs[4j .. 4j + 3], each stored
 *                     as the unsigned byte w + 128 (w XOR 0x80). One 64-byte load thus gives 4
 *                     consecutive weights of each of 16 rows as VPDPBUSD's unsigned operand,
 *                     against 4 broadcast signed activation bytes; the bias comes back out as
 *                     128·Σx, one number per token and block shared by the 16 rows.
 * Vectors sit 32 bytes off a 64-byte boundary in every other block (544 = 8.5·64): a pair
 * layout would align them only if the matrix itself were 64-byte aligned, which GGUF's default
 * 32-byte alignment does not promise, so the simple layout stays.
 *
 * Arithmetic, per (row i, token t), activation row a in Q8_0, over blocks b in order, acc = 0:
 *   isum = Σ_{e<32} w_i[e] · a.qs[e]          exact int32 (|isum| ≤ 32·128·127 < 2^24)
 *   dd   = f16(d_i) · f16(a.d)                 float product
 *   acc  = fmaf((float)isum, dd, acc)
 *   y = acc
 * SIMD levels get isum as Σ (w + 128)·x − 128·Σx (AVX-512) or Σ |w|·(x·sign w) (AVX2): other
 * exact routes to the same integer. The int → float conversion is exact (|isum| < 2^24); fmaf is
 * written out so that no compiler contraction choice changes the bits. The row-major dot
 * (kq_ref.c) adds the same integers as acc += isum · dd, unfused. */
#include <math.h>

#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

#define R KQ_X16_ROWS
#define GROUP_BLOCK_BYTES (R * sizeof(struct kq_block_q8_0))
#define OFF_D 0
#define OFF_QS 32
_Static_assert(OFF_QS + 8 * 64 == 16 * 34, "a group's block is 16 Q8_0 blocks");

/* Row i's weight e (0..31) of a group block. */
static int8_t weight(const uint8_t *g, int i, int e)
{
    return (int8_t)(g[OFF_QS + 64 * (e / 4) + 4 * i + e % 4] ^ 0x80);
}

static void put_block(void *gb, int i, const void *block)
{
    const struct kq_block_q8_0 *x = block;
    uint8_t *g = gb;
    memcpy(g + OFF_D + 2 * i, &x->d, 2);
    for (int e = 0; e < QK; e++)
        g[OFF_QS + 64 * (e / 4) + 4 * i + e % 4] = (uint8_t)x->qs[e] ^ 0x80;
}

static void get_block(const void *gb, int i, void *block)
{
    struct kq_block_q8_0 *x = block;
    memcpy(&x->d, (const uint8_t *)gb + OFF_D + 2 * i, 2);
    for (int e = 0; e < QK; e++)
        x->qs[e] = weight(gb, i, e);
}

/* isum of 16 rows against one activation block: per 4 columns, one 64-byte vector of the group
 * (simple loops over the rows that compilers vectorise; ARM machines run this). */
static void block_isums(const uint8_t *g, const int8_t *x, int32_t isum[R])
{
    for (int i = 0; i < R; i++)
        isum[i] = 0;
    for (int j = 0; j < 8; j++) {
        const uint8_t *q = g + OFF_QS + 64 * j;
        const int x0 = x[4 * j], x1 = x[4 * j + 1], x2 = x[4 * j + 2], x3 = x[4 * j + 3];
        for (int i = 0; i < R; i++)
            isum[i] += (q[4 * i] - 128) * x0 + (q[4 * i + 1] - 128) * x1 +
                       (q[4 * i + 2] - 128) * x2 + (q[4 * i + 3] - 128) * x3;
    }
}

static void tile(int64_t n_cols, const void *w, const void *const *act, int nt, float *y,
                 size_t y_stride)
{
    const int64_t nb = n_cols / QK;
    for (int t = 0; t < nt; t++) {
        const struct kq_block_q8_0 *a = act[t];
        float acc[R] = {0};
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *g = (const uint8_t *)w + (size_t)b * GROUP_BLOCK_BYTES;
            const float da = kq_f16_to_f32(a[b].d);
            int32_t isum[R];
            block_isums(g, a[b].qs, isum);
            for (int i = 0; i < R; i++) {
                uint16_t d;
                memcpy(&d, g + OFF_D + 2 * i, 2);
                acc[i] = fmaf((float)isum[i], kq_f16_to_f32(d) * da, acc[i]);
            }
        }
        for (int i = 0; i < R; i++)
            y[(size_t)t * y_stride + i] = acc[i];
    }
}

void kq_x16_register_q8_0_ref(struct kq_x16_ops *ops)
{
    *ops = (struct kq_x16_ops){put_block, get_block, tile, KQ_X16_MAX_TILE};
}
