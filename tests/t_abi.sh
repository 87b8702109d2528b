#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_abi.sh PAGEMOVE [ignored]
#
# The symbol side of the ABI rule (pagemove.h; the struct side is
# t_abi_X.Y, tests/abi/abi.c):
#  - src/libpagemove.map has one node per release, in order, each
#    inheriting the one before; the last is the header's version;
#  - every released node (tests/abi/libpagemove-X.Y.map) is still there,
#    unchanged, and every release has its header in tests/abi;
#  - the shared library exports each symbol of each node with that node's
#    version, and no pmv_ symbol without one;
#  - each t_abi_X.Y program needs no version node newer than X.Y, so it
#    binds as X.Y's programs did.
# Exit: 0 pass, 1 fail.

PM=$1
[ -x "$PM" ] || { echo "FAIL: $PM: not an executable file"; exit 1; }
B=$(dirname "$PM")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MAP=$ROOT/src/libpagemove.map
fails=0
ok()  { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_abi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# nodes MAP: one line per node, "NAME PARENT sym sym ... [local:*]", comments
# and layout dropped, so that two maps compare node by node.
nodes() {
	sed -e 's|/\*.*\*/||g' -e '/\/\*/,/\*\//d' "$1" | tr '\n\t' '  ' |
		sed -e 's/}[[:space:]]*\([A-Za-z0-9_.]*\)[[:space:]]*;/ } \1 ;\n/g' |
		awk '{
			name = $1; parent = "-"; syms = ""
			for (i = 2; i <= NF; i++) {
				if ($i == "{" || $i == "global:" || $i == ";") continue
				if ($i == "}") { if ($(i + 1) != ";") parent = $(i + 1); break }
				syms = syms " " $i
			}
			gsub(/;/, "", syms); gsub(/local: \*/, "local:*", syms)
			if (name != "") print name, parent syms
		}'
}

major=$(awk '$2 == "PMV_VERSION_MAJOR" { print $3 }' "$ROOT/include/pagemove.h")
minor=$(awk '$2 == "PMV_VERSION_MINOR" { print $3 }' "$ROOT/include/pagemove.h")
cur=PAGEMOVE_$major.$minor
nodes "$MAP" >"$tmp/now"

test_one_node_per_release() {
	prev=- n=0
	while read -r name parent _; do
		[ "$parent" = "$prev" ] || { bad "node $name inherits '$parent', not '$prev'"; return; }
		prev=$name n=$((n + 1))
		[ "$name" = "$cur" ] && continue
		v=${name#PAGEMOVE_}
		[ -f "$ROOT/tests/abi/pagemove-$v.h" ] && [ -f "$ROOT/tests/abi/libpagemove-$v.map" ] ||
			{ bad "release $v has no tests/abi/pagemove-$v.h and libpagemove-$v.map"; return; }
	done <"$tmp/now"
	[ "$prev" = "$cur" ] || { bad "the last node is $prev, the header says $cur"; return; }
	ok "$n nodes, one per release, the last $cur"
}

test_released_nodes_unchanged() {
	n=0 r=0
	for m in "$ROOT"/tests/abi/libpagemove-*.map; do
		r=$((r + 1))
		v=$(basename "$m" .map); v=${v#libpagemove-}
		nodes "$m" >"$tmp/rel"
		grep -q "^PAGEMOVE_$v " "$tmp/rel" || { bad "$m has no PAGEMOVE_$v node"; return; }
		[ -f "$ROOT/tests/abi/pagemove-$v.h" ] || { bad "no tests/abi/pagemove-$v.h for $m"; return; }
		while read -r line; do
			grep -qxF "$line" "$tmp/now" ||
				{ bad "src/libpagemove.map changed released node: $line"; return; }
			n=$((n + 1))
		done <"$tmp/rel"
	done
	[ "$n" -gt 0 ] || { bad "no released maps in tests/abi"; return; }
	ok "the $n nodes of the $r released maps are in src/libpagemove.map as released"
}

test_library_exports_every_version() {
	so=$B/libpagemove.so
	if [ ! -e "$so" ]; then
		ok "no shared library in $B (a static build): no symbol versions to check"; return
	fi
	readelf --dyn-syms -W "$so" | awk '$5 == "GLOBAL" && $7 != "UND" { print $8 }' >"$tmp/syms"
	n=0
	while read -r name parent syms; do
		for s in $syms; do
			[ "$s" = "local:*" ] && continue
			grep -qxE "$s@@?$name" "$tmp/syms" || { bad "$so does not export $s@$name"; return; }
			n=$((n + 1))
		done
	done <"$tmp/now"
	if grep -E '^_?pmv' "$tmp/syms" | grep -v '@'; then
		bad "$so exports the symbols above without a version"; return
	fi
	if grep -E '^_pmv|_0_[0-9]+@' "$tmp/syms"; then
		bad "$so exports internal names"; return
	fi
	for name in $(awk '{ print $1 }' "$tmp/now"); do
		d=$(grep -E "@@$name\$" "$tmp/syms" | sed 's/@@.*//')
		for s in $d; do
			awk -v n="$name" -v s="$s" '$1 == n { for (i = 3; i <= NF; i++) if ($i == s) f = 1 }
				END { exit !f }' "$tmp/now" || { bad "$s@@$name is not in node $name"; return; }
		done
	done
	ok "$so exports all $n symbol versions of the map"
}

test_old_programs_bind_old_versions() {
	n=0
	for t in "$B"/tests/t_abi_*; do
		[ -x "$t" ] || continue
		v=${t##*/t_abi_}
		readelf -V "$t" | sed -n 's/.*Name: \(PAGEMOVE_[0-9.]*\).*/\1/p' >"$tmp/need"
		[ -s "$tmp/need" ] || { bad "$t needs no PAGEMOVE version"; return; }
		if [ "$v" = current ]; then
			grep -qx "$cur" "$tmp/need" || { bad "$t does not need $cur"; return; }
		else
			while read -r need; do
				[ "$(printf '%s\n%s\n' "${need#PAGEMOVE_}" "$v" | sort -t. -k1,1n -k2,2n | tail -n 1)" = "$v" ] ||
					{ bad "$t (release $v) needs $need"; return; }
			done <"$tmp/need"
		fi
		n=$((n + 1))
	done
	if [ -e "$B/libpagemove.so" ] && [ "$n" -lt 2 ]; then
		bad "no t_abi_* programs in $B/tests"; return
	fi
	ok "$n t_abi programs bind to their release's versions"
}

for t in test_one_node_per_release test_released_nodes_unchanged \
	 test_library_exports_every_version test_old_programs_bind_old_versions; do
	$t
done
if [ "$fails" -gt 0 ]; then
	echo "t_abi: $fails check(s) failed"; exit 1
fi
echo "t_abi: one node per release, released nodes unchanged and exported"
exit 0
