/* model/gguf_test.c: the GGUF reader against files built byte by byte here: a valid file with
 * every value type reads back exactly; every truncation and a catalogue of corruptions fail with
 * MP_ECORRUPT (or MP_EUNSUPPORTED) and a message, never a crash or an out-of-bounds read (run
 * under ASan to make that last claim a check). `gguf_test --write-seeds DIR` writes the valid file
 * as a seed for the fuzzer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/check.h"
#include "kernels/kq.h"
#include "model/gguf.h"


struct buf {
    uint8_t *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *src, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(struct buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(struct buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(struct buf *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_key(struct buf *b, const char *key, uint32_t type)
{
    put_str(b, key);
    put_u32(b, type);
}
static void pad_to(struct buf *b, size_t align)
{
    static const uint8_t zero[64];
    while (b->n % align)
        put(b, zero, 1);
}

/* Knobs for building broken variants of the valid file. */
struct variant {
    uint32_t version;
    uint32_t alignment;
    int dup_key, dup_tensor, nested_array, bad_bool, n_dims5, neg_dim, bad_type, odd_q8_row;
    int gap_offset, long_name;
};

enum { N_TENSORS = 3 };

static void put_kvs(struct buf *b, const struct variant *v)
{
    put_key(b, "general.architecture", GGUF_STRING);
    put_str(b, "test");
    put_key(b, "general.alignment", GGUF_U32);
    put_u32(b, v->alignment);
    put_key(b, "t.u8", GGUF_U8);
    put(b, "\xfe", 1);
    put_key(b, "t.i16", GGUF_I16);
    put(b, "\xfe\xff", 2); /* -2 */
    put_key(b, "t.f32", GGUF_F32);
    float f = 1.5f;
    put(b, &f, 4);
    put_key(b, "t.bool", GGUF_BOOL);
    put(b, v->bad_bool ? "\x02" : "\x01", 1);
    put_key(b, "t.u64", GGUF_U64);
    put_u64(b, 1ull << 40);
    put_key(b, "t.f64", GGUF_F64);
    double d = -0.25;
    put(b, &d, 8);
    put_key(b, v->dup_key ? "t.u8" : "t.arr_i32", GGUF_ARRAY);
    put_u32(b, v->nested_array ? GGUF_ARRAY : GGUF_I32);
    put_u64(b, 3);
    for (int32_t i = -1; i < 2; i++)
        put(b, &i, 4);
    put_key(b, "t.arr_str", GGUF_ARRAY);
    put_u32(b, GGUF_STRING);
    put_u64(b, 2);
    put_str(b, "a");
    put_str(b, "bc");
}

static void put_tensor(struct buf *b, const char *name, uint32_t n_dims, const int64_t *ne,
                       uint32_t type, uint64_t offset)
{
    put_str(b, name);
    put_u32(b, n_dims);
    for (uint32_t d = 0; d < n_dims; d++)
        put(b, &ne[d], 8);
    put_u32(b, type);
    put_u64(b, offset);
}

/* Tensors: "a" F32 {4, 2} (32 bytes), "b" Q8_0 {32, 2} (68 bytes), "c" F16 {8} (16 bytes). */
static void put_tensors(struct buf *b, const struct variant *v, uint64_t *sizes)
{
    const uint64_t al = v->alignment;
    int64_t ne_a[5] = {4, v->neg_dim ? -2 : 2, 1, 1, 1}, ne_b[2] = {v->odd_q8_row ? 31 : 32, 2};
    int64_t ne_c[1] = {8};
    sizes[0] = 32;
    sizes[1] = v->odd_q8_row ? 0 : 68;
    sizes[2] = 16;
    uint64_t off_b = (sizes[0] + al - 1) / al * al;
    uint64_t off_c = off_b + (sizes[1] + al - 1) / al * al + (v->gap_offset ? al : 0);
    put_tensor(b, v->long_name ? "a_name_that_is_longer_than_sixty_three_bytes_which_ggml_cannot_hold"
                               : "a", v->n_dims5 ? 5 : 2, ne_a, KQ_F32, 0);
    put_tensor(b, v->dup_tensor ? "a" : "b", 2, ne_b, v->bad_type ? 99 : KQ_Q8_0, off_b);
    put_tensor(b, "c", 1, ne_c, KQ_F16, off_c);
    sizes[1] = off_c - off_b;
}

static struct buf build(const struct variant *v)
{
    struct buf b = {0};
    uint64_t sizes[N_TENSORS];
    put_u32(&b, GGUF_MAGIC);
    put_u32(&b, v->version);
    put_u64(&b, N_TENSORS);
    put_u64(&b, 10);
    put_kvs(&b, v);
    put_tensors(&b, v, sizes);
    pad_to(&b, v->alignment ? v->alignment : 32);
    for (int t = 0; t < N_TENSORS; t++) {
        uint8_t byte = (uint8_t)(0x10 * (t + 1));
        for (uint64_t i = 0; i < sizes[t]; i++)
            put(&b, &byte, 1);
    }
    return b;
}

static const struct variant valid = {.version = 3, .alignment = 32};

static int parse(const struct buf *b, struct gguf_file **f, struct mp_error *err)
{
    *err = (struct mp_error){0};
    return gguf_parse(b->p, b->n, "test.gguf", f, err);
}

static void test_valid(void)
{
    struct buf b = build(&valid);
    struct gguf_file *f;
    struct mp_error err;
    int rc = parse(&b, &f, &err);
    CHECK(rc == 0, "valid file rejected: %s", err.msg);
    if (rc)
        return;
    int64_t i;
    double x;
    bool flag;
    struct gguf_str s;
    const struct gguf_value *arr;
    CHECK(!gguf_get_int(f, "t.u8", &i, &err) && i == 254, "u8 %lld", (long long)i);
    CHECK(!gguf_get_int(f, "t.i16", &i, &err) && i == -2, "i16 %lld", (long long)i);
    CHECK(!gguf_get_int(f, "t.u64", &i, &err) && i == (1ll << 40), "u64");
    CHECK(!gguf_get_float(f, "t.f32", &x, &err) && x == 1.5, "f32 %g", x);
    CHECK(!gguf_get_float(f, "t.f64", &x, &err) && x == -0.25, "f64 %g", x);
    CHECK(!gguf_get_bool(f, "t.bool", &flag, &err) && flag, "bool");
    CHECK(!gguf_get_str(f, "general.architecture", &s, &err) && gguf_str_eq(s, "test"), "str");
    CHECK(!gguf_get_arr(f, "t.arr_i32", &arr, &err) && arr->arr.n == 3 &&
              gguf_arr_int(arr, 0) == -1 && gguf_arr_int(arr, 2) == 1, "i32 array");
    CHECK(!gguf_get_arr(f, "t.arr_str", &arr, &err) && arr->arr.n == 2 &&
              gguf_str_eq(arr->arr.str[1], "bc"), "string array");
    CHECK(gguf_get_int(f, "missing", &i, &err) == MP_ENOTFOUND, "missing key");
    CHECK(gguf_get_int(f, "t.f32", &i, &err) == MP_ECORRUPT, "wrong type accepted");
    const struct gguf_tensor *t = gguf_find_tensor(f, "b");
    CHECK(t && t->n_bytes == 68 && t->ne[0] == 32 && t->ne[1] == 2 && t->data[0] == 0x20,
          "tensor b");
    t = gguf_find_tensor(f, "c");
    CHECK(t && t->n_bytes == 16 && t->data[15] == 0x30 && t->data + 16 == b.p + b.n, "tensor c");
    CHECK(!gguf_find_tensor(f, "d"), "absent tensor found");
    gguf_close(f);
    free(b.p);
}

/* Every proper prefix of the file must be refused (the data of tensor c ends at EOF). */
static void test_truncations(void)
{
    struct buf b = build(&valid);
    for (size_t n = 0; n < b.n; n++) {
        struct buf cut = {.p = malloc(n ? n : 1), .n = n};
        memcpy(cut.p, b.p, n);
        struct gguf_file *f;
        struct mp_error err;
        int rc = parse(&cut, &f, &err);
        CHECK(rc == MP_ECORRUPT && strstr(err.msg, "test.gguf"),
              "prefix of %zu bytes: rc %d (%s)", n, rc, err.msg);
        if (!rc)
            gguf_close(f);
        free(cut.p);
    }
    free(b.p);
}

static void expect_error(struct variant v, int code, const char *needle)
{
    struct buf b = build(&v);
    struct gguf_file *f;
    struct mp_error err;
    int rc = parse(&b, &f, &err);
    CHECK(rc == code && strstr(err.msg, needle), "expected %d '%s', got %d '%s'", code, needle,
          rc, err.msg);
    if (!rc)
        gguf_close(f);
    free(b.p);
}

static void test_corruptions(void)
{
    struct variant v = valid;
    v.version = 1;
    expect_error(v, MP_EUNSUPPORTED, "version 1");
    v = valid, v.version = 4;
    expect_error(v, MP_EUNSUPPORTED, "version 4");
    v = valid, v.alignment = 24;
    expect_error(v, MP_ECORRUPT, "power of two");
    v = valid, v.dup_key = 1;
    expect_error(v, MP_ECORRUPT, "duplicate key 't.u8'");
    v = valid, v.dup_tensor = 1;
    expect_error(v, MP_ECORRUPT, "duplicate tensor name");
    v = valid, v.nested_array = 1;
    expect_error(v, MP_ECORRUPT, "nested");
    v = valid, v.bad_bool = 1;
    expect_error(v, MP_ECORRUPT, "boolean");
    v = valid, v.n_dims5 = 1;
    expect_error(v, MP_ECORRUPT, "dimension count");
    v = valid, v.neg_dim = 1;
    expect_error(v, MP_ECORRUPT, "negative dimension");
    v = valid, v.bad_type = 1;
    expect_error(v, MP_ECORRUPT, "unknown type id 99");
    v = valid, v.odd_q8_row = 1;
    expect_error(v, MP_ECORRUPT, "not a multiple");
    v = valid, v.gap_offset = 1;
    expect_error(v, MP_ECORRUPT, "packed");
    v = valid, v.long_name = 1;
    expect_error(v, MP_ECORRUPT, "longer than 63");
}

/* Counts far beyond the file must be refused before anything is allocated for them. */
static void test_huge_counts(void)
{
    struct buf b = build(&valid);
    uint64_t huge = UINT64_MAX / 2;
    struct gguf_file *f;
    struct mp_error err;
    memcpy(b.p + 8, &huge, 8); /* n_tensors */
    CHECK(parse(&b, &f, &err) == MP_ECORRUPT, "huge tensor count: %s", err.msg);
    b = (free(b.p), build(&valid));
    memcpy(b.p + 16, &huge, 8); /* n_kv */
    CHECK(parse(&b, &f, &err) == MP_ECORRUPT, "huge kv count: %s", err.msg);
    b = (free(b.p), build(&valid));
    memcpy(b.p + 24, &huge, 8); /* length of the first key */
    CHECK(parse(&b, &f, &err) == MP_ECORRUPT && strstr(err.msg, "past the end"),
          "huge string length: %s", err.msg);
    free(b.p);
}

/* Random single-byte changes anywhere in the header: any outcome but a crash is fine, and an
 * accepted file must still have all its tensors inside the buffer. */
static void test_mutations(void)
{
    struct buf b = build(&valid);
    uint64_t state = 0x9e3779b97f4a7c15ull;
    for (int iter = 0; iter < 20000; iter++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        size_t at = (size_t)(state >> 33) % b.n;
        uint8_t old = b.p[at];
        b.p[at] = (uint8_t)(state >> 20);
        struct gguf_file *f;
        struct mp_error err;
        if (!parse(&b, &f, &err)) {
            for (uint64_t t = 0; t < f->n_tensors; t++)
                CHECK(f->tensors[t].data + f->tensors[t].n_bytes <= b.p + b.n, "tensor outside");
            gguf_close(f);
        }
        b.p[at] = old;
    }
    free(b.p);
}

static int write_seed(const char *dir)
{
    char path[4096];
    struct buf b = build(&valid);
    snprintf(path, sizeof(path), "%s/valid.gguf", dir);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b.p, 1, b.n, f) == b.n;
    ok = f && !fclose(f) && ok;
    free(b.p);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    kq_init();
    if (argc == 3 && !strcmp(argv[1], "--write-seeds"))
        return write_seed(argv[2]);
    test_valid();
    test_truncations();
    test_corruptions();
    test_huge_counts();
    test_mutations();
    printf("gguf_test: %s (%d failures)\n", failures ? "FAILED" : "ok", failures);
    return failures ? 1 : 0;
}
