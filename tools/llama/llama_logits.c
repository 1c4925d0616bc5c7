/* tools/llama/llama_logits.c: drives llama.cpp (the prebuilt shared libraries of the npm package
 * node-llama-cpp) through its public C API, include/llama.h, to check moepool against it. Not part
 * of the CMake build and never linked into moepool; build.sh compiles it. See README.md.
 *
 *   llama_logits -m MODEL                          llama.cpp's view: arch, n_params, n_vocab ...
 *   llama_logits -m MODEL --tokens "1 2 3" -o OUT  logits of every position, float32 LE
 *                                                  [n_tokens][n_vocab], as `moepool logits`
 * Speed measurements live in llama_bench.c (the same tests and output as `moepool bench`).
 * Common: --threads N (default 2, as the conformance data), --ubatch N (default 512),
 * --no-flash (flash attention off; default auto), -v (llama.cpp's log on stderr).
 * Exit status: 0, 1 when llama.cpp fails, 2 for bad arguments. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend.h"
#include "harness.h"
#include "llama.h"

/* Where the CPU backend variants (libggml-cpu-*.so) live; build.sh sets it to the package's
 * directory. ggml_backend_load_all() would only look beside the executable. */
#ifndef LLAMA_BACKEND_DIR
#define LLAMA_BACKEND_DIR NULL
#endif

struct args {
    const char *model, *tokens, *out, *backend_dir;
    int threads, ubatch;
    bool no_flash, verbose;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: llama_logits -m MODEL [--tokens \"ID ...\" -o OUT.f32]\n"
               "                    [--threads N] [--ubatch N] [--no-flash] [-v]\n"
               "                    [--backend-dir DIR]\n");
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'}, {"tokens", required_argument, 0, 'T'},
        {"output", required_argument, 0, 'o'}, {"threads", required_argument, 0, 't'},
        {"ubatch", required_argument, 0, 'u'}, {"no-flash", no_argument, 0, 'F'},
        {"backend-dir", required_argument, 0, 'D'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    *a = (struct args){.threads = 2, .ubatch = 512, .backend_dir = LLAMA_BACKEND_DIR};
    int c;
    while ((c = getopt_long(argc, argv, "m:o:t:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': a->model = optarg; break;
        case 'T': a->tokens = optarg; break;
        case 'o': a->out = optarg; break;
        case 't': a->threads = atoi(optarg); break;
        case 'u': a->ubatch = atoi(optarg); break;
        case 'F': a->no_flash = true; break;
        case 'D': a->backend_dir = optarg; break;
        case 'v': a->verbose = true; break;
        case 'h': usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (!a->model || optind != argc || a->threads < 1 || a->ubatch < 1 ||
        (!a->tokens != !a->out))
        return -1;
    return 0;
}

static void print_info(const struct llama_model *m)
{
    const struct llama_vocab *v = llama_model_get_vocab(m);
    char arch[64] = "?", desc[128] = "?";
    llama_model_meta_val_str(m, "general.architecture", arch, sizeof(arch));
    llama_model_desc(m, desc, sizeof(desc));
    printf("arch %s, %s\n", arch, desc);
    printf("n_params %llu (%.3fB), size %.3f GiB\n", (unsigned long long)llama_model_n_params(m),
           (double)llama_model_n_params(m) / 1e9, (double)llama_model_size(m) / (1 << 30));
    printf("n_vocab %d, n_layer %d, n_embd %d, n_ctx_train %d, add_bos %d\n",
           llama_vocab_n_tokens(v), llama_model_n_layer(m), llama_model_n_embd(m),
           llama_model_n_ctx_train(m), llama_vocab_get_add_bos(v));
}

/* "1 2 3" or "1,2,3" into a new array. */
static int parse_tokens(const char *s, llama_token **out)
{
    int n = 0, cap = 64;
    llama_token *t = malloc((size_t)cap * sizeof(*t));
    while (t && *s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) {
            if (*s != ' ' && *s != ',' && *s != '\n') {
                free(t);
                return -1;
            }
            s++;
            continue;
        }
        if (n == cap && !(t = realloc(t, (size_t)(cap *= 2) * sizeof(*t))))
            return -1;
        t[n++] = (llama_token)v;
        s = end;
    }
    *out = t;
    return t ? n : -1;
}

static struct llama_context *new_context(struct llama_model *m, const struct args *a, int n_ctx,
                                         int n_batch, int n_seq)
{
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)n_ctx;
    cp.n_batch = (uint32_t)n_batch;
    cp.n_ubatch = (uint32_t)(a->ubatch < n_batch ? a->ubatch : n_batch);
    cp.n_seq_max = (uint32_t)n_seq;
    cp.n_threads = a->threads;
    cp.n_threads_batch = a->threads;
    cp.flash_attn_type = a->no_flash ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
    cp.no_perf = true;
    return llama_init_from_model(m, cp);
}

/* A batch of n tokens of sequence seq at positions pos0.., logits for all or the last only. */
static void fill_batch(struct llama_batch *b, const llama_token *tok, int n, int pos0, int seq,
                       bool all_logits)
{
    for (int i = 0; i < n; i++) {
        int k = b->n_tokens++;
        b->token[k] = tok[i];
        b->pos[k] = pos0 + i;
        b->n_seq_id[k] = 1;
        b->seq_id[k][0] = seq;
        b->logits[k] = all_logits || i == n - 1;
    }
}

static int run_logits(struct llama_model *m, const struct args *a)
{
    llama_token *tok = NULL;
    int n = parse_tokens(a->tokens, &tok);
    if (n <= 0) {
        fprintf(stderr, "llama_logits: bad --tokens\n");
        return 2;
    }
    int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(m)), rc = 1;
    struct llama_context *ctx = new_context(m, a, n, n, 1);
    struct llama_batch b = llama_batch_init(n, 0, 1);
    FILE *f = NULL;
    if (!ctx)
        goto out;
    fill_batch(&b, tok, n, 0, 0, true);
    if (llama_decode(ctx, b) != 0) {
        fprintf(stderr, "llama_logits: llama_decode failed\n");
        goto out;
    }
    if (!(f = fopen(a->out, "wb"))) {
        perror(a->out);
        goto out;
    }
    rc = 0;
    for (int i = 0; i < n && !rc; i++)
        rc = fwrite(llama_get_logits_ith(ctx, i), sizeof(float), (size_t)n_vocab, f) !=
             (size_t)n_vocab;
    if (fclose(f) != 0 || rc) {
        fprintf(stderr, "llama_logits: writing %s failed\n", a->out);
        rc = 1;
    }
out:
    llama_batch_free(b);
    llama_free(ctx);
    free(tok);
    return rc;
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a)) {
        usage(stderr);
        return 2;
    }
    struct llama_model *m = harness_open("llama_logits", a.model, a.backend_dir, a.verbose);
    if (!m)
        return 1;
    int rc = 0;
    if (a.tokens)
        rc = run_logits(m, &a);
    else
        print_info(m);
    harness_close(m);
    return rc;
}
