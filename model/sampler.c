/* model/sampler.c: see sampler.h (the stages and why they are computed this way). */
#include "model/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct cand {
    float logit;
    int32_t id;
};

struct sampler {
    struct samp_params p;
    int32_t n_vocab;
    struct cand *heap;   /* [n_vocab] */
    struct cand *keep;   /* [n_vocab] survivors, best first */
    int32_t *history;    /* ring of the last penalty_last_n tokens */
    int32_t n_history, history_at;
    int32_t *counts;     /* [n_vocab] occurrences in the history */
    uint64_t rng;
};

struct samp_params samp_defaults(void)
{
    return (struct samp_params){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                                .repeat_penalty = 1.0f, .penalty_last_n = 64, .seed = 0};
}

int samp_new(const struct samp_params *p, int32_t n_vocab, struct sampler **out,
             struct mp_error *err)
{
    struct sampler *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (!s)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    s->p = *p;
    s->p.penalty_last_n = p->penalty_last_n > 0 ? p->penalty_last_n : 0;
    s->n_vocab = n_vocab;
    s->rng = p->seed ^ 0x9e3779b97f4a7c15ull;
    s->heap = malloc((size_t)n_vocab * sizeof(*s->heap));
    s->keep = malloc((size_t)n_vocab * sizeof(*s->keep));
    s->history = calloc((size_t)s->p.penalty_last_n + 1, sizeof(*s->history));
    s->counts = calloc((size_t)n_vocab, sizeof(*s->counts));
    if (!s->heap || !s->keep || !s->history || !s->counts) {
        samp_free(s);
        return mp_error_set(err, MP_ENOMEM, "out of memory for a sampler");
    }
    *out = s;
    return 0;
}

void samp_free(struct sampler *s)
{
    if (!s)
        return;
    free(s->heap);
    free(s->keep);
    free(s->history);
    free(s->counts);
    free(s);
}

void samp_accept(struct sampler *s, int32_t token)
{
    if (token < 0 || token >= s->n_vocab || s->p.penalty_last_n == 0)
        return;
    if (s->n_history == s->p.penalty_last_n)
        s->counts[s->history[s->history_at]]--;
    else
        s->n_history++;
    s->history[s->history_at] = token;
    s->history_at = (s->history_at + 1) % s->p.penalty_last_n;
    s->counts[token]++;
}

/* Penalties as llama.cpp applies them, once per distinct token of the history. */
static void penalize(struct sampler *s, float *logits)
{
    const struct samp_params *p = &s->p;
    if (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f)
        return;
    for (int32_t i = 0; i < s->n_history; i++) {
        int32_t t = s->history[i], c = s->counts[t];
        if (c <= 0 || logits[t] != logits[t])
            continue;
        for (int32_t j = 0; j < i; j++)
            if (s->history[j] == t)
                c = 0; /* already done for an earlier occurrence */
        if (!c)
            continue;
        logits[t] = logits[t] <= 0 ? logits[t] * p->repeat_penalty : logits[t] / p->repeat_penalty;
        logits[t] -= (float)c * p->frequency_penalty + p->presence_penalty;
    }
}

static int32_t argmax(const float *logits, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = i;
    return best;
}

static bool before(struct cand a, struct cand b)
{
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

static void sift_down(struct cand *h, int32_t n, int32_t i)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && before(h[l], h[top]))
            top = l;
        if (r < n && before(h[r], h[top]))
            top = r;
        if (top == i)
            return;
        struct cand tmp = h[i];
        h[i] = h[top];
        h[top] = tmp;
        i = top;
    }
}

static struct cand pop(struct cand *h, int32_t *n)
{
    struct cand top = h[0];
    h[0] = h[--*n];
    sift_down(h, *n, 0);
    return top;
}

static double next_uniform(struct sampler *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* All finite logits as a heap, best first; returns their count. */
static int32_t build_heap(struct sampler *s, const float *logits)
{
    int32_t n = 0;
    for (int32_t i = 0; i < s->n_vocab; i++)
        if (logits[i] == logits[i] && logits[i] > -INFINITY)
            s->heap[n++] = (struct cand){logits[i], i};
    for (int32_t i = n / 2 - 1; i >= 0; i--)
        sift_down(s->heap, n, i);
    return n;
}

/* top-k, top-p and min-p: writes the survivors to s->keep, best first, and returns their count.
 * Candidates leave the heap only as far as the cuts reach, so a 128K vocabulary is not sorted. */
static int32_t select_candidates(struct sampler *s, const float *logits)
{
    struct cand *keep = s->keep;
    int32_t n = build_heap(s, logits);
    if (n == 0)
        return 0;
    const float max = s->heap[0].logit;
    const int32_t k = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
    /* top-p's probabilities at temperature 1, normalised over top-k's survivors: llama.cpp's
     * top_p takes the softmax of what top_k left. Without top-k that is the whole vocabulary. */
    int32_t popped = 0;
    double total = 0.0;
    if (k < n) {
        while (popped < k)
            keep[popped++] = pop(s->heap, &n);
        for (int32_t i = 0; i < k; i++)
            total += exp((double)(keep[i].logit - max));
    } else {
        for (int32_t i = 0; i < n; i++)
            total += exp((double)(s->heap[i].logit - max));
    }
    const bool top_p = s->p.top_p < 1.0f;
    int32_t m = 0;
    double cum = 0.0;
    for (int32_t i = 0; i < k; i++) {
        struct cand c = i < popped ? keep[i] : pop(s->heap, &n);
        double rel = exp((double)(c.logit - max)); /* probability relative to the best one */
        if (i > 0 && ((top_p && cum >= s->p.top_p) || rel < s->p.min_p))
            break;
        keep[m++] = c;
        cum += rel / total;
    }
    return m;
}

/* Survivor i's weight at the sampling temperature, relative to the best one's. */
static double weight(const struct sampler *s, int32_t i)
{
    return exp((double)((s->keep[i].logit - s->keep[0].logit) / s->p.temp));
}

int32_t samp_distribution(struct sampler *s, float *logits, int32_t *ids, float *probs)
{
    penalize(s, logits);
    if (s->p.temp <= 0.0f) {
        ids[0] = argmax(logits, s->n_vocab);
        probs[0] = 1.0f;
        return 1;
    }
    int32_t m = select_candidates(s, logits);
    double total = 0.0;
    for (int32_t i = 0; i < m; i++)
        total += weight(s, i);
    for (int32_t i = 0; i < m; i++) {
        ids[i] = s->keep[i].id;
        probs[i] = (float)(weight(s, i) / total);
    }
    return m;
}

int32_t samp_sample(struct sampler *s, float *logits)
{
    penalize(s, logits);
    if (s->p.temp <= 0.0f)
        return argmax(logits, s->n_vocab);
    int32_t m = select_candidates(s, logits);
    if (m == 0)
        return argmax(logits, s->n_vocab);
    double total = 0.0;
    for (int32_t i = 0; i < m; i++)
        total += weight(s, i);
    double r = next_uniform(s) * total, acc = 0.0;
    for (int32_t i = 0; i < m; i++) {
        acc += weight(s, i);
        if (r < acc)
            return s->keep[i].id;
    }
    return s->keep[m - 1].id; /* r rounded up to the total */
}
