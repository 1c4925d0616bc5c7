/* model/eb_slots.h: expert outputs per (token, slot) instead of per token, from any expert
 * backend, so that holders of different experts can return their weighted outputs separately and
 * the caller adds them in slot order, exactly as eb_local mixes them in one process
 * (((y0 w0 + y1 w1) + y2 w2) + ...). The cluster's exact mode uses it (coordinator/eb_remote.c,
 * worker/worker_compute.c): its logits are then bit-identical to the in-process run. */
#ifndef EB_SLOTS_H
#define EB_SLOTS_H

#include "model/expert_backend.h"

/* Runs job once per slot s with only slot s kept (the others EB_SLOT_SKIP), and writes, for each
 * (token t, slot s) in (t, s) order whose id is not EB_SLOT_SKIP, the row weight * expert(x) to
 * rows[*n_rows]. Scratch: ids_tmp [n_tokens * k], tmp [k][n_tokens][n_embd]. A slot no token
 * uses costs nothing. */
int eb_run_per_slot(struct expert_backend *eb, const struct eb_job *job, int32_t *ids_tmp,
                    float *tmp, float *rows, int *n_rows, struct mp_error *err);

/* out[t] = rows of token t added in slot order; rows [n_tokens][k][n_embd] all present. */
void eb_mix_slots(const float *rows, int n_tokens, int k, int64_t n_embd, float *out);

#endif
