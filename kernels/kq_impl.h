/* kernels/kq_impl.h: what the files of kernels/ share and nobody else sees: the block layouts,
 * the reference table, the SIMD levels, and each ISA file's registration function.
 *
 * Spec: ../shared/docs/gguf.md §2 and §4 (block layouts). Blocks are declared packed because a
 * GGUF tensor is only as aligned as the file's general.alignment says (it may legally be 1), and
 * activation rows may start anywhere a caller puts them; x86 loads cost the same either way. */
#ifndef KQ_IMPL_H
#define KQ_IMPL_H

#include <stdint.h>
#include <string.h>

#include "kq.h"

#define KQ_PACKED __attribute__((packed))
#define QK 32   /* elements per block of the _0 formats (QK4_0, QK5_0, QK8_0) */
#define QK_K 256 /* elements per super-block of the K formats */

struct KQ_PACKED kq_block_q4_0 {
    uint16_t d;      /* f16 scale */
    uint8_t qs[16];  /* element j in the low nibble of qs[j], element j+16 in the high one */
};
_Static_assert(sizeof(struct kq_block_q4_0) == 18, "Q4_0 block is 18 bytes");

struct KQ_PACKED kq_block_q5_0 {
    uint16_t d;
    uint8_t qh[4];   /* bit j = fifth bit of element j (little-endian u32) */
    uint8_t qs[16];
};
_Static_assert(sizeof(struct kq_block_q5_0) == 22, "Q5_0 block is 22 bytes");

struct KQ_PACKED kq_block_q8_0 {
    uint16_t d;
    int8_t qs[32];
};
_Static_assert(sizeof(struct kq_block_q8_0) == 34, "Q8_0 block is 34 bytes");

struct KQ_PACKED kq_block_q4_K {
    uint16_t d;          /* f16 scale of the 6-bit sub-block scales */
    uint16_t dmin;       /* f16 scale of the 6-bit sub-block mins */
    uint8_t scales[12];  /* 8 scales + 8 mins, 6 bits each (gguf.md §4) */
    uint8_t qs[128];
};
_Static_assert(sizeof(struct kq_block_q4_K) == 144, "Q4_K block is 144 bytes");

struct KQ_PACKED kq_block_q5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
};
_Static_assert(sizeof(struct kq_block_q5_K) == 176, "Q5_K block is 176 bytes");

struct KQ_PACKED kq_block_q6_K {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
};
_Static_assert(sizeof(struct kq_block_q6_K) == 210, "Q6_K block is 210 bytes");

struct KQ_PACKED kq_block_q8_K {
    float d;             /* f32, may be negative (gguf.md §6) */
    int8_t qs[256];
    int16_t bsums[16];   /* sum of each 16 qs */
};
_Static_assert(sizeof(struct kq_block_q8_K) == 292, "Q8_K block is 292 bytes");

/* The bsums of a Q8_K block as a pointer: the member is packed, so its address is only
 * byte-aligned and must be read with memcpy or unaligned vector loads. */
#define KQ_Q8K_BSUMS(b) ((const uint8_t *)(b) + offsetof(struct kq_block_q8_K, bsums))

/* SIMD levels, each including the ones before it. */
enum kq_level { KQ_LEVEL_REF = 0, KQ_LEVEL_AVX2 = 1, KQ_LEVEL_AVX512 = 2 };

/* CPU features cpu.c found, as far as the OS saves the registers they need. */
struct cpu_features {
    enum kq_level level;  /* best level usable */
    bool avx512_bf16;     /* VDPBF16PS (only meaningful with KQ_LEVEL_AVX512) */
};

/* The reference table, kq_ref.c: every type id, portable kernels. */
extern const struct kq_format kq_ref_table[KQ_TYPE_COUNT];

/* Best features of this CPU and OS (cpu.c). */
struct cpu_features cpu_detect(void);

/* Rebuilds the live table for the given level (capped at what the CPU has) and returns the level
 * used. For tests and benchmarks only: not thread-safe, nothing may be computing meanwhile. */
enum kq_level kq_init_level(enum kq_level level);

/* Name of a level ("ref", "avx2", "avx512"). */
const char *kq_level_name(enum kq_level level);

/* Kernels outside the per-format table (attention over the F16 KV cache), same dispatch. */
typedef void (*kq_mad_rows_fn)(int64_t n, int64_t n_rows, float *y, const float *p,
                               const uint16_t *v, size_t v_stride);
struct kq_vec {
    kq_mad_rows_fn mad_rows_f16;
};

/* Overwrite the entries an ISA file speeds up (kq_avx2.c, kq_avx512.c). */
void kq_register_avx2(struct kq_format *table, struct kq_vec *vec);
void kq_register_avx512(struct kq_format *table, struct kq_vec *vec, const struct cpu_features *f);

/* The reference kq_vec kernels (kq_ref.c). */
void kq_mad_rows_f16_ref(int64_t n, int64_t n_rows, float *y, const float *p, const uint16_t *v,
                         size_t v_stride);

/* Reference kernels that SIMD files fall back to or tests compare against. */
void kq_quantize_q8_0_ref(const float *x, void *blocks, int64_t n);
void kq_quantize_q8_K_ref(const float *x, void *blocks, int64_t n);

/* Reference weight quantizers (kq_quantize.c): ggml's quantize_row_*_ref schemes. */
void kq_quantize_q4_0(const float *x, void *blocks, int64_t n);
void kq_quantize_q5_0(const float *x, void *blocks, int64_t n);
void kq_quantize_q4_K(const float *x, void *blocks, int64_t n);
void kq_quantize_q5_K(const float *x, void *blocks, int64_t n);
void kq_quantize_q6_K(const float *x, void *blocks, int64_t n);

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block (gguf.md §4). */
static inline void kq_scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Round to nearest, ties to even, for |v| < 2^22: adding 1.5·2^23 leaves the integer in the
 * low mantissa bits (ggml's nearest_int; also what _mm256_round_ps(v, nearest) gives). */
static inline int kq_nearest_int(float v)
{
    float t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

/* ---- x16 layout (kq_x16.h): one entry per format that has it, filled like the dot table ---- */

/* Row i (0..15) of a group's column block gb (the 16 × block_bytes the rows' blocks took) from
 * or into that row's block as GGUF stores it. This is all a format's file says about its group
 * layout; kq_x16.c repacks whole matrices and dequantizes rows with it. */
typedef void (*kq_x16_put_fn)(void *gb, int i, const void *block);
typedef void (*kq_x16_get_fn)(const void *gb, int i, void *block);
/* The most tokens one tile call takes. */
#define KQ_X16_MAX_TILE 8

/* Forces a SIMD kernel body inline at each call, where its token count is a constant: each
 * instance then keeps its accumulators in registers. */
#define KQ_ALWAYS_INLINE inline __attribute__((always_inline))

/* The body of a tile entry whose kernel RUN(n, t) (tokens t .. t+n-1) has instances for n =
 * max_nt, 2 and 1: nt tokens go as runs of max_nt, then 2, then 1 (3 = 2 + 1). */
#define KQ_X16_TILE_RUNS(max_nt, nt, RUN)                                                        \
    for (int t_ = 0; t_ < (nt);) {                                                               \
        const int n_ = (nt)-t_ >= (max_nt) ? (max_nt) : (nt)-t_ >= 2 ? 2 : 1;                   \
        if (n_ == (max_nt))                                                                      \
            RUN(max_nt, t_);                                                                     \
        else if (n_ == 2)                                                                        \
            RUN(2, t_);                                                                          \
        else                                                                                     \
            RUN(1, t_);                                                                          \
        t_ += n_;                                                                                \
    }

/* The body of a tile entry whose kernel RUN(n) (all nt tokens at once) has an instance for each
 * of 1, 2, 3 and 4 tokens (max_tile 4): one pass over the weights for any nt. */
#define KQ_X16_TILE_SIZES_4(nt, RUN)                                                             \
    switch (nt) {                                                                                \
    case 1: RUN(1); break;                                                                       \
    case 2: RUN(2); break;                                                                       \
    case 3: RUN(3); break;                                                                       \
    default: RUN(4); break;                                                                      \
    }
/* nt tokens (1 .. the entry's max_tile) against the group at w: y[t·y_stride + i] = dot(row i,
 * the activation row at act[t]) for i < 16, act[t] converted to the format's act_type. Outputs
 * must not depend on nt or on a token's place in the tile, and every SIMD level must give the
 * reference's bits. */
typedef void (*kq_x16_tile_fn)(int64_t n_cols, const void *w, const void *const *act, int nt,
                               float *y, size_t y_stride);

struct kq_x16_ops {
    kq_x16_put_fn put_block; /* NULL: no x16 layout for this format */
    kq_x16_get_fn get_block;
    kq_x16_tile_fn tile;
    int max_tile; /* tokens per tile call, at most KQ_X16_MAX_TILE */
};

/* Every token of a product against one group (the kernel's whole job, in tiles of max_tile):
 * y[t·y_stride + i] for t < n_tok, activation row t at xq + (rows ? rows[t] : t)·act_stride. */
void kq_x16_gemm(const struct kq_x16_ops *ops, int64_t n_cols, const void *w, const uint8_t *xq,
                 size_t act_stride, const int32_t *rows, int n_tok, float *y, size_t y_stride);

/* Each format's x16 entry: its reference file fills the entry, each SIMD file then overwrites
 * what it speeds up (kq_x16_init_level calls them up to the level; non-x86 builds get empty
 * SIMD ones from kq_simd_none.c). */
void kq_x16_register_q4k_ref(struct kq_x16_ops *ops);
void kq_x16_register_q4k_avx2(struct kq_x16_ops *ops);
void kq_x16_register_q4k_avx512(struct kq_x16_ops *ops);
void kq_x16_register_q6k_ref(struct kq_x16_ops *ops);
void kq_x16_register_q6k_avx2(struct kq_x16_ops *ops);
void kq_x16_register_q6k_avx512(struct kq_x16_ops *ops);
void kq_x16_register_q5k_ref(struct kq_x16_ops *ops);
void kq_x16_register_q5k_avx2(struct kq_x16_ops *ops);
void kq_x16_register_q5k_avx512(struct kq_x16_ops *ops);
void kq_x16_register_q8_0_ref(struct kq_x16_ops *ops);
void kq_x16_register_q8_0_avx2(struct kq_x16_ops *ops);
void kq_x16_register_q8_0_avx512(struct kq_x16_ops *ops);

/* Rebuilds the live x16 table for a level already capped by the CPU (called by kq_init_level). */
void kq_x16_init_level(enum kq_level level);

/* The live x16 entry of a type, or NULL if the format has none. */
const struct kq_x16_ops *kq_x16_ops(enum kq_type type);

#endif
