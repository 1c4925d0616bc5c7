#!/bin/sh
# tests/fuzz_run.sh FUZZER SEED_WRITER SECONDS CORPUS_DIR: a bounded libFuzzer run from the seeds
# gguf_test writes (a valid file with every value type). Fails on any crash, leak or sanitizer
# report; the corpus is kept between runs so coverage accumulates locally.
set -eu
fuzzer=$1 seeds=$2 seconds=$3 corpus=$4
mkdir -p "$corpus"
"$seeds" --write-seeds "$corpus"
exec "$fuzzer" -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=1 "$corpus"
