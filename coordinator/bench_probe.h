/* coordinator/bench_probe.h: how fast this machine reads memory, the denominator of the decode
 * roofline (a decode step is memory bound: its speed limit is weight bytes / read bandwidth). */
#ifndef BENCH_PROBE_H
#define BENCH_PROBE_H

#include <stddef.h>

#include "base/err.h"

/* Best read bandwidth, in bytes per second, of n_threads threads each summing its slice of a
 * buffer of `bytes` (far larger than the caches), over a few passes. Runs in a child process so
 * the probe's buffer never counts in the caller's peak RSS. */
int bench_read_bandwidth(int n_threads, size_t bytes, double *bytes_per_s, struct mp_error *err);

#endif
