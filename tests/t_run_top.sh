#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_run_top.sh PAGEMOVE [ignored]
#
# pagemove top on programs under pagemove run (two python3 processes, each
# with a fast tier of 8 MB and its stats every 0.2 s): --once lists both,
# with a line per tier; --pid with --iterations 2 gives two refreshes a
# blank line apart, the rates "-" at the first and numbers at the second;
# --pid of a process not under pagemove run, or of one that ended, exits 3.
# Nothing is timed: the programs wait for a file before they end.
# Exit: 0 pass, 1 fail, 77 skip.

PM=$1
[ -x "$PM" ] || { echo "FAIL: $PM: not an executable file"; exit 1; }
case $PM in /*) ;; *) PM=$PWD/$PM ;; esac
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_run_top.XXXXXX") || exit 1
chmod 755 "$tmp"
trap 'touch "$tmp/stop"; rm -rf "$tmp"' EXIT
fails=0
ok()   { echo "ok   - $*"; }
bad()  { echo "FAIL - $*"; fails=$((fails + 1)); }
show() { sed 's/^/#      /' "$@"; }

# start N: a python3 under pagemove run that prints its pid and holds 24 MB
# until $tmp/stop exists (at most 120 s)
start() {
	"$PM" run --tiers mem:8M,mem --stats-interval 0.2 -- python3 -c '
import os, sys, time
b = bytearray(os.urandom(1 << 20)) * 24
print(os.getpid(), flush=True)
for _ in range(1200):
    if os.path.exists(sys.argv[1]):
        break
    time.sleep(0.1)
' "$tmp/stop" >"$tmp/pid$1" 2>"$tmp/err$1" &
	eval "rpid$1=\$!"
}

# wait_stats N: its pid, once its stats file is there ("" if never)
wait_stats() {
	i=0
	while [ ! -s "$tmp/pid$1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	p=$(cat "$tmp/pid$1" 2>/dev/null)
	[ -n "$p" ] || return
	i=0
	while [ ! -f "/dev/shm/pagemove-run.$(id -u).$p" ] && [ $i -lt 300 ]; do
		sleep 0.1; i=$((i + 1))
	done
	[ -f "/dev/shm/pagemove-run.$(id -u).$p" ] && echo "$p"
}

start 1
start 2
p1=$(wait_stats 1)
p2=$(wait_stats 2)
if [ -z "$p1" ] || [ -z "$p2" ]; then
	bad "the programs published no stats"; show "$tmp/err1" "$tmp/err2"
else
	"$PM" top --once >"$tmp/all" 2>"$tmp/e"
	rc=$?
	if [ $rc = 0 ] && grep -q "^pagemove top - .* under pagemove run\$" "$tmp/all" &&
	   grep -q "^$p1 .* python3 " "$tmp/all" && grep -q "^$p2 .* python3 " "$tmp/all" &&
	   [ "$(grep -c '^  tier 0 .*capacity *8.0M' "$tmp/all")" -ge 2 ] &&
	   [ "$(grep -c '^  tier 1 ' "$tmp/all")" -ge 2 ]; then
		ok "top --once lists both processes and their tiers"
	else
		bad "top --once: exit $rc"; show "$tmp/all" "$tmp/e"
	fi

	"$PM" top --pid "$p1" --iterations 2 --interval 0.3 >"$tmp/one" 2>"$tmp/e"
	rc=$?
	heads=$(grep -c "^pagemove top - .*, 1 process under pagemove run\$" "$tmp/one")
	rows=$(grep "^$p1 " "$tmp/one" | awk '{print $9}' | tr '\n' ' ')
	if [ $rc = 0 ] && [ "$heads" = 2 ] && [ "$(grep -c '^$' "$tmp/one")" = 1 ] &&
	   ! grep -q "^$p2 " "$tmp/one" && [ "$rows" = "- $(echo "$rows" | awk '{print $2}') " ] &&
	   echo "$rows" | awk '{exit !($2 ~ /^[0-9]+\.[0-9]$/)}'; then
		ok "top --pid --iterations 2: two refreshes of one process, the rate at the second"
	else
		bad "top --pid --iterations 2: exit $rc, $heads headers, MIGR/S '$rows'"
		show "$tmp/one" "$tmp/e"
	fi
fi

sleep 30 &
spid=$!
"$PM" top --pid "$spid" --once >"$tmp/out" 2>"$tmp/e"
rc=$?
kill "$spid" 2>/dev/null
[ $rc = 3 ] && grep -q "^pagemove top: pid $spid: not under pagemove run" "$tmp/e" &&
	ok "top --pid of a process not under pagemove run: exit 3" ||
	{ bad "top --pid of a plain process: exit $rc"; show "$tmp/out" "$tmp/e"; }

touch "$tmp/stop"
wait "$rpid1"; r1=$?
wait "$rpid2"; r2=$?
[ "$r1" = 0 ] && [ "$r2" = 0 ] && ok "both programs exit 0" ||
	{ bad "the programs exit $r1 and $r2"; show "$tmp/err1" "$tmp/err2"; }
if [ -n "$p1" ]; then
	"$PM" top --pid "$p1" --once >"$tmp/out" 2>"$tmp/e"
	rc=$?
	[ $rc = 3 ] && ok "top --pid of a process that ended: exit 3" ||
		{ bad "top --pid of an ended process: exit $rc"; show "$tmp/out" "$tmp/e"; }
fi

if [ "$fails" -gt 0 ]; then
	echo "t_run_top: $fails check(s) failed"; exit 1
fi
echo "t_run_top: pagemove top shows every process under pagemove run, and one"
exit 0
