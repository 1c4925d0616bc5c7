/* kernels/kq_x16_q5k_avx512.c: Q5_K x16 GEMM for AVX-512 VNNI (body: kq_x16_q5k_avx512.h).
 * Without GFNI the fifth bit of a single token's weights takes a shift and an and, as in every
 * tile. With GFNI (kq_x16_q5k_gfni.c) one GF2P8AFFINEQB does it: the single-token tile then
 * takes 3.3 instead of 4.75 ns per row-block in L2 and streams 21 instead of 13 GB/s per thread
 * from DRAM (its compute no longer adds to the memory time). Multi-token tiles keep the shift:
 * there GF2P8AFFINEQB competes with VPDPBUSD for the same pipes (1.90 -> 2.43 ns, measured).
 * MOEPOOL_GFNI=0 keeps the plain kernel on a GFNI machine, so that one machine tests both. */
#include <stdlib.h>
#include <string.h>

#include "kernels/kq_x16_q5k_avx512.h"

static KQ_ALWAYS_INLINE __m512i fifth_bit_1tok(__m512i v, int bit)
{
    return fifth_bit(v, bit);
}

static bool gfni_wanted(void)
{
    const char *env = getenv("MOEPOOL_GFNI");
    __builtin_cpu_init();
    return __builtin_cpu_supports("gfni") && !(env && !strcmp(env, "0"));
}

void kq_x16_register_q5k_avx512(struct kq_x16_ops *ops)
{
    ops->tile = gfni_wanted() ? kq_x16_q5k_tile_gfni : tile;
    ops->max_tile = MAX_NT;
}
