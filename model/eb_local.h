/* model/eb_local.h: the in-process expert backend: runs a layer's experts on this machine's
 * threads, reading each expert's weights once per job however many tokens chose it.
 *
 * The weights come from an expert table (model/expert_table.h): the whole GGUF mapping for
 * `moepool run`, one shard's NUMA-local memory in a worker. Types and shapes come from the model.
 * A job naming an expert the table does not hold fails with MP_ENOTFOUND and a message naming
 * the layer and expert; the backend stays usable.
 *
 * Partial jobs: a slot whose id is EB_SLOT_SKIP is not computed here and adds nothing to its
 * token's sum (a token whose slots are all skipped gets zeros). A caller that splits a job among
 * holders (NUMA nodes, workers) gives each the slots it holds and adds the partial outputs in a
 * fixed holder order. With no skipped slot the result is exactly the unsplit one. */
#ifndef EB_LOCAL_H
#define EB_LOCAL_H

#include "kernels/tp.h"
#include "model/expert_backend.h"
#include "model/expert_table.h"
#include "model/model.h"

#define EB_SLOT_SKIP (-1)

/* n_max: the most tokens one job may carry. The backend borrows m, table and tp. table NULL:
 * every expert of the model, in its GGUF mapping (the in-process path), repacked there first
 * (repack_model_experts, once per model). */
int eb_local_new(const struct model *m, const struct expert_table *table, struct tp_pool *tp,
                 int n_max, struct expert_backend *out, struct mp_error *err);

/* Whether one conversion of a job's x serves layer `layer`'s gate and up experts alike (they
 * take the same activation type, not f32), so x may travel and arrive already converted
 * (eb_job.xq): the cluster's coordinator sends such rows and its workers accept them. */
bool eb_local_converted_input_ok(const struct model *m, int layer);

#endif
