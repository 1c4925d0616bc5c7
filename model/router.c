/* model/router.c: see router.h. */
#include "model/router.h"

#include "model/ops.h"

static void gate(const struct hparams *hp, float *p)
{
    if (hp->gating == GATING_SOFTMAX) {
        op_softmax(p, hp->n_expert);
        return;
    }
    for (int64_t e = 0; e < hp->n_expert; e++)
        p[e] = op_sigmoid(p[e]);
}

static float score(const float *p, const float *bias, int64_t e)
{
    return bias ? p[e] + bias[e] : p[e];
}

/* Top-k by insertion: k is small (2..8) and n_expert at most a few hundred. Strictly greater
 * wins, so equal scores keep the lower id first. */
static void top_k(const float *p, const float *bias, int64_t n, int k, int32_t *top)
{
    float best[64];
    int filled = 0;
    for (int64_t e = 0; e < n; e++) {
        float s = score(p, bias, e);
        if (filled == k && !(s > best[k - 1]))
            continue;
        int i = filled < k ? filled++ : k - 1;
        while (i > 0 && s > best[i - 1]) {
            best[i] = best[i - 1];
            top[i] = top[i - 1];
            i--;
        }
        best[i] = s;
        top[i] = (int32_t)e;
    }
}

int router_route(const struct hparams *hp, float *probs, const float *bias, const int32_t *forced,
                 int32_t *own, int32_t *used, float *weights)
{
    const int k = (int)hp->n_expert_used;
    gate(hp, probs);
    top_k(probs, bias, hp->n_expert, k, own);
    const int32_t *chosen = forced ? forced : own;
    float sum = 0.0f;
    for (int i = 0; i < k; i++) {
        if (chosen[i] < 0 || chosen[i] >= hp->n_expert)
            return MP_ERANGE;
        used[i] = chosen[i];
        weights[i] = probs[chosen[i]];
        sum += weights[i];
    }
    if (hp->norm_topk) {
        sum = sum < 6.103515625e-5f ? 6.103515625e-5f : sum;
        for (int i = 0; i < k; i++)
            weights[i] /= sum;
    }
    return 0;
}
