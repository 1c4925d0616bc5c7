/* kernels/cpu.c: picks the SIMD level and holds the live format table that level fills.
 *
 * The level is the best the CPU (CPUID) and the OS (XGETBV: are YMM / ZMM saved on context
 * switch?) both support, capped by MOEPOOL_SIMD=ref|avx2|avx512. kq_init copies kq_ref.c's
 * table and lets each ISA file up to the level overwrite the entries it speeds up. ggml's
 * cpu-feats.cpp checks CPUID only (a FIXME there); without the XGETBV check an OS that does not
 * save ZMM state would corrupt registers across context switches. */
#include <stdlib.h>
#include <string.h>

#include "kernels/kq_impl.h"

static struct kq_format table[KQ_TYPE_COUNT];
static struct kq_vec vec = {kq_mad_rows_f16_ref};
static enum kq_level current_level;
static bool initialized;

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void)
{
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

struct cpu_features cpu_detect(void)
{
    struct cpu_features f = {KQ_LEVEL_REF, false};
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return f;
    const bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29);
    if (!osxsave)
        return f;
    const uint64_t xcr0 = xgetbv0();
    const bool os_ymm = (xcr0 & 0x6) == 0x6;         /* SSE and AVX state */
    const bool os_zmm = (xcr0 & 0xE6) == 0xE6;       /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return f;
    const bool avx2 = b & (1u << 5);
    const bool avx512 = (b & (1u << 16)) && (b & (1u << 17)) && (b & (1u << 30)) &&
                        (b & (1u << 31)) && (c & (1u << 11)); /* F, DQ, BW, VL, VNNI */
    if (os_ymm && avx2 && fma && f16c)
        f.level = KQ_LEVEL_AVX2;
    if (f.level == KQ_LEVEL_AVX2 && os_zmm && avx512) {
        f.level = KQ_LEVEL_AVX512;
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d))
            f.avx512_bf16 = a & (1u << 5);
    }
    return f;
}
#else
struct cpu_features cpu_detect(void)
{
    return (struct cpu_features){KQ_LEVEL_REF, false};
}
#endif

const char *kq_level_name(enum kq_level level)
{
    static const char *const names[] = {"ref", "avx2", "avx512"};
    return names[level];
}

static enum kq_level level_cap_from_env(void)
{
    const char *s = getenv("MOEPOOL_SIMD");
    if (s && !strcmp(s, "ref"))
        return KQ_LEVEL_REF;
    if (s && !strcmp(s, "avx2"))
        return KQ_LEVEL_AVX2;
    return KQ_LEVEL_AVX512;
}

enum kq_level kq_init_level(enum kq_level level)
{
    struct cpu_features f = cpu_detect();
    if (level > f.level)
        level = f.level;
    memcpy(table, kq_ref_table, sizeof(table));
    vec = (struct kq_vec){kq_mad_rows_f16_ref};
    if (level >= KQ_LEVEL_AVX2)
        kq_register_avx2(table, &vec);
    if (level >= KQ_LEVEL_AVX512)
        kq_register_avx512(table, &vec, &f);
    kq_x16_init_level(level);
    current_level = level;
    initialized = true;
    return level;
}

void kq_init(void)
{
    if (!initialized)
        kq_init_level(level_cap_from_env());
}

const struct kq_format *kq_format(uint32_t type)
{
    if (type >= KQ_TYPE_COUNT)
        return NULL;
    const struct kq_format *f = initialized ? &table[type] : &kq_ref_table[type];
    return f->name ? f : NULL;
}

bool kq_can_compute(uint32_t type)
{
    const struct kq_format *f = kq_format(type);
    if (!f || !f->to_f32 || !f->dot)
        return false;
    const struct kq_format *act = kq_format(f->act_type);
    return act && act->from_f32;
}

size_t kq_row_bytes(uint32_t type, int64_t n)
{
    const struct kq_format *f = kq_format(type);
    if (!f || n < 0 || n % f->block_elems != 0)
        return 0;
    return (size_t)(n / f->block_elems) * (size_t)f->block_bytes;
}

void kq_mad_rows_f16(int64_t n, int64_t n_rows, float *y, const float *p, const uint16_t *v,
                     size_t v_stride)
{
    vec.mad_rows_f16(n, n_rows, y, p, v, v_stride);
}

const char *kq_simd_name(void)
{
    return kq_level_name(initialized ? current_level : KQ_LEVEL_REF);
}
