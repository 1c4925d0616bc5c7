/* worker/cmd_worker.c: `moepool worker --join tcp://HOST:PORT [--model FILE | --cache DIR]
 * [-t THREADS] [--key FILE] [--print-topology]`. Without --model the worker fetches the parts
 * of the model it needs from the coordinator into the cache (default ~/.cache/moepool). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "commands.h"
#include "kernels/kq.h"
#include "worker/numa.h"
#include "worker/worker.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: moepool worker --join tcp://HOST:PORT [--model FILE | --cache DIR]\n"
               "                      [-t THREADS] [--key FILE] [--exit-after SECONDS]\n"
               "       moepool worker --print-topology\n");
}

static int print_topology(void)
{
    struct numa_topo *t;
    struct mp_error err = {0};
    if (numa_open(&t, &err)) {
        fprintf(stderr, "moepool worker: %s\n", err.msg);
        return 1;
    }
    numa_print(t, stdout);
    numa_close(t);
    return 0;
}

int cmd_worker(int argc, char **argv)
{
    static const struct option opts[] = {
        {"join", required_argument, 0, 'j'},      {"model", required_argument, 0, 'm'},
        {"threads", required_argument, 0, 't'},   {"key", required_argument, 0, 'k'},
        {"exit-after", required_argument, 0, 'x'}, {"print-topology", no_argument, 0, 'p'},
        {"cache", required_argument, 0, 'c'},     {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    struct worker_opts o = {.threads = (int)sysconf(_SC_NPROCESSORS_ONLN)};
    int c, topo = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'j': o.endpoint = optarg; break;
        case 'm': o.model_path = optarg; break;
        case 't': o.threads = atoi(optarg); break;
        case 'k': o.key_file = optarg; break;
        case 'c': o.cache_dir = optarg; break;
        case 'x': o.max_seconds = atoi(optarg); break;
        case 'p': topo = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (topo)
        return print_topology();
    if (!o.endpoint || o.threads < 1 || o.max_seconds < 0 || optind != argc) {
        usage(stderr);
        return 2;
    }
    kq_init();
    struct mp_error err = {0};
    int rc = worker_run(&o, &err);
    if (rc) {
        fprintf(stderr, "moepool worker: %s\n", err.msg);
        return rc == MP_ENOMEM || rc == MP_EIO ? 1 : 2;
    }
    return 0;
}
