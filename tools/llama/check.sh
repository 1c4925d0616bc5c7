#!/bin/sh
# tools/llama/check.sh: moepool against llama.cpp on synthetic models (see README.md).
# For the tiny presets in each type: `moepool synth` writes the model, llama.cpp must load it,
# both engines compute the logits of every position of the same tokens, and compare_logits.py
# prints the differences. With --full, the full-size LFM2-8B-A1B Q4_K_M is written and loaded too
# (4.7 GiB in OUT_DIR).
#
#   tools/llama/check.sh MOEPOOL LLAMA_LOGITS [OUT_DIR] [--full]
set -eu
MOEPOOL=$1
LLAMA=$2
OUT=${3:-/tmp/moepool-llama-check}
FULL=${4:-}
HERE=$(cd "$(dirname "$0")" && pwd)
TEXT="The user asked the assistant a question about the weather in Paris, and the assistant \
answered with a short reply. Then they talked about numbers like 42 and 1000, and about code: \
def tokenize(text): return text.split()"
mkdir -p "$OUT"

for preset in tiny qwen3-tiny; do
    for type in f32 q8_0 q4_k_m; do
        m=$OUT/$preset-$type.gguf
        "$MOEPOOL" synth --quiet --preset "$preset" --type "$type" -o "$m" >/dev/null
        "$LLAMA" -m "$m" | sed "s|^|$preset-$type: llama.cpp: |"
        ids=$("$MOEPOOL" tokenize -m "$m" -- "$TEXT")
        "$MOEPOOL" logits -t 1 -m "$m" --tokens "$ids" -o "$OUT/$preset-$type.moepool.f32"
        "$LLAMA" -m "$m" --tokens "$ids" -o "$OUT/$preset-$type.llama.f32"
        /usr/bin/python3 "$HERE/compare_logits.py" 2048 "$OUT/$preset-$type.moepool.f32" \
            "$OUT/$preset-$type.llama.f32" "$preset-$type"
    done
done

if [ "$FULL" = "--full" ]; then
    m=$OUT/lfm2-8b-a1b-q4_k_m.gguf
    /usr/bin/time -f "peak RSS %M KiB, %e s" "$MOEPOOL" synth --quiet --preset lfm2-8b-a1b \
        --type q4_k_m -o "$m"
    "$MOEPOOL" inspect "$m" | grep '^parameters'
    "$LLAMA" -m "$m" | sed "s|^|lfm2-8b-a1b-q4_k_m: llama.cpp: |"
fi
