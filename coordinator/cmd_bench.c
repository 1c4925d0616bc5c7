/* coordinator/cmd_bench.c: `moepool bench`, llama-bench's measurements for moepool: prompt
 * processing (ppN), single-stream decode (tgN), aggregate decode of N concurrent sequences
 * (batchN, as llama-batched-bench's S_TG), peak RSS, and the decode memory roofline. Each test
 * runs -r times; the median is the figure, min and max show the noise. --json prints one object
 * per line and test, the format tools/llama/llama_bench prints too, for tools/bench_report.sh.
 * --cluster runs the same tests with the experts on workers (`moepool worker --join`) and adds
 * the expert traffic per token and MoE layer. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/log.h"
#include "commands.h"
#include "coordinator/bench_backend.h"
#include "coordinator/bench_model.h"
#include "coordinator/bench_probe.h"
#include "coordinator/bench_run.h"
#include "coordinator/cluster_args.h"
#include "kernels/kq.h"

#define BENCH_MAX_BATCHES 16
#define BENCH_MAX_REPS 100
/* Workers load their shards before the first test: minutes for a full-size model from disk. */
#define BENCH_CLUSTER_WAIT_MS (10 * 60 * 1000)

struct bench_args {
    const char *model;
    struct cluster_opts cluster; /* endpoint NULL: experts in-process */
    int threads, n_prompt, n_gen, tg_prompt, batch_prompt, batch_gen, reps, ubatch, probe_mib;
    int batch[BENCH_MAX_BATCHES], n_batch;
    bool json;
};

enum test_kind { TEST_PROMPT, TEST_DECODE };

struct bench_test {
    char name[32];
    enum test_kind kind;
    int n_seq, n_prompt, n_gen;
};

/* One test's outcome: per-repetition rates, the process's peak RSS once it ran, and (cluster)
 * the expert traffic of its repetitions per token and MoE layer. */
struct bench_result {
    double tok_s[BENCH_MAX_REPS], prompt_tok_s[BENCH_MAX_REPS];
    long long peak_rss;
    double bytes_per_token_layer;
};

/* What every line shares: the machine's and the model's side of the roofline. */
struct bench_env {
    const char *model_name;
    long long model_bytes;
    double read_bw;
    struct bench_bytes bytes;
};

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: moepool bench -m MODEL [-t THREADS] [-p 512] [-n 128] [--batch 1,8,32]\n"
        "                     [--batch-prompt 128] [--batch-gen 32] [--tg-prompt 16]\n"
        "                     [-r REPS] [--ubatch 512] [--probe-mib 512] [--json]\n" CLUSTER_USAGE(
            "                     ") "  -p 0, -n 0 or --batch '' skip that test; tok/s figures are "
                                     "medians of REPS runs\n");
}

/* "1,8,32" into a->batch; each count >= 1. */
static int parse_batches(const char *s, struct bench_args *a)
{
    a->n_batch = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096 || a->n_batch == BENCH_MAX_BATCHES ||
            (*end && *end != ','))
            return -1;
        a->batch[a->n_batch++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return 0;
}

/* A whole-string decimal in [lo, hi], or -1. */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_args(int argc, char **argv, struct bench_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"threads", required_argument, 0, 't'},
        {"n-prompt", required_argument, 0, 'p'},
        {"n-gen", required_argument, 0, 'n'},
        {"batch", required_argument, 0, 'B'},
        {"batch-prompt", required_argument, 0, 'P'},
        {"batch-gen", required_argument, 0, 'G'},
        {"tg-prompt", required_argument, 0, 'T'},
        {"reps", required_argument, 0, 'r'},
        {"ubatch", required_argument, 0, 'u'},
        {"probe-mib", required_argument, 0, 'M'},
        {"json", no_argument, 0, 'j'},
        {"help", no_argument, 0, 'h'},
        CLUSTER_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    *a = (struct bench_args){.threads = (int)sysconf(_SC_NPROCESSORS_ONLN),
                             .n_prompt = 512,
                             .n_gen = 128,
                             .tg_prompt = 16,
                             .batch_prompt = 128,
                             .batch_gen = 32,
                             .reps = 3,
                             .ubatch = 512,
                             .probe_mib = 512,
                             .batch = {1, 8, 32},
                             .n_batch = 3};
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:p:n:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 't': bad |= parse_int(optarg, 1, 1024, &a->threads); break;
        case 'p': bad |= parse_int(optarg, 0, 1 << 20, &a->n_prompt); break;
        case 'n': bad |= parse_int(optarg, 0, 1 << 20, &a->n_gen); break;
        case 'B': bad |= parse_batches(optarg, a); break;
        case 'P': bad |= parse_int(optarg, 1, 1 << 20, &a->batch_prompt); break;
        case 'G': bad |= parse_int(optarg, 1, 1 << 20, &a->batch_gen); break;
        case 'T': bad |= parse_int(optarg, 1, 1 << 20, &a->tg_prompt); break;
        case 'r': bad |= parse_int(optarg, 1, BENCH_MAX_REPS, &a->reps); break;
        case 'u': bad |= parse_int(optarg, 1, 1 << 16, &a->ubatch); break;
        case 'M': bad |= parse_int(optarg, 1, 1 << 20, &a->probe_mib); break;
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

/* The tests the arguments ask for, in llama-bench's order: pp, tg, then the batches. */
static int plan_tests(const struct bench_args *a, struct bench_test *t)
{
    int n = 0;
    if (a->n_prompt > 0) {
        t[n] = (struct bench_test){"", TEST_PROMPT, 1, a->n_prompt, 0};
        snprintf(t[n++].name, sizeof(t->name), "pp%d", a->n_prompt);
    }
    if (a->n_gen > 0) {
        t[n] = (struct bench_test){"", TEST_DECODE, 1, a->tg_prompt, a->n_gen};
        snprintf(t[n++].name, sizeof(t->name), "tg%d", a->n_gen);
    }
    for (int i = 0; i < a->n_batch; i++) {
        t[n] = (struct bench_test){"", TEST_DECODE, a->batch[i], a->batch_prompt, a->batch_gen};
        snprintf(t[n++].name, sizeof(t->name), "batch%d", a->batch[i]);
    }
    return n;
}

static long long peak_rss_bytes(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) ? -1 : (long long)ru.ru_maxrss * 1024; /* KiB on Linux */
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* Median of n values (the mean of the middle two for even n); v is left unchanged. */
static double median(const double *v, int n)
{
    double s[BENCH_MAX_REPS];
    memcpy(s, v, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static void min_max(const double *v, int n, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (int i = 1; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

/* JSON string body: quotes, backslashes and control characters escaped. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* Single-stream decode is what the memory roofline bounds. */
static bool has_roofline(const struct bench_test *t)
{
    return t->kind == TEST_DECODE && t->n_seq == 1;
}

static void print_json(const struct bench_args *a, const struct bench_env *e,
                       const struct bench_test *t, const struct bench_result *r)
{
    double lo, hi, roof = e->read_bw / e->bytes.per_token, med = median(r->tok_s, a->reps);
    min_max(r->tok_s, a->reps, &lo, &hi);
    printf("{\"engine\":\"moepool\",\"model\":");
    json_str(stdout, e->model_name);
    printf(",\"model_bytes\":%lld,\"threads\":%d,\"simd\":\"%s\",\"test\":\"%s\",\"n_seq\":%d,"
           "\"n_prompt\":%d,\"n_gen\":%d,\"reps\":%d,\"tokens_per_s\":%.3f,\"min\":%.3f,"
           "\"max\":%.3f,\"samples\":[",
           e->model_bytes, a->threads, kq_simd_name(), t->name, t->n_seq, t->n_prompt, t->n_gen,
           a->reps, med, lo, hi);
    for (int i = 0; i < a->reps; i++)
        printf("%s%.3f", i ? "," : "", r->tok_s[i]);
    printf("],\"peak_rss_bytes\":%lld,\"read_bw_bytes_per_s\":%.0f,"
           "\"decode_bytes_per_token\":%.0f",
           r->peak_rss, e->read_bw, e->bytes.per_token);
    if (t->kind == TEST_DECODE && t->n_seq > 1)
        printf(",\"prompt_tokens_per_s\":%.3f", median(r->prompt_tok_s, a->reps));
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
    printf("model %s (%.2f GiB), %d threads, %s kernels\n", e->model_name,
           (double)e->model_bytes / (1 << 30), a->threads, kq_simd_name());
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
    double lo, hi, med = median(r->tok_s, a->reps);
    char roof[16] = "", prompt[16] = "";
    min_max(r->tok_s, a->reps, &lo, &hi);
    if (has_roofline(t))
        snprintf(roof, sizeof(roof), "%.1f%%", 100 * med * e->bytes.per_token / e->read_bw);
    if (t->kind == TEST_DECODE && t->n_seq > 1) /* the batch's prompt phase, as S_PP */
        snprintf(prompt, sizeof(prompt), "%.2f", median(r->prompt_tok_s, a->reps));
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

static int run_test(struct bench_ctx *c, struct bench_backend *be, const struct bench_args *a,
                    const struct bench_test *t, struct bench_result *r, struct mp_error *err)
{
    uint64_t bytes0, tl0, bytes1, tl1;
    struct cluster_timing t0, t1;
    int rc = 0;
    bench_backend_traffic(be, &bytes0, &tl0);
    bench_backend_timing(be, &t0);
    for (int i = 0; i < a->reps && !rc; i++)
        rc = t->kind == TEST_PROMPT ? bench_prompt(c, t->n_prompt, &r->tok_s[i], err)
                                    : bench_decode(c, t->n_seq, t->n_prompt, t->n_gen,
                                                   &r->prompt_tok_s[i], &r->tok_s[i], err);
    r->peak_rss = peak_rss_bytes();
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
    struct bench_test tests[2 + BENCH_MAX_BATCHES];
    int n_tests = plan_tests(a, tests), n_seq_max, rc;
    int32_t n_ctx_max;
    test_limits(tests, n_tests, &n_seq_max, &n_ctx_max);
    s->tp = tp_new(a->threads);
    if (!s->tp)
        return mp_error_set(err, MP_ENOMEM, "cannot start %d threads", a->threads);
    if ((rc = bench_backend_open(&s->be, s->m, s->tp, a->ubatch, &a->cluster, BENCH_CLUSTER_WAIT_MS,
                                 err)) ||
        (rc = bench_ctx_init(&s->c, s->m, s->tp, &s->be.eb, a->ubatch, n_seq_max, n_ctx_max, err)))
        return rc;
    double warm;
    /* Warm-up, untimed: pages the weights in and the threads' caches up, as llama-bench does. */
    if ((rc = bench_prompt(&s->c, n_ctx_max < 32 ? n_ctx_max : 32, &warm, err)))
        return rc;
    if (!a->json)
        print_header(a, e);
    for (int i = 0; i < n_tests && !rc; i++) {
        struct bench_result r;
        if (!(rc = run_test(&s->c, &s->be, a, &tests[i], &r, err)))
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
    int rc = bench_read_bandwidth(a.threads, (size_t)a.probe_mib << 20, &e.read_bw, &err);
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
