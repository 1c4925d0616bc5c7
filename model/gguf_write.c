/* model/gguf_write.c: the streaming GGUF v3 writer declared in gguf_write.h (format:
 * ../shared/docs/gguf.md §1). Keys are serialized into one growing buffer as they are added;
 * tensor infos are kept as structs until gguf_w_open lays out the header. Tensor data goes straight
 * to the file with pwrite at offsets fixed by the header, so several threads can write disjoint
 * ranges without locks; per-tensor byte counters catch a tensor that was left short. The alignment
 * is always ggml's default (32): no synthesized file needs another, and a fixed value keeps every
 * offset computable before any key is known. */
#include "model/gguf_write.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kq.h"

#define ALIGNMENT GGUF_DEFAULT_ALIGNMENT

struct tinfo {
    char name[GGUF_NAME_MAX];
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS];
    uint32_t type;
    uint64_t offset;  /* from the start of the data section */
    uint64_t n_bytes; /* unpadded */
};

struct gguf_writer {
    uint8_t *kv;           /* serialized key/value pairs, owned */
    size_t kv_len, kv_cap;
    uint64_t n_kv;
    char **keys;           /* copies, for duplicate checks */
    struct tinfo *t;       /* [n_t] */
    int n_t, cap_t;
    uint64_t data_bytes;   /* padded size of the data section */
    uint64_t data_offset;  /* set by gguf_w_open */
    char *path;
    int fd;                /* -1 until open */
    bool failed;           /* an I/O error happened: only abort is left */
    bool created;          /* we created path: abort may delete it */
    _Atomic uint64_t *written; /* [n_t] bytes received per tensor */
    int cur_t;             /* gguf_w_append's position */
    uint64_t cur_off;
};

static uint64_t align_up(uint64_t x)
{
    return (x + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
}

struct gguf_writer *gguf_w_new(void)
{
    struct gguf_writer *w = calloc(1, sizeof(*w));
    if (w)
        w->fd = -1;
    return w;
}

void gguf_w_free(struct gguf_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    for (uint64_t i = 0; i < w->n_kv; i++)
        free(w->keys[i]);
    free(w->keys);
    free(w->kv);
    free(w->t);
    free(w->path);
    free((void *)w->written);
    free(w);
}

/* ---- key/value serialization ---- */

static int put(struct gguf_writer *w, const void *src, size_t n, struct mp_error *err)
{
    if (n == 0) /* an empty array may come with data == NULL */
        return 0;
    if (w->kv_len + n > w->kv_cap) {
        size_t cap = (w->kv_len + n) * 2 + 4096;
        uint8_t *p = realloc(w->kv, cap);
        if (!p)
            return mp_error_set(err, MP_ENOMEM, "gguf writer: out of memory for metadata");
        w->kv = p;
        w->kv_cap = cap;
    }
    memcpy(w->kv + w->kv_len, src, n);
    w->kv_len += n;
    return 0;
}

static int put_u32(struct gguf_writer *w, uint32_t v, struct mp_error *err)
{
    return put(w, &v, 4, err);
}

static int put_u64(struct gguf_writer *w, uint64_t v, struct mp_error *err)
{
    return put(w, &v, 8, err);
}

static int put_str(struct gguf_writer *w, const char *s, struct mp_error *err)
{
    size_t n = strlen(s);
    int rc = put_u64(w, n, err);
    return rc ? rc : put(w, s, n, err);
}

/* Size in the file (and in C) of a scalar type; 0 for STRING, ARRAY and unknown ids. */
static size_t scalar_size(uint32_t type)
{
    static const uint8_t size[GGUF_VTYPE_COUNT] = {
        [GGUF_U8] = 1, [GGUF_I8] = 1, [GGUF_U16] = 2, [GGUF_I16] = 2, [GGUF_U32] = 4,
        [GGUF_I32] = 4, [GGUF_F32] = 4, [GGUF_BOOL] = 1, [GGUF_U64] = 8, [GGUF_I64] = 8,
        [GGUF_F64] = 8,
    };
    return type < GGUF_VTYPE_COUNT ? size[type] : 0;
}

/* Records the key (rejecting empty and duplicate keys) and serializes it with its type. */
static int begin_kv(struct gguf_writer *w, const char *key, uint32_t type, struct mp_error *err)
{
    if (w->fd >= 0 || w->failed)
        return mp_error_set(err, MP_EINVAL, "gguf writer: key %s added after the header", key);
    if (!key[0])
        return mp_error_set(err, MP_EINVAL, "gguf writer: empty key");
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key))
            return mp_error_set(err, MP_EINVAL, "gguf writer: duplicate key %s", key);
    char **keys = realloc(w->keys, (w->n_kv + 1) * sizeof(*keys));
    if (!keys)
        return mp_error_set(err, MP_ENOMEM, "gguf writer: out of memory for key %s", key);
    w->keys = keys;
    if (!(keys[w->n_kv] = strdup(key)))
        return mp_error_set(err, MP_ENOMEM, "gguf writer: out of memory for key %s", key);
    w->n_kv++;
    int rc = put_str(w, key, err);
    return rc ? rc : put_u32(w, type, err);
}

int gguf_w_add_scalar(struct gguf_writer *w, const char *key, enum gguf_vtype type,
                      const void *value, struct mp_error *err)
{
    size_t n = scalar_size(type);
    if (!n)
        return mp_error_set(err, MP_EINVAL, "gguf writer: %s: %s is not a scalar type", key,
                            gguf_vtype_name(type));
    if (!strcmp(key, "general.alignment") &&
        (type != GGUF_U32 || *(const uint32_t *)value != ALIGNMENT))
        return mp_error_set(err, MP_EUNSUPPORTED, "gguf writer: only alignment %d is supported",
                            ALIGNMENT);
    uint8_t b;
    if (type == GGUF_BOOL) { /* a C bool's bytes are not guaranteed to be 0/1 */
        b = *(const bool *)value ? 1 : 0;
        value = &b;
    }
    int rc = begin_kv(w, key, type, err);
    return rc ? rc : put(w, value, n, err);
}

int gguf_w_add_u32(struct gguf_writer *w, const char *key, uint32_t v, struct mp_error *err)
{
    return gguf_w_add_scalar(w, key, GGUF_U32, &v, err);
}

int gguf_w_add_f32(struct gguf_writer *w, const char *key, float v, struct mp_error *err)
{
    return gguf_w_add_scalar(w, key, GGUF_F32, &v, err);
}

int gguf_w_add_bool(struct gguf_writer *w, const char *key, bool v, struct mp_error *err)
{
    return gguf_w_add_scalar(w, key, GGUF_BOOL, &v, err);
}

int gguf_w_add_str(struct gguf_writer *w, const char *key, const char *s, struct mp_error *err)
{
    int rc = begin_kv(w, key, GGUF_STRING, err);
    return rc ? rc : put_str(w, s, err);
}

int gguf_w_add_arr(struct gguf_writer *w, const char *key, enum gguf_vtype elem_type,
                   const void *data, uint64_t n, struct mp_error *err)
{
    size_t size = scalar_size(elem_type);
    if (!size)
        return mp_error_set(err, MP_EINVAL, "gguf writer: %s: arrays of %s are not supported",
                            key, gguf_vtype_name(elem_type));
    if (n > SIZE_MAX / size)
        return mp_error_set(err, MP_ERANGE, "gguf writer: %s: array too long", key);
    int rc = begin_kv(w, key, GGUF_ARRAY, err);
    if (!rc)
        rc = put_u32(w, elem_type, err);
    if (!rc)
        rc = put_u64(w, n, err);
    if (rc || elem_type != GGUF_BOOL)
        return rc ? rc : put(w, data, (size_t)n * size, err);
    for (uint64_t i = 0; i < n && !rc; i++) {
        uint8_t b = ((const bool *)data)[i] ? 1 : 0;
        rc = put(w, &b, 1, err);
    }
    return rc;
}

int gguf_w_add_arr_str(struct gguf_writer *w, const char *key, const char *const *strs,
                       uint64_t n, struct mp_error *err)
{
    int rc = begin_kv(w, key, GGUF_ARRAY, err);
    if (!rc)
        rc = put_u32(w, GGUF_STRING, err);
    if (!rc)
        rc = put_u64(w, n, err);
    for (uint64_t i = 0; i < n && !rc; i++)
        rc = put_str(w, strs[i], err);
    return rc;
}

/* ---- tensor infos ---- */

static int check_shape(const char *name, int n_dims, const int64_t *ne, uint32_t type,
                       struct mp_error *err)
{
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return mp_error_set(err, MP_EINVAL, "gguf writer: %s: %d dimensions", name, n_dims);
    for (int d = 0; d < n_dims; d++)
        if (ne[d] <= 0 || ne[d] > INT64_MAX / 4)
            return mp_error_set(err, MP_EINVAL, "gguf writer: %s: dimension %d is %lld", name, d,
                                (long long)ne[d]);
    if (!kq_row_bytes(type, ne[0]))
        return mp_error_set(err, MP_EINVAL, "gguf writer: %s: %lld columns do not fit type %u",
                            name, (long long)ne[0], type);
    return 0;
}

static int find_tensor(const struct gguf_writer *w, const char *name)
{
    for (int i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name))
            return i;
    return -1;
}

int gguf_w_add_tensor(struct gguf_writer *w, const char *name, int n_dims, const int64_t *ne,
                      uint32_t type, struct mp_error *err)
{
    if (w->fd >= 0 || w->failed)
        return mp_error_set(err, MP_EINVAL, "gguf writer: tensor %s added after the header", name);
    if (!name[0] || strlen(name) >= GGUF_NAME_MAX)
        return mp_error_set(err, MP_EINVAL, "gguf writer: bad tensor name '%s'", name);
    if (find_tensor(w, name) >= 0)
        return mp_error_set(err, MP_EINVAL, "gguf writer: duplicate tensor %s", name);
    int rc = check_shape(name, n_dims, ne, type, err);
    if (rc)
        return rc;
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t * 2 + 64;
        struct tinfo *t = realloc(w->t, (size_t)cap * sizeof(*t));
        if (!t)
            return mp_error_set(err, MP_ENOMEM, "gguf writer: out of memory for tensor %s", name);
        w->t = t;
        w->cap_t = cap;
    }
    struct tinfo *t = &w->t[w->n_t];
    memset(t, 0, sizeof(*t));
    strcpy(t->name, name);
    t->n_dims = n_dims;
    t->type = type;
    uint64_t rows = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        if (d > 0) {
            if (rows > UINT64_MAX / (uint64_t)t->ne[d])
                return mp_error_set(err, MP_ERANGE, "gguf writer: %s is too large", name);
            rows *= (uint64_t)t->ne[d];
        }
    }
    uint64_t row_bytes = kq_row_bytes(type, t->ne[0]);
    if (rows > (UINT64_MAX / 2) / row_bytes)
        return mp_error_set(err, MP_ERANGE, "gguf writer: %s is too large", name);
    t->n_bytes = rows * row_bytes;
    t->offset = w->data_bytes;
    w->data_bytes += align_up(t->n_bytes);
    return w->n_t++;
}

int gguf_w_n_tensors(const struct gguf_writer *w)
{
    return w->n_t;
}

uint64_t gguf_w_tensor_bytes(const struct gguf_writer *w, int ti)
{
    return ti >= 0 && ti < w->n_t ? w->t[ti].n_bytes : 0;
}

/* Header size before padding: fixed part, keys, tensor infos. */
static uint64_t header_bytes(const struct gguf_writer *w)
{
    uint64_t n = 4 + 4 + 8 + 8 + w->kv_len;
    for (int i = 0; i < w->n_t; i++)
        n += 8 + strlen(w->t[i].name) + 4 + 8 * (uint64_t)w->t[i].n_dims + 4 + 8;
    return n;
}

uint64_t gguf_w_data_offset(const struct gguf_writer *w)
{
    return align_up(header_bytes(w));
}

uint64_t gguf_w_file_bytes(const struct gguf_writer *w)
{
    return gguf_w_data_offset(w) + w->data_bytes;
}

/* ---- file output ---- */

static int io_error(struct gguf_writer *w, int e, const char *what, struct mp_error *err)
{
    w->failed = true;
    return mp_error_set(err, MP_EIO, "%s: %s: %s", w->path, what, strerror(e));
}

static int pwrite_all(struct gguf_writer *w, const void *buf, size_t n, uint64_t pos,
                      struct mp_error *err)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t k = pwrite(w->fd, p, n, (off_t)pos);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return io_error(w, errno, "write failed", err);
        if (k == 0)
            return io_error(w, ENOSPC, "write made no progress", err);
        p += k;
        n -= (size_t)k;
        pos += (uint64_t)k;
    }
    return 0;
}

/* Serializes the fixed header, the keys and the tensor infos, zero-padded to the alignment. */
static int build_header(struct gguf_writer *w, uint8_t **out, size_t *n_out, struct mp_error *err)
{
    size_t n = (size_t)gguf_w_data_offset(w);
    uint8_t *h = calloc(1, n);
    if (!h)
        return mp_error_set(err, MP_ENOMEM, "gguf writer: out of memory for the header");
    uint8_t *p = h;
#define PUT(src, len) (memcpy(p, (src), (len)), p += (len))
    uint32_t magic = GGUF_MAGIC, version = 3;
    uint64_t n_t = (uint64_t)w->n_t;
    PUT(&magic, 4);
    PUT(&version, 4);
    PUT(&n_t, 8);
    PUT(&w->n_kv, 8);
    if (w->kv_len) /* kv is NULL when there are no keys */
        PUT(w->kv, w->kv_len);
    for (int i = 0; i < w->n_t; i++) {
        const struct tinfo *t = &w->t[i];
        uint64_t len = strlen(t->name);
        uint32_t n_dims = (uint32_t)t->n_dims;
        PUT(&len, 8);
        PUT(t->name, len);
        PUT(&n_dims, 4);
        PUT(t->ne, 8 * (size_t)n_dims);
        PUT(&t->type, 4);
        PUT(&t->offset, 8);
    }
#undef PUT
    *out = h;
    *n_out = n;
    return 0;
}

int gguf_w_open(struct gguf_writer *w, const char *path, struct mp_error *err)
{
    if (w->fd >= 0 || w->failed)
        return mp_error_set(err, MP_EINVAL, "gguf writer: %s: already opened", path);
    free(w->path);
    w->path = strdup(path);
    w->written = calloc((size_t)w->n_t + 1, sizeof(*w->written));
    if (!w->path || !w->written)
        return mp_error_set(err, MP_ENOMEM, "gguf writer: out of memory");
    for (int i = 0; i < w->n_t; i++)
        atomic_init(&w->written[i], 0);
    uint8_t *h = NULL;
    size_t n = 0;
    int rc = build_header(w, &h, &n, err);
    if (rc)
        return rc;
    w->data_offset = n;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        rc = io_error(w, errno, "cannot create", err);
    } else {
        /* only a regular file is ours to delete on failure (never /dev/full or a pipe) */
        struct stat st;
        w->created = fstat(w->fd, &st) == 0 && S_ISREG(st.st_mode);
        rc = pwrite_all(w, h, n, 0, err);
    }
    free(h);
    return rc;
}

int gguf_w_write_at(struct gguf_writer *w, int ti, uint64_t off, const void *buf, size_t n,
                    struct mp_error *err)
{
    if (w->fd < 0 || w->failed)
        return mp_error_set(err, MP_EINVAL, "gguf writer: not open for writing");
    if (ti < 0 || ti >= w->n_t || off > w->t[ti].n_bytes || n > w->t[ti].n_bytes - off)
        return mp_error_set(err, MP_EINVAL, "gguf writer: %s: write of %zu bytes at %llu is "
                            "outside the tensor", ti >= 0 && ti < w->n_t ? w->t[ti].name : "?",
                            n, (unsigned long long)off);
    int rc = pwrite_all(w, buf, n, w->data_offset + w->t[ti].offset + off, err);
    if (!rc)
        atomic_fetch_add(&w->written[ti], (uint64_t)n);
    return rc;
}

int gguf_w_append(struct gguf_writer *w, const void *buf, size_t n, struct mp_error *err)
{
    const uint8_t *p = buf;
    while (n > 0) {
        while (w->cur_t < w->n_t && w->cur_off == w->t[w->cur_t].n_bytes) {
            w->cur_t++;
            w->cur_off = 0;
        }
        if (w->cur_t >= w->n_t)
            return mp_error_set(err, MP_EINVAL, "gguf writer: data past the last tensor");
        uint64_t left = w->t[w->cur_t].n_bytes - w->cur_off;
        size_t k = n < left ? n : (size_t)left;
        int rc = gguf_w_write_at(w, w->cur_t, w->cur_off, p, k, err);
        if (rc)
            return rc;
        w->cur_off += k;
        p += k;
        n -= k;
    }
    return 0;
}

int gguf_w_finish(struct gguf_writer *w, struct mp_error *err)
{
    static const uint8_t zero[ALIGNMENT];
    if (w->fd < 0 || w->failed)
        return mp_error_set(err, MP_EINVAL, "gguf writer: not open for writing");
    for (int i = 0; i < w->n_t; i++) {
        const struct tinfo *t = &w->t[i];
        uint64_t got = atomic_load(&w->written[i]);
        if (got != t->n_bytes) {
            w->failed = true;
            return mp_error_set(err, MP_EINVAL, "%s: tensor %s got %llu of its %llu bytes",
                                w->path, t->name, (unsigned long long)got,
                                (unsigned long long)t->n_bytes);
        }
        uint64_t pad = align_up(t->n_bytes) - t->n_bytes;
        int rc = pwrite_all(w, zero, (size_t)pad, w->data_offset + t->offset + t->n_bytes, err);
        if (rc)
            return rc;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0)
        return io_error(w, errno, "close failed", err);
    return 0;
}

void gguf_w_abort(struct gguf_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    if (w->created) /* never delete a file we could not open: it was someone else's */
        unlink(w->path);
    w->created = false;
    w->failed = true;
}
