#!/bin/sh
# tests/netns/netns_test.sh: deploy/netns.sh end to end (ctest; needs root, else skips with 77).
#
#   netns_test.sh NETNS_SH MOEPOOL MODEL [TAG]
#
# Builds 3 emulated hosts, pings between them (the round trip is reported: timing is never
# asserted, the machine is shared), moves 32 MiB over TCP from h1 to h2 and checks every byte
# arrived (the throughput is reported), checks exec/ip/list and bad input, that `up` twice and
# `down` twice are fine, and that `down` leaves no namespace of ours. When this moepool has the
# cluster (a `worker` command), a coordinator in h1 (`logits --cluster`) and workers in h2 and h3
# must give the same logits as one process.
set -eu

NETNS=$1
MOEPOOL=$2
MODEL=$3
export MP_NETNS_TAG=${4:-ctest} # one tag per build tree, so two builds may test at once
TMP=$(mktemp -d)
failures=0
PYTHON=/usr/bin/python3 # Debian's, with numpy (as the other tests)
[ -x "$PYTHON" ] || PYTHON=python3

fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

cleanup() {
    "$NETNS" down || true
    rm -rf "$TMP"
}

if [ "$(id -u)" -ne 0 ] || ! ip netns add mp-$MP_NETNS_TAG-probe 2>/dev/null; then
    echo "SKIP: cannot create network namespaces here (needs root with CAP_NET_ADMIN)"
    exit 77
fi
ip netns delete mp-$MP_NETNS_TAG-probe
trap cleanup EXIT

"$NETNS" up 3 --rate 1gbit --delay 0.3ms
"$NETNS" up 3 --rate 1gbit --delay 0.3ms || fail "up twice"
[ "$(ip netns list | grep -c "^mp-$MP_NETNS_TAG-")" -eq 4 ] || fail "up twice: want 4 namespaces"
[ "$("$NETNS" ip h2)" = 10.77.0.2 ] || fail "ip h2"
[ "$("$NETNS" list | wc -l)" -eq 3 ] || fail "list: want 3 hosts"
"$NETNS" exec h2 ip -4 -o addr show dev eth0 | grep -q 10.77.0.2/24 || fail "exec h2"

# Bad input: exit 2, one line.
"$NETNS" exec h9 true 2>"$TMP/err" && fail "exec on a missing host succeeded"
grep -q "no host mp-$MP_NETNS_TAG-h9" "$TMP/err" || fail "exec h9: $(cat "$TMP/err")"
"$NETNS" up 0 2>"$TMP/err" && fail "up 0 succeeded"
"$NETNS" up 2 --speed 1 2>"$TMP/err" && fail "up --speed succeeded"
grep -q "unknown option '--speed'" "$TMP/err" || fail "up --speed: $(cat "$TMP/err")"
"$NETNS" --tag 'A;B' list 2>/dev/null && fail "a bad tag was accepted"
[ "$(ip netns list | grep -c "^mp-$MP_NETNS_TAG-")" -eq 4 ] ||
    fail "a failed command changed the hosts"

# Ping: every host reaches every other; round trips reported (netem delay, if the kernel has it).
for pair in "h1 10.77.0.2" "h1 10.77.0.3" "h3 10.77.0.2"; do
    set -- $pair
    if "$NETNS" exec "$1" ping -c 5 -i 0.2 -W 2 "$2" >"$TMP/ping" 2>&1; then
        echo "ping $1 -> $2: $(tail -n 1 "$TMP/ping")"
    else
        fail "ping $1 -> $2: $(cat "$TMP/ping")"
    fi
done
# The namespaces are isolated from the machine: no route to the emulated LAN from here.
ip -4 route show | grep -q 10.77.0 && fail "the host namespace got a route to 10.77.0.0/24"

# TCP: 32 MiB from h1 to h2, every byte checked; throughput reported.
cat >"$TMP/tcp.py" <<'EOF'
import hashlib, socket, sys, time
N = 32 << 20
block = hashlib.sha256(b"moepool").digest() * 2048  # 64 KiB of known bytes
if sys.argv[1] == "serve":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("10.77.0.2", 5999)); s.listen(1)
    open(sys.argv[2], "w").close()  # ready
    c, _ = s.accept(); h = hashlib.sha256(); n = 0; t = time.time()
    while True:
        d = c.recv(1 << 16)
        if not d: break
        h.update(d); n += len(d)
    want = hashlib.sha256(block * (N // len(block))).hexdigest()
    dt = time.time() - t
    print(f"received {n} bytes in {dt:.2f} s ({n * 8 / dt / 1e6:.0f} Mbit/s)")
    sys.exit(0 if n == N and h.hexdigest() == want else 1)
else:
    c = socket.create_connection(("10.77.0.2", 5999), timeout=30)
    for _ in range(N // len(block)): c.sendall(block)
    c.close()
EOF
"$NETNS" exec h2 python3 "$TMP/tcp.py" serve "$TMP/ready" >"$TMP/tcp.out" 2>&1 &
server=$!
i=0
while [ ! -e "$TMP/ready" ] && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
done
"$NETNS" exec h1 python3 "$TMP/tcp.py" send || fail "tcp send"
if wait $server; then
    echo "tcp h1 -> h2: $(cat "$TMP/tcp.out")"
else
    fail "tcp: $(cat "$TMP/tcp.out")"
fi

# The cluster across hosts, once this moepool has it.
if "$MOEPOOL" worker --help >/dev/null 2>&1; then
    ids=$("$MOEPOOL" tokenize -m "$MODEL" -- "The emulated LAN carries the experts' activations.")
    "$MOEPOOL" logits -m "$MODEL" --tokens "$ids" -o "$TMP/local.f32" -t 1
    # Logits $1 against local.f32: bit-identical, else within 1e-5 relative (the issue's bound
    # for the f32 wire: partial sums regrouped per worker may round differently).
    cat >"$TMP/close.py" <<'EOF'
import sys
import numpy as np
a, b = np.fromfile(sys.argv[1], "f4"), np.fromfile(sys.argv[2], "f4")
r = abs(a - b).max() / abs(a).max() if a.shape == b.shape else float("inf")
print(f"{sys.argv[3]}: max relative difference {r}")
sys.exit(1 if r > 1e-5 else 0)
EOF
    compare() {
        cmp -s "$TMP/local.f32" "$1" && echo "cluster ($2): logits bit-identical" ||
            "$PYTHON" "$TMP/close.py" "$TMP/local.f32" "$1" "cluster ($2)" ||
            fail "cluster ($2): logits differ"
    }
    # A balanced placement from recorded statistics: the coordinator's own shard plus 2 workers.
    "$MOEPOOL" placement record -m "$MODEL" --tokens "$ids" -o "$TMP/stats.json" -t 1
    "$MOEPOOL" placement plan -m "$MODEL" --policy balanced --stats "$TMP/stats.json" \
        --workers local,w1,w2 -o "$TMP/placement.json"
    workers=""
    for h in h2 h3; do
        "$NETNS" exec $h "$MOEPOOL" worker --join tcp://10.77.0.1:5998 --model "$MODEL" -t 1 \
            >"$TMP/$h.log" 2>&1 &
        workers="$workers $!"
    done
    if "$NETNS" exec h1 timeout 120 "$MOEPOOL" logits -m "$MODEL" --tokens "$ids" -t 1 \
        -o "$TMP/cluster.f32" --cluster 'tcp://*:5998' --expect-workers 2 \
        >"$TMP/coord.log" 2>&1; then
        compare "$TMP/cluster.f32" "2 workers"
    else
        fail "coordinator in h1: $(tail -n 3 "$TMP/coord.log")"
    fi
    if "$NETNS" exec h1 timeout 120 "$MOEPOOL" logits -m "$MODEL" --tokens "$ids" -t 1 \
        -o "$TMP/placed.f32" --cluster 'tcp://*:5998' --expect-workers 2 \
        --placement "$TMP/placement.json" --local-shard >"$TMP/coord2.log" 2>&1; then
        compare "$TMP/placed.f32" "balanced placement, local shard + 2 workers"
    else
        fail "coordinator in h1 with a placement: $(tail -n 3 "$TMP/coord2.log")"
    fi
    kill $workers 2>/dev/null || true
    wait $workers 2>/dev/null || true
else
    echo "cluster part not run: this moepool has no 'worker' command yet"
fi

# down ends what still runs in the hosts (a worker would otherwise retry forever, detached).
"$NETNS" exec h2 sleep 600 &
sleeper=$!
sleep 0.3
"$NETNS" down
kill -0 $sleeper 2>/dev/null && fail "down left a process running in h2"
wait $sleeper 2>/dev/null || true
"$NETNS" down || fail "down twice"
[ "$(ip netns list | grep -c "^mp-$MP_NETNS_TAG-" || true)" -eq 0 ] || fail "down left namespaces"
[ $failures -eq 0 ] && echo ok || echo "FAILED ($failures)"
[ $failures -eq 0 ]
