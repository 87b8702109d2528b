#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_run_bench.sh PAGEMOVE [ignored]
#
# Smoke test of `pagemove bench run --quick --json` at its smallest: it
# runs, its JSON has the start-up figures and every redis case, each
# measured or skipped with a reason (redis's cases all skipped where redis
# is not installed), and the kernel case's zram swap and cgroup are gone
# after. Speed is not asserted: the machine is shared (docs/BENCH.md).
# Exit: 0 pass, 1 fail, 77 skip.

PM=$1
[ -x "$PM" ] || { echo "FAIL: $PM: not an executable file"; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "SKIP: no python3"; exit 77; }
out=$(mktemp "${TMPDIR:-/tmp}/t_run_bench.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT
swaps0=$(wc -l < /proc/swaps)
if ! "$PM" bench run --quick --json --keys 2000 --requests 2000 --runs 3 >"$out" 2>&1; then
	echo "FAIL: pagemove bench run exited non-zero"; cat "$out"; exit 1
fi
[ "$(wc -l < /proc/swaps)" = "$swaps0" ] ||
	{ echo "FAIL: bench run left a swap device"; cat /proc/swaps; exit 1; }
ls -d /sys/fs/cgroup/memory/pmv-bench-run.* /sys/fs/cgroup/pmv-bench-run.* >/dev/null 2>&1 &&
	{ echo "FAIL: bench run left its cgroup"; exit 1; }
redis=no
command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 &&
	command -v redis-benchmark >/dev/null 2>&1 && redis=yes
python3 - "$out" "$redis" <<'PY' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
s = d["startup"]
assert set(s) == {"native_ms", "run_ms", "added_ms", "native_p25_ms", "run_p25_ms"}, s
assert s["native_ms"] > 0 and s["run_ms"] > 0, s
assert abs(s["added_ms"] - (s["run_ms"] - s["native_ms"])) < 0.01, s
names = [c["name"] for c in d["redis"]]
assert names == ["native", "run_policy_off", "run_fast_quarter_policy",
                 "run_fast_quarter_lz4", "kernel_memcg_zram_lz4"], names
for c in d["redis"]:
    if c.get("skipped"):
        assert set(c) == {"name", "skipped", "reason"} and c["reason"], c
        assert sys.argv[2] == "no" or c["name"] == "kernel_memcg_zram_lz4", c
        continue
    assert c["get_rps"] > 0 and c["set_rps"] > 0 and c["used_memory"] > 0, c
    if c["name"] != "native":
        assert c["get_vs_native"] > 0 and c["set_vs_native"] > 0, c
    if c["name"].startswith("run_"):
        assert "migrations" in c and "fast_active_fraction" in c, c
if sys.argv[2] == "yes":
    assert d["fast_tier_bytes"] >= 4 << 20, d
print("bench run JSON ok: start-up %+.2f ms; %s" % (s["added_ms"], ", ".join(
      "%s %s" % (c["name"], "skipped" if c.get("skipped") else "%.0f GET/s" % c["get_rps"])
      for c in d["redis"])))
PY
"$PM" bench run --runs 2 >/dev/null 2>&1 && { echo "FAIL: bench run --runs 2 accepted"; exit 1; }
"$PM" bench run --bogus >/dev/null 2>&1 && { echo "FAIL: bench run --bogus accepted"; exit 1; }
echo "t_run_bench: bench run's JSON complete, nothing left behind, bad options refused"
exit 0
