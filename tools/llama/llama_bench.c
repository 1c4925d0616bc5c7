/* tools/llama/llama_bench.c: `moepool bench`'s measurements taken on llama.cpp (the prebuilt
 * shared libraries of the npm package node-llama-cpp) through its public C API, include/llama.h,
 * printing the same lines (--json: the same JSON objects, "engine":"llama.cpp"), so that
 * tools/bench_report.sh compares both engines on one file and thread count. Not part of the CMake
 * build and never linked into moepool; build.sh compiles it. See README.md.
 *
 *   llama_bench -m MODEL [-t 2] [-p 512] [-n 128] [--batch 1,8,32] [--batch-prompt 128]
 *               [--batch-gen 32] [--tg-prompt 16] [-r 3] [--ubatch 512] [--json]
 *               [--no-flash] [-v] [--backend-dir DIR]
 *
 * ppN: one batch of N random tokens (llama-bench's pp). tgN: N steps of one token after a
 * --tg-prompt prompt. batchN: N sequences get --batch-prompt tokens each in batches of --ubatch
 * tokens, then --batch-gen steps of one token per sequence (llama-batched-bench's S_TG). One
 * context per test, sized for it (a context for many sequences slows single-sequence decoding),
 * warmed up once; llama.cpp's defaults otherwise (mmap, CPU weight repacking, flash attention
 * auto, F16 KV cache, one KV stream per sequence). Exit status: 0, 1 when llama.cpp fails, 2 for
 * bad arguments. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "ggml-backend.h"
#include "harness.h"
#include "llama.h"

/* Where the CPU backend variants (libggml-cpu-*.so) live; build.sh sets it to the package's
 * directory. ggml_backend_load_all() would only look beside the executable. */
#ifndef LLAMA_BACKEND_DIR
#define LLAMA_BACKEND_DIR NULL
#endif

#define MAX_BATCHES 16
#define MAX_REPS 100

struct args {
    const char *model, *backend_dir;
    int threads, n_prompt, n_gen, tg_prompt, batch_prompt, batch_gen, reps, ubatch;
    int batch[MAX_BATCHES], n_batch;
    bool json, no_flash, verbose;
};

struct test {
    char name[32];
    bool prompt_only;
    int n_seq, n_prompt, n_gen;
};

struct result {
    double tok_s[MAX_REPS], prompt_tok_s[MAX_REPS];
    long long peak_rss;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: llama_bench -m MODEL [-t THREADS] [-p 512] [-n 128] [--batch 1,8,32]\n"
               "                   [--batch-prompt 128] [--batch-gen 32] [--tg-prompt 16]\n"
               "                   [-r REPS] [--ubatch 512] [--json] [--no-flash] [-v]\n"
               "                   [--backend-dir DIR]\n");
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_batches(const char *s, struct args *a)
{
    a->n_batch = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096 || a->n_batch == MAX_BATCHES || (*end && *end != ','))
            return -1;
        a->batch[a->n_batch++] = (int)v;
        s = *end ? end + 1 : end;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"threads", required_argument, 0, 't'},
        {"n-prompt", required_argument, 0, 'p'}, {"n-gen", required_argument, 0, 'n'},
        {"batch", required_argument, 0, 'B'}, {"batch-prompt", required_argument, 0, 'P'},
        {"batch-gen", required_argument, 0, 'G'}, {"tg-prompt", required_argument, 0, 'T'},
        {"reps", required_argument, 0, 'r'}, {"ubatch", required_argument, 0, 'u'},
        {"json", no_argument, 0, 'j'}, {"no-flash", no_argument, 0, 'F'},
        {"backend-dir", required_argument, 0, 'D'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *a = (struct args){.threads = 2, .n_prompt = 512, .n_gen = 128, .tg_prompt = 16,
                       .batch_prompt = 128, .batch_gen = 32, .reps = 3, .ubatch = 512,
                       .batch = {1, 8, 32}, .n_batch = 3, .backend_dir = LLAMA_BACKEND_DIR};
    int c, bad = 0;
    while ((c = getopt_long(argc, argv, "m:t:p:n:r:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 't': bad |= parse_int(optarg, 1, 1024, &a->threads); break;
        case 'p': bad |= parse_int(optarg, 0, 1 << 20, &a->n_prompt); break;
        case 'n': bad |= parse_int(optarg, 0, 1 << 20, &a->n_gen); break;
        case 'B': bad |= parse_batches(optarg, a); break;
        case 'P': bad |= parse_int(optarg, 1, 1 << 20, &a->batch_prompt); break;
        case 'G': bad |= parse_int(optarg, 1, 1 << 20, &a->batch_gen); break;
        case 'T': bad |= parse_int(optarg, 1, 1 << 20, &a->tg_prompt); break;
        case 'r': bad |= parse_int(optarg, 1, MAX_REPS, &a->reps); break;
        case 'u': bad |= parse_int(optarg, 1, 1 << 16, &a->ubatch); break;
        case 'j': a->json = true; break;
        case 'F': a->no_flash = true; break;
        case 'D': a->backend_dir = optarg; break;
        case 'v': a->verbose = true; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    return !bad && a->model && optind == argc ? 0 : -1;
}

static int plan_tests(const struct args *a, struct test *t)
{
    int n = 0;
    if (a->n_prompt > 0) {
        t[n] = (struct test){"", true, 1, a->n_prompt, 0};
        snprintf(t[n++].name, sizeof(t->name), "pp%d", a->n_prompt);
    }
    if (a->n_gen > 0) {
        t[n] = (struct test){"", false, 1, a->tg_prompt, a->n_gen};
        snprintf(t[n++].name, sizeof(t->name), "tg%d", a->n_gen);
    }
    for (int i = 0; i < a->n_batch; i++) {
        t[n] = (struct test){"", false, a->batch[i], a->batch_prompt, a->batch_gen};
        snprintf(t[n++].name, sizeof(t->name), "batch%d", a->batch[i]);
    }
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static long long peak_rss_bytes(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) ? -1 : (long long)ru.ru_maxrss * 1024; /* KiB on Linux */
}

/* The same LCG as moepool's coordinator/bench_run.c. */
struct feeder {
    struct llama_context *ctx;
    struct llama_batch b;
    int cap, n_vocab;
    uint32_t rng;
};

static int32_t random_token(struct feeder *f)
{
    f->rng = f->rng * 1664525u + 1013904223u;
    return (int32_t)((f->rng >> 8) % (uint32_t)f->n_vocab);
}

static int flush(struct feeder *f)
{
    int rc = f->b.n_tokens ? llama_decode(f->ctx, f->b) : 0;
    f->b.n_tokens = 0;
    return rc;
}

/* Adds one token of sequence seq, decoding the batch first when it is full. */
static int push(struct feeder *f, int seq, int pos, bool logits)
{
    if (f->b.n_tokens == f->cap && flush(f))
        return -1;
    int k = f->b.n_tokens++;
    f->b.token[k] = random_token(f);
    f->b.pos[k] = pos;
    f->b.n_seq_id[k] = 1;
    f->b.seq_id[k][0] = seq;
    f->b.logits[k] = logits;
    return 0;
}

static int prefill(struct feeder *f, int n_seq, int n_prompt)
{
    for (int s = 0; s < n_seq; s++)
        for (int i = 0; i < n_prompt; i++)
            if (push(f, s, i, i == n_prompt - 1))
                return -1;
    return flush(f);
}

/* One repetition of a test on a cleared context: the rates of the prompt and decode phases. */
static int run_once(struct feeder *f, const struct test *t, double *prompt_tok_s,
                    double *tok_s)
{
    llama_memory_clear(llama_get_memory(f->ctx), true);
    double t0 = now_s();
    int rc = prefill(f, t->n_seq, t->n_prompt);
    llama_synchronize(f->ctx);
    double t1 = now_s();
    for (int step = 0; step < t->n_gen && !rc; step++) {
        for (int s = 0; s < t->n_seq && !rc; s++)
            rc = push(f, s, t->n_prompt + step, true);
        if (!rc)
            rc = flush(f);
        llama_synchronize(f->ctx);
    }
    double t2 = now_s();
    *prompt_tok_s = (double)t->n_seq * t->n_prompt / (t1 - t0);
    *tok_s = t->prompt_only ? *prompt_tok_s : (double)t->n_seq * t->n_gen / (t2 - t1);
    return rc;
}

static struct llama_context *new_context(struct llama_model *m, const struct args *a,
                                         const struct test *t)
{
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(t->n_seq * (t->n_prompt + t->n_gen));
    cp.n_batch = (uint32_t)a->ubatch;
    cp.n_ubatch = (uint32_t)a->ubatch;
    cp.n_seq_max = (uint32_t)t->n_seq;
    cp.n_threads = a->threads;
    cp.n_threads_batch = a->threads;
    cp.flash_attn_type = a->no_flash ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
    cp.no_perf = true;
    return llama_init_from_model(m, cp);
}

static int run_test(struct llama_model *m, const struct args *a, const struct test *t,
                    struct result *r)
{
    struct feeder f = {.ctx = new_context(m, a, t), .cap = a->ubatch, .rng = 12345,
                       .n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m))};
    if (!f.ctx)
        return -1;
    f.b = llama_batch_init(a->ubatch, 0, 1);
    struct test warm = {"", true, 1, t->n_prompt < 32 ? t->n_prompt : 32, 0};
    double skip;
    int rc = run_once(&f, &warm, &skip, &skip); /* untimed: pages weights in, as llama-bench */
    for (int i = 0; i < a->reps && !rc; i++)
        rc = run_once(&f, t, &r->prompt_tok_s[i], &r->tok_s[i]);
    r->peak_rss = peak_rss_bytes();
    llama_batch_free(f.b);
    llama_free(f.ctx);
    return rc;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

static double median(const double *v, int n)
{
    double s[MAX_REPS];
    memcpy(s, v, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static void print_json(const struct args *a, const struct test *t, const struct result *r,
                       long long model_bytes)
{
    const char *slash = strrchr(a->model, '/'), *name = slash ? slash + 1 : a->model;
    double lo = r->tok_s[0], hi = r->tok_s[0];
    for (int i = 1; i < a->reps; i++) {
        lo = r->tok_s[i] < lo ? r->tok_s[i] : lo;
        hi = r->tok_s[i] > hi ? r->tok_s[i] : hi;
    }
    printf("{\"engine\":\"llama.cpp\",\"model\":\"");
    for (; *name; name++) /* JSON string: quotes, backslashes and controls escaped */
        (*name == '"' || *name == '\\') ? printf("\\%c", *name)
        : (unsigned char)*name < 0x20   ? printf("\\u%04x", *name)
                                        : putchar(*name);
    printf("\",\"model_bytes\":%lld,\"threads\":%d,\"flash\":\"%s\",\"test\":\"%s\","
           "\"n_seq\":%d,\"n_prompt\":%d,\"n_gen\":%d,\"reps\":%d,\"tokens_per_s\":%.3f,"
           "\"min\":%.3f,\"max\":%.3f,\"samples\":[",
           model_bytes, a->threads, a->no_flash ? "off" : "auto", t->name, t->n_seq,
           t->n_prompt, t->n_gen, a->reps, median(r->tok_s, a->reps), lo, hi);
    for (int i = 0; i < a->reps; i++)
        printf("%s%.3f", i ? "," : "", r->tok_s[i]);
    printf("],\"peak_rss_bytes\":%lld", r->peak_rss);
    if (!t->prompt_only && t->n_seq > 1)
        printf(",\"prompt_tokens_per_s\":%.3f", median(r->prompt_tok_s, a->reps));
    printf("}\n");
    fflush(stdout);
}

static void print_row(const struct args *a, const struct test *t, const struct result *r)
{
    double lo = r->tok_s[0], hi = r->tok_s[0];
    for (int i = 1; i < a->reps; i++) {
        lo = r->tok_s[i] < lo ? r->tok_s[i] : lo;
        hi = r->tok_s[i] > hi ? r->tok_s[i] : hi;
    }
    printf("%-10s %10.2f %10.2f %10.2f %8.2f GB\n", t->name, median(r->tok_s, a->reps), lo, hi,
           (double)r->peak_rss / 1e9);
    fflush(stdout);
}

static int run_all(struct llama_model *m, const struct args *a)
{
    struct test tests[2 + MAX_BATCHES];
    int n = plan_tests(a, tests);
    struct stat sb;
    long long model_bytes = stat(a->model, &sb) ? -1 : (long long)sb.st_size;
    if (!a->json)
        printf("llama.cpp, %d threads, ubatch %d, flash %s\n%-10s %10s %10s %10s %11s\n",
               a->threads, a->ubatch, a->no_flash ? "off" : "auto", "test", "tok/s", "min",
               "max", "peak RSS");
    for (int i = 0; i < n; i++) {
        struct result r;
        if (run_test(m, a, &tests[i], &r)) {
            fprintf(stderr, "llama_bench: %s: llama.cpp failed (run with -v)\n", tests[i].name);
            return 1;
        }
        a->json ? print_json(a, &tests[i], &r, model_bytes) : print_row(a, &tests[i], &r);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    struct llama_model *m = harness_open("llama_bench", a.model, a.backend_dir, a.verbose);
    if (!m)
        return 1;
    int rc = run_all(m, &a);
    harness_close(m);
    return rc;
}
