#!/bin/sh
# deploy/demo.sh [MODEL.gguf] [PROMPT]: installs what moepool needs, builds it, and runs a model:
# by default a synthesized LFM2-MoE model (`moepool synth --preset tiny`, Q4_K_M: real
# architecture and tokenizer format, random weights, so the text is gibberish; no download), or
# the GGUF file you name (a real LFM2-8B-A1B or Qwen3-30B-A3B Q4_K_M from the llama.cpp world).
set -eu
cd "$(dirname "$0")/.."
prompt=${2:-"Once upon a time"}
deploy/install-deps.sh
deploy/build.sh release
model=${1:-build/models/lfm2moe-tiny-q4_k_m.gguf}
if [ $# -eq 0 ] && [ ! -f "$model" ]; then
    mkdir -p build/models
    build/moepool synth --preset tiny --type q4_k_m --quiet -o "$model"
fi
build/moepool inspect "$model" | tail -4
build/moepool run -m "$model" -p "$prompt" -n 64 --seed 42
