/* coordinator/cluster.c: see cluster.h. The cluster thread owns the ROUTER socket: it admits
 * workers (hello -> welcome + assign, or refuse), tracks liveness (heartbeats both ways), and
 * relays expert traffic between the ROUTER and eb_remote's inproc pipe. Slot bookkeeping is under
 * c->mu so cluster_status and eb_remote can read it from other threads. */
#include "coordinator/cluster_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "model/fingerprint.h"
#include "proto/hoptrace.h"

int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void cluster_timing_format(const struct cluster_timing *t, int n_workers, char *buf, size_t len)
{
    const double n = t->jobs ? (double)t->jobs : 1;
    const double send = (double)t->send_us / n, wait = (double)t->wait_us / n;
    const double worker = (double)t->worker_us / n;
    snprintf(buf, len,
             "%llu MoE layer jobs, per job: send %.0f us + wait %.0f us, of which the slowest "
             "worker computed %.0f and %.0f went to encoding, transport and wake-ups; sums "
             "%.0f us; expert load imbalance %.2f",
             (unsigned long long)t->jobs, send, wait, worker, send + wait - worker,
             (double)t->sum_us / n,
             t->slots_total ? (double)t->slots_max * n_workers / (double)t->slots_total : 0.0);
}

/* Under c->mu: the slot is empty; a job waiting on it fails (its gen changed). */
static void free_slot(struct cluster *c, int s)
{
    c->slot[s].st.joined = c->slot[s].st.ready = false;
    c->slot[s].gen++;
    pthread_cond_broadcast(&c->changed);
}

static void on_bye(struct cluster *c, int s, const Bye *b)
{
    pthread_mutex_lock(&c->mu);
    mp_info("cluster: worker %d (%s, %s) left: %s", s, c->slot[s].st.host, c->slot[s].st.addr,
            b->reason && *b->reason ? b->reason : "stopped");
    free_slot(c, s);
    pthread_mutex_unlock(&c->mu);
}

/* A worker this coordinator does not know (it restarted, or declared the worker lost): ask it to
 * say hello again instead of waiting for its timeout. */
static void not_a_member(struct cluster *c, struct msg *m, const char *addr)
{
    cluster_refuse(c, m, addr, 1,
                   "not a member (coordinator restarted or lost this worker): join again");
}

static void on_stats(struct cluster *c, int s, const Stats *st)
{
    pthread_mutex_lock(&c->mu);
    c->slot[s].st.compute_seconds = st->compute_seconds;
    pthread_mutex_unlock(&c->mu);
}

/* Relays a worker's reply or error to eb_remote: [slot][envelope][bulk...]. */
static void relay_to_eb(struct cluster *c, struct msg *m, int s)
{
    int32_t slot = s;
    if (msg_send_bytes(c->pipe_thread, &slot, sizeof(slot), 1) || msg_forward(m, 1, c->pipe_thread))
        mp_warn("cluster: relay to the expert backend failed: %s", zmq_strerror(errno));
}

static void on_peer_message(struct cluster *c, struct msg *m)
{
    const char *addr = m->n > 1 ? zmq_msg_gets(&m->part[1], "Peer-Address") : NULL;
    addr = addr ? addr : "?";
    Envelope *env = m->too_many ? NULL : msg_envelope(m, 1);
    if (!env)
        return cluster_garbage(c, addr, "an undecodable message");
    pthread_mutex_lock(&c->mu);
    int s = cluster_find_slot(c, msg_data(m, 0), msg_size(m, 0));
    if (s >= 0)
        c->slot[s].last_seen = mono_ms();
    pthread_mutex_unlock(&c->mu);
    switch (env->body_case) {
    case ENVELOPE__BODY_HELLO: cluster_on_hello(c, m, env->hello, addr); break;
    case ENVELOPE__BODY_STATS:
        if (s >= 0)
            on_stats(c, s, env->stats);
        else
            not_a_member(c, m, addr);
        break;
    case ENVELOPE__BODY_HEARTBEAT:
        if (s < 0)
            not_a_member(c, m, addr);
        break;
    case ENVELOPE__BODY_READY:
        if (s >= 0)
            cluster_on_ready(c, s, env->ready);
        else
            cluster_garbage(c, addr, "'ready' from a peer that has not joined");
        break;
    case ENVELOPE__BODY_BYE:
        if (s >= 0)
            on_bye(c, s, env->bye);
        break;
    case ENVELOPE__BODY_FETCH:
        if (s >= 0)
            cluster_on_fetch(c, m, s, env->fetch);
        else
            cluster_garbage(c, addr, "a fetch from a peer that has not joined");
        break;
    case ENVELOPE__BODY_ERROR:
        if (s >= 0 && env->error->job == 0) { /* not about a job: loading, a bad welcome */
            mp_warn("cluster: worker %d reports: %s", s,
                    env->error->message ? env->error->message : "an error");
            break;
        }
        /* fall through */
    case ENVELOPE__BODY_REPLY:
        if (s >= 0 && env->body_case == ENVELOPE__BODY_REPLY)
            hoptrace(env->reply->job, s, HOP_CLUSTER_IN);
        if (s >= 0)
            relay_to_eb(c, m, s);
        else
            cluster_garbage(c, addr, "an expert reply from a peer that has not joined");
        break;
    default: cluster_garbage(c, addr, msg_kind(env)); break;
    }
    envelope__free_unpacked(env, NULL);
}

/* eb_remote -> worker: [slot][envelope][bulk...] becomes [identity][envelope][bulk...]. */
static void on_pipe_message(struct cluster *c, struct msg *m)
{
    int32_t s = -1;
    if (m->n >= 2 && msg_size(m, 0) == sizeof(s))
        memcpy(&s, msg_data(m, 0), sizeof(s));
    hoptrace_msg(m, 1, s, HOP_CLUSTER_OUT);
    pthread_mutex_lock(&c->mu);
    int ok = s >= 0 && s < c->o.expect_workers && c->slot[s].st.joined;
    unsigned char id[SLOT_ID_MAX];
    size_t len = ok ? c->slot[s].id_len : 0;
    memcpy(id, c->slot[ok ? s : 0].id, len);
    pthread_mutex_unlock(&c->mu);
    /* A job for a slot that just emptied is dropped: eb_remote sees the slot's gen change. */
    if (ok && (msg_send_bytes(c->router, id, len, 1) || msg_forward(m, 1, c->router)))
        mp_warn("cluster: send to worker %d failed: %s", s, zmq_strerror(errno));
}

static void heartbeats(struct cluster *c, uint64_t seq)
{
    Heartbeat hb = HEARTBEAT__INIT;
    hb.seq = seq;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    const int64_t now = mono_ms();
    for (int s = 0; s < c->o.expect_workers; s++) {
        pthread_mutex_lock(&c->mu);
        struct slot *sl = &c->slot[s];
        int joined = sl->st.joined;
        int64_t silent = now - sl->last_seen;
        if (joined && silent > c->o.heartbeat_timeout_ms) {
            mp_warn("cluster: worker %d (%s, %s) lost: silent for %.1f s", s, sl->st.host,
                    sl->st.addr, (double)silent / 1000);
            free_slot(c, s);
            joined = 0;
        }
        unsigned char id[SLOT_ID_MAX];
        size_t len = sl->id_len;
        memcpy(id, sl->id, len);
        pthread_mutex_unlock(&c->mu);
        if (joined)
            cluster_send_to(c, id, len, &env);
    }
}

/* ROUTER handshake failures (a peer with no key, or another key) are logged and counted. */
static void on_monitor_event(struct cluster *c)
{
    struct msg m;
    if (msg_recv(c->monitor, &m, ZMQ_DONTWAIT))
        return;
    if (m.n == 2 && msg_size(&m, 0) >= 6) {
        uint16_t event;
        memcpy(&event, msg_data(&m, 0), 2);
        int len = (int)msg_size(&m, 1);
        mp_warn("cluster: refused a peer at %.*s: security handshake failed (event %u: missing "
                "or different --key)", len, (const char *)msg_data(&m, 1), event);
        pthread_mutex_lock(&c->mu);
        c->refused++;
        pthread_mutex_unlock(&c->mu);
    }
    msg_close(&m);
}

static void drain(struct cluster *c, void *sock, void (*fn)(struct cluster *, struct msg *))
{
    struct msg m;
    for (int i = 0; i < 256 && !msg_recv(sock, &m, ZMQ_DONTWAIT); i++) {
        fn(c, &m);
        msg_close(&m);
    }
}

static void *cluster_thread(void *arg)
{
    struct cluster *c = arg;
    int64_t next_beat = mono_ms();
    uint64_t seq = 0;
    while (!atomic_load(&c->stop)) {
        zmq_pollitem_t items[4] = {{c->router, 0, ZMQ_POLLIN, 0},
                                   {c->pipe_thread, 0, ZMQ_POLLIN, 0},
                                   {c->monitor, 0, ZMQ_POLLIN, 0},
                                   {c->zap, 0, ZMQ_POLLIN, 0}};
        int64_t wait = next_beat - mono_ms();
        if (zmq_poll(items, c->zap ? 4 : 3, wait < 0 ? 0 : (long)wait) < 0 && errno != EINTR)
            break;
        if (items[0].revents)
            drain(c, c->router, on_peer_message);
        if (items[1].revents)
            drain(c, c->pipe_thread, on_pipe_message);
        if (items[2].revents)
            on_monitor_event(c);
        if (c->zap && items[3].revents)
            zap_handle(c);
        if (mono_ms() >= next_beat) {
            heartbeats(c, ++seq);
            next_beat = mono_ms() + c->o.heartbeat_ms;
        }
    }
    return NULL;
}

/* The data ROUTER, on the control endpoint's host and the next port (PORT + 1, so a firewall
 * opens two known ports), or one the system picks when that is taken; workers learn it from the
 * welcome. Same key and ZAP admission as the control socket. A send to a worker whose data
 * connection is not up fails at once (ROUTER_MANDATORY, no send timeout) and eb_remote relays
 * that request instead. */
static int open_data(struct cluster *c, int64_t max_msg, struct mp_error *err)
{
    const char *ep = c->o.endpoint;
    const char *colon = strrchr(ep, ':');
    if (strncmp(ep, "tcp://", 6) || !colon || colon < ep + 6)
        return 0;
    char bind[300], last[300];
    snprintf(bind, sizeof(bind), "%.*s:*", (int)(colon - ep), ep);
    /* Only the forward thread reads this socket, and only while a job is out: a peer must not
     * make it buffer much meanwhile. A worker has at most EB_MAX_INFLIGHT replies (plus late
     * ones of failed jobs) waiting; 8 per connection is room enough. */
    int zero = 0, one = 1, hwm = 8, rc;
    c->data = zmq_socket(c->ctx, ZMQ_ROUTER);
    zmq_setsockopt(c->data, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(c->data, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(c->data, ZMQ_SNDTIMEO, &zero, sizeof(zero));
    zmq_setsockopt(c->data, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    /* A worker's data DEALER that reconnects (ZeroMQ does it by itself) keeps its routing id:
     * the new connection takes the id over from one the coordinator has not yet seen die. */
    zmq_setsockopt(c->data, ZMQ_ROUTER_HANDOVER, &one, sizeof(one));
    zmq_setsockopt(c->data, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
    if (c->has_key && (rc = keyfile_apply_server(c->data, &c->key, err)))
        return rc;
    const int port = atoi(colon + 1);
    char next[300];
    snprintf(next, sizeof(next), "%.*s:%d", (int)(colon - ep), ep, port + 1);
    size_t len = sizeof(last);
    if ((port <= 0 || port >= 65535 || zmq_bind(c->data, next)) && zmq_bind(c->data, bind))
        return mp_error_set(err, MP_EIO, "cannot bind the data socket %s: %s", bind,
                            zmq_strerror(errno));
    if (zmq_getsockopt(c->data, ZMQ_LAST_ENDPOINT, last, &len))
        return mp_error_set(err, MP_EIO, "data socket: %s", zmq_strerror(errno));
    const char *bound = strrchr(last, ':');
    c->data_port = bound ? atoi(bound + 1) : 0;
    return 0;
}

static int open_sockets(struct cluster *c, struct mp_error *err)
{
    char name[64];
    int zero = 0, rc;
    c->ctx = zmq_ctx_new();
    if (!c->ctx)
        return mp_error_set(err, MP_EIO, "cannot create a ZeroMQ context");
    if (c->has_key && (rc = zap_open(c, err)))
        return rc;
    c->router = zmq_socket(c->ctx, ZMQ_ROUTER);
    zmq_setsockopt(c->router, ZMQ_LINGER, &zero, sizeof(zero));
    /* A peer cannot make us buffer more than the largest legitimate reply (exact mode: a row of
     * f32 per token and slot) plus slack for headers. */
    int64_t max_msg = (int64_t)c->o.n_max * c->m->hp.n_expert_used * c->m->hp.n_embd * 4 + (1 << 20);
    zmq_setsockopt(c->router, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
    if (c->has_key && (rc = keyfile_apply_server(c->router, &c->key, err)))
        return rc;
    snprintf(name, sizeof(name), "inproc://cluster-monitor-%p", (void *)c);
    if (zmq_socket_monitor(c->router, name,
                           ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)) /* AUTH: the ZAP handler logs */
        return mp_error_set(err, MP_EIO, "socket monitor: %s", zmq_strerror(errno));
    c->monitor = zmq_socket(c->ctx, ZMQ_PAIR);
    zmq_connect(c->monitor, name);
    if (zmq_bind(c->router, c->o.endpoint))
        return mp_error_set(err, MP_EIO, "cannot bind %s: %s", c->o.endpoint, zmq_strerror(errno));
    if ((rc = open_data(c, max_msg, err)))
        return rc;
    snprintf(name, sizeof(name), "inproc://cluster-pipe-%p", (void *)c);
    c->pipe_thread = zmq_socket(c->ctx, ZMQ_PAIR);
    c->pipe_eb = zmq_socket(c->ctx, ZMQ_PAIR);
    zmq_setsockopt(c->pipe_thread, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(c->pipe_eb, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_bind(c->pipe_thread, name) || zmq_connect(c->pipe_eb, name))
        return mp_error_set(err, MP_EIO, "inproc pipe: %s", zmq_strerror(errno));
    return 0;
}

static int check_opts(const struct model *m, struct cluster_opts *o, struct mp_error *err)
{
    if (!o->endpoint || o->expect_workers < 1 || o->expect_workers > CLUSTER_MAX_WORKERS)
        return mp_error_set(err, MP_EINVAL, "--expect-workers must be 1..%d", CLUSTER_MAX_WORKERS);
    if (o->local_shard && !o->local_tp)
        return mp_error_set(err, MP_EINVAL, "a local shard needs a thread pool");
    if (o->expect_workers + o->local_shard > m->hp.n_expert)
        return mp_error_set(err, MP_EINVAL, "%d workers for %lld experts per layer: some would "
                            "hold none", o->expect_workers, (long long)m->hp.n_expert);
    if (!wire_valid(o->wire, m->hp.n_embd))
        return mp_error_set(err, MP_EINVAL, "wire format %d cannot carry rows of %lld", o->wire,
                            (long long)m->hp.n_embd);
    o->n_max = o->n_max > 0 ? o->n_max : 512;
    o->heartbeat_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : 500;
    o->heartbeat_timeout_ms = o->heartbeat_timeout_ms > 0 ? o->heartbeat_timeout_ms : 3000;
    o->job_timeout_ms = o->job_timeout_ms > 0 ? o->job_timeout_ms : 120000;
    return 0;
}

int cluster_start(const struct model *m, const struct cluster_opts *o, struct cluster **out,
                  struct mp_error *err)
{
    struct cluster *c = calloc(1, sizeof(*c));
    if (!c)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    c->m = m;
    c->o = *o;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->changed, NULL);
    fingerprint_hex(fingerprint_gguf(m->gguf), c->fingerprint);
    c->holders = calloc((size_t)(m->hp.n_layer * m->hp.n_expert), sizeof(*c->holders));
    int rc = c->holders ? check_opts(m, &c->o, err) : mp_error_set(err, MP_ENOMEM, "out of memory");
    if (!rc && o->key_file && (rc = keyfile_read(o->key_file, &c->key, err)) == 0)
        c->has_key = 1;
    if (!rc)
        rc = cluster_plan(c, err);
    if (!rc)
        rc = open_sockets(c, err);
    if (!rc)
        rc = eb_remote_new(c, err);
    if (!rc && pthread_create(&c->thread, NULL, cluster_thread, c))
        rc = mp_error_set(err, MP_EIO, "cannot start the cluster thread");
    c->thread_started = !rc;
    if (rc) {
        cluster_stop(c);
        return rc;
    }
    mp_info("cluster: listening on %s (data port %d) for %d worker(s), wire %s%s%s%s%s",
            c->o.endpoint, c->data_port, c->o.expect_workers, wire_name(c->o.wire),
            c->has_key ? ", CURVE" : "",
            c->o.local_shard ? ", local shard" : "", c->o.exact ? ", exact sums" : "",
            c->o.split ? ", batches split in two and pipelined" : "");
    *out = c;
    return 0;
}

static int count_ready(struct cluster *c, int *joined)
{
    int ready = 0;
    *joined = 0;
    for (int s = 0; s < c->o.expect_workers; s++) {
        *joined += c->slot[s].st.joined;
        ready += c->slot[s].st.ready;
    }
    return ready;
}

int cluster_wait_ready(struct cluster *c, int timeout_ms, struct mp_error *err)
{
    const int64_t deadline = mono_ms() + timeout_ms;
    int last = -1, joined;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        int ready = count_ready(c, &joined);
        if (ready * 1000 + joined != last)
            mp_info("cluster: %d of %d workers joined, %d ready", joined, c->o.expect_workers,
                    ready);
        last = ready * 1000 + joined;
        if (ready == c->o.expect_workers)
            break;
        if (timeout_ms >= 0 && mono_ms() >= deadline) {
            pthread_mutex_unlock(&c->mu);
            return mp_error_set(err, MP_ETIMEOUT, "%d of %d workers ready after %d ms", ready,
                                c->o.expect_workers, timeout_ms);
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&c->changed, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

struct expert_backend cluster_backend(struct cluster *c)
{
    return (struct expert_backend){.ops = c->o.split ? &eb_remote_split_ops : &eb_remote_ops,
                                   .self = c->eb};
}

void cluster_status(struct cluster *c, struct cluster_status *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&c->mu);
    out->expect_workers = c->o.expect_workers;
    out->ready = count_ready(c, &out->joined);
    out->all_ready = out->ready == c->o.expect_workers;
    out->wire = c->o.wire;
    out->jobs = c->jobs;
    out->token_layers = c->token_layers;
    out->bytes_per_token_layer = c->token_layers ? (double)c->bytes / (double)c->token_layers : 0;
    out->refused = c->refused;
    out->garbage = c->garbage;
    out->data_port = c->data_port;
    out->direct_requests = c->direct_requests;
    out->relayed_requests = c->relayed_requests;
    out->timing = c->timing;
    for (int64_t i = 0; c->o.local_shard && i < c->m->hp.n_layer * c->m->hp.n_expert; i++)
        out->local_experts += c->holders[i] >> c->o.expect_workers & 1;
    for (int s = 0; s < c->o.expect_workers; s++)
        out->w[s] = c->slot[s].st;
    pthread_mutex_unlock(&c->mu);
}

void cluster_stop(struct cluster *c)
{
    if (!c)
        return;
    atomic_store(&c->stop, 1);
    if (c->timing.jobs) {
        char line[256];
        cluster_timing_format(&c->timing, c->o.expect_workers, line, sizeof(line));
        mp_info("cluster: %s", line);
    }
    if (c->thread_started)
        pthread_join(c->thread, NULL);
    hoptrace_flush();
    eb_remote_delete(c->eb);
    void *socks[] = {c->router, c->pipe_thread, c->pipe_eb, c->monitor, c->zap, c->data};
    int zero = 0;
    if (c->router)
        zmq_socket_monitor(c->router, NULL, 0);
    for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++)
        if (socks[i]) {
            zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof(zero));
            zmq_close(socks[i]);
        }
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->changed);
    free(c->holders);
    free(c);
}
