/* coordinator/cmd_placement.c: `moepool placement plan|show|record`: make a placement file,
 * show what it puts on each worker, and record routing statistics by running the model over a
 * text (tokenizer + forward pass with eb_stats around eb_local). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "coordinator/eb_stats.h"
#include "coordinator/placement_plan.h"
#include "kernels/kq.h"
#include "model/arch.h"
#include "model/eb_local.h"
#include "model/forward.h"
#include "model/tokenizer.h"

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: moepool placement plan -m MODEL --policy contiguous|striped|capacity|balanced\n"
        "                              --workers SPEC [--stats FILE] [--replicate N] [--no-pairs]\n"
        "                              -o FILE\n"
        "       moepool placement show FILE [-m MODEL] [--stats FILE]\n"
        "       moepool placement record -m MODEL (-f TEXTFILE | --tokens \"ID ...\") -o FILE\n"
        "                              [--ctx N] [-t THREADS]\n"
        "SPEC: a count (\"3\") or NAME[:mem=SIZE][:cores=N],... (\"local:mem=4G,w1:mem=8G\")\n");
}

struct place_args {
    const char *model, *policy, *workers, *stats, *out, *text, *tokens;
    int replicate, ctx, threads;
    bool no_pairs;
};

static int parse_args(int argc, char **argv, struct place_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"policy", required_argument, 0, 'P'},
        {"workers", required_argument, 0, 'W'},
        {"stats", required_argument, 0, 'S'},
        {"replicate", required_argument, 0, 'R'},
        {"output", required_argument, 0, 'o'},
        {"file", required_argument, 0, 'f'},
        {"tokens", required_argument, 0, 'T'},
        {"ctx", required_argument, 0, 'c'},
        {"threads", required_argument, 0, 't'},
        {"no-pairs", no_argument, 0, 'N'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *a = (struct place_args){
        .replicate = 1, .ctx = 512, .threads = (int)sysconf(_SC_NPROCESSORS_ONLN)};
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:f:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'P': a->policy = optarg; break;
        case 'W': a->workers = optarg; break;
        case 'S': a->stats = optarg; break;
        case 'R': a->replicate = atoi(optarg); break;
        case 'o': a->out = optarg; break;
        case 'f': a->text = optarg; break;
        case 'T': a->tokens = optarg; break;
        case 'c': a->ctx = atoi(optarg); break;
        case 't': a->threads = atoi(optarg); break;
        case 'N': a->no_pairs = true; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    return a->threads < 1 || a->ctx < 1 ? -1 : 0;
}

static int fail(const char *what, const struct mp_error *err, int rc)
{
    fprintf(stderr, "moepool placement %s: %s\n", what, err->msg);
    return rc == MP_ENOMEM || rc == MP_EIO ? 1 : 2;
}

/* ---- plan ---- */

static int cmd_plan(const struct place_args *a)
{
    struct mp_error err = {0};
    struct plan_request req = {.replicate = a->replicate, .no_pairs = a->no_pairs};
    struct model *m = NULL;
    struct routing_stats *stats = NULL;
    struct placement *p = NULL;
    if (!a->model || !a->policy || !a->workers || !a->out) {
        usage(stderr);
        return 2;
    }
    if (plan_parse_policy(a->policy, &req.policy)) {
        fprintf(stderr, "moepool placement plan: unknown policy '%s'\n", a->policy);
        return 2;
    }
    int rc = plan_parse_workers(a->workers, req.workers, &req.n_workers, &err);
    if (!rc && a->stats)
        rc = rstats_load(a->stats, &stats, &err);
    if (!rc)
        rc = model_open(a->model, &m, &err);
    req.stats = stats;
    if (!rc)
        rc = plan_make(m, &req, &p, &err);
    if (!rc)
        rc = place_save(p, a->out, &err);
    place_free(p);
    rstats_free(stats);
    model_close(m);
    return rc ? fail("plan", &err, rc) : 0;
}

/* ---- show ---- */

static void print_table(const struct placement *p, const struct model *m,
                        const struct routing_stats *s)
{
    uint64_t bytes[PLACE_MAX_WORKERS];
    double uniform[PLACE_MAX_WORKERS], recorded[PLACE_MAX_WORKERS];
    int32_t *ids = malloc((size_t)p->n_expert * sizeof(*ids));
    if (m)
        place_worker_bytes(p, m, bytes);
    place_expected_load(p, NULL, uniform);
    if (s)
        place_expected_load(p, s, recorded);
    printf("%-16s %8s %12s %10s%s\n", "worker", "experts", m ? "memory MiB" : "memory", "load",
           s ? "  load (stats)" : "");
    for (int w = 0; w < p->n_workers; w++) {
        int n = 0;
        for (int l = 0; ids && l < p->n_moe_layers; l++)
            n += place_worker_experts(p, w, l, ids);
        printf("%-16s %8d ", p->workers[w].name, n);
        if (m)
            printf("%12.1f", (double)bytes[w] / (1024.0 * 1024));
        else
            printf("%12s", "-");
        printf(" %9.1f%%", 100 * uniform[w]);
        if (s)
            printf("  %12.1f%%", 100 * recorded[w]);
        printf("\n");
    }
    printf("imbalance (worst worker load / its fair part, per layer): %.3f uniform",
           place_imbalance(p, NULL));
    if (s)
        printf(", %.3f with statistics", place_imbalance(p, s));
    printf("\n");
    if (s)
        printf("co-activated expert pairs on one worker: %.1f%%\n", 100 * place_colocated(p, s));
    free(ids);
}

static int cmd_show(const struct place_args *a, const char *file)
{
    struct mp_error err = {0};
    struct placement *p = NULL;
    struct model *m = NULL;
    struct routing_stats *s = NULL;
    int rc = place_load(file, &p, &err);
    if (!rc && a->model && !(rc = model_open(a->model, &m, &err)))
        rc = place_check_model(p, m, NULL, &err);
    if (!rc && a->stats && !(rc = rstats_load(a->stats, &s, &err)))
        rc = place_check_stats(p, s, &err);
    if (!rc) {
        printf("%s: %s, %d MoE layers x %d experts, %d workers%s%s\n", file, p->arch,
               p->n_moe_layers, p->n_expert, p->n_workers, p->policy[0] ? ", policy " : "",
               p->policy);
        print_table(p, m, s);
    }
    rstats_free(s);
    model_close(m);
    place_free(p);
    return rc ? fail("show", &err, rc) : 0;
}

/* ---- record ---- */

static int read_text(const char *path, char **text, size_t *len, struct mp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return mp_error_set(err, MP_EIO, "%s: cannot open", path);
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap && n < TOK_MAX_TEXT) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger)
                free(buf);
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf)
        return mp_error_set(err, MP_ENOMEM, "%s: out of memory", path);
    *text = buf;
    *len = n < TOK_MAX_TEXT ? n : TOK_MAX_TEXT;
    return 0;
}

static int tokenize_file(const struct model *m, const char *path, int32_t **ids, int *n,
                         struct mp_error *err)
{
    struct tok_vocab *v = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = tok_load(m->gguf, &v, err);
    if (!rc)
        rc = read_text(path, &text, &len, err);
    int count = rc ? rc : tok_encode(v, text, len, tok_add_bos(v), false, NULL, 0, err);
    if (count >= 0 && !(*ids = malloc(((size_t)count + 1) * sizeof(**ids))))
        count = mp_error_set(err, MP_ENOMEM, "out of memory");
    if (count >= 0)
        count = tok_encode(v, text, len, tok_add_bos(v), false, *ids, count + 1, err);
    free(text);
    tok_free(v);
    *n = count;
    return count < 0 ? count : 0;
}

static int parse_token_list(const char *s, int32_t **ids, int *n, struct mp_error *err)
{
    size_t cap = strlen(s) / 2 + 1;
    int count = 0;
    if (!(*ids = malloc(cap * sizeof(**ids))))
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    for (char *end; *s; s = end) {
        long v = strtol(s, &end, 10);
        if (end == s && strchr(" ,\t\n", *s)) {
            end++;
            continue;
        }
        if (end == s || v < 0 || v > INT32_MAX)
            return mp_error_set(err, MP_EINVAL, "--tokens must be a list of token ids");
        (*ids)[count++] = (int32_t)v;
    }
    *n = count;
    return 0;
}

/* Runs ids through the model in windows of ctx tokens, each a fresh sequence, so a long text
 * needs no long KV cache (routing depends on the context, so windows should not be tiny). The
 * experts run in this process, behind eb_stats recording into stats. */
struct recorder {
    struct tp_pool *tp;
    struct fwd_state *st;
    struct kv_seq *seq;
    struct expert_backend eb;
    int32_t *pos;
    struct kv_seq **seqs;
    bool *want;
};

static int recorder_new(struct recorder *r, struct model *m, struct routing_stats *stats, int ctx,
                        int threads, struct mp_error *err)
{
    struct expert_backend local = {0};
    r->tp = tp_new(threads);
    r->pos = malloc((size_t)ctx * sizeof(*r->pos));
    r->seqs = malloc((size_t)ctx * sizeof(*r->seqs));
    r->want = calloc((size_t)ctx, sizeof(*r->want)); /* no logits wanted: only the routing */
    if (!r->tp || !r->pos || !r->seqs || !r->want)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    int rc = kv_seq_new(m, ctx, &r->seq, err);
    if (!rc)
        rc = fwd_state_new(m, ctx, ctx, r->tp, &r->st, err);
    if (!rc)
        rc = eb_local_new(m, NULL, r->tp, ctx, &local, err);
    if (!rc && (rc = eb_stats_new(m, local, stats, &r->eb, err)))
        eb_free(&local);
    return rc;
}

static void recorder_free(struct recorder *r)
{
    eb_free(&r->eb);
    fwd_state_free(r->st);
    kv_seq_free(r->seq);
    tp_free(r->tp);
    free(r->pos);
    free(r->seqs);
    free(r->want);
}

static int record_windows(struct recorder *r, struct model *m, const int32_t *ids, int n, int ctx,
                          struct mp_error *err)
{
    int rc = 0;
    for (int start = 0; !rc && start < n; start += ctx) {
        int len = n - start < ctx ? n - start : ctx;
        for (int i = 0; i < len; i++) {
            r->pos[i] = i;
            r->seqs[i] = r->seq;
        }
        kv_seq_clear(r->seq, m);
        struct fwd_batch b = {.n_tokens = len,
                              .token = ids + start,
                              .pos = r->pos,
                              .seq = r->seqs,
                              .want_logits = r->want};
        rc = fwd_run(r->st, &b, &r->eb, NULL, NULL, err);
    }
    return rc;
}

static int cmd_record(const struct place_args *a)
{
    struct mp_error err = {0};
    struct model *m = NULL;
    struct routing_stats *stats = NULL;
    struct recorder r = {0};
    int32_t *ids = NULL;
    int n = 0;
    if (!a->model || !a->out || !a->text == !a->tokens) {
        usage(stderr);
        return 2;
    }
    kq_init();
    int rc = model_open(a->model, &m, &err);
    if (!rc)
        rc = a->text ? tokenize_file(m, a->text, &ids, &n, &err)
                     : parse_token_list(a->tokens, &ids, &n, &err);
    if (!rc && n == 0)
        rc = mp_error_set(&err, MP_EINVAL, "%s: no tokens", a->text ? a->text : "--tokens");
    if (!rc)
        rc = rstats_new(m->arch->name, m->n_moe_layers, (int)m->hp.n_expert, &stats, &err);
    if (!rc)
        rc = recorder_new(&r, m, stats, a->ctx, a->threads, &err);
    if (!rc)
        rc = record_windows(&r, m, ids, n, a->ctx, &err);
    if (!rc)
        rc = rstats_save(stats, a->out, &err);
    if (!rc)
        fprintf(stderr, "recorded the routing of %d tokens over %d MoE layers into %s\n", n,
                m->n_moe_layers, a->out);
    recorder_free(&r);
    rstats_free(stats);
    free(ids);
    model_close(m);
    return rc ? fail("record", &err, rc) : 0;
}

int cmd_placement(int argc, char **argv)
{
    struct place_args a;
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (parse_args(argc - 1, argv + 1, &a)) {
        usage(stderr);
        return 2;
    }
    int rest = argc - 1 - optind;
    if (!strcmp(sub, "plan") && rest == 0)
        return cmd_plan(&a);
    if (!strcmp(sub, "show") && rest == 1)
        return cmd_show(&a, argv[1 + optind]);
    if (!strcmp(sub, "record") && rest == 0)
        return cmd_record(&a);
    fprintf(stderr, "moepool placement: unknown subcommand or extra arguments\n");
    usage(stderr);
    return 2;
}
