/* coordinator/http.h: a small HTTP front on libmicrohttpd. It accepts connections (one thread
 * each, so a handler may block while a request generates), collects the request body, calls one
 * handler, and sends either a complete body or a stream pulled from a callback (Server-Sent
 * Events). It knows nothing of OpenAI or the engine: coordinator/openai.c does. */
#ifndef MP_HTTP_H
#define MP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"

#define HTTP_MAX_BODY (16u << 20) /* larger request bodies get 413 */

struct http_request {
    const char *method;
    const char *path;          /* without the query string */
    const char *authorization; /* the Authorization header, or NULL */
    const char *body;          /* NUL-terminated; "" when there is none */
    size_t body_len;
    int fd; /* the client's socket: to notice a client that went away */
};

/* Ends a stream: the callback's return values besides a byte count. */
#define HTTP_STREAM_END ((ssize_t)-1)
#define HTTP_STREAM_ERROR ((ssize_t)-2)

struct http_reply {
    int status;
    const char *content_type;
    char *body; /* malloc'd (freed by http.c) unless body_static */
    size_t body_len;
    bool body_static;
    int retry_after; /* seconds for a Retry-After header; 0: none */
    /* A stream instead of a body: read fills buf[0..max) and returns the bytes written (> 0),
     * HTTP_STREAM_END or HTTP_STREAM_ERROR; it may block. done is called once when the stream
     * ends for any reason, the client hanging up included. */
    ssize_t (*read)(void *ctx, char *buf, size_t max);
    void (*done)(void *ctx);
    void *ctx;
};

typedef void (*http_handler)(void *app, const struct http_request *req, struct http_reply *out);

struct http_server;

/* Listens on host:port (IPv4 or IPv6 literal, or "localhost"); port 0 picks a free port. */
int http_start(const char *host, int port, http_handler handler, void *app,
               struct http_server **out, struct mp_error *err);
int http_port(const struct http_server *s); /* the port actually bound */
/* Stops accepting, waits for connection threads to end, frees. NULL-safe. */
void http_stop(struct http_server *s);

/* True if the peer at fd has closed its end (a read would return end of file). */
bool http_peer_closed(int fd);

#endif
