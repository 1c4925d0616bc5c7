#!/bin/sh
# deploy/demo.sh [--check] [MODEL.gguf]: the main job on one machine: installs what moepool needs,
# builds it, and starts a local cluster serving a model over the OpenAI API:
#   - a coordinator (`moepool serve --cluster`) holding attention, conv layers, router and head,
#     serving http://127.0.0.1:8080 (the chat page at /, the API under /v1);
#   - two workers joining it over ZeroMQ on 127.0.0.1:5555, each holding half of the experts:
#     worker 1 reads its experts from the model file, worker 2 has no model file and is sent its
#     shard by the coordinator (kept in build/demo/cache, so a restart does not resend it).
# By default the model is synthesized (`moepool synth --preset tiny`, Q4_K_M: the real LFM2-MoE
# architecture and tokenizer format with random weights, so the text is gibberish; no download);
# name a real GGUF file (LFM2-8B-A1B, Qwen3-30B-A3B Q4_K_M) to serve it instead.
# It asks one chat question with curl, then serves until Ctrl-C; --check stops after the question
# (exit status 0 when the cluster answered).
# Ports: MOEPOOL_HTTP_PORT (8080), MOEPOOL_CLUSTER_PORT (5555).
set -eu
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
http_port=${MOEPOOL_HTTP_PORT:-8080}
cluster_port=${MOEPOOL_CLUSTER_PORT:-5555}

deploy/install-deps.sh
deploy/build.sh release
model=${1:-build/models/lfm2moe-tiny-q4_k_m.gguf}
if [ $# -eq 0 ] && [ ! -f "$model" ]; then
    mkdir -p build/models
    build/moepool synth --preset tiny --type q4_k_m --quiet -o "$model"
fi
build/moepool inspect "$model" | tail -4

run=build/demo
mkdir -p "$run/cache"
pids=""
stop() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT TERM

build/moepool serve -m "$model" --port "$http_port" -np 4 -t 1 \
    --cluster "tcp://127.0.0.1:$cluster_port" --expect-workers 2 >"$run/serve.log" 2>&1 &
pids="$pids $!"
build/moepool worker --join "tcp://127.0.0.1:$cluster_port" --model "$model" -t 1 \
    >"$run/worker1.log" 2>&1 &
pids="$pids $!"
build/moepool worker --join "tcp://127.0.0.1:$cluster_port" --cache "$run/cache" -t 1 \
    >"$run/worker2.log" 2>&1 &
pids="$pids $!"

echo "waiting for the coordinator and its 2 workers (logs in $run/)..."
ready=0
for _ in $(seq 1 120); do
    if curl -sf "http://127.0.0.1:$http_port/health" 2>/dev/null | grep -q '"ok"'; then
        ready=1
        break
    fi
    sleep 0.5
done
if [ $ready -eq 0 ]; then
    echo "the cluster did not become ready; last lines of the logs:" >&2
    tail -n 5 "$run"/*.log >&2
    exit 1
fi
curl -s "http://127.0.0.1:$http_port/health"
echo
echo "asking: Hello! Who are you?"
curl -sf "http://127.0.0.1:$http_port/v1/chat/completions" -H 'Content-Type: application/json' \
    -d '{"messages":[{"role":"user","content":"Hello! Who are you?"}],"max_tokens":32,"seed":1}'
echo
if [ $check -eq 1 ]; then exit 0; fi
echo "serving http://127.0.0.1:$http_port/ (chat page; OpenAI API under /v1) - Ctrl-C stops"
wait
