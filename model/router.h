/* model/router.h: turns one token's router logits into k experts and their mixing weights,
 * as llama.cpp's build_moe_ffn does: gating (softmax over all experts, or sigmoid each), an
 * optional bias added to the probabilities for *choosing* only, top-k by that score, weights from
 * the unbiased probabilities, renormalised by their sum clamped to >= 6.103515625e-5. */
#ifndef ROUTER_H
#define ROUTER_H

#include <stdint.h>

#include "model/model.h"

/* probs: [n_expert] router logits, replaced by probabilities. own: [k] the router's own top-k
 * (descending score; ties to the lower id). If forced is non-NULL those experts are used
 * instead; weights: [k] for the experts used (own or forced). Returns MP_ERANGE if a forced id is
 * out of range. */
int router_route(const struct hparams *hp, float *probs, const float *bias, const int32_t *forced,
                 int32_t *own, int32_t *used, float *weights);

#endif
