/* model/cmd_synth.c: `moepool synth`: writes a synthetic model (synth.h) from a preset plus shape
 * overrides, printing progress, the time taken and the peak memory. Exit status 2 for bad
 * arguments or shapes, 1 when writing fails (the partial file is removed). Spec: docs/synth.md. */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "commands.h"
#include "model/synth.h"

/* Integer shape overrides: option name -> field of struct synth_params. */
static const struct {
    const char *name;
    size_t off;
} int_opts[] = {
    {"n-vocab", offsetof(struct synth_params, n_vocab)},
    {"n-embd", offsetof(struct synth_params, n_embd)},
    {"n-layer", offsetof(struct synth_params, n_layer)},
    {"n-ctx", offsetof(struct synth_params, n_ctx)},
    {"n-head", offsetof(struct synth_params, n_head)},
    {"n-head-kv", offsetof(struct synth_params, n_head_kv)},
    {"head-dim", offsetof(struct synth_params, head_dim)},
    {"n-ff", offsetof(struct synth_params, n_ff)},
    {"n-dense", offsetof(struct synth_params, n_dense)},
    {"n-expert", offsetof(struct synth_params, n_expert)},
    {"n-expert-used", offsetof(struct synth_params, n_expert_used)},
    {"n-ff-exp", offsetof(struct synth_params, n_ff_exp)},
    {"l-cache", offsetof(struct synth_params, l_cache)},
};
#define N_INT_OPTS (int)(sizeof(int_opts) / sizeof(int_opts[0]))

enum { OPT_PRESET = 256, OPT_TYPE, OPT_SEED, OPT_ATTN, OPT_ROPE, OPT_EPS, OPT_NAME, OPT_QUIET,
       OPT_NO_TOK, OPT_TMPL, OPT_INT }; /* OPT_INT + i: int_opts[i] */

struct synth_args {
    const char *preset, *type, *seed, *attn, *rope, *eps, *name, *out, *chat_template;
    const char *ints[N_INT_OPTS];
    int threads;
    bool quiet, no_tokenizer;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: moepool synth --preset NAME -o FILE.gguf [--type f32|q8_0|q4_k_m]\n"
               "                     [--seed S] [-t THREADS] [--quiet] [--name TEXT]\n"
               "                     [--attn-layers \"2,6,10\"] [--rope-base F] [--rms-eps F]\n"
               "                     [--n-vocab N] [--n-embd N] [--n-layer N] [--n-ctx N]\n"
               "                     [--n-head N] [--n-head-kv N] [--head-dim N] [--n-ff N]\n"
               "                     [--n-dense N] [--n-expert N] [--n-expert-used N]\n"
               "                     [--n-ff-exp N] [--l-cache N]\n"
               "                     [--no-tokenizer] [--chat-template TEXT (\"\": none)]\n"
               "presets: %s (default type q4_k_m, seed 1)\n", synth_preset_names());
}

static void fill_options(struct option *o)
{
    static const struct option fixed[] = {
        {"preset", required_argument, 0, OPT_PRESET}, {"type", required_argument, 0, OPT_TYPE},
        {"seed", required_argument, 0, OPT_SEED}, {"attn-layers", required_argument, 0, OPT_ATTN},
        {"rope-base", required_argument, 0, OPT_ROPE}, {"rms-eps", required_argument, 0, OPT_EPS},
        {"name", required_argument, 0, OPT_NAME}, {"quiet", no_argument, 0, OPT_QUIET},
        {"output", required_argument, 0, 'o'}, {"threads", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'}, {"no-tokenizer", no_argument, 0, OPT_NO_TOK},
        {"chat-template", required_argument, 0, OPT_TMPL},
    };
    int n = (int)(sizeof(fixed) / sizeof(fixed[0]));
    memcpy(o, fixed, sizeof(fixed));
    for (int i = 0; i < N_INT_OPTS; i++)
        o[n + i] = (struct option){int_opts[i].name, required_argument, 0, OPT_INT + i};
    o[n + N_INT_OPTS] = (struct option){0, 0, 0, 0};
}

/* Returns 0, 1 for --help, -1 for bad usage. */
static int parse_args(int argc, char **argv, struct synth_args *a)
{
    struct option opts[16 + N_INT_OPTS];
    fill_options(opts);
    long n_cpu = sysconf(_SC_NPROCESSORS_ONLN);
    *a = (struct synth_args){.type = "q4_k_m", .threads = n_cpu < 1 ? 1 : (int)n_cpu};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_PRESET: a->preset = optarg; break;
        case OPT_TYPE: a->type = optarg; break;
        case OPT_SEED: a->seed = optarg; break;
        case OPT_ATTN: a->attn = optarg; break;
        case OPT_ROPE: a->rope = optarg; break;
        case OPT_EPS: a->eps = optarg; break;
        case OPT_NAME: a->name = optarg; break;
        case OPT_QUIET: a->quiet = true; break;
        case OPT_NO_TOK: a->no_tokenizer = true; break;
        case OPT_TMPL: a->chat_template = optarg; break;
        case 'o': a->out = optarg; break;
        case 't': a->threads = atoi(optarg); break;
        case 'h': return 1;
        default:
            if (c < OPT_INT || c >= OPT_INT + N_INT_OPTS)
                return -1;
            a->ints[c - OPT_INT] = optarg;
        }
    }
    return a->preset && a->out && a->threads >= 1 && optind == argc ? 0 : -1;
}

/* A whole decimal number (or 0x hex for the seed), nothing after it. */
static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-')
        return false;
    *out = strtoull(s, &end, 0);
    return !*end;
}

static bool parse_float(const char *s, float *out)
{
    char *end;
    *out = strtof(s, &end);
    return *s && !*end;
}

/* Preset, then overrides; the attention layer list last, as it depends on n_layer. */
static int build_params(const struct synth_args *a, struct synth_params *p, struct mp_error *err)
{
    int rc = synth_preset(a->preset, p, err);
    if (!rc)
        rc = synth_parse_ftype(a->type, &p->ftype, err);
    if (rc)
        return rc;
    for (int i = 0; i < N_INT_OPTS; i++) {
        uint64_t v;
        if (!a->ints[i])
            continue;
        if (!parse_u64(a->ints[i], &v) || v > INT32_MAX)
            return mp_error_set(err, MP_EINVAL, "--%s %s: want a count", int_opts[i].name,
                                a->ints[i]);
        *(int64_t *)((char *)p + int_opts[i].off) = (int64_t)v;
    }
    if (a->seed && !parse_u64(a->seed, &p->seed))
        return mp_error_set(err, MP_EINVAL, "--seed %s: want a non-negative integer", a->seed);
    if ((a->rope && !parse_float(a->rope, &p->rope_base)) ||
        (a->eps && !parse_float(a->eps, &p->rms_eps)))
        return mp_error_set(err, MP_EINVAL, "--rope-base / --rms-eps: want a number");
    if (a->name)
        snprintf(p->name, sizeof(p->name), "%s", a->name);
    p->no_tokenizer = a->no_tokenizer;
    p->chat_template = a->chat_template;
    if (p->n_layer > SYNTH_MAX_LAYERS || p->n_layer < 1)
        return synth_check(p, err);
    if (a->attn)
        rc = synth_set_attn_layers(p, a->attn, err);
    return rc ? rc : synth_check(p, err);
}

struct progress {
    bool quiet;
    int last_pct;
};

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct progress *pr = ctx;
    int pct = total ? (int)(100 * done / total) : 100;
    if (pr->quiet || pct < pr->last_pct + 10)
        return;
    pr->last_pct = pct - pct % 10;
    fprintf(stderr, "synth: %3d%%  %.2f of %.2f GiB\n", pr->last_pct,
            (double)done / (1 << 30), (double)total / (1 << 30));
}

static void report(const char *path, const struct synth_params *p, const struct synth_stats *s)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double gib = (double)s->file_bytes / (1 << 30);
    printf("wrote %s: %s, %d tensors, %.3fB parameters, %.3f GiB in %.1f s (%.0f MiB/s), "
           "peak RSS %.0f MiB\n", path, p->name, s->n_tensors, (double)s->n_params / 1e9, gib,
           s->seconds, s->seconds > 0 ? gib * 1024 / s->seconds : 0.0,
           (double)ru.ru_maxrss / 1024);
}

int cmd_synth(int argc, char **argv)
{
    struct synth_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) {
        usage(rc > 0 ? stdout : stderr);
        if (rc < 0)
            fprintf(stderr, "moepool synth: --preset and -o are required; unknown or "
                            "incomplete option\n");
        return rc > 0 ? 0 : 2;
    }
    struct synth_params p;
    struct mp_error err = {0};
    if (build_params(&a, &p, &err)) {
        fprintf(stderr, "moepool synth: %s\n", err.msg);
        return 2;
    }
    kq_init();
    struct progress pr = {.quiet = a.quiet, .last_pct = 0};
    struct synth_stats st;
    if (synth_write(&p, a.out, a.threads, on_progress, &pr, &st, &err)) {
        fprintf(stderr, "moepool synth: %s\n", err.msg);
        return err.code == MP_EINVAL || err.code == MP_EUNSUPPORTED ? 2 : 1;
    }
    report(a.out, &p, &st);
    return 0;
}
