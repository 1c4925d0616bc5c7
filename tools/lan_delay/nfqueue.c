/* tools/lan_delay/nfqueue.c: see nfqueue.h. libnetfilter_queue's nfnetlink API (nfq_open,
 * nfq_create_queue, nfq_handle_packet, nfq_set_verdict_batch): it builds and parses the netlink
 * messages; here are only the choices (meta copy mode, GSO, a deep socket buffer) and the
 * non-blocking read loop lan_delay's ppoll needs. */
#include "tools/lan_delay/nfqueue.h"

#include <arpa/inet.h> /* before linux/netfilter.h: glibc's in.h first, as linux/in.h expects */
#include <errno.h>
#include <fcntl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fail(struct nfqueue *q, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    nfqueue_close(q);
    return -1;
}

/* The library calls this for each packet message nfq_handle_packet parses. */
static int on_message(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *data,
                      void *arg)
{
    (void)qh;
    (void)msg;
    struct nfqueue *q = arg;
    struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(data);
    if (ph && q->on_packet) {
        q->on_packet(q->ctx, ntohl(ph->packet_id));
        q->count++;
    }
    return 0;
}

/* A deep receive buffer, forced past rmem_max as root (nfnl_rcvbufsiz falls back to SO_RCVBUF
 * otherwise): at 1 Gbit/s a late wake-up must not lose notifications (lost ones are harmless,
 * see lan_delay.c, but each costs a packet its exact delay). */
static void tune_socket(struct nfqueue *q)
{
    nfnl_rcvbufsiz(nfq_nfnlh(q->lib), 8u << 20);
    int one = 1;
    setsockopt(q->fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
}

int nfqueue_open(struct nfqueue *q, uint16_t queue, uint32_t maxlen, char *err, size_t errlen)
{
    *q = (struct nfqueue){.fd = -1};
    /* No nfq_bind_pf: kernels since 3.8 ignore it, every queue takes every family. */
    q->lib = nfq_open();
    if (!q->lib)
        return fail(q, err, errlen, "netfilter netlink socket (nfnetlink_queue in the kernel?)");
    q->fd = nfq_fd(q->lib);
    tune_socket(q);
    q->queue = nfq_create_queue(q->lib, queue, on_message, q);
    if (!q->queue)
        return fail(q, err, errlen, "bind queue (root? another program on it?)");
    if (nfq_set_mode(q->queue, NFQNL_COPY_META, 0) < 0)
        return fail(q, err, errlen, "set copy mode meta");
    if (nfq_set_queue_maxlen(q->queue, maxlen) < 0)
        return fail(q, err, errlen, "set queue length");
    /* GSO: segments of up to 64 KiB stay whole, as they would on a NIC with offloads; else the
     * kernel would cut them to MTU size in software before queueing. */
    if (nfq_set_queue_flags(q->queue, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0)
        return fail(q, err, errlen, "set queue flag GSO");
    if (fcntl(q->fd, F_SETFL, fcntl(q->fd, F_GETFL) | O_NONBLOCK) < 0)
        return fail(q, err, errlen, "non-blocking socket");
    return 0;
}

void nfqueue_close(struct nfqueue *q)
{
    if (q->queue)
        nfq_destroy_queue(q->queue);
    if (q->lib)
        nfq_close(q->lib);
    *q = (struct nfqueue){.fd = -1};
}

int nfqueue_read(struct nfqueue *q, void (*on_packet)(void *ctx, uint32_t id), void *ctx)
{
    char buf[1 << 16] __attribute__((aligned(8)));
    q->on_packet = on_packet;
    q->ctx = ctx;
    q->count = 0;
    for (;;) {
        ssize_t n = recv(q->fd, buf, sizeof(buf), 0);
        if (n < 0) {
            q->on_packet = NULL;
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? q->count : -1;
        }
        /* A message the library cannot parse is skipped: only packet messages matter here. */
        nfq_handle_packet(q->lib, buf, (int)n);
    }
}

int nfqueue_accept_upto(struct nfqueue *q, uint32_t last_id)
{
    return nfq_set_verdict_batch(q->queue, last_id, NF_ACCEPT) < 0 ? -1 : 0;
}
