#!/usr/bin/env bash
# The multi-node NUMA suite, as `make test-numa` (and `make test`) run it from
# the repository root:  sh tests/numa/run-suite.sh
#
#  1. builds the static tree (make -s STATIC=1 all; if that fails, because
#     tools/ does not build for instance, the library and the tests alone)
#     and compiles tests/numa/t_*.c statically into build-static/numa/;
#  2. boot 1, 2 NUMA nodes: every build-static/tests/t_* program with
#     PMV_TEST_NODES=2 (tier i on node i % 2, verify mode), every
#     tests/numa/t_* program, and each tests/t_*.sh script but benchmarks
#     with the guest paths of the CLI and cli_child (when both are built);
#  3. boot 2, 4 NUMA nodes (nodes 2 and 3 memory only): t_numa_tiers;
#  4. one closing line "N passed, N failed, N skipped" for both boots.
#
# Exit 0 when nothing failed (with CI=true: and nothing was skipped). When the
# guest's prerequisites (qemu, busybox-static, cpio, the kernel) cannot be
# had and CI is not true, it says why, counts one skip and exits 0.
#
# Environment: PMV_NUMA_TEST_TIMEOUT (per program, default 240 s),
# PMV_NUMA_BUDGET (whole suite, default 540 s), PMV_NUMA_BALANCING=1 to leave
# the guest kernel's automatic NUMA balancing on (see README.md), CC.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
cd "$SCRIPT_DIR/../.." || exit 1

B=build-static
OUT=$B/numa
CC=${CC:-gcc}
TEST_TIMEOUT=${PMV_NUMA_TEST_TIMEOUT:-240}
BUDGET=${PMV_NUMA_BUDGET:-540}
BOOT2_RESERVE=150        # seconds of the budget kept for boot 2
T_SUITE=$(date +%s)

pass=0 fail=0 skip=0
# Our own make runs: nothing from a calling make (SAN=1, -j, -n...) leaks in.
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES
log() { printf '[numa-suite] %s\n' "$*" >&2; }
is_ci() { [ "${CI:-}" = "true" ]; }
elapsed() { echo $(( $(date +%s) - T_SUITE )); }

finish() {
    echo "numa suite: wall clock $(elapsed)s"
    echo "$pass passed, $fail failed, $skip skipped"
    if [ "$fail" -gt 0 ]; then exit 1; fi
    if is_ci && [ "$skip" -gt 0 ]; then
        echo "CI=true: skipped tests count as failures" >&2
        exit 1
    fi
    exit 0
}

mkdir -p "$OUT" || { echo "cannot create $OUT"; fail=1; finish; }

# ------------------------------------------------------------------ build
BUILD_LOG=$OUT/build.log
log "building the static tree (make -s STATIC=1 all)"
if ! make -s STATIC=1 all >"$BUILD_LOG" 2>&1; then
    log "make STATIC=1 all failed; building the library and the tests alone (log: $BUILD_LOG)"
    grep -m 5 -E 'error|Error' "$BUILD_LOG" | sed 's/^/    /' >&2
    targets=()
    for s in tests/t_*.c; do
        [ -f "$s" ] || continue
        t=${s#tests/}; targets+=("$B/tests/${t%.c}")
    done
    [ -f tests/cli_child.c ] && targets+=("$B/tests/cli_child")
    make -s -k STATIC=1 "$B/libpagemove.a" "${targets[@]}" >>"$BUILD_LOG" 2>&1
fi

# A test whose program is not up to date with its sources did not build:
# it fails, and an older program of that name is not run.
declare -A NOT_BUILT=()
for s in tests/t_*.c; do
    [ -f "$s" ] || continue
    t=${s#tests/}; t=$B/tests/${t%.c}
    if ! make -q STATIC=1 "$t" >/dev/null 2>&1; then
        echo "FAIL ${t##*/} (did not build; see $BUILD_LOG)"
        fail=$((fail + 1))
        NOT_BUILT[$t]=1
    fi
done
LIB_OK=0
[ -f "$B/libpagemove.a" ] && make -q STATIC=1 "$B/libpagemove.a" >/dev/null 2>&1 && LIB_OK=1

# tests/numa/t_*.c: statically, against the static library when they use it.
CFLAGS_NUMA=(-O2 -g -std=gnu11 -Wall -Wextra -Werror -pthread -Iinclude -Itests)
if grep -q 'pmv_exchange_pages' include/pagemove.h &&
   ! grep -q 'define[[:space:]]*PMV_HAVE_EXCHANGE' include/pagemove.h; then
    CFLAGS_NUMA+=(-DPMV_HAVE_EXCHANGE)
fi
NUMA_PROGS=()
for s in tests/numa/t_*.c; do
    [ -f "$s" ] || continue
    name=$(basename "$s" .c)
    rm -f "$OUT/$name"
    if grep -qE '#include[[:space:]]*"(pagemove|harness)\.h"' "$s"; then
        if [ "$LIB_OK" = 0 ]; then
            echo "FAIL $name (not built: $B/libpagemove.a did not build)"
            fail=$((fail + 1)); continue
        fi
        cmd=("$CC" "${CFLAGS_NUMA[@]}" -static -o "$OUT/$name" "$s" "$B/libpagemove.a" \
             -lnuma -llz4 -lzstd -luring -lxxhash -pthread)	# the Makefile's LDLIBS
    else
        cmd=("$CC" "${CFLAGS_NUMA[@]}" -static -o "$OUT/$name" "$s" -pthread)
        grep -qE '#include[[:space:]]*<numa(if)?\.h>' "$s" && cmd+=(-lnuma)
    fi
    # static glibc warns about getaddrinfo in libnuma; that is harmless
    if ! "${cmd[@]}" >"$OUT/$name.log" 2>&1; then
        echo "FAIL $name (does not compile: ${cmd[*]})"
        grep -v 'getaddrinfo\|affinity_ip' "$OUT/$name.log" | head -n 30 | sed 's/^/    /'
        fail=$((fail + 1)); continue
    fi
    NUMA_PROGS+=("$OUT/$name")
done

# ------------------------------------------------------------ the programs
BOOT1=()
for t in "$B"/tests/t_*; do
    [ -f "$t" ] && [ -x "$t" ] || continue
    case "$t" in *.sh|*.d|*.o|*.log) continue ;; esac
    [ -z "${NOT_BUILT[$t]:-}" ] || continue
    case "${t##*/}" in
        t_store|t_far)
            # the far tiers' stores hold no pages on nodes (and the guest's
            # busybox losetup cannot make the block device one part needs);
            # t_far's 97 sub-tests, much of it store I/O, do not fit the
            # guest's budget under TCG
            log "not running ${t##*/} in the guest (host stages run it)"; continue ;;
        t_defrag)
            # pmv_collapse needs CONFIG_PT_RECLAIM, which the guest's Debian
            # 6.12 kernel lacks (-EOPNOTSUPP, as documented); the host
            # stages (6.18) run it
            log "not running t_defrag in the guest (no PT_RECLAIM there; host stages run it)"; continue ;;
        t_mprotect|t_madvise|t_unmap|t_pins|t_rlimit)
            # the program's own calls on managed memory, not placement on
            # nodes: they run in both host stages; under TCG (some 20x
            # slower) their fixed rounds do not fit the guest's budget
            # (t_madvise's test_dontneed_reads_zeros_* alone passed, all 12,
            # in 379 s of guest time on kernel 6.12: run it by hand with
            # tests/numa/run.sh --env PMV_TEST_ONLY=...).
            log "not running ${t##*/} in the guest (host stages run it)"; continue ;;
        t_inject|t_signals)
            # error paths and signal storms: nothing in them depends on
            # nodes, and under TCG they took 112 s of the guest's 363,
            # which make test's 20 minutes cannot spare
            log "not running ${t##*/} in the guest (node-blind; host stages run it)"; continue ;;
    esac
    BOOT1+=("$t")
done
BOOT1+=("${NUMA_PROGS[@]}")
FILES=()
for s in tests/t_*.sh; do
    [ -f "$s" ] || continue
    case "${s##*/}" in
        *bench*)   # figures from an emulated CPU mean nothing; tests/run.sh runs it
            log "not running $s in the guest (a benchmark)"; continue ;;
        t_version.sh|t_abi.sh|t_build.sh|t_man.sh|t_cli_opts.sh|t_demo.sh)
            # the build tree, the sources and the CLI, not the kernel (t_demo
            # also needs a guest where an unprivileged user has no userfaultfd)
            log "not running $s in the guest (a check of the build; tests/run.sh runs it)"; continue ;;
        t_run*.sh)
            # pagemove run: the preload is a shared library, which the static
            # tree cannot build, and the real programs (redis, python3, ...)
            # are not in the guest's busybox image
            log "not running $s in the guest (tests/run.sh runs it)"; continue ;;
    esac
    if [ -x "$B/pagemove" ] && make -q STATIC=1 "$B/pagemove" >/dev/null 2>&1 &&
       [ -x "$B/tests/cli_child" ]; then
        BOOT1+=("$s /t/pagemove /t/cli_child")
        FILES=(--file "$B/pagemove" --file "$B/tests/cli_child")
    else
        log "not running $s: $B/pagemove or $B/tests/cli_child is not built"
    fi
done
# pagemove bench --kernel, for the record (not a timing test)
if [ -x "$B/pagemove" ] && make -q STATIC=1 "$B/pagemove" >/dev/null 2>&1; then
    BOOT1+=("tests/numa/t_bench_kernel.sh /t/pagemove")
    FILES=(--file "$B/pagemove" --file "$B/tests/cli_child")
fi
BOOT2=()
for p in "${NUMA_PROGS[@]}"; do
    [ "${p##*/}" = t_numa_tiers ] && BOOT2+=("$p")
done

# Automatic NUMA balancing (kernel.numa_balancing) stays on, as on a real
# NUMA machine: it would migrate managed pages towards the CPUs that touch
# them, and pagemove opts its regions out with an explicit memory policy;
# the placement and verify checks prove that it does. PMV_NUMA_BALANCING=0
# turns it off, to tell a balancing problem from another.
GUEST_OPTS=(--progress)
if [ "${PMV_NUMA_BALANCING:-1}" = 0 ]; then
    GUEST_OPTS+=(--sysctl kernel.numa_balancing=0)
fi

# run_boot N NODES TIMEOUT [run.sh args...]: one guest, its results added up.
run_boot() {
    local n=$1 nodes=$2 to=$3; shift 3
    local out err rc line p f s tt=$TEST_TIMEOUT
    [ "$tt" -le "$to" ] || tt=$to
    out=$(mktemp) err=$(mktemp)
    echo "== boot $n: $nodes NUMA nodes, guest timeout ${to}s, per-program timeout ${tt}s"
    # stdout to $out; stderr (progress) shown as it comes and kept in $err
    bash tests/numa/run.sh --nodes "$nodes" --timeout "$to" --test-timeout "$tt" \
        "${GUEST_OPTS[@]}" "$@" \
        2>&1 >"$out" | tee "$err" >&2
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped$' "$out" | tail -n 1)
    # Only the suite's last line may read "N passed, N failed": reword the
    # per-boot line, and the like in any program output shown.
    grep -vxE '[0-9]+ passed, [0-9]+ failed, [0-9]+ skipped' "$out" |
        sed -E 's/([0-9]+) passed, ([0-9]+) failed/\1 passed; \2 failed/g'
    if [ "$rc" = 77 ] && ! is_ci; then
        echo "boot $n: the NUMA guest is not available (run.sh exit 77):"
        grep '^\[numa\]' "$err" | tail -n 3 | sed 's/^/    /'
        rm -f "$out" "$err"
        return 77
    fi
    if [ -z "$line" ]; then
        echo "boot $n: run.sh failed (exit $rc) and gave no result:"
        tail -n 5 "$err" | sed 's/^/    /'
        fail=$((fail + 1))
    else
        read -r p _ f _ s _ <<<"${line//,/}"
        echo "boot $n results: passed=$p failed=$f skipped=$s (exit $rc, $(elapsed)s into the suite)"
        pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    fi
    rm -f "$out" "$err"
    return 0
}

left=$((BUDGET - $(elapsed)))
to1=$((left - BOOT2_RESERVE)); [ "$to1" -le 420 ] || to1=420
[ "$to1" -ge 60 ] || to1=60
if [ ${#BOOT1[@]} -gt 0 ]; then
    run_boot 1 2 "$to1" --env PMV_TEST_NODES=2 "${FILES[@]}" "${BOOT1[@]}"
    if [ $? = 77 ]; then
        skip=$((skip + 1))
        finish
    fi
else
    echo "boot 1: nothing to run"
fi

left=$((BUDGET - $(elapsed)))
to2=$left; [ "$to2" -le 180 ] || to2=180
[ "$to2" -ge 60 ] || to2=60
if [ ${#BOOT2[@]} -gt 0 ]; then
    run_boot 2 4 "$to2" "${BOOT2[@]}"
    if [ $? = 77 ]; then
        skip=$((skip + 1))
    fi
else
    echo "boot 2: skipped, t_numa_tiers was not built"
fi
finish
