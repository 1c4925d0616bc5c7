/* coordinator/cmd_logits.c: `moepool logits`: runs one token sequence through the model in one
 * pass (chunks of --ubatch tokens, 512 by default as llama.cpp) and writes the logits of every
 * position as little-endian float32 [n_tokens][n_vocab]. --force-routing and --dump-routing use
 * the routing trace format int32 [moe layer][position][k] (../shared/conformance/README.md).
 * With --cluster the experts run on workers (`moepool worker --join`): the simplest end-to-end
 * check of the cluster against the in-process result. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "coordinator/cluster.h"
#include "coordinator/cluster_args.h"
#include "kernels/kq.h"
#include "model/eb_local.h"
#include "model/forward.h"

struct logits_args {
    const char *model, *tokens, *out, *force, *dump;
    int threads, ubatch;
    struct cluster_opts cluster;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: moepool logits -m MODEL --tokens \"ID ...\" -o OUT.f32\n"
               "                      [--force-routing FILE] [--dump-routing FILE]\n"
               "                      [-t THREADS] [--ubatch N]\n" CLUSTER_USAGE(
                   "                      "));
}

static int parse_args(int argc, char **argv, struct logits_args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},
        {"tokens", required_argument, 0, 'T'},
        {"output", required_argument, 0, 'o'},
        {"force-routing", required_argument, 0, 'F'},
        {"dump-routing", required_argument, 0, 'D'},
        {"threads", required_argument, 0, 't'},
        {"ubatch", required_argument, 0, 'u'},
        {"help", no_argument, 0, 'h'},
        CLUSTER_LONG_OPTIONS,
        {0, 0, 0, 0},
    };
    int c;
    *a = (struct logits_args){.threads = (int)sysconf(_SC_NPROCESSORS_ONLN), .ubatch = 512};
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'T': a->tokens = optarg; break;
        case 'o': a->out = optarg; break;
        case 'F': a->force = optarg; break;
        case 'D': a->dump = optarg; break;
        case 't': a->threads = atoi(optarg); break;
        case 'u': a->ubatch = atoi(optarg); break;
        case 'h': usage(stdout); exit(0);
        default:
            if (cluster_arg(c, optarg, &a->cluster) <= 0)
                return -1;
        }
    }
    if (!a->model || !a->tokens || !a->out || a->threads < 1 || a->ubatch < 1 || optind != argc)
        return -1;
    return cluster_args_check(&a->cluster);
}

/* "1 2 3" (spaces or commas) into a new array. */
static int parse_tokens(const char *s, int32_t **out, int *n_out)
{
    size_t cap = strlen(s) / 2 + 1;
    int32_t *ids = malloc(cap * sizeof(*ids));
    int n = 0;
    if (!ids)
        return -1;
    while (*s) {
        if (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n') {
            s++;
            continue;
        }
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX || (*end && !strchr(" ,\t\n", *end))) {
            free(ids);
            return -1;
        }
        ids[n++] = (int32_t)v;
        s = end;
    }
    *out = ids;
    *n_out = n;
    return n > 0 ? 0 : (free(ids), -1);
}

/* Reads a whole routing file that must hold exactly n int32 values. */
static int read_trace(const char *path, int32_t *dst, size_t n, struct mp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return mp_error_set(err, MP_EIO, "%s: cannot open", path);
    size_t got = fread(dst, sizeof(int32_t), n, f);
    int extra = fgetc(f);
    fclose(f);
    if (got != n || extra != EOF)
        return mp_error_set(err, MP_EINVAL, "%s: expected exactly %zu int32 expert ids", path, n);
    return 0;
}

static int write_file(const char *path, const void *data, size_t n_bytes, struct mp_error *err)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return mp_error_set(err, MP_EIO, "%s: cannot create", path);
    size_t w = fwrite(data, 1, n_bytes, f);
    if (fclose(f) || w != n_bytes)
        return mp_error_set(err, MP_EIO, "%s: write failed", path);
    return 0;
}

struct logits_run {
    struct model *m;
    struct tp_pool *tp;
    struct fwd_state *st;
    struct kv_seq *seq;
    struct expert_backend eb;
    struct cluster *cluster;
    int32_t *force, *dump;
    float *logits;
};

static int evaluate(struct logits_run *r, const struct logits_args *a, const int32_t *ids, int n,
                    struct mp_error *err)
{
    const int64_t n_vocab = r->m->hp.n_vocab;
    struct fwd_trace trace = {.force = r->force, .dump = r->dump, .n_pos = n};
    int32_t *pos = malloc((size_t)n * sizeof(*pos));
    struct kv_seq **seqs = malloc((size_t)n * sizeof(*seqs));
    int rc = pos && seqs ? 0 : mp_error_set(err, MP_ENOMEM, "out of memory");
    for (int i = 0; !rc && i < n; i++) {
        pos[i] = i;
        seqs[i] = r->seq;
    }
    for (int start = 0; !rc && start < n; start += a->ubatch) {
        int len = n - start < a->ubatch ? n - start : a->ubatch;
        struct fwd_batch b = {
            .n_tokens = len, .token = ids + start, .pos = pos + start, .seq = seqs + start};
        rc = fwd_run(r->st, &b, &r->eb, r->force || r->dump ? &trace : NULL,
                     r->logits + (size_t)start * n_vocab, err);
    }
    free(pos);
    free(seqs);
    return rc;
}

static int setup(struct logits_run *r, const struct logits_args *a, int n, struct mp_error *err)
{
    int rc = model_open(a->model, &r->m, err);
    if (rc)
        return rc;
    const size_t n_trace = (size_t)r->m->n_moe_layers * (size_t)n * (size_t)r->m->hp.n_expert_used;
    const int ub = n < a->ubatch ? n : a->ubatch;
    r->tp = tp_new(a->threads);
    r->logits = malloc((size_t)n * (size_t)r->m->hp.n_vocab * sizeof(float));
    r->force = a->force ? malloc(n_trace * sizeof(int32_t)) : NULL;
    r->dump = a->dump ? calloc(n_trace, sizeof(int32_t)) : NULL;
    if (!r->tp || !r->logits || (a->force && !r->force) || (a->dump && !r->dump))
        return mp_error_set(err, MP_ENOMEM, "out of memory for %d positions", n);
    if (a->force && (rc = read_trace(a->force, r->force, n_trace, err)))
        return rc;
    if ((rc = kv_seq_new(r->m, n, &r->seq, err)) ||
        (rc = fwd_state_new(r->m, ub, n, r->tp, &r->st, err)))
        return rc;
    if (a->cluster.endpoint) {
        struct cluster_opts o = a->cluster;
        o.n_max = ub;
        o.local_tp = r->tp;
        if ((rc = cluster_start(r->m, &o, &r->cluster, err)) ||
            (rc = cluster_wait_ready(r->cluster, -1, err)))
            return rc;
        r->eb = cluster_backend(r->cluster);
        return 0;
    }
    return eb_local_new(r->m, NULL, r->tp, ub, &r->eb, err);
}

static void teardown(struct logits_run *r)
{
    eb_free(&r->eb);
    cluster_stop(r->cluster);
    fwd_state_free(r->st);
    kv_seq_free(r->seq);
    tp_free(r->tp);
    model_close(r->m);
    free(r->logits);
    free(r->force);
    free(r->dump);
}

/* Speed and, for a cluster, traffic: on stderr, for people (stdout stays empty). */
static void report(struct logits_run *r, int n, double secs)
{
    fprintf(stderr, "moepool logits: %d tokens in %.3f s (%.2f tok/s)\n", n, secs,
            secs > 0 ? n / secs : 0);
    if (!r->cluster)
        return;
    struct cluster_status st;
    cluster_status(r->cluster, &st);
    fprintf(stderr, "moepool logits: cluster wire %s: %.0f bytes per token per MoE layer\n",
            wire_name(st.wire), st.bytes_per_token_layer);
    for (int w = 0; w < st.expect_workers; w++)
        fprintf(stderr, "moepool logits: worker %d (%s): %llu jobs, round trip %.3f ms mean\n", w,
                st.w[w].host, (unsigned long long)st.w[w].jobs, st.w[w].rtt_ms_mean);
}

int cmd_logits(int argc, char **argv)
{
    struct logits_args a;
    struct mp_error err = {0};
    struct logits_run r = {0};
    int32_t *ids = NULL;
    int n = 0;
    if (parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    if (parse_tokens(a.tokens, &ids, &n)) {
        fprintf(stderr, "moepool logits: --tokens must be a list of token ids\n");
        return 2;
    }
    kq_init();
    int rc = setup(&r, &a, n, &err);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!rc)
        rc = evaluate(&r, &a, ids, n, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!rc)
        report(&r, n, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9);
    if (!rc)
        rc = write_file(a.out, r.logits, (size_t)n * (size_t)r.m->hp.n_vocab * sizeof(float), &err);
    if (!rc && a.dump)
        rc = write_file(a.dump, r.dump,
                        (size_t)r.m->n_moe_layers * (size_t)n * (size_t)r.m->hp.n_expert_used *
                            sizeof(int32_t),
                        &err);
    teardown(&r);
    free(ids);
    if (rc) {
        fprintf(stderr, "moepool logits: %s\n", err.msg);
        return rc == MP_ENOMEM ? 1 : 2;
    }
    return 0;
}
