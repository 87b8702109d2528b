#!/bin/sh
# In the NUMA guest: pagemove bench --kernel runs the kernel's move_pages(2)
# on the same buffers as pagemove's engine, between nodes 0 and 1, for the
# record. Emulated timings are not performance claims; this checks that the
# comparison runs and reports both. Usage: t_bench_kernel.sh PAGEMOVE
pm=${1:-/t/pagemove}
out=/tmp/bench.$$
if ! "$pm" bench --quick --kernel --nodes 0,1 >"$out" 2>&1; then
	cat "$out"; echo "FAIL: pagemove bench --kernel failed"; exit 1
fi
cat "$out"
for k in migrate_2m_warm migrate_4k_random_batch kernel_move_pages_2m kernel_move_pages_4k_random; do
	grep -q "^$k " "$out" || { echo "FAIL: no $k in the table"; exit 1; }
done
echo "t_bench_kernel: engine and move_pages(2) measured on the same buffers (emulated: not a claim)"
exit 0
