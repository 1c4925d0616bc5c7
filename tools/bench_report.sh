#!/bin/sh
# tools/bench_report.sh: measures moepool and llama.cpp side by side on one GGUF file and thread
# count, and writes the benchmark report (docs/bench.md by default).
#
#   tools/bench_report.sh [-m MODEL] [-t THREADS] [-R ROUNDS] [-o OUT.md] [--quick]
#                         [--moepool BIN] [--llama-bench BIN | --no-llama]
#                         [-- EXTRA BENCH OPTIONS]
#
# Defaults: the full-size synthetic LFM2-8B-A1B Q4_K_M (/work/synth-out/lfm2-8b-a1b-q4_k_m.gguf,
# written by `moepool synth` when missing), 2 threads, 3 rounds, build/moepool,
# /work/llama-npm/llama_bench (built by tools/llama/build.sh when missing and the npm package is
# there; without it the report has moepool's figures only). --quick: small sizes, for a check
# of the script itself, not for figures.
#
# Each round runs `moepool bench -r 1 --json` and `llama_bench -r 1 --json`, alternating which
# goes first, so slow drifts of a shared machine (other jobs, thermal) fall on both engines alike;
# the report takes min/median/max over the rounds. The raw JSON lines are kept beside the report
# (OUT.md -> OUT.jsonl) and tools/bench_report.py turns them into the tables, written between
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
    --) shift; break ;;
    *) echo "usage: tools/bench_report.sh [-m MODEL] [-t THREADS] [-R ROUNDS] [-o OUT.md]" \
            "[--quick] [--moepool BIN] [--llama-bench BIN | --no-llama] [-- BENCH OPTIONS]" >&2
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
[ -n "$LLAMA_BENCH" ] && [ -x "$LLAMA_BENCH" ] || { echo "bench_report.sh: no llama_bench: moepool only" >&2; LLAMA_BENCH=; }

mkdir -p "$(dirname "$OUT")"
RAW=${OUT%.md}.jsonl
META=$(mktemp)
trap 'rm -f "$META"' EXIT
: >"$RAW"

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
run_moepool() {
    echo "round $1: moepool" >&2
    shift
    "$MOEPOOL" bench -m "$MODEL" -t "$THREADS" -r 1 --json "$@" >>"$RAW"
}
run_llama() {
    [ -n "$LLAMA_BENCH" ] || return 0
    echo "round $1: llama.cpp" >&2
    shift
    "$LLAMA_BENCH" -m "$MODEL" -t "$THREADS" -r 1 --json "$@" >>"$RAW"
}
round=1
while [ "$round" -le "$ROUNDS" ]; do
    if [ $((round % 2)) -eq 1 ]; then
        run_moepool "$round" "$@" || exit 1
        run_llama "$round" "$@" || exit 1
    else
        run_llama "$round" "$@" || exit 1
        run_moepool "$round" "$@" || exit 1
    fi
    round=$((round + 1))
done
echo "load_after=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$META"

# The cluster section: `moepool bench --cluster` over loopback and an emulated LAN
# (deploy/netns.sh) belongs here once the cluster backend is wired into the bench; until then
# the report says so.
echo "cluster=not measured yet: moepool bench --cluster has no cluster backend in this build" \
    >>"$META"

/usr/bin/python3 "$HERE/bench_report.py" "$META" "$RAW" "$OUT"
echo "bench_report.sh: wrote $OUT (raw lines: $RAW)" >&2
