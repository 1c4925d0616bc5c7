/* coordinator/placement_plan.h: planners that make a placement for a model and a set of workers.
 *
 * contiguous  worker w gets the w-th contiguous range of expert ids, the same in every layer.
 * striped     expert e goes to worker e mod n_workers.
 * capacity    each worker's share of expert bytes follows its cores (else its memory, else
 *             equal), capped by its memory; experts are dealt out in that proportion.
 * balanced    from routing statistics: per layer, experts from most to least activated go to
 *             the worker whose expected load (relative to its share) stays lowest, with the
 *             expert counts per worker held near the capacity shares (memory); then, with
 *             single copies, swaps that put co-activated experts on one worker where the
 *             busiest worker's load grows by at most 1% of the mean (--no-pairs skips it).
 * Every policy respects each worker's memory (mem_bytes, 0 = unlimited) and fails with a clear
 * error when the experts do not fit. --replicate N puts every expert on N distinct workers. */
#ifndef PLACEMENT_PLAN_H
#define PLACEMENT_PLAN_H

#include <stdbool.h>

#include "coordinator/placement.h"
#include "coordinator/routing_stats.h"
#include "model/model.h"

enum plan_policy { PLAN_CONTIGUOUS, PLAN_STRIPED, PLAN_CAPACITY, PLAN_BALANCED };

struct plan_request {
    enum plan_policy policy;
    int n_workers;
    struct place_worker workers[PLACE_MAX_WORKERS];
    const struct routing_stats *stats; /* required by balanced, ignored by the others */
    int replicate;                     /* copies of every expert, 1..n_workers */
    bool no_pairs;                     /* balanced: skip the co-activation pass */
};

/* "contiguous", "striped", "capacity" (or "capacity-weighted"), "balanced": 0, else -1. */
int plan_parse_policy(const char *s, enum plan_policy *out);
const char *plan_policy_name(enum plan_policy p);

/* "4G", "512M", "1.5GiB", "123" (bytes): binary units K, M, G, T. 0 on success, else -1. */
int plan_parse_size(const char *s, uint64_t *bytes);

/* SPEC: a count ("3": workers w1..w3) or a comma list of NAME[:mem=SIZE][:cores=N]. */
int plan_parse_workers(const char *spec, struct place_worker *workers, int *n_workers,
                       struct mp_error *err);

int plan_make(const struct model *m, const struct plan_request *req, struct placement **out,
              struct mp_error *err);

#endif
