# SPDX-License-Identifier: MIT
# Sourced by the tests of real programs under pagemove run (t_run_*.sh):
# PM (absolute), the scratch directory, ok/bad, the skip for a program
# that is not installed, and the kernel's word on managed memory.

PM=$1
[ -x "$PM" ] || { echo "FAIL: $PM: not an executable file"; exit 1; }
case $PM in /*) ;; *) PM=$PWD/$PM ;; esac
B=$(dirname "$PM")
fails=0
ok()   { echo "ok   - $*"; }
bad()  { echo "FAIL - $*"; fails=$((fails + 1)); }
note() { echo "#      $*"; }
show() { sed 's/^/#      /' "$@"; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_run_prog.XXXXXX") || exit 1
chmod 755 "$tmp"
trap 'cleanup 2>/dev/null; rm -rf "$tmp"' EXIT
# PMV_STRESS: bigger data and longer mixes
big=${PMV_STRESS:+1}

# need PROG...: skip (77, reason) when one is missing; run.sh fails it under CI=true
need() {
	for p in "$@"; do
		command -v "$p" >/dev/null 2>&1 && continue
		echo "SKIP: $p is not installed (scripts/deps.sh installs the test programs: make deps)"
		exit 77
	done
}

# managed_vmas PID: how many of PID's mappings a userfaultfd registers
managed_vmas() { n=$(grep -c 'VmFlags:.* um' "/proc/$1/smaps" 2>/dev/null); echo "${n:-0}"; }

# run_stats PID: the migrations line of pagemove stat, for the log
run_stats() { "$PM" stat --pid "$1" 2>/dev/null | grep '^pagemove run:' | sed 's/^/#      /'; }

finish() {
	if [ "$fails" -gt 0 ]; then
		echo "$1: $fails check(s) failed"; exit 1
	fi
	echo "$1: $2"
	exit 0
}
