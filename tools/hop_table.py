#!/usr/bin/env python3
"""tools/hop_table.py: per-hop latencies of the cluster's expert round trips, from the files a
run with MOEPOOL_HOP_TRACE=PREFIX wrote (PREFIX.PID, one per process; proto/hoptrace.h).

    python3 tools/hop_table.py PREFIX [--skip N] [--upto M]

Records are joined by (job, slot): one worker's part of one MoE layer job. Each row is the time
from one hop to the next present one (all processes on one machine share CLOCK_MONOTONIC), as
median and mean over the round trips that have both; --skip drops the first N jobs (warm-up),
--upto the jobs after M (e.g. to keep a bench's single-stream test only)."""
import glob
import statistics
import sys
from collections import defaultdict

ORDER = ["eb_send", "eb_sent", "cluster_out", "worker_io_in", "compute_in", "compute_done",
         "worker_io_out", "cluster_in", "eb_recv"]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    skip = int(sys.argv[sys.argv.index("--skip") + 1]) if "--skip" in sys.argv else 0
    upto = int(sys.argv[sys.argv.index("--upto") + 1]) if "--upto" in sys.argv else 1 << 62
    trips = defaultdict(dict)
    for path in glob.glob(sys.argv[1] + ".[0-9]*"):
        for line in open(path):
            job, slot, hop, ns = line.split()
            trips[(int(job), int(slot))][hop] = int(ns)
    deltas = defaultdict(list)
    totals = []
    for (job, _), t in trips.items():
        if job <= skip or job > upto or "eb_send" not in t or "eb_recv" not in t:
            continue
        hops = [h for h in ORDER if h in t]
        for a, b in zip(hops, hops[1:]):
            deltas[(a, b)].append((t[b] - t[a]) / 1000)
        totals.append((t["eb_recv"] - t["eb_send"]) / 1000)
    if not totals:
        sys.exit("no complete round trips in " + sys.argv[1] + ".*")
    print(f"{len(totals)} round trips (job, worker)")
    print("| hop | median us | mean us |")
    print("|---|---|---|")
    for (a, b), v in sorted(deltas.items(), key=lambda kv: ORDER.index(kv[0][0])):
        print(f"| {a} -> {b} | {statistics.median(v):.0f} | {statistics.mean(v):.0f} |")
    print(f"| round trip eb_send -> eb_recv | {statistics.median(totals):.0f} | "
          f"{statistics.mean(totals):.0f} |")


if __name__ == "__main__":
    main()
