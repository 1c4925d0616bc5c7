/* coordinator/bench_model.h: what a decode token must read from memory, from the model's own
 * tensors, for the roofline: tok/s <= read bandwidth / bytes per token. */
#ifndef BENCH_MODEL_H
#define BENCH_MODEL_H

#include <stdint.h>

#include "model/model.h"

struct bench_bytes {
    uint64_t dense;       /* every non-expert weight a token passes through (norms included) */
    uint64_t head;        /* the output head (the token embedding when tied) */
    uint64_t experts;     /* all experts of all MoE layers */
    double per_token;     /* dense + head + n_expert_used / n_expert of the experts */
};

/* Classifies the GGUF's tensors by name: "*_exps.*" are experts; the head is output.weight, or
 * token_embd.weight when the head is tied to it; an untied embedding costs one row per token and
 * is left out; everything else is dense. */
struct bench_bytes bench_decode_bytes(const struct model *m);

#endif
