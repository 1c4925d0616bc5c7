/* kernels/kq_x16_k4.h: what the x16 groups of Q4_K and Q5_K share, for their reference files.
 *
 * Both formats carry d, dmin, 12 bytes of 6-bit scales and mins, and 128 bytes of nibbles per row
 * and block (Q5_K adds its fifth bits), so their group blocks start alike (kq_x16_q4k.c
 * documents the layout): d[16] and dmin[16] as f16, the 12 scale bytes of each row as 3
 * little-endian words stored word-major (one 64-byte load holds word k of 16 rows), and,
 * wherever the format puts them, 32 nibble vectors, vector v = 8c + j holding bytes
 * qs[32c + 4j .. +3] of row i in lane i. */
#ifndef KQ_X16_K4_H
#define KQ_X16_K4_H

#include <math.h>
#include <string.h>

#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

#define K4_OFF_D 0
#define K4_OFF_DMIN 32
#define K4_OFF_SW 64 /* 3 × 64 bytes; what follows starts at 256 */

/* Row i's d, dmin (2 bytes each, f16 as GGUF stores them; void: packed members) and 12 scale bytes into group block g. */
static inline void k4_put_head(uint8_t *g, int i, const void *d, const void *dmin,
                               const uint8_t scales[12])
{
    memcpy(g + K4_OFF_D + 2 * i, d, 2);
    memcpy(g + K4_OFF_DMIN + 2 * i, dmin, 2);
    for (int k = 0; k < 3; k++)
        memcpy(g + K4_OFF_SW + 64 * k + 4 * i, scales + 4 * k, 4);
}

/* The inverse of k4_put_head. */
static inline void k4_get_head(const uint8_t *g, int i, void *d, void *dmin,
                               uint8_t scales[12])
{
    memcpy(d, g + K4_OFF_D + 2 * i, 2);
    memcpy(dmin, g + K4_OFF_DMIN + 2 * i, 2);
    for (int k = 0; k < 3; k++)
        memcpy(scales + 4 * k, g + K4_OFF_SW + 64 * k + 4 * i, 4);
}

/* Row i's 128 nibble bytes into the 32 vectors at vecs (lane i of each). */
static inline void k4_put_qs(uint8_t *vecs, int i, const uint8_t qs[128])
{
    for (int v = 0; v < 32; v++)
        memcpy(vecs + 64 * v + 4 * i, qs + 32 * (v / 8) + 4 * (v % 8), 4);
}

/* The inverse of k4_put_qs. */
static inline void k4_get_qs(const uint8_t *vecs, int i, uint8_t qs[128])
{
    for (int v = 0; v < 32; v++)
        memcpy(qs + 32 * (v / 8) + 4 * (v % 8), vecs + 64 * v + 4 * i, 4);
}

/* The 6-bit scales sc[s][i] and mins m[s][i] of group block g, 16 rows per sub-block. */
static inline void k4_unpack_scales(const uint8_t *g, int32_t sc[8][KQ_X16_ROWS],
                                    int32_t m[8][KQ_X16_ROWS])
{
    for (int i = 0; i < KQ_X16_ROWS; i++) {
        uint8_t bytes[12];
        for (int k = 0; k < 3; k++)
            memcpy(bytes + 4 * k, g + K4_OFF_SW + 64 * k + 4 * i, 4);
        for (int s = 0; s < 8; s++) {
            uint8_t a, b;
            kq_scale_min_k4(s, bytes, &a, &b);
            sc[s][i] = a;
            m[s][i] = b;
        }
    }
}

/* The block's float step of the shared arithmetic (kq_x16_q4k.c): for each row i,
 * acc = fmaf(f16(d_i)·a_d, sumi, acc), then acc = fmaf(−f16(dmin_i)·a_d, summ, acc). */
static inline void k4_add_block(const uint8_t *g, float a_d, const int32_t sumi[KQ_X16_ROWS],
                                const int32_t summ[KQ_X16_ROWS], float acc[KQ_X16_ROWS])
{
    for (int i = 0; i < KQ_X16_ROWS; i++) {
        uint16_t d, dmin;
        memcpy(&d, g + K4_OFF_D + 2 * i, 2);
        memcpy(&dmin, g + K4_OFF_DMIN + 2 * i, 2);
        const float dd = kq_f16_to_f32(d) * a_d;
        const float dm = kq_f16_to_f32(dmin) * a_d;
        acc[i] = fmaf(dd, (float)sumi[i], acc[i]);
        acc[i] = fmaf(-dm, (float)summ[i], acc[i]);
    }
}

#endif
