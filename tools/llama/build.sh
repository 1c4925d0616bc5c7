#!/bin/sh
# tools/llama/build.sh: builds llama_logits and llama_bench against the llama.cpp shared libraries and headers of
# the npm package node-llama-cpp (see README.md). Nothing from the package is copied into the
# repository: the headers are read from a clone of the package's git bundle, the binary links
# to the package's .so files by absolute rpath.
#
#   tools/llama/build.sh [NPM_DIR] [OUT_DIR]    defaults: /work/llama-npm, NPM_DIR
set -eu
NPM_DIR=${1:-/work/llama-npm}
OUT_DIR=${2:-$NPM_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
BINS=$NPM_DIR/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
BUNDLE=$NPM_DIR/node_modules/node-llama-cpp/llama/gitRelease.bundle
SRC=$NPM_DIR/llama.cpp

if [ ! -f "$BINS/libggml-base.so" ]; then
    echo "build.sh: no llama.cpp libraries in $BINS; run, in $NPM_DIR:" >&2
    echo "  npm install --omit=optional node-llama-cpp @node-llama-cpp/linux-x64" >&2
    exit 2
fi
if [ ! -f "$SRC/include/llama.h" ]; then
    git clone -q "$BUNDLE" "$SRC"
fi
LLAMA_SO=$(cd "$BINS" && ls libllama.v*.so | head -n1)
GGML_SO=$(cd "$BINS" && ls libggml.v*.so | head -n1)

mkdir -p "$OUT_DIR"
for prog in llama_logits llama_bench; do
    cc -std=c11 -O2 -Wall -Wextra -Werror -D_GNU_SOURCE -DLLAMA_BACKEND_DIR="\"$BINS\"" \
        -I"$HERE/../.." -I"$SRC/include" -I"$SRC/ggml/include" \
        "$HERE/$prog.c" "$HERE/harness.c" "$HERE/../../coordinator/bench_plan.c" \
        -o "$OUT_DIR/$prog" \
        -L"$BINS" -l:"$LLAMA_SO" -l:"$GGML_SO" -l:libggml-base.so -Wl,-rpath,"$BINS"
    echo "built $OUT_DIR/$prog (llama.cpp $(git -C "$SRC" log -1 --format=%h), libraries in $BINS)"
done
