/* SPDX-License-Identifier: MIT */
/* Benchmarks other than the copy bench of bench.c, dispatched from it. */
#ifndef PMV_BENCH_BENCH_H
#define PMV_BENCH_BENCH_H

int pmv_bench_tiering(int argc, char **argv);	/* bench_tiering.c */

#endif
