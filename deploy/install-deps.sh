#!/bin/sh
# deploy/install-deps.sh: the Debian 12 packages moepool builds and tests with. Idempotent: does
# nothing when they are all present. Needs root (or sudo) only when something is missing.
set -eu
# Build: compiler, CMake/Ninja, clang for libFuzzer. Libraries (docs/design.md says why each):
# ZeroMQ, protobuf-c, liburing, hwloc, libmicrohttpd, cJSON, libnetfilter_queue (the test LAN's
# delay, tools/lan_delay). Tests: python3 with numpy and jinja2
# (conformance, chat templates), iproute2, iputils-ping and iptables (network namespaces; iptables
# hands packets to lan_delay where the kernel has no netem), curl, chromium +
# chromium-driver (the chat page's browser test), and Node.js with npm for the openai client
# tests: Debian's nodejs and npm only when the machine has no node (a NodeSource build, say,
# which Debian's packages would conflict with).
PKGS="build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
libzmq3-dev libprotobuf-c-dev protobuf-c-compiler liburing-dev libhwloc-dev libmicrohttpd-dev
libcjson-dev libnetfilter-queue-dev
python3 python3-numpy python3-jinja2 iproute2 iputils-ping iptables curl chromium chromium-driver"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -z "$missing" ] && exit 0
echo "installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
