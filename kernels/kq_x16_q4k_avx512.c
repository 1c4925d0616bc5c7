/* kernels/kq_x16_q4k_avx512.c: Q4_K x16 GEMM for AVX-512 (placeholder until the kernel lands: the
 * reference gemm stays registered). */
#include "kernels/kq_impl.h"

void kq_x16_register_q4k_avx512(struct kq_x16_ops *ops)
{
    (void)ops;
}
