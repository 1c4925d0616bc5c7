/* coordinator/cluster_zap.c: ZeroMQ's authentication protocol (ZAP, RFC 27) for the cluster's
 * CURVE mode: a CURVE client is admitted only when its long-term public key is the cluster key's
 * (see proto/keyfile.h); every refusal is logged with the peer's address. */
#include <string.h>

#include "base/log.h"
#include "coordinator/cluster_impl.h"

int zap_open(struct cluster *c, struct mp_error *err)
{
    int zero = 0;
    c->zap = zmq_socket(c->ctx, ZMQ_REP);
    zmq_setsockopt(c->zap, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_bind(c->zap, "inproc://zeromq.zap.01"))
        return mp_error_set(err, MP_EIO, "ZAP handler: %s", zmq_strerror(errno));
    return 0;
}

/* Request: version, request id, domain, address, identity, mechanism, credentials...
 * Reply: version, request id, status code, status text, user id, metadata. */
void zap_handle(struct cluster *c)
{
    struct msg m;
    if (msg_recv(c->zap, &m, ZMQ_DONTWAIT))
        return;
    uint8_t allowed[32];
    zmq_z85_decode(allowed, c->key.public_z85);
    int ok = m.n >= 7 && msg_size(&m, 5) == 5 && !memcmp(msg_data(&m, 5), "CURVE", 5) &&
             msg_size(&m, 6) == 32 && !memcmp(msg_data(&m, 6), allowed, 32);
    char addr[64] = "?";
    if (m.n >= 4) {
        size_t n = msg_size(&m, 3) < sizeof(addr) - 1 ? msg_size(&m, 3) : sizeof(addr) - 1;
        memcpy(addr, msg_data(&m, 3), n);
        addr[n] = 0;
    }
    if (!ok) {
        mp_warn("cluster: refused a peer at %s: its CURVE key is not the cluster's", addr);
        pthread_mutex_lock(&c->mu);
        c->refused++;
        pthread_mutex_unlock(&c->mu);
    }
    msg_send_bytes(c->zap, "1.0", 3, 1);
    msg_send_bytes(c->zap, m.n >= 2 ? msg_data(&m, 1) : "", m.n >= 2 ? msg_size(&m, 1) : 0, 1);
    msg_send_bytes(c->zap, ok ? "200" : "400", 3, 1);
    msg_send_bytes(c->zap, ok ? "OK" : "key not allowed", ok ? 2 : 15, 1);
    msg_send_bytes(c->zap, "", 0, 1);
    msg_send_bytes(c->zap, "", 0, 0);
    msg_close(&m);
}
