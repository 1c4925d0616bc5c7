/* proto/keyfile.h: the cluster's CURVE key (`moepool keygen -o FILE`).
 *
 * One file holds one CURVE keypair (Z85 text, mode 0600): the coordinator serves with it, and a
 * worker presents the same keypair as its client key. The coordinator's ZAP handler admits only
 * clients whose public key is the file's, and CURVE's handshake makes a client prove it holds the
 * matching secret: holding the file is what lets a worker join. */
#ifndef KEYFILE_H
#define KEYFILE_H

#include "base/err.h"

struct cluster_key {
    char public_z85[41];
    char secret_z85[41];
};

int keyfile_generate(const char *path, struct mp_error *err);
int keyfile_read(const char *path, struct cluster_key *out, struct mp_error *err);

/* Socket options for the coordinator's ROUTER (CURVE server) and a worker's DEALER (client). */
int keyfile_apply_server(void *sock, const struct cluster_key *k, struct mp_error *err);
int keyfile_apply_client(void *sock, const struct cluster_key *k, struct mp_error *err);

#endif
