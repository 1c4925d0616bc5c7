/* kernels/matmul.c: y = W·x over the thread pool, as llama.cpp's CPU mul_mat computes it (see
 * matmul.h): activations converted once to the weight format's act_type, then one table `dot`
 * per output. Threads split the rows of W; results do not depend on the split because every
 * output is one whole dot. A parallel step is one queue of 16-row slots over all its products,
 * taken in shrinking ranges (grab_size).
 *
 * For a batch, each chunk of weight rows is multiplied by all tokens before moving on, so the
 * chunk is read from memory once per batch and then from L1/L2 (CHUNK_ROWS below). Where the
 * format has a `dot4`, tokens go four at a time through it, so each weight block is decoded once
 * per four tokens (a tail of three too, padded); dot4 equals `dot` bit for bit, so outputs
 * do not depend on the batch. */
#include <stdatomic.h>
#include <stdbool.h>

#include "kernels/kq_impl.h"
#include "kernels/matmul.h"

/* Rows per chunk for batches: 16 rows of a 4096-wide Q8_0 matrix are 70 KB, so a chunk stays in
 * L2 while every token passes over it; 16 floats of y also fill exactly one cache line. */
#define CHUNK_ROWS 16
/* The longest grab is 1/CHUNKS_PER_THREAD of a thread's share of a step (grab_size). */
#define CHUNKS_PER_THREAD 8
/* Below this many elements converting activations on one thread beats waking the pool. */
#define CONVERT_INLINE_ELEMS 65536

size_t kq_act_row_bytes(enum kq_type wtype, int64_t n_cols)
{
    const struct kq_format *f = kq_format(wtype);
    return f ? kq_row_bytes(f->act_type, n_cols) : 0;
}

struct convert_job {
    const struct kq_format *act;
    const float *x;
    size_t x_stride;
    int n_tok;
    int64_t blocks_per_row;
    uint8_t *xq;
    size_t act_stride;
};

/* Thread ith converts a contiguous range of the n_tok × blocks_per_row blocks. */
static void convert_task(void *p, int ith, int nth)
{
    const struct convert_job *job = p;
    const int64_t total = job->n_tok * job->blocks_per_row;
    const int64_t be = job->act->block_elems;
    int64_t b = total * ith / nth;
    const int64_t end = total * (ith + 1) / nth;
    while (b < end) {
        const int64_t t = b / job->blocks_per_row, first = b % job->blocks_per_row;
        int64_t last = job->blocks_per_row;
        if (t * job->blocks_per_row + last > end)
            last = end - t * job->blocks_per_row;
        const float *x = job->x + (size_t)t * job->x_stride + (size_t)(first * be);
        uint8_t *out = job->xq + (size_t)t * job->act_stride +
                       (size_t)first * (size_t)job->act->block_bytes;
        job->act->from_f32(x, out, (last - first) * be);
        b = t * job->blocks_per_row + last;
    }
}

void kq_convert_act(struct tp_pool *pool, enum kq_type wtype, const float *x, size_t x_stride,
                    int n_tok, int64_t n_cols, void *xq, size_t act_stride)
{
    const struct kq_format *w = kq_format(wtype);
    const struct kq_format *act = w ? kq_format(w->act_type) : NULL;
    if (!act || n_tok <= 0)
        return;
    struct convert_job job = {act, x, x_stride, n_tok, n_cols / act->block_elems, xq, act_stride};
    if ((int64_t)n_tok * n_cols < CONVERT_INLINE_ELEMS)
        convert_task(&job, 0, 1);
    else
        tp_run(pool, convert_task, &job);
}

struct matmul_job {
    const struct kq_matrix *W;
    const struct kq_x16_ops *x16; /* a repacked W: whole 16-row groups, every token at once */
    kq_dot_fn dot;
    kq_dot4_fn dot4; /* NULL: every token through dot */
    const uint8_t *xq;
    size_t act_stride;
    const int32_t *rows; /* NULL: token t uses xq row t */
    int n_tok;
    float *y;
    size_t y_stride;
    int64_t tile_rows; /* rows multiplied by every token before the next ones (0: all) */
};

/* From this many tokens left, a dot4 with the last token repeated beats single dots: a Q4_K block
 * costs 4 x 3.8 ns through dot4 against 3 x 6.8 ns through dot for three tokens (L2-resident
 * microbenchmark, docs/perf.md), but 2 x 6.8 ns for two. */
#define DOT4_MIN_TAIL 3

/* Tokens t..t+3 through dot4; past n_tok the last token is repeated and its extra results are
 * dropped (dot4's outputs equal dot's, so padding changes nothing). */
static void chunk_dot4(const struct matmul_job *job, int t, int64_t r0, int64_t r1)
{
    const struct kq_matrix *W = job->W;
    const uint8_t *wdata = W->data;
    const int n = job->n_tok - t < 4 ? job->n_tok - t : 4;
    const void *a[4];
    float *y[4];
    for (int k = 0; k < 4; k++) {
        const int tk = t + (k < n ? k : n - 1);
        const int64_t src = job->rows ? job->rows[tk] : tk;
        a[k] = job->xq + (size_t)src * job->act_stride;
        y[k] = job->y + (size_t)tk * job->y_stride;
    }
    for (int64_t r = r0; r < r1; r++) {
        float s[4];
        job->dot4(W->n_cols, s, wdata + (size_t)r * W->row_bytes, a);
        for (int k = 0; k < n; k++)
            y[k][r] = s[k];
    }
}

/* A repacked W: chunks start on group boundaries (chunk sizes are multiples of 16 rows and
 * kq_x16_supported asked for n_rows a multiple of 16). */
static void chunk_x16(const struct matmul_job *job, int64_t r0, int64_t r1)
{
    const struct kq_matrix *W = job->W;
    for (int64_t r = r0; r < r1; r += KQ_X16_ROWS)
        kq_x16_gemm(job->x16, W->n_cols, (const uint8_t *)W->data + (size_t)r * W->row_bytes,
                    job->xq, job->act_stride, job->rows, job->n_tok, job->y + r, job->y_stride);
}

static void matmul_chunk(const struct matmul_job *job, int64_t r0, int64_t r1)
{
    const struct kq_matrix *W = job->W;
    const uint8_t *wdata = W->data;
    if (job->x16) {
        chunk_x16(job, r0, r1);
        return;
    }
    int t = 0;
    for (; job->dot4 && job->n_tok - t >= DOT4_MIN_TAIL; t += 4)
        chunk_dot4(job, t, r0, r1);
    for (; t < job->n_tok; t++) {
        const int64_t src = job->rows ? job->rows[t] : t;
        const uint8_t *a = job->xq + (size_t)src * job->act_stride;
        float *y = job->y + (size_t)t * job->y_stride;
        for (int64_t r = r0; r < r1; r++)
            job->dot(W->n_cols, &y[r], wdata + (size_t)r * W->row_bytes, a);
    }
}

/* Rows [r0, r1) for every token, CHUNK_ROWS at a time for a row-major batch (each tile stays in
 * L2 while every token passes over it). */
static void matmul_rows(const struct matmul_job *job, int64_t r0, int64_t r1)
{
    const int64_t tile = job->tile_rows ? job->tile_rows : r1 - r0;
    for (int64_t r = r0; r < r1; r += tile)
        matmul_chunk(job, r, r + tile < r1 ? r + tile : r1);
}

/* Products per parallel step; longer lists run as several steps. */
#define MULTI_MAX 64

/* Rows of a GLU pair finished together (activation and conversion of those columns of h): a
 * multiple of every act type's block (Q8_K's 256 elements, Q8_0's 32), so a unit's conversion
 * is whole blocks. */
#define GLU_UNIT_ROWS 256
/* Unit counters per step: 32 pairs of up to 64 units (n_ff 16384) in 8 KB of stack. */
#define GLU_MAX_UNITS 2048

/* The GLU part of a step (kq_matmul_glu): pair i is jobs 2i (gate) and 2i+1 (up). */
struct glu_step {
    kq_glu_fn act;
    const struct kq_format *hq_format; /* the down matrix's act type */
    const struct kq_glu *pair;
    int unit_base[MULTI_MAX / 2 + 1]; /* pair i's first counter in rows_done */
    _Atomic int32_t rows_done[GLU_MAX_UNITS]; /* gate + up rows computed per unit */
};

/* A step's products as one queue of 16-row slots (an x16 group each), product after product. */
struct multi_job {
    int n;
    int nth;
    struct matmul_job jobs[MULTI_MAX];
    int64_t first_slot[MULTI_MAX + 1]; /* global index of each product's first slot */
    _Atomic int64_t next_slot;
    struct glu_step *glu; /* NULL: plain products */
};

/* Unit [u0, u1) of a pair has its gate and up rows for every token: h = act(gate, up) over
 * them, converted into the hq rows' blocks u0 / block_elems on. */
static void glu_finish(const struct glu_step *g, const struct kq_glu *p, int64_t u0, int64_t u1)
{
    const struct kq_format *f = g->hq_format;
    const size_t at = (size_t)(u0 / f->block_elems) * (size_t)f->block_bytes;
    for (int t = 0; t < p->gate.n_tok; t++) {
        float *h = p->gate.y + (size_t)t * p->gate.y_stride + u0;
        g->act(h, p->up.y + (size_t)t * p->up.y_stride + u0, u1 - u0);
        f->from_f32(h, (uint8_t *)p->hq + (size_t)t * p->hq_stride + at, u1 - u0);
    }
}

/* Rows [r0, r1) of job j (a gate or an up) are done for every token: count them into their
 * units; the thread that completes a unit finishes it. acq_rel: the finisher sees the other
 * threads' outputs of the unit, and the step's end publishes its own. */
static void glu_rows_done(struct multi_job *mj, int j, int64_t r0, int64_t r1)
{
    struct glu_step *g = mj->glu;
    const struct kq_glu *p = &g->pair[j / 2];
    const int64_t n_rows = p->gate.W->n_rows;
    for (int64_t u0 = r0 / GLU_UNIT_ROWS * GLU_UNIT_ROWS; u0 < r1; u0 += GLU_UNIT_ROWS) {
        const int64_t u1 = u0 + GLU_UNIT_ROWS < n_rows ? u0 + GLU_UNIT_ROWS : n_rows;
        const int32_t mine = (int32_t)((r1 < u1 ? r1 : u1) - (r0 > u0 ? r0 : u0));
        _Atomic int32_t *done = &g->rows_done[g->unit_base[j / 2] + u0 / GLU_UNIT_ROWS];
        if (atomic_fetch_add_explicit(done, mine, memory_order_acq_rel) + mine == 2 * (u1 - u0))
            glu_finish(g, p, u0, u1);
    }
}

/* Slots to take from `left` of a step of `total`: guided, a share of what is left that shrinks as
 * the queue drains, at most 1 / (CHUNKS_PER_THREAD * nth) of the step. The capped grabs are long
 * contiguous ranges (one stream from memory for the hardware prefetcher, often across several
 * matrices) and short enough that a thread descheduled mid-grab on a busy machine holds little
 * of the step; the last grabs are single 16-row groups, so threads finish within about one
 * group of each other instead of one fixed chunk (1/16 of an MoE layer's gate and up rows took
 * ~50 us per thread at this machine's bandwidth). */
static int64_t grab_size(int64_t left, int64_t total, int nth)
{
    const int64_t cap = (total + CHUNKS_PER_THREAD * nth - 1) / (CHUNKS_PER_THREAD * nth);
    const int64_t take = left / (2 * (int64_t)nth);
    return take < 1 ? 1 : take > cap ? cap : take;
}

/* Slots [s0, s1) of the queue: the rows they cover in each product they span. *j is the product
 * holding s0 or an earlier one (the queue only moves forward). */
static void run_slots(struct multi_job *mj, int64_t s0, int64_t s1, int *j)
{
    while (s0 < s1) {
        while (s0 >= mj->first_slot[*j + 1])
            (*j)++;
        const struct matmul_job *job = &mj->jobs[*j];
        const int64_t end = s1 < mj->first_slot[*j + 1] ? s1 : mj->first_slot[*j + 1];
        const int64_t r0 = (s0 - mj->first_slot[*j]) * KQ_X16_ROWS;
        const int64_t r1e = (end - mj->first_slot[*j]) * KQ_X16_ROWS;
        const int64_t r1 = r1e < job->W->n_rows ? r1e : job->W->n_rows;
        matmul_rows(job, r0, r1);
        if (mj->glu)
            glu_rows_done(mj, *j, r0, r1);
        s0 = end;
    }
}

/* Threads take slot ranges off the shared queue until it is empty. */
static void multi_task(void *p, int ith, int nth)
{
    struct multi_job *mj = p;
    const int64_t total = mj->first_slot[mj->n];
    (void)ith;
    (void)nth;
    int j = 0;
    int64_t s0 = atomic_load_explicit(&mj->next_slot, memory_order_relaxed);
    for (;;) {
        int64_t take;
        do {
            if (s0 >= total)
                return;
            take = grab_size(total - s0, total, mj->nth);
        } while (!atomic_compare_exchange_weak_explicit(&mj->next_slot, &s0, s0 + take,
                                                        memory_order_relaxed,
                                                        memory_order_relaxed));
        run_slots(mj, s0, s0 + take, &j);
        s0 = atomic_load_explicit(&mj->next_slot, memory_order_relaxed);
    }
}

/* True if mm can be computed (known format with a dot, some tokens and rows). */
static bool computable(const struct kq_mm *mm)
{
    const struct kq_format *f = kq_format(mm->W->type);
    return f && f->dot && mm->n_tok > 0 && mm->W->n_rows > 0;
}

static void multi_init(struct multi_job *mj, struct tp_pool *pool)
{
    mj->n = 0;
    mj->nth = tp_n_threads(pool);
    mj->first_slot[0] = 0;
    mj->glu = NULL;
}

/* Appends product mm to the step. A row-major batch goes CHUNK_ROWS rows at a time for the
 * caches; single tokens and repacked matrices take whole grabs (an x16 gemm passes every token
 * over one 16-row group before the next, whatever the range). */
static void multi_add(struct multi_job *mj, const struct kq_mm *mm)
{
    const struct kq_format *f = kq_format(mm->W->type);
    const struct kq_x16_ops *x16 =
        mm->W->layout == KQ_LAYOUT_X16 ? kq_x16_ops(mm->W->type) : NULL;
    const int64_t tile = mm->n_tok != 1 && !x16 ? CHUNK_ROWS : 0;
    const int64_t slots = (mm->W->n_rows + KQ_X16_ROWS - 1) / KQ_X16_ROWS;
    mj->jobs[mj->n] = (struct matmul_job){mm->W, x16, f->dot, f->dot4, mm->xq, mm->act_stride,
                                          mm->rows, mm->n_tok, mm->y, mm->y_stride, tile};
    mj->first_slot[mj->n + 1] = mj->first_slot[mj->n] + slots;
    mj->n++;
}

static void multi_launch(struct tp_pool *pool, struct multi_job *mj)
{
    if (mj->n == 0)
        return;
    atomic_init(&mj->next_slot, 0);
    if (mj->nth == 1 || mj->first_slot[mj->n] == 1)
        multi_task(mj, 0, 1);
    else
        tp_run(pool, multi_task, mj);
}

static void multi_step(struct tp_pool *pool, int n, const struct kq_mm *mm)
{
    struct multi_job mj;
    multi_init(&mj, pool);
    for (int i = 0; i < n; i++)
        if (computable(&mm[i]))
            multi_add(&mj, &mm[i]);
    multi_launch(pool, &mj);
}

void kq_matmul_multi(struct tp_pool *pool, int n, const struct kq_mm *mm)
{
    for (int i = 0; i < n; i += MULTI_MAX)
        multi_step(pool, n - i < MULTI_MAX ? n - i : MULTI_MAX, mm + i);
}

static int64_t glu_units(const struct kq_glu *p)
{
    return (p->gate.W->n_rows + GLU_UNIT_ROWS - 1) / GLU_UNIT_ROWS;
}

/* A pair the fused step can take: both products computable over the same rows and tokens, the
 * rows whole blocks of the down's act type, units that fit one step's counters. */
static bool glu_fusable(const struct kq_glu *p, const struct kq_format *hq)
{
    return computable(&p->gate) && computable(&p->up) &&
           p->gate.W->n_rows == p->up.W->n_rows && p->gate.n_tok == p->up.n_tok &&
           p->gate.W->n_rows % hq->block_elems == 0 && GLU_UNIT_ROWS % hq->block_elems == 0 &&
           glu_units(p) <= GLU_MAX_UNITS;
}

/* Pairs [0, n) as one step (they fit: at most MULTI_MAX / 2 pairs and GLU_MAX_UNITS units). */
static void glu_step(struct tp_pool *pool, const struct kq_format *hq, kq_glu_fn act, int n,
                     const struct kq_glu *glu)
{
    struct multi_job mj;
    struct glu_step g;
    multi_init(&mj, pool);
    g.act = act;
    g.hq_format = hq;
    g.pair = glu;
    g.unit_base[0] = 0;
    for (int i = 0; i < n; i++) {
        multi_add(&mj, &glu[i].gate);
        multi_add(&mj, &glu[i].up);
        g.unit_base[i + 1] = g.unit_base[i] + (int)glu_units(&glu[i]);
    }
    for (int u = 0; u < g.unit_base[n]; u++)
        atomic_init(&g.rows_done[u], 0);
    mj.glu = &g;
    multi_launch(pool, &mj);
}

/* The same arithmetic one phase after the other, for pairs the fused step cannot take. */
static void glu_unfused(struct tp_pool *pool, enum kq_type down_type, kq_glu_fn act,
                        const struct kq_glu *p)
{
    const struct kq_mm mm[2] = {p->gate, p->up};
    kq_matmul_multi(pool, 2, mm);
    if (!computable(&p->gate))
        return;
    for (int t = 0; t < p->gate.n_tok; t++)
        act(p->gate.y + (size_t)t * p->gate.y_stride, p->up.y + (size_t)t * p->up.y_stride,
            p->gate.W->n_rows);
    kq_convert_act(pool, down_type, p->gate.y, p->gate.y_stride, p->gate.n_tok,
                   p->gate.W->n_rows, p->hq, p->hq_stride);
}

void kq_matmul_glu(struct tp_pool *pool, enum kq_type down_type, kq_glu_fn act, int n,
                   const struct kq_glu *glu)
{
    const struct kq_format *w = kq_format(down_type);
    const struct kq_format *hq = w ? kq_format(w->act_type) : NULL;
    int first = 0, units = 0; /* pairs [first, i) wait to run as one fused step */
    for (int i = 0; i < n; i++) {
        if (!hq || !hq->from_f32 || !glu_fusable(&glu[i], hq)) {
            if (i > first)
                glu_step(pool, hq, act, i - first, glu + first);
            glu_unfused(pool, down_type, act, &glu[i]);
            first = i + 1;
            units = 0;
            continue;
        }
        if (i - first == MULTI_MAX / 2 || units + glu_units(&glu[i]) > GLU_MAX_UNITS) {
            glu_step(pool, hq, act, i - first, glu + first);
            first = i;
            units = 0;
        }
        units += (int)glu_units(&glu[i]);
    }
    if (n > first)
        glu_step(pool, hq, act, n - first, glu + first);
}

void kq_matmul(struct tp_pool *pool, const struct kq_matrix *W, const void *xq, size_t act_stride,
               int n_tok, float *y, size_t y_stride)
{
    const struct kq_mm mm = {W, xq, act_stride, NULL, n_tok, y, y_stride};
    multi_step(pool, 1, &mm);
}

void kq_matmul_rows(struct tp_pool *pool, const struct kq_matrix *W, const void *xq,
                    size_t act_stride, const int32_t *rows, int n_tok, float *y, size_t y_stride)
{
    const struct kq_mm mm = {W, xq, act_stride, rows, n_tok, y, y_stride};
    multi_step(pool, 1, &mm);
}

void kq_matrix_row_to_f32(const struct kq_matrix *W, int64_t r, float *y)
{
    if (W->layout == KQ_LAYOUT_X16)
        kq_x16_row_to_f32(W->type, W->n_cols, W->data, r, y);
    else
        kq_format(W->type)->to_f32((const uint8_t *)W->data + (size_t)r * W->row_bytes, y,
                                   W->n_cols);
}

size_t kq_act_row_bytes_max(int64_t n_cols)
{
    return ((size_t)n_cols * sizeof(float) + 63) / 64 * 64;
}
