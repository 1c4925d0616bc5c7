#!/bin/sh
# deploy/build.sh [release|asan|fuzz|all]: configures and builds moepool.
#   release -> build/       (-O2, the binary people run: build/moepool)
#   asan    -> build-asan/  (AddressSanitizer + UndefinedBehaviorSanitizer, Debug)
#   fuzz    -> build-fuzz/  (clang, libFuzzer harnesses, with both sanitizers)
set -eu
cd "$(dirname "$0")/.."
what=${1:-release}
jobs=$(nproc)
build() { # dir, targets ("" = all), cmake args...
    dir=$1 targets=$2; shift 2
    cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
    ninja -C "$dir" -j "$jobs" $targets
}
case $what in
release) build build "" -DCMAKE_BUILD_TYPE=Release ;;
asan) build build-asan "" -DCMAKE_BUILD_TYPE=Debug -DMOEPOOL_SANITIZE=ON ;;
fuzz) CC=clang build build-fuzz "gguf_fuzz gguf_test" -DCMAKE_BUILD_TYPE=Debug -DMOEPOOL_SANITIZE=ON -DMOEPOOL_FUZZ=ON ;;
all) "$0" release && "$0" asan && "$0" fuzz ;;
*) echo "usage: deploy/build.sh [release|asan|fuzz|all]" >&2; exit 2 ;;
esac
