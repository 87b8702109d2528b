/* SPDX-License-Identifier: MIT */
/*
 * pagemove top [--pid PID] [--interval S] [--once | --iterations N]: the
 * run view of pagemove stat --pid (tools/runstats.c), refreshed, for one
 * process or for every process under pagemove run: those whose stats file
 * (pagemove-run.UID.PID, in PAGEMOVE_RUN_STATS_DIR, /dev/shm or /tmp) is
 * there and whose process is alive. One line per process, one per tier
 * under it; rates are per second since the refresh before. On a terminal
 * each refresh clears the screen; otherwise refreshes follow each other,
 * a blank line apart (for a log, or a test with --once).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "runstats.h"
#include "../common/opt.h"

#define CMD		"top"
#define TOP_MAX_PROCS	256

struct top_proc {
	pid_t pid;
	struct cli_run_stats rs;
};

/* the refresh before, for the rates */
static struct top_proc prev[TOP_MAX_PROCS];
static size_t nprev;

static void top_usage(FILE *f)
{
	fputs(
"Usage: pagemove top [--pid PID] [--interval S] [--once | --iterations N]\n"
"\n"
"Show, refreshed, what pagemove stat --pid shows of a program under\n"
"pagemove run: its userfaultfd mode and policy, faults, migrations and the\n"
"fast tier's share of the active pages, then per tier the resident bytes,\n"
"pool, capacity and migrations. Without --pid, every process under\n"
"pagemove run whose stats this user may read (their stats files).\n"
"\n"
"  -p, --pid PID         only this process\n"
"  -i, --interval S      seconds between refreshes, 0.1 to 3600 [1]\n"
"  -1, --once            one refresh, then exit (the same as --iterations 1)\n"
"  -n, --iterations N    N refreshes, then exit [until interrupted]\n"
"  -h, --help            show this help\n"
"\n"
"FAULTS/S and MIGR/S are per second since the refresh before (- at the\n"
"first). A terminal is cleared at each refresh; other output gets the\n"
"refreshes one after another, a blank line apart. The stats are as fresh\n"
"as the program's --stats-interval.\n"
"\n"
"Exit status:\n"
"  0  success (also when no process is under pagemove run)\n"
"  2  usage error (unknown option, bad value, bad pid)\n"
"  3  --pid: no such process, or it is not under pagemove run (or publishes\n"
"     no stats: --stats-interval 0)\n",
	      f);
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

	return (x > y) - (x < y);
}

/* The pids of every stats file in the directories runstats.c reads. */
static size_t scan_pids(pid_t *out, size_t max)
{
	const char *dirs[] = { getenv("PAGEMOVE_RUN_STATS_DIR"), "/dev/shm", "/tmp" };
	size_t n = 0;

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		struct dirent *e;
		DIR *d;

		if (!dirs[i] || !*dirs[i])
			continue;
		d = opendir(dirs[i]);
		if (!d)
			continue;
		while ((e = readdir(d)) && n < max) {
			unsigned uid;
			int pid, end = 0;

			/* pagemove-run.UID.PID, never the writer's .tmp */
			if (sscanf(e->d_name, "pagemove-run.%u.%d%n", &uid, &pid, &end) != 2 ||
			    e->d_name[end] || pid <= 0)
				continue;
			out[n++] = pid;
		}
		closedir(d);
	}
	qsort(out, n, sizeof(*out), cmp_pid);
	/* a pid in two directories once */
	size_t u = 0;

	for (size_t i = 0; i < n; i++)
		if (!u || out[u - 1] != out[i])
			out[u++] = out[i];
	return u;
}

static void comm_of(pid_t pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "re");
	if (!f || !fgets(buf, (int)len, f))
		snprintf(buf, len, "?");
	if (f)
		fclose(f);
	buf[strcspn(buf, "\n")] = 0;
}

static const struct cli_run_stats *prev_of(pid_t pid)
{
	for (size_t i = 0; i < nprev; i++)
		if (prev[i].pid == pid)
			return &prev[i].rs;
	return NULL;
}

/* "123.4" per second, or "-" without a refresh before */
static void fmt_rate(char *buf, size_t len, unsigned long long now, const unsigned long long *was,
		     double secs)
{
	if (!was || secs <= 0 || now < *was)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.1f", (double)(now - *was) / secs);
}

static void print_proc(pid_t pid, const struct cli_run_stats *rs, double secs)
{
	const struct cli_run_stats *p = prev_of(pid);
	unsigned long long active = 0;
	char comm[32], fr[24], mr[24], hit[16];

	for (unsigned i = 0; i < rs->ntiers; i++)
		active += rs->tier[i].active;
	if (active && rs->ntiers)
		snprintf(hit, sizeof(hit), "%.1f%%", 100.0 * (double)rs->tier[0].active /
			 (double)active);
	else
		snprintf(hit, sizeof(hit), "-");
	comm_of(pid, comm, sizeof(comm));
	fmt_rate(fr, sizeof(fr), rs->faults, p ? &p->faults : NULL, secs);
	fmt_rate(mr, sizeof(mr), rs->migrations, p ? &p->migrations : NULL, secs);
	printf("%-8d %-15s %-14s %-6s %7llu %10llu %9s %10llu %9s %8llu %8llu %8llu %6s\n",
	       (int)pid, comm, rs->mode, rs->policy, rs->regions, rs->faults, fr, rs->migrations,
	       mr, rs->promoted, rs->demoted, rs->exchanged, hit);
	for (unsigned i = 0; i < rs->ntiers; i++) {
		const struct cli_run_tier *t = &rs->tier[i];
		char a[16], b[16], c[16];

		cli_fmt_size(a, sizeof(a), t->resident);
		cli_fmt_size(b, sizeof(b), t->pool);
		if (t->capacity)
			cli_fmt_size(c, sizeof(c), t->capacity);
		else
			snprintf(c, sizeof(c), "-");
		printf("  tier %-2u %-16s resident %8s  pool %8s  capacity %8s  "
		       "migrate in %llu out %llu\n", i, t->name, a, b, c, t->migrate_in,
		       t->migrate_out);
	}
}

/* One refresh: 0, or -ENOENT if only_pid is not under pagemove run. */
static int refresh(pid_t only_pid, double secs, bool tty)
{
	static struct top_proc now[TOP_MAX_PROCS];
	pid_t pids[TOP_MAX_PROCS];
	size_t n = 0, np;
	char when[32];
	time_t t = time(NULL);
	struct tm tm;

	if (only_pid) {
		pids[0] = only_pid;
		np = 1;
	} else {
		np = scan_pids(pids, TOP_MAX_PROCS);
	}
	for (size_t i = 0; i < np; i++) {
		if (cli_run_stats_read(pids[i], &now[n].rs))
			continue;	/* gone, another user's, or no stats */
		now[n++].pid = pids[i];
	}
	if (only_pid && !n)
		return -ENOENT;
	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (tty)
		fputs("\033[H\033[2J", stdout);
	printf("pagemove top - %s, %zu process%s under pagemove run\n", when, n,
	       n == 1 ? "" : "es");
	printf("%-8s %-15s %-14s %-6s %7s %10s %9s %10s %9s %8s %8s %8s %6s\n", "PID", "COMMAND",
	       "USERFAULTFD", "POLICY", "REGIONS", "FAULTS", "FAULTS/S", "MIGRATIONS", "MIGR/S",
	       "PROMOTED", "DEMOTED", "EXCHANGE", "FAST%");
	for (size_t i = 0; i < n; i++)
		print_proc(now[i].pid, &now[i].rs, secs);
	memcpy(prev, now, n * sizeof(now[0]));
	nprev = n;
	fflush(stdout);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cmd_top(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid",	required_argument,	NULL, 'p' },
		{ "interval",	required_argument,	NULL, 'i' },
		{ "once",	no_argument,		NULL, '1' },
		{ "iterations",	required_argument,	NULL, 'n' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	unsigned long iters = 0;	/* 0: until interrupted */
	double interval = 1, last = 0;
	struct opt_parse op;
	pid_t pid = 0;
	bool tty = isatty(STDOUT_FILENO);
	int opt;

	opt_begin(&op, CMD);
	while ((opt = getopt_long(argc, argv, ":p:i:1n:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			if (cli_parse_pid(optarg, &pid))
				opt_error(&op, "--pid '%s': not a process id", optarg);
			break;
		case 'i':
			opt_double(&op, "--interval", optarg, 0.1, 3600, &interval);
			break;
		case '1':
			iters = 1;
			break;
		case 'n':
			opt_ulong(&op, "--iterations", optarg, 1, 1000000000UL, &iters);
			break;
		case 'h':
			top_usage(stdout);
			return CLI_EXIT_OK;
		default:
			opt_getopt_error(&op, opt, argv);
			break;
		}
	}
	opt_no_args(&op, argc, argv);
	if (opt_end(&op))
		return CLI_EXIT_USAGE;
	for (unsigned long i = 0; !iters || i < iters; i++) {
		double t = now_s();

		if (i) {
			struct timespec ts;
			double wait = interval - (t - last);

			if (wait > 0) {
				ts.tv_sec = (time_t)wait;
				ts.tv_nsec = (long)((wait - (double)ts.tv_sec) * 1e9);
				nanosleep(&ts, NULL);
			}
			t = now_s();
			if (!tty)
				putchar('\n');
		}
		if (refresh(pid, i ? t - last : 0, tty)) {
			fprintf(stderr, "pagemove " CMD ": pid %d: not under pagemove run (no stats "
				"file of its user, or it ended)\n", (int)pid);
			return CLI_EXIT_NOPROC;
		}
		last = t;
	}
	return CLI_EXIT_OK;
}
