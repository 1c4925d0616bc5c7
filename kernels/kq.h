/* kernels/kq.h: quantization formats and their dot products, as one table indexed by GGUF type id.
 *
 * Spec: ../shared/docs/gguf.md §2-§6 (block layouts, dequantization, and how llama.cpp's CPU
 * backend converts activations to Q8_0 / Q8_K / F16 / BF16 before integer or half dot products).
 * Mirrors ggml's type_traits + type_traits_cpu. Model code never switches on a quant type: it asks
 * this table. kq_ref.c fills every entry with portable C (the specification); kq_avx2.c and
 * kq_avx512.c overwrite the entries they speed up, once, in kq_init(), chosen by cpu.c. */
#ifndef KQ_H
#define KQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Values are GGUF / ggml type ids. */
enum kq_type {
    KQ_F32 = 0,
    KQ_F16 = 1,
    KQ_Q4_0 = 2,
    KQ_Q4_1 = 3,
    KQ_Q5_0 = 6,
    KQ_Q5_1 = 7,
    KQ_Q8_0 = 8,
    KQ_Q8_1 = 9,
    KQ_Q2_K = 10,
    KQ_Q3_K = 11,
    KQ_Q4_K = 12,
    KQ_Q5_K = 13,
    KQ_Q6_K = 14,
    KQ_Q8_K = 15,
    KQ_IQ2_XXS = 16,
    KQ_IQ2_XS = 17,
    KQ_IQ3_XXS = 18,
    KQ_IQ1_S = 19,
    KQ_IQ4_NL = 20,
    KQ_IQ3_S = 21,
    KQ_IQ2_S = 22,
    KQ_IQ4_XS = 23,
    KQ_I8 = 24,
    KQ_I16 = 25,
    KQ_I32 = 26,
    KQ_I64 = 27,
    KQ_F64 = 28,
    KQ_IQ1_M = 29,
    KQ_BF16 = 30,
    KQ_TQ1_0 = 34,
    KQ_TQ2_0 = 35,
    KQ_MXFP4 = 39,
    KQ_TYPE_COUNT = 43, /* ids >= this are unknown */
};

/* Dequantize n elements (n a multiple of block_elems) from blocks to y. */
typedef void (*kq_to_f32_fn)(const void *blocks, float *y, int64_t n);
/* Convert n floats (n a multiple of block_elems) into this format: for an activation format
 * (Q8_0, Q8_K, F16, BF16, F32) exactly as llama.cpp converts activations before a dot product;
 * for a weight format the reference quantizer (used by `moepool synth`). */
typedef void (*kq_from_f32_fn)(const float *x, void *blocks, int64_t n);
/* *s = dot(w, a) over n elements, w in this format, a in this format's act_type. */
typedef void (*kq_dot_fn)(int64_t n, float *s, const void *w, const void *a);
/* s[t] = dot(w, a[t]) for t = 0..3: one weight row against four activation rows, so each weight
 * block is decoded once for four tokens (prompt processing). Each s[t] must be bit-identical to
 * what `dot` of the same table returns for (w, a[t]): batch invariance depends on it. */
typedef void (*kq_dot4_fn)(int64_t n, float *s, const void *w, const void *const a[4]);

struct kq_format {
    const char *name;       /* "Q4_K"; NULL for an id that no ggml type uses */
    int block_elems;        /* elements per block (1 for F32/F16/BF16) */
    int block_bytes;        /* bytes per block */
    enum kq_type act_type;  /* what activations are converted to before `dot` (vec_dot_type) */
    kq_to_f32_fn to_f32;    /* NULL: moepool cannot compute with this type */
    kq_from_f32_fn from_f32;
    kq_dot_fn dot;
    kq_dot4_fn dot4;        /* NULL: callers use `dot` once per token */
};

/* Fills the table: reference kernels, then the best SIMD level this CPU and OS support, capped by
 * MOEPOOL_SIMD=ref|avx2|avx512. Call once before threads start; later calls do nothing. */
void kq_init(void);

/* The entry for a type id, or NULL if the id is unknown. Entries with to_f32 == NULL are known
 * formats moepool can size and skip but not compute with. */
const struct kq_format *kq_format(uint32_t type);

/* True if kq_format(type) exists and has to_f32, from_f32 of its act type, and dot. */
bool kq_can_compute(uint32_t type);

/* Bytes of a row of n elements; 0 if n is not a multiple of the block size or type unknown. */
size_t kq_row_bytes(uint32_t type, int64_t n);

/* Name of the SIMD level in use ("avx512", "avx2", "ref"); for logs and `inspect`. */
const char *kq_simd_name(void);

/* Attention's weighted sum over an F16 value cache: y[i] += p[j]·v[j][i] for rows j = 0..n_rows-1
 * in order, row j at v + j·v_stride halves, n elements each. Each term is one multiply and one
 * add (no fused multiply-add), so every SIMD level gives the reference's bits. Dispatched like
 * the table (kq_init). */
void kq_mad_rows_f16(int64_t n, int64_t n_rows, float *y, const float *p, const uint16_t *v,
                     size_t v_stride);

/* Half and bfloat16 conversion, round-to-nearest-even, as ggml does (docs/gguf.md §3). */
float kq_f16_to_f32(uint16_t h);
uint16_t kq_f32_to_f16(float f);
float kq_bf16_to_f32(uint16_t h);
uint16_t kq_f32_to_bf16(float f);

#endif
