/* model/sampler_test.c: the sampler (sampler.h) against a straightforward reference written here:
 * a full sort of (logit, id) and each stage computed as its definition reads (llama.cpp's
 * src/llama-sampling.cpp). Random logits of several vocabulary sizes, each stage alone and the
 * whole default chain; penalties over a ring of history; greedy ties; seeds; and a chi-square
 * test that the draws follow the distribution.
 *
 * usage: sampler_test */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "model/sampler.h"

/* ---- random logits ---- */

static uint64_t rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Logits on a grid of 1/64 in [-8, 8): exact in float, and with n much larger than the 1024 grid
 * points many of them are equal, so ties are exercised on every call. */
static void random_logits(uint64_t *state, float *x, int32_t n, float scale)
{
    for (int32_t i = 0; i < n; i++)
        x[i] = scale * (float)((int)(rng_next(state) % 1024) - 512) / 64.0f;
}

/* ---- the reference ---- */

struct ref_cand {
    float logit;
    int32_t id;
};

static int by_logit_desc(const void *pa, const void *pb)
{
    const struct ref_cand *a = pa, *b = pb;
    if (a->logit != b->logit)
        return a->logit > b->logit ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* llama.cpp's penalties: once per distinct token among the last last_n accepted ones. */
static void ref_penalize(const struct samp_params *p, const int32_t *hist, int n_hist, float *x)
{
    int from = p->penalty_last_n > 0 && n_hist > p->penalty_last_n ? n_hist - p->penalty_last_n : 0;
    if (p->penalty_last_n <= 0)
        return;
    for (int i = from; i < n_hist; i++) {
        int32_t t = hist[i];
        bool seen = false;
        int count = 0;
        for (int j = from; j < n_hist; j++) {
            seen |= j < i && hist[j] == t;
            count += hist[j] == t;
        }
        if (seen)
            continue;
        x[t] = x[t] <= 0 ? x[t] * p->repeat_penalty : x[t] / p->repeat_penalty;
        x[t] -= (float)count * p->frequency_penalty + (float)(count > 0) * p->presence_penalty;
    }
}

/* Softmax of c[0..n) at temperature t, in double, into p. */
static void ref_softmax(const struct ref_cand *c, int32_t n, double t, double *p)
{
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        sum += p[i] = exp(((double)c[i].logit - (double)c[0].logit) / t);
    for (int32_t i = 0; i < n; i++)
        p[i] /= sum;
}

/* The chain on already penalised logits: sorted candidates c (all n of them), cut in turn by
 * top-k, top-p, min-p, then weighted by the temperature. Returns the survivors' count; c[0..m)
 * and p[0..m) are the distribution. */
static int32_t ref_chain(const struct samp_params *sp, const float *x, int32_t n,
                         struct ref_cand *c, double *p)
{
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (isfinite(x[i]))
            c[m++] = (struct ref_cand){x[i], i};
    qsort(c, (size_t)m, sizeof(*c), by_logit_desc);
    if (sp->temp <= 0) {
        p[0] = 1.0; /* greedy: the first of the sorted order, probability 1 */
        return m ? 1 : 0;
    }
    if (sp->top_k > 0 && sp->top_k < m)
        m = sp->top_k;
    if (sp->top_p < 1.0f && m > 0) {
        ref_softmax(c, m, 1.0, p);
        double cum = 0.0;
        int32_t keep = m;
        for (int32_t i = 0; i < m; i++) {
            cum += p[i];
            if (cum >= sp->top_p) {
                keep = i + 1;
                break;
            }
        }
        m = keep;
    }
    if (sp->min_p > 0.0f && m > 0) {
        /* llama.cpp: logit >= max logit + log(min_p), i.e. p >= min_p * p_max */
        double min_logit = (double)c[0].logit + log((double)sp->min_p);
        int32_t keep = 1;
        while (keep < m && (double)c[keep].logit >= min_logit)
            keep++;
        m = keep;
    }
    ref_softmax(c, m, sp->temp, p);
    return m;
}

/* ---- comparing the sampler with the reference ---- */

struct bufs {
    int32_t n;
    float *x, *y;       /* logits: the sampler's copy, the reference's copy */
    int32_t *ids;
    float *probs;
    struct ref_cand *c;
    double *p;
};

static struct bufs bufs_new(int32_t n)
{
    return (struct bufs){n,
                         malloc((size_t)n * sizeof(float)),
                         malloc((size_t)n * sizeof(float)),
                         malloc((size_t)n * sizeof(int32_t)),
                         malloc((size_t)n * sizeof(float)),
                         malloc((size_t)n * sizeof(struct ref_cand)),
                         malloc((size_t)n * sizeof(double))};
}

static void bufs_free(struct bufs *b)
{
    free(b->x);
    free(b->y);
    free(b->ids);
    free(b->probs);
    free(b->c);
    free(b->p);
}

/* Runs one case: the sampler fed with hist, asked for its distribution over logits, against the
 * reference. Probabilities may differ by 1e-6: both sum in double but in different orders and
 * the sampler rounds its result to float (a relative 6e-8); 1e-6 is far below the smallest
 * probability a wrong cut would add or remove in these cases (several 1e-4). */
static void compare(const char *what, const struct samp_params *sp, const float *logits,
                    const int32_t *hist, int n_hist, struct bufs *b)
{
    struct sampler *s;
    struct mp_error err = {0};
    CHECK(samp_new(sp, b->n, &s, &err) == 0, "%s: samp_new: %s", what, err.msg);
    if (!s)
        return;
    for (int i = 0; i < n_hist; i++)
        samp_accept(s, hist[i]);
    memcpy(b->x, logits, (size_t)b->n * sizeof(float));
    memcpy(b->y, logits, (size_t)b->n * sizeof(float));
    int32_t m = samp_distribution(s, b->x, b->ids, b->probs);
    ref_penalize(sp, hist, n_hist, b->y);
    int32_t want = ref_chain(sp, b->y, b->n, b->c, b->p);
    /* penalised logits: the same float operations in the same order, so equal */
    CHECK(!memcmp(b->x, b->y, (size_t)b->n * sizeof(float)), "%s: penalised logits differ", what);
    CHECK(m == want, "%s: %d candidates, want %d", what, m, want);
    for (int32_t i = 0; i < m && i < want; i++) {
        if (b->ids[i] != b->c[i].id || fabs((double)b->probs[i] - b->p[i]) > 1e-6) {
            CHECK(false, "%s: candidate %d is id %d p %.9f, want id %d p %.9f", what, i,
                  b->ids[i], (double)b->probs[i], b->c[i].id, b->p[i]);
            break;
        }
    }
    samp_free(s);
}

static struct samp_params no_stages(void)
{
    return (struct samp_params){.temp = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f,
                                .repeat_penalty = 1.0f, .penalty_last_n = 64, .seed = 1};
}

/* Each stage alone, then the default chain and a few mixes, on random logits. */
static void test_stages(void)
{
    static const int32_t sizes[] = {2, 50, 1000, 151936};
    uint64_t rng = 42;
    for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
        int32_t n = sizes[si];
        struct bufs b = bufs_new(n);
        float *logits = malloc((size_t)n * sizeof(float));
        int rounds = n > 10000 ? 2 : 10;
        for (int r = 0; r < rounds; r++) {
            random_logits(&rng, logits, n, r % 2 ? 1.0f : 0.25f);
            struct samp_params sp = no_stages();
            compare("no stages", &sp, logits, NULL, 0, &b);
            sp.top_k = 1 + (int32_t)(rng_next(&rng) % 60);
            compare("top-k", &sp, logits, NULL, 0, &b);
            sp = no_stages();
            sp.top_p = 0.5f + 0.45f * (float)(r % 5) / 4.0f;
            compare("top-p", &sp, logits, NULL, 0, &b);
            sp = no_stages();
            sp.min_p = 0.02f + 0.1f * (float)(r % 4);
            compare("min-p", &sp, logits, NULL, 0, &b);
            sp = no_stages();
            sp.temp = 0.3f + 0.5f * (float)(r % 4);
            compare("temperature", &sp, logits, NULL, 0, &b);
            sp = no_stages();
            sp.temp = 0.0f;
            compare("greedy", &sp, logits, NULL, 0, &b);
            sp = samp_defaults();
            compare("default chain", &sp, logits, NULL, 0, &b);
            sp.top_k = 5;
            sp.top_p = 0.6f; /* top-p renormalised over top-k's five */
            compare("top-k then top-p", &sp, logits, NULL, 0, &b);
            sp = samp_defaults();
            sp.top_k = 0;
            sp.min_p = 0.2f;
            sp.temp = 1.7f;
            compare("top-p, min-p, hot", &sp, logits, NULL, 0, &b);
        }
        free(logits);
        bufs_free(&b);
    }
}

/* Penalties over a history longer than penalty_last_n: the ring must forget the oldest tokens. */
static void test_penalties(void)
{
    const int32_t n = 300;
    struct bufs b = bufs_new(n);
    float logits[300];
    int32_t hist[200];
    uint64_t rng = 7;
    for (int r = 0; r < 12; r++) {
        random_logits(&rng, logits, n, 1.0f);
        int n_hist = 1 + (int)(rng_next(&rng) % 200);
        for (int i = 0; i < n_hist; i++)
            hist[i] = (int32_t)(rng_next(&rng) % 40); /* few distinct tokens: many repeats */
        struct samp_params sp = no_stages();
        sp.penalty_last_n = 1 + (int32_t)(rng_next(&rng) % 80);
        sp.repeat_penalty = 1.3f;
        compare("repetition penalty", &sp, logits, hist, n_hist, &b);
        sp = no_stages();
        sp.penalty_last_n = 1 + (int32_t)(rng_next(&rng) % 80);
        sp.presence_penalty = 0.7f;
        compare("presence penalty", &sp, logits, hist, n_hist, &b);
        sp.presence_penalty = 0.0f;
        sp.frequency_penalty = 0.25f;
        compare("frequency penalty", &sp, logits, hist, n_hist, &b);
        sp = samp_defaults();
        sp.repeat_penalty = 1.1f;
        sp.presence_penalty = 0.2f;
        sp.frequency_penalty = 0.1f;
        sp.penalty_last_n = r % 3 == 0 ? 0 : 16; /* 0: penalties off, as llama.cpp's 0 */
        compare("all penalties in the chain", &sp, logits, hist, n_hist, &b);
    }
    bufs_free(&b);
}

/* Greedy takes the lowest id among equal maxima, with and without sampling stages. */
static void test_greedy_ties(void)
{
    float x[20];
    for (int i = 0; i < 20; i++)
        x[i] = (float)(i % 5);
    x[17] = x[9] = x[13] = 7.5f;
    struct samp_params sp = no_stages();
    sp.temp = 0.0f;
    struct sampler *s;
    struct mp_error err = {0};
    CHECK(samp_new(&sp, 20, &s, &err) == 0, "%s", err.msg);
    CHECK(samp_sample(s, x) == 9, "greedy picks the lowest id of a tie");
    samp_free(s);
    /* top-k 1 at a temperature keeps the same single candidate */
    sp = no_stages();
    sp.top_k = 1;
    CHECK(samp_new(&sp, 20, &s, &err) == 0, "%s", err.msg);
    for (int i = 0; i < 50; i++)
        CHECK(samp_sample(s, x) == 9, "top-k 1 keeps the lowest id of a tie");
    samp_free(s);
}

static void draw(const struct samp_params *sp, const float *logits, int32_t n, int32_t *out,
                 int count)
{
    struct sampler *s;
    struct mp_error err = {0};
    float *x = malloc((size_t)n * sizeof(*x));
    CHECK(samp_new(sp, n, &s, &err) == 0, "%s", err.msg);
    for (int i = 0; i < count && s && x; i++) {
        memcpy(x, logits, (size_t)n * sizeof(*x));
        out[i] = samp_sample(s, x);
    }
    samp_free(s);
    free(x);
}

static void test_seeds(void)
{
    enum { N = 500, DRAWS = 2000 };
    float logits[N];
    uint64_t rng = 99;
    random_logits(&rng, logits, N, 0.5f);
    static int32_t a[DRAWS], b[DRAWS], c[DRAWS];
    struct samp_params sp = samp_defaults();
    sp.top_k = 0;
    sp.seed = 1234;
    draw(&sp, logits, N, a, DRAWS);
    draw(&sp, logits, N, b, DRAWS);
    sp.seed = 1235;
    draw(&sp, logits, N, c, DRAWS);
    CHECK(!memcmp(a, b, sizeof(a)), "the same seed gives the same draws");
    int same = 0;
    for (int i = 0; i < DRAWS; i++)
        same += a[i] == c[i];
    /* the most likely token has p < 0.1 here, so two independent streams agree on well under a
     * tenth of the draws; equal streams would agree on all of them */
    CHECK(same < DRAWS / 5, "another seed gives other draws (%d of %d equal)", same, DRAWS);
}

/* Upper quantile of chi-square with df degrees of freedom for standard normal quantile z
 * (Wilson-Hilferty; within a few percent for df >= 3, which is all this needs). */
static double chi2_quantile(double df, double z)
{
    double a = 2.0 / (9.0 * df);
    double t = 1.0 - a + z * sqrt(a);
    return df * t * t * t;
}

/* The draws follow the distribution: Pearson's chi-square of the counts over DRAWS draws against
 * DRAWS * p. The threshold is the 1 - 1e-6 quantile (z = 4.753): a correct sampler fails it once
 * in a million seeds, and the seed is fixed, so the test is deterministic. A sampler off by even
 * a percent in one bin's probability (e.g. top-p cutting one token too many) gives a statistic of
 * hundreds above it at these counts. */
static void test_chi_square(void)
{
    enum { N = 500, DRAWS = 100000 };
    static float logits[N];
    static int32_t out[DRAWS], ids[N];
    static float probs[N];
    static int counts[N];
    uint64_t rng = 2024;
    random_logits(&rng, logits, N, 0.5f);
    struct samp_params sp = samp_defaults(); /* top-k 40, top-p 0.95, min-p 0.05, temp 0.8 */
    sp.seed = 77;
    struct sampler *s;
    struct mp_error err = {0};
    CHECK(samp_new(&sp, N, &s, &err) == 0, "%s", err.msg);
    float x[N];
    memcpy(x, logits, sizeof(x));
    int32_t m = s ? samp_distribution(s, x, ids, probs) : 0;
    samp_free(s);
    CHECK(m >= 10, "the chain keeps %d candidates, want at least 10 for a meaningful test", m);
    draw(&sp, logits, N, out, DRAWS);
    for (int i = 0; i < DRAWS; i++)
        counts[out[i]]++;
    double chi2 = 0.0, p_kept = 0.0;
    int drawn_in = 0;
    for (int32_t i = 0; i < m; i++) {
        double e = DRAWS * (double)probs[i];
        CHECK(e >= 5.0, "expected count %.1f of candidate %d is too small for chi-square", e, i);
        chi2 += ((double)counts[ids[i]] - e) * ((double)counts[ids[i]] - e) / e;
        drawn_in += counts[ids[i]];
        p_kept += (double)probs[i];
    }
    CHECK(drawn_in == DRAWS, "%d draws fell outside the %d candidates", DRAWS - drawn_in, m);
    double limit = chi2_quantile(m - 1, 4.753);
    CHECK(chi2 < limit, "chi-square %.1f over %d bins, limit %.1f", chi2, m, limit);
    printf("chi-square %.1f with %d degrees of freedom (limit %.1f), probabilities sum %.6f\n",
           chi2, m - 1, limit, p_kept);
}

int main(void)
{
    test_stages();
    test_penalties();
    test_greedy_ties();
    test_seeds();
    test_chi_square();
    if (failures)
        fprintf(stderr, "sampler_test: %d failures\n", failures);
    else
        printf("sampler_test: all passed\n");
    return failures != 0;
}
