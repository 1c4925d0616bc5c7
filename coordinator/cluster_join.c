/* coordinator/cluster_join.c: admitting workers (hello -> welcome + assign, or a refusal with
 * the reason), their ready reports, and streaming model bytes to workers without the file. Runs
 * on the cluster thread; slot state changes under c->mu. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "base/log.h"
#include "coordinator/cluster_impl.h"

#ifndef MOEPOOL_VERSION
#error "MOEPOOL_VERSION comes from CMake (the project version)"
#endif

int cluster_find_slot(struct cluster *c, const void *id, size_t len)
{
    for (int i = 0; i < c->o.expect_workers; i++)
        if (c->slot[i].st.joined && c->slot[i].id_len == len && !memcmp(c->slot[i].id, id, len))
            return i;
    return -1;
}

void cluster_send_to(struct cluster *c, const void *id, size_t len, const Envelope *env)
{
    if (msg_send_bytes(c->router, id, len, 1) || msg_send_env(c->router, env, 0))
        mp_debug("cluster: send failed: %s", zmq_strerror(errno));
}

void cluster_refuse(struct cluster *c, struct msg *m, const char *addr, int retry, const char *fmt,
                   ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    Refuse r = REFUSE__INIT;
    r.reason = reason;
    r.retry = retry;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_REFUSE;
    env.refuse = &r;
    cluster_send_to(c, msg_data(m, 0), msg_size(m, 0), &env);
    if (retry) {
        mp_info("cluster: worker at %s waits: %s", addr, reason);
        return;
    }
    mp_warn("cluster: refused worker at %s: %s", addr, reason);
    pthread_mutex_lock(&c->mu);
    c->refused++;
    pthread_mutex_unlock(&c->mu);
}

static void send_assign(struct cluster *c, const void *id, size_t len, int s, int64_t *n_out)
{
    const int64_t n_layer = c->m->hp.n_layer, n_expert = c->m->hp.n_expert;
    LayerExperts *layers = calloc((size_t)n_layer, sizeof(*layers));
    LayerExperts **lp = calloc((size_t)n_layer, sizeof(*lp));
    int32_t *ids = calloc((size_t)(n_layer * n_expert), sizeof(*ids));
    Assign a = ASSIGN__INIT;
    *n_out = 0;
    if (!layers || !lp || !ids)
        goto out;
    for (int64_t il = 0; il < n_layer; il++) {
        layer_experts__init(&layers[a.n_layers]);
        layers[a.n_layers].layer = (int32_t)il;
        layers[a.n_layers].experts = ids + il * n_expert;
        for (int64_t e = 0; e < n_expert; e++)
            if (c->holders[il * n_expert + e] >> s & 1)
                layers[a.n_layers].experts[layers[a.n_layers].n_experts++] = (int32_t)e;
        if (layers[a.n_layers].n_experts) {
            *n_out += (int64_t)layers[a.n_layers].n_experts;
            lp[a.n_layers] = &layers[a.n_layers];
            a.n_layers++;
        }
    }
    a.layers = lp;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_ASSIGN;
    env.assign = &a;
    cluster_send_to(c, id, len, &env);
out:
    free(layers);
    free(lp);
    free(ids);
}

static void welcome(struct cluster *c, struct msg *m, int s)
{
    Welcome w = WELCOME__INIT;
    w.protocol_version = CLUSTER_PROTOCOL_VERSION;
    w.moepool_version = MOEPOOL_VERSION;
    w.slot = s;
    w.n_slots = c->o.expect_workers;
    w.wire = c->o.wire;
    w.n_max = c->o.n_max;
    w.heartbeat_ms = c->o.heartbeat_ms;
    w.heartbeat_timeout_ms = c->o.heartbeat_timeout_ms;
    w.model_fingerprint = c->fingerprint;
    w.file_size = c->m->gguf->size;
    w.header_bytes = c->m->gguf->data_offset;
    unsigned char data_id[DATA_ID_LEN];
    pthread_mutex_lock(&c->mu);
    memcpy(data_id, c->slot[s].data_id, DATA_ID_LEN);
    pthread_mutex_unlock(&c->mu);
    if (c->data) {
        w.data_port = (uint32_t)c->data_port;
        w.data_id = (ProtobufCBinaryData){.len = DATA_ID_LEN, .data = data_id};
    }
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_WELCOME;
    env.welcome = &w;
    cluster_send_to(c, msg_data(m, 0), msg_size(m, 0), &env);
    int64_t n_experts;
    send_assign(c, msg_data(m, 0), msg_size(m, 0), s, &n_experts);
    pthread_mutex_lock(&c->mu);
    c->slot[s].st.n_experts = n_experts;
    pthread_mutex_unlock(&c->mu);
}

/* A fresh routing id for a joining worker's data connection: unguessable, so only the peer that
 * got the welcome (over the control connection, encrypted with --key) can take the slot's data
 * traffic; a rejoin gets a new one, so replies from an old connection match nothing. */
static void new_data_id(unsigned char *id)
{
    id[0] = 'd'; /* ZeroMQ reserves routing ids that start with a zero byte */
    if (getrandom(id + 1, DATA_ID_LEN - 1, 0) != DATA_ID_LEN - 1) {
        uint64_t x = (uint64_t)mono_us() * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
        memcpy(id + 1, &x, DATA_ID_LEN - 1);
    }
}

/* Fills slot s (or refreshes it on a repeated hello) with the worker that said hello. */
static void take_slot(struct cluster *c, struct msg *m, const Hello *h, const char *addr, int s)
{
    pthread_mutex_lock(&c->mu);
    struct slot *sl = &c->slot[s];
    sl->id_len = msg_size(m, 0);
    memcpy(sl->id, msg_data(m, 0), sl->id_len);
    sl->gen++;
    sl->last_seen = mono_ms();
    sl->instance = h->instance;
    new_data_id(sl->data_id);
    struct cluster_worker_status *st = &sl->st;
    uint32_t joins = st->joins + 1;
    *st = (struct cluster_worker_status){.joined = true, .cores = h->cores, .joins = joins,
                                         .has_model = h->has_model};
    snprintf(st->host, sizeof(st->host), "%s", h->host ? h->host : "?");
    snprintf(st->addr, sizeof(st->addr), "%s", addr);
    snprintf(st->simd, sizeof(st->simd), "%s", h->simd ? h->simd : "?");
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
    mp_info("cluster: worker %d joined: %s (%s), %d cores, %s, %zu NUMA node(s)%s", s, st->host,
            addr, h->cores, st->simd, h->n_numa, h->has_model ? "" : ", no model file: streaming");
    welcome(c, m, s);
}

void cluster_on_hello(struct cluster *c, struct msg *m, const Hello *h, const char *addr)
{
    if (h->protocol_version != CLUSTER_PROTOCOL_VERSION)
        return cluster_refuse(c, m, addr, 0,
                      "protocol version %u, the coordinator speaks %u (moepool %s vs %s): run the "
                      "same moepool on both sides",
                      h->protocol_version, CLUSTER_PROTOCOL_VERSION,
                      h->moepool_version ? h->moepool_version : "?", MOEPOOL_VERSION);
    /* A worker without the file is sent what it needs (on_fetch). */
    if (h->has_model && (!h->model_fingerprint || strcmp(h->model_fingerprint, c->fingerprint)))
        return cluster_refuse(c, m, addr, 0,
                      "model fingerprint %s differs from the coordinator's %s: another model file",
                      h->model_fingerprint ? h->model_fingerprint : "", c->fingerprint);
    pthread_mutex_lock(&c->mu);
    int s = cluster_find_slot(c, msg_data(m, 0), msg_size(m, 0));
    for (int i = 0; s < 0 && i < c->o.expect_workers; i++)
        if (!c->slot[i].st.joined)
            s = i;
    pthread_mutex_unlock(&c->mu);
    if (s < 0)
        return cluster_refuse(c, m, addr, 1, "every one of the %d worker slots is taken",
                      c->o.expect_workers);
    take_slot(c, m, h, addr, s);
}

void cluster_on_ready(struct cluster *c, int s, const Ready *r)
{
    pthread_mutex_lock(&c->mu);
    c->slot[s].st.ready = true;
    c->slot[s].st.load_gbps = r->gbps;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
    mp_info("cluster: worker %d ready: %lld experts, %.2f GB in %.2f s (%.2f GB/s)", s,
            (long long)r->n_experts, (double)r->bytes / 1e9, r->seconds, r->gbps);
}

void cluster_garbage(struct cluster *c, const char *addr, const char *what)
{
    pthread_mutex_lock(&c->mu);
    c->garbage++;
    pthread_mutex_unlock(&c->mu);
    mp_warn("cluster: ignored %s from %s", what, addr);
}

/* Streams the requested bytes of the model file, zero-copy from its mapping (which outlives the
 * socket), in pieces of at most 4 MiB. A request outside the file or above 64 MiB is refused. */
#define CHUNK_MAX (4u << 20)
#define FETCH_MAX (64u << 20)

void cluster_on_fetch(struct cluster *c, struct msg *m, int s, const Fetch *f)
{
    const struct gguf_file *g = c->m->gguf;
    uint64_t total = 0;
    for (size_t i = 0; i < f->n_ranges; i++) {
        const Range *r = f->ranges[i];
        total += r->len;
        if (r->offset > g->size || r->len > g->size - r->offset || total > FETCH_MAX)
            return cluster_garbage(c, c->slot[s].st.addr, "a fetch outside the model file");
    }
    uint64_t sent = 0;
    for (size_t i = 0; i < f->n_ranges; i++)
        for (uint64_t off = 0; off < f->ranges[i]->len; off += CHUNK_MAX) {
            const uint64_t at = f->ranges[i]->offset + off;
            const uint64_t len = f->ranges[i]->len - off < CHUNK_MAX ? f->ranges[i]->len - off
                                                                     : CHUNK_MAX;
            Chunk ch = CHUNK__INIT;
            ch.offset = at;
            sent += len;
            ch.last = sent == total;
            Envelope env = ENVELOPE__INIT;
            env.body_case = ENVELOPE__BODY_CHUNK;
            env.chunk = &ch;
            zmq_msg_t data;
            zmq_msg_init_data(&data, (void *)(g->base + at), len, NULL, NULL);
            if (msg_send_bytes(c->router, msg_data(m, 0), msg_size(m, 0), 1) ||
                msg_send_env(c->router, &env, 1) || msg_send_zmsg(c->router, &data, 0))
                return;
        }
    pthread_mutex_lock(&c->mu);
    c->slot[s].st.streamed_bytes += total;
    pthread_mutex_unlock(&c->mu);
}

