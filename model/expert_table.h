/* model/expert_table.h: where each expert's weights live in this process.
 *
 * For every (block il, expert e) of the MoE layers the table holds three pointers: the first byte
 * of that expert's gate, up and down matrices, or NULL when this process does not hold the expert.
 * Types and shapes are not repeated here: they come from the model's struct expert_matrix (every
 * expert of one layer shares them). The in-process path points the table into the GGUF mapping
 * (expert_table_from_model); a worker points it into its NUMA-local shard memory (shard_load).
 * Each entry also says whether its matrices are row-major or repacked (kernels/kq_x16.h): the
 * same model's experts may be one in the mapping and the other in a shard (model/repack.h). */
#ifndef EXPERT_TABLE_H
#define EXPERT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "model/model.h"

/* One expert of one MoE layer: il is the block index (not the MoE-layer index). */
struct expert_ref {
    int32_t il;
    int32_t expert;
};

struct expert_weights {
    const uint8_t *gate, *up, *down; /* all three set, or all three NULL (not held) */
    enum kq_layout layout[3];        /* of gate, up, down there: row-major unless repacked */
};

struct expert_table {
    int64_t n_layer;          /* = model hp.n_layer */
    int64_t n_expert;         /* = model hp.n_expert */
    struct expert_weights *w; /* [n_layer][n_expert]; dense layers stay NULL */
};

/* A table of n_layer x n_expert entries, none held. */
int expert_table_new(int64_t n_layer, int64_t n_expert, struct expert_table **out,
                     struct mp_error *err);

/* Every expert of every MoE layer: in the model's GGUF mapping (the file's bytes), or the
 * repacked copy of those repack_model_experts repacked. */
int expert_table_from_model(const struct model *m, struct expert_table **out, struct mp_error *err);

void expert_table_free(struct expert_table *t); /* NULL-safe */

/* The entry expert_table_from_model gives expert e of layer L. */
struct expert_weights expert_weights_of(const struct layer *L, int64_t e);

/* Entry (il, e), or NULL when il/e are out of range. */
const struct expert_weights *expert_table_get(const struct expert_table *t, int64_t il, int64_t e);

/* True when the table holds expert e of block il (in range and non-NULL). */
bool expert_table_holds(const struct expert_table *t, int64_t il, int64_t e);

/* Number of (il, e) entries held. */
int64_t expert_table_count(const struct expert_table *t);

/* A byte range of the GGUF file. */
struct file_range {
    uint64_t offset; /* from the start of the file */
    uint64_t len;
};

/* Where expert e of block il sits in the model's file: out[0] gate, out[1] up, out[2] down.
 * Fails (MP_ERANGE) if il is not an MoE layer or e is out of range. */
int expert_file_ranges(const struct model *m, int64_t il, int64_t e, struct file_range out[3],
                       struct mp_error *err);

/* Bytes one expert of block il takes in memory (gate + up + down); 0 for a dense layer. */
size_t expert_bytes(const struct model *m, int64_t il);

/* Every (il, e) of the model's MoE layers, block-major (il, then e): a shard holding them all.
 * *out is malloc'ed; *n receives its length. */
int expert_refs_all(const struct model *m, struct expert_ref **out, size_t *n,
                    struct mp_error *err);

#endif
