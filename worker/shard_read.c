/* worker/shard_read.c: shard_read_ranges (see shard_load.h).
 *
 * Requests are cut into chunks; up to queue_depth chunks are in flight in one io_uring. Each ring
 * slot owns a chunk: with O_DIRECT it reads the chunk's enclosing aligned span either straight
 * into the destination (when the destination has the file offset's alignment and owns the blocks
 * around it: the DMA lands in place, no copy) or into the slot's aligned staging buffer, copying
 * the wanted bytes out; buffered, it reads straight into the destination. O_DIRECT chunks end on
 * aligned file offsets, so the spans of one request's chunks never share a block. A short
 * read resumes where it stopped; a read of 0 bytes before the chunk is covered means the file is
 * shorter than the model says. If O_DIRECT is refused (open or first read: EINVAL), everything is
 * read again buffered. io_uring rather than a thread pool of preads: one thread keeps 32 reads
 * queued with no per-read system call, which is what NVMe needs to reach its bandwidth. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "worker/shard_load.h"

#define DIRECT_ALIGN 4096u /* covers every logical block size Linux filesystems use */
#define DEFAULT_DEPTH 32
#define DEFAULT_CHUNK (4u << 20)
#define DIRECT_REFUSED 1 /* read_pass: O_DIRECT not usable, start over buffered */

struct slot {
    uint8_t *stage;      /* aligned staging buffer (O_DIRECT), else NULL */
    uint8_t *dst;        /* where the chunk's bytes go */
    uint8_t *buf;        /* where the read lands: stage or dst */
    uint64_t file_start; /* file offset of buf[0] */
    uint64_t span;       /* bytes to read into buf */
    uint64_t skip;       /* wanted bytes start at buf + skip */
    uint64_t len;        /* wanted bytes */
    uint64_t got;        /* bytes of buf read so far */
};

struct pass {
    const char *path;
    int fd;
    bool direct;
    const struct shard_read *reqs;
    size_t n, next_req;
    uint64_t next_off, done, total;
    size_t chunk;
    const struct shard_read_opts *opts;
    bool any_completed;
};

static uint64_t align_down(uint64_t x)
{
    return x & ~(uint64_t)(DIRECT_ALIGN - 1);
}

static uint64_t align_up(uint64_t x)
{
    return align_down(x + DIRECT_ALIGN - 1);
}

/* Gives slot s the next chunk; false when all chunks are handed out. */
static bool take_chunk(struct pass *p, struct slot *s)
{
    while (p->next_req < p->n && p->next_off >= p->reqs[p->next_req].len) {
        p->next_req++;
        p->next_off = 0;
    }
    if (p->next_req >= p->n)
        return false;
    const struct shard_read *r = &p->reqs[p->next_req];
    uint64_t off = r->offset + p->next_off;
    uint64_t len = r->len - p->next_off;
    if (len > p->chunk)
        len = p->chunk;
    if (p->direct && align_down(off + len) > off && off + len < r->offset + r->len)
        len = align_down(off + len) - off; /* end on a block boundary: spans never overlap */
    s->dst = (uint8_t *)r->dst + p->next_off;
    s->len = len;
    s->got = 0;
    if (p->direct) {
        s->file_start = align_down(off);
        s->span = align_up(off + len) - s->file_start;
        s->skip = off - s->file_start;
        const bool in_place = r->own_blocks && !(p->opts && p->opts->staged) &&
                              (uintptr_t)s->dst % DIRECT_ALIGN == s->skip;
        s->buf = in_place ? s->dst - s->skip : s->stage;
    } else {
        s->file_start = off;
        s->span = len;
        s->skip = 0;
        s->buf = s->dst;
    }
    p->next_off += len;
    return true;
}

static void queue_read(struct io_uring *ring, struct pass *p, struct slot *s)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring); /* never NULL: one sqe per slot */
    io_uring_prep_read(sqe, p->fd, s->buf + s->got, (unsigned)(s->span - s->got),
                       s->file_start + s->got);
    io_uring_sqe_set_data(sqe, s);
}

/* Handles one completion; 0, DIRECT_REFUSED, or an error. *requeue: the slot needs another read. */
static int complete(struct pass *p, struct slot *s, int res, bool *requeue, struct mp_error *err)
{
    *requeue = false;
    if (res == -EINVAL && p->direct && !p->any_completed)
        return DIRECT_REFUSED;
    if (res < 0)
        return mp_error_set(err, MP_EIO, "%s: read at offset %llu: %s", p->path,
                            (unsigned long long)(s->file_start + s->got), strerror(-res));
    const uint64_t need = s->skip + s->len;
    /* O_DIRECT reads end short of a block only at the end of the file. */
    const bool at_eof = res == 0 || (p->direct && (unsigned)res % DIRECT_ALIGN != 0);
    if (at_eof && s->got + (uint64_t)res < need)
        return mp_error_set(err, MP_EIO, "%s: file ends at offset %llu, before %llu bytes at %llu",
                            p->path, (unsigned long long)(s->file_start + s->got + (uint64_t)res),
                            (unsigned long long)s->len,
                            (unsigned long long)(s->file_start + s->skip));
    s->got += (uint64_t)res;
    if (s->got < need) {
        /* Short read, not at the end of the file (so still block-aligned under O_DIRECT). */
        *requeue = true;
        return 0;
    }
    p->any_completed = true;
    if (s->buf == s->stage)
        memcpy(s->dst, s->buf + s->skip, s->len);
    p->done += s->len;
    if (p->opts && p->opts->progress)
        p->opts->progress(p->opts->progress_ctx, p->done, p->total);
    return 0;
}

/* Waits for every submitted read still in flight (their buffers must outlive them); reads
 * prepared but never submitted are dropped with the ring. */
static void drain(struct io_uring *ring, int in_flight)
{
    struct io_uring_cqe *cqe;
    in_flight -= (int)io_uring_sq_ready(ring);
    while (in_flight > 0 && io_uring_wait_cqe(ring, &cqe) == 0) {
        io_uring_cqe_seen(ring, cqe);
        in_flight--;
    }
}

static int read_pass(struct pass *p, struct slot *slots, int depth, struct mp_error *err)
{
    struct io_uring ring;
    int rc = io_uring_queue_init((unsigned)depth, &ring, 0);
    if (rc < 0)
        return mp_error_set(err, MP_EIO, "io_uring: %s", strerror(-rc));
    int in_flight = 0;
    for (int i = 0; i < depth && take_chunk(p, &slots[i]); i++) {
        queue_read(&ring, p, &slots[i]);
        in_flight++;
    }
    rc = 0;
    while (in_flight > 0 && rc == 0) {
        int sub = io_uring_submit(&ring);
        /* A transient refusal is survivable while reads are in the kernel: reaping them frees
         * what the submission lacked. */
        const bool transient = sub == -EINTR || sub == -EAGAIN || sub == -EBUSY;
        if (sub < 0 && !(transient && (int)io_uring_sq_ready(&ring) < in_flight)) {
            rc = mp_error_set(err, MP_EIO, "io_uring submit: %s", strerror(-sub));
            break;
        }
        struct io_uring_cqe *cqe;
        int w = io_uring_wait_cqe(&ring, &cqe);
        if (w < 0) {
            if (w == -EINTR)
                continue;
            rc = mp_error_set(err, MP_EIO, "io_uring wait: %s", strerror(-w));
            break;
        }
        struct slot *s = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
        in_flight--;
        bool requeue;
        rc = complete(p, s, res, &requeue, err);
        if (rc == 0 && (requeue || take_chunk(p, s))) {
            queue_read(&ring, p, s);
            in_flight++;
        }
    }
    drain(&ring, in_flight);
    io_uring_queue_exit(&ring);
    return rc;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int open_file(const char *path, bool direct, int *fd, struct mp_error *err)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
    if (*fd >= 0)
        return 0;
    if (direct && errno == EINVAL)
        return DIRECT_REFUSED;
    return mp_error_set(err, MP_EIO, "%s: %s", path, strerror(errno));
}

static int run_passes(struct pass *p, struct slot *slots, int depth, struct mp_error *err)
{
    int rc = open_file(p->path, p->direct, &p->fd, err);
    if (rc == 0) {
        rc = read_pass(p, slots, depth, err);
        close(p->fd);
    }
    if (rc != DIRECT_REFUSED)
        return rc;
    mp_info("%s: O_DIRECT refused by the filesystem, reading through the page cache", p->path);
    *p = (struct pass){.path = p->path,
                       .direct = false,
                       .reqs = p->reqs,
                       .n = p->n,
                       .total = p->total,
                       .chunk = p->chunk,
                       .opts = p->opts};
    rc = open_file(p->path, false, &p->fd, err);
    if (rc == 0) {
        rc = read_pass(p, slots, depth, err);
        close(p->fd);
    }
    return rc;
}

int shard_read_ranges(const char *path, const struct shard_read *reqs, size_t n,
                      const struct shard_read_opts *opts, struct shard_read_stats *stats,
                      struct mp_error *err)
{
    int depth = opts && opts->queue_depth > 0 ? opts->queue_depth : DEFAULT_DEPTH;
    size_t chunk = opts && opts->chunk_bytes > 0 ? opts->chunk_bytes : DEFAULT_CHUNK;
    if (depth > 1024 || chunk > (1u << 30))
        return mp_error_set(err, MP_EINVAL, "read queue depth %d or chunk %zu too large", depth,
                            chunk);
    if (chunk < DIRECT_ALIGN) /* every chunk then contains a block boundary to end on */
        chunk = DIRECT_ALIGN;
    struct pass p = {.path = path,
                     .direct = !(opts && opts->buffered),
                     .reqs = reqs,
                     .n = n,
                     .chunk = chunk,
                     .opts = opts};
    for (size_t i = 0; i < n; i++)
        p.total += reqs[i].len;
    struct slot *slots = calloc((size_t)depth, sizeof(*slots));
    int rc = slots ? 0 : mp_error_set(err, MP_ENOMEM, "out of memory");
    /* A chunk's aligned span is at most chunk + 2 blocks. */
    for (int i = 0; rc == 0 && p.direct && i < depth; i++)
        if (posix_memalign((void **)&slots[i].stage, DIRECT_ALIGN, chunk + 2 * DIRECT_ALIGN))
            rc = mp_error_set(err, MP_ENOMEM, "out of memory for read staging buffers");
    double t0 = now_s();
    if (rc == 0)
        rc = run_passes(&p, slots, depth, err);
    double dt = now_s() - t0;
    if (rc == 0 && stats)
        *stats = (struct shard_read_stats){.bytes = p.total,
                                           .seconds = dt,
                                           .gb_per_s = dt > 0 ? (double)p.total / dt / 1e9 : 0,
                                           .direct = p.direct};
    for (int i = 0; slots && i < depth; i++)
        free(slots[i].stage);
    free(slots);
    return rc;
}
