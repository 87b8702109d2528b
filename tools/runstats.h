/* SPDX-License-Identifier: MIT */
/* The stats a process under `pagemove run` publishes (tools/runstats.c). */
#ifndef RUNSTATS_H
#define RUNSTATS_H

#include <sys/types.h>

#define CLI_RUN_MAX_TIERS	16

struct cli_run_tier {
	char name[32];		/* no blanks: the file's word */
	unsigned long long resident, pool, capacity, migrate_in, migrate_out;
	unsigned long long first_touch, active, inactive;
};

struct cli_run_stats {
	char mode[64], policy[64];
	unsigned long long faults, first_touch, migrations, migrate_bytes;
	unsigned long long promoted, demoted, exchanged, regions;
	unsigned ntiers;
	struct cli_run_tier tier[CLI_RUN_MAX_TIERS];
};

/* 0, or -ENOENT: PID is not under pagemove run (or publishes no stats). */
int cli_run_stats_read(pid_t pid, struct cli_run_stats *rs);
void cli_run_stats_print(const struct cli_run_stats *rs);
/* one JSON object, no newline */
void cli_run_stats_json(const struct cli_run_stats *rs);

#endif /* RUNSTATS_H */
