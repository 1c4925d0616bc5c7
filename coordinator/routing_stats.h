/* coordinator/routing_stats.h: how often the router picks each expert, and which experts it
 * picks together.
 *
 * Per MoE layer (0..n_moe_layers-1, as in routing traces): the number of tokens routed, each
 * expert's activation count (tokens that chose it among their k), and for each pair of experts
 * the number of tokens that chose both (co-activation). Placement's balanced policy reads them
 * to spread expected load; `moepool placement record` and the server's --routing-stats write
 * them. Saved as JSON with sparse pair lists (docs/placement.md).
 *
 * Recording and saving lock an internal mutex, so a server may save while its engine records. */
#ifndef ROUTING_STATS_H
#define ROUTING_STATS_H

#include <pthread.h>
#include <stdint.h>

#include "base/err.h"

struct routing_stats {
    char arch[32]; /* the model's architecture, "" when unknown */
    int n_moe_layers;
    int n_expert;
    uint64_t *tokens; /* [n_moe_layers] tokens routed */
    uint64_t *count;  /* [n_moe_layers][n_expert] activations */
    uint64_t *pair;   /* [n_moe_layers][n_expert][n_expert] co-activations, symmetric, 0 diagonal */
    pthread_mutex_t lock;
};

int rstats_new(const char *arch, int n_moe_layers, int n_expert, struct routing_stats **out,
               struct mp_error *err);
void rstats_free(struct routing_stats *s); /* NULL-safe */

/* Records one routed batch of MoE layer `layer`: ids[n_tokens][k]. Ids out of range (never from
 * the router) are refused with MP_ERANGE and nothing is recorded. A token listing an expert
 * twice counts it once. */
int rstats_record(struct routing_stats *s, int layer, int n_tokens, int k, const int32_t *ids,
                  struct mp_error *err);

/* Adds src's counts to dst; shapes (and architectures, when both known) must match. */
int rstats_merge(struct routing_stats *dst, const struct routing_stats *src, struct mp_error *err);

int rstats_save(struct routing_stats *s, const char *path, struct mp_error *err);
/* Reads and checks a stats file (shape, counts consistent: no pair above either count). */
int rstats_load(const char *path, struct routing_stats **out, struct mp_error *err);

static inline uint64_t rstats_count(const struct routing_stats *s, int layer, int e)
{
    return s->count[(int64_t)layer * s->n_expert + e];
}
static inline uint64_t rstats_pair(const struct routing_stats *s, int layer, int a, int b)
{
    return s->pair[((int64_t)layer * s->n_expert + a) * s->n_expert + b];
}

/* Sum of all activation counts (all layers). */
uint64_t rstats_total(const struct routing_stats *s);

#endif
