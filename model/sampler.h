/* model/sampler.h: picks the next token from logits, in llama.cpp's default chain order:
 * penalties (repetition, presence, frequency over the last penalty_last_n tokens) → top-k →
 * top-p → min-p → temperature → a draw from a seeded generator. temp <= 0 is greedy (argmax,
 * lowest id on ties). With a 128K vocabulary a full sort would show in a decode profile, so
 * candidates are selected with a heap: O(n_vocab + m log n_vocab) for the m survivors.
 *
 * Each stage as llama.cpp's src/llama-sampling.cpp computes it: top-p's probabilities are those
 * of the softmax over what top-k left (at temperature 1), min-p keeps tokens whose probability is
 * at least min_p times the most likely one's, temperature divides the survivors' logits, and the
 * draw is from their softmax. Candidates of equal logit are ordered by id. Spec and tests:
 * docs/sampler.md, model/sampler_test.c. */
#ifndef SAMPLER_H
#define SAMPLER_H

#include <stdint.h>

#include "base/err.h"

struct samp_params {
    float temp;            /* <= 0: greedy */
    int32_t top_k;         /* <= 0: off */
    float top_p;           /* >= 1: off */
    float min_p;           /* <= 0: off */
    float repeat_penalty;  /* 1: off */
    float presence_penalty;
    float frequency_penalty;
    int32_t penalty_last_n; /* tokens of history the penalties look at; <= 0: penalties off
                               (llama.cpp's 0; its -1, "the whole context", is not offered) */
    uint64_t seed;
};

/* llama.cpp's defaults: temp 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties off. */
struct samp_params samp_defaults(void);

struct sampler;

int samp_new(const struct samp_params *p, int32_t n_vocab, struct sampler **out,
             struct mp_error *err);
void samp_free(struct sampler *s); /* NULL-safe */
/* Picks a token from logits[n_vocab] (modified in place by the penalties). */
int32_t samp_sample(struct sampler *s, float *logits);
/* Records a token of the context (prompt or generated) for the penalties. */
void samp_accept(struct sampler *s, int32_t token);

/* The distribution samp_sample draws from for these logits (penalised in place, as there):
 * writes the surviving candidates, most likely first (equal logits: lowest id first), to ids and
 * their probabilities to probs (each room for n_vocab) and returns their count. Greedy (temp <= 0)
 * gives the argmax with probability 1. 0 when no logit is finite. Draws nothing: for tests and
 * for clients that want the probabilities. */
int32_t samp_distribution(struct sampler *s, float *logits, int32_t *ids, float *probs);

#endif
