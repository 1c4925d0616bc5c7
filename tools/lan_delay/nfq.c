/* tools/lan_delay/nfq.c: see nfq.h. Message layout (linux/netfilter/nfnetlink_queue.h): a
 * netlink header, a struct nfgenmsg whose res_id is the queue number, then attributes. */
#include "tools/lan_delay/nfq.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MSG_TYPE(m) ((NFNL_SUBSYS_QUEUE << 8) | (m))

struct msg {
    union {
        char buf[256];
        struct nlmsghdr align;
    } u;
};

static struct nlmsghdr *msg_start(struct msg *m, struct nfq *q, int type, int flags)
{
    memset(m, 0, sizeof(*m));
    struct nlmsghdr *h = &m->u.align;
    h->nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg));
    h->nlmsg_type = MSG_TYPE(type);
    h->nlmsg_flags = NLM_F_REQUEST | flags;
    h->nlmsg_seq = ++q->seq;
    struct nfgenmsg *g = NLMSG_DATA(h);
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    g->res_id = htons(q->queue);
    return h;
}

static void msg_attr(struct nlmsghdr *h, int type, const void *data, size_t len)
{
    struct nlattr *a = (struct nlattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
    a->nla_type = type;
    a->nla_len = NLA_HDRLEN + len;
    memcpy((char *)a + NLA_HDRLEN, data, len);
    h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

static int msg_send(struct nfq *q, struct nlmsghdr *h)
{
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    ssize_t n = sendto(q->fd, h, h->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
    return n == (ssize_t)h->nlmsg_len ? 0 : -1;
}

/* Sends a configuration message and waits for the kernel's acknowledgement: 0 or -1, errno set
 * to the kernel's error. */
static int config(struct nfq *q, struct nlmsghdr *h)
{
    if (msg_send(q, h))
        return -1;
    union {
        char buf[4096];
        struct nlmsghdr align;
    } r;
    for (;;) {
        ssize_t n = recv(q->fd, r.buf, sizeof(r.buf), 0);
        if (n < 0)
            return -1;
        for (struct nlmsghdr *a = &r.align; NLMSG_OK(a, (size_t)n); a = NLMSG_NEXT(a, n)) {
            if (a->nlmsg_type == NLMSG_ERROR && a->nlmsg_seq == h->nlmsg_seq) {
                int e = -((struct nlmsgerr *)NLMSG_DATA(a))->error;
                errno = e;
                return e ? -1 : 0;
            }
        }
    }
}

static int fail(char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, strerror(errno));
    return -1;
}

int nfq_open(struct nfq *q, uint16_t queue, uint32_t maxlen, char *err, size_t errlen)
{
    q->queue = queue;
    q->seq = 0;
    q->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (q->fd < 0)
        return fail(err, errlen, "netlink socket");
    /* A deep receive buffer, forced past rmem_max as root: at 1 Gbit/s a late wake-up must not
     * lose notifications (lost ones are harmless, see lan_delay.c, but each costs a packet its
     * exact delay). */
    int rcvbuf = 8 << 20, one = 1;
    if (setsockopt(q->fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)))
        setsockopt(q->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    setsockopt(q->fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));

    struct msg m;
    struct nlmsghdr *h = msg_start(&m, q, NFQNL_MSG_CONFIG, NLM_F_ACK);
    struct nfqnl_msg_config_cmd cmd = {.command = NFQNL_CFG_CMD_BIND};
    msg_attr(h, NFQA_CFG_CMD, &cmd, sizeof(cmd));
    if (config(q, h))
        return fail(err, errlen, "bind queue (is another program on it?)");

    h = msg_start(&m, q, NFQNL_MSG_CONFIG, NLM_F_ACK);
    struct nfqnl_msg_config_params params = {.copy_range = 0, .copy_mode = NFQNL_COPY_META};
    msg_attr(h, NFQA_CFG_PARAMS, &params, sizeof(params));
    uint32_t len = htonl(maxlen);
    msg_attr(h, NFQA_CFG_QUEUE_MAXLEN, &len, sizeof(len));
    /* GSO: segments of up to 64 KiB stay whole, as they would on a NIC with offloads; else the
     * kernel would cut them to MTU size in software before queueing. */
    uint32_t flags = htonl(NFQA_CFG_F_GSO);
    msg_attr(h, NFQA_CFG_MASK, &flags, sizeof(flags));
    msg_attr(h, NFQA_CFG_FLAGS, &flags, sizeof(flags));
    if (config(q, h))
        return fail(err, errlen, "configure queue");
    fcntl(q->fd, F_SETFL, fcntl(q->fd, F_GETFL) | O_NONBLOCK);
    return 0;
}

void nfq_close(struct nfq *q)
{
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
}

static int packet_id(struct nlmsghdr *h, uint32_t *id)
{
    size_t off = NLMSG_LENGTH(NLMSG_ALIGN(sizeof(struct nfgenmsg)));
    while (off + NLA_HDRLEN <= h->nlmsg_len) {
        struct nlattr *a = (struct nlattr *)((char *)h + off);
        if (a->nla_len < NLA_HDRLEN || off + a->nla_len > h->nlmsg_len)
            return -1;
        if ((a->nla_type & NLA_TYPE_MASK) == NFQA_PACKET_HDR &&
            a->nla_len >= NLA_HDRLEN + sizeof(struct nfqnl_msg_packet_hdr)) {
            struct nfqnl_msg_packet_hdr ph;
            memcpy(&ph, (char *)a + NLA_HDRLEN, sizeof(ph));
            *id = ntohl(ph.packet_id);
            return 0;
        }
        off += NLA_ALIGN(a->nla_len);
    }
    return -1;
}

int nfq_read(struct nfq *q, void (*on_packet)(void *ctx, uint32_t id), void *ctx)
{
    union {
        char buf[1 << 16];
        struct nlmsghdr align;
    } r;
    int count = 0;
    for (;;) {
        ssize_t n = recv(q->fd, r.buf, sizeof(r.buf), 0);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? count : -1;
        for (struct nlmsghdr *h = &r.align; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            uint32_t id;
            if (h->nlmsg_type == MSG_TYPE(NFQNL_MSG_PACKET) && packet_id(h, &id) == 0) {
                on_packet(ctx, id);
                count++;
            }
        }
    }
}

int nfq_accept_upto(struct nfq *q, uint32_t last_id)
{
    struct msg m;
    struct nlmsghdr *h = msg_start(&m, q, NFQNL_MSG_VERDICT_BATCH, 0);
    struct nfqnl_msg_verdict_hdr v = {.verdict = htonl(NF_ACCEPT), .id = htonl(last_id)};
    msg_attr(h, NFQA_VERDICT_HDR, &v, sizeof(v));
    return msg_send(q, h);
}
