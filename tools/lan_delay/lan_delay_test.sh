#!/bin/sh
# tools/lan_delay/lan_delay_test.sh: lan_delay between two emulated hosts (ctest; needs root and
# iptables, else skips with 77).
#
#   lan_delay_test.sh NETNS_SH LAN_DELAY TAG
#
# Two hosts from deploy/netns.sh with no delay of their own (1 Gbit/s by tbf), then lan_delay
# started here by hand in both (so the tool is tested even on a kernel with netem, where netns.sh
# would not use it). For each delay D (none, 0.3 ms, 2 ms): TCP ping-pong of 64-byte messages and
# 8 MiB each way at once, every byte checked in order. Asserted: the bytes, and that no round trip
# is shorter than 2*D (a lower bound holds however busy the machine: each packet waits at least D
# after lan_delay hears of it, which is after it was sent; an upper bound would flake). Reported:
# round trips and throughput. Then bad options, and that stopping lan_delay unblocks the link.
set -eu
NETNS=$1
LAN_DELAY=$2
export MP_NETNS_TAG=$3
PROBE=$(dirname "$0")/lan_delay_probe.py
PYTHON=/usr/bin/python3
TMP=$(mktemp -d)
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# Bad input first (needs no root): exit 2 and a one-line reason.
for bad in "--delay 3" "--delay -1ms" "--delay 1ms --queue 70000" "--queue 1" "--delay 1ms --x"; do
    # shellcheck disable=SC2086 # split on purpose
    if "$LAN_DELAY" $bad 2>"$TMP/err"; then
        fail "lan_delay $bad was accepted"
    else
        rc=$?
        [ $rc -eq 2 ] || fail "lan_delay $bad: exit $rc, want 2"
        echo "lan_delay $bad: $(head -n 1 "$TMP/err")"
    fi
done

if [ "$(id -u)" -ne 0 ] || ! command -v iptables >/dev/null 2>&1 ||
    ! ip netns add "mp-$MP_NETNS_TAG-probe" 2>/dev/null; then
    echo "SKIP: needs root, network namespaces and iptables (deploy/install-deps.sh)"
    rm -rf "$TMP"
    [ $failures -eq 0 ] || exit 1
    exit 77
fi
ip netns delete "mp-$MP_NETNS_TAG-probe"
cleanup() {
    "$NETNS" down 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
"$NETNS" up 2 --rate 1gbit --delay 0 2>"$TMP/up" || { cat "$TMP/up"; exit 1; }

# start_delay D: lan_delay in both hosts, every packet leaving eth0 through it.
start_delay() {
    for h in h1 h2; do
        "$NETNS" exec $h "$LAN_DELAY" --delay "$1" --daemon --log "$TMP/$h.log" ||
            fail "lan_delay did not start in $h"
        "$NETNS" exec $h iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 0
    done
}
# stop_delay: the rule goes, then lan_delay (SIGTERM: it lets what it holds go and says how late).
stop_delay() {
    for h in h1 h2; do
        "$NETNS" exec $h iptables -D OUTPUT -o eth0 -j NFQUEUE --queue-num 0
        pids=$(ip netns pids "mp-$MP_NETNS_TAG-$h")
        [ -z "$pids" ] || kill $pids
    done
    sleep 0.3
    cat "$TMP/h1.log" "$TMP/h2.log" 2>/dev/null | sed 's/^/  /'
    rm -f "$TMP/h1.log" "$TMP/h2.log"
}

# probe LABEL MIN_RTT_MS: ping-pong and duplex between h1 (client) and h2 (server).
port=6100
probe() {
    port=$((port + 1))
    rm -f "$TMP/ready"
    "$NETNS" exec h2 "$PYTHON" "$PROBE" serve 10.77.0.2 $port "$TMP/ready" >"$TMP/srv" 2>&1 &
    server=$!
    i=0
    while [ ! -e "$TMP/ready" ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    if "$NETNS" exec h1 "$PYTHON" "$PROBE" client 10.77.0.2 $port 50 $((8 << 20)) >"$TMP/cli" 2>&1 &&
        wait $server; then
        set -- "$1" "$2" $(awk '/^rtt_ms/ {print $2, $3} /^duplex_mbit/ {print $2}' "$TMP/cli")
        echo "$1: round trip min $3 ms, median $4 ms; 8 MiB each way at once: $5 Mbit/s each way"
        awk -v m="$3" -v want="$2" 'BEGIN {exit !(m >= want)}' ||
            fail "$1: a round trip of $3 ms, shorter than $2 ms"
    else
        wait $server 2>/dev/null || true
        fail "$1: $(cat "$TMP/cli" "$TMP/srv" | tail -n 3)"
    fi
}

probe "no delay" 0
start_delay 0.3ms
probe "lan_delay 0.3ms" 0.6
stop_delay
start_delay 2ms
probe "lan_delay 2ms" 4
# Stopping lan_delay while it holds packets: they go on, and the link still works without it.
stop_delay
probe "after lan_delay stopped" 0

[ $failures -eq 0 ] && echo ok || echo "FAILED ($failures)"
[ $failures -eq 0 ]
