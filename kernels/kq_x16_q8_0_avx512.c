/* kernels/kq_x16_q8_0_avx512.c: placeholder until the kernel lands (the reference gemm stays). */
#include "kernels/kq_impl.h"

void kq_x16_register_q8_0_avx512(struct kq_x16_ops *ops)
{
    (void)ops;
}
