/* model/gguf.c: the GGUF reader (see gguf.h; format: ../shared/docs/gguf.md §1).
 *
 * Parsing walks a cursor over the buffer; every read goes through take(), which refuses to pass
 * the end, so no field can be read out of bounds however the file lies. Counts from the file are
 * bounded by the bytes left before anything is allocated for them, and every size product is
 * overflow-checked. Rules follow llama.cpp's gguf.cpp: versions 2 and 3, no nested arrays, unique
 * keys and tensor names, tensor offsets packed in file order, data inside the file. */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/kq.h"

struct cursor {
    const uint8_t *buf;
    size_t size;
    size_t pos;
    const char *label;
    struct mp_error *err;
};

static int corrupt(struct cursor *c, const char *what)
{
    return mp_error_set(c->err, MP_ECORRUPT, "%s: %s (at byte %zu)", c->label, what, c->pos);
}

static size_t bytes_left(const struct cursor *c)
{
    return c->size - c->pos;
}

static int take(struct cursor *c, void *dst, size_t n, const char *what)
{
    if (n > bytes_left(c)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "file ends inside %s", what);
        return corrupt(c, msg);
    }
    if (dst)
        memcpy(dst, c->buf + c->pos, n);
    c->pos += n;
    return 0;
}

static int take_u32(struct cursor *c, uint32_t *v, const char *what)
{
    return take(c, v, sizeof(*v), what);
}

static int take_u64(struct cursor *c, uint64_t *v, const char *what)
{
    return take(c, v, sizeof(*v), what);
}

static int take_str(struct cursor *c, struct gguf_str *s, const char *what)
{
    int rc = take_u64(c, &s->len, what);
    if (rc)
        return rc;
    if (s->len > bytes_left(c)) {
        char msg[160];
        snprintf(msg, sizeof(msg), "%s has length %llu, past the end of the file", what,
                 (unsigned long long)s->len);
        return corrupt(c, msg);
    }
    s->ptr = (const char *)c->buf + c->pos;
    c->pos += s->len;
    return 0;
}

/* Size of one scalar of a value type; 0 for STRING/ARRAY/unknown. */
static size_t scalar_size(uint32_t type)
{
    static const size_t sizes[GGUF_VTYPE_COUNT] = {
        [GGUF_U8] = 1,  [GGUF_I8] = 1,  [GGUF_U16] = 2, [GGUF_I16] = 2, [GGUF_U32] = 4,
        [GGUF_I32] = 4, [GGUF_F32] = 4, [GGUF_BOOL] = 1, [GGUF_U64] = 8, [GGUF_I64] = 8,
        [GGUF_F64] = 8,
    };
    return type < GGUF_VTYPE_COUNT ? sizes[type] : 0;
}

bool gguf_vtype_is_int(uint32_t type)
{
    return type == GGUF_U8 || type == GGUF_I8 || type == GGUF_U16 || type == GGUF_I16 ||
           type == GGUF_U32 || type == GGUF_I32 || type == GGUF_U64 || type == GGUF_I64;
}

static int64_t read_int(const uint8_t *p, uint32_t type)
{
    switch (type) {
    case GGUF_U8: return *p;
    case GGUF_I8: return (int8_t)*p;
    case GGUF_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case GGUF_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case GGUF_U64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    case GGUF_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    case GGUF_BOOL: return *p;
    }
    return 0;
}

static double read_float(const uint8_t *p, uint32_t type)
{
    if (type == GGUF_F32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    if (type == GGUF_F64) {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    return (double)read_int(p, type);
}

static int parse_scalar(struct cursor *c, struct gguf_value *v, const char *what)
{
    size_t n = scalar_size(v->type);
    const uint8_t *p = c->buf + c->pos;
    int rc = take(c, NULL, n, what);
    if (rc)
        return rc;
    if (v->type == GGUF_F32 || v->type == GGUF_F64)
        v->f = read_float(p, v->type);
    else if (v->type == GGUF_BOOL) {
        if (*p > 1)
            return corrupt(c, "boolean value is neither 0 nor 1");
        v->u = *p;
    } else if (v->type == GGUF_U8 || v->type == GGUF_U16 || v->type == GGUF_U32 ||
               v->type == GGUF_U64)
        v->u = (uint64_t)read_int(p, v->type);
    else
        v->i = read_int(p, v->type);
    return 0;
}

/* String arrays need one view per element; they are counted in a first pass (count_strings) so
 * all views live in one allocation. */
static int parse_array(struct cursor *c, struct gguf_value *v, struct gguf_str **str_next,
                       const char *key)
{
    char what[160];
    snprintf(what, sizeof(what), "array '%s'", key);
    int rc = take_u32(c, &v->arr.type, what);
    if (!rc)
        rc = take_u64(c, &v->arr.n, what);
    if (rc)
        return rc;
    if (v->arr.type == GGUF_ARRAY)
        return corrupt(c, "nested arrays are not supported");
    if (v->arr.type >= GGUF_VTYPE_COUNT)
        return corrupt(c, "array of unknown value type");
    v->arr.data = c->buf + c->pos;
    if (v->arr.type != GGUF_STRING) {
        size_t es = scalar_size(v->arr.type);
        if (v->arr.n > bytes_left(c) / es)
            return corrupt(c, "array count runs past the end of the file");
        if (v->arr.type == GGUF_BOOL)
            for (uint64_t i = 0; i < v->arr.n; i++)
                if (c->buf[c->pos + i] > 1)
                    return corrupt(c, "boolean array element is neither 0 nor 1");
        c->pos += v->arr.n * es;
        return 0;
    }
    /* Each string needs at least its 8-byte length. */
    if (v->arr.n > bytes_left(c) / 8)
        return corrupt(c, "string array count runs past the end of the file");
    v->arr.str = *str_next;
    for (uint64_t i = 0; i < v->arr.n; i++) {
        /* Only complete strings are stored: count_strings counted exactly those. */
        struct gguf_str s;
        if ((rc = take_str(c, &s, what)))
            return rc;
        (*str_next)[i] = s;
    }
    *str_next += v->arr.n;
    return 0;
}

static int parse_value(struct cursor *c, struct gguf_value *v, struct gguf_str **str_next,
                       const char *key)
{
    if (v->type == GGUF_STRING)
        return take_str(c, &v->s, "string value");
    if (v->type == GGUF_ARRAY)
        return parse_array(c, v, str_next, key);
    if (v->type >= GGUF_VTYPE_COUNT)
        return corrupt(c, "key has an unknown value type");
    return parse_scalar(c, v, key);
}

static void key_cstr(struct gguf_str s, char *buf, size_t n)
{
    size_t len = s.len < n - 1 ? (size_t)s.len : n - 1;
    memcpy(buf, s.ptr, len);
    buf[len] = 0;
}

/* First pass over the key/value section: how many string-array elements are there? Uses its own
 * cursor and stops quietly at any problem; the real pass reports it. */
static uint64_t count_strings(struct cursor c, uint64_t n_kv)
{
    uint64_t total = 0;
    for (uint64_t k = 0; k < n_kv; k++) {
        struct gguf_str key;
        uint32_t type, et;
        uint64_t n;
        if (take_str(&c, &key, "") || take_u32(&c, &type, ""))
            break;
        if (type != GGUF_ARRAY) {
            struct gguf_value v = {.type = type};
            if (type == GGUF_STRING ? take_str(&c, &v.s, "")
                                    : (type >= GGUF_VTYPE_COUNT || take(&c, NULL, scalar_size(type), "")))
                break;
            continue;
        }
        if (take_u32(&c, &et, "") || take_u64(&c, &n, "") || et >= GGUF_VTYPE_COUNT ||
            et == GGUF_ARRAY)
            break;
        if (et != GGUF_STRING) {
            if (n > bytes_left(&c) / scalar_size(et))
                break;
            c.pos += n * scalar_size(et);
            continue;
        }
        for (uint64_t i = 0; i < n; i++) {
            struct gguf_str s;
            if (take_str(&c, &s, ""))
                return total + i;
        }
        total += n;
    }
    return total;
}

static int parse_kvs(struct cursor *c, struct gguf_file *f)
{
    /* A key/value pair takes at least 8 (key length) + 4 (type) + 1 bytes. */
    if (f->n_kv > bytes_left(c) / 13)
        return corrupt(c, "key/value count is larger than the file could hold");
    struct mp_error quiet = {0};
    struct cursor probe = *c;
    probe.err = &quiet;
    uint64_t n_str = count_strings(probe, f->n_kv);
    f->kv = calloc(f->n_kv ? f->n_kv : 1, sizeof(*f->kv));
    f->strs = calloc(n_str ? n_str : 1, sizeof(*f->strs));
    if (!f->kv || !f->strs)
        return mp_error_set(c->err, MP_ENOMEM, "%s: out of memory for %llu keys", c->label,
                            (unsigned long long)f->n_kv);
    struct gguf_str *str_next = f->strs, *str_end = f->strs + n_str;
    for (uint64_t k = 0; k < f->n_kv; k++) {
        struct gguf_kv *kv = &f->kv[k];
        char key[128];
        int rc = take_str(c, &kv->key, "key name");
        if (!rc)
            rc = take_u32(c, &kv->v.type, "key type");
        if (rc)
            return rc;
        key_cstr(kv->key, key, sizeof(key));
        for (uint64_t j = 0; j < k; j++)
            if (f->kv[j].key.len == kv->key.len &&
                !memcmp(f->kv[j].key.ptr, kv->key.ptr, kv->key.len))
                return mp_error_set(c->err, MP_ECORRUPT, "%s: duplicate key '%s'", c->label, key);
        /* count_strings sized the views with the same walk; a shortfall is our bug. */
        rc = parse_value(c, &kv->v, &str_next, key);
        if (rc)
            return rc;
        MP_ASSERT(str_next <= str_end);
    }
    return 0;
}

static int parse_alignment(struct cursor *c, struct gguf_file *f)
{
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *kv = gguf_find(f, "general.alignment");
    if (!kv)
        return 0;
    if (kv->v.type != GGUF_U32)
        return mp_error_set(c->err, MP_ECORRUPT, "%s: general.alignment is not a u32", c->label);
    uint64_t a = kv->v.u;
    if (a == 0 || (a & (a - 1)) || a > (1u << 24))
        return mp_error_set(c->err, MP_ECORRUPT,
                            "%s: general.alignment %llu is not a power of two", c->label,
                            (unsigned long long)a);
    f->alignment = a;
    return 0;
}

static int tensor_error(struct cursor *c, const char *name, const char *what)
{
    return mp_error_set(c->err, MP_ECORRUPT, "%s: tensor '%s': %s", c->label, name, what);
}

/* Element count and byte size with overflow checks; dims must be non-negative. */
static int tensor_size(struct cursor *c, struct gguf_tensor *t)
{
    const struct kq_format *fmt = kq_format(t->type);
    if (!fmt || !fmt->name) {
        char what[64];
        snprintf(what, sizeof(what), "unknown type id %u", t->type);
        return tensor_error(c, t->name, what);
    }
    int64_t n = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        if (t->ne[d] < 0)
            return tensor_error(c, t->name, "negative dimension");
        if (t->ne[d] && n > INT64_MAX / t->ne[d])
            return tensor_error(c, t->name, "element count overflows");
        n *= t->ne[d];
    }
    if (t->ne[0] % fmt->block_elems) {
        char what[96];
        snprintf(what, sizeof(what), "row length %lld is not a multiple of %s's block of %d",
                 (long long)t->ne[0], fmt->name, fmt->block_elems);
        return tensor_error(c, t->name, what);
    }
    uint64_t blocks = (uint64_t)n / (uint64_t)fmt->block_elems;
    if (blocks > UINT64_MAX / (uint64_t)fmt->block_bytes)
        return tensor_error(c, t->name, "byte size overflows");
    t->n_elements = n;
    t->n_bytes = blocks * (uint64_t)fmt->block_bytes;
    return 0;
}

static int parse_tensor_info(struct cursor *c, struct gguf_tensor *t)
{
    struct gguf_str name;
    int rc = take_str(c, &name, "tensor name");
    if (rc)
        return rc;
    if (name.len == 0 || name.len >= GGUF_NAME_MAX)
        return corrupt(c, "tensor name is empty or longer than 63 bytes");
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = 0;
    if (memchr(t->name, 0, name.len))
        return corrupt(c, "tensor name contains a NUL byte");
    rc = take_u32(c, &t->n_dims, "tensor dimension count");
    if (rc)
        return rc;
    if (t->n_dims == 0 || t->n_dims > GGUF_MAX_DIMS)
        return tensor_error(c, t->name, "dimension count is not between 1 and 4");
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = 1;
        if (d < t->n_dims && (rc = take(c, &t->ne[d], sizeof(t->ne[d]), "tensor shape")))
            return rc;
    }
    if ((rc = take_u32(c, &t->type, "tensor type")) || (rc = take_u64(c, &t->offset, "offset")))
        return rc;
    return tensor_size(c, t);
}

static const struct gguf_file *sort_file; /* qsort has no context argument in C11 */

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(sort_file->tensors[*(const uint32_t *)a].name,
                  sort_file->tensors[*(const uint32_t *)b].name);
}

static int index_tensor_names(struct cursor *c, struct gguf_file *f)
{
    f->by_name = malloc((f->n_tensors ? f->n_tensors : 1) * sizeof(*f->by_name));
    if (!f->by_name)
        return mp_error_set(c->err, MP_ENOMEM, "%s: out of memory", c->label);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        f->by_name[i] = (uint32_t)i;
    sort_file = f;
    qsort(f->by_name, f->n_tensors, sizeof(*f->by_name), cmp_tensor_name);
    sort_file = NULL;
    for (uint64_t i = 1; i < f->n_tensors; i++)
        if (!strcmp(f->tensors[f->by_name[i]].name, f->tensors[f->by_name[i - 1]].name))
            return tensor_error(c, f->tensors[f->by_name[i]].name, "duplicate tensor name");
    return 0;
}

static uint64_t align_up(uint64_t x, uint64_t a)
{
    return (x + a - 1) / a * a;
}

/* Offsets must be packed in file order (as llama.cpp requires) and all data inside the file. */
static int place_tensors(struct cursor *c, struct gguf_file *f)
{
    if (c->pos > SIZE_MAX - f->alignment)
        return corrupt(c, "header too large");
    f->data_offset = align_up(c->pos, f->alignment);
    uint64_t expect = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        struct gguf_tensor *t = &f->tensors[i];
        char what[200];
        if (t->offset != expect) {
            snprintf(what, sizeof(what), "data offset %llu, expected %llu (tensors must be packed "
                     "in order, aligned to %llu)", (unsigned long long)t->offset,
                     (unsigned long long)expect, (unsigned long long)f->alignment);
            return tensor_error(c, t->name, what);
        }
        uint64_t avail = f->size > f->data_offset ? f->size - f->data_offset : 0;
        if (t->offset > avail || t->n_bytes > avail - t->offset) {
            snprintf(what, sizeof(what), "data (%llu bytes at %llu) ends past the end of the "
                     "file (%zu bytes): truncated?", (unsigned long long)t->n_bytes,
                     (unsigned long long)(f->data_offset + t->offset), f->size);
            return tensor_error(c, t->name, what);
        }
        t->data = f->base + f->data_offset + t->offset;
        if (t->n_bytes > UINT64_MAX - f->alignment)
            return tensor_error(c, t->name, "size overflows");
        expect = t->offset + align_up(t->n_bytes, f->alignment);
    }
    return 0;
}

static int parse_header(struct cursor *c, struct gguf_file *f)
{
    uint32_t magic;
    int rc = take_u32(c, &magic, "the header");
    if (rc)
        return rc;
    if (magic != GGUF_MAGIC)
        return mp_error_set(c->err, MP_ECORRUPT, "%s: not a GGUF file (bad magic)", c->label);
    if ((rc = take_u32(c, &f->version, "the header")))
        return rc;
    if (f->version < 2 || f->version > 3)
        return mp_error_set(c->err, MP_EUNSUPPORTED,
                            "%s: GGUF version %u is not supported (only 2 and 3)", c->label,
                            f->version);
    if ((rc = take_u64(c, &f->n_tensors, "the header")) ||
        (rc = take_u64(c, &f->n_kv, "the header")))
        return rc;
    return 0;
}

static int parse_all(struct cursor *c, struct gguf_file *f)
{
    int rc = parse_header(c, f);
    if (!rc)
        rc = parse_kvs(c, f);
    if (!rc)
        rc = parse_alignment(c, f);
    if (rc)
        return rc;
    /* A tensor info takes at least 8 + 1 (name) + 4 + 8 + 4 + 8 bytes. */
    if (f->n_tensors > bytes_left(c) / 33 || f->n_tensors > UINT32_MAX)
        return corrupt(c, "tensor count is larger than the file could hold");
    f->tensors = calloc(f->n_tensors ? f->n_tensors : 1, sizeof(*f->tensors));
    if (!f->tensors)
        return mp_error_set(c->err, MP_ENOMEM, "%s: out of memory", c->label);
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if ((rc = parse_tensor_info(c, &f->tensors[i])))
            return rc;
    if ((rc = index_tensor_names(c, f)))
        return rc;
    return place_tensors(c, f);
}

static struct gguf_file *file_new(const void *buf, size_t size, const char *label)
{
    struct gguf_file *f = calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->path = strdup(label);
    f->base = buf;
    f->size = size;
    if (!f->path) {
        free(f);
        return NULL;
    }
    return f;
}

int gguf_parse(const void *buf, size_t size, const char *label, struct gguf_file **out,
               struct mp_error *err)
{
    *out = NULL;
    struct gguf_file *f = file_new(buf, size, label);
    if (!f)
        return mp_error_set(err, MP_ENOMEM, "%s: out of memory", label);
    struct cursor c = {.buf = buf, .size = size, .label = label, .err = err};
    int rc = parse_all(&c, f);
    if (rc) {
        gguf_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int gguf_open(const char *path, struct gguf_file **out, struct mp_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mp_error_set(err, MP_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return mp_error_set(err, MP_EIO, "%s: not a regular file", path);
    }
    if (st.st_size < 24) {
        close(fd);
        return mp_error_set(err, MP_ECORRUPT, "%s: too small to be a GGUF file (%lld bytes)",
                            path, (long long)st.st_size);
    }
    void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return mp_error_set(err, MP_EIO, "%s: cannot map: %s", path, strerror(errno));
    int rc = gguf_parse(map, (size_t)st.st_size, path, out, err);
    if (rc) {
        munmap(map, (size_t)st.st_size);
        return rc;
    }
    (*out)->mapped = true;
    return 0;
}

void gguf_close(struct gguf_file *f)
{
    if (!f)
        return;
    if (f->mapped)
        munmap((void *)f->base, f->size);
    free(f->kv);
    free(f->strs);
    free(f->tensors);
    free(f->by_name);
    free(f->path);
    free(f);
}

bool gguf_str_eq(struct gguf_str s, const char *cstr)
{
    size_t n = strlen(cstr);
    return s.len == n && !memcmp(s.ptr, cstr, n);
}

const struct gguf_kv *gguf_find(const struct gguf_file *f, const char *key)
{
    for (uint64_t i = 0; i < f->n_kv; i++)
        if (gguf_str_eq(f->kv[i].key, key))
            return &f->kv[i];
    return NULL;
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *f, const char *name)
{
    uint64_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const struct gguf_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(t->name, name);
        if (!c)
            return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int wrong_type(const struct gguf_file *f, const char *key, const char *want,
                      uint32_t got, struct mp_error *err)
{
    return mp_error_set(err, MP_ECORRUPT, "%s: key %s is %s, expected %s", f->path, key,
                        gguf_vtype_name(got), want);
}

int gguf_get_int(const struct gguf_file *f, const char *key, int64_t *out, struct mp_error *err)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return MP_ENOTFOUND;
    if (!gguf_vtype_is_int(kv->v.type))
        return wrong_type(f, key, "an integer", kv->v.type, err);
    if (kv->v.type == GGUF_U64 && kv->v.u > INT64_MAX)
        return mp_error_set(err, MP_ERANGE, "%s: key %s is too large", f->path, key);
    *out = kv->v.i; /* u and i share storage; every accepted value fits in int64 */
    return 0;
}

int gguf_get_float(const struct gguf_file *f, const char *key, double *out, struct mp_error *err)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return MP_ENOTFOUND;
    if (kv->v.type == GGUF_F32 || kv->v.type == GGUF_F64)
        *out = kv->v.f;
    else if (gguf_vtype_is_int(kv->v.type))
        *out = kv->v.type == GGUF_I8 || kv->v.type == GGUF_I16 || kv->v.type == GGUF_I32 ||
                       kv->v.type == GGUF_I64
                   ? (double)kv->v.i
                   : (double)kv->v.u;
    else
        return wrong_type(f, key, "a number", kv->v.type, err);
    return 0;
}

int gguf_get_bool(const struct gguf_file *f, const char *key, bool *out, struct mp_error *err)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return MP_ENOTFOUND;
    if (kv->v.type != GGUF_BOOL)
        return wrong_type(f, key, "a bool", kv->v.type, err);
    *out = kv->v.u != 0;
    return 0;
}

int gguf_get_str(const struct gguf_file *f, const char *key, struct gguf_str *out,
                 struct mp_error *err)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return MP_ENOTFOUND;
    if (kv->v.type != GGUF_STRING)
        return wrong_type(f, key, "a string", kv->v.type, err);
    *out = kv->v.s;
    return 0;
}

int gguf_get_arr(const struct gguf_file *f, const char *key, const struct gguf_value **out,
                 struct mp_error *err)
{
    const struct gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return MP_ENOTFOUND;
    if (kv->v.type != GGUF_ARRAY)
        return wrong_type(f, key, "an array", kv->v.type, err);
    *out = &kv->v;
    return 0;
}

int64_t gguf_arr_int(const struct gguf_value *v, uint64_t i)
{
    const uint8_t *p = (const uint8_t *)v->arr.data + i * scalar_size(v->arr.type);
    return read_int(p, v->arr.type);
}

double gguf_arr_float(const struct gguf_value *v, uint64_t i)
{
    const uint8_t *p = (const uint8_t *)v->arr.data + i * scalar_size(v->arr.type);
    return read_float(p, v->arr.type);
}

const char *gguf_vtype_name(uint32_t type)
{
    static const char *names[GGUF_VTYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64",
        "f64",
    };
    return type < GGUF_VTYPE_COUNT ? names[type] : "unknown";
}
