/* kernels/kq_simd_none.c: stands in for kq_avx2.c and kq_avx512.c when the target is not x86,
 * where cpu_detect() always answers KQ_LEVEL_REF and these are never called; the reference
 * table then serves every format. */
#include "kernels/kq_impl.h"

void kq_register_avx2(struct kq_format *table, struct kq_vec *vec)
{
    (void)table;
    (void)vec;
}

void kq_register_avx512(struct kq_format *table, struct kq_vec *vec, const struct cpu_features *f)
{
    (void)table;
    (void)vec;
    (void)f;
}

void kq_x16_register_q4k_avx2(struct kq_x16_ops *ops)
{
    (void)ops;
}

void kq_x16_register_q4k_avx512(struct kq_x16_ops *ops)
{
    (void)ops;
}

void kq_x16_register_q6k_avx2(struct kq_x16_ops *ops)
{
    (void)ops;
}

void kq_x16_register_q6k_avx512(struct kq_x16_ops *ops)
{
    (void)ops;
}

void kq_x16_register_q5k_avx2(struct kq_x16_ops *ops)
{
    (void)ops;
}

void kq_x16_register_q5k_avx512(struct kq_x16_ops *ops)
{
    (void)ops;
}

void kq_x16_register_q8_0_avx2(struct kq_x16_ops *ops)
{
    (void)ops;
}

void kq_x16_register_q8_0_avx512(struct kq_x16_ops *ops)
{
    (void)ops;
}
