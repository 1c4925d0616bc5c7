/* kernels/kq_bench.c: matvec throughput per format, SIMD level and thread count, in GB/s of
 * weight bytes read (decode is memory-bound: the number to compare with the machine's
 * bandwidth). Also 16- and 64-token batches (prompt processing), where weights are reused from
 * cache, in G weight-elements per second summed over tokens. Not a test; usage:
 * kq_bench [MiB per matrix, default 256] [format...].
 * `kq_bench x16 [MiB] [format...]`: the x16 layout (kq_x16.h) of every format that has one, next
 * to the row-major dot/dot4: L2-resident ns per row-block per token for n_tok = 1, 4, 8, 32 (the
 * kernels' compute cost, minimum over repetitions), and single-token GB/s of weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/kq_impl.h"
#include "kernels/matmul.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Weights from the reference quantizer: realistic scales, no NaNs, every byte touched. */
static void fill_weights(enum kq_type type, uint8_t *w, int64_t n_cols, int64_t n_rows)
{
    const struct kq_format *f = kq_format(type);
    float *x = malloc((size_t)n_cols * sizeof(float));
    uint64_t s = 12345;
    for (int64_t r = 0; r < n_rows; r++) {
        if (r < 64) {
            for (int64_t i = 0; i < n_cols; i++) {
                s = s * 6364136223846793005ull + 1442695040888963407ull;
                x[i] = (float)((int64_t)(s >> 33) - (1ll << 30)) * 0x1p-30f;
            }
            f->from_f32(x, w + (size_t)r * kq_row_bytes(type, n_cols), n_cols);
        } else { /* quantizing 256 MiB is slow: repeat the first 64 rows */
            memcpy(w + (size_t)r * kq_row_bytes(type, n_cols),
                   w + (size_t)(r % 64) * kq_row_bytes(type, n_cols), kq_row_bytes(type, n_cols));
        }
    }
    free(x);
}

static double bench(struct tp_pool *pool, const struct kq_matrix *W, const void *xq,
                    size_t act_stride, int n_tok, float *y, int reps)
{
    kq_matmul(pool, W, xq, act_stride, n_tok, y, (size_t)W->n_rows); /* warm up */
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        kq_matmul(pool, W, xq, act_stride, n_tok, y, (size_t)W->n_rows);
        double dt = now_s() - t0;
        if (dt < best)
            best = dt;
    }
    return best;
}

static void empty_task(void *ctx, int ith, int nth)
{
    (void)ctx;
    (void)ith;
    (void)nth;
}

/* Cost of one tp_run with nothing to do: the floor under every parallel step. */
static void bench_pool(struct tp_pool *pool)
{
    const int steps = 100000;
    tp_run(pool, empty_task, NULL);
    const double t0 = now_s();
    for (int i = 0; i < steps; i++)
        tp_run(pool, empty_task, NULL);
    printf("tp_run with %d threads: %.2f us per step\n", tp_n_threads(pool),
           (now_s() - t0) / steps * 1e6);
}

/* ---- x16 mode: `kq_bench x16 [MiB] [format...]` ---- */

enum { L2_COLS = 2048, L2_ROWS = 64, L2_REPS = 2000 };

/* One pass over the L2 matrix: the row-major dot (n_tok 1) or dot4 (n_tok 4), or the x16 gemm
 * (x16 set) with n_tok tokens per call. */
struct l2_pass {
    const struct kq_format *f;
    const struct kq_x16_ops *x16;
    const uint8_t *w;
    size_t row_bytes;
    const uint8_t *xq;
    size_t act_stride;
    int n_tok;
    float *y;
};

static void l2_run(const struct l2_pass *p)
{
    float s[4];
    const void *a[4] = {p->xq, p->xq + p->act_stride, p->xq + 2 * p->act_stride,
                        p->xq + 3 * p->act_stride};
    if (p->x16) {
        for (int g = 0; g < L2_ROWS / KQ_X16_ROWS; g++)
            kq_x16_gemm(p->x16, L2_COLS, p->w + (size_t)g * KQ_X16_ROWS * p->row_bytes, p->xq,
                        p->act_stride, NULL, p->n_tok, p->y + g * KQ_X16_ROWS, L2_ROWS);
    } else if (p->n_tok == 4) {
        for (int r = 0; r < L2_ROWS; r++)
            p->f->dot4(L2_COLS, s, p->w + (size_t)r * p->row_bytes, a);
    } else {
        for (int r = 0; r < L2_ROWS; r++)
            p->f->dot(L2_COLS, s, p->w + (size_t)r * p->row_bytes, p->xq);
    }
}

/* ns per row-block (one row × one block of the format) per token: the minimum over L2_REPS
 * passes is the kernel's cost, repeatable even while other processes share the core. */
static double l2_ns(const struct l2_pass *p)
{
    double best = 1e30;
    for (int rep = 0; rep < L2_REPS; rep++) {
        const double t0 = now_s();
        l2_run(p);
        const double dt = now_s() - t0;
        best = dt < best ? dt : best;
    }
    return best / ((double)L2_ROWS * (double)(L2_COLS / p->f->block_elems) * p->n_tok) * 1e9;
}

static int bench_x16(int argc, char **argv)
{
    static const int toks[] = {1, 4, 8, 32};
    const double mib = argc > 2 ? atof(argv[2]) : 256;
    const int64_t K = 4096;
    const struct cpu_features cf = cpu_detect();
    struct tp_pool *pools[2] = {tp_new(1), tp_new(2)};
    float *x = malloc((size_t)(K * 32) * sizeof(float));
    float *yl2 = malloc((size_t)(L2_ROWS * 32) * sizeof(float));
    for (int64_t i = 0; i < K * 32; i++)
        x[i] = (float)((i * 7919) % 2001 - 1000) * 1e-3f;
    printf("L2-resident (%d x %d, min of %d, 1 thread): ns per row-block per token; "
           "%.0f MiB matrix, 1 token: GB/s of weights\n",
           L2_ROWS, L2_COLS, L2_REPS, mib);
    printf("%-6s %-6s %6s %6s | %6s %6s %6s %6s | %7s %7s %7s %7s\n", "format", "level", "dot",
           "dot4", "x16 1", "x16 4", "x16 8", "x16 32", "rows 1t", "rows 2t", "x16 1t", "x16 2t");
    for (int type = 0; type < KQ_TYPE_COUNT; type++) {
        kq_init_level(KQ_LEVEL_REF);
        const struct kq_format *f = kq_format((uint32_t)type);
        bool wanted = argc <= 3;
        for (int i = 3; i < argc; i++)
            wanted = wanted || (f && !strcmp(argv[i], f->name));
        if (!kq_x16_ops((enum kq_type)type) || !wanted)
            continue;
        const size_t row_bytes = kq_row_bytes((uint32_t)type, K);
        const int64_t M = (int64_t)(mib * 1048576.0 / (double)row_bytes) / 16 * 16;
        const size_t l2_row_bytes = kq_row_bytes((uint32_t)type, L2_COLS);
        uint8_t *w = malloc((size_t)M * row_bytes), *wx = malloc((size_t)M * row_bytes);
        uint8_t *l2w = malloc(L2_ROWS * l2_row_bytes), *l2x = malloc(L2_ROWS * l2_row_bytes);
        float *y = malloc((size_t)M * sizeof(float));
        const size_t act_stride = kq_act_row_bytes((enum kq_type)type, K);
        uint8_t *xq = malloc(act_stride * 32);
        if (!w || !wx || !l2w || !l2x || !y || !xq)
            return 2;
        fill_weights((enum kq_type)type, w, K, M);
        fill_weights((enum kq_type)type, l2w, L2_COLS, L2_ROWS);
        kq_x16_repack((enum kq_type)type, K, M, w, wx);
        kq_x16_repack((enum kq_type)type, L2_COLS, L2_ROWS, l2w, l2x);
        const struct kq_matrix W = {w, (enum kq_type)type, K, M, row_bytes, KQ_LAYOUT_ROWS};
        const struct kq_matrix WX = {wx, (enum kq_type)type, K, M, row_bytes, KQ_LAYOUT_X16};
        for (int lv = 0; lv <= (int)cf.level; lv++) {
            const enum kq_level level = kq_init_level((enum kq_level)lv);
            const struct kq_x16_ops *ops = kq_x16_ops((enum kq_type)type);
            f = kq_format((uint32_t)type);
            kq_convert_act(NULL, (enum kq_type)type, x, (size_t)K, 32, K, xq, act_stride);
            double ns[4], gbs[2][2];
            /* the L2 matrix is 2048 wide: its activations are the first half of each row */
            struct l2_pass pass = {f, NULL, l2w, l2_row_bytes, xq, act_stride, 1, yl2};
            const double dot = l2_ns(&pass);
            pass.n_tok = 4;
            const double dot4 = f->dot4 ? l2_ns(&pass) : 0;
            pass.x16 = ops;
            pass.w = l2x;
            for (int i = 0; i < 4; i++) {
                pass.n_tok = toks[i];
                ns[i] = l2_ns(&pass);
            }
            for (int p = 0; p < 2; p++) {
                gbs[0][p] = (double)M * (double)row_bytes /
                            bench(pools[p], &W, xq, act_stride, 1, y, 5) * 1e-9;
                gbs[1][p] = (double)M * (double)row_bytes /
                            bench(pools[p], &WX, xq, act_stride, 1, y, 5) * 1e-9;
            }
            printf("%-6s %-6s %6.2f %6.2f | %6.2f %6.2f %6.2f %6.2f | %7.2f %7.2f %7.2f %7.2f\n",
                   f->name, kq_level_name(level), dot, dot4, ns[0], ns[1], ns[2], ns[3],
                   gbs[0][0], gbs[0][1], gbs[1][0], gbs[1][1]);
            fflush(stdout);
        }
        free(xq);
        free(y);
        free(l2x);
        free(l2w);
        free(wx);
        free(w);
    }
    free(yl2);
    free(x);
    tp_free(pools[1]);
    tp_free(pools[0]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "x16"))
        return bench_x16(argc, argv);
    static const enum kq_type types[] = {KQ_Q4_K, KQ_Q5_K, KQ_Q6_K, KQ_Q8_0, KQ_Q4_0, KQ_Q5_0,
                                         KQ_F16, KQ_BF16, KQ_F32};
    const double mib = argc > 1 ? atof(argv[1]) : 256;
    const int64_t K = 4096, n_tok_batch = 64;
    static const int batches[2] = {16, 64};
    const struct cpu_features cf = cpu_detect();
    struct tp_pool *pools[2] = {tp_new(1), tp_new(2)};
    float *x = malloc((size_t)(K * n_tok_batch) * sizeof(float));
    for (int64_t i = 0; i < K * n_tok_batch; i++)
        x[i] = (float)((i * 7919) % 2001 - 1000) * 1e-3f;

    printf("%-6s %-6s %8s %8s %13s %13s %13s %13s\n", "format", "level", "1t GB/s", "2t GB/s",
           "b16 1t Gel/s", "b16 2t Gel/s", "b64 1t Gel/s", "b64 2t Gel/s");
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        kq_init_level(KQ_LEVEL_REF);
        const enum kq_type type = types[t];
        bool wanted = argc <= 2;
        for (int i = 2; i < argc; i++)
            wanted = wanted || !strcmp(argv[i], kq_format(type)->name);
        if (!wanted)
            continue;
        const size_t row_bytes = kq_row_bytes(type, K);
        const int64_t M = (int64_t)(mib * 1048576.0 / (double)row_bytes);
        uint8_t *w = malloc((size_t)M * row_bytes);
        float *y = malloc((size_t)(M * n_tok_batch) * sizeof(float));
        const size_t act_stride = kq_act_row_bytes(type, K);
        uint8_t *xq = malloc(act_stride * (size_t)n_tok_batch);
        if (!w || !y || !xq)
            return 2;
        fill_weights(type, w, K, M);
        const struct kq_matrix W = {w, type, K, M, row_bytes, KQ_LAYOUT_ROWS};
        /* a smaller matrix for the batches: 64 tokens over 256 MiB would take long on ref */
        const struct kq_matrix Wb = {w, type, K, M / 32, row_bytes, KQ_LAYOUT_ROWS};
        for (int lv = 0; lv <= (int)cf.level; lv++) {
            const enum kq_level level = kq_init_level((enum kq_level)lv);
            kq_convert_act(NULL, type, x, (size_t)K, (int)n_tok_batch, K, xq, act_stride);
            double gbs[2], gel[2][2];
            for (int p = 0; p < 2; p++) {
                double dt = bench(pools[p], &W, xq, act_stride, 1, y, 5);
                gbs[p] = (double)M * (double)row_bytes / dt * 1e-9;
                for (int b = 0; b < 2; b++) {
                    dt = bench(pools[p], &Wb, xq, act_stride, batches[b], y, 3);
                    gel[b][p] = (double)Wb.n_rows * (double)K * batches[b] / dt * 1e-9;
                }
            }
            printf("%-6s %-6s %8.2f %8.2f %13.2f %13.2f %13.2f %13.2f\n", kq_format(type)->name,
                   kq_level_name(level), gbs[0], gbs[1], gel[0][0], gel[0][1], gel[1][0],
                   gel[1][1]);
            fflush(stdout);
        }
        free(xq);
        free(y);
        free(w);
    }
    free(x);
    bench_pool(pools[1]);
    tp_free(pools[1]);
    tp_free(pools[0]);
    return 0;
}
