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
    if ((unsigned)type >= KQ_TYPE_COUNT || !x16_table[type].repack)
        return NULL;
    return &x16_table[type];
}

bool kq_x16_supported(enum kq_type type, int64_t n_cols, int64_t n_rows)
{
    return kq_x16_ops(type) && kq_row_bytes(type, n_cols) > 0 && n_rows > 0 &&
           n_rows % KQ_X16_ROWS == 0;
}

int kq_x16_repack(enum kq_type type, int64_t n_cols, int64_t n_rows, const void *src, void *dst)
{
    if (!kq_x16_supported(type, n_cols, n_rows))
        return -1;
    const struct kq_x16_ops *ops = kq_x16_ops(type);
    const size_t row_bytes = kq_row_bytes(type, n_cols);
    const size_t group_bytes = KQ_X16_ROWS * row_bytes;
    void *scratch = malloc(group_bytes);
    if (!scratch)
        return -1;
    for (int64_t g = 0; g < n_rows / KQ_X16_ROWS; g++) {
        const uint8_t *s = (const uint8_t *)src + (size_t)g * group_bytes;
        memcpy(scratch, s, group_bytes); /* src and dst may be the same bytes */
        ops->repack(n_cols, scratch, row_bytes, (uint8_t *)dst + (size_t)g * group_bytes);
    }
    free(scratch);
    return 0;
}

void kq_x16_row_to_f32(enum kq_type type, int64_t n_cols, const void *data, int64_t r, float *y)
{
    const struct kq_x16_ops *ops = kq_x16_ops(type);
    const size_t group_bytes = KQ_X16_ROWS * kq_row_bytes(type, n_cols);
    ops->row_to_f32(n_cols, (const uint8_t *)data + (size_t)(r / KQ_X16_ROWS) * group_bytes,
                    (int)(r % KQ_X16_ROWS), y);
}
