/* model/repack_test.c MODEL.gguf: the weights this process computes with are
 * put in the layout the kernels want, in place, and still hold the model's numbers.
 *
 * After the forward state and the in-process expert backend are made (which repack the dense
 * matrices and the experts):
 *   - each dense matrix and each expert is x16 exactly when kq_x16_supported says its type and
 *     shape allow it (unless MOEPOOL_LAYOUT=rows: then every one is row-major);
 *   - every row of every matrix, read through its layout (kq_matrix_row_to_f32), equals bit for
 *     bit the row-major row of the file (a second, untouched model_open of the same file);
 *   - the mapping itself still holds the file's bytes (compared with read(2)): what a
 *     coordinator streams to workers and what the fingerprint hashes;
 *   - a second forward state and backend repack nothing again (pointers and bytes unchanged).
 * It prints how many matrices were kept row-major for their shape alone (n_rows not a multiple
 * of 16 in a format with x16 kernels): the per-matrix fallback the odd-vocab model exercises. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/check.h"
#include "kernels/kq.h"
#include "model/eb_local.h"
#include "model/forward.h"
#include "model/repack.h"

static bool x16_wanted;
static int64_t n_x16, n_rows_kept_for_shape;

/* The layout W must have after repacking. */
static enum kq_layout expected(const struct kq_matrix *W)
{
    return x16_wanted && kq_x16_supported(W->type, W->n_cols, W->n_rows) ? KQ_LAYOUT_X16
                                                                         : KQ_LAYOUT_ROWS;
}

static void count(const struct kq_matrix *W)
{
    n_x16 += W->layout == KQ_LAYOUT_X16;
    /* A type with x16 kernels (it would be supported with 16 rows) kept for its n_rows. */
    n_rows_kept_for_shape += W->layout == KQ_LAYOUT_ROWS && W->n_rows % KQ_X16_ROWS != 0 &&
                             kq_x16_supported(W->type, W->n_cols, KQ_X16_ROWS);
}

/* W (as held) against F (the same matrix, row-major from the file): layout and every row. An
 * untied token embedding is only read row by row and is never repacked (repackable false). */
static void check_matrix(const char *name, const struct kq_matrix *W, const struct kq_matrix *F,
                         bool repackable)
{
    const enum kq_layout want = repackable ? expected(W) : KQ_LAYOUT_ROWS;
    CHECK(W->layout == want, "%s: layout %d, expected %d", name, W->layout, want);
    CHECK(F->layout == KQ_LAYOUT_ROWS, "%s: the file's copy was repacked", name);
    float *a = malloc((size_t)W->n_cols * sizeof(float)), *b = malloc((size_t)W->n_cols * 4);
    int64_t bad = 0;
    for (int64_t r = 0; r < W->n_rows; r++) {
        kq_matrix_row_to_f32(W, r, a);
        kq_matrix_row_to_f32(F, r, b);
        bad += memcmp(a, b, (size_t)W->n_cols * sizeof(float)) != 0;
    }
    CHECK(bad == 0, "%s: %lld of %lld rows differ from the file's", name, (long long)bad,
          (long long)W->n_rows);
    count(W);
    free(a);
    free(b);
}

static void check_dense(const struct model *m, const struct model *f)
{
    char name[96];
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        const struct layer *L = &m->layers[il], *F = &f->layers[il];
        const struct kq_matrix *w[] = {&L->attn_q,      &L->attn_k,  &L->attn_v,
                                       &L->attn_output, &L->conv_in, &L->conv_out,
                                       &L->ffn_gate,    &L->ffn_up,  &L->ffn_down};
        const struct kq_matrix *g[] = {&F->attn_q,      &F->attn_k,  &F->attn_v,
                                       &F->attn_output, &F->conv_in, &F->conv_out,
                                       &F->ffn_gate,    &F->ffn_up,  &F->ffn_down};
        for (size_t j = 0; j < sizeof(w) / sizeof(w[0]); j++) {
            if (!w[j]->data)
                continue; /* not in this layer's kind */
            snprintf(name, sizeof(name), "block %lld matrix %zu", (long long)il, j);
            check_matrix(name, w[j], g[j], true);
        }
    }
    check_matrix("output", &m->output, &f->output, true);
    const bool tied = f->tok_embd.data == f->output.data;
    CHECK(!tied || (m->tok_embd.data == m->output.data && m->tok_embd.layout == m->output.layout),
          "the tied token embedding is not the head any more");
    check_matrix("token_embd", &m->tok_embd, &f->tok_embd, tied);
}

static void check_experts(const struct model *m, const struct model *f,
                          const struct expert_table *t)
{
    char name[96];
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        if (!m->hp.is_moe[il])
            continue;
        const struct layer *L = &m->layers[il], *F = &f->layers[il];
        const struct expert_matrix *x[3] = {&L->gate_exps, &L->up_exps, &L->down_exps};
        const struct expert_matrix *y[3] = {&F->gate_exps, &F->up_exps, &F->down_exps};
        for (int64_t e = 0; e < m->hp.n_expert; e++) {
            const struct expert_weights *w = expert_table_get(t, il, e);
            const uint8_t *data[3] = {w->gate, w->up, w->down};
            for (int j = 0; j < 3; j++) {
                struct kq_matrix W = model_expert(x[j], e), G = model_expert(y[j], e);
                CHECK(W.data == data[j] && W.layout == w->layout[j],
                      "block %lld expert %lld: the table and the model disagree", (long long)il,
                      (long long)e);
                snprintf(name, sizeof(name), "block %lld expert %lld matrix %d", (long long)il,
                         (long long)e, j);
                check_matrix(name, &W, &G, true);
            }
        }
    }
}

/* The mapping holds the file's bytes, read again with read(2). */
static void check_mapping_untouched(const struct model *m, const char *path)
{
    int fd = open(path, O_RDONLY);
    uint8_t *buf = malloc(1 << 20);
    int64_t differ = 0;
    size_t at = 0;
    for (ssize_t n; fd >= 0 && (n = read(fd, buf, 1 << 20)) > 0; at += (size_t)n)
        differ += at + (size_t)n > m->gguf->size || memcmp(m->gguf->base + at, buf, (size_t)n);
    CHECK(fd >= 0 && at == m->gguf->size && differ == 0,
          "the mapping no longer holds the file (%lld MiB pieces differ)", (long long)differ);
    free(buf);
    if (fd >= 0)
        close(fd);
}

/* Pointers of every dense matrix and expert tensor, to see that a second setup moves nothing. */
static size_t snapshot(const struct model *m, const void **out)
{
    size_t n = 0;
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        const struct layer *L = &m->layers[il];
        const void *p[] = {L->attn_q.data,      L->attn_k.data,  L->attn_v.data,
                           L->attn_output.data, L->conv_in.data, L->conv_out.data,
                           L->ffn_gate.data,    L->ffn_up.data,  L->ffn_down.data,
                           L->gate_exps.data,   L->up_exps.data, L->down_exps.data};
        for (size_t j = 0; j < sizeof(p) / sizeof(p[0]); j++)
            out[n++] = p[j];
    }
    out[n++] = m->output.data;
    return n;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: repack_test MODEL.gguf\n");
        return 2;
    }
    kq_init();
    x16_wanted = repack_layout() == KQ_LAYOUT_X16;
    struct mp_error err = {0};
    struct model *m = NULL, *f = NULL;
    struct tp_pool *tp = tp_new(2);
    struct fwd_state *st = NULL, *st2 = NULL;
    struct expert_backend eb = {0}, eb2 = {0};
    if (model_open(argv[1], &m, &err) || model_open(argv[1], &f, &err) ||
        fwd_state_new(m, 4, 16, tp, &st, &err) || eb_local_new(m, NULL, tp, 4, &eb, &err)) {
        fprintf(stderr, "repack_test: %s\n", err.msg);
        return 1;
    }
    struct expert_table *t = NULL;
    CHECK(expert_table_from_model(m, &t, &err) == 0, "%s", err.msg);
    check_dense(m, f);
    if (t)
        check_experts(m, f, t);
    check_mapping_untouched(m, argv[1]);
    printf("repack_test %s: %s layout, %lld matrices x16 (dense and experts), %lld kept row-major "
           "for their n_rows\n",
           argv[1], repack_layout_name(), (long long)n_x16, (long long)n_rows_kept_for_shape);

    const size_t n_ptr = (size_t)(12 * m->hp.n_layer + 1);
    const void **before = malloc(n_ptr * sizeof(*before)), **after = malloc(n_ptr * sizeof(*after));
    snapshot(m, before);
    CHECK(fwd_state_new(m, 4, 16, tp, &st2, &err) == 0 &&
              eb_local_new(m, NULL, tp, 4, &eb2, &err) == 0,
          "second setup: %s", err.msg);
    snapshot(m, after);
    CHECK(!memcmp(before, after, n_ptr * sizeof(*before)), "a second setup moved matrices");
    check_dense(m, f); /* and nothing was repacked twice */
    free(before);
    free(after);
    expert_table_free(t);
    eb_free(&eb);
    eb_free(&eb2);
    fwd_state_free(st);
    fwd_state_free(st2);
    model_close(m);
    model_close(f);
    tp_free(tp);
    return failures != 0;
}
