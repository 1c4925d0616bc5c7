/* model/forward_test.c MODEL.gguf: batches change nothing. The same token sequences are run
 * (a) each alone, prefilled in one batch, (b) token by token (decode), and (c) interleaved with
 * each other in mixed batches of prefill chunks and single tokens, and the logits must be
 * bit-identical. Exact equality is the right bar: every operation of the forward pass works on
 * one token row at a time (activation quantization, dot products, norms, attention over a
 * sequence's own cache, experts grouped but computed per row), so batch composition must not
 * change a single bit; batch invariance is also what the server promises. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kq.h"
#include "model/eb_local.h"
#include "model/forward.h"

#define N_SEQ 3
#define SEQ_LEN 40
#define N_MAX 64

static int failures;

struct env {
    struct model *m;
    struct tp_pool *tp;
    struct fwd_state *st;
    struct expert_backend eb;
    int64_t n_vocab;
};

static int32_t token_at(int s, int i, int64_t n_vocab)
{
    return (int32_t)((1 + s * 7919 + i * 104729) % n_vocab);
}

/* Runs `order` (entries s*SEQ_LEN+i, in the order they are fed) in batches whose sizes cycle
 * through `sizes`; stores every position's logits in out[s][i]. */
static void run(struct env *e, const int *order, const int *sizes, int n_sizes, float *out)
{
    struct kv_seq *seqs[N_SEQ];
    struct mp_error err = {0};
    for (int s = 0; s < N_SEQ; s++)
        if (kv_seq_new(e->m, SEQ_LEN, &seqs[s], &err))
            abort();
    int32_t tok[N_MAX], pos[N_MAX];
    struct kv_seq *bs[N_MAX];
    float *logits = malloc((size_t)N_MAX * (size_t)e->n_vocab * sizeof(float));
    for (int at = 0, k = 0; at < N_SEQ * SEQ_LEN; k++) {
        int n = sizes[k % n_sizes];
        n = n < N_SEQ * SEQ_LEN - at ? n : N_SEQ * SEQ_LEN - at;
        for (int j = 0; j < n; j++) {
            int s = order[at + j] / SEQ_LEN, i = order[at + j] % SEQ_LEN;
            tok[j] = token_at(s, i, e->n_vocab);
            pos[j] = i;
            bs[j] = seqs[s];
        }
        struct fwd_batch b = {.n_tokens = n, .token = tok, .pos = pos, .seq = bs};
        if (fwd_run(e->st, &b, &e->eb, NULL, logits, &err)) {
            fprintf(stderr, "fwd_run: %s\n", err.msg);
            exit(1);
        }
        for (int j = 0; j < n; j++)
            memcpy(out + (size_t)order[at + j] * e->n_vocab, logits + (size_t)j * e->n_vocab,
                   (size_t)e->n_vocab * sizeof(float));
        at += n;
    }
    free(logits);
    for (int s = 0; s < N_SEQ; s++)
        kv_seq_free(seqs[s]);
}

static void compare(const char *what, const float *a, const float *b, int64_t n_vocab)
{
    size_t n = (size_t)N_SEQ * SEQ_LEN * (size_t)n_vocab;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float))) {
            failures++;
            fprintf(stderr, "FAIL %s: sequence %zu position %zu differs (%.9g vs %.9g)\n", what,
                    i / n_vocab / SEQ_LEN, i / n_vocab % SEQ_LEN, a[i], b[i]);
            return;
        }
    printf("ok   %s: bit-identical\n", what);
}

int main(int argc, char **argv)
{
    struct env e = {0};
    struct mp_error err = {0};
    if (argc != 3) {
        fprintf(stderr, "usage: forward_test MODEL.gguf THREADS\n");
        return 2;
    }
    kq_init();
    e.tp = tp_new(atoi(argv[2]));
    if (model_open(argv[1], &e.m, &err) || fwd_state_new(e.m, N_MAX, SEQ_LEN, e.tp, &e.st, &err) ||
        eb_local_new(e.m, NULL, e.tp, N_MAX, &e.eb, &err)) {
        fprintf(stderr, "forward_test: %s\n", err.msg);
        return 1;
    }
    e.n_vocab = e.m->hp.n_vocab;
    size_t n = (size_t)N_SEQ * SEQ_LEN * (size_t)e.n_vocab;
    float *alone = malloc(n * sizeof(float)), *other = malloc(n * sizeof(float));
    int seq_order[N_SEQ * SEQ_LEN], mixed[N_SEQ * SEQ_LEN];
    for (int i = 0; i < N_SEQ * SEQ_LEN; i++)
        seq_order[i] = i; /* sequence 0 whole, then 1, then 2 */
    /* Interleaved: a prefill chunk of each sequence, then the three decode round robin. */
    for (int i = 0, k = 0; i < SEQ_LEN; i++)
        for (int s = 0; s < N_SEQ; s++)
            mixed[k++] = s * SEQ_LEN + i;
    const int whole[] = {SEQ_LEN}, one[] = {1}, chunks[] = {7, 1, 12, 3, 30, 2};
    run(&e, seq_order, whole, 1, alone);
    run(&e, seq_order, one, 1, other);
    compare("prefill vs token-by-token decode", alone, other, e.n_vocab);
    run(&e, mixed, chunks, 6, other);
    compare("alone vs interleaved mixed batches", alone, other, e.n_vocab);
    free(alone);
    free(other);
    eb_free(&e.eb);
    fwd_state_free(e.st);
    model_close(e.m);
    tp_free(e.tp);
    return failures ? 1 : 0;
}
