/* model/ops.h: the small element-wise operations of a transformer layer, written to mirror
 * llama.cpp's CPU ops (ggml-cpu/ops.cpp) so rounding stays close: RMSNorm sums squares in double,
 * RoPE advances its angle by repeated multiplication in float, softmax sums in double. Plain C for
 * the compiler to vectorise; none of these shows in a decode profile next to the matmuls. */
#ifndef OPS_H
#define OPS_H

#include <stdint.h>

/* out = x / sqrt(mean(x^2) + eps) * w; out may equal x. */
void op_rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps);

/* NEOX-style rotary embedding in two parts, so that every head of a token shares one set of
 * angles: op_rope_angles fills cs[2i] = cos, cs[2i+1] = sin of angle pos * base^(-2i/n_rot) for
 * i < n_rot/2; op_rope_neox_cs rotates the pairs (i, i + n_rot/2) of one head in place with them
 * (dims past n_rot are left alone). */
void op_rope_angles(float *cs, int64_t n_rot, int32_t pos, float base);
void op_rope_neox_cs(float *x, int64_t n_rot, const float *cs);

/* gate[i] = silu(gate[i]) * up[i] (SwiGLU). */
void op_swiglu(float *gate, const float *up, int64_t n);

/* x = softmax(x) in place. */
void op_softmax(float *x, int64_t n);

float op_sigmoid(float x);

#endif
