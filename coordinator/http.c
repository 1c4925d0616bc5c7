/* coordinator/http.c: the libmicrohttpd glue of http.h. Thread-per-connection mode: a blocking
 * handler or stream callback only holds up its own client. The body is gathered across the
 * access callback's upload calls into a per-connection buffer, bounded by HTTP_MAX_BODY. */
#include "coordinator/http.h"

#include "base/log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct http_server {
    struct MHD_Daemon *d;
    http_handler handler;
    void *app;
    int port;
};

struct conn {
    char *body;
    size_t len, cap;
    bool too_big;
};

bool http_peer_closed(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0;
}

static int append_body(struct conn *c, const char *data, size_t n)
{
    if (c->len + n > HTTP_MAX_BODY) {
        c->too_big = true;
        return 0;
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *p = realloc(c->body, cap);
        if (!p)
            return -1;
        c->body = p;
        c->cap = cap;
    }
    memcpy(c->body + c->len, data, n);
    c->len += n;
    c->body[c->len] = 0;
    return 0;
}

struct stream {
    struct http_reply r;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *s = cls;
    ssize_t n = s->r.read(s->r.ctx, buf, max);
    if (n == HTTP_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    if (s->r.done)
        s->r.done(s->r.ctx);
    free(s);
}

static struct MHD_Response *make_response(struct http_reply *r)
{
    struct MHD_Response *resp;
    if (r->read) {
        struct stream *s = malloc(sizeof(*s));
        if (!s) {
            if (r->done)
                r->done(r->ctx);
            return NULL;
        }
        s->r = *r;
        resp =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
        if (!resp)
            stream_free(s);
        else
            MHD_add_response_header(resp, "Cache-Control", "no-cache");
    } else if (r->body_static) {
        resp = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_PERSISTENT);
    } else {
        resp = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            free(r->body);
    }
    if (!resp)
        return NULL;
    if (r->content_type)
        MHD_add_response_header(resp, "Content-Type", r->content_type);
    if (r->retry_after > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", r->retry_after);
        MHD_add_response_header(resp, "Retry-After", v);
    }
    /* browsers on other origins (a local chat UI) may call the API with a key */
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    return resp;
}

static enum MHD_Result send_plain(struct MHD_Connection *c, int status, const char *json)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(json), (void *)json, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static int connection_fd(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct http_server *s = cls;
    struct conn *cn = *con_cls;
    if (!cn) { /* headers only so far */
        if (!(cn = calloc(1, sizeof(*cn))))
            return MHD_NO;
        *con_cls = cn;
        return MHD_YES;
    }
    if (*upload_size) {
        if (append_body(cn, upload_data, *upload_size))
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    if (cn->too_big)
        return send_plain(c, 413,
                          "{\"error\":{\"message\":\"the request body is larger than 16 MiB\","
                          "\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}");
    struct http_request req = {
        .method = method,
        .path = url,
        .authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
        .body = cn->body ? cn->body : "",
        .body_len = cn->len,
        .fd = connection_fd(c),
    };
    struct http_reply reply = {0};
    s->handler(s->app, &req, &reply);
    struct MHD_Response *resp = make_response(&reply);
    if (!resp)
        return MHD_NO;
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)reply.status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)c, (void)why;
    struct conn *cn = *con_cls;
    if (cn) {
        free(cn->body);
        free(cn);
        *con_cls = NULL;
    }
}

/* libmicrohttpd's messages (e.g. a client that hung up mid-stream, which is routine) go to the
 * debug log rather than stderr. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = 0;
    mp_debug("http: %s", msg);
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len,
                   struct mp_error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai;
    char port_s[16];
    snprintf(port_s, sizeof(port_s), "%d", port);
    int rc = getaddrinfo(host, port_s, &hints, &ai);
    if (rc)
        return mp_error_set(err, MP_EINVAL, "cannot resolve host '%s': %s", host, gai_strerror(rc));
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    *len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

int http_start(const char *host, int port, http_handler handler, void *app,
               struct http_server **out, struct mp_error *err)
{
    *out = NULL;
    struct sockaddr_storage ss;
    socklen_t ss_len;
    if (port < 0 || port > 65535)
        return mp_error_set(err, MP_EINVAL, "port %d is out of range", port);
    int rc = resolve(host, port, &ss, &ss_len, err);
    if (rc)
        return rc;
    struct http_server *s = calloc(1, sizeof(*s));
    if (!s)
        return mp_error_set(err, MP_ENOMEM, "out of memory");
    s->handler = handler;
    s->app = app;
    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR,
                            (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                            NULL, MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return mp_error_set(err, MP_EIO,
                            "cannot listen on %s:%d (in use, or not an address "
                            "of this machine)",
                            host, port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : port;
    *out = s;
    return 0;
}

int http_port(const struct http_server *s)
{
    return s->port;
}

void http_stop(struct http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->d);
    free(s);
}
