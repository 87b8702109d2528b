/* SPDX-License-Identifier: MIT */
/* Option parsing shared by every subcommand; see opt.h. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opt.h"

void opt_begin(struct opt_parse *p, const char *cmd)
{
	p->cmd = cmd;
	p->bad = 0;
	opterr = 0;
	optind = 0;	/* 0, not 1: a full reset of getopt's state */
}

static void vmsg(struct opt_parse *p, const char *fmt, va_list ap)
{
	fprintf(stderr, "pagemove %s: ", p->cmd);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	p->bad++;
}

void opt_error(struct opt_parse *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(p, fmt, ap);
	va_end(ap);
}

void opt_getopt_error(struct opt_parse *p, int c, char **argv)
{
	const char *prev = optind > 0 ? argv[optind - 1] : "";
	char buf[3] = { '-', (char)optopt, 0 };
	/* a long option is whole in argv; a short one may sit in a cluster */
	const char *name = !strncmp(prev, "--", 2) || !optopt ? prev : buf;

	if (c == ':')
		opt_error(p, "option '%s' needs a value", name);
	else
		opt_error(p, "invalid option '%s'", name);
}

void opt_no_args(struct opt_parse *p, int argc, char **argv)
{
	for (int i = optind; i < argc; i++)
		opt_error(p, "unexpected argument '%s'", argv[i]);
}

bool opt_ulong(struct opt_parse *p, const char *name, const char *arg,
	       unsigned long min, unsigned long max, unsigned long *v)
{
	unsigned long x;
	char *end;

	errno = 0;
	x = strtoul(arg, &end, 10);
	/* strtoul takes "-1" as ULONG_MAX: refuse any sign */
	if (errno || end == arg || *end || arg[strspn(arg, " \t")] == '-' ||
	    arg[strspn(arg, " \t")] == '+' || x < min || x > max) {
		opt_error(p, "%s: expected an integer %lu..%lu, got '%s'", name, min, max, arg);
		return false;
	}
	*v = x;
	return true;
}

bool opt_uint(struct opt_parse *p, const char *name, const char *arg,
	      unsigned min, unsigned max, unsigned *v)
{
	unsigned long x;

	if (!opt_ulong(p, name, arg, min, max, &x))
		return false;
	*v = (unsigned)x;
	return true;
}

bool opt_double(struct opt_parse *p, const char *name, const char *arg,
		double min, double max, double *v)
{
	char *end;
	double x;

	errno = 0;
	x = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(x) || x < min || x > max) {
		opt_error(p, "%s: expected a number %g..%g, got '%s'", name, min, max, arg);
		return false;
	}
	*v = x;
	return true;
}

bool opt_node_pair(struct opt_parse *p, const char *name, const char *arg,
		   int max_node, int *a, int *b)
{
	const char *comma = strchr(arg, ',');
	unsigned long x, y;
	char *end;

	if (!comma)
		goto bad;
	errno = 0;
	x = strtoul(arg, &end, 10);
	if (errno || end == arg || end != comma || *arg == '-' || *arg == '+')
		goto bad;
	y = strtoul(comma + 1, &end, 10);
	if (errno || end == comma + 1 || *end || comma[1] == '-' || comma[1] == '+')
		goto bad;
	if (x > (unsigned long)max_node || y > (unsigned long)max_node) {
		opt_error(p, "%s %s: node %lu does not exist (highest node: %d)", name, arg,
			  x > (unsigned long)max_node ? x : y, max_node);
		return false;
	}
	*a = (int)x;
	*b = (int)y;
	return true;
bad:
	opt_error(p, "%s: expected two nodes A,B, got '%s'", name, arg);
	return false;
}

int opt_end(struct opt_parse *p)
{
	if (!p->bad)
		return 0;
	fprintf(stderr, "Try 'pagemove %s --help'.\n", p->cmd);
	return OPT_EXIT_USAGE;
}
