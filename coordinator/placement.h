/* coordinator/placement.h: which workers hold which experts.
 *
 * A placement names the model it was made for (architecture, MoE layer and expert counts, an
 * optional fingerprint), the workers (by name; the coordinator's own in-process shard is the
 * worker PLACE_LOCAL), and for every (MoE layer, expert) the set of workers that hold it: one,
 * or several (replicas). It is saved as JSON (docs/placement.md).
 *
 * Layers are counted among MoE layers only (0..n_moe_layers-1), as in routing traces; an
 * eb_job's block index converts with model_moe_index(). Workers are indices 0..n_workers-1 in
 * file order; the holders of an expert are a bit set (bit w = worker w), so a placement has at
 * most PLACE_MAX_WORKERS workers, plenty for a home cluster. */
#ifndef PLACEMENT_H
#define PLACEMENT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

#define PLACE_MAX_WORKERS 64
#define PLACE_NAME_MAX 64
#define PLACE_LOCAL "local" /* the coordinator's in-process shard */

struct model;
struct routing_stats;

struct place_worker {
    char name[PLACE_NAME_MAX]; /* [A-Za-z0-9._-]+, unique */
    uint64_t mem_bytes;        /* memory it reported or was given; 0 = unknown (no limit) */
    int cores;                 /* cores it reported; 0 = unknown */
};

struct placement {
    char arch[32];        /* "lfm2moe", "qwen3moe" */
    char fingerprint[80]; /* the model file's fingerprint, or "" (not checked) */
    char policy[32];      /* how it was made ("balanced", "hand-written"): informational */
    int n_moe_layers;
    int n_expert;
    int n_workers;
    struct place_worker workers[PLACE_MAX_WORKERS];
    uint64_t *holders; /* [n_moe_layers][n_expert] worker bit sets */
};

/* An empty placement (no expert held yet) for n_workers workers (copied). */
int place_new(const char *arch, int n_moe_layers, int n_expert, int n_workers,
              const struct place_worker *workers, struct placement **out, struct mp_error *err);
void place_free(struct placement *p); /* NULL-safe */

/* Empty placement shaped like model m (architecture, layer and expert counts, fingerprint). */
int place_new_for_model(const struct model *m, int n_workers, const struct place_worker *workers,
                        struct placement **out, struct mp_error *err);

/* Reads and checks a placement file: well-formed JSON, known fields, unique worker names, every
 * layer and expert present and in range, every expert held by at least one known worker.
 * Errors name the file and the bad entry ("p.json: layer 3 expert 7: unknown worker 'w9'"). */
int place_load(const char *path, struct placement **out, struct mp_error *err);

/* Checks p against a loaded model: architecture, MoE layer and expert counts, and, when p names
 * one, the fingerprint (model/fingerprint.h hex): the given one, or m's own when NULL. */
int place_check_model(const struct placement *p, const struct model *m, const char *fingerprint,
                      struct mp_error *err);

/* Every expert held at least once (place_load calls this; planners call it after building). */
int place_check_complete(const struct placement *p, struct mp_error *err);

int place_save(const struct placement *p, const char *path, struct mp_error *err);

/* Index of the worker called name, or -1. */
int place_worker_index(const struct placement *p, const char *name);

/* Holders of (layer, expert) as a bit set; place_add adds worker w to them. */
static inline uint64_t place_holders(const struct placement *p, int layer, int expert)
{
    return p->holders[(int64_t)layer * p->n_expert + expert];
}
static inline bool place_holds(const struct placement *p, int layer, int expert, int w)
{
    return (place_holders(p, layer, expert) >> w) & 1;
}
void place_add(struct placement *p, int layer, int expert, int w);

/* The experts of one layer that worker w holds, ascending, into ids[n_expert]; returns the count.
 * What a worker's shard loads, layer by layer. */
int place_worker_experts(const struct placement *p, int w, int layer, int32_t *ids);

/* Bytes of one expert of MoE layer `layer` (gate + up + down slices) in model m. */
uint64_t place_expert_bytes(const struct model *m, int layer);

/* Per-worker bytes of the experts it holds: bytes[n_workers]. */
void place_worker_bytes(const struct placement *p, const struct model *m, uint64_t *bytes);

/* Expected share of expert activations per worker, share[n_workers], summing to 1 over all
 * layers: from stats when given (an expert with replicas splits its activations evenly among
 * them, which least-loaded choice approaches), else assuming every expert is equally likely. */
void place_expected_load(const struct placement *p, const struct routing_stats *stats,
                         double *share);

/* Expected activations of one layer per worker, load[n_workers] (same rules as above). */
void place_layer_load(const struct placement *p, const struct routing_stats *stats, int layer,
                      double *load);

/* Relative speed of each worker, speed[n_workers]: its cores when any worker reports cores (the
 * others count as the mean), else its memory when all report memory, else 1. The capacity
 * policy's weights, and what "fair" means below. */
void place_speeds(const struct place_worker *workers, int n_workers, double *speed);

/* How unevenly work is spread: per layer, the largest ratio of a worker's expected activations
 * to its fair part (the layer's total split by place_speeds), averaged over layers. 1 is
 * perfect; the slowest worker sets each layer's pace, so this is about how much longer a layer
 * takes than with perfect balance. */
double place_imbalance(const struct placement *p, const struct routing_stats *stats);

/* Share of recorded co-activations (expert pairs chosen by one token) whose two experts share a
 * worker: tokens whose experts are together need fewer messages. */
double place_colocated(const struct placement *p, const struct routing_stats *stats);

/* stats describe the same architecture and shape as p (needed before the two calls above). */
int place_check_stats(const struct placement *p, const struct routing_stats *stats,
                      struct mp_error *err);

#endif
