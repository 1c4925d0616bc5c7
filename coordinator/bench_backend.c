/* coordinator/bench_backend.c: see bench_backend.h. */
#include "coordinator/bench_backend.h"

#include "model/eb_local.h"

int bench_backend_open(struct bench_backend *b, const struct model *m, struct tp_pool *tp,
                       int n_max, const struct cluster_opts *o, int wait_ms,
                       struct mp_error *err)
{
    *b = (struct bench_backend){0};
    if (!o || !o->endpoint)
        return eb_local_new(m, NULL, tp, n_max, &b->eb, err); /* NULL: every expert, mapped */
    struct cluster_opts opts = *o;
    opts.n_max = n_max;
    opts.local_tp = tp; /* for --local-shard: the coordinator's share runs on the bench's pool */
    int rc = cluster_start(m, &opts, &b->cluster, err);
    if (!rc)
        rc = cluster_wait_ready(b->cluster, wait_ms, err);
    if (!rc)
        b->eb = cluster_backend(b->cluster);
    return rc;
}

void bench_backend_traffic(struct bench_backend *b, uint64_t *bytes, uint64_t *token_layers)
{
    static struct cluster_status st; /* large (one record per possible worker): not on the stack */
    *bytes = *token_layers = 0;
    if (!b->cluster)
        return;
    cluster_status(b->cluster, &st);
    for (int i = 0; i < st.expect_workers && i < CLUSTER_MAX_WORKERS; i++)
        *bytes += st.w[i].bytes_sent + st.w[i].bytes_received;
    *token_layers = st.token_layers;
}

void bench_backend_timing(struct bench_backend *b, struct cluster_timing *out)
{
    static struct cluster_status st; /* as above */
    *out = (struct cluster_timing){0};
    if (!b->cluster)
        return;
    cluster_status(b->cluster, &st);
    *out = st.timing;
}

void bench_backend_close(struct bench_backend *b)
{
    if (b->eb.ops)
        eb_free(&b->eb);
    cluster_stop(b->cluster);
    *b = (struct bench_backend){0};
}
