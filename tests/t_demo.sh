#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_demo.sh PAGEMOVE CLI_CHILD
#
# What `pagemove demo` says, on the smallest run (--seconds 1 --mb 16): the
# userfaultfd mode and why, whether its tiers are bound to nodes (--nodes),
# far tiers (--tiers) that hold pages in less memory and say how much,
# that Ctrl-C (SIGINT, SIGTERM) still gives the summary and the check, and
# in user-mode-only mode (run as uid 65534
# when we are root, where /dev/userfaultfd is root's and the sysctl is 0)
# that tiering did nothing; every run ends with its data verified.
# Exit: 0 pass, 1 fail, 77 skip (reason printed).

PM=$1
CHILD=$2
for f in "$PM" "$CHILD"; do
	[ -x "$f" ] || { echo "FAIL: $f: not an executable file"; exit 1; }
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_demo.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0 skipped=0
ok()   { echo "ok   - $*"; }
bad()  { echo "FAIL - $*"; fails=$((fails + 1)); }
show() { sed 's/^/#      /' "$@"; }

# has FILE TEXT: a fixed string in FILE
has() { grep -qF -- "$2" "$1"; }

demo() {
	"$@" demo --seconds 1 --mb 16 >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

test_mode_line() {
	demo "$PM"
	[ "$rc" = 0 ] || { bad "demo: exit $rc"; show "$tmp/out" "$tmp/err"; return; }
	if has "$tmp/out" "userfaultfd: full mode, from "; then
		has "$tmp/out" "tiering did nothing" && { bad "full mode, but 'tiering did nothing'"; return; }
		ok "demo says: $(grep -F 'userfaultfd:' "$tmp/out")"
	elif [ "$(id -u)" = 0 ]; then
		bad "root, but no full mode:"; show "$tmp/out"
	else
		has "$tmp/out" "userfaultfd: user-mode-only, " ||
			{ bad "no userfaultfd line"; show "$tmp/out"; return; }
		ok "demo as uid $(id -u): user-mode-only, said so"
	fi
	has "$tmp/out" "data verified: 16 MiB, every byte" || { bad "data not verified"; show "$tmp/out"; }
	has "$tmp/out" "tiers unbound: 'fast' and 'slow' are labels" ||
		{ bad "unbound tiers not said"; show "$tmp/out"; return; }
	ok "demo says its tiers are unbound"
}

test_nodes() {
	n=$(ls -d /sys/devices/system/node/node[0-9]* 2>/dev/null | sed 's/.*node//' | sort -n | head -n 1)
	[ -n "$n" ] || { echo "SKIP: no NUMA node in sysfs"; return 77; }
	"$PM" demo --seconds 1 --mb 16 --nodes "$n,$n" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	if [ "$rc" != 0 ] || ! has "$tmp/out" "tiers bound: fast on node $n, slow on node $n" ||
	   has "$tmp/out" "tiers unbound" || ! has "$tmp/out" "data verified"; then
		bad "demo --nodes $n,$n: exit $rc"; show "$tmp/out" "$tmp/err"; return
	fi
	ok "demo --nodes $n,$n: tiers bound, data verified"
	if [ ! -d /sys/devices/system/node/node99 ]; then
		"$PM" demo --nodes "$n,99" >"$tmp/out" 2>"$tmp/err"
		rc=$?
		[ "$rc" = 2 ] && has "$tmp/err" "pagemove demo: --nodes $n,99: node 99 does not exist" ||
			{ bad "demo --nodes $n,99: exit $rc"; show "$tmp/err"; return; }
		ok "demo --nodes $n,99: refused"
	fi
}

test_user_only_says_why() {
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: not root: cannot run the demo as another user"; return 77
	fi
	if [ -e /dev/userfaultfd ] && [ "$(stat -c %a /dev/userfaultfd)" != 600 ] ||
	   [ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" != 0 ]; then
		echo "SKIP: uid 65534 would get full mode here (/dev/userfaultfd or the sysctl)"
		return 77
	fi
	chmod 755 "$tmp"
	cp "$PM" "$tmp/pagemove" && chmod 755 "$tmp/pagemove"
	demo "$CHILD" --setuid 65534 "$tmp/pagemove"
	[ "$rc" = 0 ] || { bad "demo as uid 65534: exit $rc"; show "$tmp/out" "$tmp/err"; return; }
	if [ -e /dev/userfaultfd ]; then
		why="userfaultfd: user-mode-only, because /dev/userfaultfd: Permission denied, and userfaultfd(2) refused kernel-mode faults"
	else
		why="userfaultfd: user-mode-only, because /dev/userfaultfd: No such file or directory"
	fi
	for text in "$why" "CAP_SYS_PTRACE" "vm.unprivileged_userfaultfd=1" \
		"tiering did nothing: the userfaultfd is user-mode-only" \
		"data verified: 16 MiB, every byte"; do
		has "$tmp/out" "$text" || { bad "demo as uid 65534 does not say '$text'"; show "$tmp/out"; return; }
	done
	ok "demo as uid 65534: user-mode-only, why, how to get full mode, tiering did nothing"
}

# --tiers with a far tier: a memory tier of 8 MiB under 32 MiB of data, so
# first touch evicts to lz4 (or zstd, then a file); each far tier is named
# with what it stores, the memory saved is said, the data verified.
test_far_tiers() {
	for spec in mem:8M,lz4 "mem:8M,zstd,file@$tmp"; do
		"$PM" demo --seconds 1 --mb 32 --tiers "$spec" >"$tmp/out" 2>"$tmp/err"
		rc=$?
		[ "$rc" = 0 ] || { bad "demo --tiers $spec: exit $rc"; show "$tmp/out" "$tmp/err"; continue; }
		far=${spec#mem:8M,}
		far=${far%%,*}
		for text in "tier 0 'mem': memory on any node, 8 MiB" \
			"tier 1 '$far': compressed in RAM with $far, unlimited" \
			"the fast tier holds 8 MiB" "far tier '$far': " "MiB of memory saved" \
			"data verified: 32 MiB, every byte"; do
			has "$tmp/out" "$text" ||
				{ bad "demo --tiers $spec does not say '$text'"; show "$tmp/out"; continue 2; }
		done
		# at least 24 MiB went far, and it takes less memory there
		line=$(grep -F "far tier '$far': " "$tmp/out")
		set -- $(echo "$line" | sed 's/.*pages, \([0-9.]*\) MiB of them in \([0-9.]*\) MiB.*/\1 \2/')
		if ! awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= 24 && b > 0 && b < a) }'; then
			bad "demo --tiers $spec: far tier line '$line'"; continue
		fi
		ok "demo --tiers $spec: $line"
	done
	for args in "--tiers bogus" "--tiers mem" "--tiers mem,lz4 --nodes 0,0"; do
		"$PM" demo --seconds 1 --mb 16 $args >"$tmp/out" 2>"$tmp/err"
		rc=$?
		if [ "$rc" != 2 ] || ! grep -q "^pagemove demo: --tiers" "$tmp/err"; then
			bad "demo $args: exit $rc"; show "$tmp/err"; continue
		fi
		ok "demo $args: refused: $(head -n 1 "$tmp/err")"
	done
}

# Ctrl-C once the policy runs: the demo stops, summarizes what ran and
# checks every byte. The run would last a day: only the signal ends it
# (the timeout is a watchdog, not an assertion about speed).
test_sigint_summarizes_and_verifies() {
	for sig in INT TERM; do
		timeout -s KILL 120 "$PM" demo --seconds 86400 --mb 16 >"$tmp/out" 2>"$tmp/err" &
		p=$!
		i=0
		while ! has "$tmp/out" "policy on for" && [ $i -lt 600 ]; do
			kill -0 $p 2>/dev/null || break
			i=$((i + 1))
			sleep 0.1
		done
		# to the demo itself: $p is timeout(1), which, signalled, passes
		# the signal on to its process group and may die of it itself
		# (exit 143 with the demo's summary printed: seen under load)
		c=$(pgrep -P $p)
		kill -$sig ${c:-$p} 2>/dev/null
		wait $p
		rc=$?
		if [ "$rc" != 0 ]; then
			bad "demo after SIG$sig: exit $rc"; show "$tmp/out" "$tmp/err"; continue
		fi
		for text in "interrupted after " "fast-tier hit rate: " "policy: " \
			"data verified: 16 MiB, every byte"; do
			has "$tmp/out" "$text" ||
				{ bad "demo after SIG$sig does not say '$text'"; show "$tmp/out"; continue 2; }
		done
		ok "demo after SIG$sig: summary, data verified, exit 0"
	done
}

for t in test_mode_line test_nodes test_far_tiers test_sigint_summarizes_and_verifies \
	test_user_only_says_why; do
	$t
	[ $? = 77 ] && skipped=1
done
if [ "$fails" -gt 0 ]; then
	echo "t_demo: $fails check(s) failed"; exit 1
fi
[ "$skipped" = 1 ] && exit 77
echo "t_demo: the demo says its mode and why, and verifies its data"
exit 0
