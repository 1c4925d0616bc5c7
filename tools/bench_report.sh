#!/bin/sh
# tools/bench_report.sh: measures moepool and llama.cpp side by side on one GGUF file and thread
# count, and writes the benchmark report (docs/bench.md by default).
#
#   tools/bench_report.sh [-m MODEL] [-t THREADS] [-R ROUNDS] [-o OUT.md] [--quick]
#                         [--moepool BIN] [--llama-bench BIN | --no-llama]
#                         [--no-cluster] [--no-lan] [--no-replicas] [-- EXTRA BENCH OPTIONS]
#
# Defaults: the full-size synthetic LFM2-8B-A1B Q4_K_M (/work/synth-out/lfm2-8b-a1b-q4_k_m.gguf,
# written by `moepool synth` when missing), 2 threads, 3 rounds, build/moepool,
# /work/llama-npm/llama_bench (built by tools/llama/build.sh when missing and the npm package is
# there; without it the report has moepool's figures only). --quick: small sizes, for a check
# of the script itself, not for figures.
#
# Each round runs `moepool bench -r 1 --json` and `llama_bench -r 1 --json`, alternating which
# goes first, so slow drifts of a shared machine (other jobs, thermal) fall on both engines alike;
# the report takes min/median/max over the rounds. EXTRA BENCH OPTIONS go to both engines.
#
# When the binary has the cluster (`moepool bench --cluster`, `moepool worker`), each round also
# runs the bench with its experts on 2 workers (`moepool worker --join`, THREADS/2 threads each)
# over loopback and, as root, over an emulated LAN (deploy/netns.sh: 1 Gbit/s, 0.3 ms one way;
# without netem in the kernel the delay comes from lan_delay, built beside moepool, and the report
# gives the ping round trip measured on the emulated LAN). Each setup runs twice: with the default
# split of the experts, and with two full replicas (`placement plan --policy striped --workers 2
# --replicate 2`: each worker holds every expert and a job's experts are shared between them).
# --no-cluster, --no-lan and --no-replicas skip those. Workers' peak RSS goes in the report.
# The raw JSON lines are kept beside the report (OUT.md -> OUT.jsonl) and tools/bench_report.py turns them into the tables, written between
# the markers in OUT.md so that the hand-written text around them stays.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
MODEL=/work/synth-out/lfm2-8b-a1b-q4_k_m.gguf
THREADS=2
ROUNDS=3
OUT=$ROOT/docs/bench.md
MOEPOOL=$ROOT/build/moepool
LLAMA_NPM=/work/llama-npm
LLAMA_BENCH=$LLAMA_NPM/llama_bench
QUICK=
CLUSTER=1
LAN=1
REPLICAS=1
NETNS=$ROOT/deploy/netns.sh
NETNS_TAG=mpbench
while [ $# -gt 0 ]; do
    case $1 in
    -m) MODEL=$2; shift 2 ;;
    -t) THREADS=$2; shift 2 ;;
    -R) ROUNDS=$2; shift 2 ;;
    -o) OUT=$2; shift 2 ;;
    --moepool) MOEPOOL=$2; shift 2 ;;
    --llama-bench) LLAMA_BENCH=$2; shift 2 ;;
    --no-llama) LLAMA_BENCH=; LLAMA_NPM=/nonexistent; shift ;;
    --quick) QUICK=1; shift ;;
    --no-cluster) CLUSTER=; shift ;;
    --no-lan) LAN=; shift ;;
    --no-replicas) REPLICAS=; shift ;;
    --) shift; break ;;
    *) echo "usage: tools/bench_report.sh [-m MODEL] [-t THREADS] [-R ROUNDS] [-o OUT.md]" \
            "[--quick] [--moepool BIN] [--llama-bench BIN | --no-llama] [--no-cluster]" \
            "[--no-lan] [--no-replicas] [-- BENCH OPTIONS]" >&2
        exit 2 ;;
    esac
done
# The same test sizes for both engines (the issue's: pp512, tg128, batches of 1, 8 and 32
# sequences with 128-token prompts and 32 generated tokens), then any extra options.
if [ -n "$QUICK" ]; then
    set -- -p 64 -n 16 --batch 1,4 --batch-prompt 16 --batch-gen 8 "$@"
else
    set -- -p 512 -n 128 --batch 1,8,32 --batch-prompt 128 --batch-gen 32 "$@"
fi

[ -x "$MOEPOOL" ] || { echo "bench_report.sh: no $MOEPOOL (run deploy/build.sh)" >&2; exit 2; }
if [ ! -f "$MODEL" ]; then
    echo "bench_report.sh: writing $MODEL with moepool synth" >&2
    mkdir -p "$(dirname "$MODEL")"
    "$MOEPOOL" synth --preset lfm2-8b-a1b --type q4_k_m -o "$MODEL"
fi
if [ -n "$LLAMA_BENCH" ] && [ ! -x "$LLAMA_BENCH" ] && [ -d "$LLAMA_NPM/node_modules" ]; then
    "$HERE/llama/build.sh" "$LLAMA_NPM" "$(dirname "$LLAMA_BENCH")" >&2 || true
fi
if [ -z "$LLAMA_BENCH" ] || [ ! -x "$LLAMA_BENCH" ]; then
    echo "bench_report.sh: no llama_bench: moepool only" >&2
    LLAMA_BENCH=
fi

mkdir -p "$(dirname "$OUT")"
RAW=${OUT%.md}.jsonl
META=$(mktemp)
LINES=$(mktemp)
LOG=${OUT%.md}.log # the engines' stderr (cluster progress, warnings)
LAN_UP=
PLACEMENT=$(mktemp)
cleanup() {
    rm -f "$META" "$LINES" "$PLACEMENT"
    if [ -n "$LAN_UP" ]; then "$NETNS" --tag "$NETNS_TAG" down || true; fi
}
trap cleanup EXIT
: >"$RAW"
: >"$LOG"

# The cluster runs need `moepool bench --cluster` and `moepool worker`; the LAN needs root.
if [ -n "$CLUSTER" ] && ! { "$MOEPOOL" bench --help | grep -q -- --expect-workers &&
    "$MOEPOOL" worker --help >/dev/null 2>&1; }; then
    CLUSTER=
    CLUSTER_NOTE="not measured: this moepool has no \`bench --cluster\` (coordinator/cluster.h)"
fi
[ -n "$CLUSTER" ] || { LAN= REPLICAS=; }
if [ -n "$REPLICAS" ] && ! "$MOEPOOL" placement plan -m "$MODEL" --policy striped --workers 2 \
    --replicate 2 -o "$PLACEMENT" 2>>"$LOG"; then
    REPLICAS=
    CLUSTER_NOTE="two full replicas not measured: \`moepool placement plan --replicate 2\` failed"
fi
# Without netem, deploy/netns.sh delays packets with lan_delay, built beside moepool.
if [ -z "${MP_LAN_DELAY:-}" ] && [ -x "$(dirname "$MOEPOOL")/lan_delay" ]; then
    MP_LAN_DELAY=$(dirname "$MOEPOOL")/lan_delay
    export MP_LAN_DELAY
fi
if [ -n "$LAN" ]; then
    if "$NETNS" --tag "$NETNS_TAG" up 3 --rate 1gbit --delay 0.3ms 2>>"$LOG"; then
        LAN_UP=1
        # What the link really does: the round trip between two hosts, to set beside 2 x 0.3 ms.
        LAN_PING=$("$NETNS" --tag "$NETNS_TAG" exec h2 ping -q -c 50 -i 0.02 \
            "$("$NETNS" --tag "$NETNS_TAG" ip h1)" 2>&1 | tail -n 1) || LAN_PING="ping failed"
    else
        LAN=
        LAN_NOTE="emulated LAN not measured: deploy/netns.sh up failed (needs root; see $LOG)"
    fi
fi
WORKER_THREADS=$((THREADS / 2))
[ "$WORKER_THREADS" -ge 1 ] || WORKER_THREADS=1

# The machine and the software, for the report's first table.
{
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "cores=$(nproc)"
    echo "mem_gib=$(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)"
    echo "flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' |
        grep -E '^(avx2|avx512f|avx512_vnni|avx512_bf16)$' | tr '\n' ' ')"
    echo "kernel=$(uname -r)"
    echo "moepool_commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "llama_commit=$(git -C "$LLAMA_NPM/llama.cpp" log -1 --format=%h 2>/dev/null || echo '?')"
    echo "threads=$THREADS"
    echo "rounds=$ROUNDS"
    echo "options=$*"
    echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg)"
} >"$META"

# run_ENGINE ROUND BENCH-OPTIONS...: one round of one engine, its JSON lines appended to RAW.
# Appends the JSON lines in LINES to RAW, each marked with where the experts ran (SETUP).
keep() {
    sed "s/^{/{\"setup\":\"$1\",/" "$LINES" >>"$RAW"
}
run_moepool() {
    echo "round $1: moepool" >&2
    shift
    "$MOEPOOL" bench -m "$MODEL" -t "$THREADS" -r 1 --json "$@" >"$LINES" 2>>"$LOG"
    keep local
}
run_llama() {
    [ -n "$LLAMA_BENCH" ] || return 0
    echo "round $1: llama.cpp" >&2
    shift
    "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -r 1 --json "$@" >"$LINES" 2>>"$LOG"
    keep local
}
# on SETUP HOST CMD...: runs CMD on emulated host HOST (lan) or right here (loopback).
on() {
    if [ "$1" = lan ]; then
        host=$2
        shift 2
        "$NETNS" --tag "$NETNS_TAG" exec "$host" "$@"
    else
        shift 2
        "$@"
    fi
}
# on_exec SETUP HOST CMD...: on, replacing the calling (sub)shell.
on_exec() {
    if [ "$1" = lan ]; then
        host=$2
        shift 2
        exec "$NETNS" --tag "$NETNS_TAG" exec "$host" "$@"
    fi
    shift 2
    exec "$@"
}
# worker_rss LABEL PID...: the workers' peak RSS (VmHWM), one META line per worker and run.
worker_rss() {
    label=$1
    shift
    for pid in "$@"; do
        kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [ -z "$kb" ] || echo "worker_rss_$label=$((kb * 1024))" >>"$META"
    done
}
# run_cluster ROUND SETUP REPLICAS BENCH-OPTIONS...: the bench as coordinator on h1 with 2 workers
# on h2 and h3 (all on this machine for loopback); REPLICAS=r2: each worker holds every expert
# (the placement made above), labelled SETUP-r2. The workers are stopped by their process ids.
run_cluster() {
    round=$1 setup=$2 label=$2 reps=$3
    shift 3
    [ "$reps" != r2 ] || { label=$setup-r2; set -- --placement "$PLACEMENT" "$@"; }
    port=$((5700 + round))
    addr=127.0.0.1
    [ "$setup" = loopback ] || addr=$("$NETNS" --tag "$NETNS_TAG" ip h1)
    echo "round $round: moepool, experts on 2 workers ($label)" >&2
    for h in h2 h3; do
        # A subshell that execs: $! is the worker itself, so the kill below reaches it (a
        # backgrounded function call would leave the worker running under its dead subshell).
        (on_exec "$setup" "$h" "$MOEPOOL" worker --join "tcp://$addr:$port" --model "$MODEL" \
            -t "$WORKER_THREADS" --exit-after 7200 >>"$LOG" 2>&1) &
        eval "pid_$h=\$!"
    done
    rc=0
    on "$setup" h1 "$MOEPOOL" bench -m "$MODEL" -t "$THREADS" -r 1 --json \
        --cluster "tcp://0.0.0.0:$port" --expect-workers 2 "$@" >"$LINES" 2>>"$LOG" || rc=$?
    # shellcheck disable=SC2154 # set by eval above
    worker_rss "$label" "$pid_h2" "$pid_h3"
    kill "$pid_h2" "$pid_h3" 2>/dev/null || true
    wait "$pid_h2" "$pid_h3" 2>/dev/null || true
    [ "$rc" = 0 ] || { echo "bench_report.sh: cluster bench ($label) failed, see $LOG" >&2; exit 1; }
    keep "$label"
}
run_clusters() {
    r=$1
    shift
    for reps in default ${REPLICAS:+r2}; do
        [ -z "$CLUSTER" ] || run_cluster "$r" loopback "$reps" "$@"
        [ -z "$LAN" ] || run_cluster "$r" lan "$reps" "$@"
    done
}
round=1
while [ "$round" -le "$ROUNDS" ]; do
    if [ $((round % 2)) -eq 1 ]; then
        run_moepool "$round" "$@" || exit 1
        run_llama "$round" "$@" || exit 1
        run_clusters "$round" "$@"
    else
        run_clusters "$round" "$@"
        run_llama "$round" "$@" || exit 1
        run_moepool "$round" "$@" || exit 1
    fi
    echo "load_rounds=$(grep '^load_rounds=' "$META" | tail -n 1 | cut -d= -f2-) $(cut -d' ' -f1 /proc/loadavg)" >>"$META"
    round=$((round + 1))
done
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"

{
    echo "cluster=${CLUSTER_NOTE:-}"
    echo "lan=${LAN_NOTE:-}"
    echo "worker_threads=$WORKER_THREADS"
    if [ -n "$LAN_UP" ]; then
        echo "lan_link=$(grep -E 'netns.sh: (no netem|[0-9]+ hosts)' "$LOG" | tail -n 2 | tr '\n' ' ')"
        echo "lan_ping=$LAN_PING"
        # down now, not at exit: each host's lan_delay then reports how late its releases were.
        "$NETNS" --tag "$NETNS_TAG" down 2>>"$LOG" || true
        LAN_UP=
        echo "lan_delay=$(grep -E 'netns.sh: h[0-9]+: queue' "$LOG" | tail -n 3 |
            sed 's/^netns.sh: //' | tr '\n' '|')"
    fi
} >>"$META"

/usr/bin/python3 "$HERE/bench_report.py" "$META" "$RAW" "$OUT"
echo "bench_report.sh: wrote $OUT (raw lines: $RAW)" >&2
