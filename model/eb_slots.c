/* model/eb_slots.c: see eb_slots.h. */
#include "model/eb_slots.h"

#include <string.h>

#include "model/eb_local.h"

int eb_run_per_slot(struct expert_backend *eb, const struct eb_job *job, int32_t *ids_tmp,
                    float *tmp, float *rows, int *n_rows, struct mp_error *err)
{
    const int n = job->n_tokens, k = job->k;
    const size_t row = (size_t)job->n_embd;
    for (int s = 0; s < k; s++) {
        int used = 0;
        for (int t = 0; t < n; t++)
            for (int j = 0; j < k; j++) {
                int32_t id = job->ids[(size_t)t * k + j];
                ids_tmp[(size_t)t * k + j] = j == s ? id : EB_SLOT_SKIP;
                used |= j == s && id != EB_SLOT_SKIP;
            }
        if (!used)
            continue;
        struct eb_job one = *job;
        one.ids = ids_tmp;
        int rc = eb_run(eb, &one, tmp + (size_t)s * n * row, err);
        if (rc)
            return rc;
    }
    int r = 0;
    for (int t = 0; t < n; t++)
        for (int s = 0; s < k; s++)
            if (job->ids[(size_t)t * k + s] != EB_SLOT_SKIP)
                memcpy(rows + (size_t)r++ * row, tmp + ((size_t)s * n + t) * row,
                       row * sizeof(float));
    *n_rows = r;
    return 0;
}

void eb_mix_slots(const float *rows, int n_tokens, int k, int64_t n_embd, float *out)
{
    for (int t = 0; t < n_tokens; t++) {
        float *o = out + (size_t)t * n_embd;
        const float *y = rows + (size_t)t * k * n_embd;
        memcpy(o, y, (size_t)n_embd * sizeof(float));
        for (int s = 1; s < k; s++)
            for (int64_t i = 0; i < n_embd; i++)
                o[i] += y[(size_t)s * n_embd + i];
    }
}
