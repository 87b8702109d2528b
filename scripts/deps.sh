#!/bin/sh
# Install the Debian packages pagemove needs, if missing. Usage: deps.sh [build|numa]
# As root it installs; otherwise it says what is missing and fails.
set -e
want="libnuma-dev"
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
