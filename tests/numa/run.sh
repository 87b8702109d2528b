#!/usr/bin/env bash
# Run statically linked test programs inside a multi-node NUMA qemu guest
# (TCG software emulation; no KVM needed).  See tests/numa/README.md.
#
# Usage: tests/numa/run.sh [--nodes N] [--cache DIR] [--timeout SEC]
#                          [--test-timeout SEC] [--mem-per-node MIB]
#                          [--env VAR=VALUE]... [--file PATH]...
#                          [--sysctl NAME=VALUE]...
#                          [--refresh-kernel] [--progress] [-v|--verbose]
#                          PROG ['PROG ARGS'...]
#
# A PROG ending in .sh is a shell script, run with the guest's busybox sh.
# --env exports VAR=VALUE to every program; --file copies PATH into /t/;
# --sysctl sets /proc/sys/NAME (dots for slashes) before the first program.
#
# Exit: 0 no failures (and, with CI=true, no skips); 1 failures;
#       77 prerequisites missing and not installable (not root, not CI).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd)

NODES=2
CACHE="$REPO_ROOT/build/numa-cache"
TIMEOUT=600
TEST_TIMEOUT=""          # per program inside the guest; default: min(300, TIMEOUT)
MEM_PER_NODE=1024        # MiB
REFRESH_KERNEL=0
VERBOSE=0
PROGRESS=0
ENVS=()                  # VAR=VALUE, exported in the guest
FILES=()                 # extra files copied into /t/
SYSCTLS=()               # NAME=VALUE, written to /proc/sys in the guest
SUITE=bookworm-backports
MIN_KVER=6.8
PROGS=()

usage() {
    sed -n '5,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}
log()  { printf '[numa] %s\n' "$*" >&2; }
die()  { printf '[numa] error: %s\n' "$*" >&2; exit 1; }
is_ci() { [ "${CI:-}" = "true" ]; }
# A prerequisite is missing and cannot be had: skip (77), or fail under CI.
cannot() {
    printf '[numa] %s\n' "$*" >&2
    if is_ci; then
        printf '[numa] CI=true: treating the missing prerequisite as a failure\n' >&2
        echo "0 passed, 1 failed, 0 skipped"
        exit 1
    fi
    echo "0 passed, 0 failed, ${#PROGS[@]} skipped"
    exit 77
}
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
    case "$1" in
        --nodes)        NODES=${2:?--nodes needs a value}; shift 2 ;;
        --nodes=*)      NODES=${1#*=}; shift ;;
        --cache)        CACHE=${2:?--cache needs a value}; shift 2 ;;
        --cache=*)      CACHE=${1#*=}; shift ;;
        --timeout)      TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
        --timeout=*)    TIMEOUT=${1#*=}; shift ;;
        --test-timeout) TEST_TIMEOUT=${2:?--test-timeout needs a value}; shift 2 ;;
        --test-timeout=*) TEST_TIMEOUT=${1#*=}; shift ;;
        --mem-per-node) MEM_PER_NODE=${2:?--mem-per-node needs a value}; shift 2 ;;
        --mem-per-node=*) MEM_PER_NODE=${1#*=}; shift ;;
        --env)          ENVS+=("${2?--env needs VAR=VALUE}"); shift 2 ;;
        --env=*)        ENVS+=("${1#*=}"); shift ;;
        --file)         FILES+=("${2:?--file needs a path}"); shift 2 ;;
        --file=*)       FILES+=("${1#*=}"); shift ;;
        --sysctl)       SYSCTLS+=("${2:?--sysctl needs NAME=VALUE}"); shift 2 ;;
        --sysctl=*)     SYSCTLS+=("${1#*=}"); shift ;;
        --refresh-kernel) REFRESH_KERNEL=1; shift ;;
        --progress)     PROGRESS=1; shift ;;
        -v|--verbose)   VERBOSE=1; shift ;;
        -h|--help)      usage 0 ;;
        --)             shift; PROGS+=("$@"); break ;;
        -*)             printf 'unknown option: %s\n' "$1" >&2; usage 2 ;;
        *)              PROGS+=("$1"); shift ;;
    esac
done

[ ${#PROGS[@]} -gt 0 ] || { echo "no test program given" >&2; usage 2; }
is_uint "$NODES" && [ "$NODES" -ge 2 ] && [ "$NODES" -le 4 ] \
    || die "--nodes must be 2, 3 or 4 (got '$NODES')"
is_uint "$TIMEOUT" && [ "$TIMEOUT" -gt 0 ] || die "--timeout must be a positive integer"
if [ -z "$TEST_TIMEOUT" ]; then
    TEST_TIMEOUT=300; [ "$TIMEOUT" -ge 300 ] || TEST_TIMEOUT=$TIMEOUT
fi
is_uint "$TEST_TIMEOUT" && [ "$TEST_TIMEOUT" -gt 0 ] || die "--test-timeout must be a positive integer"
[ "$TEST_TIMEOUT" -le "$TIMEOUT" ] || TEST_TIMEOUT=$TIMEOUT
is_uint "$MEM_PER_NODE" && [ "$MEM_PER_NODE" -ge 256 ] || die "--mem-per-node must be >= 256 (MiB)"
case "$CACHE" in /*) ;; *) CACHE="$PWD/$CACHE" ;; esac

# ---------------------------------------------------------------- programs
is_dynamic() {   # an ELF file with a program interpreter (needs a libc)
    command -v readelf >/dev/null 2>&1 && readelf -l "$1" 2>/dev/null | grep -q 'INTERP'
}
declare -A SEEN_BIN=()   # name in the guest's /t/ -> real path on the host

# --env VAR=VALUE: exported to every program in the guest.
for e in "${ENVS[@]}"; do
    [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants VAR=VALUE (got '$e')"
done

# --sysctl NAME=VALUE: kernel.numa_balancing=0 writes /proc/sys/kernel/numa_balancing.
for e in "${SYSCTLS[@]}"; do
    [[ "$e" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*= ]] && [[ "${e%%=*}" != *..* ]] \
        || die "--sysctl wants NAME=VALUE, as kernel.numa_balancing=0 (got '$e')"
done

# --file PATH: copied as /t/<basename>, under that exact name.
F_PATH=(); F_BIN=()
for f in "${FILES[@]}"; do
    [ -f "$f" ] || die "--file not found (or not a regular file): '$f'"
    b=$(basename -- "$f")
    [[ "$b" =~ ^[A-Za-z0-9._+-]+$ ]] || die "--file '$f': its name may only have A-Z a-z 0-9 . _ + -"
    if [ -x "$f" ] && is_dynamic "$f"; then
        die "--file '$f' is dynamically linked; the guest has no libc: build it with -static"
    fi
    r=$(readlink -f -- "$f")
    if [ -n "${SEEN_BIN[$b]:-}" ]; then
        [ "${SEEN_BIN[$b]}" = "$r" ] && continue
        die "--file '$f': another file is already named /t/$b in the guest"
    fi
    SEEN_BIN[$b]=$r
    F_PATH+=("$f"); F_BIN+=("$b")
done

# Each PROG is either a path, or "path args..." in one string. A path
# ending in .sh is a shell script, run with busybox sh (no static check).
T_PATH=(); T_ARGS=(); T_NAME=(); T_BIN=(); T_SH=()
for spec in "${PROGS[@]}"; do
    if [ -f "$spec" ]; then
        p=$spec; a=""
    else
        read -r p a <<<"$spec" || true
    fi
    [ -n "$p" ] && [ -f "$p" ] || die "test program not found: '$p'"
    case "$p" in
        *.sh) sh=1 ;;
        *)    sh=0
              [ -x "$p" ] || die "test program is not executable: '$p'"
              if is_dynamic "$p"; then
                  die "'$p' is dynamically linked; the guest has no libc: build it with -static"
              fi ;;
    esac
    b=$(basename -- "$p"); b=${b//[^A-Za-z0-9._+-]/_}
    bin=$b; i=1
    while [ -n "${SEEN_BIN[$bin]:-}" ] && [ "${SEEN_BIN[$bin]}" != "$(readlink -f -- "$p")" ]; do
        bin="$b.$i"; i=$((i + 1))
    done
    SEEN_BIN[$bin]=$(readlink -f -- "$p")
    T_PATH+=("$p"); T_ARGS+=("$a"); T_BIN+=("$bin"); T_SH+=("$sh")
    if [ -n "$a" ]; then T_NAME+=("$b ${a//[$'\n\r\t']/ }"); else T_NAME+=("$b"); fi
done
NT=${#T_PATH[@]}

# ------------------------------------------------------------ prerequisites
have_busybox_static() {
    [ -x /bin/busybox ] || return 1
    if command -v readelf >/dev/null 2>&1; then
        ! readelf -l /bin/busybox 2>/dev/null | grep -q INTERP
    else
        [ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" = "install ok installed" ]
    fi
}
missing=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
have_busybox_static || missing+=(busybox-static)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
command -v timeout >/dev/null 2>&1 || cannot "coreutils 'timeout' not found"
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        cannot "missing: ${missing[*]}; not root, so cannot install them (as root: apt-get install -y --no-install-recommends qemu-system-x86 busybox-static cpio)"
    fi
    command -v apt-get >/dev/null 2>&1 || cannot "missing: ${missing[*]}; and no apt-get to install them"
    log "installing: qemu-system-x86 busybox-static cpio (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    APT_LOCK=(-o DPkg::Lock::Timeout=300)
    if ! apt-cache show qemu-system-x86 busybox-static cpio >/dev/null 2>&1; then
        apt-get "${APT_LOCK[@]}" -q update >&2 || cannot "apt-get update failed"
    fi
    apt-get "${APT_LOCK[@]}" -q install -y --no-install-recommends \
        qemu-system-x86 busybox-static cpio >&2 || cannot "apt-get install failed"
    hash -r
    command -v qemu-system-x86_64 >/dev/null 2>&1 || cannot "qemu-system-x86_64 still missing after install"
    have_busybox_static || cannot "static /bin/busybox still missing after install"
    command -v cpio >/dev/null 2>&1 || cannot "cpio still missing after install"
fi

mkdir -p "$CACHE" || die "cannot create cache dir $CACHE"

# ------------------------------------------------------------------ kernel
# The kernel comes from Debian's $SUITE with a private apt configuration
# (sources file, lists, cache, empty dpkg status): the system's apt
# configuration and state are never touched.
KDIR="$CACHE/kernel"
APTDIR="$CACHE/apt"

# The mirror: the first non-security URI in the system's own apt sources.
find_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk '
            function flush() { if (uri != "" && suites !~ /-security/ && types ~ /(^|[ \t])deb([ \t]|$)/ && !done) { print uri; done = 1 } uri = ""; suites = ""; types = "deb" }
            BEGIN { types = "deb" }
            /^[ \t]*$/ { flush(); next }
            /^[ \t]*#/ { next }
            tolower($1) == "uris:"   { uri = $2 }
            tolower($1) == "suites:" { $1 = ""; suites = $0 }
            tolower($1) == "types:"  { $1 = ""; types = $0 }
            END { flush() }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
            awk '$1 == "deb" && $3 !~ /-security/ && $2 ~ /^(https?|ftp|file):/ { print $2 }'
    done
}

apt_priv() {   # apt-get / apt-cache with the private configuration
    local tool=$1; shift
    "$tool" -o Dir::Etc::SourceList="$APTDIR/sources.list" \
        -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
        -o Dir::State::Lists="$APTDIR/lists" \
        -o Dir::State::status="$APTDIR/status" \
        -o Dir::Cache="$APTDIR/cache" \
        -o Dir::Cache::archives="$APTDIR/cache/archives" \
        -o Acquire::Languages=none \
        -o Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false \
        -o Acquire::IndexTargets::deb::CNF::DefaultEnabled=false \
        -o APT::Get::List-Cleanup=false \
        -o APT::Sandbox::User="$(id -un)" \
        "$@"
}

kver_ok() {   # "6.12.27+bpo" >= MIN_KVER ?
    local v=${1%%[!0-9.]*}
    [ -n "$v" ] && [ "$(printf '%s\n%s\n' "$MIN_KVER" "$v" | sort -V | head -n1)" = "$MIN_KVER" ]
}

fetch_kernel() {
    local mirror pkg deb ver
    mirror=$(find_mirror | head -n1)
    [ -n "$mirror" ] || cannot "no Debian mirror found in /etc/apt/sources.list{,.d} to fetch a $SUITE kernel from"
    command -v apt-get >/dev/null 2>&1 || cannot "apt-get is needed to fetch the guest kernel"
    mkdir -p "$APTDIR/lists/partial" "$APTDIR/cache/archives/partial" "$KDIR"
    : > "$APTDIR/status"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local signed=""
    [ -f "$keyring" ] && signed="[signed-by=$keyring] "
    printf 'deb %s%s %s main\n' "$signed" "$mirror" "$SUITE" > "$APTDIR/sources.list"
    log "fetching the $SUITE package lists (private apt configuration in $APTDIR)"
    apt_priv apt-get -q update >"$APTDIR/update.log" 2>&1 || {
        tail -n 20 "$APTDIR/update.log" >&2
        cannot "apt-get update of $SUITE failed (mirror $mirror)"
    }
    # Resolve the meta package linux-image-amd64 to its newest concrete image.
    pkg=$(apt_priv apt-cache show linux-image-amd64 2>/dev/null | awk '
            /^Version:/ { v = $2 }
            /^Depends:/ { n = split(substr($0, 10), d, ",");
                          for (i = 1; i <= n; i++) { split(d[i], w, " ");
                              if (w[1] ~ /^linux-image-[0-9].*-amd64$/) print v, w[1] } }' |
          sort -V -k1,1 | tail -n1 | awk '{print $2}')
    if [ -z "$pkg" ]; then   # fallback: the newest versioned image package
        pkg=$(apt_priv apt-cache pkgnames linux-image- 2>/dev/null |
              grep -E '^linux-image-[0-9]+\.[0-9]+[^ ]*-amd64$' | sort -V | tail -n1 || true)
    fi
    [ -n "$pkg" ] || cannot "no linux-image-*-amd64 package found in $SUITE"
    ver=${pkg#linux-image-}; ver=${ver%-amd64}
    kver_ok "$ver" || cannot "newest $SUITE kernel is $ver, need >= $MIN_KVER"
    log "downloading $pkg"
    ( cd "$KDIR" && apt_priv apt-get -q download "$pkg" ) >"$APTDIR/download.log" 2>&1 || {
        tail -n 20 "$APTDIR/download.log" >&2
        cannot "apt-get download $pkg failed"
    }
    deb=$(ls -t "$KDIR/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || cannot "downloaded .deb for $pkg not found in $KDIR"
    echo "$pkg" > "$KDIR/current.tmp" && mv "$KDIR/current.tmp" "$KDIR/current"
    # remove older kernels' .debs and extractions
    local f
    for f in "$KDIR"/linux-image-*.deb; do
        [ "$f" = "$deb" ] || rm -f -- "$f"
    done
    for f in "$KDIR"/linux-image-*/; do
        [ "${f%/}" = "$KDIR/$pkg" ] || rm -rf -- "$f"
    done
}

extract_kernel() {   # $1 = package name; produces $KDIR/$1/vmlinuz
    local pkg=$1 deb tmp v
    deb=$(ls -t "$KDIR/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
    [ -n "$deb" ] || return 1
    tmp="$KDIR/$pkg.tmp"
    rm -rf -- "$tmp"; mkdir -p "$tmp"
    # only the kernel image: the modules are not needed (and are ~400 MB)
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/vmlinuz-*' \
        || { rm -rf -- "$tmp"; return 1; }
    v=$(ls "$tmp"/boot/vmlinuz-* 2>/dev/null | head -n1 || true)
    [ -n "$v" ] || { rm -rf -- "$tmp"; return 1; }
    mkdir -p "$KDIR/$pkg"
    mv -f -- "$v" "$KDIR/$pkg/vmlinuz"
    basename "$v" | sed 's/^vmlinuz-//' > "$KDIR/$pkg/release"
    rm -rf -- "$tmp"
}

get_kernel() {
    local pkg=""
    if [ "$REFRESH_KERNEL" = 0 ] && [ -f "$KDIR/current" ]; then
        pkg=$(cat "$KDIR/current")
        if [ ! -f "$KDIR/$pkg/vmlinuz" ]; then
            extract_kernel "$pkg" || pkg=""
        fi
        [ -z "$pkg" ] || { KERNEL_SRC="cached"; }
    fi
    if [ -z "$pkg" ]; then
        fetch_kernel
        pkg=$(cat "$KDIR/current")
        extract_kernel "$pkg" || cannot "could not extract vmlinuz from the $pkg .deb"
        KERNEL_SRC="downloaded"
    fi
    VMLINUZ="$KDIR/$pkg/vmlinuz"
    KPKG=$pkg
    KREL=$(cat "$KDIR/$pkg/release" 2>/dev/null || echo "$pkg")
}

KERNEL_SRC=""
if [ -n "${PAGEMOVE_NUMA_KERNEL:-}" ]; then
    [ -f "$PAGEMOVE_NUMA_KERNEL" ] || die "PAGEMOVE_NUMA_KERNEL=$PAGEMOVE_NUMA_KERNEL not found"
    VMLINUZ=$PAGEMOVE_NUMA_KERNEL; KPKG="(PAGEMOVE_NUMA_KERNEL)"; KREL=$(basename "$VMLINUZ"); KERNEL_SRC="given"
else
    mkdir -p "$KDIR"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$CACHE/kernel.lock"
        flock 9
        get_kernel
        flock -u 9; exec 9>&-
    else
        get_kernel
    fi
fi
log "kernel: $KPKG ($KREL, $KERNEL_SRC)"

# --------------------------------------------------------------- initramfs
WORK=$(mktemp -d "$CACHE/run.XXXXXX")
QPID=""
cleanup() {
    if [ -n "$QPID" ]; then kill "$QPID" 2>/dev/null || true; wait "$QPID" 2>/dev/null || true; fi
    rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

sq() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,t,proc,sys,dev,tmp,run}
cp /bin/busybox "$ROOT/bin/busybox"
for ((i = 0; i < ${#F_PATH[@]}; i++)); do
    cp -- "${F_PATH[$i]}" "$ROOT/t/${F_BIN[$i]}"
    if [ -x "${F_PATH[$i]}" ]; then chmod 0755 "$ROOT/t/${F_BIN[$i]}"; else chmod 0644 "$ROOT/t/${F_BIN[$i]}"; fi
done
for ((i = 0; i < NT; i++)); do
    cp -- "${T_PATH[$i]}" "$ROOT/t/${T_BIN[$i]}"
    chmod 0755 "$ROOT/t/${T_BIN[$i]}"
done

{
    cat <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/t
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null || true
[ -c /dev/console ] && exec </dev/console >/dev/console 2>&1
mount -t tmpfs tmpfs /tmp 2>/dev/null || true
echo 1 > /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null || true
echo madvise > /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || true
echo 4 > /proc/sys/kernel/printk 2>/dev/null || true
echo
echo "@@KERNEL $(uname -r)"
n=0
for d in /sys/devices/system/node/node[0-9]*; do
    [ -d "$d" ] || continue
    n=$((n + 1))
    echo "@@NODEINFO ${d##*/} cpus=$(cat $d/cpulist) $(grep MemTotal $d/meminfo | sed 's/.*MemTotal: *//')"
done
echo "@@NODES $n"
echo "@@THP $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"
HAVE_TIMEOUT=
if timeout -s KILL 5 true >/dev/null 2>&1; then HAVE_TIMEOUT=1; fi
cd /tmp
uptime_cs() {   # /proc/uptime in centiseconds
    read -r up rest < /proc/uptime
    echo "${up%.*}${up#*.}"
}
run() {   # run NAME TIMEOUT BIN [ARGS...]
    name=$1; to=$2; shift 2
    echo "@@BEGIN $name"
    t0=$(uptime_cs)
    if [ -n "$HAVE_TIMEOUT" ]; then
        timeout -s KILL "$to" "$@" </dev/null
    else
        "$@" </dev/null
    fi
    rc=$?
    t1=$(uptime_cs)
    # whatever the test left running (a script's children) goes now;
    # kill -1 from pid 1 spares only pid 1 itself
    kill -9 -1 2>/dev/null
    echo "@@ELAPSED $((t1 - t0))"
    echo "@@RESULT $name $rc"
}
EOF
    for e in "${SYSCTLS[@]}"; do
        k=${e%%=*}; f=/proc/sys/${k//.//}
        printf 'if echo %s > %s; then echo "@@SYSCTL %s=$(cat %s)"; else echo "@@SYSCTLFAIL %s"; fi\n' \
            "$(sq "${e#*=}")" "$f" "$k" "$f" "$k"
    done
    for e in "${ENVS[@]}"; do
        printf 'export %s=%s\n' "${e%%=*}" "$(sq "${e#*=}")"
    done
    for ((i = 0; i < NT; i++)); do
        if [ "${T_SH[$i]}" = 1 ]; then
            printf 'run %s %s /bin/busybox sh /t/%s %s\n' "$(sq "${T_NAME[$i]}")" "$TEST_TIMEOUT" "${T_BIN[$i]}" "${T_ARGS[$i]}"
        else
            printf 'run %s %s /t/%s %s\n' "$(sq "${T_NAME[$i]}")" "$TEST_TIMEOUT" "${T_BIN[$i]}" "${T_ARGS[$i]}"
        fi
    done
    cat <<'EOF'
echo "@@DONE"
sync
poweroff -f
echo o > /proc/sysrq-trigger
EOF
} > "$ROOT/init"
chmod 0755 "$ROOT/init"

INITRD="$WORK/initrd.gz"
(cd "$ROOT" && find . -print0 | cpio --null -o -H newc --owner=0:0 --quiet | gzip -1) > "$INITRD"

# -------------------------------------------------------------------- qemu
QEMU_ARGS=(-accel "tcg,thread=multi" -cpu max -smp 2 -m "$((NODES * MEM_PER_NODE))M")
for ((n = 0; n < NODES; n++)); do
    QEMU_ARGS+=(-object "memory-backend-ram,id=m$n,size=${MEM_PER_NODE}M")
    if [ "$n" -lt 2 ]; then
        QEMU_ARGS+=(-numa "node,nodeid=$n,cpus=$n,memdev=m$n")
    else
        QEMU_ARGS+=(-numa "node,nodeid=$n,memdev=m$n")   # memory only, like CXL
    fi
done
# tsc=reliable: no clocksource watchdog. Under a loaded multi-threaded TCG
# it once judged the TSC unstable and switched clocksources, which patches
# kernel text through int3 on a running CPU; the guest oopsed in
# sched_clock_cpu (int3) and the rest of the suite had no result.
QEMU_ARGS+=(-kernel "$VMLINUZ" -initrd "$INITRD"
            -append "console=ttyS0 quiet panic=-1 tsc=reliable"
            -nographic -no-reboot -nic none)

mkdir -p "$CACHE/logs"
SERIAL_LOG="$CACHE/logs/serial-$(date +%Y%m%d-%H%M%S)-$$.log"
ln -sfn "$(basename "$SERIAL_LOG")" "$CACHE/logs/last-serial.log"
{ ls -t "$CACHE"/logs/serial-*.log 2>/dev/null || true; } | tail -n +21 | xargs -r rm -f --   # keep 20

log "booting guest: $NODES NUMA nodes, $((NODES * MEM_PER_NODE)) MiB, $NT program(s), timeout ${TIMEOUT}s; serial log $SERIAL_LOG"
T0=$(date +%s.%N)
: > "$SERIAL_LOG"   # exists before -v/--progress start to follow it
set +e
# qemu runs in the background so that an interrupted run (Ctrl-C, a CI
# time-out) stops it too; `timeout` passes the TERM on to qemu.
timeout -k 10 "$TIMEOUT" qemu-system-x86_64 "${QEMU_ARGS[@]}" </dev/null >"$SERIAL_LOG" 2>&1 &
QPID=$!
TPID=""
if [ "$VERBOSE" = 1 ]; then
    tail -n +1 -f --pid="$QPID" "$SERIAL_LOG" | sed -u 's/\r$//; s/^/  | /' >&2 &
    TPID=$!
elif [ "$PROGRESS" = 1 ]; then
    # one line on stderr as each program starts and ends
    tail -n +1 -f --pid="$QPID" "$SERIAL_LOG" | {
        el=""
        while IFS= read -r line; do
            line=${line%$'\r'}
            case "$line" in
                @@BEGIN\ *)   printf '[numa]   %s ...\n' "${line#@@BEGIN }" >&2 ;;
                @@ELAPSED\ *) el=${line#@@ELAPSED } ;;
                @@RESULT\ *)  line=${line#@@RESULT }
                              is_uint "$el" && el="$((el / 100)).$((el % 100 / 10))s" || el="?"
                              printf '[numa]   %s: exit %s (%s)\n' "${line% *}" "${line##* }" "$el" >&2
                              el="" ;;
            esac
        done
    } &
    TPID=$!
fi
wait "$QPID"
QRC=$?
QPID=""
[ -z "$TPID" ] || wait "$TPID"
set -e
T1=$(date +%s.%N)
ELAPSED=$(awk -v a="$T0" -v b="$T1" 'BEGIN { printf "%.1f", b - a }')

# ----------------------------------------------------------------- results
CLEAN="$WORK/serial.txt"
# drop CRs and terminal escape sequences (SeaBIOS / console resets)
sed -e 's/\r//g' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1b[c78]//g' "$SERIAL_LOG" > "$CLEAN"

GKERNEL=$(sed -n 's/.*@@KERNEL //p' "$CLEAN" | head -n1)
GNODES=$(sed -n 's/^@@NODES //p' "$CLEAN" | head -n1)
DONE=0; grep -q '^@@DONE' "$CLEAN" && DONE=1

if [ -n "$GKERNEL" ]; then
    echo "guest kernel ${GKERNEL}; ${GNODES:-?} NUMA nodes (guest run ${ELAPSED}s)"
    [ "$VERBOSE" = 1 ] && sed -n 's/^@@NODEINFO /  /p; s/^@@THP /  THP: /p; s/^@@SYSCTL /  sysctl /p' "$CLEAN"
    sed -n 's/^@@SYSCTLFAIL \(.*\)/warning: --sysctl \1: could not be set in the guest/p' "$CLEAN"
    if [ -n "$GNODES" ] && [ "$GNODES" != "$NODES" ]; then
        echo "warning: asked for $NODES NUMA nodes, the guest sees $GNODES"
    fi
else
    echo "guest did not boot (qemu exit $QRC after ${ELAPSED}s; kernel $KREL)"
fi

# Output of test i: the lines between its @@BEGIN and @@RESULT (or end).
test_output() {
    awk -v k="$1" '
        /^@@BEGIN / { cur++; inside = (cur == k); next }
        /^@@RESULT / { if (inside) exit; next }
        /^@@/ { next }
        inside { print }' "$CLEAN"
}

pass=0; fail=0; skip=0
mapfile -t RESULTS < <(sed -n 's/^@@RESULT //p' "$CLEAN")
mapfile -t T_ELAPSED < <(sed -n 's/^@@ELAPSED //p' "$CLEAN")
secs() {   # guest run time of test i, as "12.3s", or "" if unknown
    local cs=${T_ELAPSED[$1]:-}
    if is_uint "$cs"; then printf '%d.%ds' $((cs / 100)) $((cs % 100 / 10)); fi
}
for ((i = 0; i < NT; i++)); do
    name=${T_NAME[$i]}
    if [ $i -lt ${#RESULTS[@]} ]; then
        r=${RESULTS[$i]}
        rc=${r##* }; rname=${r% *}
        if [ "$rname" != "$name" ] || ! is_uint "$rc"; then
            echo "FAIL $name (garbled result line: '$r')"; fail=$((fail + 1)); continue
        fi
        t=$(secs "$i" || true)
        case "$rc" in
            0)  echo "PASS $name${t:+ ($t)}"; pass=$((pass + 1))
                [ "$VERBOSE" = 1 ] && test_output $((i + 1)) | sed 's/^/    /' ;;
            77) echo "SKIP $name${t:+ ($t)}"; skip=$((skip + 1))
                test_output $((i + 1)) | tail -n 5 | sed 's/^/    /' ;;
            *)  why="exit $rc"
                [ "$rc" = 137 ] && why="killed (exit 137: per-test timeout ${TEST_TIMEOUT}s or SIGKILL)"
                [ "$rc" -gt 128 ] && [ "$rc" != 137 ] && why="exit $rc (signal $((rc - 128)))"
                echo "FAIL $name ($why${t:+, $t})"; fail=$((fail + 1))
                test_output $((i + 1)) | tail -n 50 | sed 's/^/    /' ;;
        esac
    else
        echo "FAIL $name (no result: the guest stopped before it finished)"
        fail=$((fail + 1))
        if grep -qxF "@@BEGIN $name" "$CLEAN"; then
            test_output $((i + 1)) | tail -n 30 | sed 's/^/    /'
        fi
    fi
done

if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
    echo "guest timed out after ${TIMEOUT}s (qemu killed)"
fi
if [ "$DONE" = 0 ] || { [ "$QRC" != 0 ] && [ ${#RESULTS[@]} -lt "$NT" ]; }; then
    if [ -z "$GKERNEL" ] || [ ${#RESULTS[@]} -lt "$NT" ]; then
        echo "guest failure (qemu exit $QRC); last lines of $SERIAL_LOG:"
        tail -n 40 "$CLEAN" | sed 's/^/  | /'
    fi
fi
if [ "$DONE" = 1 ] && [ "$QRC" != 0 ]; then
    echo "warning: all tests reported but qemu exited $QRC (poweroff failed?)"
fi

echo "$pass passed, $fail failed, $skip skipped"
if [ "$fail" -gt 0 ]; then exit 1; fi
if is_ci && [ "$skip" -gt 0 ]; then
    echo "CI=true: skipped tests count as failures" >&2
    exit 1
fi
exit 0
