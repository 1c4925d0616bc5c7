#!/bin/sh
# deploy/build.sh [release|asan|fuzz|all]: configures and builds moepool.
#   release -> build/       (-O2, the binary people run: build/moepool)
#   asan    -> build-asan/  (AddressSanitizer + UndefinedBehaviorSanitizer, Debug)
#   fuzz    -> build-fuzz/  (clang, libFuzzer harnesses, with both sanitizers)
set -eu
cd "$(dirname "$0")/.."
what=${1:-release}
jobs=$(nproc)
build() { # dir, cmake args...
    dir=$1; shift
    cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
    ninja -C "$dir" -j "$jobs"
}
case $what in
release) build build -DCMAKE_BUILD_TYPE=Release ;;
asan) build build-asan -DCMAKE_BUILD_TYPE=Debug -DMOEPOOL_SANITIZE=ON ;;
fuzz) CC=clang build build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMOEPOOL_SANITIZE=ON -DMOEPOOL_FUZZ=ON ;;
all) "$0" release && "$0" asan && "$0" fuzz ;;
*) echo "usage: deploy/build.sh [release|asan|fuzz|all]" >&2; exit 2 ;;
esac
