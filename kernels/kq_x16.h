/* kernels/kq_x16.h: weights repacked sixteen rows at a time ("x16 layout") for integer GEMM.
 *
 * Why: in the row-major GGUF layout one block holds one row, so every (row, token, sub-block)
 * product ends in a horizontal sum and a scale multiply of its own, and a 512-bit VPDPBUSD can
 * only serve one row. Interleaving the same column block of 16 consecutive rows puts one row in
 * each 32-bit lane: one VPDPBUSD then adds 4 products for each of 16 rows, a sub-block scale is
 * applied to 16 rows at once after the integer sum, and nothing is reduced horizontally. For a
 * single token (decode) the same layout streams each 16-row group from memory once, in order.
 *
 * A repacked matrix takes exactly the bytes of the row-major one (n_rows × row_bytes) and each
 * group of 16 rows stays in the bytes those 16 rows had, so repacking works in place and shard
 * sizes, file offsets and wire formats do not change. Only what is inside a group moves; the
 * byte layout of a group is private to the format's file (kq_x16_<format>.c documents it).
 *
 * Numerics: a repacked product computes the same exact integer block sums as the row-major dot
 * (and llama.cpp's), then scales them in a fixed order documented by the reference kernel. Every
 * SIMD level gives the reference's bits, whatever the number of tokens in a call: batch
 * invariance and `--exact` clusters depend on it. The row-major dots and the x16 kernels differ
 * only in float rounding (within llama.cpp's own variation; the conformance tests check). */
#ifndef KQ_X16_H
#define KQ_X16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kq.h"

#define KQ_X16_ROWS 16

/* How a weight matrix's bytes are arranged. ROWS is GGUF's; zero so that a matrix built with
 * designated initializers is row-major unless it says otherwise. */
enum kq_layout { KQ_LAYOUT_ROWS = 0, KQ_LAYOUT_X16 = 1 };

/* True if a type × (n_cols, n_rows) matrix can be repacked: the format has x16 kernels at this
 * SIMD level (the reference always counts), n_cols is a whole number of blocks and n_rows a
 * multiple of 16. Callers keep the row-major layout otherwise. */
bool kq_x16_supported(enum kq_type type, int64_t n_cols, int64_t n_rows);

/* Repacks n_rows row-major rows at src into dst (each n_rows × kq_row_bytes(type, n_cols)
 * bytes); dst may equal src (in place: one 16-row group at a time goes through a scratch
 * buffer). Returns 0, or -1 if not kq_x16_supported or out of memory (dst untouched then). */
int kq_x16_repack(enum kq_type type, int64_t n_cols, int64_t n_rows, const void *src, void *dst);

/* Dequantizes row r of a repacked matrix into y (n_cols floats): the values to_f32 gives for
 * the same row in the row-major layout, bit for bit. */
void kq_x16_row_to_f32(enum kq_type type, int64_t n_cols, const void *data, int64_t r, float *y);

#endif
