/* kernels/kq_x16_q6k_avx512.c: placeholder. */
#include "kernels/kq_impl.h"

void kq_x16_register_q6k_avx512(struct kq_x16_ops *ops)
{
    (void)ops;
}
