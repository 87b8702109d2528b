#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_cli_procs.sh PAGEMOVE CLI_CHILD
#
# "pagemove stat" and "pagemove migrate" against a process that does not
# link pagemove (tests/cli_child.c): table and JSON output, a real move when
# there are two or more memory nodes (a no-op move otherwise), the child's
# data afterwards, and the exit codes for bad input.
#
# Plain POSIX sh: it also runs under busybox sh in a NUMA qemu guest, where
# python3 may be missing (the JSON parse check is then skipped).
# Exit: 0 pass, 1 fail, 77 skip (reason printed).

PM=$1
CHILD=$2
if [ -z "$PM" ] || [ -z "$CHILD" ]; then
	echo "usage: $0 PAGEMOVE CLI_CHILD" >&2
	exit 1
fi
for f in "$PM" "$CHILD"; do
	[ -x "$f" ] || { echo "FAIL: $f: not an executable file"; exit 1; }
done
case $PM in /*) ;; *) PM=$PWD/$PM ;; esac
case $CHILD in /*) ;; *) CHILD=$PWD/$CHILD ;; esac
if [ ! -r /proc/self/numa_maps ]; then
	echo "SKIP: kernel without NUMA support (no /proc/self/numa_maps)"
	exit 77
fi

fails=0
ok()   { echo "ok   - $*"; }
bad()  { echo "FAIL - $*"; fails=$((fails + 1)); }
note() { echo "#      $*"; }
nap()  { sleep 0.1 2>/dev/null || sleep 1; }
show() { sed 's/^/#      /' "$@"; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_cli_procs.XXXXXX") || exit 1
cpid=
cleanup() {
	exec 3>&- 2>/dev/null
	[ -n "$cpid" ] && kill "$cpid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# run CMD...: sets $rc; output in $tmp/out, $tmp/err
run() {
	"$@" >"$tmp/out" 2>"$tmp/err"
	rc=$?
}

# expect RC DESCRIPTION CMD...
expect() {
	want=$1 desc=$2
	shift 2
	run "$@"
	if [ "$rc" = "$want" ]; then
		ok "$desc (exit $rc)"
		return 0
	fi
	bad "$desc: exit $rc, expected $want"
	show "$tmp/out" "$tmp/err"
	return 1
}

# ask CMD: send a command to the child and print its one-line reply
ask() {
	n=$(($(wc -l <"$tmp/child.out")))
	echo "$1" >&3
	i=0
	while [ $(($(wc -l <"$tmp/child.out"))) -le "$n" ]; do
		i=$((i + 1))
		if [ $i -gt 600 ] || ! kill -0 "$cpid" 2>/dev/null; then
			echo "(no reply)"
			return 1
		fi
		nap
	done
	sed -n "$((n + 1))p" "$tmp/child.out"
}

# node_mib NODE: MiB on NODE in the TOTAL row of the table in $tmp/out
node_mib() {
	awk -v col="N$1" '
		$1 == "START" { for (i = 1; i <= NF; i++) if ($i == col) c = i }
		$1 == "TOTAL" && c { print $c; found = 1; exit }
		END { if (!found) print "?" }' "$tmp/out"
}

# ge A B: A >= B, as decimal numbers
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "?" && a + 0 >= b + 0) }'; }

# stat_mib NODE...: run "pagemove stat" and set mib_N for each NODE
stat_mib() {
	run "$PM" stat --pid "$pid"
	[ "$rc" = 0 ] || { bad "stat --pid $pid: exit $rc"; show "$tmp/err"; }
	for nd in "$@"; do
		eval "mib_$nd=\$(node_mib $nd)"
	done
}

# ------------------------------------------------------------------ nodes
# memory nodes, numerically lowest and highest
first= last= nmem=0
for d in /sys/devices/system/node/node[0-9]*; do
	[ -d "$d" ] || continue
	nd=${d##*/node}
	kb=$(awk '/MemTotal:/ { print $4; exit }' "$d/meminfo" 2>/dev/null)
	[ "${kb:-0}" -gt 0 ] || continue
	nmem=$((nmem + 1))
	if [ -z "$first" ] || [ "$nd" -lt "$first" ]; then first=$nd; fi
	if [ -z "$last" ] || [ "$nd" -gt "$last" ]; then last=$nd; fi
done
if [ -z "$first" ]; then
	echo "SKIP: no NUMA node with memory in /sys/devices/system/node"
	exit 77
fi
note "memory nodes: $nmem (first $first, last $last)"

# ------------------------------------------------------------------ child
mkfifo "$tmp/in" || { echo "FAIL: mkfifo"; exit 1; }
"$CHILD" <"$tmp/in" >"$tmp/child.out" 2>&1 &
cpid=$!
exec 3>"$tmp/in"
i=0
while [ ! -s "$tmp/child.out" ] && [ $i -lt 300 ]; do
	kill -0 "$cpid" 2>/dev/null || break
	i=$((i + 1))
	nap
done
pid=$(head -n 1 "$tmp/child.out")
case $pid in
'' | *[!0-9]*)
	echo "FAIL: cli_child did not start:"
	show "$tmp/child.out"
	exit 1
	;;
esac
note "cli_child pid $pid"
thp0=$(ask thp)
case $thp0 in '' | *[!0-9]*) thp0=0 ;; esac
note "cli_child huge region: $thp0 kB in THPs"

# ------------------------------------------------------------------- stat
if expect 0 "stat --pid" "$PM" stat --pid "$pid"; then
	if grep -q '^START ' "$tmp/out" && grep -q '^TOTAL ' "$tmp/out"; then
		ok "stat table has a header and a TOTAL row"
	else
		bad "stat table lacks its header or TOTAL row"
		show "$tmp/out"
	fi
	total=$(node_mib "$first")
	if ge "$total" 40; then
		ok "stat: node $first holds $total MiB (child maps 40 MiB)"
	elif [ "$nmem" -gt 1 ]; then
		note "stat: node $first holds $total MiB (child may sit elsewhere)"
	else
		bad "stat: node $first holds $total MiB, expected >= 40"
	fi
fi
if expect 0 "stat --pid --json" "$PM" stat --pid "$pid" --json; then
	if command -v python3 >/dev/null 2>&1; then
		if python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["pid"] == int(sys.argv[1]), "pid"
for k in ("nodes", "mappings", "totals"):
    assert k in d, k
kb = sum(d["totals"]["kb_per_node"].values())
assert kb >= 40 * 1024, "kb_per_node total %d" % kb
for m in d["mappings"]:
    assert m["start"].startswith("0x") and "pages_per_node" in m
' "$pid" <"$tmp/out" 2>"$tmp/err"; then
			ok "stat --json parses and has pid, nodes, mappings, totals"
		else
			bad "stat --json output is not the expected JSON"
			show "$tmp/err"
		fi
	else
		note "python3 missing: JSON checked for shape only"
		if head -c 1 "$tmp/out" | grep -q '{' &&
		   grep -q "\"pid\":$pid," "$tmp/out" &&
		   tail -n 1 "$tmp/out" | grep -q '}$'; then
			ok "stat --json looks like one JSON object"
		else
			bad "stat --json output does not look like JSON"
			show "$tmp/out"
		fi
	fi
fi

if expect 0 "stat --pid --totals" "$PM" stat --pid "$pid" --totals; then
	rows=$(awk '$1 != "START" && $1 != "TOTAL" && NR > 1' "$tmp/out" | wc -l)
	# every node's MiB: the child may sit on any of them
	ttotal=$(awk '$1 == "START" { for (i = 1; i <= NF; i++) if ($i ~ /^N[0-9]+$/) c[i] = 1 }
		$1 == "TOTAL" { for (i in c) s += $i; print s + 0; exit }' "$tmp/out")
	if [ "$rows" -eq 0 ] && grep -q '^TOTAL ' "$tmp/out" && ge "${ttotal:-?}" 40; then
		ok "stat --totals: the TOTAL row alone, $ttotal MiB on all nodes"
	else
		bad "stat --totals: $rows mapping rows, $ttotal MiB on all nodes"
		show "$tmp/out"
	fi
fi
if command -v python3 >/dev/null 2>&1 &&
   expect 0 "stat --pid --totals --json" "$PM" stat --pid "$pid" --totals --json; then
	if python3 -c '
import json, sys
d = json.load(sys.stdin)
assert "mappings" not in d and "totals" in d, "keys"
assert sum(d["totals"]["kb_per_node"].values()) >= 40 * 1024, "kb_per_node"
' <"$tmp/out" 2>"$tmp/err"; then
		ok "stat --totals --json: totals without mappings"
	else
		bad "stat --totals --json is not the expected JSON"
		show "$tmp/err"
	fi
fi

# ---------------------------------------------------------------- migrate
if [ "$nmem" -lt 2 ]; then
	note "one memory node: only a no-op move"
	expect 0 "migrate --from $first --to $first (no-op)" \
		"$PM" migrate --pid "$pid" --from "$first" --to "$first"
	show "$tmp/out"
	run "$PM" migrate --pid "$pid" --from "$first" --to "$first" \
		--huge-only --threads 2 --rate 1000
	if [ "$rc" = 0 ]; then
		ok "migrate --huge-only --threads 2 --rate 1000 (no-op) (exit 0)"
	elif [ "$rc" = 5 ] && grep -q 'cannot find THPs' "$tmp/err"; then
		note "no THP detection here: --huge-only refused (exit 5)"
	else
		bad "migrate --huge-only (no-op): exit $rc, expected 0"
		show "$tmp/out" "$tmp/err"
	fi
else
	# everything onto the first node, wherever the child first touched it
	run "$PM" migrate --pid "$pid" --from all --to "$first" --quiet
	[ "$rc" = 0 ] || note "migrate --from all --to $first: exit $rc"
	stat_mib "$first" "$last"
	eval "b_first=\$mib_$first b_last=\$mib_$last"
	note "before: node $first: $b_first MiB, node $last: $b_last MiB"

	if expect 0 "migrate --from $first --to $last" \
		"$PM" migrate --pid "$pid" --from "$first" --to "$last"; then
		show "$tmp/out"
		if grep -q EBUSY "$tmp/out"; then
			bad "migrate reported EBUSY pages (THPs split into base pages?)"
		fi
	fi
	stat_mib "$first" "$last"
	eval "a_first=\$mib_$first a_last=\$mib_$last"
	note "after:  node $first: $a_first MiB, node $last: $a_last MiB"
	if ge "$a_last" "$(awk -v b="$b_last" 'BEGIN { print b + 36 }')" &&
	   ge "$(awk -v b="$b_first" -v a="$a_first" 'BEGIN { print b - a }')" 36; then
		ok "stat: >= 36 MiB went from node $first to node $last"
	else
		bad "stat: pages did not move from node $first to node $last"
		show "$tmp/out"
	fi
	thp1=$(ask thp)
	if [ "$thp1" = "$thp0" ]; then
		ok "THPs kept whole ($thp1 kB in THPs)"
	else
		bad "THP memory changed from $thp0 kB to $thp1 kB"
	fi

	# only the THPs come back
	run "$PM" migrate --pid "$pid" --from "$last" --to "$first" \
		--huge-only --threads 1 --rate 1000
	if [ "$rc" = 5 ] && grep -q 'cannot find THPs' "$tmp/err"; then
		note "no THP detection here: --huge-only refused (exit 5)"
	elif [ "$rc" != 0 ]; then
		bad "migrate --huge-only --from $last --to $first: exit $rc"
		show "$tmp/out" "$tmp/err"
	else
		ok "migrate --huge-only --from $last --to $first -j 1 --rate 1000 (exit 0)"
		stat_mib "$first" "$last"
		eval "h_first=\$mib_$first"
		moved=$(awk -v a="$h_first" -v b="$a_first" 'BEGIN { print a - b }')
		if [ "${thp0:-0}" -gt 0 ]; then
			if ge "$moved" "$((thp0 / 1024 - 1))" &&
			   ! ge "$moved" "$((thp0 / 1024 + 4))"; then
				ok "--huge-only moved $moved MiB: the THPs only"
			else
				bad "--huge-only moved $moved MiB, THPs are $((thp0 / 1024)) MiB"
			fi
		else
			note "no THPs in the child (THP disabled?): --huge-only not checked"
		fi
	fi
fi
reply=$(ask check)
if [ "$reply" = ok ]; then
	ok "child data intact after the moves"
else
	bad "child data check: $reply"
fi

# --------------------------------------------------------------- bad input
sh -c 'exit 0' &
gone=$!
wait "$gone"
if [ -d "/proc/$gone" ]; then
	note "pid $gone was reused; nonexistent-pid checks skipped"
else
	expect 3 "migrate --pid <exited>" \
		"$PM" migrate --pid "$gone" --from "$first" --to "$first"
	expect 3 "stat --pid <exited>" "$PM" stat --pid "$gone"
fi
if [ ! -d /sys/devices/system/node/node99 ]; then
	expect 2 "migrate --to 99" \
		"$PM" migrate --pid "$pid" --from "$first" --to 99
fi
expect 2 "migrate --to 1-x" "$PM" migrate --pid "$pid" --from "$first" --to 1-x
expect 2 "migrate without --to" "$PM" migrate --pid "$pid" --from "$first"
expect 2 "migrate --pid without a value" "$PM" migrate --pid
expect 2 "migrate --bogus" "$PM" migrate --pid "$pid" --from 0 --to 0 --bogus
expect 2 "migrate --pid abc" "$PM" migrate --pid abc --from 0 --to 0
expect 2 "stat without --pid" "$PM" stat
expect 2 "stat --bogus" "$PM" stat --pid "$pid" --bogus
expect 0 "migrate --help" "$PM" migrate --help
expect 0 "stat --help" "$PM" stat --help

# pid 1 from an unprivileged user: permission denied
if [ "$(id -u)" = 0 ]; then
	# uid 65534 must be able to run it: mktemp -d made $tmp 0700
	chmod 755 "$tmp"
	cp "$PM" "$tmp/pagemove" && chmod 755 "$tmp/pagemove"
	# cli_child --setuid works where setpriv/su do not (busybox)
	if "$CHILD" --setuid 65534 "$tmp/pagemove" stat --help >/dev/null 2>&1
	then
		expect 4 "stat --pid 1 as uid 65534" \
			"$CHILD" --setuid 65534 "$tmp/pagemove" stat --pid 1
		# the errno, and the cause it can see: another uid, no CAP_SYS_PTRACE
		if grep -q "^pagemove stat: pid 1: reading smaps: Permission denied (EACCES); likely cause: pid 1 runs as uid $(stat -c %u /proc/1) and this process as uid 65534, without CAP_SYS_PTRACE\$" "$tmp/err"; then
			ok "stat --pid 1 as uid 65534: errno and the likely cause"
		else
			bad "stat --pid 1 as uid 65534: message"; show "$tmp/err"
		fi
		expect 4 "migrate --pid 1 as uid 65534" \
			"$CHILD" --setuid 65534 "$tmp/pagemove" migrate \
			--pid 1 --from "$first" --to "$first"
	else
		note "cannot run pagemove as uid 65534: permission checks skipped"
	fi
elif [ "$(stat -c %u /proc/1 2>/dev/null)" != "$(id -u)" ]; then
	expect 4 "stat --pid 1 (not ours)" "$PM" stat --pid 1
	expect 4 "migrate --pid 1 (not ours)" \
		"$PM" migrate --pid 1 --from "$first" --to "$first"
else
	note "pid 1 belongs to us: permission checks skipped"
fi

echo quit >&3
exec 3>&-
wait "$cpid" 2>/dev/null
cpid=

if [ "$fails" -gt 0 ]; then
	echo "t_cli_procs: $fails check(s) failed"
	exit 1
fi
echo "t_cli_procs: all checks passed"
exit 0
