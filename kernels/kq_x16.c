/* kernels/kq_x16.c: the x16 layout's dispatch table and the layout-generic operations (kq_x16.h).
 *
 * Each format with an x16 layout has one file per SIMD level (kq_x16_<format>.c is its
 * reference and documents its group layout; _avx2.c / _avx512.c overwrite the gemm) and
 * registers itself below, like the dot table in cpu.c. */
#include <stdlib.h>
#include <string.h>

#include "kernels/kq_impl.h"
#include "kernels/kq_x16.h"

static struct kq_x16_ops x16_table[KQ_TYPE_COUNT];

void kq_x16_init_level(enum kq_level level)
{
    memset(x16_table, 0, sizeof(x16_table));
    /* formats register here, reference first, then each level up to `level` */
    kq_x16_register_q4k_ref(&x16_table[KQ_Q4_K]);
    if (level >= KQ_LEVEL_AVX2)
        kq_x16_register_q4k_avx2(&x16_table[KQ_Q4_K]);
    if (level >= KQ_LEVEL_AVX512)
        kq_x16_register_q4k_avx512(&x16_table[KQ_Q4_K]);
    kq_x16_register_q6k_ref(&x16_table[KQ_Q6_K]);
    if (level >= KQ_LEVEL_AVX2)
        kq_x16_register_q6k_avx2(&x16_table[KQ_Q6_K]);
    if (level >= KQ_LEVEL_AVX512)
        kq_x16_register_q6k_avx512(&x16_table[KQ_Q6_K]);
    kq_x16_register_q5k_ref(&x16_table[KQ_Q5_K]);
    if (level >= KQ_LEVEL_AVX2)
        kq_x16_register_q5k_avx2(&x16_table[KQ_Q5_K]);
    if (level >= KQ_LEVEL_AVX512)
        kq_x16_register_q5k_avx512(&x16_table[KQ_Q5_K]);
    kq_x16_register_q8_0_ref(&x16_table[KQ_Q8_0]);
    if (level >= KQ_LEVEL_AVX2)
        kq_x16_register_q8_0_avx2(&x16_table[KQ_Q8_0]);
    if (level >= KQ_LEVEL_AVX512)
        kq_x16_register_q8_0_avx512(&x16_table[KQ_Q8_0]);
}

const struct kq_x16_ops *kq_x16_ops(enum kq_type type)
{
    kq_init();
    if ((unsigned)type >= KQ_TYPE_COUNT || !x16_table[type].put_block)
        return NULL;
    return &x16_table[type];
}

bool kq_x16_supported(enum kq_type type, int64_t n_cols, int64_t n_rows)
{
    return kq_x16_ops(type) && kq_row_bytes(type, n_cols) > 0 && n_rows > 0 &&
           n_rows % KQ_X16_ROWS == 0;
}

/* The largest row-major block of a format with x16 kernels (Q6_K: 210 bytes). */
#define BLOCK_MAX 256

int kq_x16_repack(enum kq_type type, int64_t n_cols, int64_t n_rows, const void *src, void *dst)
{
    if (!kq_x16_supported(type, n_cols, n_rows))
        return -1;
    const struct kq_x16_ops *ops = kq_x16_ops(type);
    const size_t block_bytes = (size_t)kq_ref_table[type].block_bytes;
    const int64_t n_blocks = n_cols / kq_ref_table[type].block_elems;
    const size_t row_bytes = (size_t)n_blocks * block_bytes;
    const size_t group_bytes = KQ_X16_ROWS * row_bytes;
    uint8_t *scratch = malloc(group_bytes);
    if (!scratch)
        return -1;
    for (int64_t g = 0; g < n_rows / KQ_X16_ROWS; g++) {
        uint8_t *group = (uint8_t *)dst + (size_t)g * group_bytes;
        memcpy(scratch, (const uint8_t *)src + (size_t)g * group_bytes, group_bytes); /* src may be dst */
        for (int64_t b = 0; b < n_blocks; b++)
            for (int i = 0; i < KQ_X16_ROWS; i++)
                ops->put_block(group + (size_t)b * KQ_X16_ROWS * block_bytes, i,
                               scratch + (size_t)i * row_bytes + (size_t)b * block_bytes);
    }
    free(scratch);
    return 0;
}

void kq_x16_row_to_f32(enum kq_type type, int64_t n_cols, const void *data, int64_t r, float *y)
{
    const struct kq_x16_ops *ops = kq_x16_ops(type);
    const struct kq_format *f = &kq_ref_table[type];
    const size_t gb_bytes = KQ_X16_ROWS * (size_t)f->block_bytes;
    const int64_t n_blocks = n_cols / f->block_elems;
    const uint8_t *group = (const uint8_t *)data + (size_t)(r / KQ_X16_ROWS) * n_blocks * gb_bytes;
    _Alignas(64) uint8_t block[BLOCK_MAX];
    _Static_assert(sizeof(struct kq_block_q6_K) <= BLOCK_MAX, "room for a row-major block");
    for (int64_t b = 0; b < n_blocks; b++) {
        ops->get_block(group + (size_t)b * gb_bytes, (int)(r % KQ_X16_ROWS), block);
        f->to_f32(block, y + b * f->block_elems, f->block_elems);
    }
}

void kq_x16_gemm(const struct kq_x16_ops *ops, int64_t n_cols, const void *w, const uint8_t *xq,
                 size_t act_stride, const int32_t *rows, int n_tok, float *y, size_t y_stride)
{
    for (int t0 = 0; t0 < n_tok; t0 += ops->max_tile) {
        const int nt = n_tok - t0 < ops->max_tile ? n_tok - t0 : ops->max_tile;
        const void *act[KQ_X16_MAX_TILE];
        for (int t = 0; t < nt; t++)
            act[t] = xq + (size_t)(rows ? rows[t0 + t] : t0 + t) * act_stride;
        ops->tile(n_cols, w, act, nt, y + (size_t)t0 * y_stride, y_stride);
    }
}
