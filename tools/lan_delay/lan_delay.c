/* tools/lan_delay/lan_delay.c: holds every packet of an NFQUEUE for a fixed time, then lets it go,
 * in order: the one-way delay of a LAN link, for kernels without sch_netem (docs/netns.md).
 *
 *   lan_delay --delay 0.3ms [--queue 0] [--maxlen 4096] [--daemon] [--log FILE] [--no-rt]
 *
 * A netfilter rule sends the packets to the queue, e.g. in a host's namespace
 *   nft add rule inet mp_lan out oifname eth0 queue num 0
 * (deploy/netns.sh sets this up). Packets are delayed whole, whatever their protocol or port:
 * TCP data and its ACKs, SYNs, ping. The kernel keeps the packets; only their ids come here.
 *
 * Timing: a packet's release time is the moment its notification was read plus the delay, so the
 * delay is never shorter than asked (what the test relies on); it is longer by the time the
 * kernel took to tell us and by how late we wake up. To keep that small the loop sleeps in ppoll
 * with nanosecond timeouts and no timer slack, and runs SCHED_FIFO when it may (a shared, busy
 * machine would otherwise delay our wake-ups by whole scheduler ticks). On exit it prints how late
 * releases were (mean and max) so a run can say how exact its delay was.
 *
 * --daemon: binds the queue first, then goes to the background, so that when the command returns
 * the queue has a reader (packets queued to a queue nobody reads are dropped). SIGTERM/SIGINT:
 * releases every held packet, prints the summary, exits 0. */
#include "tools/lan_delay/delay_line.h"
#include "tools/lan_delay/nfqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

struct options {
    uint64_t delay_ns;
    unsigned queue, maxlen;
    int daemon, rt;
    const char *log;
};

struct stats {
    uint64_t packets, releases, late_sum_ns, late_max_ns, overflow;
    uint32_t held_max;
};

struct state {
    struct delay_line line;
    struct stats st;
    uint64_t now_ns;
    uint64_t early_ns; /* how long before a release to wake: the recent wake-up lateness */
};

/* Wake-ups from a timed sleep come this late (a moving average; on this VM 20-60 us), so the
 * loop sets its alarm that much early and spins the rest. Capped: a machine so loaded that
 * wake-ups are later than this gets late releases rather than a spinning core. */
#define EARLY_MAX_NS 100000u
#define EARLY_START_NS 40000u /* this VM's typical lateness, until measured */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: lan_delay --delay DURATION [--queue N] [--maxlen PACKETS] [--daemon]\n"
               "                 [--log FILE] [--no-rt]\n"
               "  DURATION: a number with a unit, as tc writes it: 300us, 0.3ms, 1ms, 0.002s\n");
}

/* "0.3ms" -> 300000 ns; -1 on a missing or unknown unit, a negative or absurd (> 10 s) value. */
static int64_t parse_duration(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    static const struct {
        const char *unit;
        double ns;
    } units[] = {{"s", 1e9}, {"ms", 1e6}, {"us", 1e3}, {"ns", 1}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(end, units[i].unit) == 0 && v * units[i].ns <= 10e9)
            return (int64_t)(v * units[i].ns + 0.5);
    return -1;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = (unsigned)v;
    return 0;
}

/* 0 ok, 2 bad usage (message printed). */
static int parse_args(int argc, char **argv, struct options *o)
{
    *o = (struct options){.queue = 0, .maxlen = 4096, .rt = 1};
    int have_delay = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = strcmp(a, "--delay") == 0 || strcmp(a, "--queue") == 0 ||
                    strcmp(a, "--maxlen") == 0 || strcmp(a, "--log") == 0;
        if (takes && !v) {
            fprintf(stderr, "lan_delay: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--delay") == 0) {
            int64_t d = parse_duration(v);
            if (d < 0) {
                fprintf(stderr, "lan_delay: bad --delay '%s' (want e.g. 0.3ms, 300us)\n", v);
                return 2;
            }
            o->delay_ns = (uint64_t)d;
            have_delay = 1;
        } else if (strcmp(a, "--queue") == 0) {
            if (parse_uint(v, 0, 65535, &o->queue)) {
                fprintf(stderr, "lan_delay: bad --queue '%s' (0..65535)\n", v);
                return 2;
            }
        } else if (strcmp(a, "--maxlen") == 0) {
            if (parse_uint(v, 1, 1u << 20, &o->maxlen)) {
                fprintf(stderr, "lan_delay: bad --maxlen '%s' (1..1048576)\n", v);
                return 2;
            }
        } else if (strcmp(a, "--log") == 0) {
            o->log = v;
        } else if (strcmp(a, "--daemon") == 0) {
            o->daemon = 1;
        } else if (strcmp(a, "--no-rt") == 0) {
            o->rt = 0;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "lan_delay: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        i += takes;
    }
    if (!have_delay) {
        fprintf(stderr, "lan_delay: --delay is required\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

static void on_packet(void *ctx, uint32_t id)
{
    struct state *s = ctx;
    s->st.packets++;
    if (delay_line_push(&s->line, id, s->now_ns))
        s->st.overflow++; /* cannot happen while the kernel's limit is the line's size */
    if (s->line.len > s->st.held_max)
        s->st.held_max = s->line.len;
}

/* Releases what is due at NOW (everything when ALL): one batch verdict for the lot. */
static int release(struct nfqueue *q, struct state *s, uint64_t now, int all)
{
    uint64_t due = delay_line_next(&s->line);
    uint32_t last;
    if (delay_line_pop_due(&s->line, all ? UINT64_MAX : now, &last) == 0)
        return 0;
    if (!all) {
        uint64_t late = now - due;
        s->st.late_sum_ns += late;
        s->st.late_max_ns = late > s->st.late_max_ns ? late : s->st.late_max_ns;
        s->st.releases++;
    }
    return nfqueue_accept_upto(q, last);
}

/* The sleep until the head is due less EARLY, NULL (forever) when nothing is held. */
static struct timespec *timeout_until(uint64_t due, uint64_t early, uint64_t now,
                                      struct timespec *ts)
{
    if (due == UINT64_MAX)
        return NULL;
    uint64_t wake = due > early ? due - early : 0;
    uint64_t wait = wake > now ? wake - now : 0;
    ts->tv_sec = (time_t)(wait / 1000000000u);
    ts->tv_nsec = (long)(wait % 1000000000u);
    return ts;
}

/* After a timed-out sleep that aimed at DUE - early: how late it woke, averaged (1/8 weight). */
static void learn_wake_lateness(struct state *s, uint64_t due, uint64_t woke)
{
    uint64_t aimed = due > s->early_ns ? due - s->early_ns : 0;
    uint64_t late = woke > aimed ? woke - aimed : 0;
    if (late > EARLY_MAX_NS)
        late = EARLY_MAX_NS;
    s->early_ns = s->early_ns - s->early_ns / 8 + late / 8;
}

static void spin_until(uint64_t due)
{
    while (now_ns() < due) {
    }
}

/* The signals are blocked except inside ppoll, so a SIGTERM cannot slip in between the check
 * of `stop` and a sleep that would never end. */
static int run(struct nfqueue *q, struct state *s)
{
    sigset_t block, during_poll;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &during_poll);
    struct pollfd p = {.fd = q->fd, .events = POLLIN};
    while (!stop) {
        struct timespec ts;
        uint64_t now = now_ns(), due = delay_line_next(&s->line);
        int r = ppoll(&p, 1, timeout_until(due, s->early_ns, now, &ts), &during_poll);
        if (r < 0 && errno != EINTR) {
            perror("lan_delay: ppoll");
            return 1;
        }
        s->now_ns = now_ns();
        if (r == 0)
            learn_wake_lateness(s, due, s->now_ns);
        /* ENOBUFS (notifications lost when we were too slow) is harmless: a later batch
         * verdict also lets the packets we never heard of go. */
        if (r > 0 && nfqueue_read(q, on_packet, s) < 0) {
            perror("lan_delay: read queue");
            return 1;
        }
        if (r == 0)
            spin_until(due);
        if (release(q, s, now_ns(), 0)) {
            perror("lan_delay: verdict");
            return 1;
        }
    }
    return 0;
}

static void summary(const struct options *o, const struct stats *st)
{
    double mean_us = st->releases ? st->late_sum_ns / 1e3 / st->releases : 0;
    fprintf(stderr,
            "lan_delay: queue %u, delay %.1f us: %llu packets, %llu releases late by %.1f us "
            "mean, %.1f us max; at most %u held%s\n",
            o->queue, o->delay_ns / 1e3, (unsigned long long)st->packets,
            (unsigned long long)st->releases, mean_us, st->late_max_ns / 1e3, st->held_max,
            st->overflow ? " (line overflowed)" : "");
}

/* Runs in the background from here on: a new session, stdio on /dev/null or the log. */
static int daemonize(const char *log)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    setsid();
    int in = open("/dev/null", O_RDONLY);
    int out = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0644) : open("/dev/null", O_WRONLY);
    if (in < 0 || out < 0)
        return -1;
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    close(in);
    close(out);
    return 0;
}

static void go_realtime(int rt)
{
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    struct sched_param sp = {.sched_priority = 10};
    if (rt && sched_setscheduler(0, SCHED_FIFO, &sp))
        fprintf(stderr, "lan_delay: no SCHED_FIFO (%s): wake-ups may be late on a busy machine\n",
                strerror(errno));
}

int main(int argc, char **argv)
{
    struct options o;
    int rc = parse_args(argc, argv, &o);
    if (rc)
        return rc;
    struct state s = {.early_ns = EARLY_START_NS};
    if (delay_line_init(&s.line, o.maxlen, o.delay_ns)) {
        fprintf(stderr, "lan_delay: out of memory\n");
        return 1;
    }
    struct nfqueue q;
    char err[256];
    if (nfqueue_open(&q, (uint16_t)o.queue, o.maxlen, err, sizeof(err))) {
        fprintf(stderr, "lan_delay: queue %u: %s\n", o.queue, err);
        return 1;
    }
    if (o.daemon && daemonize(o.log)) {
        fprintf(stderr, "lan_delay: cannot go to the background: %s\n", strerror(errno));
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    go_realtime(o.rt);
    rc = run(&q, &s);
    release(&q, &s, 0, 1); /* closing the queue would drop what it holds */
    summary(&o, &s.st);
    nfqueue_close(&q);
    delay_line_free(&s.line);
    return rc;
}
