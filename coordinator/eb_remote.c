/* coordinator/eb_remote.c: see eb_remote.h. Runs on the forward pass's thread. A worker's
 * requests and replies travel on its direct data connection: [data id][envelope][bulk...] on the
 * data ROUTER this thread owns (cluster_impl.h), so a round trip crosses no coordinator thread
 * but this one. Until that connection is up (or without one: a non-TCP endpoint, a worker that
 * did not open it) they are relayed by the cluster thread over an inproc pair instead:
 * [slot][envelope][bulk...] both ways. Bulk frames are built in zmq_msg_t buffers and moved
 * (never copied) to the socket that carries them. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "coordinator/cluster_impl.h"
#include "kernels/matmul.h"
#include "model/eb_local.h"
#include "model/eb_slots.h"
#include "model/repack.h"
#include "proto/hoptrace.h"

/* Holders 0..n_slots-1 are worker slots; with a local shard, holder n_slots is this process. */
#define MAX_HOLDERS (CLUSTER_MAX_WORKERS + 1)

/* One job in flight: which holder computes what, and what came back. The forward pass keeps up
 * to EB_MAX_INFLIGHT jobs out at once (a batch's two halves), each in its own lane. */
struct lane {
    bool busy;
    uint64_t id;      /* job id (never reused: late replies of old jobs match no lane) */
    struct eb_job job; /* shape only: the input pointers are not kept past submit */
    float *out;
    int32_t *tok;     /* [n_holders][n_max] tokens each holder computes, in job order */
    int8_t *holder;   /* [n_max][k] the holder chosen for each (token, slot) of the job */
    int n_tok[MAX_HOLDERS];
    int n_slot[MAX_HOLDERS]; /* (token, slot) pairs each holder computes */
    float *partial;   /* [n_holders][n_max][n_embd] each holder's partial sums */
    float *yslot;     /* exact mode: [n_max][k][n_embd] every (token, slot)'s weighted output */
    uint32_t gen[CLUSTER_MAX_WORKERS];
    int64_t sent_at[CLUSTER_MAX_WORKERS];
    int pending[CLUSTER_MAX_WORKERS];
    uint64_t compute_us[CLUSTER_MAX_WORKERS]; /* each worker's own compute time, from its reply */
    /* Per-worker statistics, added to the cluster's under one lock when the job is done (the
     * forward thread takes c->mu once per submit and once per wait, not per message). */
    uint64_t w_bytes_out[CLUSTER_MAX_WORKERS], w_bytes_in[CLUSTER_MAX_WORKERS];
    int64_t rtt_ms[CLUSTER_MAX_WORKERS];
    uint64_t n_direct, n_relayed; /* requests sent on data connections / relayed */
    uint64_t bytes_out, bytes_in;
    int64_t t0, t_sent;
    int rc;               /* a worker's error that arrived while the other lane was waited for */
    struct mp_error err;
};

struct eb_remote {
    struct cluster *c;
    uint64_t next_job;
    int n_slots;
    int n_holders;
    uint64_t ready;   /* holders able to take work now (bit per holder) */
    /* Each slot's data connection routing id, as of the latest claim_slots. */
    unsigned char data_id[CLUSTER_MAX_WORKERS][DATA_ID_LEN];
    struct lane lane[EB_MAX_INFLIGHT];
    /* local shard */
    struct expert_table *table;
    struct expert_backend local;
    float *lx, *lw;   /* [n_max][n_embd] gathered inputs, [n_max][k] weights */
    int32_t *lids;    /* [n_max][k] */
    float *ltmp, *lrows; /* exact mode: local eb_run_per_slot scratch, [k][n_max][n_embd] each */
    int32_t *lids_tmp;
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

static int lane_new(struct lane *l, const struct cluster *c, size_t n_holders)
{
    const size_t n_max = (size_t)c->o.n_max, k = (size_t)c->m->hp.n_expert_used;
    const size_t n_embd = (size_t)c->m->hp.n_embd;
    l->tok = malloc(n_holders * n_max * sizeof(*l->tok));
    l->holder = malloc(n_max * k);
    l->partial = malloc(n_holders * n_max * n_embd * sizeof(float));
    l->yslot = c->o.exact ? malloc(n_max * k * n_embd * sizeof(float)) : NULL;
    return l->tok && l->holder && l->partial && (!c->o.exact || l->yslot) ? 0 : -1;
}

static void lane_free(struct lane *l)
{
    free(l->tok);
    free(l->holder);
    free(l->partial);
    free(l->yslot);
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
    c->eb = r;
    for (int i = 0; i < EB_MAX_INFLIGHT; i++)
        if (lane_new(&r->lane[i], c, n_holders))
            return mp_error_set(err, MP_ENOMEM, "out of memory for %zu partial sums", n_holders);
    if (c->o.exact) {
        const size_t per = n_max * (size_t)c->m->hp.n_expert_used * (size_t)c->m->hp.n_embd;
        r->ltmp = c->o.local_shard ? malloc(per * sizeof(float)) : NULL;
        r->lrows = c->o.local_shard ? malloc(per * sizeof(float)) : NULL;
        r->lids_tmp = malloc(n_max * (size_t)c->m->hp.n_expert_used * sizeof(int32_t));
        if (!r->lids_tmp || (c->o.local_shard && (!r->ltmp || !r->lrows)))
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
    free(r->ltmp);
    free(r->lrows);
    free(r->lids_tmp);
    for (int i = 0; i < EB_MAX_INFLIGHT; i++)
        lane_free(&r->lane[i]);
    free(r);
}

/* Of the ready holders in set, the one with the fewest (token, slot) pairs of this job so far:
 * that is the work each computes, so replicas split even one token's experts evenly (counting
 * tokens instead sent a token's 4 experts 3+1 to two full replicas). Ties go to a holder that
 * already receives this token (no extra row on the wire), then to the lowest index. -1: none. */
static int choose_holder(const struct eb_remote *r, const struct lane *l, uint64_t set,
                         const int *seen)
{
    int best = -1;
    set &= r->ready;
    for (int w = 0; set; w++, set >>= 1) {
        if (!(set & 1))
            continue;
        if (best < 0 || l->n_slot[w] < l->n_slot[best] ||
            (l->n_slot[w] == l->n_slot[best] && seen[w] && !seen[best]))
            best = w;
    }
    return best;
}

/* Which holders are ready now (the local shard always, slots with a loaded worker), with each
 * slot's generation (a change while the job is out means its worker was lost) and data id. */
static void snapshot_ready(struct eb_remote *r, struct lane *l)
{
    struct cluster *c = r->c;
    r->ready = r->n_holders > r->n_slots ? 1ull << r->n_slots : 0;
    pthread_mutex_lock(&c->mu);
    for (int w = 0; w < r->n_slots; w++) {
        if (c->slot[w].st.ready)
            r->ready |= 1ull << w;
        l->gen[w] = c->slot[w].gen;
        memcpy(r->data_id[w], c->slot[w].data_id, DATA_ID_LEN);
    }
    pthread_mutex_unlock(&c->mu);
}

/* Which holders each token needs, and the token lists per holder. */
static int group_by_slot(struct eb_remote *r, struct lane *l, const struct eb_job *job,
                         struct mp_error *err)
{
    const struct cluster *c = r->c;
    const int64_t n_expert = c->m->hp.n_expert;
    memset(l->n_tok, 0, sizeof(l->n_tok));
    memset(l->n_slot, 0, sizeof(l->n_slot));
    for (int t = 0; t < job->n_tokens; t++) {
        int seen[MAX_HOLDERS] = {0};
        for (int s = 0; s < job->k; s++) {
            int32_t e = job->ids[(size_t)t * job->k + s];
            if (e < 0 || e >= n_expert)
                return mp_error_set(err, MP_ERANGE, "layer %d: expert id %d out of range",
                                    job->layer, (int)e);
            int w = choose_holder(r, l, c->holders[(int64_t)job->layer * n_expert + e], seen);
            if (w < 0)
                return mp_error_set(err, MP_EPEER, "layer %d expert %d: no ready worker holds it",
                                    job->layer, (int)e);
            l->holder[(size_t)t * job->k + s] = (int8_t)w;
            l->n_slot[w]++;
            if (!seen[w]++)
                l->tok[(size_t)w * c->o.n_max + l->n_tok[w]++] = t;
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
    int act;              /* x travels in this weight type's activation type (-1: wire) */
};

/* With the f32 wire, a layer whose gate and up experts take the same converted activations
 * (Q8_K for K-quants, Q8_0 for Q8_0) sends them converted: the worker would convert the f32
 * rows with the same function, so results are the same bits, for 3.5x fewer bytes out (Q8_K).
 * Returns the gate's weight type, or -1 to send wire rows. */
static int act_on_wire(const struct cluster *c, int layer)
{
    if (c->o.wire != WIRE_F32 || !eb_local_converted_input_ok(c->m, layer))
        return -1;
    return (int)c->m->layers[layer].gate_exps.type;
}

static size_t x_row_bytes(const struct fill_ctx *f)
{
    return f->act >= 0 ? kq_act_row_bytes((enum kq_type)f->act, f->job->n_embd)
                       : wire_row_bytes(f->wire, f->job->n_embd);
}

static void fill_x(void *dst, void *arg)
{
    const struct fill_ctx *f = arg;
    const int64_t n_embd = f->job->n_embd;
    const size_t row = x_row_bytes(f);
    for (int i = 0; i < f->n; i++) {
        const float *x = f->job->x + (size_t)f->tok[i] * n_embd;
        uint8_t *out = (uint8_t *)dst + (size_t)i * row;
        if (f->act >= 0) /* one row: converted inline, as the worker's pool would */
            kq_convert_act(NULL, (enum kq_type)f->act, x, (size_t)n_embd, 1, n_embd, out, row);
        else
            wire_encode(f->wire, x, 1, n_embd, out);
    }
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

/* Sends the first frame of a message for worker w and returns the socket the rest goes on: the
 * data ROUTER when the worker's data connection is up (the send of its routing id fails at once
 * otherwise: ROUTER_MANDATORY, no timeout; nothing was queued), else the pipe to the cluster
 * thread. Counts which. */
static void *route_to(struct eb_remote *r, struct lane *l, int w)
{
    struct cluster *c = r->c;
    int direct = c->data && msg_send_bytes(c->data, r->data_id[w], DATA_ID_LEN, 1) == 0;
    int32_t slot = w;
    if (!direct)
        msg_send_bytes(c->pipe_eb, &slot, sizeof(slot), 1);
    *(direct ? &l->n_direct : &l->n_relayed) += 1;
    return direct ? c->data : c->pipe_eb;
}

static int send_job(struct eb_remote *r, struct lane *l, const struct eb_job *job, int w,
                    uint64_t *bytes)
{
    struct cluster *c = r->c;
    struct fill_ctx f = {.job = job, .tok = l->tok + (size_t)w * c->o.n_max, .n = l->n_tok[w],
                         .w = w, .holder = l->holder, .wire = c->o.wire,
                         .act = act_on_wire(c, job->layer)};
    ExpertRequest q = EXPERT_REQUEST__INIT;
    q.job = l->id;
    q.layer = job->layer;
    q.n_tokens = f.n;
    q.k = job->k;
    q.wire = c->o.wire;
    q.per_slot = c->o.exact;
    q.x_act = f.act >= 0;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_REQUEST;
    env.request = &q;
    const size_t x_len = (size_t)f.n * x_row_bytes(&f);
    const size_t kw_len = (size_t)f.n * (size_t)job->k * 4;
    *bytes += envelope__get_packed_size(&env) + x_len + 2 * kw_len;
    hoptrace(l->id, w, HOP_EB_SEND);
    void *sock = route_to(r, l, w);
    if (msg_send_env(sock, &env, 1) || send_frame(sock, x_len, 1, fill_x, &f) ||
        send_frame(sock, kw_len, 1, fill_ids, &f) || send_frame(sock, kw_len, 0, fill_weights, &f))
        return -1;
    hoptrace(l->id, w, HOP_EB_SENT);
    return 0;
}

/* Rows holder w returns: one per token, or in exact mode one per (token, slot) it holds. */
static size_t reply_rows(const struct eb_remote *r, const struct lane *l, int w)
{
    const struct cluster *c = r->c;
    return c->o.exact ? (size_t)l->n_slot[w] : (size_t)l->n_tok[w];
}

/* Exact mode: rows in (token, slot) order go to their place in yslot. */
static void scatter_slots(struct eb_remote *r, struct lane *l, int w, const void *src,
                          enum wire_type wire)
{
    const struct cluster *c = r->c;
    const struct eb_job *job = &l->job;
    const int32_t *tok = l->tok + (size_t)w * c->o.n_max;
    const size_t row = wire_row_bytes(wire, job->n_embd);
    size_t at = 0;
    for (int i = 0; i < l->n_tok[w]; i++)
        for (int s = 0; s < job->k; s++)
            if (l->holder[(size_t)tok[i] * job->k + s] == w)
                wire_decode(wire, (const uint8_t *)src + at++ * row, 1, job->n_embd,
                            l->yslot + ((size_t)tok[i] * job->k + s) * job->n_embd);
}

/* Checks a reply's shape and decodes it into the slot's partial sums (or yslot). */
static int take_reply(struct eb_remote *r, struct lane *l, int w, struct msg *m,
                      const ExpertReply *rep, uint64_t *bytes, struct mp_error *err)
{
    const struct cluster *c = r->c;
    const struct eb_job *job = &l->job;
    const size_t want = reply_rows(r, l, w) * wire_row_bytes(c->o.wire, job->n_embd);
    if (rep->n_tokens != l->n_tok[w] || m->n != 3 || msg_size(m, 2) != want)
        return mp_error_set(err, MP_EPEER, "worker %d sent a malformed reply for layer %d", w,
                            job->layer);
    if (c->o.exact)
        scatter_slots(r, l, w, msg_data(m, 2), c->o.wire);
    else
        wire_decode(c->o.wire, msg_data(m, 2), l->n_tok[w], job->n_embd,
                    l->partial + (size_t)w * c->o.n_max * job->n_embd);
    *bytes += msg_size(m, 1) + want;
    return 0;
}

/* Under c->mu, once the job is done: each worker's round trip and traffic. */
static void record_workers(struct eb_remote *r, const struct lane *l)
{
    for (int w = 0; w < r->n_slots; w++) {
        if (!l->n_tok[w])
            continue;
        struct cluster_worker_status *st = &r->c->slot[w].st;
        const double ms = (double)l->rtt_ms[w];
        st->rtt_ms_last = ms;
        st->rtt_ms_mean = (st->rtt_ms_mean * (double)st->jobs + ms) / (double)(st->jobs + 1);
        st->jobs++;
        st->bytes_sent += l->w_bytes_out[w];
        st->bytes_received += l->w_bytes_in[w];
    }
    r->c->direct_requests += l->n_direct;
    r->c->relayed_requests += l->n_relayed;
}

/* A pending slot whose worker was lost (or replaced) since the job was sent fails the job. */
static int check_alive(struct eb_remote *r, const struct lane *l, struct mp_error *err)
{
    struct cluster *c = r->c;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    for (int w = 0; w < r->n_slots && !rc; w++)
        if (l->pending[w] && (!c->slot[w].st.joined || c->slot[w].gen != l->gen[w]))
            rc = mp_error_set(err, MP_EPEER, "worker %d (%s, %s) was lost during layer %d", w,
                              c->slot[w].st.host, c->slot[w].st.addr, l->job.layer);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int run_local(struct eb_remote *r, struct lane *l, const struct eb_job *job,
                     struct mp_error *err)
{
    const struct cluster *c = r->c;
    const int w = r->n_slots;
    struct fill_ctx f = {.job = job, .tok = l->tok + (size_t)w * c->o.n_max, .n = l->n_tok[w],
                         .w = w, .holder = l->holder, .wire = WIRE_F32, .act = -1};
    fill_x(r->lx, &f);
    fill_ids(r->lids, &f);
    fill_weights(r->lw, &f);
    struct eb_job part = {.layer = job->layer, .n_tokens = f.n, .k = job->k, .n_embd = job->n_embd,
                          .x = r->lx, .ids = r->lids, .weights = r->lw};
    int rc, n_rows;
    if (!c->o.exact) {
        rc = eb_run(&r->local, &part, l->partial + (size_t)w * c->o.n_max * job->n_embd, err);
    } else {
        rc = eb_run_per_slot(&r->local, &part, r->lids_tmp, r->ltmp, r->lrows, &n_rows, err);
        if (!rc)
            scatter_slots(r, l, w, r->lrows, WIRE_F32);
    }
    return rc ? mp_error_wrap(err, "local shard: ") : 0;
}

static struct lane *lane_of(struct eb_remote *r, uint64_t id)
{
    for (int i = 0; i < EB_MAX_INFLIGHT; i++)
        if (r->lane[i].busy && r->lane[i].id == id)
            return &r->lane[i];
    return NULL;
}

/* The slot a message came from: on the pipe, its first frame; on the data ROUTER, the slot
 * whose current data id it carries (-1: nobody's, e.g. a peer that has not joined, or a
 * worker's connection from before it rejoined). */
static int sender_of(struct eb_remote *r, struct msg *m, bool data)
{
    int32_t w = -1;
    if (m->n < 2)
        return -1;
    if (!data) {
        if (msg_size(m, 0) == sizeof(w))
            memcpy(&w, msg_data(m, 0), sizeof(w));
        return w;
    }
    for (int s = 0; s < r->n_slots; s++)
        if (msg_size(m, 0) == DATA_ID_LEN && !memcmp(msg_data(m, 0), r->data_id[s], DATA_ID_LEN))
            return s;
    return -1;
}

/* Handles one message from worker w (-1: unknown), for whichever job in flight it answers;
 * returns 0, or an error that fails that job (*failed: its lane). Replies of forgotten jobs are
 * dropped. */
static int on_message(struct eb_remote *r, struct msg *m, int w, struct lane **failed,
                      struct mp_error *err)
{
    Envelope *env = w >= 0 ? msg_envelope(m, 1) : NULL;
    int rc = 0;
    struct lane *l = NULL;
    if (env && env->body_case == ENVELOPE__BODY_REPLY)
        l = lane_of(r, env->reply->job);
    else if (env && env->body_case == ENVELOPE__BODY_ERROR)
        l = lane_of(r, env->error->job);
    if (l && w >= 0 && w < r->n_slots && l->pending[w]) {
        if (env->body_case == ENVELOPE__BODY_REPLY) {
            hoptrace(l->id, w, HOP_EB_RECV);
            uint64_t b = 0;
            rc = take_reply(r, l, w, m, env->reply, &b, err);
            l->pending[w] = 0;
            l->compute_us[w] = env->reply->compute_us;
            l->bytes_in += b;
            l->w_bytes_in[w] = b;
            l->rtt_ms[w] = mono_ms() - l->sent_at[w];
        } else {
            rc = mp_error_set(err, MP_EPEER, "worker %d: %s", w,
                              env->error->message ? env->error->message : "failed");
        }
        *failed = rc ? l : NULL;
    }
    if (env)
        envelope__free_unpacked(env, NULL);
    return rc;
}

static int n_pending(const struct eb_remote *r, const struct lane *l)
{
    int left = 0;
    for (int w = 0; w < r->n_slots; w++)
        left += l->pending[w];
    return left;
}

/* Takes the messages waiting on sock (the pipe, or the data ROUTER: data). An error of lane l is
 * returned; an error of the other lane is kept for its own wait. */
static int drain(struct eb_remote *r, struct lane *l, void *sock, bool data, struct mp_error *err)
{
    struct msg m;
    while (!msg_recv(sock, &m, ZMQ_DONTWAIT)) {
        struct lane *failed = NULL;
        struct mp_error e = {0};
        const int w = sender_of(r, &m, data);
        if (w < 0 && data)
            cluster_garbage(r->c, "a data connection", "a message from an unknown sender");
        int rc = on_message(r, &m, w, &failed, &e);
        msg_close(&m);
        if (rc && failed == l) {
            *err = e;
            return rc;
        }
        if (rc && failed->rc == 0) { /* the other lane: it fails when waited for */
            failed->rc = rc;
            failed->err = e;
            memset(failed->pending, 0, sizeof(failed->pending));
        }
    }
    return 0;
}

/* Blocks in zmq_poll (the cores stay free for the workers) until every reply of lane l is in.
 * Replies for the other lane are taken as they come; an error of the other lane is kept for
 * its own wait (it is reported when that lane is waited for, or dropped by cancel). */
static int gather(struct eb_remote *r, struct lane *l, struct mp_error *err)
{
    const int64_t start = mono_ms();
    struct cluster *c = r->c;
    if (n_pending(r, l)) /* the forward pass's threads must not spin on the workers' cores */
        tp_sleep_now(c->o.local_tp);
    while (n_pending(r, l)) {
        zmq_pollitem_t items[2] = {{c->pipe_eb, 0, ZMQ_POLLIN, 0}, {c->data, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, c->data ? 2 : 1, 50) < 0 && errno != EINTR)
            return mp_error_set(err, MP_EIO, "cluster pipe: %s", zmq_strerror(errno));
        int rc = drain(r, l, c->pipe_eb, false, err);
        if (!rc && c->data)
            rc = drain(r, l, c->data, true, err);
        if (!rc)
            rc = check_alive(r, l, err);
        if (rc)
            return rc;
        if (mono_ms() - start > r->c->o.job_timeout_ms)
            return mp_error_set(err, MP_ETIMEOUT, "layer %d: no reply from the workers in %d ms",
                                l->job.layer, r->c->o.job_timeout_ms);
    }
    return 0;
}

/* out[t] = ((p_0[t] + p_1[t]) + ...) over the slots that computed a part of token t. */
static void sum_partials(struct eb_remote *r, const struct lane *l, float *out)
{
    const int64_t n_embd = l->job.n_embd;
    const size_t n_max = (size_t)r->c->o.n_max;
    memset(out, 0, (size_t)l->job.n_tokens * (size_t)n_embd * sizeof(float));
    for (int w = 0; w < r->n_holders; w++)
        for (int i = 0; i < l->n_tok[w]; i++) {
            float *o = out + (size_t)l->tok[w * n_max + i] * n_embd;
            const float *p = l->partial + ((size_t)w * n_max + i) * n_embd;
            for (int64_t j = 0; j < n_embd; j++)
                o[j] += p[j];
        }
}

/* Claims the slots this job needs. group_by_slot chose only holders ready at snapshot_ready;
 * a worker lost since then fails the job in check_alive (its gen changed). */
static void claim_slots(struct eb_remote *r, struct lane *l)
{
    for (int w = 0; w < r->n_slots; w++)
        l->pending[w] = l->n_tok[w] > 0;
}

/* Sends each pending slot its part of the job. */
static int scatter(struct eb_remote *r, struct lane *l, const struct eb_job *job,
                   struct mp_error *err)
{
    /* Most work first: the job ends when its slowest worker does, and each send costs tens of
     * microseconds (ZeroMQ hands the message to its I/O thread, a wake-up), so the worker with
     * the most (token, slot) pairs starts first. Ties keep slot order. */
    int order[CLUSTER_MAX_WORKERS], n = 0;
    for (int w = 0; w < r->n_slots; w++) {
        if (!l->pending[w])
            continue;
        int i = n++;
        for (; i > 0 && l->n_slot[order[i - 1]] < l->n_slot[w]; i--)
            order[i] = order[i - 1];
        order[i] = w;
    }
    for (int i = 0; i < n; i++) {
        const int w = order[i];
        uint64_t b = 0;
        l->sent_at[w] = mono_ms();
        if (send_job(r, l, job, w, &b))
            return mp_error_set(err, MP_EIO, "cluster pipe: %s", zmq_strerror(errno));
        l->bytes_out += b;
        l->w_bytes_out[w] = b;
    }
    return 0;
}

/* Adds the job's breakdown (cluster_timing) under c->mu. */
static void record_timing(struct eb_remote *r, const struct lane *l, int64_t t_wait,
                          int64_t t_waited, int64_t t_end)
{
    struct cluster_timing *t = &r->c->timing;
    uint64_t worker = 0, slots_max = 0, slots = 0;
    for (int w = 0; w < r->n_slots; w++) {
        if (l->n_tok[w] && l->compute_us[w] > worker)
            worker = l->compute_us[w];
        slots_max = (uint64_t)l->n_slot[w] > slots_max ? (uint64_t)l->n_slot[w] : slots_max;
        slots += (uint64_t)l->n_slot[w];
    }
    t->jobs++;
    t->send_us += (uint64_t)(l->t_sent - l->t0);
    t->wait_us += (uint64_t)(t_waited - t_wait);
    t->worker_us += worker;
    t->sum_us += (uint64_t)(t_end - t_waited);
    t->slots_max += slots_max;
    t->slots_total += slots;
}

static int remote_submit(void *self, const struct eb_job *job, float *out, int *ticket,
                         struct mp_error *err)
{
    struct eb_remote *r = self;
    struct cluster *c = r->c;
    if (job->n_tokens < 0 || job->n_tokens > c->o.n_max || job->n_embd != c->m->hp.n_embd ||
        job->k != c->m->hp.n_expert_used || job->layer < 0 || job->layer >= c->m->hp.n_layer ||
        !c->m->hp.is_moe[job->layer])
        return mp_error_set(err, MP_EINVAL, "expert job (layer %d, %d tokens) does not fit",
                            job->layer, job->n_tokens);
    int i = 0;
    while (i < EB_MAX_INFLIGHT && r->lane[i].busy)
        i++;
    if (i == EB_MAX_INFLIGHT)
        return mp_error_set(err, MP_EINVAL, "more than %d expert jobs in flight",
                            EB_MAX_INFLIGHT);
    struct lane *l = &r->lane[i];
    l->t0 = mono_us();
    l->job = *job;
    l->job.x = NULL, l->job.ids = NULL, l->job.weights = NULL;
    l->out = out;
    l->bytes_out = l->bytes_in = 0;
    l->n_direct = l->n_relayed = 0;
    l->rc = 0;
    memset(l->pending, 0, sizeof(l->pending));
    snapshot_ready(r, l);
    int rc = group_by_slot(r, l, job, err);
    if (rc)
        return rc;
    claim_slots(r, l);
    /* Without a local share this thread's pool has nothing to do until the replies are in: its
     * threads stop spinning now, so the workers woken by the sends find the cores free. */
    if (r->n_holders == r->n_slots || !l->n_tok[r->n_slots])
        tp_sleep_now(c->o.local_tp);
    l->id = ++r->next_job;
    l->busy = true; /* from here on a failure leaves the lane to wait() or cancel() */
    if ((rc = scatter(r, l, job, err)) == 0 && r->n_holders > r->n_slots &&
        l->n_tok[r->n_slots]) /* the local share computes while the workers compute theirs */
        rc = run_local(r, l, job, err);
    l->t_sent = mono_us();
    if (rc) {
        l->busy = false;
        return rc;
    }
    *ticket = i;
    return 0;
}

static int remote_wait(void *self, int ticket, struct mp_error *err)
{
    struct eb_remote *r = self;
    struct cluster *c = r->c;
    if (ticket < 0 || ticket >= EB_MAX_INFLIGHT || !r->lane[ticket].busy)
        return mp_error_set(err, MP_EINVAL, "no expert job with ticket %d", ticket);
    struct lane *l = &r->lane[ticket];
    const int64_t t_wait = mono_us();
    int rc = l->rc;
    if (rc)
        *err = l->err;
    else
        rc = gather(r, l, err);
    l->busy = false;
    if (rc)
        return rc;
    const int64_t t_waited = mono_us();
    if (c->o.exact)
        eb_mix_slots(l->yslot, l->job.n_tokens, l->job.k, l->job.n_embd, l->out);
    else
        sum_partials(r, l, l->out);
    const int64_t t_end = mono_us();
    pthread_mutex_lock(&c->mu);
    record_timing(r, l, t_wait, t_waited, t_end);
    record_workers(r, l);
    c->jobs++;
    c->token_layers += (uint64_t)l->job.n_tokens;
    c->bytes += l->bytes_out + l->bytes_in;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static void remote_cancel(void *self)
{
    struct eb_remote *r = self;
    for (int i = 0; i < EB_MAX_INFLIGHT; i++)
        r->lane[i].busy = false;
}

static int remote_run(void *self, const struct eb_job *job, float *out, struct mp_error *err)
{
    int ticket;
    int rc = remote_submit(self, job, out, &ticket, err);
    if (!rc)
        rc = remote_wait(self, ticket, err);
    if (rc)
        remote_cancel(self);
    return rc;
}

/* The cluster owns the backend's state: cluster_stop frees it. */
static void remote_free(void *self)
{
    (void)self;
}

const struct eb_ops eb_remote_ops = {.run = remote_run, .free = remote_free};

/* The same backend, offering the forward pass two jobs in flight (--split): a batch's halves
 * are pipelined through each MoE layer. */
const struct eb_ops eb_remote_split_ops = {.run = remote_run, .free = remote_free,
                                           .submit = remote_submit, .wait = remote_wait,
                                           .cancel = remote_cancel};
