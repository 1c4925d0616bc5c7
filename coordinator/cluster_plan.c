/* coordinator/cluster_plan.c: which holder (worker slot, or the local shard) computes each
 * expert: contiguous shares, or a placement file (coordinator/placement.h). */
#include <stdint.h>

#include "coordinator/cluster_impl.h"
#include "coordinator/placement.h"

/* Contiguous placement: holder w computes experts [w E / N, (w+1) E / N) of every MoE layer;
 * holders are the worker slots, then the coordinator itself with local_shard. The placement
 * helper's file replaces this (cluster_opts.placement_file). */
static void plan_contiguous(struct cluster *c)
{
    const int64_t n_expert = c->m->hp.n_expert, n = c->o.expect_workers + c->o.local_shard;
    for (int64_t il = 0; il < c->m->hp.n_layer; il++)
        for (int64_t e = 0; e < n_expert; e++)
            c->holders[il * n_expert + e] = c->m->hp.is_moe[il] ? 1ull << (e * n / n_expert) : 0;
}

/* A placement file: its workers in file order are the slots, except "local" (the local shard,
 * which local_shard must enable). Experts with several holders are replicas: eb_remote gives
 * each (token, slot) to the least busy ready holder. */
static int plan_from_file(struct cluster *c, struct mp_error *err)
{
    struct placement *p = NULL;
    int rc = place_load(c->o.placement_file, &p, err);
    if (!rc)
        rc = place_check_model(p, c->m, c->fingerprint, err);
    const int local = rc ? -1 : place_worker_index(p, PLACE_LOCAL);
    if (!rc && p->n_workers - (local >= 0) != c->o.expect_workers)
        rc = mp_error_set(err, MP_EINVAL, "%s names %d workers, --expect-workers is %d",
                          c->o.placement_file, p->n_workers - (local >= 0), c->o.expect_workers);
    if (!rc && (local >= 0) != c->o.local_shard)
        rc = mp_error_set(err, MP_EINVAL, "%s: worker \"%s\" %s", c->o.placement_file,
                          PLACE_LOCAL, local >= 0 ? "is listed: use --local-shard" :
                          "is missing but --local-shard was given");
    int holder_of[PLACE_MAX_WORKERS];
    for (int w = 0, slot = 0; !rc && w < p->n_workers; w++)
        holder_of[w] = w == local ? c->o.expect_workers : slot++;
    for (int il = 0; !rc && il < c->m->hp.n_layer; il++) {
        const int ml = model_moe_index(c->m, il);
        for (int64_t e = 0; ml >= 0 && e < c->m->hp.n_expert; e++) {
            uint64_t set = place_holders(p, ml, (int)e), bits = 0;
            for (int w = 0; w < p->n_workers; w++)
                if (set >> w & 1)
                    bits |= 1ull << holder_of[w];
            c->holders[il * c->m->hp.n_expert + e] = bits;
        }
    }
    if (rc)
        mp_error_wrap(err, "placement: ");
    place_free(p);
    return rc;
}

int cluster_plan(struct cluster *c, struct mp_error *err)
{
    if (c->o.placement_file)
        return plan_from_file(c, err);
    plan_contiguous(c);
    return 0;
}
