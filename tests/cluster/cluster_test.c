/* tests/cluster/cluster_test.c: the cluster end to end, with real processes on loopback.
 *
 * The coordinator runs in this process (cluster_start, the forward pass with cluster_backend);
 * workers are `moepool worker` processes started with fork/exec. Each scenario compares the
 * cluster's logits with the in-process eb_local logits of the same model and tokens:
 *   - f32 wire on every model given: equal within a bound justified below (and said whether
 *     bit-identical), bf16/f16/q8_0 within measured bounds; bytes per token per layer printed;
 *   - a worker killed (SIGKILL) or frozen (SIGSTOP) before a job: the job fails with a clear
 *     error instead of hanging, the coordinator keeps running, the worker (re)joins and the next
 *     job is exact again;
 *   - a worker with another model or an old protocol version is refused on both sides;
 *   - garbage from a raw ZeroMQ peer and a raw TCP peer is ignored, on the control port and on
 *     the data port (a peer with a made-up data id);
 *   - requests travel on the workers' direct data connections, and, for workers that open none,
 *     relayed by the I/O threads, with the same logits;
 *   - CURVE: a worker with the key joins; one with another key or none is refused;
 *   - a local shard, exact mode (bit-identical, also with workers on two synthetic NUMA nodes),
 *     a placement file with replicas (failover), workers started first and a coordinator
 *     restart, and a worker without the model file streaming its shard into a cache.
 * Usage: cluster_test MOEPOOL_BINARY MODELS_DIR GROUP (see main). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "base/check.h"
#include "coordinator/cluster.h"
#include "kernels/kq.h"
#include "model/eb_local.h"
#include "model/forward.h"
#include "proto/keyfile.h"

static const char *moepool_bin, *models_dir;
static char tmp_dir[256];

#define N_PREFILL 12
#define N_DECODE 3
#define N_TOK (N_PREFILL + N_DECODE)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

static void model_path(const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s/%s.gguf", models_dir, name);
}

/* `moepool worker --join ENDPOINT --model MODEL -t 1 [--key KEY]`, stderr to LOG; model NULL:
 * no model file, `--cache TMP/cache` instead. */
static pid_t spawn_worker(const char *endpoint, const char *model, const char *key,
                          const char *log, const char *env_kv)
{
    pid_t pid = fork();
    if (pid)
        return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    dup2(fd, 1);
    if (env_kv)
        putenv((char *)env_kv);
    char cache[300];
    snprintf(cache, sizeof(cache), "%s/cache", tmp_dir);
    const char *argv[] = {moepool_bin, "worker", "--join", endpoint, model ? "--model" : "--cache",
                          model ? model : cache, "-t", "1", key ? "--key" : NULL, key, NULL};
    execv(moepool_bin, (char *const *)argv);
    _exit(127);
}

/* Exit status of pid within seconds, or -1 (then the process is killed). */
static int wait_exit(pid_t pid, double seconds)
{
    const double end = now_s() + seconds;
    int st;
    while (now_s() < end) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(20000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static void stop_worker(pid_t pid)
{
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    if (wait_exit(pid, 10) != 0)
        fprintf(stderr, "worker %d did not stop cleanly\n", (int)pid);
}

static int file_contains(const char *path, const char *needle)
{
    char buf[8192] = "";
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = 0;
    fclose(f);
    return strstr(buf, needle) != NULL;
}

/* Runs N_PREFILL tokens in one batch, then N_DECODE one at a time; logits [N_TOK][n_vocab]. */
static int run_tokens(struct model *m, struct expert_backend *eb, float *logits,
                      struct mp_error *err)
{
    struct tp_pool *tp = tp_new(1);
    struct kv_seq *seq = NULL;
    struct fwd_state *st = NULL;
    int rc = kv_seq_new(m, N_TOK, &seq, err);
    if (!rc)
        rc = fwd_state_new(m, N_PREFILL, N_TOK, tp, &st, err);
    int32_t tok[N_TOK], pos[N_TOK];
    struct kv_seq *seqs[N_TOK];
    for (int i = 0; i < N_TOK; i++) {
        tok[i] = (int32_t)((i * 7919 + 13) % (m->hp.n_vocab - 1) + 1);
        pos[i] = i;
        seqs[i] = seq;
    }
    for (int start = 0; !rc && start < N_TOK; start += start ? 1 : N_PREFILL) {
        struct fwd_batch b = {.n_tokens = start ? 1 : N_PREFILL, .token = tok + start,
                              .pos = pos + start, .seq = seqs + start};
        rc = fwd_run(st, &b, eb, NULL, logits + (size_t)start * m->hp.n_vocab, err);
    }
    fwd_state_free(st);
    kv_seq_free(seq);
    tp_free(tp);
    return rc;
}

static float *reference_logits(struct model *m)
{
    struct mp_error err = {0};
    struct tp_pool *tp = tp_new(1);
    struct expert_backend eb;
    float *ref = malloc((size_t)N_TOK * m->hp.n_vocab * sizeof(float));
    int rc = eb_local_new(m, NULL, tp, N_PREFILL, &eb, &err);
    if (!rc)
        rc = run_tokens(m, &eb, ref, &err);
    CHECK(rc == 0, "in-process logits: %s", err.msg);
    eb_free(&eb);
    tp_free(tp);
    return ref;
}

/* Largest |a - b| over the largest |a|. */
static double rel_error(const float *a, const float *b, size_t n, int *identical)
{
    double worst = 0, scale = 0;
    *identical = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(b[i]))
            return INFINITY; /* fmax would skip a NaN */
        worst = fmax(worst, fabs((double)a[i] - b[i]));
        scale = fmax(scale, fabs((double)a[i]));
        *identical &= a[i] == b[i];
    }
    return worst / scale;
}

struct scenario {
    struct model *m;
    char model[512];
    char endpoint[64];
    struct cluster *c;
    struct tp_pool *local_tp;
    pid_t w[2];
    float *ref, *got;
};

static const char *placement_file; /* for start_ex, when set */
static const char *worker_env;     /* "NAME=VALUE" for start_ex's workers, when set */
static bool split_batches;         /* start_ex: cluster_opts.split (halves pipelined) */
static void test_lost_worker(int sig);

static int start_ex(struct scenario *s, const char *name, enum wire_type wire, const char *key,
                    bool local, bool exact)
{
    struct mp_error err = {0};
    model_path(name, s->model, sizeof(s->model));
    if (model_open(s->model, &s->m, &err)) {
        CHECK(0, "%s", err.msg);
        return -1;
    }
    s->ref = reference_logits(s->m);
    s->got = malloc((size_t)N_TOK * s->m->hp.n_vocab * sizeof(float));
    snprintf(s->endpoint, sizeof(s->endpoint), "tcp://127.0.0.1:%d", free_port());
    /* Heartbeat timeout: the default 3 s, long enough that a worker starved of CPU on a loaded
     * machine (ASan, parallel tests) is not declared lost by mistake. */
    struct cluster_opts o = {.endpoint = s->endpoint, .expect_workers = 2, .key_file = key,
                             .wire = wire, .n_max = N_PREFILL, .heartbeat_ms = 200,
                             .heartbeat_timeout_ms = 3000, .local_shard = local,
                             .exact = exact, .placement_file = placement_file,
                             .split = split_batches};
    if (local)
        o.local_tp = s->local_tp = tp_new(1);
    if (cluster_start(s->m, &o, &s->c, &err)) {
        CHECK(0, "cluster_start: %s", err.msg);
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        char log[300];
        snprintf(log, sizeof(log), "%s/worker%d.log", tmp_dir, i);
        s->w[i] = spawn_worker(s->endpoint, s->model, key, log, worker_env);
    }
    /* Generous: two processes map the model and start, on a loaded 2-core machine, maybe ASan. */
    if (cluster_wait_ready(s->c, 60000, &err)) {
        CHECK(0, "wait_ready: %s", err.msg);
        return -1;
    }
    return 0;
}

static int start(struct scenario *s, const char *name, enum wire_type wire, const char *key)
{
    return start_ex(s, name, wire, key, false, false);
}

static void finish(struct scenario *s)
{
    for (int i = 0; i < 2; i++)
        if (s->w[i] > 0)
            stop_worker(s->w[i]);
    cluster_stop(s->c);
    tp_free(s->local_tp);
    model_close(s->m);
    free(s->ref);
    free(s->got);
    memset(s, 0, sizeof(*s));
}

/* Runs the tokens through the cluster; returns the relative error against the reference. */
static double run_cluster(struct scenario *s, int *identical, struct mp_error *err)
{
    struct expert_backend eb = cluster_backend(s->c);
    if (run_tokens(s->m, &eb, s->got, err))
        return INFINITY;
    return rel_error(s->ref, s->got, (size_t)N_TOK * s->m->hp.n_vocab, identical);
}

/* Greedy tokens that agree with the reference, of N_TOK positions. */
static int argmax_agree(const float *a, const float *b, int64_t n_vocab)
{
    int agree = 0;
    for (int t = 0; t < N_TOK; t++) {
        const float *x = a + (size_t)t * n_vocab, *y = b + (size_t)t * n_vocab;
        int64_t ia = 0, ib = 0;
        for (int64_t i = 1; i < n_vocab; i++) {
            ia = x[i] > x[ia] ? i : ia;
            ib = y[i] > y[ib] ? i : ib;
        }
        agree += ia == ib;
    }
    return agree;
}

/* The workers' requests went on their data connections. Not all: a request sent before a
 * worker's data handshake completed is relayed, which is correct (and rare: the worker connects
 * when welcomed, long before its experts are loaded). */
static void check_direct(const struct cluster_status *st)
{
    printf("requests: %llu direct, %llu relayed (data port %d)\n",
           (unsigned long long)st->direct_requests, (unsigned long long)st->relayed_requests,
           st->data_port);
    CHECK(st->data_port > 0 && st->direct_requests > 0 &&
              st->direct_requests >= st->relayed_requests,
          "requests: %llu direct, %llu relayed", (unsigned long long)st->direct_requests,
          (unsigned long long)st->relayed_requests);
}

/* Workers that open no data connection: every request is relayed by the cluster thread and the
 * worker's I/O thread, with the same logits. */
static void test_relayed(void)
{
    struct scenario s = {0};
    struct mp_error err = {0};
    int same;
    worker_env = "MOEPOOL_TEST_NO_DATA=1";
    if (start(&s, "lfm2moe-small-q4_k_m", WIRE_F32, NULL) == 0) {
        double e = run_cluster(&s, &same, &err);
        struct cluster_status st;
        cluster_status(s.c, &st);
        printf("relayed: rel error %.3g, %llu direct, %llu relayed\n", e,
               (unsigned long long)st.direct_requests, (unsigned long long)st.relayed_requests);
        CHECK(e <= 1e-5, "relayed: error %g (%s)", e, err.msg); /* f32 bound: see test_wire */
        CHECK(st.direct_requests == 0 && st.relayed_requests > 0, "relayed: %llu direct",
              (unsigned long long)st.direct_requests);
    }
    worker_env = NULL;
    finish(&s);
}

/* Logit error against the in-process run, per wire format. f32: the only difference is the
 * order in which a token's k weighted expert outputs are added (each worker sums its own slots,
 * then the partial sums are added), a few float roundings of values around 0.1: relative error
 * ~1e-7 per add, so 1e-5 of the largest logit (the bound) is generous. Lossy formats
 * (bf16 8 significant bits, f16 11, q8_0 ~8 per 32-block, both ways) perturb the hidden state,
 * and on these random-weight models a perturbation that flips one near-tie router choice moves
 * the logits by up to ~17% of their largest value (measured: f16 0.168 on lfm2moe-tiny-q8_0
 * while bf16 gave 0.01); 0.3 bounds what the conformance models show, so the test catches a
 * broken codec (errors of order 1) without pretending the lossy formats are exact. */
static void test_wire(const char *name)
{
    static const struct { enum wire_type w; double bound; } wires[] = {
        {WIRE_F32, 1e-5}, {WIRE_BF16, 0.3}, {WIRE_F16, 0.3}, {WIRE_Q8_0, 0.3}};
    for (size_t i = 0; i < sizeof(wires) / sizeof(wires[0]); i++) {
        struct scenario s = {0};
        struct mp_error err = {0};
        if (start(&s, name, wires[i].w, NULL) == 0) {
            int same;
            double e = run_cluster(&s, &same, &err);
            struct cluster_status st;
            cluster_status(s.c, &st);
            printf("%-22s wire %-4s: logits rel error %.3g%s, greedy %d/%d, %.0f bytes/token/layer"
                   ", rtt mean %.2f/%.2f ms\n", name, wire_name(wires[i].w), e,
                   same ? " (bit-identical)" : "", argmax_agree(s.ref, s.got, s.m->hp.n_vocab),
                   N_TOK, st.bytes_per_token_layer, st.w[0].rtt_ms_mean, st.w[1].rtt_ms_mean);
            if (wires[i].w == WIRE_F32)
                CHECK(argmax_agree(s.ref, s.got, s.m->hp.n_vocab) == N_TOK, "greedy tokens");
            check_direct(&st);
            CHECK(e <= wires[i].bound, "%s wire %s: error %g > %g (%s)", name,
                  wire_name(wires[i].w), e, wires[i].bound, err.msg);
        }
        finish(&s);
    }
}

/* The coordinator holding a third of the experts itself, beside two workers; and exact mode,
 * whose per-(token, slot) rows added in slot order must give bit-identical logits. */
static void test_local_exact(const char *name, bool local, bool exact)
{
    struct scenario s = {0};
    struct mp_error err = {0};
    int same = 0;
    if (start_ex(&s, name, WIRE_F32, NULL, local, exact) == 0) {
        double e = run_cluster(&s, &same, &err);
        struct cluster_status st;
        cluster_status(s.c, &st);
        printf("%-22s %s%s + 2 workers: rel error %.3g%s, %.0f bytes/token/layer\n", name,
               local ? "local shard" : "", exact ? " exact" : "", e,
               same ? " (bit-identical)" : "", st.bytes_per_token_layer);
        CHECK(e <= 1e-5 && (!local || st.local_experts > 0), "%s: %g %s", name, e, err.msg);
        CHECK(!exact || same, "%s: exact mode is not bit-identical", name);
    }
    finish(&s);
}

/* Batches split in two and pipelined through each MoE layer (the 12-token prefill runs as two
 * halves of 6, the second half's attention reading the first half's keys): the logits must be
 * exactly the unsplit cluster's (every token's arithmetic is its own), and in exact mode exactly
 * the in-process run's. */
static void test_split(const char *name)
{
    struct scenario s = {0};
    struct mp_error err = {0};
    float *unsplit = NULL;
    int same = 0;
    if (start(&s, name, WIRE_F32, NULL) == 0) {
        run_cluster(&s, &same, &err);
        unsplit = s.got;
        s.got = NULL;
    }
    finish(&s);
    split_batches = true;
    if (unsplit && start(&s, name, WIRE_F32, NULL) == 0) {
        double e = run_cluster(&s, &same, &err);
        size_t n = (size_t)N_TOK * s.m->hp.n_vocab;
        CHECK(!memcmp(unsplit, s.got, n * sizeof(float)),
              "%s: split batches differ from unsplit ones (%s)", name, err.msg);
        printf("%-22s split: rel error %.3g against in-process, identical to unsplit\n", name, e);
    }
    finish(&s);
    for (int local = 0; local < 2; local++) {
        if (start_ex(&s, name, WIRE_F32, NULL, local, true) == 0) {
            double e = run_cluster(&s, &same, &err);
            printf("%-22s split exact%s: rel error %.3g%s\n", name, local ? " local shard" : "",
                   e, same ? " (bit-identical)" : "");
            CHECK(same, "%s: split exact mode is not bit-identical (%s)", name, err.msg);
        }
        finish(&s);
    }
    split_batches = false;
    free(unsplit);
}

/* Writes a striped placement of lfm2moe-small-q4_k_m over `workers` with every expert on 2 of
 * them (`moepool placement plan`) to tmp_dir/name, and makes start_ex use it. */
static void use_replica_plan(const char *workers, const char *name, char *plan, size_t len)
{
    char model[512], cmd[1200];
    model_path("lfm2moe-small-q4_k_m", model, sizeof(model));
    snprintf(plan, len, "%s/%s", tmp_dir, name);
    snprintf(cmd, sizeof(cmd), "%s placement plan -m %s --policy striped --workers %s "
             "--replicate 2 -o %s", moepool_bin, model, workers, plan);
    CHECK(system(cmd) == 0, "%s", cmd);
    placement_file = plan;
}

/* A placement file from `moepool placement plan` with every expert on two of {local, w1, w2}:
 * exact logits; after w2 is lost, its experts' replicas take over and the logits stay exact. */
static void test_placement(void)
{
    char plan[300];
    struct mp_error err = {0};
    use_replica_plan("local,w1,w2", "placement.json", plan, sizeof(plan));
    struct scenario s = {0};
    int same = 0;
    if (start_ex(&s, "lfm2moe-small-q4_k_m", WIRE_F32, NULL, true, true) == 0) {
        CHECK(run_cluster(&s, &same, &err) == 0 && same, "placement: %s", err.msg);
        kill(s.w[1], SIGKILL);
        waitpid(s.w[1], NULL, 0);
        s.w[1] = 0;
        struct cluster_status st;
        cluster_status(s.c, &st);
        for (int i = 0; i < 200 && st.ready == 2; i++) {
            usleep(50000);
            cluster_status(s.c, &st);
        }
        CHECK(st.ready == 1, "the lost worker is still ready");
        CHECK(run_cluster(&s, &same, &err) == 0 && same, "failover to replicas: %s", err.msg);
        printf("placement file with replicas: exact, and exact again on replicas after a worker "
               "was lost\n");
    }
    finish(&s);
    placement_file = NULL;
}

/* Two full replicas (every expert on w1 and w2, no local shard): each job's (token, slot) pairs
 * are split as evenly as two holders allow, so per job the busier worker computes at most
 * ceil(slots / 2), even for one token whose k experts would otherwise go k-1 + 1. Summed over
 * jobs: 2 * slots_max <= slots_total + jobs (one odd pair per job at most). Logits stay exact. */
static void test_replica_balance(void)
{
    char plan[300];
    struct mp_error err = {0};
    use_replica_plan("w1,w2", "replicas.json", plan, sizeof(plan));
    struct scenario s = {0};
    int same = 0;
    if (start_ex(&s, "lfm2moe-small-q4_k_m", WIRE_F32, NULL, false, true) == 0) {
        CHECK(run_cluster(&s, &same, &err) == 0 && same, "replicas: %s", err.msg);
        struct cluster_status st;
        cluster_status(s.c, &st);
        const struct cluster_timing *t = &st.timing;
        CHECK(t->jobs > 0 && 2 * t->slots_max <= t->slots_total + t->jobs,
              "replicas share unevenly: busiest %llu of %llu pairs over %llu jobs",
              (unsigned long long)t->slots_max, (unsigned long long)t->slots_total,
              (unsigned long long)t->jobs);
        printf("two full replicas: busiest worker %llu of %llu (token, slot) pairs in %llu jobs\n",
               (unsigned long long)t->slots_max, (unsigned long long)t->slots_total,
               (unsigned long long)t->jobs);
    }
    finish(&s);
    placement_file = NULL;
}

/* A worker lost before a job (killed or frozen): the job fails with MP_EPEER, the coordinator
 * stays up, and after the worker rejoins the logits are exact again. */
static void test_lost_worker(int sig)
{
    struct scenario s = {0};
    struct mp_error err = {0};
    int same;
    if (start(&s, "lfm2moe-tiny-q8_0", WIRE_F32, NULL) == 0) {
        CHECK(run_cluster(&s, &same, &err) <= 1e-5, "before: %s", err.msg);
        kill(s.w[1], sig);
        const double t0 = now_s();
        struct expert_backend eb = cluster_backend(s.c);
        int rc = run_tokens(s.m, &eb, s.got, &err);
        printf("worker %s: job failed after %.2f s: %s\n", sig == SIGKILL ? "killed" : "stopped",
               now_s() - t0, err.msg);
        CHECK(rc == MP_EPEER && strstr(err.msg, "was lost during layer"), "rc %d: %s", rc,
              err.msg);
        if (sig == SIGKILL) {
            waitpid(s.w[1], NULL, 0);
            char log[300];
            snprintf(log, sizeof(log), "%s/worker1b.log", tmp_dir);
            s.w[1] = spawn_worker(s.endpoint, s.model, NULL, log, NULL);
        } else {
            kill(s.w[1], SIGCONT); /* it notices the silence and rejoins */
        }
        CHECK(cluster_wait_ready(s.c, 60000, &err) == 0, "rejoin: %s", err.msg);
        struct cluster_status st;
        cluster_status(s.c, &st);
        CHECK(st.w[0].joins + st.w[1].joins == 3, "slots filled %u + %u times", st.w[0].joins,
              st.w[1].joins);
        CHECK(run_cluster(&s, &same, &err) <= 1e-5, "after rejoin: %s", err.msg);
    }
    finish(&s);
}

/* Workers started before the coordinator join when it comes up; after a coordinator restart on
 * the same endpoint they notice the silence and join the new one. */
static void test_restart(void)
{
    struct scenario s = {0};
    struct mp_error err = {0};
    model_path("lfm2moe-tiny-q8_0", s.model, sizeof(s.model));
    snprintf(s.endpoint, sizeof(s.endpoint), "tcp://127.0.0.1:%d", free_port());
    for (int i = 0; i < 2; i++) {
        char log[300];
        snprintf(log, sizeof(log), "%s/early%d.log", tmp_dir, i);
        s.w[i] = spawn_worker(s.endpoint, s.model, NULL, log, NULL);
    }
    usleep(500000);
    CHECK(model_open(s.model, &s.m, &err) == 0, "%s", err.msg);
    s.ref = reference_logits(s.m);
    s.got = malloc((size_t)N_TOK * s.m->hp.n_vocab * sizeof(float));
    struct cluster_opts o = {.endpoint = s.endpoint, .expect_workers = 2, .n_max = N_PREFILL,
                             .heartbeat_ms = 200, .heartbeat_timeout_ms = 3000};
    for (int round = 0; round < 2; round++) {
        int same;
        CHECK(cluster_start(s.m, &o, &s.c, &err) == 0, "start %d: %s", round, err.msg);
        CHECK(cluster_wait_ready(s.c, 60000, &err) == 0, "round %d: %s", round, err.msg);
        CHECK(run_cluster(&s, &same, &err) <= 1e-5, "round %d: %s", round, err.msg);
        if (round == 0) {
            cluster_stop(s.c);
            s.c = NULL;
        }
    }
    printf("workers joined a coordinator started after them, and its restart\n");
    finish(&s);
}

static void wait_joined(struct cluster *c, int n)
{
    struct cluster_status st;
    cluster_status(c, &st);
    for (int i = 0; i < 1200 && st.joined != n; i++) {
        usleep(50000);
        cluster_status(c, &st);
    }
    CHECK(st.joined == n, "%d workers joined, not %d", st.joined, n);
}

/* A worker without the model file fetches the header and its experts into its cache and computes
 * exact logits; restarted with the same cache it fetches nothing. */
static void test_stream(void)
{
    struct scenario s = {0};
    struct mp_error err = {0};
    model_path("lfm2moe-small-q4_k_m", s.model, sizeof(s.model));
    snprintf(s.endpoint, sizeof(s.endpoint), "tcp://127.0.0.1:%d", free_port());
    CHECK(model_open(s.model, &s.m, &err) == 0, "%s", err.msg);
    s.ref = reference_logits(s.m);
    s.got = malloc((size_t)N_TOK * s.m->hp.n_vocab * sizeof(float));
    struct cluster_opts o = {.endpoint = s.endpoint, .expect_workers = 2, .n_max = N_PREFILL,
                             .heartbeat_ms = 200, .heartbeat_timeout_ms = 3000, .exact = true};
    CHECK(cluster_start(s.m, &o, &s.c, &err) == 0, "%s", err.msg);
    uint64_t streamed[2] = {0};
    for (int round = 0; round < 2 && s.c; round++) {
        char log[300];
        snprintf(log, sizeof(log), "%s/stream%d.log", tmp_dir, round);
        s.w[0] = spawn_worker(s.endpoint, NULL, NULL, log, NULL); /* slot 0: joins first */
        wait_joined(s.c, 1);
        snprintf(log, sizeof(log), "%s/stream%d_model.log", tmp_dir, round);
        s.w[1] = spawn_worker(s.endpoint, s.model, NULL, log, NULL);
        int same = 0;
        CHECK(cluster_wait_ready(s.c, 60000, &err) == 0, "round %d: %s", round, err.msg);
        CHECK(run_cluster(&s, &same, &err) == 0 && same, "round %d: %s", round, err.msg);
        struct cluster_status st;
        cluster_status(s.c, &st);
        CHECK(!st.w[0].has_model && st.w[1].has_model, "slot order");
        streamed[round] = st.w[0].streamed_bytes;
        for (int i = 0; i < 2; i++)
            stop_worker(s.w[i]);
        s.w[0] = s.w[1] = 0;
        wait_joined(s.c, 0);
    }
    printf("streamed shard: %llu bytes to a worker without the model, %llu after its restart\n",
           (unsigned long long)streamed[0], (unsigned long long)streamed[1]);
    CHECK(streamed[0] > 0 && streamed[1] == 0, "streamed %llu then %llu",
          (unsigned long long)streamed[0], (unsigned long long)streamed[1]);
    finish(&s);
}

/* Another model file, and an old protocol version: refused, the worker exits 2 saying why. */
static void test_refusals(void)
{
    struct scenario s = {0};
    if (start(&s, "lfm2moe-tiny-q8_0", WIRE_F32, NULL) == 0) {
        char other[512], log[300];
        model_path("qwen3moe-tiny-q8_0", other, sizeof(other));
        snprintf(log, sizeof(log), "%s/wrong_model.log", tmp_dir);
        pid_t p = spawn_worker(s.endpoint, other, NULL, log, NULL);
        CHECK(wait_exit(p, 30) == 2 && file_contains(log, "another model file"),
              "wrong model not refused (see %s)", log);
        snprintf(log, sizeof(log), "%s/old_version.log", tmp_dir);
        p = spawn_worker(s.endpoint, s.model, NULL, log, "MOEPOOL_TEST_PROTOCOL_VERSION=0");
        CHECK(wait_exit(p, 30) == 2 && file_contains(log, "protocol version 0"),
              "old version not refused (see %s)", log);
        struct cluster_status st;
        cluster_status(s.c, &st);
        CHECK(st.refused == 2, "refused %llu", (unsigned long long)st.refused);
    }
    finish(&s);
}

/* A raw ZeroMQ peer sending junk and a raw TCP peer sending bytes: ignored, logits still exact. */
static void test_garbage(void)
{
    struct scenario s = {0};
    struct mp_error err = {0};
    int same;
    if (start(&s, "lfm2moe-tiny-q8_0", WIRE_F32, NULL) == 0) {
        void *ctx = zmq_ctx_new();
        void *d = zmq_socket(ctx, ZMQ_DEALER);
        zmq_connect(d, s.endpoint);
        zmq_send(d, "\xff\xfe garbage", 10, 0);
        zmq_send(d, "", 0, ZMQ_SNDMORE);
        zmq_send(d, "more", 4, 0);
        static const unsigned char reply[] = {0x52, 0x02, 0x08, 0x01}; /* Envelope{reply{job 1}} */
        zmq_send(d, reply, sizeof(reply), 0);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                .sin_port = htons((uint16_t)atoi(strrchr(s.endpoint, ':') + 1))};
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            CHECK(write(fd, "GET / HTTP/1.0\r\n\r\n", 18) == 18, "tcp write");
        /* On the data port: a peer with a made-up data id sends a reply for job 1, one without
         * an id sends junk. Both are dropped when the backend next reads the port. */
        struct cluster_status st;
        cluster_status(s.c, &st);
        char data_ep[64];
        snprintf(data_ep, sizeof(data_ep), "tcp://127.0.0.1:%d", st.data_port);
        void *d1 = zmq_socket(ctx, ZMQ_DEALER), *d2 = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(d1, ZMQ_ROUTING_ID, "dguessed!", 9);
        zmq_connect(d1, data_ep);
        zmq_connect(d2, data_ep);
        zmq_send(d1, reply, sizeof(reply), ZMQ_SNDMORE);
        zmq_send(d1, "rows", 4, 0);
        zmq_send(d2, "\xff\xfe garbage", 10, 0);
        usleep(300000);
        CHECK(run_cluster(&s, &same, &err) <= 1e-5, "with garbage: %s", err.msg);
        cluster_status(s.c, &st);
        CHECK(st.garbage >= 4 && st.ready == 2, "garbage %llu, ready %d",
              (unsigned long long)st.garbage, st.ready);
        check_direct(&st);
        close(fd);
        int zero = 0;
        void *socks[] = {d, d1, d2};
        for (int i = 0; i < 3; i++) {
            zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof(zero));
            zmq_close(socks[i]);
        }
        zmq_ctx_term(ctx);
    }
    finish(&s);
}

/* CURVE: the key's holders join and compute; another key or none is refused on both sides. */
static void test_curve(void)
{
    char key[300], other[300], log[300];
    struct mp_error err = {0};
    snprintf(key, sizeof(key), "%s/cluster.key", tmp_dir);
    snprintf(other, sizeof(other), "%s/other.key", tmp_dir);
    CHECK(keyfile_generate(key, &err) == 0 && keyfile_generate(other, &err) == 0, "%s", err.msg);
    struct scenario s = {0};
    int same;
    if (start(&s, "lfm2moe-tiny-q8_0", WIRE_F32, key) == 0) {
        CHECK(run_cluster(&s, &same, &err) <= 1e-5, "CURVE: %s", err.msg);
        snprintf(log, sizeof(log), "%s/other_key.log", tmp_dir);
        pid_t p = spawn_worker(s.endpoint, s.model, other, log, NULL);
        CHECK(wait_exit(p, 30) == 2 && file_contains(log, "refused"), "other key (see %s)", log);
        snprintf(log, sizeof(log), "%s/no_key.log", tmp_dir);
        p = spawn_worker(s.endpoint, s.model, NULL, log, NULL);
        CHECK(wait_exit(p, 30) == 2 && file_contains(log, "refused"), "no key (see %s)", log);
        struct cluster_status st;
        cluster_status(s.c, &st);
        CHECK(st.refused >= 2 && st.ready == 2, "refused %llu", (unsigned long long)st.refused);
        /* A client that knows the coordinator's public key but holds another keypair passes
         * the handshake's first steps and is refused by the ZAP handler. */
        struct cluster_key k, mine;
        CHECK(keyfile_read(key, &k, &err) == 0, "%s", err.msg);
        zmq_curve_keypair(mine.public_z85, mine.secret_z85);
        void *ctx = zmq_ctx_new(), *d = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, k.public_z85, 40);
        zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, mine.public_z85, 40);
        zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, mine.secret_z85, 40);
        zmq_connect(d, s.endpoint);
        zmq_send(d, "x", 1, ZMQ_DONTWAIT);
        const uint64_t before = st.refused;
        for (int i = 0; i < 100 && st.refused == before; i++) {
            usleep(50000);
            cluster_status(s.c, &st);
        }
        CHECK(st.refused > before, "a foreign client key was not refused");
        int zero = 0;
        zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof(zero));
        zmq_close(d);
        zmq_ctx_term(ctx);
        CHECK(run_cluster(&s, &same, &err) <= 1e-5, "CURVE after refusals: %s", err.msg);
        cluster_status(s.c, &st);
        check_direct(&st); /* the data connections speak CURVE too */
    }
    finish(&s);
}

/* One scenario group per ctest test (each well under a minute with ASan). */
int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: cluster_test MOEPOOL_BINARY MODELS_DIR GROUP\n"
                        "groups: wire:MODEL local exact split placement lost restart stream refuse "
                        "garbage curve relayed\n");
        return 2;
    }
    moepool_bin = argv[1];
    models_dir = argv[2];
    const char *group = argv[3];
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/cluster_test.XXXXXX");
    if (!mkdtemp(tmp_dir))
        return 2;
    signal(SIGPIPE, SIG_IGN);
    kq_init();
    if (!strncmp(group, "wire:", 5)) {
        test_wire(group + 5);
    } else if (!strcmp(group, "local")) {
        test_local_exact("lfm2moe-tiny-q8_0", true, false);
        test_local_exact("qwen3moe-tiny-q8_0", true, false);
    } else if (!strcmp(group, "exact")) {
        test_local_exact("lfm2moe-small-q4_k_m", false, true);
        test_local_exact("lfm2moe-small-q4_k_m", true, true);
        test_local_exact("qwen3moe-tiny-q4_k_m", false, true);
        /* Workers that see two NUMA nodes split their experts over two node backends. */
        worker_env = "HWLOC_SYNTHETIC=pack:2 numa:1 core:1 pu:1";
        test_local_exact("lfm2moe-small-q4_k_m", false, true);
        worker_env = NULL;
    } else if (!strcmp(group, "split")) {
        test_split("lfm2moe-small-q4_k_m");
        test_split("qwen3moe-tiny-q4_k_m");
        /* A worker lost while both halves are out: the job fails cleanly, the next is exact. */
        split_batches = true;
        test_lost_worker(SIGKILL);
        split_batches = false;
    } else if (!strcmp(group, "placement")) {
        test_placement();
        test_replica_balance();
    } else if (!strcmp(group, "lost")) {
        test_lost_worker(SIGKILL);
        test_lost_worker(SIGSTOP);
    } else if (!strcmp(group, "restart")) {
        test_restart();
    } else if (!strcmp(group, "stream")) {
        test_stream();
    } else if (!strcmp(group, "refuse")) {
        test_refusals();
    } else if (!strcmp(group, "garbage")) {
        test_garbage();
    } else if (!strcmp(group, "curve")) {
        test_curve();
    } else if (!strcmp(group, "relayed")) {
        test_relayed();
    } else {
        fprintf(stderr, "cluster_test: unknown group '%s'\n", group);
        return 2;
    }
    printf("logs in %s\n", tmp_dir);
    return failures != 0;
}
