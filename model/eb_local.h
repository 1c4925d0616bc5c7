/* model/eb_local.h: the in-process expert backend: runs a layer's experts on this machine's
 * threads, reading each expert's weights once per job however many tokens chose it. */
#ifndef EB_LOCAL_H
#define EB_LOCAL_H

#include "kernels/tp.h"
#include "model/expert_backend.h"
#include "model/model.h"

/* n_max: the most tokens one job may carry. The backend borrows m and tp. */
int eb_local_new(const struct model *m, struct tp_pool *tp, int n_max, struct expert_backend *out,
                 struct mp_error *err);

#endif
