/* SPDX-License-Identifier: MIT */
/*
 * Option parsing shared by every subcommand: the CLI's (tools/) and the
 * benches' (bench/), which include it from here so that bench/ needs no
 * header of tools/.
 *
 * A value is the whole argument, in range: "2x" and "1.5abc" are refused.
 * Each bad option gets one message of its own, "pagemove CMD: ...", naming
 * it, and the parse goes on, so one run names every bad option; opt_end()
 * then points to --help and gives the usage exit status.
 *
 * The getopt string must start with ':' and opterr be 0 (opt_begin() sets
 * it), so that getopt_long() reports instead of printing.
 */
#ifndef OPT_H
#define OPT_H

#include <stdbool.h>

#define OPT_EXIT_USAGE	2	/* every subcommand's status for a bad option */

struct opt_parse {
	const char *cmd;	/* "demo", "bench tiering" */
	int bad;		/* messages printed so far */
};

/* Reset getopt (a subcommand may follow another's parse) and start. */
void opt_begin(struct opt_parse *p, const char *cmd);

/* A message about the options: "pagemove CMD: " + fmt; counts as bad. */
void opt_error(struct opt_parse *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* getopt_long() returned ':' or '?': name the option it rejected. */
void opt_getopt_error(struct opt_parse *p, int c, char **argv);

/* Arguments left after the options are refused, each named. */
void opt_no_args(struct opt_parse *p, int argc, char **argv);

/* A decimal integer in min..max. On false *v is unchanged. */
bool opt_ulong(struct opt_parse *p, const char *name, const char *arg,
	       unsigned long min, unsigned long max, unsigned long *v);
bool opt_uint(struct opt_parse *p, const char *name, const char *arg,
	      unsigned min, unsigned max, unsigned *v);

/* A finite decimal number in min..max. */
bool opt_double(struct opt_parse *p, const char *name, const char *arg,
		double min, double max, double *v);

/* "A,B": two NUMA node numbers, each 0..max_node. */
bool opt_node_pair(struct opt_parse *p, const char *name, const char *arg,
		   int max_node, int *a, int *b);

/*
 * 0 if no option was bad; else "Try 'pagemove CMD --help'." and
 * OPT_EXIT_USAGE.
 */
int opt_end(struct opt_parse *p);

#endif /* OPT_H */
