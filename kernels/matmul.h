/* kernels/matmul.h: y = W·x for a batch of activation rows, the way llama.cpp's CPU mul_mat does
 * it: each activation row is first converted to the weight format's act_type (Q8_K for K-quants,
 * Q8_0 for Q4_0/Q8_0, F16, BF16, F32), then every output is one `dot` of a weight row with it.
 *
 * Converting is separate from multiplying so that one converted row serves many matrices (an MoE
 * layer converts each token once and multiplies it by the gate and up matrices of all its
 * experts). */
#ifndef MATMUL_H
#define MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "kq.h"
#include "kq_x16.h"
#include "tp.h"

/* A borrowed view of a 2-D weight: n_rows rows of n_cols elements (ne0 = n_cols), n_rows ×
 * row_bytes bytes, row-major or repacked 16 rows at a time (kq_x16.h). */
struct kq_matrix {
    const void *data;
    enum kq_type type;
    int64_t n_cols;   /* K: input width (GGUF ne0) */
    int64_t n_rows;   /* M: output width (GGUF ne1) */
    size_t row_bytes; /* kq_row_bytes(type, n_cols) */
    enum kq_layout layout;
};

/* Dequantizes row r of W into y (n_cols floats), whatever its layout (embedding lookups). */
void kq_matrix_row_to_f32(const struct kq_matrix *W, int64_t r, float *y);

/* Room for one converted activation row of n_cols elements whatever the weight type (F32, the
 * widest act type, at 4 bytes an element), rounded up to a cache line. */
size_t kq_act_row_bytes_max(int64_t n_cols);

/* Bytes one activation row of n_cols elements takes once converted for weights of wtype. */
size_t kq_act_row_bytes(enum kq_type wtype, int64_t n_cols);

/* Converts n_tok rows of n_cols floats (x_stride floats apart) for weights of wtype into xq
 * (act_stride bytes apart), on the pool's threads. */
void kq_convert_act(struct tp_pool *pool, enum kq_type wtype, const float *x, size_t x_stride,
                    int n_tok, int64_t n_cols, void *xq, size_t act_stride);

/* y[t*y_stride + m] = dot(W row m, xq row t) for t < n_tok, m < W->n_rows, on the pool's threads.
 * xq holds rows converted by kq_convert_act for W->type, act_stride bytes apart. */
void kq_matmul(struct tp_pool *pool, const struct kq_matrix *W, const void *xq, size_t act_stride,
               int n_tok, float *y, size_t y_stride);

/* The same for a list of token rows: row t of the product uses xq row rows[t] and writes
 * y + t*y_stride. Lets an expert multiply only the tokens routed to it without copying them. */
void kq_matmul_rows(struct tp_pool *pool, const struct kq_matrix *W, const void *xq,
                    size_t act_stride, const int32_t *rows, int n_tok, float *y, size_t y_stride);

/* One product of a kq_matmul_multi step: as kq_matmul_rows, with rows NULL for token t = xq row t. */
struct kq_mm {
    const struct kq_matrix *W;
    const void *xq;
    size_t act_stride;
    const int32_t *rows;
    int n_tok;
    float *y;
    size_t y_stride;
};

/* Several independent products as one parallel step: their row chunks share one queue, so small
 * matrices (q/k/v, an MoE layer's experts in decode) cost one wake-up and one barrier together
 * instead of one each, and a thread that finishes one matrix moves on to the next. Outputs are
 * the same as n separate kq_matmul_rows calls, bit for bit. */
void kq_matmul_multi(struct tp_pool *pool, int n, const struct kq_mm *mm);

/* The gated activation of a GLU feed-forward, in place: gate[i] = act(gate[i], up[i]), i < n
 * (SwiGLU for the models here; the caller's, so that kernels/ knows no model). */
typedef void (*kq_glu_fn)(float *gate, const float *up, int64_t n);

/* One gated pair: two products over the same rows and tokens (gate.W and up.W of equal n_rows,
 * gate.n_tok == up.n_tok); SwiGLU'd outputs of token t are converted into hq + t·hq_stride. */
struct kq_glu {
    struct kq_mm gate, up;
    void *hq;
    size_t hq_stride;
};

/* The first half of n GLU feed-forwards in one parallel step: every gate and up product as in
 * kq_matmul_multi, then act over gate's outputs (they are overwritten with h) and h converted for
 * weights of down_type (the down matrix's), as kq_convert_act would. Each 256-row unit of a pair
 * is finished by the thread that completes its last rows, so the activation and conversion run
 * on all threads inside the step instead of serially after it. Outputs equal kq_matmul_multi,
 * act and kq_convert_act done one after the other, bit for bit. */
void kq_matmul_glu(struct tp_pool *pool, enum kq_type down_type, kq_glu_fn act, int n,
                   const struct kq_glu *glu);

#endif
