/* SPDX-License-Identifier: MIT */
/*
 * The settings of `pagemove run` and of libpagemove-preload.so, which reads
 * them from its environment (so that a service manager can preload the
 * library without the command): one parser for both, with no allocation
 * (the preload runs it in a constructor, before malloc may be called).
 *
 *   PAGEMOVE_TIERS                 --tiers SPEC        (default "mem")
 *   PAGEMOVE_POLICY                --policy            (the library's own)
 *   PAGEMOVE_RUN_MIN_SIZE          --min-size SIZE     (default 1M)
 *   PAGEMOVE_RUN_HUGE              --huge auto|always|never
 *   PAGEMOVE_RUN_STATS_INTERVAL    --stats-interval S  (default 1; 0: none)
 *   PAGEMOVE_RUN_ALLOW_USER_MODE   --allow-user-mode   (1: accept)
 *   PAGEMOVE_RUN_STATS_DIR         where the stats file goes (/dev/shm)
 *   PAGEMOVE_RUN=0                 the preload does nothing
 */
#ifndef RUNCFG_H
#define RUNCFG_H

#include <stdbool.h>
#include <stddef.h>

#include "pagemove.h"

enum { _PMVP_HUGE_AUTO, _PMVP_HUGE_ALWAYS, _PMVP_HUGE_NEVER };

#define _PMVP_MIN_SIZE_DEFAULT	(1UL << 20)

struct _pmvp_config {
	bool enabled;
	unsigned ntiers;
	struct pmv_tier_config tiers[PMV_MAX_TIERS];
	char tier_buf[1024];
	int policy;			/* always 0: PAGEMOVE_POLICY is the library's */
	size_t min_size;
	int huge;			/* _PMVP_HUGE_* */
	unsigned stats_interval;	/* ms; 0: no stats file */
	bool allow_user_mode;
	char stats_dir[200];
	char error[256];		/* the first bad variable, or "" */
};

/* Fill *c from the environment; c->error says what was refused (that
 * setting then has its default). */
void _pmvp_config_from_env(struct _pmvp_config *c);

/* The parsers, each 0 or -EINVAL (-ERANGE for a number too large). */
int _pmvp_parse_size(const char *s, size_t *v);		/* 4096, 64K, 1M, 2G */
int _pmvp_parse_huge(const char *s, int *v);
int _pmvp_parse_interval(const char *s, unsigned *ms);	/* seconds, e.g. 0.5 */
int _pmvp_parse_policy(const char *s);			/* auto|track|off */

#endif /* RUNCFG_H */
