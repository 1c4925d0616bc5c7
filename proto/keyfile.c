/* proto/keyfile.c: see keyfile.h. File format, two lines:
 *   moepool-cluster-key public=<40 Z85 chars>
 *   secret=<40 Z85 chars> */
#include "proto/keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

int keyfile_generate(const char *path, struct mp_error *err)
{
    struct cluster_key k;
    if (zmq_curve_keypair(k.public_z85, k.secret_z85))
        return mp_error_set(err, MP_EUNSUPPORTED, "this libzmq has no CURVE support");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return mp_error_set(err, MP_EIO, "%s: cannot create: %s", path, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return mp_error_set(err, MP_EIO, "%s: cannot write", path);
    }
    int w = fprintf(f, "moepool-cluster-key public=%s\nsecret=%s\n", k.public_z85, k.secret_z85);
    if (fclose(f) || w < 0)
        return mp_error_set(err, MP_EIO, "%s: write failed", path);
    return 0;
}

static int z85_ok(const char *s)
{
    uint8_t raw[32];
    return strlen(s) == 40 && zmq_z85_decode(raw, s) != NULL;
}

int keyfile_read(const char *path, struct cluster_key *out, struct mp_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return mp_error_set(err, MP_EIO, "%s: cannot open key file: %s", path, strerror(errno));
    char pub[64] = "", sec[64] = "";
    int n = fscanf(f, "moepool-cluster-key public=%63s secret=%63s", pub, sec);
    fclose(f);
    if (n != 2 || !z85_ok(pub) || !z85_ok(sec))
        return mp_error_set(err, MP_ECORRUPT, "%s: not a key file from `moepool keygen`", path);
    memcpy(out->public_z85, pub, 41);
    memcpy(out->secret_z85, sec, 41);
    return 0;
}

int keyfile_apply_server(void *sock, const struct cluster_key *k, struct mp_error *err)
{
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret_z85, 40) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "moepool", 7))
        return mp_error_set(err, MP_EUNSUPPORTED, "CURVE server setup: %s", zmq_strerror(errno));
    return 0;
}

int keyfile_apply_client(void *sock, const struct cluster_key *k, struct mp_error *err)
{
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, k->public_z85, 40) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, k->public_z85, 40) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, k->secret_z85, 40))
        return mp_error_set(err, MP_EUNSUPPORTED, "CURVE client setup: %s", zmq_strerror(errno));
    return 0;
}
