/* proto/msg.c: see msg.h. */
#include "proto/msg.h"

#include <errno.h>
#include <stdlib.h>

int msg_recv(void *sock, struct msg *m, int flags)
{
    m->n = 0;
    m->too_many = 0;
    int more = 1;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, m->n == 0 && !m->too_many ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(&part);
            msg_close(m);
            errno = e;
            return -1;
        }
        more = zmq_msg_more(&part);
        if (m->n < MSG_MAX_PARTS) {
            m->part[m->n++] = part;
        } else {
            m->too_many = 1;
            zmq_msg_close(&part);
        }
    }
    return 0;
}

void msg_close(struct msg *m)
{
    for (int i = 0; i < m->n; i++)
        zmq_msg_close(&m->part[i]);
    m->n = 0;
}

Envelope *msg_envelope(struct msg *m, int i)
{
    if (i >= m->n)
        return NULL;
    Envelope *env = envelope__unpack(NULL, msg_size(m, i), msg_data(m, i));
    if (env && env->body_case == ENVELOPE__BODY__NOT_SET) {
        envelope__free_unpacked(env, NULL);
        return NULL;
    }
    return env;
}

int msg_forward(struct msg *m, int from, void *sock)
{
    for (int i = from; i < m->n; i++)
        if (zmq_msg_send(&m->part[i], sock, i + 1 < m->n ? ZMQ_SNDMORE : 0) < 0)
            return -1;
    /* Sent parts are empty now; closing them is still required and harmless. */
    return 0;
}

int msg_send_bytes(void *sock, const void *data, size_t len, int more)
{
    return zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

int msg_send_env(void *sock, const Envelope *env, int more)
{
    size_t len = envelope__get_packed_size(env);
    zmq_msg_t part;
    if (zmq_msg_init_size(&part, len))
        return -1;
    envelope__pack(env, zmq_msg_data(&part));
    return msg_send_zmsg(sock, &part, more);
}

int msg_send_zmsg(void *sock, zmq_msg_t *part, int more)
{
    int rc = zmq_msg_send(part, sock, more ? ZMQ_SNDMORE : 0);
    if (rc < 0) {
        int e = errno;
        zmq_msg_close(part);
        errno = e;
        return -1;
    }
    return 0;
}

const char *msg_kind(const Envelope *env)
{
    switch (env->body_case) {
    case ENVELOPE__BODY_HELLO: return "hello";
    case ENVELOPE__BODY_WELCOME: return "welcome";
    case ENVELOPE__BODY_REFUSE: return "refuse";
    case ENVELOPE__BODY_ASSIGN: return "assign";
    case ENVELOPE__BODY_READY: return "ready";
    case ENVELOPE__BODY_HEARTBEAT: return "heartbeat";
    case ENVELOPE__BODY_STATS: return "stats";
    case ENVELOPE__BODY_ERROR: return "error";
    case ENVELOPE__BODY_REQUEST: return "request";
    case ENVELOPE__BODY_REPLY: return "reply";
    case ENVELOPE__BODY_FETCH: return "fetch";
    case ENVELOPE__BODY_CHUNK: return "chunk";
    case ENVELOPE__BODY_BYE: return "bye";
    default: return "unknown";
    }
}
