#!/bin/sh
# Run every test program of a build tree. Usage: tests/run.sh BUILD_DIR
# Exit codes of a test: 0 pass, 77 skip (it prints why), anything else fail.
# Under CI=true a skip counts as a failure: CI must have every prerequisite.
B=${1:-build}
here=$(dirname "$0")
pass=0 fail=0 skip=0 failed=""
log=$(mktemp)
tlimit=${PMV_TEST_TIMEOUT:-300}
[ -n "$PMV_STRESS" ] && tlimit=3600

# the failing sub-tests first: a long log's tail may not hold them
show_fail() {
	grep -E '^(FAIL|  FAIL)' "$log" | head -n 20 | sed 's/^/     /'
	tail -n "$1" "$log" | sed 's/^/     /'
}

run() {
	name=$1; shift
	start=$(date +%s)
	timeout -k 5 "$tlimit" "$@" >"$log" 2>&1
	rc=$?
	secs=$(( $(date +%s) - start ))
	case $rc in
	0)	pass=$((pass + 1)); echo "PASS $name (${secs}s)"; sed -n '$p' "$log" | sed 's/^/     /' ;;
	77)	why=$(grep -m1 'SKIP' "$log"); [ -n "$why" ] || why="(no reason given)"
		if [ "$CI" = true ]; then
			fail=$((fail + 1)); failed="$failed $name"
			echo "FAIL $name: skipped under CI=true: $why"
		else
			skip=$((skip + 1)); echo "SKIP $name: $why"
		fi ;;
	124|137) fail=$((fail + 1)); failed="$failed $name"
		echo "FAIL $name: timed out after ${tlimit}s"; show_fail 20 ;;
	*)	fail=$((fail + 1)); failed="$failed $name"
		echo "FAIL $name (exit $rc)"; show_fail 30 ;;
	esac
}

echo "== pagemove tests in $B"
for t in "$B"/tests/t_*; do
	[ -x "$t" ] || continue
	case "$t" in *.sh|*.d) continue ;; esac
	run "$(basename "$t")" "$t"
done
# On a sanitized tree the real programs' tests would run what the plain
# tree runs: unsanitized programs on the preload, which is never sanitized
# (Makefile). t_run.sh covers the sanitized `pagemove run` itself.
sanitized=
ldd "$B/pagemove" 2>/dev/null | grep -q 'libasan' && sanitized=1
for s in "$here"/t_*.sh; do
	[ -f "$s" ] || continue
	case "$sanitized:$(basename "$s")" in
	1:t_run_redis.sh|1:t_run_sqlite.sh|1:t_run_stressng.sh|1:t_run_python.sh)
		echo "not run on a sanitized tree: $(basename "$s") (nothing in it is sanitized; the plain tree runs it)"
		continue ;;
	esac
	run "$(basename "$s")" sh "$s" "$B/pagemove" "$B/tests/cli_child"
done
rm -f "$log"
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
