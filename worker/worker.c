/* worker/worker.c: the worker's I/O thread: connects, says hello, relays the coordinator's
 * messages to the compute thread and its replies back, sends heartbeats, and reconnects when the
 * coordinator goes silent. See worker.h. */
#include "worker/worker_impl.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "kernels/kq.h"
#include "model/fingerprint.h"
#include "proto/hoptrace.h"
#include "worker/numa.h"

#ifndef MOEPOOL_VERSION
#error "MOEPOOL_VERSION comes from CMake (the project version)"
#endif

/* Until a welcome says otherwise. */
#define DEFAULT_HEARTBEAT_MS 500
#define DEFAULT_TIMEOUT_MS 3000

static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { (void)sig; stop_requested = 1; }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connection state of the I/O thread. */
struct link {
    int welcomed;
    int slot;
    int heartbeat_ms, timeout_ms;
    int64_t last_heard, hello_at, next_beat;
    uint64_t seq;
    int handshake_ok;
};

static void send_hello(struct worker *w)
{
    Hello h = HELLO__INIT;
    char host[64] = "?";
    gethostname(host, sizeof(host) - 1);
    NumaNode nodes[16], *np[16];
    struct numa_topo *topo = NULL;
    if (numa_open(&topo, NULL) == 0) {
        for (int i = 0; i < numa_n_nodes(topo) && i < 16; i++) {
            struct numa_node_info ni = numa_node(topo, i);
            numa_node__init(&nodes[i]);
            nodes[i].os_index = ni.os_index;
            nodes[i].cores = ni.n_cores;
            nodes[i].free_bytes = ni.free_bytes;
            np[h.n_numa++] = &nodes[i];
        }
        h.cores = numa_total_cores(topo);
        numa_close(topo);
    }
    h.protocol_version = CLUSTER_PROTOCOL_VERSION;
    /* MOEPOOL_TEST_PROTOCOL_VERSION: lets the tests play an incompatible (older) worker. */
    const char *pv = getenv("MOEPOOL_TEST_PROTOCOL_VERSION");
    if (pv)
        h.protocol_version = (uint32_t)strtoul(pv, NULL, 10);
    h.moepool_version = MOEPOOL_VERSION;
    h.host = host;
    h.numa = np;
    h.simd = (char *)kq_simd_name();
    h.model_fingerprint = w->fingerprint;
    h.has_model = w->o.model_path != NULL;
    h.instance = w->instance;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_HELLO;
    env.hello = &h;
    msg_send_env(w->dealer, &env, 0);
}

static void close_link(struct worker *w)
{
    int zero = 0;
    if (w->dealer) {
        zmq_socket_monitor(w->dealer, NULL, 0);
        zmq_setsockopt(w->dealer, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_close(w->dealer);
    }
    if (w->monitor)
        zmq_close(w->monitor);
    w->dealer = w->monitor = NULL;
}

/* A fresh DEALER (new identity) and a hello: joining, or rejoining after silence. */
static int open_link(struct worker *w, struct link *l, struct mp_error *err)
{
    static int n_links;
    char name[64];
    int zero = 0;
    close_link(w);
    w->dealer = zmq_socket(w->ctx, ZMQ_DEALER);
    zmq_setsockopt(w->dealer, ZMQ_LINGER, &zero, sizeof(zero));
    if (w->has_key && keyfile_apply_client(w->dealer, &w->key, err))
        return err->code;
    snprintf(name, sizeof(name), "inproc://worker-monitor-%d", n_links++);
    zmq_socket_monitor(w->dealer, name,
                       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    w->monitor = zmq_socket(w->ctx, ZMQ_PAIR);
    zmq_connect(w->monitor, name);
    if (zmq_connect(w->dealer, w->o.endpoint))
        return mp_error_set(err, MP_EINVAL, "cannot connect to %s: %s", w->o.endpoint,
                            zmq_strerror(errno));
    *l = (struct link){.heartbeat_ms = DEFAULT_HEARTBEAT_MS, .timeout_ms = DEFAULT_TIMEOUT_MS,
                       .hello_at = now_ms(), .next_beat = now_ms() + DEFAULT_HEARTBEAT_MS};
    return 0; /* hello goes out once the handshake succeeds (on_monitor) */
}

/* Handshake failures are fatal: retrying with the same key cannot succeed. */
static int on_monitor(struct worker *w, struct link *l, struct mp_error *err)
{
    struct msg m;
    if (msg_recv(w->monitor, &m, ZMQ_DONTWAIT))
        return 0;
    uint16_t event = 0;
    if (m.n >= 1 && msg_size(&m, 0) >= 2)
        memcpy(&event, msg_data(&m, 0), 2);
    msg_close(&m);
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        /* A new connection: a coordinator that has not welcomed us yet hears hello now. While
         * none is up, ZeroMQ keeps reconnecting on its own. */
        l->handshake_ok = 1;
        if (!l->welcomed) {
            send_hello(w);
            l->hello_at = now_ms();
        }
        return 0;
    }
    return mp_error_set(err, MP_EPEER, "the coordinator at %s refused the connection: %s",
                        w->o.endpoint,
                        event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                            ? "our CURVE key is not allowed (wrong --key)"
                            : "security handshake failed (missing or different --key on one "
                              "side)");
}

/* A message from the coordinator: joins, refusals, and work for the compute thread. */
static int on_coordinator(struct worker *w, struct link *l, struct mp_error *err)
{
    struct msg m;
    if (msg_recv(w->dealer, &m, ZMQ_DONTWAIT))
        return 0;
    int rc = 0;
    Envelope *env = msg_envelope(&m, 0);
    l->last_heard = now_ms();
    if (!env) {
        mp_warn("worker: ignored an undecodable message from the coordinator");
    } else if (env->body_case == ENVELOPE__BODY_REFUSE) {
        if (env->refuse->retry) {
            mp_info("worker: waiting: %s", env->refuse->reason);
            l->welcomed = 0;
            l->hello_at = now_ms() - DEFAULT_TIMEOUT_MS + 1000; /* hello again in a second */
        } else {
            rc = mp_error_set(err, MP_EINVAL, "refused by the coordinator: %s",
                              env->refuse->reason);
        }
    } else if (env->body_case == ENVELOPE__BODY_WELCOME) {
        l->welcomed = 1;
        l->slot = env->welcome->slot;
        l->heartbeat_ms = env->welcome->heartbeat_ms > 0 ? env->welcome->heartbeat_ms : 500;
        l->timeout_ms = env->welcome->heartbeat_timeout_ms > 0 ? env->welcome->heartbeat_timeout_ms
                                                               : DEFAULT_TIMEOUT_MS;
        mp_info("worker: joined %s as worker %d of %d (wire %s)", w->o.endpoint, l->slot,
                env->welcome->n_slots, wire_name(env->welcome->wire));
        msg_forward(&m, 0, w->pipe_io);
    } else if (env->body_case == ENVELOPE__BODY_REQUEST) {
        hoptrace(env->request->job, l->slot, HOP_WORKER_IO_IN);
        msg_forward(&m, 0, w->pipe_io);
    } else if (env->body_case == ENVELOPE__BODY_ASSIGN ||
               env->body_case == ENVELOPE__BODY_REQUEST || env->body_case == ENVELOPE__BODY_CHUNK) {
        msg_forward(&m, 0, w->pipe_io);
    }
    if (env)
        envelope__free_unpacked(env, NULL);
    msg_close(&m);
    return rc;
}

/* What the worker has computed, every 10th heartbeat. */
static void send_stats(struct worker *w)
{
    Stats st = STATS__INIT;
    st.jobs = w->stat_jobs;
    st.tokens = w->stat_tokens;
    st.compute_seconds = (double)w->stat_compute_us * 1e-6;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_STATS;
    env.stats = &st;
    msg_send_env(w->dealer, &env, 0);
}

static void heartbeat(struct worker *w, struct link *l)
{
    if (l->seq % 10 == 9)
        send_stats(w);
    Heartbeat hb = HEARTBEAT__INIT;
    hb.seq = ++l->seq;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    msg_send_env(w->dealer, &env, 0);
}

/* Rejoin when the coordinator has gone silent (restart, network), or was connected but did not
 * answer hello. */
static int need_rejoin(const struct link *l, int64_t now)
{
    if (l->welcomed)
        return now - l->last_heard > l->timeout_ms;
    return l->handshake_ok && now - l->hello_at > DEFAULT_TIMEOUT_MS;
}

/* Tells the coordinator we are leaving, so it frees our slot at once; waits up to 200 ms for the
 * message to go out. */
static void say_bye(struct worker *w, const struct link *l, const char *reason)
{
    if (!w->dealer || !l->welcomed)
        return;
    Bye b = BYE__INIT;
    b.reason = (char *)reason;
    Envelope env = ENVELOPE__INIT;
    env.body_case = ENVELOPE__BODY_BYE;
    env.bye = &b;
    int linger = 200;
    zmq_setsockopt(w->dealer, ZMQ_LINGER, &linger, sizeof(linger));
    msg_send_env(w->dealer, &env, 0);
    zmq_socket_monitor(w->dealer, NULL, 0);
    zmq_close(w->dealer);
    w->dealer = NULL;
}

static int io_loop(struct worker *w, struct mp_error *err)
{
    struct link l;
    int rc = open_link(w, &l, err);
    const int64_t end = w->o.max_seconds > 0 ? now_ms() + 1000LL * w->o.max_seconds : 0;
    while (!rc && !stop_requested && (!end || now_ms() < end)) {
        zmq_pollitem_t items[3] = {{w->dealer, 0, ZMQ_POLLIN, 0},
                                   {w->pipe_io, 0, ZMQ_POLLIN, 0},
                                   {w->monitor, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 3, 100) < 0 && errno != EINTR)
            return mp_error_set(err, MP_EIO, "poll: %s", zmq_strerror(errno));
        if (items[2].revents && (rc = on_monitor(w, &l, err)))
            break;
        if (items[0].revents && (rc = on_coordinator(w, &l, err)))
            break;
        struct msg m;
        while (items[1].revents && !msg_recv(w->pipe_io, &m, ZMQ_DONTWAIT)) {
            hoptrace_msg(&m, 0, l.slot, HOP_WORKER_IO_OUT);
            msg_forward(&m, 0, w->dealer);
            msg_close(&m);
        }
        const int64_t now = now_ms();
        if (l.welcomed && now >= l.next_beat) {
            heartbeat(w, &l);
            l.next_beat = now + l.heartbeat_ms;
        }
        if (need_rejoin(&l, now)) {
            if (l.welcomed)
                mp_warn("worker: the coordinator is silent; rejoining");
            rc = open_link(w, &l, err);
        }
    }
    if (!rc)
        say_bye(w, &l, stop_requested ? "signal" : "time limit");
    return rc;
}

static int setup(struct worker *w, const struct worker_opts *o, struct mp_error *err)
{
    int rc;
    w->o = *o;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    w->instance = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)ts.tv_sec;
    if (o->key_file && (rc = keyfile_read(o->key_file, &w->key, err)))
        return rc;
    w->has_key = o->key_file != NULL;
    if (o->model_path) {
        if ((rc = model_open(o->model_path, &w->m, err)))
            return rc;
        fingerprint_hex(fingerprint_gguf(w->m->gguf), w->fingerprint);
    }
    char name[64];
    int zero = 0;
    w->ctx = zmq_ctx_new();
    w->pipe_io = zmq_socket(w->ctx, ZMQ_PAIR);
    w->pipe_compute = zmq_socket(w->ctx, ZMQ_PAIR);
    zmq_setsockopt(w->pipe_io, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(w->pipe_compute, ZMQ_LINGER, &zero, sizeof(zero));
    snprintf(name, sizeof(name), "inproc://worker-pipe");
    if (zmq_bind(w->pipe_io, name) || zmq_connect(w->pipe_compute, name))
        return mp_error_set(err, MP_EIO, "inproc pipe: %s", zmq_strerror(errno));
    return 0;
}

int worker_run(const struct worker_opts *o, struct mp_error *err)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (!w)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    pthread_t compute;
    int started = 0;
    int rc = setup(w, o, err);
    if (!rc && pthread_create(&compute, NULL, worker_compute_thread, w))
        rc = mp_error_set(err, MP_EIO, "cannot start the compute thread");
    started = !rc;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (!rc)
        rc = io_loop(w, err);
    if (started) {
        msg_send_bytes(w->pipe_io, "", 0, 0); /* not an envelope: stop */
        pthread_join(compute, NULL);
    }
    close_link(w);
    hoptrace_flush();
    if (w->pipe_io)
        zmq_close(w->pipe_io);
    if (w->pipe_compute)
        zmq_close(w->pipe_compute);
    if (w->ctx)
        zmq_ctx_term(w->ctx);
    model_close(w->m);
    free(w->x);
    free(w->xq);
    free(w->out);
    free(w->ids);
    free(w->weights);
    free(w->slot_tmp);
    free(w->ids_tmp);
    free(w);
    return rc;
}
