# SPDX-License-Identifier: MIT
# Sourced by the CLI's shell tests (t_cli_opts.sh, t_man.sh): what the CLI
# is made of, read from its sources. Needs ROOT, the source tree.

# The source of each subcommand; a command `pagemove --help` lists that is
# not here fails the tests that read it.
src_of() {
	case $1 in
	demo)		echo tools/cmd_demo.c ;;
	bench)		echo bench/bench.c ;;
	"bench tiering") echo bench/bench_tiering.c ;;
	"bench faults")	echo bench/bench_faults.c ;;
	"bench far")	echo bench/bench_far.c ;;
	"bench run")	echo bench/bench_run.c ;;
	migrate)	echo tools/cmd_migrate.c ;;
	run)		echo tools/cmd_run.c ;;
	stat)		echo tools/cmd_stat.c ;;
	top)		echo tools/cmd_top.c ;;
	esac
}

# Long options of a source file's getopt table ({ "name", x_argument),
# --help included. No source prints __missing_source__ and a FAIL line on
# stderr: no options must not pass as "every option found".
long_opts() {
	[ -f "$ROOT/$1" ] || { echo "FAIL - no source $ROOT/$1" >&2; echo __missing_source__; return; }
	grep -o '{[[:space:]]*"[a-z-]*",[[:space:]]*[a-z]*_argument' "$ROOT/$1" |
		sed 's/^{[[:space:]]*"\([a-z-]*\)".*/\1/' | tr '\n' ' '
}
