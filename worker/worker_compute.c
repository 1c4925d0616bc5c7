/* worker/worker_compute.c: the worker's compute thread. It holds the model (its GGUF mapped for
 * shapes and types), the assigned experts read into NUMA-local memory (worker/shard_load.h) and
 * the shard's expert backend (worker/shard_backend.h); it answers the coordinator's
 * assign and request messages that the I/O thread passes over the pipe, and replies through it.
 * Requests also come, and mostly, on the compute thread's own data connection to the
 * coordinator (opened from the welcome): their replies go back on it, so a job's round trip
 * wakes no other thread of this process (ZeroMQ's I/O thread aside).
 * Every request is checked against the welcome's limits and its own frame sizes before use: a
 * bad request gets an Error reply, never a crash. */
#include "worker/worker_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "kernels/matmul.h"
#include "model/eb_local.h"
#include "model/eb_slots.h"
#include "model/fingerprint.h"
#include "proto/hoptrace.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* sock: where the request came from (the pipe or the data connection). */
static void send_error(void *sock, uint64_t job, int code, const char *message)
{
    Error e = ERROR__INIT;
    e.job = job;
    e.code = code;
    e.message = (char *)message;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_ERROR;
    env.error = &e;
    msg_send_env(sock, &env, 0);
}

/* The assignment as expert refs, each checked against the model. */
static int assigned_refs(const struct model *m, const Assign *a, struct expert_ref **out,
                         size_t *n_out, struct mp_error *err)
{
    size_t n = 0;
    for (size_t i = 0; i < a->n_layers; i++)
        n += a->layers[i]->n_experts;
    struct expert_ref *refs = malloc((n ? n : 1) * sizeof(*refs));
    if (!refs)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    n = 0;
    for (size_t i = 0; i < a->n_layers; i++) {
        const LayerExperts *le = a->layers[i];
        for (size_t j = 0; j < le->n_experts; j++) {
            const int32_t il = le->layer, e = le->experts[j];
            if (m && (il < 0 || il >= m->hp.n_layer || !m->hp.is_moe[il] || e < 0 ||
                      e >= m->hp.n_expert)) {
                free(refs);
                return mp_error_set(err, MP_ERANGE, "assigned expert (%d, %d) out of range", il, e);
            }
            refs[n++] = (struct expert_ref){.il = il, .expert = e};
        }
    }
    *out = refs;
    *n_out = n;
    return 0;
}

/* A progress line at most twice a second while the shard loads. */
struct progress {
    double last;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct progress *p = ctx;
    const double t = now_s();
    if (t - p->last < 0.5 && done < total)
        return;
    p->last = t;
    mp_info("worker: loading experts: %.2f of %.2f GB (%.0f%%)", (double)done / 1e9,
            (double)total / 1e9, total ? 100.0 * (double)done / (double)total : 100.0);
}

static void free_shard(struct worker *w)
{
    eb_free(&w->eb);
    w->eb = (struct expert_backend){0};
    shard_free(w->shard);
    w->shard = NULL;
}

static int size_buffers(struct worker *w, struct mp_error *err);

static void send_ready(struct worker *w)
{
    const struct shard_read_stats *st = &w->shard->stats;
    Ready r = READY__INIT;
    r.n_experts = expert_table_count(w->shard->table);
    r.bytes = st->bytes;
    r.seconds = st->seconds;
    r.gbps = st->gb_per_s;
    mp_info("worker: loaded %lld experts, %.2f GB in %.2f s (%.2f GB/s%s) on %d NUMA node(s)",
            (long long)r.n_experts, (double)st->bytes / 1e9, st->seconds, st->gb_per_s,
            st->direct ? ", O_DIRECT" : ", buffered", w->shard->n_nodes);
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_READY;
    env.ready = &r;
    msg_send_env(w->pipe_compute, &env, 0);
}

static void fail(struct worker *w, int rc, const struct mp_error *err)
{
    mp_error_log("worker: cannot load the assigned experts: %s", err->msg);
    send_error(w->pipe_compute, 0, rc, err->msg);
}

/* Reads the assigned experts into NUMA-local memory (worker/shard_load.h, liburing) from the
 * model file or the shard cache, and puts the shard's backend (one eb_local per node) on them. */
static void load_shard(struct worker *w)
{
    struct mp_error err = {0};
    struct progress prog = {.last = now_s()};
    struct shard_read_opts opts = {.progress = on_progress, .progress_ctx = &prog};
    const char *path = w->o.model_path ? w->o.model_path : shard_cache_path(w->cache);
    free_shard(w);
    int rc = size_buffers(w, &err);
    if (!rc)
        rc = shard_load(path, w->m, w->refs, w->n_refs, w->numa, &opts, &w->shard, &err);
    if (!rc)
        rc = shard_backend_new(w->m, w->shard, w->o.threads, w->n_max, &w->eb, &err);
    if (rc) {
        free_shard(w);
        return fail(w, rc, &err);
    }
    send_ready(w);
}

/* With a model file: load. Without: fetch the missing slices first (on_chunk loads). */
static void begin_shard(struct worker *w)
{
    struct mp_error err = {0};
    if (w->o.model_path)
        return load_shard(w);
    struct file_range *want = NULL;
    size_t n = 0;
    int rc = shard_file_ranges(w->m, w->refs, w->n_refs, &want, &n, &err);
    if (!rc)
        rc = stream_begin(w, STREAM_SHARD, want, n, &err);
    free(want);
    if (rc)
        return fail(w, rc, &err);
    if (!stream_active(w))
        load_shard(w); /* the cache had everything: a restart sends nothing */
}

static void on_assign(struct worker *w, const Assign *a)
{
    struct mp_error err = {0};
    free(w->refs);
    w->refs = NULL;
    int rc = assigned_refs(w->m, a, &w->refs, &w->n_refs, &err);
    if (rc)
        return fail(w, rc, &err);
    if (w->m)
        begin_shard(w); /* else the header is still on its way: header_ready goes on */
}

/* The streamed header is complete: open the model from the cache file. */
static void header_ready(struct worker *w)
{
    struct mp_error err = {0};
    int rc = shard_cache_check_header(w->cache, &err);
    if (!rc)
        rc = model_open(shard_cache_path(w->cache), &w->m, &err);
    if (rc)
        return fail(w, rc, &err);
    if (w->refs)
        begin_shard(w);
}

static void on_chunk(struct worker *w, const Chunk *ch, struct msg *m)
{
    struct mp_error err = {0};
    enum stream_phase done;
    if (m->n != 2) {
        struct mp_error e = {0};
        mp_error_set(&e, MP_ECORRUPT, "a chunk without its data");
        return fail(w, e.code, &e);
    }
    int rc = stream_chunk(w, ch, msg_data(m, 1), msg_size(m, 1), &done, &err);
    if (rc)
        return fail(w, rc, &err);
    if (done == STREAM_HEADER)
        header_ready(w);
    else if (done == STREAM_SHARD)
        load_shard(w);
}

static size_t x_row_bytes(const struct model *m, const ExpertRequest *q)
{
    return q->x_act ? kq_act_row_bytes(m->layers[q->layer].gate_exps.type, m->hp.n_embd)
                    : wire_row_bytes(q->wire, m->hp.n_embd);
}

/* The request's shape against the welcome's limits and the frames that came with it. */
static int check_request(struct worker *w, const ExpertRequest *q, struct msg *m,
                         struct mp_error *err)
{
    const struct hparams *hp = &w->m->hp;
    if (!w->eb.ops)
        return mp_error_set(err, MP_EINVAL, "request before the experts were loaded");
    if (q->layer < 0 || q->layer >= hp->n_layer || !hp->is_moe[q->layer] || q->n_tokens < 1 ||
        q->n_tokens > w->n_max || q->k != hp->n_expert_used || !wire_valid(q->wire, hp->n_embd))
        return mp_error_set(err, MP_EINVAL, "bad request: layer %d, %d tokens, k %d, wire %d",
                            q->layer, q->n_tokens, q->k, q->wire);
    const size_t n = (size_t)q->n_tokens;
    if (q->x_act && !eb_local_converted_input_ok(w->m, q->layer))
        return mp_error_set(err, MP_EINVAL, "bad request: layer %d takes no converted inputs",
                            q->layer);
    if (m->n != 4 || msg_size(m, 1) != n * x_row_bytes(w->m, q) ||
        msg_size(m, 2) != n * (size_t)q->k * 4 || msg_size(m, 3) != n * (size_t)q->k * 4)
        return mp_error_set(err, MP_EINVAL, "bad request: frame sizes do not match its header");
    return 0;
}

/* Exact mode's scratch: k slot outputs per token, then as many reply rows. */
static int per_slot_buffers(struct worker *w)
{
    if (w->slot_tmp)
        return 0;
    const size_t k = (size_t)w->m->hp.n_expert_used, n = (size_t)w->n_max;
    w->slot_tmp = malloc(2 * k * n * (size_t)w->m->hp.n_embd * sizeof(float));
    w->ids_tmp = malloc(k * n * sizeof(int32_t));
    return w->slot_tmp && w->ids_tmp ? 0 : -1;
}

/* sock: the pipe or the data connection the request came on; the reply goes back on it. */
static void on_request(struct worker *w, const ExpertRequest *q, struct msg *m, void *sock)
{
    struct mp_error err = {0};
    hoptrace(q->job, w->slot, HOP_COMPUTE_IN);
    int rc = check_request(w, q, m, &err);
    if (rc)
        return send_error(sock, q->job, rc, err.msg);
    const int64_t n_embd = w->m->hp.n_embd;
    const double t0 = now_s();
    struct eb_job job = {.layer = q->layer, .n_tokens = q->n_tokens, .k = q->k, .n_embd = n_embd,
                         .x = w->x, .ids = w->ids, .weights = w->weights};
    /* Frames may be unaligned for the kernels and float access: copy them out. */
    if (q->x_act) {
        memcpy(w->xq, msg_data(m, 1), msg_size(m, 1));
        job.x = NULL;
        job.xq = w->xq;
        job.xq_stride = x_row_bytes(w->m, q);
    } else {
        wire_decode(q->wire, msg_data(m, 1), q->n_tokens, n_embd, w->x);
    }
    memcpy(w->weights, msg_data(m, 3), msg_size(m, 3));
    memcpy(w->ids, msg_data(m, 2), msg_size(m, 2));
    int n_rows = q->n_tokens;
    if (q->per_slot)
        rc = per_slot_buffers(w) ? mp_error_set(&err, MP_ENOMEM, "out of memory (exact mode)")
                                 : eb_run_per_slot(&w->eb, &job, w->ids_tmp, w->slot_tmp,
                                                   w->slot_tmp + (size_t)q->k * w->n_max * n_embd,
                                                   &n_rows, &err);
    else
        rc = eb_run(&w->eb, &job, w->out, &err);
    if (rc)
        return send_error(sock, q->job, rc, err.msg);
    const float *rows = q->per_slot ? w->slot_tmp + (size_t)q->k * w->n_max * n_embd : w->out;
    zmq_msg_t out;
    const size_t len = (size_t)n_rows * wire_row_bytes(q->wire, n_embd);
    if (zmq_msg_init_size(&out, len))
        return send_error(sock, q->job, MP_ENOMEM, "out of memory for the reply");
    wire_encode(q->wire, rows, n_rows, n_embd, zmq_msg_data(&out));
    ExpertReply r = EXPERT_REPLY__INIT;
    r.job = q->job;
    r.layer = q->layer;
    r.n_tokens = q->n_tokens;
    r.compute_us = (uint64_t)((now_s() - t0) * 1e6);
    w->stat_jobs++;
    w->stat_tokens += (uint64_t)q->n_tokens;
    w->stat_compute_us += r.compute_us;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_REPLY;
    env.reply = &r;
    if (msg_send_env(sock, &env, 1) == 0)
        msg_send_zmsg(sock, &out, 0);
    else
        zmq_msg_close(&out);
    hoptrace(q->job, w->slot, HOP_COMPUTE_DONE);
}

/* Job buffers for want_n_max tokens (the welcome's), once the model is known. */
static int size_buffers(struct worker *w, struct mp_error *err)
{
    if (w->want_n_max == w->n_max)
        return 0;
    const size_t n = (size_t)w->want_n_max, n_embd = (size_t)w->m->hp.n_embd;
    const size_t k = (size_t)w->m->hp.n_expert_used;
    free(w->x);
    free(w->xq);
    free(w->out);
    free(w->ids);
    free(w->weights);
    free(w->slot_tmp);
    free(w->ids_tmp);
    w->slot_tmp = NULL;
    w->ids_tmp = NULL;
    w->x = malloc(n * n_embd * sizeof(float));
    w->xq = malloc(n * kq_act_row_bytes_max((int64_t)n_embd));
    w->out = malloc(n * n_embd * sizeof(float));
    w->ids = malloc(n * k * sizeof(int32_t));
    w->weights = malloc(n * k * sizeof(float));
    w->n_max = w->x && w->xq && w->out && w->ids && w->weights ? w->want_n_max : 0;
    return w->n_max ? 0 : mp_error_set(err, MP_ENOMEM, "out of memory for %d-token jobs",
                                       w->want_n_max);
}

/* Without a model file: open the cache for the coordinator's model and fetch its header. */
static int open_cache(struct worker *w, const Welcome *wel, struct mp_error *err)
{
    struct model_fingerprint fp;
    int rc = fingerprint_parse(wel->model_fingerprint ? wel->model_fingerprint : "", &fp, err);
    if (rc)
        return rc;
    if (w->cache && (!fingerprint_eq(fp, w->fp) || w->file_size != wel->file_size))
        return mp_error_set(err, MP_EINVAL, "the coordinator now serves another model; restart "
                            "the worker");
    w->fp = fp;
    w->file_size = wel->file_size;
    w->header_bytes = wel->header_bytes;
    if (!w->cache && (rc = shard_cache_open(w->o.cache_dir, fp, wel->file_size, &w->cache, err)))
        return rc;
    if (w->m)
        return 0;
    struct file_range header = {.offset = 0, .len = wel->header_bytes};
    if ((rc = stream_begin(w, STREAM_HEADER, &header, 1, err)))
        return rc;
    if (!stream_active(w))
        header_ready(w);
    return 0;
}

static void close_data(struct worker *w)
{
    if (w->data)
        zmq_close(w->data);
    w->data = NULL;
}

/* The direct data connection: a DEALER to the coordinator's host at the welcome's data port, with
 * the welcome's routing id (which is how the coordinator knows us there) and our key. Replies
 * are dropped rather than queued when it is down (SNDTIMEO 0): the control connection's
 * heartbeats decide whether we are lost. Without it (or MOEPOOL_TEST_NO_DATA set, for the tests
 * of the relayed path) requests come relayed through the I/O thread. */
static void open_data(struct worker *w, const Welcome *wel)
{
    close_data(w);
    const char *ep = w->o.endpoint, *colon = strrchr(ep, ':');
    if (!wel->data_port || !wel->data_id.len || getenv("MOEPOOL_TEST_NO_DATA") ||
        strncmp(ep, "tcp://", 6) || !colon)
        return;
    char addr[300];
    snprintf(addr, sizeof(addr), "%.*s:%u", (int)(colon - ep), ep, wel->data_port);
    struct mp_error err = {0};
    int zero = 0, one = 1;
    w->data = zmq_socket(w->ctx, ZMQ_DEALER);
    zmq_setsockopt(w->data, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(w->data, ZMQ_SNDTIMEO, &zero, sizeof(zero));
    zmq_setsockopt(w->data, ZMQ_IMMEDIATE, &one, sizeof(one));
    zmq_setsockopt(w->data, ZMQ_ROUTING_ID, wel->data_id.data, wel->data_id.len);
    if ((w->has_key && keyfile_apply_client(w->data, &w->key, &err)) || zmq_connect(w->data, addr)) {
        mp_warn("worker: no data connection to %s (%s): requests come relayed", addr,
                err.code ? err.msg : zmq_strerror(errno));
        close_data(w);
    }
}

static int on_welcome(struct worker *w, const Welcome *wel, struct mp_error *err)
{
    if (wel->n_max < 1 || wel->n_max > 65536)
        return mp_error_set(err, MP_EINVAL, "bad welcome: %d tokens per job", wel->n_max);
    w->want_n_max = wel->n_max;
    w->slot = wel->slot;
    open_data(w, wel);
    free_shard(w); /* the assign that follows loads it again */
    stream_free(w);
    return w->o.model_path ? 0 : open_cache(w, wel, err);
}

/* A message on the data connection: only requests come there (anything else is dropped). */
static void on_data(struct worker *w)
{
    struct msg m;
    if (msg_recv(w->data, &m, ZMQ_DONTWAIT))
        return;
    Envelope *env = msg_envelope(&m, 0);
    if (env && env->body_case == ENVELOPE__BODY_REQUEST)
        on_request(w, env->request, &m, w->data);
    else
        mp_warn("worker: ignored a %s on the data connection", env ? msg_kind(env) : "garbage");
    if (env)
        envelope__free_unpacked(env, NULL);
    msg_close(&m);
}

void *worker_compute_thread(void *arg)
{
    struct worker *w = arg;
    struct mp_error err = {0};
    if (numa_open(&w->numa, &err))
        mp_warn("worker: no NUMA topology (%s); one node, unbound memory", err.msg);
    for (;;) {
        zmq_pollitem_t items[2] = {{w->pipe_compute, 0, ZMQ_POLLIN, 0},
                                   {w->data, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, w->data ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (w->data && (items[1].revents & ZMQ_POLLIN)) {
            on_data(w);
            continue;
        }
        struct msg m;
        if (msg_recv(w->pipe_compute, &m, ZMQ_DONTWAIT)) {
            if (errno == EAGAIN)
                continue;
            break;
        }
        Envelope *env = msg_envelope(&m, 0);
        int stop = !env; /* the I/O thread sends an empty frame to stop */
        if (env && env->body_case == ENVELOPE__BODY_WELCOME && on_welcome(w, env->welcome, &err))
            fail(w, err.code, &err);
        else if (env && env->body_case == ENVELOPE__BODY_ASSIGN)
            on_assign(w, env->assign);
        else if (env && env->body_case == ENVELOPE__BODY_CHUNK)
            on_chunk(w, env->chunk, &m);
        else if (env && env->body_case == ENVELOPE__BODY_REQUEST)
            on_request(w, env->request, &m, w->pipe_compute);
        if (env)
            envelope__free_unpacked(env, NULL);
        msg_close(&m);
        if (stop)
            break;
    }
    close_data(w);
    free_shard(w);
    stream_free(w);
    shard_cache_close(w->cache);
    free(w->refs);
    numa_close(w->numa);
    return NULL;
}
