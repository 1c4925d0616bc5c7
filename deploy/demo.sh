#!/bin/sh
# deploy/demo.sh [MODEL.gguf] [PROMPT]: installs what moepool needs, builds it, and runs a model:
# by default the small LFM2-MoE conformance model from ../shared (no download needed), or the
# GGUF file you name (a real LFM2-8B-A1B or Qwen3-30B-A3B Q4_K_M from the llama.cpp ecosystem).
set -eu
cd "$(dirname "$0")/.."
model=${1:-../shared/conformance/models/lfm2moe-small-q4_k_m.gguf}
prompt=${2:-"Once upon a time"}
deploy/install-deps.sh
deploy/build.sh release
build/moepool inspect "$model" | tail -4
build/moepool run -m "$model" -p "$prompt" -n 64 --seed 42
