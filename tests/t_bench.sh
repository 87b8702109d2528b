#!/bin/sh
# Smoke test of `pagemove bench --quick --json`, `pagemove bench faults
# --quick --json` and `pagemove bench far --quick`: they run, and their JSON has
# every field the method (docs/BENCH.md) promises. Speed is not asserted:
# the machine is shared; figures come from full `pagemove bench` runs.
# Usage: t_bench.sh PAGEMOVE [ignored]
pm=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
if ! "$pm" bench --quick --json >"$out" 2>/dev/null; then
	echo "FAIL: pagemove bench exited non-zero"; exit 1
fi
for key in memcpy_1t_gbps memcpy_all_gbps limit_warm_gbps limit_bulk_gbps copy_2m_1t_us \
	writer_stall_p50_us writer_stall_p99_us writer_stall_max_us migrate_2m_single_1t \
	migrate_2m_warm migrate_2m_bulk migrate_4k_random_batch migrate_4k_random_parallel \
	exchange_2m_batch exchange_4k_batch auto_vs_best mode mode_why collapse_2m_gbps \
	collapse_2m_ratio; do
	grep -q "\"$key\"" "$out" || { echo "FAIL: no $key in the JSON"; cat "$out"; exit 1; }
done
if command -v python3 >/dev/null 2>&1; then
	python3 - "$out" <<'PY' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
names = {r["name"] for r in d["results"]}
assert len(names) == 7, names
engines = {"auto", "memcpy", "nt", "parallel", "offload"}
for r in d["results"]:
    assert set(r) == {"name", "gbps", "ratio", "engine", "size"}, r
    assert r["gbps"] > 0 and r["ratio"] > 0, r
    assert r["engine"] in engines and r["size"] in ("warm", "bulk"), r
# every case with the default engine and with each fixed one
for n in names:
    assert {r["engine"] for r in d["results"] if r["name"] == n} == engines, n
assert {r["size"] for r in d["results"] if r["name"] == "migrate_2m_bulk"} == {"bulk"}
assert {a["name"] for a in d["auto_vs_best"]} == names, d["auto_vs_best"]
assert d["limit_warm_gbps"] > 0 and d["limit_bulk_gbps"] > 0, d
assert d["mode"] in ("full", "user-mode-only"), d["mode"]
# the coalescing rate, or null with the reason (a kernel without PT_RECLAIM)
if d["collapse_2m_gbps"] is None:
    assert d["collapse_2m_ratio"] is None and d["collapse_2m_skipped"], d
else:
    assert d["collapse_2m_gbps"] > 0 and d["collapse_2m_ratio"] > 0, d
    assert d["collapse_2m_left"] >= 0, d
assert d["mode_why"] in ("device", "syscall", "asked", "denied"), d["mode_why"]
print("bench JSON ok:", ", ".join("%s %.2f" % (r["name"], r["ratio"])
      for r in d["results"] if r["engine"] == "auto"))
PY
fi
if ! "$pm" bench faults --quick --json >"$out" 2>/dev/null; then
	echo "FAIL: pagemove bench faults exited non-zero"; exit 1
fi
for key in fault_first_touch_4k fault_sample fault_migration_wait p50_us p99_us max_us \
	kernel_p50_us kernel_p99_us; do
	grep -q "\"$key\"" "$out" || { echo "FAIL: no $key in the faults JSON"; cat "$out"; exit 1; }
done
if command -v python3 >/dev/null 2>&1; then
	python3 - "$out" <<'PY' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["faults"]) == 4, d
for r in d["faults"]:
    if r.get("skipped"):
        assert set(r) == {"name", "skipped", "reason"} and r["reason"], r
        continue
    assert set(r) == {"name", "p50_us", "p99_us", "max_us", "kernel_p50_us", "kernel_p99_us"}, r
    assert 0 < r["p50_us"] <= r["p99_us"] <= r["max_us"], r
print("bench faults JSON ok:", ", ".join("%s %s" % (r["name"], "skipped: " + r["reason"]
      if r.get("skipped") else "%.1f us" % r["p50_us"]) for r in d["faults"]))
PY
fi
"$pm" bench faults --mb 3 >/dev/null 2>&1 && { echo "FAIL: faults --mb 3 accepted"; exit 1; }
# On a terminal each figure is printed once (the table), not also as it is
# measured on stderr, which is the same terminal there.
if command -v script >/dev/null 2>&1; then
	script -qec "'$pm' bench --quick" /dev/null >"$out" 2>&1 ||
		{ echo "FAIL: pagemove bench on a pty exited non-zero"; cat "$out"; exit 1; }
	n=$(grep -c '^migrate_2m_warm  *warm  *auto ' "$out")
	[ "$n" = 1 ] || { echo "FAIL: on a terminal migrate_2m_warm (auto) printed $n times"; cat "$out"; exit 1; }
	echo "bench on a terminal: each figure once"
else
	echo "note: no script(1): the terminal check is skipped"
fi
# bench tiering, as short as it goes: a convergence never reached reads
# "never", not -1.0 (whether it is reached in 2 s is not asserted).
if ! "$pm" bench tiering --quick --seconds 2 --mb 64 >"$out" 2>/dev/null; then
	echo "FAIL: pagemove bench tiering exited non-zero"; cat "$out"; exit 1
fi
if grep -q -- '-1\.0' "$out" ||
   awk '$1 == "zipf" || $1 == "shift" || $1 == "scan" || $1 == "sparse" { if (NF == 11 && $2 ~ /^[0-9]+\.[0-9]+$/ && $5 !~ /^([0-9]+\.[0-9]|never)$/) bad = 1 }
	END { exit !bad }' "$out"; then
	echo "FAIL: bench tiering prints -1.0 or an odd convergence time"; cat "$out"; exit 1
fi
grep -q '^data verified: 64 MB x 4 runs' "$out" || { echo "FAIL: bench tiering: no data verified"; cat "$out"; exit 1; }
echo "bench tiering: convergence as seconds or never"
# bench far, as short as it goes (64 MB, the least --mb takes): every case
# measured, or skipped with its reason; every byte right; the kernel case's
# swap and cgroup gone after.
# /proc/swaps is the whole kernel's: a device that was there before, or
# went away meanwhile, is nobody's business here; one that is new after is
# bench far's (its own zram device; a make stress run saw the count
# differ with no device left to show).
swaps0=$(awk 'NR > 1 { print $1 }' /proc/swaps)
if ! "$pm" bench far --quick --mb 64 --seconds 0.5 --json >"$out" 2>/dev/null; then
	echo "FAIL: pagemove bench far exited non-zero"; cat "$out"; exit 1
fi
left=$(awk 'NR > 1 { print $1 }' /proc/swaps | grep -vxF "${swaps0:-/nothing}")
[ -z "$left" ] || { echo "FAIL: bench far left a swap device: $left"; echo "before: $swaps0"; cat /proc/swaps; exit 1; }
ls -d /sys/fs/cgroup/memory/pmv-bench-far.* /sys/fs/cgroup/pmv-bench-far.* >/dev/null 2>&1 &&
	{ echo "FAIL: bench far left its cgroup"; exit 1; }
if command -v python3 >/dev/null 2>&1; then
	python3 - "$out" "$(id -u)" <<'PY' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
cases = d["cases"]
assert len(cases) == 15, len(cases)
assert {c["pattern"] for c in cases} == {"zipf", "scan", "shift"}
fields = {"name", "pattern", "maccess_per_s", "fault_p50_us", "fault_p99_us", "fault_max_us",
          "dram_bytes", "store_bytes", "ratio", "cpu_s", "bad_items"}
for c in cases:
    if c.get("skipped"):
        assert set(c) == {"name", "pattern", "skipped", "reason"} and c["reason"], c
        continue
    assert set(c) == fields, c
    assert c["maccess_per_s"] > 0 and c["bad_items"] == 0, c
# the upper bound always runs; as root, so does the kernel's swap, unless
# its cgroup's OOM killer struck (the kernel's reclaim, not ours)
for c in cases:
    if c["name"] == "kernel_zram_lz4" and "OOM killer" in c.get("reason", ""):
        print("note: %s/kernel_zram_lz4: %s" % (c["pattern"], c["reason"]))
        continue
    if c["name"] == "unlimited" or (c["name"] == "kernel_zram_lz4" and sys.argv[2] == "0"):
        assert not c.get("skipped"), c
        if c["name"] == "kernel_zram_lz4":
            # within its cgroup's budget (some slack for what the kernel charges)
            assert c["store_bytes"] > 0 and c["dram_bytes"] <= 2 * d["budget_mb"] << 20, c
print("bench far JSON ok:", ", ".join("%s/%s %s" % (c["pattern"], c["name"], "skipped"
      if c.get("skipped") else "%.2f M/s" % c["maccess_per_s"]) for c in cases))
PY
fi
"$pm" bench far --mb 8 >/dev/null 2>&1 && { echo "FAIL: bench far --mb 8 accepted"; exit 1; }
"$pm" bench --mb 1 >/dev/null 2>&1 && { echo "FAIL: --mb 1 accepted"; exit 1; }
"$pm" bench --bulk-mb 8 >/dev/null 2>&1 && { echo "FAIL: --bulk-mb 8 accepted"; exit 1; }
"$pm" bench --bogus >/dev/null 2>&1 && { echo "FAIL: unknown option accepted"; exit 1; }
echo "t_bench: JSON of bench and bench faults complete, bad options refused"
exit 0
