/* proto/msg.h: cluster messages on ZeroMQ sockets. A message is [prefix] envelope [bulk...]:
 * prefix is the peer identity on the coordinator's ROUTER (added by ZeroMQ) or a slot number on
 * the coordinator's internal pipe; the envelope is a protobuf Envelope (proto/cluster.proto);
 * bulk frames are raw arrays, built in place in zmq_msg_t buffers so they are never copied. */
#ifndef MSG_H
#define MSG_H

#include <stddef.h>
#include <zmq.h>

#include "base/err.h"
#include "proto/cluster.pb-c.h"

/* Peers speaking another version are refused. Bump when a message's meaning changes. */
/* 2: ExpertRequest.x_act; 3: Welcome.data_port/data_id (requests may come on a second connection) */
#define CLUSTER_PROTOCOL_VERSION 3u

#define MSG_MAX_PARTS 8

/* A received multipart message. n counts parts kept; extra parts are dropped (too_many set). */
struct msg {
    zmq_msg_t part[MSG_MAX_PARTS];
    int n;
    int too_many;
};

/* Receives every part of the next message (flags: 0 or ZMQ_DONTWAIT). 0, or -1 with errno. */
int msg_recv(void *sock, struct msg *m, int flags);
void msg_close(struct msg *m); /* closes the parts; m may be reused */

static inline const void *msg_data(struct msg *m, int i) { return zmq_msg_data(&m->part[i]); }
static inline size_t msg_size(struct msg *m, int i) { return zmq_msg_size(&m->part[i]); }

/* Unpacks part i as an Envelope with a body; NULL when it is not one (garbage). Free with
 * envelope__free_unpacked(env, NULL). */
Envelope *msg_envelope(struct msg *m, int i);

/* Sends part i.. of m on sock (moving them: no copy); m's parts from i on are then empty. */
int msg_forward(struct msg *m, int from, void *sock);

/* Send one frame; more: another frame follows. 0, or -1 with errno. */
int msg_send_bytes(void *sock, const void *data, size_t len, int more);
int msg_send_env(void *sock, const Envelope *env, int more);
int msg_send_zmsg(void *sock, zmq_msg_t *part, int more); /* consumes part */

/* Name of the envelope's body for logs ("hello", "request", ...). */
const char *msg_kind(const Envelope *env);

#endif
