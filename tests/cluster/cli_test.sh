#!/bin/sh
# tests/cluster/cli_test.sh MOEPOOL MODEL: bad input to the cluster commands gets one clear line
# and exit status 2 (1 for a file that cannot be created), never a crash or a hang.
set -u
MOEPOOL=$1 MODEL=$2
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
# expect STATUS NEEDLE CMD...: the command exits STATUS with one stderr line containing NEEDLE.
expect() {
    want=$1 needle=$2
    shift 2
    timeout 30 "$@" >"$TMP/out" 2>"$TMP/err"
    got=$?
    lines=$(wc -l <"$TMP/err")
    if [ "$got" != "$want" ] || [ "$lines" != 1 ] || ! grep -q -- "$needle" "$TMP/err"; then
        echo "FAIL: $* -> status $got, $lines lines: $(cat "$TMP/err")"
        failures=$((failures + 1))
    fi
}
echo junk >"$TMP/bad.key"
L="$MOEPOOL logits -m $MODEL --tokens 1,2 -o $TMP/x.f32"
expect 2 "cannot connect to foo" "$MOEPOOL" worker --join foo -m "$MODEL"
expect 2 "not a key file" "$MOEPOOL" worker --join tcp://127.0.0.1:1 -m "$MODEL" --key "$TMP/bad.key"
expect 2 "usage: moepool keygen" "$MOEPOOL" keygen
expect 1 "cannot create" "$MOEPOOL" keygen -o "$TMP/no/such/dir/k"
expect 2 "must be 1..63" $L --cluster tcp://127.0.0.1:5 --expect-workers 99
expect 2 "cannot bind bogus://x" $L --cluster bogus://x --expect-workers 2
expect 2 "not a key file" $L --cluster tcp://127.0.0.1:5 --expect-workers 2 --key "$TMP/bad.key"
expect 2 "placement: " $L --cluster tcp://127.0.0.1:5 --expect-workers 2 --placement "$TMP/none.json"
"$MOEPOOL" keygen -o "$TMP/good.key" >/dev/null || failures=$((failures + 1))
[ "$(stat -c %a "$TMP/good.key")" = 600 ] || { echo "FAIL: key file mode"; failures=$((failures + 1)); }
[ $failures -eq 0 ] && echo ok || { echo "FAILED ($failures)"; exit 1; }
