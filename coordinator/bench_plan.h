/* coordinator/bench_plan.h: what `moepool bench` and tools/llama/llama_bench (the same tests on
 * llama.cpp) share, so that both measure the same thing and parse it the same way: the shape of
 * a run (threads, prompt and generation lengths, batch sizes, repetitions), its options, the list
 * of tests it makes, and the statistics of repeated runs. Plain C and libc only: llama_bench
 * compiles this file without the rest of moepool. */
#ifndef BENCH_PLAN_H
#define BENCH_PLAN_H

#include <getopt.h>
#include <stdio.h>

#define BENCH_MAX_BATCHES 16
#define BENCH_MAX_REPS 100
#define BENCH_MAX_TESTS (2 + BENCH_MAX_BATCHES)

struct bench_shape {
    int threads;
    int n_prompt, n_gen;   /* ppN and tgN; 0 skips the test */
    int tg_prompt;         /* prompt before tgN's decode steps */
    int batch_prompt, batch_gen; /* per sequence, for batchN */
    int reps, ubatch;
    int batch[BENCH_MAX_BATCHES], n_batch;
};

/* The shape's long options, for a getopt_long table; their short letters are BENCH_SHAPE_SHORT
 * (t p n r) or private codes (B P G T u). */
#define BENCH_SHAPE_SHORT "t:p:n:r:"
#define BENCH_SHAPE_LONG_OPTIONS                                                                  \
    {"threads", required_argument, 0, 't'}, {"n-prompt", required_argument, 0, 'p'},             \
        {"n-gen", required_argument, 0, 'n'}, {"batch", required_argument, 0, 'B'},               \
        {"batch-prompt", required_argument, 0, 'P'}, {"batch-gen", required_argument, 0, 'G'},   \
        {"tg-prompt", required_argument, 0, 'T'}, {"reps", required_argument, 0, 'r'},            \
        {"ubatch", required_argument, 0, 'u'}
#define BENCH_SHAPE_USAGE(indent)                                                                 \
    indent "[-t THREADS] [-p 512] [-n 128] [--batch 1,8,32] [--batch-prompt 128]\n" indent      \
           "[--batch-gen 32] [--tg-prompt 16] [-r REPS] [--ubatch 512]\n"

/* Defaults: pp512, tg128 after 16 prompt tokens, batch 1,8,32 of 128 + 32 tokens, 3 repetitions,
 * ubatch 512. */
void bench_shape_defaults(struct bench_shape *s, int threads);

/* One getopt_long result: 1 if it was a shape option and its value is good, -1 if it was one with
 * a bad value, 0 if it is not a shape option. */
int bench_shape_option(int c, const char *arg, struct bench_shape *s);

/* A whole-string decimal in [lo, hi] into *out: 0, or -1 (and *out untouched). */
int bench_parse_int(const char *s, int lo, int hi, int *out);

enum bench_kind { BENCH_PROMPT, BENCH_DECODE };

struct bench_test {
    char name[32]; /* "pp512", "tg128", "batch32" */
    enum bench_kind kind;
    int n_seq, n_prompt, n_gen;
};

/* The tests a shape asks for, in llama-bench's order (pp, tg, then the batches), into t
 * (room for BENCH_MAX_TESTS); returns how many. */
int bench_plan(const struct bench_shape *s, struct bench_test *t);

/* Statistics of n repetitions (v unchanged). */
double bench_median(const double *v, int n);
void bench_min_max(const double *v, int n, double *lo, double *hi);

/* This process's peak resident set so far, in bytes; -1 if unknown. */
long long bench_peak_rss(void);

/* s as the body of a JSON string (quotes, backslashes and control characters escaped). */
void bench_json_str(FILE *f, const char *s);

#endif
