/* coordinator/eb_stats.h: an expert backend that records routing statistics.
 *
 * It wraps another backend (eb_local, the cluster's remote backend): every job's expert ids go
 * into a routing_stats (converted from block index to MoE layer index), then the job goes to
 * the inner backend unchanged, so results are bit-identical with or without it.
 *
 *     struct expert_backend inner, eb;
 *     eb_local_new(m, tp, n_max, &inner, err);
 *     eb_stats_new(m, inner, stats, &eb, err);   // eb now owns inner; stats stays yours
 *     ... fwd_run(st, &batch, &eb, ...) ...
 *     rstats_save(stats, path, err);             // any time: recording is locked
 *     eb_free(&eb);                              // frees inner too, not stats
 */
#ifndef EB_STATS_H
#define EB_STATS_H

#include "coordinator/routing_stats.h"
#include "model/expert_backend.h"
#include "model/model.h"

/* stats must be shaped like m (rstats_new(arch, m->n_moe_layers, m->hp.n_expert, ...)); it is
 * borrowed and must outlive out. On failure inner is still the caller's. */
int eb_stats_new(const struct model *m, struct expert_backend inner, struct routing_stats *stats,
                 struct expert_backend *out, struct mp_error *err);

#endif
