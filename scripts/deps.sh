#!/bin/sh
# The Debian packages pagemove needs. One list, two uses:
#   deps.sh [build|numa]   install the missing ones (make deps, test, demo);
#                          as root only, otherwise it says what is missing
#   deps.sh missing CC...  print the packages whose headers the compiler
#                          command CC... cannot find, nothing if none: the
#                          check with which make all and make install stop
#                          (they never install)
# PMV_BUILD_HEADERS (HEADER:PACKAGE ...) replaces the list of build headers,
# for the test of that check (make BUILD_DEPS=...).
set -e

# What the library, the CLI and the tests include, with the package that has it.
# The far tiers' stores (src/store*.c): lz4 and zstd compress, liburing drives
# the file tier's O_DIRECT I/O, xxhash checksums every stored page.
build_headers=${PMV_BUILD_HEADERS:-"numaif.h:libnuma-dev numa.h:libnuma-dev lz4.h:liblz4-dev
	zstd.h:libzstd-dev liburing.h:liburing-dev xxhash.h:libxxhash-dev"}
# What the test suite runs besides (t_version.sh: pkg-config --modversion;
# the real programs of t_run_*.sh under pagemove run; t_run.sh's static
# program needs libc6-dev's libc.a, and setpriv is util-linux's).
test_packages="pkg-config stress-ng python3 sqlite3 redis-server redis-tools libc6-dev util-linux"

packages_of() {
	for d in $build_headers; do echo "${d#*:}"; done | sort -u | tr '\n' ' '
}

if [ "${1:-}" = missing ]; then
	shift
	cc="$*"
	set -- ${cc:-cc}
	# no compiler at all: that is what is missing (cc and gcc are in gcc)
	if ! "$1" --version >/dev/null 2>&1; then
		case ${1##*/} in cc|gcc*) echo gcc ;; *) echo "${1##*/}" ;; esac
		exit 0
	fi
	out=""
	for d in $build_headers; do
		h=${d%%:*} p=${d#*:}
		printf '#include <%s>\n' "$h" | $cc -E -x c - >/dev/null 2>&1 && continue
		case " $out " in *" $p "*) ;; *) out="$out $p" ;; esac
	done
	echo $out
	exit 0
fi

want="$(packages_of) $test_packages"
case "${1:-build}" in
numa) want="$want qemu-system-x86 busybox-static cpio" ;;
esac
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "pagemove: missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "pagemove: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
	apt-get update >/dev/null
	apt-get install -y --no-install-recommends $missing >/dev/null
}
