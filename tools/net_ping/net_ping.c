/* tools/net_ping/net_ping.c: round-trip latency between two processes on loopback, raw TCP against
 * ZeroMQ DEALER/ROUTER, the floor under the cluster's per-job transport cost (docs/cluster.md,
 * "Hand-offs"). A child process echoes; the parent sends SIZE bytes and waits for them back,
 * 2000 times per transport, and prints the median and the 10th/90th percentiles.
 *
 *   build/net_ping [SIZE]     (default 2400: one Q8_K row of a 2048-wide model plus ids) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define N_TRIPS 2000

static char buf[1 << 20];
static double trips[N_TRIPS];

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name)
{
    qsort(trips, N_TRIPS, sizeof(trips[0]), by_value);
    printf("%-22s median %.0f us, p10 %.0f, p90 %.0f\n", name, trips[N_TRIPS / 2],
           trips[N_TRIPS / 10], trips[N_TRIPS * 9 / 10]);
}

static int read_all(int fd, size_t n)
{
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static void tcp_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int ping_tcp(size_t size)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) || listen(ls, 1) ||
        getsockname(ls, (struct sockaddr *)&a, &len))
        return -1;
    if (fork() == 0) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s, (struct sockaddr *)&a, sizeof(a)))
            _exit(1);
        tcp_nodelay(s);
        for (int i = 0; i < N_TRIPS && !read_all(s, size); i++)
            if (write(s, buf, size) != (ssize_t)size)
                break;
        _exit(0);
    }
    int c = accept(ls, NULL, NULL);
    tcp_nodelay(c);
    for (int i = 0; i < N_TRIPS; i++) {
        const double t = now_us();
        if (write(c, buf, size) != (ssize_t)size || read_all(c, size))
            return -1;
        trips[i] = now_us() - t;
    }
    close(c);
    close(ls);
    wait(NULL);
    report("raw TCP");
    return 0;
}

static int ping_zmq(size_t size)
{
    if (fork() == 0) { /* echo: [identity][payload] back to the sender */
        void *ctx = zmq_ctx_new(), *r = zmq_socket(ctx, ZMQ_ROUTER);
        if (zmq_bind(r, "tcp://127.0.0.1:47311"))
            _exit(1);
        char id[256];
        for (int i = 0; i < N_TRIPS + 1; i++) {
            int il = zmq_recv(r, id, sizeof(id), 0), n = zmq_recv(r, buf, sizeof(buf), 0);
            zmq_send(r, id, (size_t)il, ZMQ_SNDMORE);
            zmq_send(r, buf, (size_t)n, 0);
        }
        sleep(1); /* the last reply goes out before the socket closes */
        zmq_close(r);
        zmq_ctx_term(ctx);
        _exit(0);
    }
    void *ctx = zmq_ctx_new(), *d = zmq_socket(ctx, ZMQ_DEALER);
    zmq_connect(d, "tcp://127.0.0.1:47311");
    zmq_send(d, buf, size, 0); /* warm-up: the connection is up after this round trip */
    zmq_recv(d, buf, sizeof(buf), 0);
    for (int i = 0; i < N_TRIPS; i++) {
        const double t = now_us();
        if (zmq_send(d, buf, size, 0) < 0 || zmq_recv(d, buf, sizeof(buf), 0) < 0)
            return -1;
        trips[i] = now_us() - t;
    }
    report("ZeroMQ DEALER/ROUTER");
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_close(d);
    zmq_ctx_term(ctx);
    wait(NULL);
    return 0;
}

int main(int argc, char **argv)
{
    const size_t size = argc > 1 ? (size_t)atol(argv[1]) : 2400;
    if (size < 1 || size > sizeof(buf)) {
        fprintf(stderr, "usage: net_ping [SIZE]   (1..%zu bytes)\n", sizeof(buf));
        return 2;
    }
    if (ping_tcp(size) || ping_zmq(size)) {
        fprintf(stderr, "net_ping: a transport failed\n");
        return 1;
    }
    return 0;
}
