/* SPDX-License-Identifier: MIT */
/* The benches: "pagemove bench" (bench.c), the others it dispatches to,
 * and what they share with the demo. */
#ifndef BENCH_H
#define BENCH_H

#include <stdio.h>
#include <time.h>

int cmd_bench(int argc, char **argv);		/* bench.c */
int cmd_bench_tiering(int argc, char **argv);	/* bench_tiering.c */
int cmd_bench_faults(int argc, char **argv);	/* bench_faults.c */
int cmd_bench_far(int argc, char **argv);	/* bench_far.c */
int cmd_bench_run(int argc, char **argv);	/* bench_run.c */

/* --plot (plot.c): is gnuplot on PATH; a gnuplot single-quoted string;
 * run gnuplot on a script: 0, or -1 having said why (prefixed by who). */
int bench_have_gnuplot(void);
void bench_gp_string(FILE *f, const char *s);
int bench_gnuplot(const char *script, const char *who);

/* Seconds on the monotonic clock, for the benches and the demo. */
static inline double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#endif
