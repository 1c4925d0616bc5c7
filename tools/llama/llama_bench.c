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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "coordinator/bench_plan.h"
#include "ggml-backend.h"
#include "harness.h"
#include "llama.h"

/* Where the CPU backend variants (libggml-cpu-*.so) live; build.sh sets it to the package's
 * directory. ggml_backend_load_all() would only look beside the executable. */
#ifndef LLAMA_BACKEND_DIR
#define LLAMA_BACKEND_DIR NULL
#endif

struct args {
    const char *model, *backend_dir;
    struct bench_shape shape;
    bool json, no_flash, verbose;
};

struct result {
    double tok_s[BENCH_MAX_REPS], prompt_tok_s[BENCH_MAX_REPS];
    long long peak_rss;
};

#define INDENT "                   "

static void usage(FILE *f)
{
    fputs("usage: llama_bench -m MODEL\n" BENCH_SHAPE_USAGE(INDENT)
              INDENT "[--json] [--no-flash] [-v] [--backend-dir DIR]\n",
          f);
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        BENCH_SHAPE_LONG_OPTIONS,
        {"json", no_argument, 0, 'j'},
        {"no-flash", no_argument, 0, 'F'},
        {"backend-dir", required_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *a = (struct args){.backend_dir = LLAMA_BACKEND_DIR};
    bench_shape_defaults(&a->shape, 2);
    int c, bad = 0, shape;
    while ((c = getopt_long(argc, argv, "m:" BENCH_SHAPE_SHORT "vh", opts, NULL)) != -1) {
        if ((shape = bench_shape_option(c, optarg, &a->shape))) {
            bad |= shape < 0;
            continue;
        }
        switch (c) {
        case 'm': a->model = optarg; break;
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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
static int run_once(struct feeder *f, const struct bench_test *t, double *prompt_tok_s,
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
    *tok_s = t->kind == BENCH_PROMPT ? *prompt_tok_s : (double)t->n_seq * t->n_gen / (t2 - t1);
    return rc;
}

static struct llama_context *new_context(struct llama_model *m, const struct args *a,
                                         const struct bench_test *t)
{
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(t->n_seq * (t->n_prompt + t->n_gen));
    cp.n_batch = (uint32_t)a->shape.ubatch;
    cp.n_ubatch = (uint32_t)a->shape.ubatch;
    cp.n_seq_max = (uint32_t)t->n_seq;
    cp.n_threads = a->shape.threads;
    cp.n_threads_batch = a->shape.threads;
    cp.flash_attn_type = a->no_flash ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
    cp.no_perf = true;
    return llama_init_from_model(m, cp);
}

static int run_test(struct llama_model *m, const struct args *a, const struct bench_test *t,
                    struct result *r)
{
    struct feeder f = {.ctx = new_context(m, a, t), .cap = a->shape.ubatch, .rng = 12345,
                       .n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m))};
    if (!f.ctx)
        return -1;
    f.b = llama_batch_init(a->shape.ubatch, 0, 1);
    struct bench_test warm = {"", BENCH_PROMPT, 1, t->n_prompt < 32 ? t->n_prompt : 32, 0};
    double skip;
    int rc = run_once(&f, &warm, &skip, &skip); /* untimed: pages weights in, as llama-bench */
    for (int i = 0; i < a->shape.reps && !rc; i++)
        rc = run_once(&f, t, &r->prompt_tok_s[i], &r->tok_s[i]);
    r->peak_rss = bench_peak_rss();
    llama_batch_free(f.b);
    llama_free(f.ctx);
    return rc;
}

static void print_json(const struct args *a, const struct bench_test *t, const struct result *r,
                       long long model_bytes)
{
    const char *slash = strrchr(a->model, '/'), *name = slash ? slash + 1 : a->model;
    double lo, hi;
    bench_min_max(r->tok_s, a->shape.reps, &lo, &hi);
    printf("{\"engine\":\"llama.cpp\",\"model\":\"");
    bench_json_str(stdout, name);
    printf("\",\"model_bytes\":%lld,\"threads\":%d,\"flash\":\"%s\",\"test\":\"%s\","
           "\"n_seq\":%d,\"n_prompt\":%d,\"n_gen\":%d,\"reps\":%d,\"tokens_per_s\":%.3f,"
           "\"min\":%.3f,\"max\":%.3f,\"samples\":[",
           model_bytes, a->shape.threads, a->no_flash ? "off" : "auto", t->name, t->n_seq,
           t->n_prompt, t->n_gen, a->shape.reps, bench_median(r->tok_s, a->shape.reps), lo, hi);
    for (int i = 0; i < a->shape.reps; i++)
        printf("%s%.3f", i ? "," : "", r->tok_s[i]);
    printf("],\"peak_rss_bytes\":%lld", r->peak_rss);
    if (t->kind == BENCH_DECODE && t->n_seq > 1)
        printf(",\"prompt_tokens_per_s\":%.3f", bench_median(r->prompt_tok_s, a->shape.reps));
    printf("}\n");
    fflush(stdout);
}

static void print_row(const struct args *a, const struct bench_test *t, const struct result *r)
{
    double lo, hi;
    bench_min_max(r->tok_s, a->shape.reps, &lo, &hi);
    printf("%-10s %10.2f %10.2f %10.2f %8.2f GB\n", t->name,
           bench_median(r->tok_s, a->shape.reps), lo, hi, (double)r->peak_rss / 1e9);
    fflush(stdout);
}

static int run_all(struct llama_model *m, const struct args *a)
{
    struct bench_test tests[BENCH_MAX_TESTS];
    int n = bench_plan(&a->shape, tests);
    struct stat sb;
    long long model_bytes = stat(a->model, &sb) ? -1 : (long long)sb.st_size;
    if (!a->json)
        printf("llama.cpp, %d threads, ubatch %d, flash %s\n%-10s %10s %10s %10s %11s\n",
               a->shape.threads, a->shape.ubatch, a->no_flash ? "off" : "auto", "test", "tok/s", "min",
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
