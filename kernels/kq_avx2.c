/* kernels/kq_avx2.c: AVX2 + FMA + F16C kernels (placeholder until the kernels land). */
#include "kernels/kq_impl.h"

void kq_register_avx2(struct kq_format *table)
{
    (void)table;
}
