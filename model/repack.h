/* model/repack.h: putting weights in the x16 layout (kernels/kq_x16.h) where this process holds
 * them, once, at load.
 *
 * A matrix is repacked in place when its format has x16 kernels and its shape allows it
 * (kq_x16_supported: whole blocks per row, n_rows a multiple of 16); every other matrix stays
 * row-major, and the kq_matrix handed to the kernels says which (its `layout`). Repacking keeps
 * every 16-row group in its own bytes, so offsets, sizes and the files themselves never change:
 *   - the model's dense matrices (attention q/k/v/o, short-conv in/out, dense FFN, the head, the
 *     token embedding when the head is tied to it) in the GGUF mapping: repack_model_dense, called
 *     by fwd_state_new, i.e. by every process that runs the forward pass and only by those;
 *   - the model's experts in the mapping: repack_model_experts, called by eb_local_new for the
 *     in-process table (moepool run/serve/logits/bench without a cluster), and by a cluster
 *     coordinator for its local share (--local-shard) only;
 *   - a worker's shard in its NUMA-local memory: repack_expert_table, called by shard_load.
 * A cluster coordinator runs the forward pass but no in-process table: it never touches the
 * experts it does not hold (it streams them to workers from its mapping, as the file has them).
 *
 * The model's matrices are repacked from the mapping into anonymous memory (huge pages where
 * the kernel allows) and their kq_matrix / expert_matrix then point there; the file's pages
 * just read are dropped from this process (MADV_DONTNEED; the page cache keeps them), so RSS
 * holds one copy. The mapping itself is never written: it keeps the file's bytes (a coordinator
 * streams expert bytes from it; fingerprints).
 *
 * MOEPOOL_LAYOUT=rows (read once) keeps everything row-major, for A/B benchmarks and debugging;
 * unset or x16: x16 wherever supported. The model's totals (matrices and bytes repacked, kept
 * row-major, seconds) go into m->repack for the commands to report (repack_summary); a shard's
 * repacking logs its own line. */
#ifndef REPACK_H
#define REPACK_H

#include <stddef.h>

#include "base/err.h"
#include "kernels/kq_x16.h"
#include "model/expert_table.h"
#include "model/model.h"

/* The layout asked for: KQ_LAYOUT_ROWS under MOEPOOL_LAYOUT=rows, else KQ_LAYOUT_X16. */
enum kq_layout repack_layout(void);
const char *repack_layout_name(void); /* "x16" or "rows", as bench reports it */

/* One line for people: "x16 layout: N matrices (G GB) repacked in S s, K kept row-major", or
 * "row-major layout (MOEPOOL_LAYOUT=rows)". */
void repack_summary(const struct model *m, char *buf, size_t n);

struct repack_stats {
    int64_t n_repacked; /* matrices put in the x16 layout by this call */
    int64_t n_kept;     /* matrices left row-major: no x16 kernels for the type, or the shape */
    uint64_t bytes;     /* bytes repacked */
    double seconds;
    int n_threads;
};

/* Repacks the model's dense matrices (those still row-major) in its mapping, on n_threads
 * threads (0: one per online CPU). Idempotent and thread-safe: the first call does the work.
 * Changes how the weights are stored, not what they compute, so it takes the model as const
 * (like filling a cache); the model must have come from model_open. On failure (out of memory)
 * the model must not be used any more. */
int repack_model_dense(const struct model *m, int n_threads, struct mp_error *err);

/* The same for the model's experts: every expert (t NULL), or
 * those t holds, t being a table of the model's own experts (expert_table_from_model, some
 * entries cleared), whose entries are then updated. Each expert is repacked once whatever the
 * calls; expert_table_from_model gives the repacked ones from then on. */
int repack_model_experts(const struct model *m, struct expert_table *t, int n_threads,
                         struct mp_error *err);

/* Repacks in place every held, still row-major expert matrix of t, which must point into memory
 * the caller owns and may write (a shard's), and marks the entries. st may be NULL; logs a line
 * when anything was considered. */
int repack_expert_table(struct expert_table *t, const struct model *m, int n_threads,
                        struct repack_stats *st, struct mp_error *err);

#endif
