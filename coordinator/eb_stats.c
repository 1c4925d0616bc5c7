/* coordinator/eb_stats.c: the statistics-recording expert backend (see the header). */
#include "coordinator/eb_stats.h"

#include <stdbool.h>
#include <stdlib.h>

struct eb_stats {
    const struct model *m;
    struct expert_backend inner;
    struct routing_stats *stats;
};

static int record(struct eb_stats *s, const struct eb_job *job, struct mp_error *err)
{
    int layer = model_moe_index(s->m, job->layer);
    return layer < 0
               ? mp_error_set(err, MP_EINVAL, "eb_stats: block %d is not a MoE layer", job->layer)
               : rstats_record(s->stats, layer, job->n_tokens, job->k, job->ids, err);
}

static int stats_run(void *self, const struct eb_job *job, float *out, struct mp_error *err)
{
    struct eb_stats *s = self;
    int rc = record(s, job, err);
    return rc ? rc : eb_run(&s->inner, job, out, err);
}

/* A pipelining inner backend (the cluster's --split) stays pipelining behind the statistics. */
static int stats_submit(void *self, const struct eb_job *job, float *out, int *ticket,
                        struct mp_error *err)
{
    struct eb_stats *s = self;
    int rc = record(s, job, err);
    return rc ? rc : s->inner.ops->submit(s->inner.self, job, out, ticket, err);
}

static int stats_wait(void *self, int ticket, struct mp_error *err)
{
    struct eb_stats *s = self;
    return s->inner.ops->wait(s->inner.self, ticket, err);
}

static void stats_cancel(void *self)
{
    struct eb_stats *s = self;
    if (s->inner.ops->cancel)
        s->inner.ops->cancel(s->inner.self);
}

static void stats_free(void *self)
{
    struct eb_stats *s = self;
    if (s)
        eb_free(&s->inner);
    free(s);
}

static const struct eb_ops stats_ops = {.run = stats_run, .free = stats_free};
static const struct eb_ops stats_pipelined_ops = {.run = stats_run,
                                                  .free = stats_free,
                                                  .submit = stats_submit,
                                                  .wait = stats_wait,
                                                  .cancel = stats_cancel};

int eb_stats_new(const struct model *m, struct expert_backend inner, struct routing_stats *stats,
                 struct expert_backend *out, struct mp_error *err)
{
    if (stats->n_moe_layers != m->n_moe_layers || stats->n_expert != m->hp.n_expert)
        return mp_error_set(err, MP_EINVAL,
                            "routing statistics of %d MoE layers x %d experts for a model of "
                            "%d x %lld",
                            stats->n_moe_layers, stats->n_expert, m->n_moe_layers,
                            (long long)m->hp.n_expert);
    struct eb_stats *s = malloc(sizeof(*s));
    if (!s)
        return mp_error_set(err, MP_ENOMEM, "eb_stats: out of memory");
    *s = (struct eb_stats){.m = m, .inner = inner, .stats = stats};
    const bool pipelined = inner.ops->submit && inner.ops->wait;
    *out = (struct expert_backend){.ops = pipelined ? &stats_pipelined_ops : &stats_ops, .self = s};
    return 0;
}
