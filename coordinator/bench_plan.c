/* coordinator/bench_plan.c: see bench_plan.h. */
#include "coordinator/bench_plan.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

void bench_shape_defaults(struct bench_shape *s, int threads)
{
    *s = (struct bench_shape){.threads = threads,
                              .n_prompt = 512,
                              .n_gen = 128,
                              .tg_prompt = 16,
                              .batch_prompt = 128,
                              .batch_gen = 32,
                              .reps = 3,
                              .ubatch = 512,
                              .batch = {1, 8, 32},
                              .n_batch = 3};
}

int bench_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* "1,8,32" into s->batch; each count in 1..4096; "" means no batch tests. */
static int parse_batches(const char *arg, struct bench_shape *s)
{
    s->n_batch = 0;
    while (*arg) {
        char *end;
        long v = strtol(arg, &end, 10);
        if (end == arg || v < 1 || v > 4096 || s->n_batch == BENCH_MAX_BATCHES ||
            (*end && *end != ','))
            return -1;
        s->batch[s->n_batch++] = (int)v;
        arg = *end ? end + 1 : end;
    }
    return 0;
}

int bench_shape_option(int c, const char *arg, struct bench_shape *s)
{
    int rc;
    switch (c) {
    case 't': rc = bench_parse_int(arg, 1, 1024, &s->threads); break;
    case 'p': rc = bench_parse_int(arg, 0, 1 << 20, &s->n_prompt); break;
    case 'n': rc = bench_parse_int(arg, 0, 1 << 20, &s->n_gen); break;
    case 'B': rc = parse_batches(arg, s); break;
    case 'P': rc = bench_parse_int(arg, 1, 1 << 20, &s->batch_prompt); break;
    case 'G': rc = bench_parse_int(arg, 1, 1 << 20, &s->batch_gen); break;
    case 'T': rc = bench_parse_int(arg, 1, 1 << 20, &s->tg_prompt); break;
    case 'r': rc = bench_parse_int(arg, 1, BENCH_MAX_REPS, &s->reps); break;
    case 'u': rc = bench_parse_int(arg, 1, 1 << 16, &s->ubatch); break;
    default: return 0;
    }
    return rc ? -1 : 1;
}

int bench_plan(const struct bench_shape *s, struct bench_test *t)
{
    int n = 0;
    if (s->n_prompt > 0) {
        t[n] = (struct bench_test){"", BENCH_PROMPT, 1, s->n_prompt, 0};
        snprintf(t[n++].name, sizeof(t->name), "pp%d", s->n_prompt);
    }
    if (s->n_gen > 0) {
        t[n] = (struct bench_test){"", BENCH_DECODE, 1, s->tg_prompt, s->n_gen};
        snprintf(t[n++].name, sizeof(t->name), "tg%d", s->n_gen);
    }
    for (int i = 0; i < s->n_batch; i++) {
        t[n] = (struct bench_test){"", BENCH_DECODE, s->batch[i], s->batch_prompt, s->batch_gen};
        snprintf(t[n++].name, sizeof(t->name), "batch%d", s->batch[i]);
    }
    return n;
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

double bench_median(const double *v, int n)
{
    double s[BENCH_MAX_REPS];
    memcpy(s, v, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

void bench_min_max(const double *v, int n, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (int i = 1; i < n; i++) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

long long bench_peak_rss(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) ? -1 : (long long)ru.ru_maxrss * 1024; /* KiB on Linux */
}

void bench_json_str(FILE *f, const char *s)
{
    for (; *s; s++) {
        const unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
}
