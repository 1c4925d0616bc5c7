/* worker/shard_backend.c: see shard_backend.h.
 *
 * Each node that holds experts gets a driver thread. The driver creates the node's thread pool
 * (tp_run must be called by the pool's creator), pins it to the node's cores, builds an eb_local
 * over the node's expert table and then waits for jobs. A job is routed by copying its expert ids
 * once per node with the other nodes' slots set to EB_SLOT_SKIP; the caller wakes the drivers of
 * the nodes that have slots, waits for all of them and adds their partial outputs in node order.
 *
 * A shard whose experts all sit on one node (every single-node machine) has no driver thread:
 * the caller creates that node's pool and computes on it itself, into the output directly. A
 * driver would cost two thread wake-ups per job (measured: tens of microseconds each on a busy
 * VM, per MoE layer) for no concurrency. The caller must then run every job from the thread
 * that created the backend (tp_run's rule); the worker's compute thread does both. */
#include "worker/shard_backend.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/tp.h"
#include "model/eb_local.h"

struct node_driver {
    struct shard_backend *sb;
    int node;
    int n_threads;
    bool started; /* the thread exists (join it) */
    bool inline_; /* no thread: the caller computes on this node's pool itself */
    pthread_t thread;
    struct tp_pool *tp;
    struct expert_backend eb;
    int32_t *ids; /* [n_max * k] the job's ids, other nodes' slots skipped */
    float *out;   /* [n_max][n_embd] this node's partial sum */
    struct eb_job job;
    bool has_work;
    int rc;
    struct mp_error err;
};

struct shard_backend {
    const struct model *m;
    const struct shard *shard;
    int n_max, k;
    struct node_driver *nodes; /* [shard->n_nodes]; only nodes holding experts have a thread */
    pthread_mutex_t mu;
    pthread_cond_t go, done;
    uint64_t generation; /* bumped per job and for startup/shutdown */
    int pending;         /* drivers still working on the current generation */
    bool quit;
    int inline_node; /* the one node holding experts, computed on the caller; -1: drivers */
};

static int driver_init(struct node_driver *d, struct mp_error *err)
{
    struct shard_backend *sb = d->sb;
    d->tp = tp_new(d->n_threads);
    if (!d->tp)
        return mp_error_set(err, MP_ENOMEM, "node %d: cannot create %d threads", d->node,
                            d->n_threads);
    int rc = 0;
    if (sb->shard->numa)
        rc = numa_pin_pool(sb->shard->numa, d->node, d->tp, err);
    if (!rc)
        rc = eb_local_new(sb->m, sb->shard->nodes[d->node].table, d->tp, sb->n_max, &d->eb, err);
    return rc;
}

static void *driver_main(void *arg)
{
    struct node_driver *d = arg;
    struct shard_backend *sb = d->sb;
    int rc = driver_init(d, &d->err);
    pthread_mutex_lock(&sb->mu);
    d->rc = rc;
    uint64_t seen = sb->generation;
    sb->pending--;
    pthread_cond_broadcast(&sb->done);
    while (!rc) {
        while (!sb->quit && sb->generation == seen)
            pthread_cond_wait(&sb->go, &sb->mu);
        if (sb->quit)
            break;
        seen = sb->generation;
        bool work = d->has_work;
        pthread_mutex_unlock(&sb->mu);
        int r = work ? eb_run(&d->eb, &d->job, d->out, &d->err) : 0;
        /* The next job is a network round trip away: the node's threads sleep rather than spin
         * on cores the coordinator (or another worker on this machine) is computing on. */
        tp_sleep_now(d->tp);
        pthread_mutex_lock(&sb->mu);
        d->rc = r;
        sb->pending--;
        pthread_cond_broadcast(&sb->done);
    }
    pthread_mutex_unlock(&sb->mu);
    eb_free(&d->eb);
    tp_free(d->tp);
    return NULL;
}

/* The only node with experts: its pool and eb_local belong to the caller's thread. */
static int inline_start(struct node_driver *d, struct mp_error *err)
{
    d->inline_ = true;
    return driver_init(d, err);
}

static void inline_stop(struct node_driver *d)
{
    eb_free(&d->eb);
    tp_free(d->tp);
    d->tp = NULL;
}

/* One node computes the whole job on the caller's thread, straight into out. */
static int inline_run(struct node_driver *d, const struct eb_job *job, float *out,
                      struct mp_error *err)
{
    int rc = 0;
    if (d->has_work)
        rc = eb_run(&d->eb, &d->job, out, err);
    else
        memset(out, 0, (size_t)job->n_tokens * (size_t)job->n_embd * sizeof(float));
    /* The next job is a network round trip away: the pool sleeps rather than spins. */
    tp_sleep_now(d->tp);
    return rc;
}

/* Starts node d's driver and waits until it is ready (or failed). */
static int driver_start(struct node_driver *d, struct mp_error *err)
{
    struct shard_backend *sb = d->sb;
    pthread_mutex_lock(&sb->mu);
    sb->pending = 1;
    pthread_mutex_unlock(&sb->mu);
    if (pthread_create(&d->thread, NULL, driver_main, d) != 0)
        return mp_error_set(err, MP_ENOMEM, "node %d: cannot create its driver thread", d->node);
    d->started = true;
    pthread_mutex_lock(&sb->mu);
    while (sb->pending > 0)
        pthread_cond_wait(&sb->done, &sb->mu);
    pthread_mutex_unlock(&sb->mu);
    if (d->rc) {
        *err = d->err;
        return d->rc;
    }
    return 0;
}

/* Sets each node's ids (own slots kept, others skipped) and has_work; fails on experts the shard
 * does not hold. */
static int route(struct shard_backend *sb, const struct eb_job *job, struct mp_error *err)
{
    const struct shard *s = sb->shard;
    const int n_pairs = job->n_tokens * job->k;
    for (int k = 0; k < s->n_nodes; k++)
        sb->nodes[k].has_work = false;
    for (int i = 0; i < n_pairs; i++) {
        const int32_t id = job->ids[i];
        int owner = -1;
        if (id != EB_SLOT_SKIP) {
            if (id < 0 || id >= sb->m->hp.n_expert)
                return mp_error_set(err, MP_ERANGE, "layer %d: expert id %d out of range",
                                    job->layer, (int)id);
            owner = shard_node_of(s, job->layer, id);
            if (owner < 0)
                return mp_error_set(err, MP_ENOTFOUND, "layer %d: expert %d is not in this shard",
                                    job->layer, (int)id);
        }
        for (int k = 0; k < s->n_nodes; k++)
            if (sb->nodes[k].started || sb->nodes[k].inline_)
                sb->nodes[k].ids[i] = k == owner ? id : EB_SLOT_SKIP;
        if (owner >= 0)
            sb->nodes[owner].has_work = true;
    }
    for (int k = 0; k < s->n_nodes; k++) {
        struct node_driver *d = &sb->nodes[k];
        d->job = *job;
        d->job.ids = d->ids;
    }
    return 0;
}

/* out = partial sums of the working nodes added in node order (zeros if none worked). */
static void add_partials(struct shard_backend *sb, const struct eb_job *job, float *out)
{
    const size_t n = (size_t)job->n_tokens * (size_t)job->n_embd;
    bool first = true;
    for (int k = 0; k < sb->shard->n_nodes; k++) {
        const struct node_driver *d = &sb->nodes[k];
        if (!d->has_work)
            continue;
        if (first)
            memcpy(out, d->out, n * sizeof(float));
        else
            for (size_t i = 0; i < n; i++)
                out[i] += d->out[i];
        first = false;
    }
    if (first)
        memset(out, 0, n * sizeof(float));
}

static int shard_run(void *self, const struct eb_job *job, float *out, struct mp_error *err)
{
    struct shard_backend *sb = self;
    const struct model *m = sb->m;
    if (job->layer < 0 || job->layer >= m->hp.n_layer || !m->hp.is_moe[job->layer])
        return mp_error_set(err, MP_EINVAL, "layer %d has no experts", job->layer);
    if (job->n_tokens < 0 || job->n_tokens > sb->n_max || job->k != sb->k ||
        job->n_embd != m->hp.n_embd)
        return mp_error_set(err, MP_EINVAL, "expert job of %d tokens x %d experts does not fit",
                            job->n_tokens, job->k);
    int rc = route(sb, job, err);
    if (rc)
        return rc;
    if (sb->inline_node >= 0)
        return inline_run(&sb->nodes[sb->inline_node], job, out, err);
    pthread_mutex_lock(&sb->mu);
    sb->pending = 0;
    for (int k = 0; k < sb->shard->n_nodes; k++)
        sb->pending += sb->nodes[k].started;
    sb->generation++;
    pthread_cond_broadcast(&sb->go);
    while (sb->pending > 0)
        pthread_cond_wait(&sb->done, &sb->mu);
    pthread_mutex_unlock(&sb->mu);
    for (int k = 0; k < sb->shard->n_nodes; k++)
        if (sb->nodes[k].has_work && sb->nodes[k].rc) {
            *err = sb->nodes[k].err;
            return sb->nodes[k].rc;
        }
    add_partials(sb, job, out);
    return 0;
}

static void shard_backend_free(void *self)
{
    struct shard_backend *sb = self;
    if (!sb)
        return;
    pthread_mutex_lock(&sb->mu);
    sb->quit = true;
    pthread_cond_broadcast(&sb->go);
    pthread_mutex_unlock(&sb->mu);
    for (int k = 0; sb->nodes && k < sb->shard->n_nodes; k++) {
        if (sb->nodes[k].started)
            pthread_join(sb->nodes[k].thread, NULL);
        if (sb->nodes[k].inline_)
            inline_stop(&sb->nodes[k]);
        free(sb->nodes[k].ids);
        free(sb->nodes[k].out);
    }
    free(sb->nodes);
    pthread_mutex_destroy(&sb->mu);
    pthread_cond_destroy(&sb->go);
    pthread_cond_destroy(&sb->done);
    free(sb);
}

static const struct eb_ops shard_ops = {.run = shard_run, .free = shard_backend_free};

/* Threads per node: n_threads split by cores, at least one for each node holding experts. */
static void split_threads(const struct shard *s, int n_threads, int64_t *per_node)
{
    if (s->numa)
        numa_split(s->numa, n_threads, per_node);
    else
        per_node[0] = n_threads;
    for (int k = 0; k < s->n_nodes; k++)
        if (s->nodes[k].n_experts > 0 && per_node[k] < 1)
            per_node[k] = 1;
}

int shard_backend_new(const struct model *m, const struct shard *shard, int n_threads, int n_max,
                      struct expert_backend *out, struct mp_error *err)
{
    if (n_threads < 1 || n_max < 1)
        return mp_error_set(err, MP_EINVAL, "shard backend: %d threads, %d tokens", n_threads,
                            n_max);
    struct shard_backend *sb = calloc(1, sizeof(*sb));
    if (!sb)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    pthread_mutex_init(&sb->mu, NULL);
    pthread_cond_init(&sb->go, NULL);
    pthread_cond_init(&sb->done, NULL);
    sb->m = m;
    sb->shard = shard;
    sb->n_max = n_max;
    sb->k = (int)m->hp.n_expert_used;
    sb->nodes = calloc((size_t)shard->n_nodes, sizeof(*sb->nodes));
    int rc = sb->nodes ? 0 : mp_error_set(err, MP_ENOMEM, "out of memory");
    int64_t per_node[shard->n_nodes];
    split_threads(shard, n_threads, per_node);
    const size_t n_pairs = (size_t)n_max * (size_t)sb->k;
    int n_working = 0;
    sb->inline_node = -1;
    for (int k = 0; k < shard->n_nodes; k++)
        if (shard->nodes[k].n_experts > 0 && n_working++ == 0)
            sb->inline_node = k;
    if (n_working != 1)
        sb->inline_node = -1;
    for (int k = 0; !rc && k < shard->n_nodes; k++) {
        struct node_driver *d = &sb->nodes[k];
        *d = (struct node_driver){.sb = sb, .node = k, .n_threads = (int)per_node[k]};
        if (shard->nodes[k].n_experts == 0)
            continue;
        d->ids = malloc(n_pairs * sizeof(*d->ids));
        d->out = k == sb->inline_node
                     ? NULL
                     : malloc((size_t)n_max * (size_t)m->hp.n_embd * sizeof(float));
        if (!d->ids || (k != sb->inline_node && !d->out))
            rc = mp_error_set(err, MP_ENOMEM, "out of memory for node %d", k);
        else
            rc = k == sb->inline_node ? inline_start(d, err) : driver_start(d, err);
    }
    if (rc) {
        shard_backend_free(sb);
        return rc;
    }
    *out = (struct expert_backend){.ops = &shard_ops, .self = sb};
    return 0;
}
