/* model/shortconv.c: LFM2's gated short causal convolution (../shared/docs/models/lfm2moe.md
 * §5.1): z = in_proj·a split into B, C, X; u = B ⊙ X; a depthwise causal conv of kernel l_cache
 * over u (the last l_cache-1 inputs of the sequence kept as conv state); y = C ⊙ conv; out =
 * out_proj·y. Tokens are taken in batch order, which is position order within each sequence, so
 * each sequence's state slides forward exactly as in token-by-token decoding. Taps are summed
 * oldest first, as llama.cpp's ssm_conv does. */
#include <string.h>

#include "model/forward.h"

static void conv_token(const float *kernel, int64_t l_cache, int64_t n_embd, float *state,
                       const float *u, const float *gate_c, float *y)
{
    for (int64_t c = 0; c < n_embd; c++) {
        const float *w = kernel + c * l_cache;
        float acc = 0.0f;
        for (int64_t j = 0; j < l_cache - 1; j++)
            acc += w[j] * state[j * n_embd + c];
        acc += w[l_cache - 1] * u[c];
        y[c] = gate_c[c] * acc;
    }
    /* Slide the window: drop the oldest input, append this token's. */
    if (l_cache > 1) {
        memmove(state, state + n_embd, (size_t)((l_cache - 2) * n_embd) * sizeof(float));
        memcpy(state + (l_cache - 2) * n_embd, u, (size_t)n_embd * sizeof(float));
    }
}

void conv_forward(struct fwd_state *st, int il, const struct fwd_batch *b, const float *a,
                  float *out)
{
    const struct layer *L = &st->m->layers[il];
    const int64_t n_embd = st->m->hp.n_embd, l_cache = st->m->hp.conv_l_cache;
    float *z = st->big0, *y = st->big1;
    fwd_matmul(st, &L->conv_in, a, b->n_tokens, z);
    for (int t = 0; t < b->n_tokens; t++) {
        float *zt = z + t * 3 * n_embd;
        const float *B = zt, *C = zt + n_embd, *X = zt + 2 * n_embd;
        float *u = zt; /* B is not needed once u = B ⊙ X is formed */
        for (int64_t c = 0; c < n_embd; c++)
            u[c] = B[c] * X[c];
        conv_token(L->conv_kernel, l_cache, n_embd, b->seq[t]->conv[il], u, C, y + t * n_embd);
    }
    fwd_matmul(st, &L->conv_out, y, b->n_tokens, out);
}
