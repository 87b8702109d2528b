#!/bin/sh
# Every test, as `make test` runs them: the suite, the same suite under
# ASan+UBSan, and the multi-node NUMA guest. Each stage prints its own
# results; the last line adds them up. Usage: tests/all.sh BUILD_DIR
B=${1:-build}
here=$(dirname "$0")
tp=0 tf=0 ts=0 rc=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

stage() {
	name=$1; shift
	echo "== $name"
	"$@" 2>&1 | tee "$log"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -z "$line" ]; then
		echo "$name: no result line"; tf=$((tf + 1)); rc=1; return
	fi
	set -- $line
	tp=$((tp + $1)); tf=$((tf + $3)); ts=$((ts + ${5:-0}))
	[ "$3" -eq 0 ] || rc=1
}

stage "suite ($B)" sh "$here/run.sh" "$B"
if make -s --no-print-directory SAN=1 all >"$log.san" 2>&1; then
	stage "suite under ASan+UBSan (build-san)" sh "$here/run.sh" build-san
else
	cat "$log.san"; echo "the ASan+UBSan build failed"; tf=$((tf + 1)); rc=1
fi
rm -f "$log.san"
stage "NUMA guest" sh "$here/numa/run-suite.sh"
echo "total: $tp passed, $tf failed, $ts skipped"
exit $rc
