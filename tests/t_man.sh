#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_man.sh PAGEMOVE [ignored]
#
# pagemove.1 is current: every command `pagemove --help` lists has a
# SYNOPSIS line, and that line names every option of the command's getopt
# table (the same tables t_cli_opts.sh reads); pagemove-migrate.1,
# pagemove-run.1, pagemove-stat.1 and pagemove-top.1 name every option of theirs too. The built pages format
# without warnings where man(1) is installed.
# Exit: 0 pass, 1 fail.

PM=$1
[ -x "$PM" ] || { echo "FAIL: $PM: not an executable file"; exit 1; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/t_man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
fails=0
ok()  { echo "ok   - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }

. "$ROOT/tests/cli_lib.sh"

# the options a page must name: all but --help
page_opts() {
	for o in $(long_opts "$1"); do [ "$o" = help ] || printf '%s ' "$o"; done
}

# synopsis PAGE CMD: the SYNOPSIS lines of "pagemove CMD", up to its .br,
# with roff's \- as -
synopsis() {
	sed -n '/^\.SH SYNOPSIS/,/^\.SH /p' "$1" | sed 's/\\-/-/g' |
		awk -v cmd="$2" '
			$0 == ".B pagemove " cmd || $0 == ".B pagemove " cmd " --help" { on = 1; next }
			on && /^\.br/ { exit }
			on { print }'
}

test_every_command_in_synopsis() {
	"$PM" --help >"$tmp/help" 2>&1
	cmds=$(sed -n 's/^  \([a-z]*\)  .*/\1/p' "$tmp/help")
	[ -n "$cmds" ] || { bad "no commands in pagemove --help"; return; }
	for c in $cmds "bench tiering" "bench faults" "bench far" "bench run"; do
		sed -n '/^\.SH SYNOPSIS/,/^\.SH /p' "$ROOT/man/pagemove.1" | sed 's/\\-/-/g' |
			grep -qx ".B pagemove $c" ||
			{ bad "pagemove.1's SYNOPSIS has no 'pagemove $c'"; continue; }
	done
	ok "pagemove.1's SYNOPSIS has every command:" $cmds "bench tiering" "bench faults" "bench far" "bench run"
}

test_every_option_in_synopsis() {
	for c in demo bench "bench tiering" "bench faults" "bench far" "bench run" migrate run stat top; do
		synopsis "$ROOT/man/pagemove.1" "$c" >"$tmp/syn"
		miss=
		for o in $(page_opts "$(src_of "$c")"); do
			grep -q -- "--$o\\b" "$tmp/syn" || miss="$miss --$o"
		done
		[ -z "$miss" ] || { bad "pagemove.1: 'pagemove $c' lacks:$miss"; continue; }
		# and each option is described (a .B/.BI/.BR line with it), in
		# the command's own page where it has one
		page=$ROOT/man/pagemove-$c.1
		[ -f "$page" ] || page=$ROOT/man/pagemove.1
		for o in $(page_opts "$(src_of "$c")"); do
			sed 's/\\-/-/g' "$page" | grep -q "^\.B[IR]* .*--$o\\b" ||
				miss="$miss --$o"
		done
		[ -z "$miss" ] || { bad "$(basename "$page") describes no:$miss"; continue; }
		ok "pagemove.1: every option of 'pagemove $c'"
	done
	for c in migrate run stat top; do
		synopsis "$ROOT/man/pagemove-$c.1" "$c" >"$tmp/syn"
		miss=
		for o in $(page_opts "$(src_of "$c")"); do
			grep -q -- "--$o\\b" "$tmp/syn" || miss="$miss --$o"
		done
		[ -z "$miss" ] || { bad "pagemove-$c.1's SYNOPSIS lacks:$miss"; continue; }
		ok "pagemove-$c.1: every option in the SYNOPSIS"
	done
}

test_pages_format_cleanly() {
	if ! command -v man >/dev/null 2>&1; then
		ok "no man(1): formatting not checked"; return
	fi
	for page in "$ROOT"/man/pagemove*.1; do
		w=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
		[ -z "$w" ] || bad "$(basename "$page"): $w"
	done
	ok "the command pages format without warnings"
}

for t in test_every_command_in_synopsis test_every_option_in_synopsis test_pages_format_cleanly; do
	$t
done
if [ "$fails" -gt 0 ]; then
	echo "t_man: $fails check(s) failed"; exit 1
fi
echo "t_man: pagemove.1 names every command and option the CLI accepts"
exit 0
