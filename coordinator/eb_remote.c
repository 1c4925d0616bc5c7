/* coordinator/eb_remote.c: see eb_remote.h. Runs on the forward pass's thread and talks to the
 * cluster thread over an inproc pair: [slot][envelope][bulk...] both ways. Bulk frames are built
 * in zmq_msg_t buffers, and the cluster thread moves them to the ROUTER without copying. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "coordinator/cluster_impl.h"
#include "model/eb_local.h"
#include "model/eb_slots.h"
#include "model/repack.h"

/* Holders 0..n_slots-1 are worker slots; with a local shard, holder n_slots is this process. */
#define MAX_HOLDERS (CLUSTER_MAX_WORKERS + 1)

struct eb_remote {
    struct cluster *c;
    uint64_t next_job;
    int n_slots;
    int n_holders;
    int32_t *tok;     /* [n_holders][n_max] tokens each holder computes, in job order */
    int8_t *holder;   /* [n_max][k] the holder chosen for each (token, slot) of the job */
    uint64_t ready;   /* holders able to take work now (bit per holder) */
    int n_tok[MAX_HOLDERS];
    float *partial;   /* [n_holders][n_max][n_embd] each holder's partial sums */
    /* local shard */
    struct expert_table *table;
    struct expert_backend local;
    float *lx, *lw;   /* [n_max][n_embd] gathered inputs, [n_max][k] weights */
    int32_t *lids;    /* [n_max][k] */
    /* exact mode */
    float *yslot;     /* [n_max][k][n_embd] every (token, slot)'s weighted expert output */
    float *ltmp, *lrows; /* local eb_run_per_slot scratch: [k][n_max][n_embd] each */
    int32_t *lids_tmp;
    uint32_t gen[CLUSTER_MAX_WORKERS];
    int64_t sent_at[CLUSTER_MAX_WORKERS];
    int pending[CLUSTER_MAX_WORKERS];
};

/* The coordinator's own share: an eb_local over the experts the plan gives holder n_slots. */
static int local_new(struct eb_remote *r, struct mp_error *err)
{
    const struct cluster *c = r->c;
    const struct model *m = c->m;
    int rc = expert_table_from_model(m, &r->table, err);
    if (rc)
        return rc;
    for (int64_t i = 0; i < m->hp.n_layer * m->hp.n_expert; i++)
        if (!(c->holders[i] >> r->n_slots & 1))
            r->table->w[i] = (struct expert_weights){0};
    /* Its share only, for the x16 kernels; the rest stays untouched (model/repack.h). */
    if ((rc = repack_model_experts(m, r->table, tp_n_threads(c->o.local_tp), err)))
        return rc;
    const size_t n_max = (size_t)c->o.n_max, k = (size_t)m->hp.n_expert_used;
    r->lx = malloc(n_max * (size_t)m->hp.n_embd * sizeof(float));
    r->lw = malloc(n_max * k * sizeof(float));
    r->lids = malloc(n_max * k * sizeof(int32_t));
    if (!r->lx || !r->lw || !r->lids)
        return mp_error_set(err, MP_ENOMEM, "out of memory for the local shard");
    return eb_local_new(m, r->table, c->o.local_tp, c->o.n_max, &r->local, err);
}

int eb_remote_new(struct cluster *c, struct mp_error *err)
{
    struct eb_remote *r = calloc(1, sizeof(*r));
    if (!r)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    const size_t n_holders = (size_t)(c->o.expect_workers + c->o.local_shard);
    const size_t n_max = (size_t)c->o.n_max;
    r->c = c;
    r->n_slots = c->o.expect_workers;
    r->n_holders = (int)n_holders;
    r->tok = malloc(n_holders * n_max * sizeof(*r->tok));
    r->holder = malloc(n_max * (size_t)c->m->hp.n_expert_used);
    r->partial = malloc(n_holders * n_max * (size_t)c->m->hp.n_embd * sizeof(float));
    c->eb = r;
    if (!r->tok || !r->partial || !r->holder)
        return mp_error_set(err, MP_ENOMEM, "out of memory for %zu partial sums", n_holders);
    if (c->o.exact) {
        const size_t per = n_max * (size_t)c->m->hp.n_expert_used * (size_t)c->m->hp.n_embd;
        r->yslot = malloc(per * sizeof(float));
        r->ltmp = c->o.local_shard ? malloc(per * sizeof(float)) : NULL;
        r->lrows = c->o.local_shard ? malloc(per * sizeof(float)) : NULL;
        r->lids_tmp = malloc(n_max * (size_t)c->m->hp.n_expert_used * sizeof(int32_t));
        if (!r->yslot || !r->lids_tmp || (c->o.local_shard && (!r->ltmp || !r->lrows)))
            return mp_error_set(err, MP_ENOMEM, "out of memory for exact sums");
    }
    return c->o.local_shard ? local_new(r, err) : 0;
}

void eb_remote_delete(struct eb_remote *r)
{
    if (!r)
        return;
    eb_free(&r->local);
    expert_table_free(r->table);
    free(r->lx);
    free(r->lw);
    free(r->lids);
    free(r->yslot);
    free(r->ltmp);
    free(r->lrows);
    free(r->lids_tmp);
    free(r->tok);
    free(r->holder);
    free(r->partial);
    free(r);
}

/* Of the ready holders in set, the one with the fewest tokens of this job so far (replicas share
 * the work; a lost replica's share goes to the others); ties to the lowest index. -1: none. */
static int choose_holder(const struct eb_remote *r, uint64_t set)
{
    int best = -1;
    set &= r->ready;
    for (int w = 0; set; w++, set >>= 1)
        if ((set & 1) && (best < 0 || r->n_tok[w] < r->n_tok[best]))
            best = w;
    return best;
}

/* Which holders are ready now: the local shard always, slots with a loaded worker. */
static void snapshot_ready(struct eb_remote *r)
{
    struct cluster *c = r->c;
    r->ready = r->n_holders > r->n_slots ? 1ull << r->n_slots : 0;
    pthread_mutex_lock(&c->mu);
    for (int w = 0; w < r->n_slots; w++)
        if (c->slot[w].st.ready)
            r->ready |= 1ull << w;
    pthread_mutex_unlock(&c->mu);
}

/* Which holders each token needs, and the token lists per holder. */
static int group_by_slot(struct eb_remote *r, const struct eb_job *job, struct mp_error *err)
{
    const struct cluster *c = r->c;
    const int64_t n_expert = c->m->hp.n_expert;
    memset(r->n_tok, 0, sizeof(r->n_tok));
    for (int t = 0; t < job->n_tokens; t++) {
        int seen[MAX_HOLDERS] = {0};
        for (int s = 0; s < job->k; s++) {
            int32_t e = job->ids[(size_t)t * job->k + s];
            if (e < 0 || e >= n_expert)
                return mp_error_set(err, MP_ERANGE, "layer %d: expert id %d out of range",
                                    job->layer, (int)e);
            int w = choose_holder(r, c->holders[(int64_t)job->layer * n_expert + e]);
            if (w < 0)
                return mp_error_set(err, MP_EPEER, "layer %d expert %d: no ready worker holds it",
                                    job->layer, (int)e);
            r->holder[(size_t)t * job->k + s] = (int8_t)w;
            if (!seen[w]++)
                r->tok[(size_t)w * c->o.n_max + r->n_tok[w]++] = t;
        }
    }
    return 0;
}

static int send_frame(void *sock, size_t len, int more, void (*fill)(void *, void *), void *arg)
{
    zmq_msg_t part;
    if (zmq_msg_init_size(&part, len))
        return -1;
    fill(zmq_msg_data(&part), arg);
    return msg_send_zmsg(sock, &part, more);
}

struct fill_ctx {
    const struct eb_job *job;
    const int32_t *tok;
    int n;
    int w;
    const int8_t *holder; /* [n_tokens][k] chosen holders */
    enum wire_type wire;
};

static void fill_x(void *dst, void *arg)
{
    const struct fill_ctx *f = arg;
    const size_t row = wire_row_bytes(f->wire, f->job->n_embd);
    for (int i = 0; i < f->n; i++)
        wire_encode(f->wire, f->job->x + (size_t)f->tok[i] * f->job->n_embd, 1, f->job->n_embd,
                    (uint8_t *)dst + (size_t)i * row);
}

static void fill_ids(void *dst, void *arg)
{
    const struct fill_ctx *f = arg;
    int32_t *ids = dst;
    const int k = f->job->k;
    for (int i = 0; i < f->n; i++)
        for (int s = 0; s < k; s++) {
            int32_t e = f->job->ids[(size_t)f->tok[i] * k + s];
            ids[(size_t)i * k + s] = f->holder[(size_t)f->tok[i] * k + s] == f->w ? e : EB_SLOT_SKIP;
        }
}

static void fill_weights(void *dst, void *arg)
{
    const struct fill_ctx *f = arg;
    float *w = dst;
    const int k = f->job->k;
    for (int i = 0; i < f->n; i++)
        memcpy(w + (size_t)i * k, f->job->weights + (size_t)f->tok[i] * k, (size_t)k * sizeof(*w));
}

static int send_job(struct eb_remote *r, const struct eb_job *job, int w, uint64_t id,
                    uint64_t *bytes)
{
    struct cluster *c = r->c;
    struct fill_ctx f = {.job = job, .tok = r->tok + (size_t)w * c->o.n_max, .n = r->n_tok[w],
                         .w = w, .holder = r->holder,
                         .wire = c->o.wire};
    ExpertRequest q = EXPERT_REQUEST__INIT;
    q.job = id;
    q.layer = job->layer;
    q.n_tokens = f.n;
    q.k = job->k;
    q.wire = c->o.wire;
    q.per_slot = c->o.exact;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_REQUEST;
    env.request = &q;
    const size_t x_len = (size_t)f.n * wire_row_bytes(c->o.wire, job->n_embd);
    const size_t kw_len = (size_t)f.n * (size_t)job->k * 4;
    int32_t slot = w;
    *bytes += envelope__get_packed_size(&env) + x_len + 2 * kw_len;
    if (msg_send_bytes(c->pipe_eb, &slot, sizeof(slot), 1) || msg_send_env(c->pipe_eb, &env, 1) ||
        send_frame(c->pipe_eb, x_len, 1, fill_x, &f) ||
        send_frame(c->pipe_eb, kw_len, 1, fill_ids, &f) ||
        send_frame(c->pipe_eb, kw_len, 0, fill_weights, &f))
        return -1;
    return 0;
}

/* Rows holder w returns: one per token, or in exact mode one per (token, slot) it holds. */
static size_t reply_rows(const struct eb_remote *r, const struct eb_job *job, int w)
{
    const struct cluster *c = r->c;
    if (!c->o.exact)
        return (size_t)r->n_tok[w];
    const int32_t *tok = r->tok + (size_t)w * c->o.n_max;
    size_t n = 0;
    for (int i = 0; i < r->n_tok[w]; i++)
        for (int s = 0; s < job->k; s++)
            n += r->holder[(size_t)tok[i] * job->k + s] == w;
    return n;
}

/* Exact mode: rows in (token, slot) order go to their place in yslot. */
static void scatter_slots(struct eb_remote *r, const struct eb_job *job, int w, const void *src,
                          enum wire_type wire)
{
    const struct cluster *c = r->c;
    const int32_t *tok = r->tok + (size_t)w * c->o.n_max;
    const size_t row = wire_row_bytes(wire, job->n_embd);
    size_t at = 0;
    for (int i = 0; i < r->n_tok[w]; i++)
        for (int s = 0; s < job->k; s++)
            if (r->holder[(size_t)tok[i] * job->k + s] == w)
                wire_decode(wire, (const uint8_t *)src + at++ * row, 1, job->n_embd,
                            r->yslot + ((size_t)tok[i] * job->k + s) * job->n_embd);
}

/* Checks a reply's shape and decodes it into the slot's partial sums (or yslot). */
static int take_reply(struct eb_remote *r, const struct eb_job *job, int w, struct msg *m,
                      const ExpertReply *rep, uint64_t *bytes, struct mp_error *err)
{
    const struct cluster *c = r->c;
    const size_t want = reply_rows(r, job, w) * wire_row_bytes(c->o.wire, job->n_embd);
    if (rep->n_tokens != r->n_tok[w] || m->n != 3 || msg_size(m, 2) != want)
        return mp_error_set(err, MP_EPEER, "worker %d sent a malformed reply for layer %d", w,
                            job->layer);
    if (c->o.exact)
        scatter_slots(r, job, w, msg_data(m, 2), c->o.wire);
    else
        wire_decode(c->o.wire, msg_data(m, 2), r->n_tok[w], job->n_embd,
                    r->partial + (size_t)w * c->o.n_max * job->n_embd);
    *bytes += msg_size(m, 1) + want;
    return 0;
}

static void record_rtt(struct eb_remote *r, int w, uint64_t bytes_in, uint64_t bytes_out)
{
    struct cluster_worker_status *st = &r->c->slot[w].st;
    const double ms = (double)(mono_ms() - r->sent_at[w]);
    pthread_mutex_lock(&r->c->mu);
    st->rtt_ms_last = ms;
    st->rtt_ms_mean = (st->rtt_ms_mean * (double)st->jobs + ms) / (double)(st->jobs + 1);
    st->jobs++;
    st->bytes_received += bytes_in;
    st->bytes_sent += bytes_out;
    pthread_mutex_unlock(&r->c->mu);
}

/* A pending slot whose worker was lost (or replaced) since the job was sent fails the job. */
static int check_alive(struct eb_remote *r, const struct eb_job *job, struct mp_error *err)
{
    struct cluster *c = r->c;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    for (int w = 0; w < r->n_slots && !rc; w++)
        if (r->pending[w] && (!c->slot[w].st.joined || c->slot[w].gen != r->gen[w]))
            rc = mp_error_set(err, MP_EPEER, "worker %d (%s, %s) was lost during layer %d", w,
                              c->slot[w].st.host, c->slot[w].st.addr, job->layer);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int run_local(struct eb_remote *r, const struct eb_job *job, struct mp_error *err)
{
    const struct cluster *c = r->c;
    const int w = r->n_slots;
    struct fill_ctx f = {.job = job, .tok = r->tok + (size_t)w * c->o.n_max, .n = r->n_tok[w],
                         .w = w, .holder = r->holder,
                         .wire = WIRE_F32};
    fill_x(r->lx, &f);
    fill_ids(r->lids, &f);
    fill_weights(r->lw, &f);
    struct eb_job part = {.layer = job->layer, .n_tokens = f.n, .k = job->k, .n_embd = job->n_embd,
                          .x = r->lx, .ids = r->lids, .weights = r->lw};
    int rc, n_rows;
    if (!c->o.exact) {
        rc = eb_run(&r->local, &part, r->partial + (size_t)w * c->o.n_max * job->n_embd, err);
    } else {
        rc = eb_run_per_slot(&r->local, &part, r->lids_tmp, r->ltmp, r->lrows, &n_rows, err);
        if (!rc)
            scatter_slots(r, job, w, r->lrows, WIRE_F32);
    }
    return rc ? mp_error_wrap(err, "local shard: ") : 0;
}

/* Handles one message from the pipe; returns 0, or an error that fails the job. */
static int on_message(struct eb_remote *r, const struct eb_job *job, uint64_t id, struct msg *m,
                      uint64_t *bytes_in, struct mp_error *err)
{
    int32_t w = -1;
    if (m->n >= 2 && msg_size(m, 0) == sizeof(w))
        memcpy(&w, msg_data(m, 0), sizeof(w));
    Envelope *env = msg_envelope(m, 1);
    int rc = 0;
    if (env && w >= 0 && w < r->n_slots && r->pending[w]) {
        if (env->body_case == ENVELOPE__BODY_REPLY && env->reply->job == id) {
            uint64_t b = 0;
            rc = take_reply(r, job, w, m, env->reply, &b, err);
            r->pending[w] = 0;
            *bytes_in += b;
            if (!rc)
                record_rtt(r, w, b, 0);
        } else if (env->body_case == ENVELOPE__BODY_ERROR && env->error->job == id) {
            rc = mp_error_set(err, MP_EPEER, "worker %d: %s", w,
                              env->error->message ? env->error->message : "failed");
        }
    }
    if (env)
        envelope__free_unpacked(env, NULL);
    return rc;
}

static int gather(struct eb_remote *r, const struct eb_job *job, uint64_t id, uint64_t *bytes_in,
                  struct mp_error *err)
{
    const int64_t start = mono_ms();
    for (;;) {
        int left = 0;
        for (int w = 0; w < r->n_slots; w++)
            left += r->pending[w];
        if (!left)
            return 0;
        zmq_pollitem_t item = {r->c->pipe_eb, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 50) < 0 && errno != EINTR)
            return mp_error_set(err, MP_EIO, "cluster pipe: %s", zmq_strerror(errno));
        struct msg m;
        while (!msg_recv(r->c->pipe_eb, &m, ZMQ_DONTWAIT)) {
            int rc = on_message(r, job, id, &m, bytes_in, err);
            msg_close(&m);
            if (rc)
                return rc;
        }
        int rc = check_alive(r, job, err);
        if (rc)
            return rc;
        if (mono_ms() - start > r->c->o.job_timeout_ms)
            return mp_error_set(err, MP_ETIMEOUT, "layer %d: no reply from the workers in %d ms",
                                job->layer, r->c->o.job_timeout_ms);
    }
}

/* out[t] = ((p_0[t] + p_1[t]) + ...) over the slots that computed a part of token t. */
static void sum_partials(struct eb_remote *r, const struct eb_job *job, float *out)
{
    const int64_t n_embd = job->n_embd;
    const size_t n_max = (size_t)r->c->o.n_max;
    memset(out, 0, (size_t)job->n_tokens * (size_t)n_embd * sizeof(float));
    for (int w = 0; w < r->n_holders; w++)
        for (int i = 0; i < r->n_tok[w]; i++) {
            float *o = out + (size_t)r->tok[w * n_max + i] * n_embd;
            const float *p = r->partial + ((size_t)w * n_max + i) * n_embd;
            for (int64_t j = 0; j < n_embd; j++)
                o[j] += p[j];
        }
}

/* Claims the slots this job needs: each must hold a ready worker now. */
static int claim_slots(struct eb_remote *r, const struct eb_job *job, struct mp_error *err)
{
    struct cluster *c = r->c;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    for (int w = 0; w < r->n_slots; w++) {
        r->pending[w] = r->n_tok[w] > 0;
        r->gen[w] = c->slot[w].gen;
        if (r->pending[w] && !c->slot[w].st.ready && !rc)
            rc = mp_error_set(err, MP_EPEER, "layer %d: worker %d is not %s", job->layer, w,
                              c->slot[w].st.joined ? "ready" : "connected");
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* Sends each pending slot its part of the job. */
static int scatter(struct eb_remote *r, const struct eb_job *job, uint64_t id, uint64_t *bytes,
                   struct mp_error *err)
{
    for (int w = 0; w < r->n_slots; w++) {
        if (!r->pending[w])
            continue;
        uint64_t b = 0;
        r->sent_at[w] = mono_ms();
        if (send_job(r, job, w, id, &b))
            return mp_error_set(err, MP_EIO, "cluster pipe: %s", zmq_strerror(errno));
        *bytes += b;
        pthread_mutex_lock(&r->c->mu);
        r->c->slot[w].st.bytes_sent += b;
        pthread_mutex_unlock(&r->c->mu);
    }
    return 0;
}

static int remote_run(void *self, const struct eb_job *job, float *out, struct mp_error *err)
{
    struct eb_remote *r = self;
    struct cluster *c = r->c;
    if (job->n_tokens < 0 || job->n_tokens > c->o.n_max || job->n_embd != c->m->hp.n_embd ||
        job->k != c->m->hp.n_expert_used || job->layer < 0 || job->layer >= c->m->hp.n_layer || !c->m->hp.is_moe[job->layer])
        return mp_error_set(err, MP_EINVAL, "expert job (layer %d, %d tokens) does not fit",
                            job->layer, job->n_tokens);
    snapshot_ready(r);
    int rc = group_by_slot(r, job, err);
    if (!rc)
        rc = claim_slots(r, job, err);
    if (rc)
        return rc;
    const uint64_t id = ++r->next_job;
    uint64_t bytes_out = 0, bytes_in = 0;
    if ((rc = scatter(r, job, id, &bytes_out, err)))
        return rc;
    /* The local share computes while the workers compute theirs. */
    if (r->n_holders > r->n_slots && r->n_tok[r->n_slots] && (rc = run_local(r, job, err)))
        return rc;
    rc = gather(r, job, id, &bytes_in, err);
    if (rc)
        return rc;
    if (c->o.exact)
        eb_mix_slots(r->yslot, job->n_tokens, job->k, job->n_embd, out);
    else
        sum_partials(r, job, out);
    pthread_mutex_lock(&c->mu);
    c->jobs++;
    c->token_layers += (uint64_t)job->n_tokens;
    c->bytes += bytes_out + bytes_in;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* The cluster owns the backend's state: cluster_stop frees it. */
static void remote_free(void *self)
{
    (void)self;
}

const struct eb_ops eb_remote_ops = {.run = remote_run, .free = remote_free};
