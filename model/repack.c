/* model/repack.c: see repack.h.
 *
 * Every matrix to repack is cut into pieces of whole 16-row groups (about PIECE_BYTES each) and
 * a few threads take pieces from one counter: a 100 MB head and two thousand 1 MB experts
 * balance the same way, and groups are independent, so pieces of one matrix may go to different
 * threads. Plain threads rather than the forward pass's pool: shard_load runs before any pool
 * exists, and tp_run may only be called by the pool's creator. */
#include "model/repack.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"

#define PIECE_BYTES (4u << 20) /* big enough to amortise a piece, small enough to balance */
#define MAX_THREADS 64

/* One matrix to repack from src into data (the same bytes for a shard: in place), and the
 * model's record of it (if any) to point to data once it is done. */
struct item {
    const uint8_t *src;
    uint8_t *data;
    enum kq_type type;
    int64_t n_cols, n_rows;
    struct kq_matrix *dense; /* points to data once repacked */
    const uint8_t **slot;    /* an expert's x16 pointer, set to data once repacked */
    bool from_file;          /* src is the GGUF mapping: drop its pages once copied */
};

struct item_list {
    struct item *v;
    size_t n, cap;
};

struct piece {
    const struct item *it;
    int64_t row0, n_rows;
};

struct run {
    const struct piece *p;
    size_t n;
    atomic_size_t next;
    atomic_int failed;
};

static enum kq_layout layout_wanted;
static pthread_once_t layout_once = PTHREAD_ONCE_INIT;
/* Serialises repacking the model's mapping: two callers must not repack the same bytes twice. */
static pthread_mutex_t model_mu = PTHREAD_MUTEX_INITIALIZER;

static void read_layout(void)
{
    const char *s = getenv("MOEPOOL_LAYOUT");
    layout_wanted = s && !strcmp(s, "rows") ? KQ_LAYOUT_ROWS : KQ_LAYOUT_X16;
    if (s && *s && strcmp(s, "rows") && strcmp(s, "x16"))
        mp_warn("MOEPOOL_LAYOUT=%s is neither rows nor x16: using x16", s);
}

enum kq_layout repack_layout(void)
{
    pthread_once(&layout_once, read_layout);
    return layout_wanted;
}

const char *repack_layout_name(void)
{
    return repack_layout() == KQ_LAYOUT_X16 ? "x16" : "rows";
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int list_add(struct item_list *l, struct item it, struct mp_error *err)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct item *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return mp_error_set(err, MP_ENOMEM, "out of memory for the repack list");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = it;
    return 0;
}

/* Unmaps the file's pages just repacked from this process (the page cache keeps them): RSS then
 * holds the repacked copy only, not both. A page shared with a neighbouring tensor is simply
 * faulted in again if that one is read. */
static void drop_file_pages(const uint8_t *p, size_t len)
{
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t start = (uintptr_t)p & ~(page - 1), end = (uintptr_t)p + len;
    madvise((void *)start, end - start, MADV_DONTNEED);
}

static void *repack_thread(void *arg)
{
    struct run *r = arg;
    for (size_t i; (i = atomic_fetch_add(&r->next, 1)) < r->n;) {
        const struct piece *p = &r->p[i];
        const size_t row_bytes = kq_row_bytes(p->it->type, p->it->n_cols);
        const size_t at = (size_t)p->row0 * row_bytes, len = (size_t)p->n_rows * row_bytes;
        if (kq_x16_repack(p->it->type, p->it->n_cols, p->n_rows, p->it->src + at, p->it->data + at))
            atomic_store(&r->failed, 1);
        else if (p->it->from_file)
            drop_file_pages(p->it->src + at, len);
    }
    return NULL;
}

static size_t cut_pieces(const struct item_list *l, struct piece *out)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        const struct item *it = &l->v[i];
        const size_t group = KQ_X16_ROWS * kq_row_bytes(it->type, it->n_cols);
        const int64_t rows =
            KQ_X16_ROWS * (int64_t)(PIECE_BYTES / group > 0 ? PIECE_BYTES / group : 1);
        for (int64_t r = 0; r < it->n_rows; r += rows) {
            if (out)
                out[n] = (struct piece){it, r, it->n_rows - r < rows ? it->n_rows - r : rows};
            n++;
        }
    }
    return n;
}

/* Gives every item of l its place in one new anonymous region, kept in m->repack until
 * model_close. Huge pages where the kernel allows: a few thousand faults for gigabytes instead
 * of a million. */
static int place_in_region(const struct model *m, struct item_list *l, struct mp_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < l->n; i++)
        total += (l->v[i].n_rows * kq_row_bytes(l->v[i].type, l->v[i].n_cols) + 63) / 64 * 64;
    if (!total)
        return 0;
    struct model_repack *r = m->repack;
    struct repack_region *v = realloc(r->regions, (r->n_regions + 1) * sizeof(*v));
    if (!v)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    r->regions = v;
    void *p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return mp_error_set(err, MP_ENOMEM, "out of memory for %zu bytes of repacked weights",
                            total);
    madvise(p, total, MADV_HUGEPAGE); /* advice only */
    r->regions[r->n_regions++] = (struct repack_region){p, total};
    size_t off = 0;
    for (size_t i = 0; i < l->n; i++) {
        l->v[i].data = (uint8_t *)p + off;
        off += (l->v[i].n_rows * kq_row_bytes(l->v[i].type, l->v[i].n_cols) + 63) / 64 * 64;
    }
    return 0;
}

/* Repacks every item of l on up to n_threads threads (0: one per online CPU) and fills st. On
 * failure some groups may be repacked and others not: the caller fails the load. */
static int run_items(const struct item_list *l, int n_threads, struct repack_stats *st,
                     struct mp_error *err)
{
    const double t0 = now_s();
    if (n_threads <= 0)
        n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    n_threads = n_threads < 1 ? 1 : n_threads > MAX_THREADS ? MAX_THREADS : n_threads;
    const size_t n_pieces = cut_pieces(l, NULL);
    if (n_threads > (int)n_pieces)
        n_threads = n_pieces ? (int)n_pieces : 1;
    struct piece *pieces = malloc((n_pieces ? n_pieces : 1) * sizeof(*pieces));
    if (!pieces)
        return mp_error_set(err, MP_ENOMEM, "out of memory for the repack pieces");
    cut_pieces(l, pieces);
    struct run r = {.p = pieces, .n = n_pieces};
    atomic_init(&r.next, 0);
    atomic_init(&r.failed, 0);
    pthread_t th[MAX_THREADS];
    int started = 0;
    while (started < n_threads - 1 && !pthread_create(&th[started], NULL, repack_thread, &r))
        started++; /* fewer threads than asked only makes it slower */
    repack_thread(&r);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(pieces);
    st->n_threads = started + 1;
    st->seconds = now_s() - t0;
    for (size_t i = 0; i < l->n; i++) {
        st->n_repacked++;
        st->bytes += (uint64_t)l->v[i].n_rows * kq_row_bytes(l->v[i].type, l->v[i].n_cols);
    }
    if (atomic_load(&r.failed))
        return mp_error_set(err, MP_ENOMEM, "out of memory while repacking the weights");
    return 0;
}

/* Shards log at info level (a worker's load is a server's start-up); the model's own repacking
 * at debug level, since commands like `moepool run` keep stderr to one line: they report it
 * through repack_summary. */
static void log_stats(enum mp_log_level level, const char *what, const struct repack_stats *st)
{
    mp_log(level,
           "%s: x16 layout: %lld matrices (%.1f MB) repacked in %.2f s on %d threads, %lld kept "
           "row-major",
           what, (long long)st->n_repacked, (double)st->bytes / 1e6, st->seconds, st->n_threads,
           (long long)st->n_kept);
}

static void add_to_model(const struct model *m, const struct repack_stats *st)
{
    m->repack->n_repacked += st->n_repacked;
    m->repack->n_kept += st->n_kept;
    m->repack->bytes += st->bytes;
    m->repack->seconds += st->seconds;
}

void repack_summary(const struct model *m, char *buf, size_t n)
{
    const struct model_repack *r = m->repack;
    if (repack_layout() != KQ_LAYOUT_X16)
        snprintf(buf, n, "row-major layout (MOEPOOL_LAYOUT=rows)");
    else
        snprintf(buf, n,
                 "x16 layout: %lld matrices (%.2f GB) repacked in %.2f s, %lld kept "
                 "row-major",
                 (long long)r->n_repacked, (double)r->bytes / 1e9, r->seconds,
                 (long long)r->n_kept);
}

/* Adds W (the model's, in its mapping) if it is row-major and can be repacked; counts it as kept
 * if it cannot. */
static int consider_dense(const struct model *m, struct kq_matrix *W, struct item_list *l,
                          struct repack_stats *st, struct mp_error *err)
{
    if (W->layout != KQ_LAYOUT_ROWS)
        return 0;
    if (!kq_x16_supported(W->type, W->n_cols, W->n_rows)) {
        st->n_kept++;
        return 0;
    }
    (void)m;
    return list_add(l,
                    (struct item){.src = W->data,
                                  .type = W->type,
                                  .n_cols = W->n_cols,
                                  .n_rows = W->n_rows,
                                  .dense = W,
                                  .from_file = true},
                    err);
}

/* The dense matrices the forward pass multiplies by, in the model. An untied token embedding is
 * only ever read one row at a time and stays as it is; a tied one is the head. */
static size_t dense_matrices(struct model *m, struct kq_matrix **out)
{
    size_t n = 0;
    for (int64_t il = 0; il < m->hp.n_layer; il++) {
        struct layer *L = &m->layers[il];
        if (L->kind == LAYER_ATTENTION) {
            out[n++] = &L->attn_q;
            out[n++] = &L->attn_k;
            out[n++] = &L->attn_v;
            out[n++] = &L->attn_output;
        } else {
            out[n++] = &L->conv_in;
            out[n++] = &L->conv_out;
        }
        if (!L->is_moe) {
            out[n++] = &L->ffn_gate;
            out[n++] = &L->ffn_up;
            out[n++] = &L->ffn_down;
        }
    }
    out[n++] = &m->output;
    return n;
}

static int repack_dense_locked(struct model *m, int n_threads, struct mp_error *err)
{
    struct kq_matrix **W = malloc((size_t)(7 * m->hp.n_layer + 1) * sizeof(*W));
    if (!W)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    const size_t n = dense_matrices(m, W);
    struct item_list l = {0};
    struct repack_stats st = {0};
    int rc = 0;
    for (size_t i = 0; !rc && i < n; i++)
        rc = consider_dense(m, W[i], &l, &st, err);
    const bool tied = m->tok_embd.data == m->output.data;
    if (!rc)
        rc = place_in_region(m, &l, err);
    if (!rc)
        rc = run_items(&l, n_threads, &st, err);
    if (!rc) {
        for (size_t i = 0; i < l.n; i++) {
            l.v[i].dense->data = l.v[i].data;
            l.v[i].dense->layout = KQ_LAYOUT_X16;
        }
        if (tied)
            m->tok_embd = m->output;
        log_stats(MP_LOG_DEBUG, "model: dense", &st);
        add_to_model(m, &st);
    }
    free(l.v);
    free(W);
    return rc;
}

/* The model is always allocated by model_from_gguf, never a const object: casting the const
 * away is defined. Only the repacked matrices' data and layout and the flags change (repack.h
 * says why the interface takes a const model). */
int repack_model_dense(const struct model *m, int n_threads, struct mp_error *err)
{
    if (repack_layout() != KQ_LAYOUT_X16)
        return 0;
    struct model *mm = (struct model *)(uintptr_t)m;
    pthread_mutex_lock(&model_mu);
    int rc = mm->dense_repacked ? 0 : repack_dense_locked(mm, n_threads, err);
    mm->dense_repacked = rc == 0;
    pthread_mutex_unlock(&model_mu);
    return rc;
}

static struct expert_matrix *projection(struct layer *L, int j)
{
    return j == 0 ? &L->gate_exps : j == 1 ? &L->up_exps : &L->down_exps;
}

/* Adds every expert of x (block il) that t holds (every one if t is NULL) and is still in the
 * file's layout; counts those that cannot be repacked as kept. */
static int consider_experts(const struct model *m, int64_t il, struct expert_matrix *x,
                            const struct expert_table *t, struct item_list *l,
                            struct repack_stats *st, struct mp_error *err)
{
    (void)m;
    const bool ok = kq_x16_supported(x->type, x->n_cols, x->n_rows);
    for (int64_t e = 0; e < x->n_expert; e++) {
        if ((t && !expert_table_holds(t, il, e)) || x->x16[e])
            continue;
        int rc = 0;
        if (!ok)
            st->n_kept++;
        else
            rc = list_add(l,
                          (struct item){.src = x->data + (size_t)e * x->expert_bytes,
                                        .type = x->type,
                                        .n_cols = x->n_cols,
                                        .n_rows = x->n_rows,
                                        .slot = &x->x16[e],
                                        .from_file = true},
                          err);
        if (rc)
            return rc;
    }
    return 0;
}

static int repack_experts_locked(const struct model *m, struct expert_table *t, int n_threads,
                                 struct mp_error *err)
{
    struct item_list l = {0};
    struct repack_stats st = {0};
    int rc = 0;
    for (int64_t il = 0; !rc && il < m->hp.n_layer; il++)
        for (int j = 0; !rc && m->hp.is_moe[il] && j < 3; j++)
            rc = consider_experts(m, il, projection(&m->layers[il], j), t, &l, &st, err);
    if (!rc)
        rc = place_in_region(m, &l, err);
    if (!rc)
        rc = run_items(&l, n_threads, &st, err);
    for (size_t i = 0; !rc && i < l.n; i++)
        *l.v[i].slot = l.v[i].data;
    for (int64_t i = 0; !rc && t && i < t->n_layer * t->n_expert; i++)
        if (t->w[i].gate)
            t->w[i] = expert_weights_of(&m->layers[i / t->n_expert], i % t->n_expert);
    if (!rc && (st.n_repacked || st.n_kept))
        log_stats(MP_LOG_DEBUG, "model: experts", &st);
    if (!rc)
        add_to_model(m, &st);
    free(l.v);
    return rc;
}

int repack_model_experts(const struct model *m, struct expert_table *t, int n_threads,
                         struct mp_error *err)
{
    if (repack_layout() != KQ_LAYOUT_X16)
        return 0;
    pthread_mutex_lock(&model_mu);
    int rc = repack_experts_locked(m, t, n_threads, err);
    pthread_mutex_unlock(&model_mu);
    return rc;
}

int repack_expert_table(struct expert_table *t, const struct model *m, int n_threads,
                        struct repack_stats *st_out, struct mp_error *err)
{
    struct repack_stats st = {0};
    if (repack_layout() != KQ_LAYOUT_X16) {
        if (st_out)
            *st_out = st;
        return 0;
    }
    struct item_list l = {0};
    int rc = 0;
    for (int64_t i = 0; !rc && i < t->n_layer * t->n_expert; i++) {
        struct expert_weights *w = &t->w[i];
        const uint8_t *data[3] = {w->gate, w->up, w->down};
        for (int j = 0; !rc && data[0] && j < 3; j++) {
            const struct expert_matrix *x = projection(&m->layers[i / t->n_expert], j);
            if (w->layout[j] != KQ_LAYOUT_ROWS)
                continue;
            if (!kq_x16_supported(x->type, x->n_cols, x->n_rows))
                st.n_kept++;
            else /* the caller's own writable memory (repack.h) */
                rc = list_add(&l,
                              (struct item){.src = data[j],
                                            .data = (uint8_t *)(uintptr_t)data[j],
                                            .type = x->type,
                                            .n_cols = x->n_cols,
                                            .n_rows = x->n_rows},
                              err);
        }
    }
    if (!rc)
        rc = run_items(&l, n_threads, &st, err);
    for (int64_t i = 0; !rc && i < t->n_layer * t->n_expert; i++)
        for (int j = 0; t->w[i].gate && j < 3; j++) {
            const struct expert_matrix *x = projection(&m->layers[i / t->n_expert], j);
            if (kq_x16_supported(x->type, x->n_cols, x->n_rows))
                t->w[i].layout[j] = KQ_LAYOUT_X16;
        }
    if (!rc && (st.n_repacked || st.n_kept))
        log_stats(MP_LOG_INFO, "shard: experts", &st);
    if (st_out)
        *st_out = st;
    free(l.v);
    return rc;
}
