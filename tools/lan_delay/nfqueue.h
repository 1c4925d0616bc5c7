/* tools/lan_delay/nfqueue.h: the kernel's NFQUEUE, the few operations lan_delay needs, on
 * libnetfilter_queue (Debian's libnetfilter-queue-dev; docs/netns.md says why). Packets a
 * netfilter rule sends to queue N wait in the kernel; the program bound to N is told each
 * packet's id and says when it may go on (a verdict). Only the ids cross to user space (copy mode
 * "meta"), never the payload.
 *
 * A queue belongs to the network namespace the socket was made in. */
#ifndef MP_NFQUEUE_H
#define MP_NFQUEUE_H

#include <stddef.h>
#include <stdint.h>

struct nfq_handle;
struct nfq_q_handle;

struct nfqueue {
    int fd; /* the netlink socket, non-blocking: poll it for POLLIN */
    struct nfq_handle *lib;
    struct nfq_q_handle *queue;
    /* Set during nfqueue_read only: where the library's per-packet callback reports to. */
    void (*on_packet)(void *ctx, uint32_t id);
    void *ctx;
    int count;
};

/* Binds queue QUEUE of the current namespace, holding at most MAXLEN packets in the kernel (more
 * are dropped, as a full switch buffer drops), GSO packets left whole. 0, or -1 with a one-line
 * reason in ERR. */
int nfqueue_open(struct nfqueue *q, uint16_t queue, uint32_t maxlen, char *err, size_t errlen);
/* Unbinds the queue (the kernel drops what it still holds) and closes the socket. */
void nfqueue_close(struct nfqueue *q);
/* Reads what the kernel sent (non-blocking socket): calls ON_PACKET(ctx, id) for each queued
 * packet, in the kernel's order. Returns the number of packets, 0 when nothing was waiting, -1 on
 * a socket error (errno set; ENOBUFS, lost notifications, is not an error: see lan_delay.c). */
int nfqueue_read(struct nfqueue *q, void (*on_packet)(void *ctx, uint32_t id), void *ctx);
/* Lets packet LAST_ID and every earlier packet of the queue go on (one batch verdict). 0, or -1
 * (errno set). */
int nfqueue_accept_upto(struct nfqueue *q, uint32_t last_id);

#endif
