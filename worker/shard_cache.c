/* worker/shard_cache.c: see shard_cache.h.
 *
 * The record is a text file of "offset length" lines, appended after the data they name is
 * durable. A torn last line (no newline) or a line outside the file is ignored: ignoring a record
 * only costs a new fetch. Range lists are kept sorted and merged. */
#include "worker/shard_cache.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"

struct range_list {
    struct file_range *r;
    size_t n, cap;
};

struct shard_cache {
    struct model_fingerprint fp;
    uint64_t size;
    char *path;        /* DIR/<fp>.gguf */
    char *record_path; /* DIR/<fp>.ranges */
    int fd;
    struct range_list present, pending;
};

static int list_add(struct range_list *l, uint64_t offset, uint64_t len)
{
    if (len == 0)
        return 0;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct file_range *r = realloc(l->r, cap * sizeof(*r));
        if (!r)
            return MP_ENOMEM;
        l->r = r;
        l->cap = cap;
    }
    l->r[l->n++] = (struct file_range){.offset = offset, .len = len};
    return 0;
}

static int by_offset(const void *a, const void *b)
{
    const struct file_range *x = a, *y = b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

/* Sorts and merges overlapping or touching ranges. */
static void list_normalise(struct range_list *l)
{
    if (l->n < 2)
        return;
    qsort(l->r, l->n, sizeof(*l->r), by_offset);
    size_t k = 0;
    for (size_t i = 1; i < l->n; i++) {
        struct file_range *last = &l->r[k];
        if (l->r[i].offset <= last->offset + last->len) {
            uint64_t end = l->r[i].offset + l->r[i].len;
            if (end > last->offset + last->len)
                last->len = end - last->offset;
        } else {
            l->r[++k] = l->r[i];
        }
    }
    l->n = k + 1;
}

int shard_cache_default_dir(char *buf, size_t n, struct mp_error *err)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int len;
    if (xdg && xdg[0] == '/')
        len = snprintf(buf, n, "%s/moepool", xdg);
    else if (home && home[0])
        len = snprintf(buf, n, "%s/.cache/moepool", home);
    else
        return mp_error_set(err, MP_ENOTFOUND, "no cache directory: XDG_CACHE_HOME and HOME unset");
    if (len < 0 || (size_t)len >= n)
        return mp_error_set(err, MP_ERANGE, "cache directory path too long");
    return 0;
}

/* mkdir -p */
static int make_dirs(const char *dir, struct mp_error *err)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
        return mp_error_set(err, MP_ERANGE, "cache directory path too long");
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return mp_error_set(err, MP_EIO, "cannot create %s: %s", path, strerror(errno));
        *p = c;
        if (c == '\0')
            return 0;
    }
}

static int load_record(struct shard_cache *c, struct mp_error *err)
{
    FILE *f = fopen(c->record_path, "r");
    if (!f)
        return errno == ENOENT
                   ? 0
                   : mp_error_set(err, MP_EIO, "%s: %s", c->record_path, strerror(errno));
    char line[128];
    size_t ignored = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long off, len;
        char end;
        bool whole = strchr(line, '\n') != NULL;
        if (!whole || sscanf(line, "%llu %llu%c", &off, &len, &end) != 3 || end != '\n' ||
            off > c->size || len > c->size - off) {
            ignored++;
            continue;
        }
        if (list_add(&c->present, off, len)) {
            fclose(f);
            return mp_error_set(err, MP_ENOMEM, "out of memory");
        }
    }
    fclose(f);
    if (ignored)
        mp_warn("%s: ignored %zu damaged record lines (those ranges will be fetched again)",
                c->record_path, ignored);
    list_normalise(&c->present);
    return 0;
}

static int open_file(struct shard_cache *c, struct mp_error *err)
{
    c->fd = open(c->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (c->fd < 0)
        return mp_error_set(err, MP_EIO, "%s: %s", c->path, strerror(errno));
    struct stat st;
    if (fstat(c->fd, &st) != 0)
        return mp_error_set(err, MP_EIO, "%s: %s", c->path, strerror(errno));
    if (st.st_size == 0 && c->size > 0) {
        /* New (or created and never sized): a sparse file of the model's size. */
        unlink(c->record_path);
        if (ftruncate(c->fd, (off_t)c->size) != 0)
            return mp_error_set(err, MP_EIO, "%s: cannot size to %llu bytes: %s", c->path,
                                (unsigned long long)c->size, strerror(errno));
    } else if ((uint64_t)st.st_size != c->size) {
        return mp_error_set(err, MP_ECORRUPT, "%s has %lld bytes but the model has %llu", c->path,
                            (long long)st.st_size, (unsigned long long)c->size);
    }
    return 0;
}

int shard_cache_open(const char *dir, struct model_fingerprint fp, uint64_t file_size,
                     struct shard_cache **out, struct mp_error *err)
{
    *out = NULL;
    char dbuf[4096], hex[FINGERPRINT_HEX_LEN + 1];
    int rc = 0;
    if (!dir) {
        if ((rc = shard_cache_default_dir(dbuf, sizeof(dbuf), err)))
            return rc;
        dir = dbuf;
    }
    if ((rc = make_dirs(dir, err)))
        return rc;
    struct shard_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    c->fd = -1;
    c->fp = fp;
    c->size = file_size;
    fingerprint_hex(fp, hex);
    size_t n = strlen(dir) + FINGERPRINT_HEX_LEN + 16;
    c->path = malloc(n);
    c->record_path = malloc(n);
    if (!c->path || !c->record_path)
        rc = mp_error_set(err, MP_ENOMEM, "out of memory");
    if (!rc) {
        snprintf(c->path, n, "%s/%s.gguf", dir, hex);
        snprintf(c->record_path, n, "%s/%s.ranges", dir, hex);
        rc = open_file(c, err);
    }
    if (!rc)
        rc = load_record(c, err);
    if (rc) {
        c->pending.n = 0;
        shard_cache_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

const char *shard_cache_path(const struct shard_cache *c)
{
    return c->path;
}

int shard_cache_write(struct shard_cache *c, uint64_t offset, const void *data, size_t len,
                      struct mp_error *err)
{
    if (offset > c->size || len > c->size - offset)
        return mp_error_set(err, MP_ERANGE, "%s: %zu bytes at %llu fall outside its %llu bytes",
                            c->path, len, (unsigned long long)offset, (unsigned long long)c->size);
    const uint8_t *p = data;
    for (size_t done = 0; done < len;) {
        ssize_t w = pwrite(c->fd, p + done, len - done, (off_t)(offset + done));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return mp_error_set(err, MP_EIO, "%s: write at %llu: %s", c->path,
                                (unsigned long long)(offset + done),
                                w < 0 ? strerror(errno) : "no progress");
        done += (size_t)w;
    }
    if (list_add(&c->pending, offset, len))
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    return 0;
}

int shard_cache_sync(struct shard_cache *c, struct mp_error *err)
{
    if (c->pending.n == 0)
        return 0;
    list_normalise(&c->pending);
    if (fdatasync(c->fd) != 0)
        return mp_error_set(err, MP_EIO, "%s: %s", c->path, strerror(errno));
    FILE *f = fopen(c->record_path, "a");
    if (!f)
        return mp_error_set(err, MP_EIO, "%s: %s", c->record_path, strerror(errno));
    for (size_t i = 0; i < c->pending.n; i++)
        fprintf(f, "%llu %llu\n", (unsigned long long)c->pending.r[i].offset,
                (unsigned long long)c->pending.r[i].len);
    bool ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = fclose(f) == 0 && ok;
    if (!ok)
        return mp_error_set(err, MP_EIO, "%s: cannot write the record", c->record_path);
    for (size_t i = 0; i < c->pending.n; i++)
        if (list_add(&c->present, c->pending.r[i].offset, c->pending.r[i].len))
            return mp_error_set(err, MP_ENOMEM, "out of memory");
    c->pending.n = 0;
    list_normalise(&c->present);
    return 0;
}

void shard_cache_close(struct shard_cache *c)
{
    if (!c)
        return;
    struct mp_error err = {0};
    if (c->fd >= 0 && shard_cache_sync(c, &err))
        mp_warn("%s", err.msg);
    if (c->fd >= 0)
        close(c->fd);
    free(c->present.r);
    free(c->pending.r);
    free(c->path);
    free(c->record_path);
    free(c);
}

/* Appends to out the parts of [off, off+len) that no range of present (sorted, merged) covers. */
static int subtract(const struct range_list *present, uint64_t off, uint64_t len,
                    struct range_list *out)
{
    uint64_t at = off, end = off + len;
    for (size_t i = 0; i < present->n && at < end; i++) {
        const struct file_range *p = &present->r[i];
        if (p->offset + p->len <= at)
            continue;
        if (p->offset >= end)
            break;
        if (p->offset > at && list_add(out, at, p->offset - at))
            return MP_ENOMEM;
        at = p->offset + p->len;
    }
    return at < end ? list_add(out, at, end - at) : 0;
}

int shard_cache_missing(const struct shard_cache *c, const struct file_range *want, size_t n,
                        struct file_range **missing, size_t *n_missing, struct mp_error *err)
{
    struct range_list out = {0};
    for (size_t i = 0; i < n; i++) {
        if (want[i].offset > c->size || want[i].len > c->size - want[i].offset) {
            free(out.r);
            return mp_error_set(err, MP_ERANGE, "range %llu+%llu is outside %s",
                                (unsigned long long)want[i].offset, (unsigned long long)want[i].len,
                                c->path);
        }
        if (subtract(&c->present, want[i].offset, want[i].len, &out)) {
            free(out.r);
            return mp_error_set(err, MP_ENOMEM, "out of memory");
        }
    }
    list_normalise(&out);
    *missing = out.n ? out.r : NULL;
    *n_missing = out.n;
    if (!out.n)
        free(out.r);
    return 0;
}

int shard_cache_check_header(const struct shard_cache *c, struct mp_error *err)
{
    if (c->present.n == 0 || c->present.r[0].offset != 0)
        return mp_error_set(err, MP_ENOTFOUND, "%s: the header is not cached yet", c->path);
    struct gguf_file *f = NULL;
    int rc = gguf_open(c->path, &f, err);
    if (rc) {
        mp_error_wrap(err, "cached header: ");
        return rc;
    }
    if (c->present.r[0].len < f->data_offset)
        rc = mp_error_set(err, MP_ENOTFOUND, "%s: the header is only partly cached", c->path);
    else if (!fingerprint_eq(fingerprint_gguf(f), c->fp))
        rc = mp_error_set(err, MP_ECORRUPT, "%s: the cached header does not match its fingerprint",
                          c->path);
    gguf_close(f);
    return rc;
}

int shard_file_ranges(const struct model *m, const struct expert_ref *experts, size_t n,
                      struct file_range **out, size_t *n_out, struct mp_error *err)
{
    struct range_list l = {0};
    int rc = list_add(&l, 0, m->gguf->data_offset) ? MP_ENOMEM : 0;
    for (size_t i = 0; !rc && i < n; i++) {
        struct file_range r[3];
        if ((rc = expert_file_ranges(m, experts[i].il, experts[i].expert, r, err))) {
            free(l.r);
            return rc;
        }
        for (int j = 0; !rc && j < 3; j++)
            rc = list_add(&l, r[j].offset, r[j].len) ? MP_ENOMEM : 0;
    }
    if (rc) {
        free(l.r);
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    }
    list_normalise(&l);
    *out = l.r;
    *n_out = l.n;
    return 0;
}
