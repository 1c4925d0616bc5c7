/* kernels/kq_x16_q4k_avx2.c: Q4_K x16 GEMM for AVX2 (placeholder until the kernel lands: the
 * reference gemm stays registered). */
#include "kernels/kq_impl.h"

void kq_x16_register_q4k_avx2(struct kq_x16_ops *ops)
{
    (void)ops;
}
