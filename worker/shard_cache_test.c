/* worker/shard_cache_test.c MODEL.gguf: a worker's cache built from the header and the expert
 * ranges (as the coordinator would stream them) stands in for the model file.
 *
 * The cache is filled in two sessions: the header and half of the ranges, close, reopen (only
 * the other half is missing), the rest in reverse order and odd-sized chunks. The cache file then
 * opens with model_open, has the model's fingerprint, and a shard loaded from it gives logits equal
 * bit for bit to the in-process ones. Also: wrong sizes, out-of-file writes, a torn record line,
 * the default directory. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/check.h"
#include "kernels/kq.h"
#include "model/eb_local.h"
#include "model/fingerprint.h"
#include "worker/shard_cache.h"
#include "worker/shard_load.h"
#include "worker/shard_testutil.h"

static struct model *m;
static struct tp_pool *tp;
static char dir[64] = "/tmp/shard_cache_test_XXXXXX";

/* Writes range r from the model's mapping in chunks of `chunk` bytes, last chunk first. */
static void put_range(struct shard_cache *c, struct file_range r, size_t chunk)
{
    struct mp_error err = {0};
    size_t n_chunks = (size_t)((r.len + chunk - 1) / chunk);
    for (size_t i = n_chunks; i-- > 0;) {
        uint64_t off = r.offset + i * chunk;
        size_t len = (size_t)(r.offset + r.len - off < chunk ? r.offset + r.len - off : chunk);
        CHECK(shard_cache_write(c, off, m->gguf->base + off, len, &err) == 0, "write: %s", err.msg);
    }
}

static size_t count_missing(struct shard_cache *c, const struct file_range *want, size_t n,
                            uint64_t *bytes)
{
    struct file_range *miss = NULL;
    size_t n_miss = 0;
    struct mp_error err = {0};
    CHECK(shard_cache_missing(c, want, n, &miss, &n_miss, &err) == 0, "missing: %s", err.msg);
    *bytes = 0;
    for (size_t i = 0; i < n_miss; i++)
        *bytes += miss[i].len;
    free(miss);
    return n_miss;
}

static void check_build_and_use(const char *model_path, const float *reference)
{
    struct mp_error err = {0};
    struct model_fingerprint fp;
    CHECK(fingerprint_file(model_path, &fp, &err) == 0, "fingerprint: %s", err.msg);
    struct expert_ref *refs = NULL;
    size_t n_refs = 0;
    struct file_range *want = NULL;
    size_t n_want = 0;
    if (expert_refs_all(m, &refs, &n_refs, &err) ||
        shard_file_ranges(m, refs, n_refs, &want, &n_want, &err)) {
        CHECK(0, "ranges: %s", err.msg);
        return;
    }
    uint64_t want_bytes = 0, bytes;
    for (size_t i = 0; i < n_want; i++)
        want_bytes += want[i].len;

    struct shard_cache *c = NULL;
    CHECK(shard_cache_open(dir, fp, m->gguf->size, &c, &err) == 0, "open: %s", err.msg);
    if (!c)
        return;
    CHECK(count_missing(c, want, n_want, &bytes) == n_want && bytes == want_bytes,
          "a new cache is missing %llu of %llu bytes", (unsigned long long)bytes,
          (unsigned long long)want_bytes);
    CHECK(shard_cache_check_header(c, &err) == MP_ENOTFOUND, "header check before the header");
    const size_t half = n_want / 2;
    for (size_t i = 0; i < half; i++) /* want[0] is the header */
        put_range(c, want[i], 1 << 20);
    CHECK(shard_cache_sync(c, &err) == 0, "sync: %s", err.msg);
    CHECK(shard_cache_check_header(c, &err) == 0, "header: %s", err.msg);
    shard_cache_close(c);

    c = NULL;
    CHECK(shard_cache_open(dir, fp, m->gguf->size, &c, &err) == 0, "reopen: %s", err.msg);
    if (!c)
        return;
    CHECK(count_missing(c, want, n_want, &bytes) == n_want - half, "after reopen %zu missing",
          count_missing(c, want, n_want, &bytes));
    for (size_t i = n_want; i-- > half;)
        put_range(c, want[i], 777); /* odd chunks, back to front */
    CHECK(count_missing(c, want, n_want, &bytes) == n_want - half, "unsynced writes counted");
    CHECK(shard_cache_sync(c, &err) == 0, "sync: %s", err.msg);
    CHECK(count_missing(c, want, n_want, &bytes) == 0, "%llu bytes still missing",
          (unsigned long long)bytes);

    struct model_fingerprint cfp;
    CHECK(fingerprint_file(shard_cache_path(c), &cfp, &err) == 0 && fingerprint_eq(cfp, fp),
          "cache file fingerprint differs: %s", err.msg);
    struct model *cm = NULL;
    CHECK(model_open(shard_cache_path(c), &cm, &err) == 0, "model_open(cache): %s", err.msg);
    struct shard *s = NULL;
    if (cm)
        CHECK(shard_load(shard_cache_path(c), cm, refs, n_refs, NULL, NULL, &s, &err) == 0,
              "shard_load(cache): %s", err.msg);
    struct expert_backend eb;
    /* The worker computes experts only: the rest of the pass uses the real model, as the
     * coordinator does. */
    if (s && eb_local_new(m, s->table, tp, TEST_N_TOK, &eb, &err) == 0) {
        float *l = test_logits(m, tp, &eb);
        CHECK(test_logits_equal(reference, l, m->hp.n_vocab), "logits through the cache differ");
        free(l);
        eb_free(&eb);
    }
    shard_free(s);
    model_close(cm);
    shard_cache_close(c);
    free(refs);
    free(want);
}

static void check_bad_use(const char *model_path)
{
    struct mp_error err = {0};
    struct model_fingerprint fp;
    fingerprint_file(model_path, &fp, &err);
    struct shard_cache *c = NULL;
    CHECK(shard_cache_open(dir, fp, m->gguf->size + 1, &c, &err) == MP_ECORRUPT && !c,
          "wrong size accepted: %s", err.msg);
    struct model_fingerprint other = {.hi = 1, .lo = 2};
    CHECK(shard_cache_open(dir, other, 1000, &c, &err) == 0, "open other: %s", err.msg);
    if (!c)
        return;
    char b[16] = {0};
    CHECK(shard_cache_write(c, 995, b, 6, &err) == MP_ERANGE, "write past the end accepted");
    CHECK(shard_cache_write(c, 10, b, 10, &err) == 0, "write: %s", err.msg);
    CHECK(shard_cache_check_header(c, &err) == MP_ENOTFOUND, "no header yet");
    shard_cache_close(c);
    /* A torn record line (crash mid-append) and a line outside the file are ignored. */
    char rec[128];
    snprintf(rec, sizeof(rec), "%s/%016llx%016llx.ranges", dir, 1ull, 2ull);
    FILE *f = fopen(rec, "a");
    fputs("100 10\n5000 10\n200 3", f);
    fclose(f);
    CHECK(shard_cache_open(dir, other, 1000, &c, &err) == 0, "reopen other: %s", err.msg);
    struct file_range want[2] = {{0, 30}, {95, 20}}, *miss = NULL;
    size_t n_miss = 0;
    CHECK(shard_cache_missing(c, want, 2, &miss, &n_miss, &err) == 0, "missing: %s", err.msg);
    /* present: [10,20) and [100,110): missing [0,10) [20,30) [95,100) [110,115) */
    CHECK(n_miss == 4 && miss[0].offset == 0 && miss[0].len == 10 && miss[1].offset == 20 &&
              miss[2].offset == 95 && miss[2].len == 5 && miss[3].offset == 110 && miss[3].len == 5,
          "missing ranges wrong (%zu)", n_miss);
    free(miss);
    struct file_range out_of_file = {990, 20};
    CHECK(shard_cache_missing(c, &out_of_file, 1, &miss, &n_miss, &err) == MP_ERANGE,
          "range outside the file accepted");
    shard_cache_close(c);
}

static void check_default_dir(void)
{
    char buf[256];
    struct mp_error err = {0};
    setenv("XDG_CACHE_HOME", "/x/cache", 1);
    CHECK(shard_cache_default_dir(buf, sizeof(buf), &err) == 0 && !strcmp(buf, "/x/cache/moepool"),
          "xdg: %s", buf);
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/w", 1);
    CHECK(shard_cache_default_dir(buf, sizeof(buf), &err) == 0 &&
              !strcmp(buf, "/home/w/.cache/moepool"),
          "home: %s", buf);
    unsetenv("HOME");
    CHECK(shard_cache_default_dir(buf, sizeof(buf), &err) == MP_ENOTFOUND, "no home accepted");
}

int main(int argc, char **argv)
{
    struct mp_error err = {0};
    if (argc != 2) {
        fprintf(stderr, "usage: shard_cache_test MODEL.gguf\n");
        return 2;
    }
    kq_init();
    tp = tp_new(2);
    struct expert_backend eb;
    if (!mkdtemp(dir) || model_open(argv[1], &m, &err) ||
        eb_local_new(m, NULL, tp, TEST_N_TOK, &eb, &err)) {
        fprintf(stderr, "shard_cache_test: %s\n", err.msg);
        return 1;
    }
    float *reference = test_logits(m, tp, &eb);
    eb_free(&eb);
    if (reference)
        check_build_and_use(argv[1], reference);
    check_bad_use(argv[1]);
    check_default_dir();
    free(reference);
    model_close(m);
    tp_free(tp);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    if (!failures)
        printf("shard_cache_test %s: ok\n", argv[1]);
    return failures != 0;
}
