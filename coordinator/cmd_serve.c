/* coordinator/cmd_serve.c: `moepool serve`: loads a model, starts the continuous-batching engine
 * and the OpenAI-compatible HTTP API, and runs until SIGINT or SIGTERM. Shutdown ends running
 * requests with an error event, waits for connections to close, then frees everything. */
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "commands.h"
#include "coordinator/cluster.h"
#include "coordinator/cluster_args.h"
#include "coordinator/eb_stats.h"
#include "coordinator/openai.h"
#include "coordinator/routing_stats.h"
#include "kernels/kq.h"
#include "model/arch.h"
#include "model/repack.h"

struct serve_args {
    const char *model, *host, *api_key, *alias, *stats_path;
    struct cluster_opts cluster;
    int port, threads, queue;
    struct engine_config engine;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: moepool serve -m MODEL [--host 127.0.0.1] [--port 8080] [-np SLOTS]\n"
               "                     [-c CTX] [-t THREADS] [--api-key KEY] [--queue N]\n"
               "                     [--step-tokens N] [--alias NAME] [--routing-stats "
               "FILE]\n" CLUSTER_USAGE("                     "));
}

static int parse_args(int argc, char **argv, struct serve_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"host", required_argument, 0, 'H'},
        {"port", required_argument, 0, 'p'},
        {"np", required_argument, 0, 'N'},
        {"parallel", required_argument, 0, 'N'},
        {"ctx-size", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 't'},
        {"api-key", required_argument, 0, 'k'},
        {"queue", required_argument, 0, 'q'},
        {"step-tokens", required_argument, 0, 's'},
        {"alias", required_argument, 0, 'a'},
        {"routing-stats", required_argument, 0, 'r'},
        CLUSTER_LONG_OPTIONS,
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *a = (struct serve_args){.host = "127.0.0.1", .port = 8080, .engine = engine_config_defaults()};
    a->engine.n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    optind = 1;
    int c;
    /* getopt_long_only so llama.cpp's single-dash "-np 4" works as well as "--np 4" */
    while ((c = getopt_long_only(argc, argv, "m:c:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'H': a->host = optarg; break;
        case 'p': a->port = atoi(optarg); break;
        case 'N': a->engine.n_slots = atoi(optarg); break;
        case 'c': a->engine.n_ctx = atoi(optarg); break;
        case 't': a->engine.n_threads = atoi(optarg); break;
        case 'k': a->api_key = optarg; break;
        case 'q': a->engine.queue_max = atoi(optarg); break;
        case 's': a->engine.step_tokens = atoi(optarg); break;
        case 'a': a->alias = optarg; break;
        case 'r': a->stats_path = optarg; break;
        case 'h': usage(stdout); exit(0);
        default:
            if (cluster_arg(c, optarg, &a->cluster) <= 0)
                return -1;
        }
    }
    if (a->engine.step_tokens < a->engine.n_slots)
        a->engine.step_tokens = a->engine.n_slots;
    if (cluster_args_check(&a->cluster))
        return -1;
    return a->model && optind == argc ? 0 : -1;
}

/* The name clients use: --alias, else the file name without its directory and ".gguf". */
static void model_id(const struct serve_args *a, char *out, size_t n)
{
    if (a->alias) {
        snprintf(out, n, "%s", a->alias);
        return;
    }
    char *copy = strdup(a->model);
    snprintf(out, n, "%s", copy ? basename(copy) : a->model);
    free(copy);
    size_t len = strlen(out);
    if (len > 5 && !strcmp(out + len - 5, ".gguf"))
        out[len - 5] = 0;
}

static enum chat_format detect_format(const struct model *m)
{
    struct gguf_str tmpl = {"", 0};
    bool fallback = false;
    struct mp_error err = {0};
    gguf_get_str(m->gguf, "tokenizer.chat_template", &tmpl, &err);
    enum chat_format f = chat_detect(tmpl.ptr, (size_t)tmpl.len, &fallback);
    if (fallback)
        fprintf(stderr, "moepool serve: warning: chat template not recognised, using ChatML\n");
    return f;
}

struct serve {
    struct routing_stats *stats;
    struct model *m;
    struct tok_vocab *v;
    struct tp_pool *tp;
    struct cluster *cluster;
    struct expert_backend eb; /* eb_stats around the cluster's backend (--cluster only) */
    struct engine *e;
    struct openai_server *api;
    struct http_server *http;
};

/* /metrics lines: tokens routed per MoE layer and activations per layer and expert. */
static void routing_metrics(FILE *f, struct routing_stats *st)
{
    pthread_mutex_lock(&st->lock);
    fprintf(f, "# HELP moepool_routed_tokens_total Tokens routed, per MoE layer.\n"
               "# TYPE moepool_routed_tokens_total counter\n");
    for (int l = 0; l < st->n_moe_layers; l++)
        fprintf(f, "moepool_routed_tokens_total{layer=\"%d\"} %llu\n", l,
                (unsigned long long)st->tokens[l]);
    fprintf(f, "# HELP moepool_expert_activations_total Tokens that chose an expert, per MoE "
               "layer and expert.\n# TYPE moepool_expert_activations_total counter\n");
    for (int l = 0; l < st->n_moe_layers; l++)
        for (int e = 0; e < st->n_expert; e++)
            fprintf(f, "moepool_expert_activations_total{layer=\"%d\",expert=\"%d\"} %llu\n", l, e,
                    (unsigned long long)rstats_count(st, l, e));
    pthread_mutex_unlock(&st->lock);
}

/* /metrics lines for --cluster: workers ready and each worker's round-trip latency and jobs. */
static void cluster_metrics(FILE *f, struct cluster *c)
{
    static struct cluster_status st; /* large; /metrics requests are serialised below */
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    cluster_status(c, &st);
    fprintf(f,
            "# HELP moepool_cluster_workers_ready Workers joined with their experts loaded.\n"
            "# TYPE moepool_cluster_workers_ready gauge\nmoepool_cluster_workers_ready %d\n"
            "# HELP moepool_cluster_bytes_per_token_layer Expert traffic per token and MoE "
            "layer.\n# TYPE moepool_cluster_bytes_per_token_layer gauge\n"
            "moepool_cluster_bytes_per_token_layer %.17g\n",
            st.ready, st.bytes_per_token_layer);
    fprintf(f, "# HELP moepool_worker_rtt_ms_mean Mean job round trip per worker (with its "
               "compute).\n# TYPE moepool_worker_rtt_ms_mean gauge\n");
    for (int i = 0; i < st.expect_workers; i++)
        fprintf(f, "moepool_worker_rtt_ms_mean{worker=\"%d\"} %.17g\n", i, st.w[i].rtt_ms_mean);
    fprintf(f, "# HELP moepool_worker_jobs_total Expert jobs per worker.\n"
               "# TYPE moepool_worker_jobs_total counter\n");
    for (int i = 0; i < st.expect_workers; i++)
        fprintf(f, "moepool_worker_jobs_total{worker=\"%d\"} %llu\n", i,
                (unsigned long long)st.w[i].jobs);
    pthread_mutex_unlock(&mu);
}

static void serve_metrics(void *ctx, FILE *f)
{
    struct serve *s = ctx;
    routing_metrics(f, s->stats);
    if (s->cluster)
        cluster_metrics(f, s->cluster);
}

/* --cluster: the engine's backend is the cluster's, recording routing like the in-process one.
 * The cluster's local shard shares the engine's threads. Serving starts at once; wait_cluster
 * then holds requests back (503, and /health says why) until every worker is ready. */
static int start_cluster(struct serve *s, const struct serve_args *a, struct mp_error *err)
{
    struct cluster_opts o = a->cluster;
    o.n_max = a->engine.step_tokens;
    o.local_tp = s->tp;
    int rc = cluster_start(s->m, &o, &s->cluster, err);
    if (!rc)
        rc = eb_stats_new(s->m, cluster_backend(s->cluster), s->stats, &s->eb, err);
    return rc;
}

/* openai_config.ready: requests wait for a complete cluster (loading, or a worker lost). */
static bool cluster_ready(void *ctx, char *why, size_t n)
{
    struct serve *s = ctx;
    if (!s->cluster)
        return true;
    struct cluster_status st;
    cluster_status(s->cluster, &st);
    if (!st.all_ready)
        snprintf(why, n, "the cluster is not ready: %d of %d workers joined, %d ready", st.joined,
                 st.expect_workers, st.ready);
    return st.all_ready;
}

/* Prints the cluster's progress until every worker is ready; a stop signal ends the wait
 * (returns the signal, else 0). */
static int wait_cluster(struct serve *s, const sigset_t *stop_sigs)
{
    fprintf(stderr, "moepool serve: waiting for the workers (/health answers 503 until ready)\n");
    int last = -1;
    for (;;) {
        struct cluster_status st;
        cluster_status(s->cluster, &st);
        if (st.all_ready)
            break;
        if (st.ready * 1000 + st.joined != last)
            fprintf(stderr, "moepool serve: %d of %d workers joined, %d ready\n", st.joined,
                    st.expect_workers, st.ready);
        last = st.ready * 1000 + st.joined;
        struct timespec poll = {0, 200 * 1000000L};
        int sig = sigtimedwait(stop_sigs, NULL, &poll);
        if (sig > 0)
            return sig;
    }
    fprintf(stderr, "moepool serve: all workers ready\n");
    return 0;
}

static int start(struct serve *s, const struct serve_args *a, const char *id, struct mp_error *err)
{
    int rc = model_open(a->model, &s->m, err);
    if (!rc)
        rc = tok_load(s->m->gguf, &s->v, err);
    if (!rc)
        rc = rstats_new(s->m->arch->name, s->m->n_moe_layers, (int)s->m->hp.n_expert, &s->stats,
                        err);
    if (!rc && !(s->tp = tp_new(a->engine.n_threads)))
        rc = mp_error_set(err, MP_ENOMEM, "cannot start %d threads", a->engine.n_threads);
    if (!rc && a->cluster.endpoint)
        rc = start_cluster(s, a, err);
    struct engine_config ec = a->engine;
    ec.routing_stats = s->stats;
    ec.tp = s->tp;
    if (!rc)
        rc = engine_new(s->m, s->v, s->cluster ? &s->eb : NULL, &ec, &s->e, err);
    if (rc)
        return rc;
    struct openai_config oc = {.engine = s->e,
                               .model_id = id,
                               .chat = detect_format(s->m),
                               .api_key = a->api_key,
                               .metrics_extra = serve_metrics,
                               .metrics_ctx = s,
                               .ready = cluster_ready,
                               .ready_ctx = s};
    if ((rc = openai_new(&oc, &s->api, err)))
        return rc;
    return http_start(a->host, a->port, openai_handle, s->api, &s->http, err);
}

static void stop(struct serve *s, const char *stats_path)
{
    engine_stop(s->e); /* wakes every waiting connection with an error */
    http_stop(s->http);
    openai_free(s->api);
    engine_free(s->e);
    eb_free(&s->eb);
    cluster_stop(s->cluster);
    tp_free(s->tp);
    tok_free(s->v);
    model_close(s->m);
    struct mp_error err = {0};
    if (s->stats && stats_path && rstats_save(s->stats, stats_path, &err))
        fprintf(stderr, "moepool serve: %s\n", err.msg);
    rstats_free(s->stats);
}

int cmd_serve(int argc, char **argv)
{
    struct serve_args a;
    if (parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    /* Block the stop signals in every thread (they inherit the mask); main takes them with
     * sigwait, so no handler runs in the middle of a step. */
    sigset_t stop_sigs;
    sigemptyset(&stop_sigs);
    sigaddset(&stop_sigs, SIGINT);
    sigaddset(&stop_sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_sigs, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that hangs up must not kill the server */
    kq_init();
    char id[256];
    model_id(&a, id, sizeof(id));
    struct serve s = {0};
    struct mp_error err = {0};
    int rc = start(&s, &a, id, &err);
    if (rc) {
        fprintf(stderr, "moepool serve: %s\n", err.msg);
        stop(&s, a.stats_path);
        return rc == MP_ENOMEM || rc == MP_EIO ? 1 : 2;
    }
    char layout[160];
    repack_summary(s.m, layout, sizeof(layout));
    mp_info("serve: weights in the %s", layout);
    printf("moepool serve: model '%s' on http://%s:%d (%d slots, context %d, %d threads, %s "
           "kernels)\n",
           id, a.host, http_port(s.http), a.engine.n_slots, (int)a.engine.n_ctx, a.engine.n_threads,
           kq_simd_name());
    fflush(stdout);
    int sig = s.cluster ? wait_cluster(&s, &stop_sigs) : 0;
    if (!sig)
        sigwait(&stop_sigs, &sig);
    fprintf(stderr, "moepool serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    stop(&s, a.stats_path);
    return 0;
}
