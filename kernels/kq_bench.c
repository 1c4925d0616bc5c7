/* kernels/kq_bench.c: matvec throughput per format, SIMD level and thread count, in GB/s of
 * weight bytes read (decode is memory-bound: the number to compare with the machine's
 * bandwidth). Also 16- and 64-token batches (prompt processing), where weights are reused from
 * cache, in G weight-elements per second summed over tokens. Not a test; usage:
 * kq_bench [MiB per matrix, default 256] [format...]. */
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

int main(int argc, char **argv)
{
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
