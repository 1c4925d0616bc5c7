#!/bin/sh
# tests/web/run_node_tests.sh NPM_DIR [TEST.mjs...]: runs node:test files from tests/web/ against
# `moepool serve`, with the openai package that `npm ci` installed in NPM_DIR (the build tree:
# the source tree stays clean). With no test files it only installs (the ctest fixture
# web_npm_ci, so parallel tests never run npm at once). Environment: MOEPOOL (the binary),
# MOEPOOL_MODEL (a GGUF file). Exit 77 (ctest: skipped) when node or npm is absent.
set -eu
src=$(cd "$(dirname "$0")" && pwd)
dir=$1
shift
for tool in node npm; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "SKIP: $tool not found (install Debian's nodejs and npm to run the openai client tests)"
        exit 77
    fi
done
mkdir -p "$dir"
if [ $# -eq 0 ]; then
    # Reinstall only when the lock file changed: npm ci deletes node_modules first.
    if cmp -s "$src/package-lock.json" "$dir/package-lock.json" && [ -d "$dir/node_modules/openai" ]; then
        echo "openai $(node -p 'require(process.argv[1]).version' "$dir/node_modules/openai/package.json") already installed in $dir"
        exit 0
    fi
    cp "$src/package.json" "$src/package-lock.json" "$dir/"
    cd "$dir"
    exec npm ci --no-audit --no-fund
fi
# ES modules resolve imports next to their own (real) path: copy the tests, and the load-test
# benchmark that one of them runs, beside node_modules.
cp "$src"/*.mjs "$src/../../tools/loadtest/loadtest.mjs" "$dir/"
cd "$dir"
exec node --test "$@"
