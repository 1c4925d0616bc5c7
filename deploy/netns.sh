#!/bin/sh
# deploy/netns.sh: N emulated hosts on one machine, as network namespaces on a home LAN.
#
#   deploy/netns.sh [--tag T] up N [--rate 1gbit] [--delay 0.3ms] [--jitter 0ms] [--loss 0%]
#   deploy/netns.sh [--tag T] exec HOST CMD [ARG...]    HOST: h1..hN (or 1..N)
#   deploy/netns.sh [--tag T] ip HOST                   the host's address (10.77.0.N)
#   deploy/netns.sh [--tag T] list                      hosts, addresses, link emulation
#   deploy/netns.sh [--tag T] down                      end the hosts' processes, undo `up`
#
# Layout: a namespace mp-T-lan holds the bridge "lan"; each host is a namespace mp-T-hI whose
# eth0 (10.77.0.I/24) is a veth pair with its other end "hI" on the bridge. Nothing is created in
# the caller's namespace, and only namespaces named mp-T-* are ever deleted, so the machine's own
# network is untouched and several tags (T, default "lan"; or $MP_NETNS_TAG) can coexist.
#
# Link emulation, as a switch with full-duplex ports: a host's eth0 sends at RATE and adds the
# one-way DELAY (netem "rate R delay D"), and the bridge port towards it sends at RATE too (what a
# switch port delivers however many hosts talk to it). A round trip between two hosts is thus
# about 2*D plus serialisation. Without sch_netem in the kernel (some VM kernels, e.g.
# Firecracker's, lack it) tbf limits the rate and the delay comes from lan_delay: an iptables rule
# in each host sends eth0's outgoing packets to an NFQUEUE, and a lan_delay process in the host
# holds each one D before letting it go (docs/netns.md). It is found as $MP_LAN_DELAY, else
# build/lan_delay; without it (or without iptables) `up` warns that there is no delay.
#
# Idempotent: `up` first removes an earlier set with the same tag; `down` on nothing is fine.
# Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN) and iproute2.
set -eu

TAG=${MP_NETNS_TAG:-lan}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LAN_DELAY=${MP_LAN_DELAY:-$ROOT/build/lan_delay}
RATE=1gbit
DELAY=0.3ms
JITTER=0ms
LOSS=0%

die() {
    echo "netns.sh: $*" >&2
    exit 2
}

lan() { echo "mp-$TAG-lan"; }
host_ns() {
    h=${1#h}
    case $h in '' | *[!0-9]*) die "bad host '$1' (want h1..hN)" ;; esac
    echo "mp-$TAG-h$h"
}

our_namespaces() {
    ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^mp-$TAG-(lan|h[0-9]+)\$" || true
}

# Processes still running in a host would outlive its namespace, detached and unreachable (a
# worker retrying forever), so down ends them first: TERM, a moment, then KILL.
end_processes() {
    pids=$(for ns in $(our_namespaces); do ip netns pids "$ns"; done)
    [ -n "$pids" ] || return 0
    kill $pids 2>/dev/null || true
    i=0
    while [ $i -lt 20 ] && kill -0 $pids 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -9 $pids 2>/dev/null || true
}

# Where host I's lan_delay writes its summary (how late its releases were), read back by down.
delay_log() { echo "${TMPDIR:-/tmp}/mp-$TAG-h$1.lan_delay.log"; }

cmd_down() {
    end_processes
    for ns in $(our_namespaces); do
        ip netns delete "$ns"
    done
    for log in "${TMPDIR:-/tmp}/mp-$TAG-h"*.lan_delay.log; do
        [ -f "$log" ] || continue
        sed "s/^/netns.sh: ${log##*/mp-"$TAG"-}: /; s/.lan_delay.log: lan_delay:/:/" "$log" >&2
        rm -f "$log"
    done
}

# The delay without netem: lan_delay binds NFQUEUE 0 in host I (returning once it listens, as
# packets queued with no reader are dropped), then every IPv4 packet leaving eth0 goes through it.
# Loopback traffic inside a host is not delayed. Fails (1) when lan_delay or iptables is missing.
delay_by_nfqueue() {
    i=$1 ns=$(host_ns "$1")
    [ -x "$LAN_DELAY" ] && command -v iptables >/dev/null 2>&1 || return 1
    ip netns exec "$ns" "$LAN_DELAY" --delay "$DELAY" --queue 0 --daemon --log "$(delay_log "$i")" ||
        return 1
    ip netns exec "$ns" iptables -A OUTPUT -o eth0 -j NFQUEUE --queue-num 0
}

# Shapes egress of DEV in namespace NS at $RATE, adding the delay when WITH_DELAY=1: netem when
# the kernel has it, else tbf (rate only).
shape() {
    ns=$1 dev=$2 with_delay=$3
    if [ "$with_delay" = 1 ]; then
        set -- delay "$DELAY" "$JITTER" loss "$LOSS"
    else
        set --
    fi
    if tc -n "$ns" qdisc add dev "$dev" root netem rate "$RATE" "$@" 2>/dev/null; then
        return 0
    fi
    # tbf runs on high-resolution timers, so a burst of a few dozen packets suffices; the
    # latency bound sets its queue length.
    tc -n "$ns" qdisc add dev "$dev" root tbf rate "$RATE" burst 256kb latency 20ms
    NO_NETEM=1
}

add_host() {
    i=$1 ns=$(host_ns "$1")
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip -n "$(lan)" link add "h$i" type veth peer name eth0 netns "$ns"
    ip -n "$(lan)" link set "h$i" master lan up
    ip -n "$ns" addr add "10.77.0.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    shape "$ns" eth0 1
    shape "$(lan)" "h$i" 0
    if [ "$NO_NETEM" = 1 ] && [ "$DELAY" != 0 ] && [ "$DELAY" != 0ms ]; then
        delay_by_nfqueue "$i" || NO_DELAY=1
    fi
}

cmd_up() {
    [ $# -ge 1 ] || die "usage: up N [--rate R] [--delay D] [--jitter J] [--loss L]"
    n=$1
    shift
    case $n in '' | *[!0-9]*) die "up: N must be a number of hosts" ;; esac
    [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "up: 1 to 200 hosts"
    while [ $# -gt 0 ]; do
        [ $# -ge 2 ] || die "up: $1 needs a value"
        case $1 in
        --rate) RATE=$2 ;;
        --delay) DELAY=$2 ;;
        --jitter) JITTER=$2 ;;
        --loss) LOSS=$2 ;;
        *) die "up: unknown option '$1'" ;;
        esac
        shift 2
    done
    cmd_down
    NO_NETEM=0 NO_DELAY=0
    # Whether sch_netem exists, asked once, before any host: without it the delay is lan_delay's.
    ip netns add "$(lan)" || die "cannot create network namespaces (need root)"
    if tc -n "$(lan)" qdisc add dev lo root netem delay 1ms 2>/dev/null; then
        tc -n "$(lan)" qdisc del dev lo root
    else
        NO_NETEM=1
    fi
    ip -n "$(lan)" link set lo up
    ip -n "$(lan)" link add lan type bridge
    ip -n "$(lan)" link set lan up
    i=1
    while [ "$i" -le "$n" ]; do
        add_host "$i"
        i=$((i + 1))
    done
    if [ "$NO_NETEM" = 1 ] && [ "$NO_DELAY" = 1 ]; then
        echo "netns.sh: no netem in this kernel and no $LAN_DELAY or iptables:" \
            "links limited to $RATE, without delay" >&2
        DELAY="none"
    elif [ "$NO_NETEM" = 1 ]; then
        echo "netns.sh: no netem in this kernel: links limited to $RATE by tbf," \
            "delay $DELAY each way by lan_delay (NFQUEUE)" >&2
        [ "$JITTER" = 0ms ] && [ "$LOSS" = 0% ] ||
            echo "netns.sh: jitter and loss need netem: ignored" >&2
    fi
    echo "netns.sh: $n hosts h1..h$n (10.77.0.1..$n), tag $TAG, rate $RATE, delay $DELAY" >&2
}

cmd_list() {
    for ns in $(our_namespaces | sort -V); do
        case $ns in *-lan) continue ;; esac
        addr=$(ip -n "$ns" -4 -o addr show dev eth0 | awk '{print $4}')
        qdisc=$(tc -n "$ns" qdisc show dev eth0 | head -n 1)
        delay=$(ip netns exec "$ns" iptables -S OUTPUT 2>/dev/null | grep -q NFQUEUE &&
            echo " + lan_delay" || true)
        echo "${ns#mp-"$TAG"-} $addr $qdisc$delay"
    done
}

while [ $# -gt 0 ]; do
    case $1 in
    --tag)
        [ $# -ge 2 ] || die "--tag needs a value"
        TAG=$2
        shift 2
        ;;
    *) break ;;
    esac
done
case $TAG in '' | *[!a-z0-9]*) die "tag must be lower-case letters and digits" ;; esac
[ ${#TAG} -le 16 ] || die "tag: at most 16 characters"
[ $# -ge 1 ] ||
    die "usage: netns.sh [--tag T] up N [options] | exec HOST CMD... | ip HOST | list | down"

cmd=$1
shift
case $cmd in
up) cmd_up "$@" ;;
down) cmd_down ;;
list) cmd_list ;;
ip)
    [ $# -eq 1 ] || die "usage: ip HOST"
    ns=$(host_ns "$1")
    echo "10.77.0.${ns##*-h}"
    ;;
exec)
    [ $# -ge 2 ] || die "usage: exec HOST CMD [ARG...]"
    ns=$(host_ns "$1")
    shift
    ip netns list | awk '{print $1}' | grep -qx "$ns" || die "no host $ns (run up first)"
    exec ip netns exec "$ns" "$@"
    ;;
*) die "unknown command '$cmd'" ;;
esac
