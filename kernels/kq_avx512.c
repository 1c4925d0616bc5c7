/* kernels/kq_avx512.c: AVX-512 kernels (placeholder until the kernels land). */
#include "kernels/kq_impl.h"

void kq_register_avx512(struct kq_format *table, const struct cpu_features *f)
{
    (void)table;
    (void)f;
}
