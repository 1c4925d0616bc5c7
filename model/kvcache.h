/* model/kvcache.h: the state one sequence carries between steps: for each attention layer its
 * keys and values (F16, as llama.cpp keeps its KV cache), for each short-conv layer the last
 * l_cache-1 conv inputs (F32, as llama.cpp's recurrent state). Owned by whoever owns the
 * sequence (a CLI run, a server slot). */
#ifndef KVCACHE_H
#define KVCACHE_H

#include <stdint.h>

#include "model/model.h"

struct kv_seq {
    int32_t n_pos;  /* tokens already in the state: the next token's position */
    int32_t n_ctx;  /* capacity in positions */
    int64_t n_layer;
    uint16_t **k;   /* [n_layer] -> [n_ctx][n_head_kv * head_dim] F16; NULL for conv layers */
    uint16_t **v;   /* same shape as k */
    float **conv;   /* [n_layer] -> [conv_l_cache - 1][n_embd], oldest first; NULL for attention */
};

int kv_seq_new(const struct model *m, int32_t n_ctx, struct kv_seq **out, struct mp_error *err);
void kv_seq_free(struct kv_seq *s); /* NULL-safe */
/* Forgets everything: the next token is position 0 again. */
void kv_seq_clear(struct kv_seq *s, const struct model *m);
/* Bytes held for one sequence of n_ctx positions. */
size_t kv_seq_bytes(const struct model *m, int32_t n_ctx);

#endif
