/* coordinator/cmd_bench.c: `moepool bench`, llama-bench's measurements for moepool: prompt
 * processing (ppN), single-stream decode (tgN), aggregate decode of N concurrent sequences
 * (batchN, as llama-batched-bench's S_TG), peak RSS, and the decode memory roofline. Each test
 * runs -r times; the median is the figure, min and max show the noise. --json prints one object
 * per line and test, the format tools/llama/llama_bench prints too, for tools/bench_report.sh.
 * --cluster runs the same tests with the experts on workers (`moepool worker --join`) and adds
 * the expert traffic per token and MoE layer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "commands.h"
#include "coordinator/bench_backend.h"
#include "coordinator/bench_model.h"
#include "coordinator/bench_plan.h"
#include "coordinator/bench_probe.h"
#include "coordinator/bench_run.h"
#include "coordinator/cluster_args.h"
#include "kernels/kq.h"
#include "model/repack.h"

/* Workers load their shards before the first test: minutes for a full-size model from disk. */
#define BENCH_CLUSTER_WAIT_MS (10 * 60 * 1000)

struct bench_args {
    const char *model;
    struct cluster_opts cluster; /* endpoint NULL: experts in-process */
    struct bench_shape shape;
    int probe_mib;
    bool json;
};

/* One test's outcome: per-repetition rates, the process's peak RSS once it ran, and (cluster)
 * the expert traffic of its repetitions per token and MoE layer. */
struct bench_result {
    double tok_s[BENCH_MAX_REPS], prompt_tok_s[BENCH_MAX_REPS];
    long long peak_rss;
    double bytes_per_token_layer;
    double read_bw; /* the roofline's bandwidth for this test (see probe_around) */
};

/* What every line shares: the machine's and the model's side of the roofline. */
struct bench_env {
    const char *model_name;
    long long model_bytes;
    double read_bw;
    struct bench_bytes bytes;
    char layout[160]; /* how the weights are held (repack_summary) */
};

#define BENCH_INDENT "                     "

static void usage(FILE *f)
{
    fputs("usage: moepool bench -m MODEL\n" BENCH_SHAPE_USAGE(BENCH_INDENT)
              BENCH_INDENT "[--probe-mib 512] [--json]\n" CLUSTER_USAGE(BENCH_INDENT)
          "  -p 0, -n 0 or --batch '' skip that test; tok/s figures are medians of REPS runs\n",
          f);
}

static int parse_args(int argc, char **argv, struct bench_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        BENCH_SHAPE_LONG_OPTIONS,
        {"probe-mib", required_argument, 0, 'M'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        CLUSTER_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    *a = (struct bench_args){.probe_mib = 512};
    bench_shape_defaults(&a->shape, (int)sysconf(_SC_NPROCESSORS_ONLN));
    int c, bad = 0, shape;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:" BENCH_SHAPE_SHORT "h", opts, NULL)) != -1) {
        if ((shape = bench_shape_option(c, optarg, &a->shape))) {
            bad |= shape < 0;
            continue;
        }
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'M': bad |= bench_parse_int(optarg, 1, 1 << 20, &a->probe_mib); break;
        case 'j': a->json = true; break;
        case 'h': usage(stdout); exit(0);
        default:
            if (cluster_arg(c, optarg, &a->cluster) <= 0)
                return -1;
        }
    }
    if (cluster_args_check(&a->cluster))
        return -1;
    return !bad && a->model && optind == argc ? 0 : -1;
}

/* Single-stream decode is what the memory roofline bounds. */
static bool has_roofline(const struct bench_test *t)
{
    return t->kind == BENCH_DECODE && t->n_seq == 1;
}

static void print_json(const struct bench_args *a, const struct bench_env *e,
                       const struct bench_test *t, const struct bench_result *r)
{
    double lo, hi, roof = r->read_bw / e->bytes.per_token, med = bench_median(r->tok_s, a->shape.reps);
    bench_min_max(r->tok_s, a->shape.reps, &lo, &hi);
    printf("{\"engine\":\"moepool\",\"model\":\"");
    bench_json_str(stdout, e->model_name);
    printf("\",\"model_bytes\":%lld,\"threads\":%d,\"simd\":\"%s\",\"layout\":\"%s\","
           "\"test\":\"%s\",\"n_seq\":%d,\"n_prompt\":%d,\"n_gen\":%d,\"reps\":%d,"
           "\"tokens_per_s\":%.3f,\"min\":%.3f,\"max\":%.3f,\"samples\":[",
           e->model_bytes, a->shape.threads, kq_simd_name(), repack_layout_name(), t->name,
           t->n_seq, t->n_prompt, t->n_gen, a->shape.reps, med, lo, hi);
    for (int i = 0; i < a->shape.reps; i++)
        printf("%s%.3f", i ? "," : "", r->tok_s[i]);
    printf("],\"peak_rss_bytes\":%lld,\"read_bw_bytes_per_s\":%.0f,"
           "\"decode_bytes_per_token\":%.0f",
           r->peak_rss, r->read_bw, e->bytes.per_token);
    if (t->kind == BENCH_DECODE && t->n_seq > 1)
        printf(",\"prompt_tokens_per_s\":%.3f", bench_median(r->prompt_tok_s, a->shape.reps));
    if (has_roofline(t))
        printf(",\"roofline_tokens_per_s\":%.3f,\"roofline_pct\":%.2f", roof, 100 * med / roof);
    if (a->cluster.endpoint)
        printf(",\"cluster_workers\":%d,\"wire\":\"%s\",\"local_shard\":%s,"
               "\"bytes_per_token_layer\":%.1f",
               a->cluster.expect_workers, wire_name(a->cluster.wire),
               a->cluster.local_shard ? "true" : "false", r->bytes_per_token_layer);
    printf("}\n");
    fflush(stdout); /* one line per test as it ends: progress for whoever reads the pipe */
}

static void print_header(const struct bench_args *a, const struct bench_env *e)
{
    printf("model %s (%.2f GiB), %d threads, %s kernels, %s\n", e->model_name,
           (double)e->model_bytes / (1 << 30), a->shape.threads, kq_simd_name(), e->layout);
    printf("read bandwidth %.1f GB/s; a decode token reads %.3f GB (dense %.3f, head %.3f, "
           "experts %.3f of %.3f): roofline %.1f tok/s\n",
           e->read_bw / 1e9, e->bytes.per_token / 1e9, (double)e->bytes.dense / 1e9,
           (double)e->bytes.head / 1e9, (e->bytes.per_token - e->bytes.dense - e->bytes.head) / 1e9,
           (double)e->bytes.experts / 1e9, e->read_bw / e->bytes.per_token);
    if (a->cluster.endpoint)
        printf("experts on %d workers at %s (%s activations%s)\n", a->cluster.expect_workers,
               a->cluster.endpoint, wire_name(a->cluster.wire),
               a->cluster.local_shard ? ", a share in this process" : "");
    printf("%-10s %10s %10s %10s %9s %10s %11s%s\n", "test", "tok/s", "min", "max", "roofline",
           "peak RSS", "prompt t/s", a->cluster.endpoint ? "  B/token/layer" : "");
}

static void print_row(const struct bench_args *a, const struct bench_env *e,
                      const struct bench_test *t, const struct bench_result *r)
{
    double lo, hi, med = bench_median(r->tok_s, a->shape.reps);
    char roof[16] = "", prompt[16] = "";
    bench_min_max(r->tok_s, a->shape.reps, &lo, &hi);
    if (has_roofline(t))
        snprintf(roof, sizeof(roof), "%.1f%%", 100 * med * e->bytes.per_token / r->read_bw);
    if (t->kind == BENCH_DECODE && t->n_seq > 1) /* the batch's prompt phase, as S_PP */
        snprintf(prompt, sizeof(prompt), "%.2f", bench_median(r->prompt_tok_s, a->shape.reps));
    printf("%-10s %10.2f %10.2f %10.2f %9s %8.2f GB %11s", t->name, med, lo, hi, roof,
           (double)r->peak_rss / 1e9, prompt);
    if (a->cluster.endpoint)
        printf(" %15.0f", r->bytes_per_token_layer);
    printf("\n");
    fflush(stdout);
}

/* Where the cluster's time went during one test (t1 - t0), on stderr. */
static void log_timing(const char *test, const struct cluster_timing *t0,
                       const struct cluster_timing *t1, int n_workers)
{
    struct cluster_timing d = {
        .jobs = t1->jobs - t0->jobs, .send_us = t1->send_us - t0->send_us,
        .wait_us = t1->wait_us - t0->wait_us, .worker_us = t1->worker_us - t0->worker_us,
        .sum_us = t1->sum_us - t0->sum_us, .slots_max = t1->slots_max - t0->slots_max,
        .slots_total = t1->slots_total - t0->slots_total};
    char line[256];
    cluster_timing_format(&d, n_workers, line, sizeof(line));
    mp_info("bench %s: %s", test, line);
}

/* A shared machine's memory bandwidth moves with the minute (this VM's probe read 35 GB/s in some
 * minutes and 60 in others), so a single-stream decode test is compared with probes taken just
 * before and just after it, not with the one at start-up: the roofline is their mean. */
static int probe_around(const struct bench_args *a, double before, double *bw,
                        struct mp_error *err)
{
    double after;
    int rc = bench_read_bandwidth(a->shape.threads, (size_t)a->probe_mib << 20, &after, err);
    if (!rc)
        *bw = 0.5 * (before + after);
    return rc;
}

static int run_test(struct bench_ctx *c, struct bench_backend *be, const struct bench_args *a,
                    const struct bench_env *e, const struct bench_test *t,
                    struct bench_result *r, struct mp_error *err)
{
    uint64_t bytes0, tl0, bytes1, tl1;
    struct cluster_timing t0, t1;
    double before = e->read_bw;
    int rc = 0;
    r->read_bw = e->read_bw;
    if (has_roofline(t))
        rc = bench_read_bandwidth(a->shape.threads, (size_t)a->probe_mib << 20, &before, err);
    bench_backend_traffic(be, &bytes0, &tl0);
    bench_backend_timing(be, &t0);
    for (int i = 0; i < a->shape.reps && !rc; i++)
        rc = t->kind == BENCH_PROMPT ? bench_prompt(c, t->n_prompt, &r->tok_s[i], err)
                                    : bench_decode(c, t->n_seq, t->n_prompt, t->n_gen,
                                                   &r->prompt_tok_s[i], &r->tok_s[i], err);
    r->peak_rss = bench_peak_rss();
    if (!rc && has_roofline(t))
        rc = probe_around(a, before, &r->read_bw, err);
    bench_backend_traffic(be, &bytes1, &tl1);
    r->bytes_per_token_layer = tl1 > tl0 ? (double)(bytes1 - bytes0) / (double)(tl1 - tl0) : 0;
    bench_backend_timing(be, &t1);
    if (t1.jobs > t0.jobs)
        log_timing(t->name, &t0, &t1, a->cluster.expect_workers);
    return rc;
}

/* Sizes every buffer for the largest test, so the timed loops never allocate scratch. */
static void test_limits(const struct bench_test *t, int n, int *n_seq_max, int32_t *n_ctx_max)
{
    *n_seq_max = 1;
    *n_ctx_max = 1;
    for (int i = 0; i < n; i++) {
        *n_seq_max = t[i].n_seq > *n_seq_max ? t[i].n_seq : *n_seq_max;
        int32_t len = t[i].n_prompt + t[i].n_gen;
        *n_ctx_max = len > *n_ctx_max ? len : *n_ctx_max;
    }
}

struct bench_session {
    struct model *m;
    struct tp_pool *tp;
    struct bench_backend be;
    struct bench_ctx c;
};

static int run_all(const struct bench_args *a, struct bench_session *s, struct bench_env *e,
                   struct mp_error *err)
{
    struct bench_test tests[BENCH_MAX_TESTS];
    int n_tests = bench_plan(&a->shape, tests), n_seq_max, rc;
    int32_t n_ctx_max;
    test_limits(tests, n_tests, &n_seq_max, &n_ctx_max);
    s->tp = tp_new(a->shape.threads);
    if (!s->tp)
        return mp_error_set(err, MP_ENOMEM, "cannot start %d threads", a->shape.threads);
    if ((rc = bench_backend_open(&s->be, s->m, s->tp, a->shape.ubatch, &a->cluster, BENCH_CLUSTER_WAIT_MS,
                                 err)) ||
        (rc = bench_ctx_init(&s->c, s->m, s->tp, &s->be.eb, a->shape.ubatch, n_seq_max, n_ctx_max, err)))
        return rc;
    double warm;
    /* Warm-up, untimed: pages the weights in and the threads' caches up, as llama-bench does. */
    if ((rc = bench_prompt(&s->c, n_ctx_max < 32 ? n_ctx_max : 32, &warm, err)))
        return rc;
    if (!a->json) {
        repack_summary(s->m, e->layout, sizeof(e->layout));
        print_header(a, e);
    }
    for (int i = 0; i < n_tests && !rc; i++) {
        struct bench_result r;
        if (!(rc = run_test(&s->c, &s->be, a, e, &tests[i], &r, err)))
            a->json ? print_json(a, e, &tests[i], &r) : print_row(a, e, &tests[i], &r);
    }
    return rc;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int cmd_bench(int argc, char **argv)
{
    struct bench_args a;
    struct bench_session s = {0};
    struct bench_env e = {0};
    struct mp_error err = {0};
    if (parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    kq_init();
    /* The probe first, while the process is small; it runs in a child of its own anyway. */
    int rc = bench_read_bandwidth(a.shape.threads, (size_t)a.probe_mib << 20, &e.read_bw, &err);
    if (rc) {
        fprintf(stderr, "moepool bench: %s\n", err.msg);
        return 1;
    }
    rc = model_open(a.model, &s.m, &err);
    if (!rc) {
        e.model_name = base_name(a.model);
        e.model_bytes = (long long)s.m->gguf->size;
        e.bytes = bench_decode_bytes(s.m);
        rc = run_all(&a, &s, &e, &err);
    }
    bench_ctx_free(&s.c);
    bench_backend_close(&s.be);
    tp_free(s.tp);
    model_close(s.m);
    if (rc) {
        fprintf(stderr, "moepool bench: %s\n", err.msg);
        return rc == MP_ENOMEM ? 1 : 2; /* as `moepool run`: a bad file or option is input */
    }
    return 0;
}
