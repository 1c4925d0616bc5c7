/* worker/shard_testutil.h: what the shard tests share: logits of a fixed token sequence computed
 * through a given expert backend, and a bit-for-bit comparison. Include once, in a test .c. */
#ifndef SHARD_TESTUTIL_H
#define SHARD_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/forward.h"

#define TEST_N_TOK 24

/* Logits [TEST_N_TOK][n_vocab] of one sequence prefilled in one batch; NULL on failure. */
static float *test_logits(const struct model *m, struct tp_pool *tp, struct expert_backend *eb)
{
    struct mp_error err = {0};
    struct kv_seq *seq = NULL;
    struct fwd_state *st = NULL;
    int32_t tok[TEST_N_TOK], pos[TEST_N_TOK];
    struct kv_seq *seqs[TEST_N_TOK];
    float *logits = malloc((size_t)TEST_N_TOK * (size_t)m->hp.n_vocab * sizeof(float));
    if (!logits || kv_seq_new(m, TEST_N_TOK, &seq, &err) ||
        fwd_state_new(m, TEST_N_TOK, TEST_N_TOK, tp, &st, &err)) {
        fprintf(stderr, "test_logits: %s\n", err.msg);
        free(logits);
        kv_seq_free(seq);
        return NULL;
    }
    for (int i = 0; i < TEST_N_TOK; i++) {
        tok[i] = (int32_t)((1 + i * 104729) % m->hp.n_vocab);
        pos[i] = i;
        seqs[i] = seq;
    }
    struct fwd_batch b = {.n_tokens = TEST_N_TOK, .token = tok, .pos = pos, .seq = seqs};
    if (fwd_run(st, &b, eb, NULL, logits, &err)) {
        fprintf(stderr, "test_logits: %s\n", err.msg);
        free(logits);
        logits = NULL;
    }
    fwd_state_free(st);
    kv_seq_free(seq);
    return logits;
}

/* True when a and b ([TEST_N_TOK][n_vocab]) are bit-identical. */
static bool test_logits_equal(const float *a, const float *b, int64_t n_vocab)
{
    return a && b && memcmp(a, b, (size_t)TEST_N_TOK * (size_t)n_vocab * sizeof(float)) == 0;
}

#endif
