/* worker/shard_backend.h: the expert backend over a loaded shard.
 *
 * One eb_local per NUMA node, each with its own thread pool pinned to that node's cores and
 * reading only that node's memory. A job's (token, slot) pairs go to the node holding the expert
 * (slots of experts the shard does not hold make the job fail with MP_ENOTFOUND, and slots already
 * EB_SLOT_SKIP stay skipped); nodes compute concurrently and their partial sums are added in node
 * order, so results are deterministic. With one node the result is eb_local's, bit for bit.
 * When one node holds all the shard's experts, that node's pool is the caller's (no driver
 * thread): run every job from the thread that called shard_backend_new. */
#ifndef SHARD_BACKEND_H
#define SHARD_BACKEND_H

#include "model/expert_backend.h"
#include "model/model.h"
#include "worker/shard_load.h"

/* n_threads: total threads, split among the nodes in proportion to their cores (each node that
 * holds experts gets at least one). n_max: most tokens per job. Borrows m and shard (and its
 * numa topology); eb_free stops the node threads. */
int shard_backend_new(const struct model *m, const struct shard *shard, int n_threads, int n_max,
                      struct expert_backend *out, struct mp_error *err);

#endif
