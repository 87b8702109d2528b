#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_cli_opts.sh PAGEMOVE [ignored]
#
# Every subcommand parses its options the same way (common/opt.c): a
# value with trailing garbage is refused; each bad option gets one message
# of its own, starting "pagemove CMD:" and naming the option; the exit
# status is 2 (125 for run, whose 2 may be its program's); --help exits 0 and lists every option the command accepts
# (read from its getopt table) and its exit statuses. Nothing here runs a
# workload: every call fails in parsing or prints help.
# Exit: 0 pass, 1 fail.

PM=$1
[ -x "$PM" ] || { echo "FAIL: $PM: not an executable file"; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_cli_opts.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
ok()  { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }

. "$ROOT/tests/cli_lib.sh"
CMDS="demo bench bench_tiering bench_faults bench_far bench_run migrate run stat top"

# usage_rc CMD: the usage error status of CMD
usage_rc() { if [ "$1" = run ]; then echo 125; else echo 2; fi; }

# refuse DESC N CMD... : exit 2 (usage_rc), N lines "pagemove CMD: ...", then "Try"
refuse() {
	desc=$1 n=$2
	shift 2
	"$PM" "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	cmd=$1
	[ "$1" = bench ] && [ "$2" = tiering ] && cmd="bench tiering"
	[ "$1" = bench ] && [ "$2" = faults ] && cmd="bench faults"
	[ "$1" = bench ] && [ "$2" = far ] && cmd="bench far"
	[ "$1" = bench ] && [ "$2" = run ] && cmd="bench run"
	want=$(usage_rc "$cmd")
	if [ "$rc" != "$want" ]; then
		bad "$desc: exit $rc, expected $want"; sed 's/^/#      /' "$tmp/err"; return
	fi
	lines=$(grep -c "^pagemove $cmd: " "$tmp/err")
	if [ "$lines" != "$n" ] || ! grep -q "^Try 'pagemove $cmd --help'\.\$" "$tmp/err" ||
	   [ "$(wc -l <"$tmp/err")" != $((n + 1)) ] || [ -s "$tmp/out" ]; then
		bad "$desc: want $n line(s) 'pagemove $cmd: ...' and a Try line, got:"
		sed 's/^/#      /' "$tmp/err" "$tmp/out"; return
	fi
	for word in $names; do
		grep "^pagemove $cmd: " "$tmp/err" | grep -q -- "$word" ||
			{ bad "$desc: no message names $word"; sed 's/^/#      /' "$tmp/err"; return; }
	done
	ok "$desc: $n message(s), exit $want"
}

test_trailing_garbage() {
	names="--threads --seconds"
	refuse "demo --threads 2x --seconds 1.5abc" 2 demo --threads 2x --seconds 1.5abc
	names="--mb"
	refuse "demo --mb 16x" 1 demo --mb 16x
	refuse "demo --mb 20 (not a multiple of 8)" 1 demo --mb 20
	names="--mb --nodes"
	refuse "bench --mb 32x --nodes 0" 2 bench --mb 32x --nodes 0
	names="--nodes"
	refuse "bench --nodes 0,1x" 1 bench --nodes 0,1x
	names="--threads --seconds --mb"
	refuse "bench tiering --threads 2x --seconds 1.5abc --mb 64k" 3 \
		bench tiering --threads 2x --seconds 1.5abc --mb 64k
	names="--mb"
	refuse "bench faults --mb 3x" 1 bench faults --mb 3x
	refuse "bench faults --mb 5 (odd)" 1 bench faults --mb 5
	names="--mb --seconds"
	refuse "bench far --mb 64x --seconds 1.5abc" 2 bench far --mb 64x --seconds 1.5abc
	names="--threads --rate"
	refuse "migrate --threads 2x --rate 1.5abc" 2 \
		migrate --pid 1 --from 0 --to 0 --threads 2x --rate 1.5abc
	names="--threads"
	refuse "migrate --threads -1" 1 migrate --pid 1 --from 0 --to 0 --threads -1
	names="--min-size --stats-interval"
	refuse "run --min-size 1Mx --stats-interval 1.5abc" 2 \
		run --min-size 1Mx --stats-interval 1.5abc -- true
	names="--huge --policy"
	refuse "run --huge maybe --policy some" 2 run --huge maybe --policy some -- true
	names="--tiers"
	refuse "run --tiers bogus" 1 run --tiers bogus -- true
	names="--interval --iterations"
	refuse "top --interval 1sx --iterations 2x" 2 top --interval 1sx --iterations 2x
	names="--interval --pid"
	refuse "top --interval 0 --pid 0" 2 top --interval 0 --pid 0
}

test_bad_options() {
	names="--bogus extra"
	refuse "demo --bogus extra" 2 demo --bogus extra
	refuse "bench --bogus extra" 2 bench --bogus extra
	refuse "bench tiering --bogus extra" 2 bench tiering --bogus extra
	refuse "bench faults --bogus extra" 2 bench faults --bogus extra
	refuse "bench far --bogus extra" 2 bench far --bogus extra
	refuse "bench run --bogus extra" 2 bench run --bogus extra
	refuse "migrate --bogus extra" 2 migrate --pid 1 --from 0 --to 0 --bogus extra
	refuse "stat --bogus extra" 2 stat --pid 1 --bogus extra
	refuse "top --bogus extra" 2 top --bogus extra
	names="--bogus"
	refuse "run --bogus" 1 run --bogus -- true
	names="PROG"
	refuse "run with no PROG" 1 run
	names="--seconds"
	refuse "demo --seconds (no value)" 1 demo --seconds
	names="-x"
	refuse "stat -x (short)" 1 stat -x --pid 1
	names="--kernel"
	refuse "bench --kernel without --nodes" 1 bench --kernel
	"$PM" version extra >"$tmp/out" 2>"$tmp/err"
	if [ $? = 2 ] && grep -q "^pagemove version: unexpected argument 'extra'" "$tmp/err"; then
		ok "version extra: refused"
	else
		bad "version extra: not refused"; sed 's/^/#      /' "$tmp/err" "$tmp/out"
	fi
}

test_help_lists_options_and_status() {
	for c in $CMDS; do
		cmd=$(echo "$c" | tr _ ' ')
		# shellcheck disable=SC2086
		"$PM" $cmd --help >"$tmp/help" 2>"$tmp/err"
		rc=$?
		[ "$rc" = 0 ] || { bad "$cmd --help: exit $rc"; continue; }
		[ -s "$tmp/err" ] && { bad "$cmd --help wrote to stderr"; continue; }
		miss=
		for o in $(long_opts "$(src_of "$cmd")"); do
			grep -q -- "--$o\\b" "$tmp/help" || miss="$miss --$o"
		done
		[ -z "$miss" ] || { bad "$cmd --help does not list:$miss"; continue; }
		grep -q '^Exit status:' "$tmp/help" && grep -q '^  0  ' "$tmp/help" &&
			grep -q "^  $(usage_rc "$cmd")  usage error" "$tmp/help" ||
			{ bad "$cmd --help has no exit statuses"; continue; }
		ok "$cmd --help: every option and the exit statuses"
	done
	"$PM" --help >"$tmp/help" 2>&1 && grep -q '^exit status' "$tmp/help" ||
		bad "pagemove --help has no exit status"
}

test_every_command_known() {
	"$PM" --help >"$tmp/help" 2>&1
	for c in $(sed -n 's/^  \([a-z]*\)  .*/\1/p' "$tmp/help"); do
		[ "$c" = version ] && continue
		[ -n "$(src_of "$c")" ] || bad "command $c is not in this test's list"
	done
	ok "every command of pagemove --help is checked here"
}

for t in test_trailing_garbage test_bad_options test_help_lists_options_and_status \
	test_every_command_known; do
	$t
done
if [ "$fails" -gt 0 ]; then
	echo "t_cli_opts: $fails check(s) failed"; exit 1
fi
echo "t_cli_opts: every subcommand refuses bad options one message each, --help complete"
exit 0
