#!/bin/sh
# tests/run_all.sh: everything CI runs: installs the Debian packages, builds the release, the
# ASan+UBSan and the fuzzing configurations, and runs ctest in each (the fuzz build runs only its
# bounded fuzzing). The conformance data is read from ../shared.
set -eu
cd "$(dirname "$0")/.."
[ -d ../shared/conformance ] || { echo "tests need ../shared/conformance beside the repo" >&2; exit 2; }
deploy/install-deps.sh
deploy/build.sh all
jobs=$(nproc)
status=0
echo "== release"; ctest --test-dir build -j "$jobs" --output-on-failure || status=1
echo "== asan+ubsan"; ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan -j "$jobs" --output-on-failure || status=1
echo "== fuzz"; ctest --test-dir build-fuzz -R fuzz --output-on-failure || status=1
exit $status
