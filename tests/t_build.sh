#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_build.sh PAGEMOVE [ignored]
#
# The build as a new user and a packager meet it. Each make runs in the
# source tree with its outputs in a temporary directory (B=...), and
# packages are never removed: a missing one is simulated with BUILD_DEPS.
# Exit: 0 pass, 1 fail, 77 skip (reason printed).

PM=$1
[ -x "$PM" ] || { echo "FAIL: $PM: not an executable file"; exit 1; }
B=$(cd "$(dirname "$PM")" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
fails=0 skipped=0
ok()   { echo "ok   - $*"; }
bad()  { echo "FAIL - $*"; fails=$((fails + 1)); }
show() { sed 's/^/#      /' "$@"; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_build.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
# our own makes: nothing of a calling make (-j, SAN=1, -n...) leaks in
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
command -v make >/dev/null 2>&1 || { echo "SKIP: no make"; exit 77; }
mk() { make -C "$ROOT" --no-print-directory "$@"; }

# A missing header stops `make all` before anything compiles, naming the
# package and `make deps`; a header that is there is not named.
test_missing_package_is_named() {
	mk B="$tmp/b" BUILD_DEPS="pmv_no_such_header.h:libpmv-missing-dev numaif.h:libnuma-dev" \
		all >"$tmp/out" 2>&1
	rc=$?
	[ "$rc" != 0 ] || { bad "make all succeeded with a missing header"; return; }
	grep -q "missing Debian packages: libpmv-missing-dev\$" "$tmp/out" &&
		grep -q 'make deps. installs them' "$tmp/out" ||
		{ bad "make all did not name the missing package and make deps:"; show "$tmp/out"; return; }
	if grep -q 'No such file\|error:' "$tmp/out"; then
		bad "make all compiled before checking:"; show "$tmp/out"; return
	fi
	[ ! -e "$tmp/b" ] || { bad "make all made $tmp/b before failing"; return; }
	ok "make all without a package: names it and make deps, exit $rc, nothing compiled"
}

# all and install never install: no deps.sh install, apt-get or dpkg in
# what they run (make -n prints it), while test and demo do run make deps.
test_all_and_install_never_install() {
	for goal in all install; do
		mk -n B="$tmp/n" DESTDIR="$tmp/dest" "$goal" >"$tmp/out" 2>&1 ||
			{ bad "make -n $goal failed:"; show "$tmp/out"; return; }
		if grep -E 'deps\.sh( build| numa|$| *;)|apt-get|dpkg' "$tmp/out"; then
			bad "make $goal would install packages (above)"; return
		fi
	done
	for goal in test demo; do
		mk -n B="$tmp/n" "$goal" 2>&1 | grep -q 'scripts/deps.sh build' ||
			{ bad "make $goal does not run make deps first"; return; }
	done
	ok "make all and make install install nothing; test and demo run make deps"
}

# -Werror by default (CI and make test set nothing), not with WERROR=0.
test_werror_default_and_off() {
	obj="$tmp/w/src/context.o"
	mk -n -B B="$tmp/w" "$obj" >"$tmp/out" 2>&1 || { bad "make -n $obj failed"; show "$tmp/out"; return; }
	grep -q -- '-Werror' "$tmp/out" || { bad "no -Werror by default:"; show "$tmp/out"; return; }
	mk -n -B B="$tmp/w" WERROR=0 "$obj" >"$tmp/out" 2>&1 || { bad "make -n WERROR=0 failed"; return; }
	if grep -q -- '-Werror' "$tmp/out"; then
		bad "WERROR=0 still passes -Werror:"; show "$tmp/out"; return
	fi
	grep -q -- '-Wall -Wextra' "$tmp/out" || { bad "WERROR=0 dropped the warnings too"; return; }
	ok "-Werror by default, off with WERROR=0 (warnings kept)"
}

# pagemove.pc names its directories from ${prefix}: moved with its tree,
# pkg-config --define-prefix finds the tree; a LIBDIR outside PREFIX stays.
test_pc_relocatable() {
	if ! command -v pkg-config >/dev/null 2>&1; then
		echo "SKIP: no pkg-config (make deps installs it)"; return 77
	fi
	if grep -v '^prefix=' "$B/pagemove.pc" | grep -n '=/'; then
		bad "$B/pagemove.pc has an absolute directory besides prefix (above)"; return
	fi
	mkdir -p "$tmp/r/lib/pkgconfig" && cp "$B/pagemove.pc" "$tmp/r/lib/pkgconfig/" || return
	got=$(PKG_CONFIG_PATH="$tmp/r/lib/pkgconfig" pkg-config --define-prefix --cflags --libs pagemove)
	want="-I$tmp/r/include -L$tmp/r/lib -lpagemove"
	[ "$(echo $got)" = "$want" ] || { bad "pkg-config --define-prefix: '$got', want '$want'"; return; }
	mk B="$tmp/pc" PREFIX=/opt/pm LIBDIR=/usr/lib64 "$tmp/pc/pagemove.pc" >"$tmp/out" 2>&1 ||
		{ bad "make pagemove.pc with PREFIX, LIBDIR failed"; show "$tmp/out"; return; }
	grep -qx 'libdir=/usr/lib64' "$tmp/pc/pagemove.pc" && grep -qx 'prefix=/opt/pm' "$tmp/pc/pagemove.pc" &&
		grep -qx 'includedir=${prefix}/include' "$tmp/pc/pagemove.pc" ||
		{ bad "PREFIX=/opt/pm LIBDIR=/usr/lib64 gave:"; show "$tmp/pc/pagemove.pc"; return; }
	ok "pagemove.pc relocates with --define-prefix; a LIBDIR outside PREFIX stays absolute"
}

# The README's example is examples/hello.c, byte for byte.
test_readme_example_is_hello_c() {
	awk '/^## Example/ { ex = 1 } ex && /^```c$/ { on = 1; next } on && /^```$/ { exit } on' \
		"$ROOT/README.md" >"$tmp/readme.c"
	[ -s "$tmp/readme.c" ] || { bad "README.md: no \`\`\`c block under ## Example"; return; }
	if ! diff -u "$ROOT/examples/hello.c" "$tmp/readme.c" >"$tmp/out"; then
		bad "README.md's example differs from examples/hello.c:"; show "$tmp/out"; return
	fi
	ok "README's example is examples/hello.c ($(wc -l <"$tmp/readme.c") lines)"
}

# The README's in-tree build line works in a checkout (with this build
# tree for build/), and so does the example make all built.
test_readme_in_tree_line_works() {
	line=$(grep -m1 '^cc -Iinclude examples/hello.c ' "$ROOT/README.md")
	run=$(grep -m1 '^LD_LIBRARY_PATH=build ./hello$' "$ROOT/README.md")
	[ -n "$line" ] && [ -n "$run" ] ||
		{ bad "README.md: no in-tree 'cc -Iinclude examples/hello.c ...' and 'LD_LIBRARY_PATH=build ./hello' lines"; return; }
	cmd=$(echo "$line" | sed -e "s| -Lbuild | -L$B |" -e "s| -o hello\$| -o $tmp/hello|")
	case $cmd in
	*" -L$B "*" -o $tmp/hello") ;;
	*) bad "README.md's line is not '... -Lbuild ... -o hello': $line"; return ;;
	esac
	(cd "$ROOT" && eval "$cmd") >"$tmp/out" 2>&1 || { bad "$line failed:"; show "$tmp/out"; return; }
	# a sanitized library needs its runtime loaded first
	pre=
	if [ -e "$B/libpagemove.so" ] && readelf -d "$B/libpagemove.so" | grep -q 'NEEDED.*libasan'; then
		pre=$(cc -print-file-name=libasan.so)
	fi
	for prog in "$tmp/hello" "$B/examples/hello"; do
		[ -x "$prog" ] || { bad "$prog was not built"; return; }
		LD_PRELOAD=$pre LD_LIBRARY_PATH=$B "$prog" >"$tmp/out" 2>&1 ||
			{ bad "$prog failed:"; show "$tmp/out"; return; }
		grep -qx '0 pages not moved; page 0 now on tier 1; data intact' "$tmp/out" ||
			{ bad "$prog said:"; show "$tmp/out"; return; }
	done
	ok "README's in-tree line builds hello; it and $B/examples/hello run, data intact"
}

for t in test_missing_package_is_named test_all_and_install_never_install \
	 test_werror_default_and_off test_pc_relocatable test_readme_example_is_hello_c \
	 test_readme_in_tree_line_works; do
	$t
	[ $? = 77 ] && skipped=1
done
if [ "$fails" -gt 0 ]; then
	echo "t_build: $fails check(s) failed"; exit 1
fi
[ "$skipped" = 1 ] && exit 77
echo "t_build: missing packages named, nothing installs but deps/test/demo, WERROR=0, relocatable .pc, README example current"
exit 0
