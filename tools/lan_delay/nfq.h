/* tools/lan_delay/nfq.h: the kernel's NFQUEUE over plain netlink (no libnetfilter_queue: four
 * message kinds are all lan_delay needs). Packets a netfilter rule sends to queue N wait in the
 * kernel; the program bound to N is told each packet's id and says when it may go on (a
 * verdict). Only the ids cross to user space (copy mode "meta"), never the payload.
 *
 * A queue belongs to the network namespace the socket was made in. */
#ifndef MP_NFQ_H
#define MP_NFQ_H

#include <stddef.h>
#include <stdint.h>

struct nfq {
    int fd;
    uint16_t queue;
    uint32_t seq;
};

/* Binds queue QUEUE of the current namespace, holding at most MAXLEN packets in the kernel (more
 * are dropped, as a full switch buffer drops), GSO packets left whole. 0, or -1 with a one-line
 * reason in ERR. */
int nfq_open(struct nfq *q, uint16_t queue, uint32_t maxlen, char *err, size_t errlen);
void nfq_close(struct nfq *q);
/* Reads what the kernel sent (non-blocking socket): calls ON_PACKET(ctx, id) for each queued
 * packet, in the kernel's order. Returns the number of packets, 0 when nothing was waiting, -1 on
 * a socket error (errno set; ENOBUFS, lost notifications, is not an error: see lan_delay.c). */
int nfq_read(struct nfq *q, void (*on_packet)(void *ctx, uint32_t id), void *ctx);
/* Lets packet LAST_ID and every earlier packet of the queue go on. 0, or -1 (errno set). */
int nfq_accept_upto(struct nfq *q, uint32_t last_id);

#endif
