#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_run.sh PAGEMOVE [ignored]
#
# pagemove run and libpagemove-preload.so on a plain program
# (tests/run_child.c, next to PAGEMOVE's build tree in tests/): each of its
# sub-tests under `pagemove run` with a small fast tier and the policy on,
# every byte checked there; then the command itself: PROG's exit status and
# 128+N for a signal, its own codes for a missing, static or set-user-ID
# PROG, far tiers, and user-mode-only (as an unprivileged user, where
# setpriv(1) can make one), and the stats file that pagemove stat reads.
# Exit: 0 pass, 1 fail.

PM=$1
[ -x "$PM" ] || { echo "FAIL: $PM: not an executable file"; exit 1; }
case $PM in /*) ;; *) PM=$PWD/$PM ;; esac
B=$(dirname "$PM")
CHILD=$B/tests/run_child
[ -x "$CHILD" ] || { echo "FAIL: $CHILD: not built"; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_run.XXXXXX") || exit 1
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
fails=0
ok()   { echo "ok   - $*"; }
bad()  { echo "FAIL - $*"; fails=$((fails + 1)); }
show() { sed 's/^/#      /' "$@"; }

# expect DESC RC CMD...: CMD exits RC (watchdog: 120 s)
expect() {
	desc=$1 want=$2
	shift 2
	timeout -k 5 120 "$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" = "$want" ]; then ok "$desc: exit $rc"; else
		bad "$desc: exit $rc, want $want"; show "$tmp/err" "$tmp/out"; fi
}

test_child_subtests() {
	for t in malloc_calloc_realloc threads fork exec munmap_madvise exit_in_flight; do
		for h in auto never; do
			expect "run_child $t (--huge $h)" 0 "$PM" run --tiers mem:16M,mem \
				--huge "$h" -- "$CHILD" "$t"
		done
	done
	expect "run_child malloc_calloc_realloc, policy off" 0 \
		"$PM" run --policy off --tiers mem:16M,mem -- "$CHILD" malloc_calloc_realloc
	# the settings reach the preload without the command
	expect "run_child exec, preload from the environment alone" 0 \
		env LD_PRELOAD="$B/libpagemove-preload.so" PAGEMOVE_TIERS=mem:16M,mem "$CHILD" exec
}

test_exit_status() {
	expect "PROG's exit status" 7 "$PM" run -- sh -c 'exit 7'
	expect "PROG killed by SIGKILL: 128+9" 137 "$PM" run -- sh -c 'kill -9 $$'
	expect "PROG killed by SIGTERM: 128+15" 143 "$PM" run -- sh -c 'kill -TERM $$'
	expect "PROG not found" 127 "$PM" run -- "$tmp/no-such-program"
	printf 'x' >"$tmp/noexec"
	expect "PROG not executable" 126 "$PM" run -- "$tmp/noexec"
	expect "a far tier accepted" 0 "$PM" run --tiers mem:16M,lz4 -- true
	expect "a far tier whose store cannot open" 120 "$PM" run --tiers mem,file@/nonexistent -- true
	grep -q 'nonexistent' "$tmp/err" || { bad "no word on the store"; show "$tmp/err"; }
	expect "bad tiers" 125 "$PM" run --tiers mem:0 -- true
	# SIGTERM to pagemove run reaches PROG
	"$PM" run -- sleep 30 &
	rpid=$!
	sleep 0.5
	kill -TERM "$rpid"
	wait "$rpid"
	rc=$?
	[ "$rc" = 143 ] && ok "SIGTERM forwarded: exit 143" || bad "SIGTERM forwarded: exit $rc"
}

test_unfit_programs() {
	if printf 'int main(void){return 0;}\n' | cc -static -x c -o "$tmp/static" - 2>/dev/null; then
		expect "static PROG refused" 126 "$PM" run -- "$tmp/static"
		grep -q 'statically linked' "$tmp/err" || { bad "no word on static"; show "$tmp/err"; }
	else
		bad "cannot build a static program (libc6-dev's libc.a)"
	fi
	cp /bin/true "$tmp/suid" && chmod 4755 "$tmp/suid"
	expect "set-user-ID PROG refused" 126 "$PM" run -- "$tmp/suid"
	grep -q 'set-user-ID' "$tmp/err" || { bad "no word on set-user-ID"; show "$tmp/err"; }
}

test_user_mode() {
	if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
		ok "not root or no setpriv: user-mode-only refusal not checked"; return
	fi
	nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"
	if [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" = 1 ]; then
		ok "vm.unprivileged_userfaultfd=1: every user has full mode, refusal not checked"
		return
	fi
	expect "user-mode-only refused" 121 $nobody "$PM" run -- true
	for w in /dev/userfaultfd CAP_SYS_PTRACE vm.unprivileged_userfaultfd=1 --allow-user-mode; do
		grep -q -- "$w" "$tmp/err" || { bad "refusal does not name $w"; show "$tmp/err"; }
	done
	expect "user-mode-only accepted with --allow-user-mode" 0 \
		$nobody "$PM" run --allow-user-mode --tiers mem:16M,mem -- "$CHILD" munmap_madvise
}

test_stats_file() {
	"$PM" run --tiers mem:8M,mem --stats-interval 0.2 -- python3 -c '
import os, sys, time
b = bytearray(os.urandom(1 << 20)) * 24
print(os.getpid(), flush=True)
time.sleep(3)
' >"$tmp/pid" 2>"$tmp/err" &
	rpid=$!
	i=0
	while [ ! -s "$tmp/pid" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	pid=$(cat "$tmp/pid")
	f=/dev/shm/pagemove-run.$(id -u).$pid
	# the first snapshot is written as the context is made, before its
	# first region, and one may fall between a region's mmap and its first
	# touch: wait for one (every 0.2 s) that has resident pages, as every
	# snapshot written after the pid was printed has
	i=0
	while ! awk '$1 == "tier" && $5 > 0 { r = 1 } END { exit !r }' "$f" 2>/dev/null &&
		[ $i -lt 100 ]; do
		sleep 0.1; i=$((i + 1))
	done
	if [ -f "$f" ]; then
		perm=$(stat -c %a "$f")
		[ "$perm" = 600 ] && ok "stats file $f is 0600" || bad "stats file mode $perm"
		"$PM" stat --pid "$pid" >"$tmp/stat" 2>&1
		grep -q '^pagemove run: ' "$tmp/stat" && grep -q " 8.0M " "$tmp/stat" &&
			ok "pagemove stat --pid shows the tiers" ||
			{ bad "pagemove stat --pid shows no tiers"; show "$tmp/stat"; }
		"$PM" stat --pid "$pid" --json >"$tmp/json" 2>&1
		# on failure, print the assertion and the snapshot, not every map
		python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["run"];
assert r["tiers"][0]["capacity"]==8<<20, r
assert r["tiers"][0]["resident_bytes"] + r["tiers"][1]["resident_bytes"] > 0, r
assert r["mode"] in ("full","user-mode-only")' "$tmp/json" 2>"$tmp/py" &&
			ok "pagemove stat --pid --json has the run's tiers" ||
			{ bad "stat --json"; tail -n 3 "$tmp/py" | show; show "$f"; }
	else
		bad "no stats file $f"; show "$tmp/err"
	fi
	wait "$rpid"
	[ -f "$f" ] && bad "stats file left after exit" || ok "stats file removed at exit"
}

# AnonHugePages (kB) of PROG's 64 MB buffer under pagemove run ARGS
huge_kb() {
	"$PM" run "$@" -- python3 -c '
b = b"\x01" * (64 << 20)
kb = 0
for l in open("/proc/self/smaps"):
    if l.startswith("AnonHugePages:"):
        kb += int(l.split()[1])
print(kb, flush=True)
' 2>"$tmp/err"
}

# --huge auto gives 2 MB pages, but not with a far tier (it evicts whole
# pages: runcfg.c); always gives them there too
test_huge_auto_far_tier() {
	if ! grep -q '\[always\]\|\[madvise\]' /sys/kernel/mm/transparent_hugepage/enabled; then
		[ "$CI" = true ] && bad "huge_auto_far_tier: transparent huge pages are disabled" ||
			echo "SKIP huge_auto_far_tier: transparent huge pages are disabled"
		return
	fi
	mem=$(huge_kb --tiers mem) lz4=$(huge_kb --tiers mem,lz4) always=$(huge_kb --tiers mem,lz4 --huge always)
	[ "${mem:-0}" -gt 0 ] && ok "--huge auto, memory tiers: ${mem} kB of 2 MB pages" ||
		{ bad "--huge auto, memory tiers: '${mem}' kB of 2 MB pages"; show "$tmp/err"; }
	[ "$lz4" = 0 ] && ok "--huge auto with an lz4 tier: no 2 MB pages" ||
		{ bad "--huge auto with an lz4 tier: '${lz4}' kB of 2 MB pages"; show "$tmp/err"; }
	[ "${always:-0}" -gt 0 ] && ok "--huge always with an lz4 tier: ${always} kB of 2 MB pages" ||
		{ bad "--huge always with an lz4 tier: '${always}' kB of 2 MB pages"; show "$tmp/err"; }
}

for t in test_child_subtests test_exit_status test_unfit_programs test_user_mode test_stats_file \
	test_huge_auto_far_tier; do
	$t
done
if [ "$fails" -gt 0 ]; then
	echo "t_run: $fails check(s) failed"; exit 1
fi
echo "t_run: the preload keeps every byte, pagemove run's statuses and refusals are right"
exit 0
