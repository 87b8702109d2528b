#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_version.sh PAGEMOVE [ignored]
#
# One version everywhere: the header's PMV_VERSION_MAJOR.PMV_VERSION_MINOR
# (the one source, see the Makefile) is what `pagemove --version` prints,
# what `pkg-config --modversion` reads from the built pagemove.pc, what the
# shared library is named after (its soname: the major number), and what
# every built man page's footer says.
# Exit: 0 pass, 1 fail, 77 skip (reason printed).

PM=$1
[ -x "$PM" ] || { echo "FAIL: $PM: not an executable file"; exit 1; }
B=$(dirname "$PM")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
fails=0
ok()  { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }

major=$(awk '$2 == "PMV_VERSION_MAJOR" { print $3 }' "$ROOT/include/pagemove.h")
minor=$(awk '$2 == "PMV_VERSION_MINOR" { print $3 }' "$ROOT/include/pagemove.h")
v=$major.$minor
case $v in
[0-9]*.[0-9]*) ;;
*) echo "FAIL: no version in include/pagemove.h (got '$v')"; exit 1 ;;
esac

test_cli_version() {
	out=$("$PM" --version 2>&1)
	[ "$out" = "pagemove $v" ] || { bad "pagemove --version says '$out', the header $v"; return; }
	out=$("$PM" version 2>&1)
	[ "$out" = "pagemove $v" ] || { bad "pagemove version says '$out', the header $v"; return; }
	ok "pagemove --version: $v"
}

test_pkgconfig_version() {
	if ! command -v pkg-config >/dev/null 2>&1; then
		echo "SKIP: no pkg-config (make deps installs it)"; return 77
	fi
	out=$(pkg-config --modversion "$B/pagemove.pc" 2>&1)
	[ "$out" = "$v" ] || { bad "pkg-config --modversion $B/pagemove.pc: '$out', the header $v"; return; }
	ok "pkg-config --modversion: $v"
}

test_soname() {
	if [ ! -e "$B/libpagemove.so" ]; then
		ok "no shared library in $B (a static build): no soname to check"; return
	fi
	real=$(basename "$(readlink -f "$B/libpagemove.so")")
	[ "$real" = "libpagemove.so.$v" ] || { bad "libpagemove.so is $real, not libpagemove.so.$v"; return; }
	soname=$(readelf -d "$B/$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
	[ "$soname" = "libpagemove.so.$major" ] ||
		{ bad "soname of $real is '$soname', not libpagemove.so.$major"; return; }
	[ "$(readlink -f "$B/$soname")" = "$(readlink -f "$B/$real")" ] ||
		{ bad "$B/$soname does not lead to $real"; return; }
	ok "shared library $real, soname $soname"
}

test_man_footers() {
	n=0
	for src in "$ROOT"/man/*.[13]; do
		page=$(basename "$src")
		built=$B/man/$page
		[ -f "$built" ] || { bad "$page was not built into $B/man"; return; }
		if head -n 1 "$src" | grep -q '^\.so '; then
			cmp -s "$src" "$built" || { bad "$page (a .so link) changed in the build"; return; }
			continue
		fi
		th=$(grep -m1 '^\.TH' "$src")
		case $th in
		*'"pagemove @VERSION@"'*) ;;
		*) bad "man/$page: its .TH footer is not \"pagemove @VERSION@\": $th"; return ;;
		esac
		th=$(grep -m1 '^\.TH' "$built")
		case $th in
		*"\"pagemove $v\""*) ;;
		*) bad "$built: footer is not \"pagemove $v\": $th"; return ;;
		esac
		if grep -n '@[A-Z_]*@' "$built"; then
			bad "$built: a placeholder left"; return
		fi
		n=$((n + 1))
	done
	[ "$n" -gt 0 ] || { bad "no man pages found in $ROOT/man"; return; }
	ok "$n man pages say pagemove $v"
}

skipped=0
for t in test_cli_version test_pkgconfig_version test_soname test_man_footers; do
	$t
	[ $? = 77 ] && skipped=1
done
if [ "$fails" -gt 0 ]; then
	echo "t_version: $fails check(s) failed"; exit 1
fi
[ "$skipped" = 1 ] && exit 77
echo "t_version: $v in the CLI, pkg-config, soname and man pages"
exit 0
