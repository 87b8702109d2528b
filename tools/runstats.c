/* SPDX-License-Identifier: MIT */
/*
 * The stats file of a process under `pagemove run` (written by
 * preload/preload.c, "key value" lines and one "tier" line per tier), read
 * for pagemove stat --pid: the table's "pagemove run:" part and JSON's
 * "run" object.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "runstats.h"

/*
 * The file of pid: in PAGEMOVE_RUN_STATS_DIR, /dev/shm or /tmp, a regular
 * file (not followed through a symlink) owned by the process's user, so
 * that another user cannot plant one.
 */
static FILE *open_stats(pid_t pid)
{
	const char *dirs[] = { getenv("PAGEMOVE_RUN_STATS_DIR"), "/dev/shm", "/tmp" };
	char proc[64], path[512];
	struct stat ps, st;

	snprintf(proc, sizeof(proc), "/proc/%d", (int)pid);
	if (stat(proc, &ps))
		return NULL;
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		int fd;

		if (!dirs[i] || !*dirs[i])
			continue;
		snprintf(path, sizeof(path), "%s/pagemove-run.%u.%d", dirs[i],
			 (unsigned)ps.st_uid, (int)pid);
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ps.st_uid)
			return fdopen(fd, "r");
		close(fd);
	}
	return NULL;
}

int cli_run_stats_read(pid_t pid, struct cli_run_stats *rs)
{
	char line[512];
	FILE *f;

	memset(rs, 0, sizeof(*rs));
	f = open_stats(pid);
	if (!f)
		return -ENOENT;
	while (fgets(line, sizeof(line), f)) {
		char key[32], val[64];
		struct cli_run_tier *t;
		int idx;

		if (sscanf(line, "tier %d %31s resident %llu pool %llu capacity %llu migrate_in %llu "
			   "migrate_out %llu first_touch %llu active %llu inactive %llu",
			   &idx, key, &rs->tier[rs->ntiers].resident, &rs->tier[rs->ntiers].pool,
			   &rs->tier[rs->ntiers].capacity, &rs->tier[rs->ntiers].migrate_in,
			   &rs->tier[rs->ntiers].migrate_out, &rs->tier[rs->ntiers].first_touch,
			   &rs->tier[rs->ntiers].active, &rs->tier[rs->ntiers].inactive) == 10) {
			if (rs->ntiers < CLI_RUN_MAX_TIERS) {
				t = &rs->tier[rs->ntiers++];
				snprintf(t->name, sizeof(t->name), "%s", key);
			}
			continue;
		}
		if (sscanf(line, "%31s %63s", key, val) != 2)
			continue;
		if (!strcmp(key, "mode"))
			snprintf(rs->mode, sizeof(rs->mode), "%s", val);
		else if (!strcmp(key, "policy"))
			snprintf(rs->policy, sizeof(rs->policy), "%s", val);
		else if (!strcmp(key, "faults"))
			rs->faults = strtoull(val, NULL, 10);
		else if (!strcmp(key, "first_touch"))
			rs->first_touch = strtoull(val, NULL, 10);
		else if (!strcmp(key, "migrations"))
			rs->migrations = strtoull(val, NULL, 10);
		else if (!strcmp(key, "migrate_bytes"))
			rs->migrate_bytes = strtoull(val, NULL, 10);
		else if (!strcmp(key, "promoted"))
			rs->promoted = strtoull(val, NULL, 10);
		else if (!strcmp(key, "demoted"))
			rs->demoted = strtoull(val, NULL, 10);
		else if (!strcmp(key, "exchanged"))
			rs->exchanged = strtoull(val, NULL, 10);
		else if (!strcmp(key, "regions"))
			rs->regions = strtoull(val, NULL, 10);
	}
	fclose(f);
	return rs->mode[0] ? 0 : -ENOENT;
}

/* The fast tier's share of the pages on active lists: of the pages the
 * policy found in use, how many tier 0 holds (-1: none active). */
static double hit_estimate(const struct cli_run_stats *rs)
{
	unsigned long long all = 0;

	for (unsigned i = 0; i < rs->ntiers; i++)
		all += rs->tier[i].active;
	return all ? (double)rs->tier[0].active / (double)all : -1;
}

void cli_run_stats_print(const struct cli_run_stats *rs)
{
	char a[16], b[16], c[16];
	double hit = hit_estimate(rs);

	printf("\npagemove run: userfaultfd %s, policy %s, %llu regions, %llu faults "
	       "(%llu first touches), %llu migrations (%llu promoted, %llu demoted, "
	       "%llu exchanged)", rs->mode, rs->policy, rs->regions, rs->faults, rs->first_touch,
	       rs->migrations, rs->promoted, rs->demoted, rs->exchanged);
	if (hit >= 0)
		printf(", fast-tier share of active pages %.1f%%", 100 * hit);
	printf("\n%-4s %-16s %10s %10s %10s %10s %10s\n", "TIER", "NAME", "RESIDENT", "POOL",
	       "CAPACITY", "MIGR_IN", "MIGR_OUT");
	for (unsigned i = 0; i < rs->ntiers; i++) {
		const struct cli_run_tier *t = &rs->tier[i];

		cli_fmt_size(a, sizeof(a), t->resident);
		cli_fmt_size(b, sizeof(b), t->pool);
		if (t->capacity)
			cli_fmt_size(c, sizeof(c), t->capacity);
		else
			snprintf(c, sizeof(c), "-");
		printf("%-4u %-16s %10s %10s %10s %10llu %10llu\n", i, t->name, a, b, c,
		       t->migrate_in, t->migrate_out);
	}
}

void cli_run_stats_json(const struct cli_run_stats *rs)
{
	double hit = hit_estimate(rs);

	printf("{\"mode\":\"%s\",\"policy\":\"%s\",\"regions\":%llu,\"faults\":%llu,"
	       "\"first_touch\":%llu,\"migrations\":%llu,\"migrate_bytes\":%llu,"
	       "\"promoted\":%llu,\"demoted\":%llu,\"exchanged\":%llu,", rs->mode, rs->policy,
	       rs->regions, rs->faults, rs->first_touch, rs->migrations, rs->migrate_bytes,
	       rs->promoted, rs->demoted, rs->exchanged);
	if (hit >= 0)
		printf("\"fast_active_fraction\":%.4f,", hit);
	else
		printf("\"fast_active_fraction\":null,");
	printf("\"tiers\":[");
	for (unsigned i = 0; i < rs->ntiers; i++) {
		const struct cli_run_tier *t = &rs->tier[i];

		printf("%s{\"name\":\"%s\",\"resident_bytes\":%llu,\"pool_bytes\":%llu,"
		       "\"capacity\":%llu,\"migrate_in\":%llu,\"migrate_out\":%llu,"
		       "\"first_touch\":%llu,\"active\":%llu,\"inactive\":%llu}", i ? "," : "",
		       t->name, t->resident, t->pool, t->capacity, t->migrate_in, t->migrate_out,
		       t->first_touch, t->active, t->inactive);
	}
	printf("]}");
}
