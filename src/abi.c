/* SPDX-License-Identifier: MIT */
/*
 * ABI compatibility (the rule is in pagemove.h; docs/DESIGN.md "ABI"): the
 * PAGEMOVE_0.1 symbols of the calls whose structs changed layout in 0.3.
 *
 * Programs built against the 0.1 header and against the 0.2 header both
 * call these, as 0.2 grew the structs under the old symbols; nothing tells
 * the two apart. So these read and write exactly 0.1's sizes, which are
 * safe for both: a 0.2 program's pmv_config.policy lies past 0.1's struct
 * and is not read; 0.2's tier stats fields took 0.1's resv, so they all fit
 * and are filled; 0.2's context stats fields fit up to `promoted`.
 *
 * Shared library only: a static link always has the current header.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"

#ifndef PMV_SHARED
#error "abi.c holds symbol-versioned compatibility code: shared library only"
#endif

/*
 * ---- the 0.3 layouts: these sizes never change (tests/abi too) -------
 * The sizes are those of LP64 (x86-64); the offsets below hold anywhere.
 */
#if __SIZEOF_POINTER__ == 8 && __SIZEOF_LONG__ == 8
_Static_assert(sizeof(struct pmv_tier_config) == 64, "pmv_tier_config size is ABI");
_Static_assert(sizeof(struct pmv_policy_config) == 64, "pmv_policy_config size is ABI");
_Static_assert(sizeof(struct pmv_config) == 104, "pmv_config size is ABI");
_Static_assert(sizeof(struct pmv_tier_stats) == 376, "pmv_tier_stats size is ABI");
_Static_assert(sizeof(struct pmv_ctx_stats) == 296, "pmv_ctx_stats size is ABI");
#endif

/* ---- the 0.1 layouts, as tests/abi/pagemove-0.1.h has them ------------ */

struct pmv_tier_config_0_1 {
	const char *name;
	int node;
	size_t capacity;
};

struct pmv_config_0_1 {
	unsigned ntiers;
	const struct pmv_tier_config_0_1 *tiers;
	unsigned copy_threads;
	unsigned flags;
	int copy_engine;
};

struct pmv_tier_stats_0_1 {
	char name[32];
	int node;
	uint64_t capacity, resident_4k, resident_2m, resident_bytes;
	uint64_t pool_4k, pool_2m, pool_bytes;
	uint64_t first_touch, fallback_in, migrate_in, migrate_out, migrate_bytes_in;
	uint64_t fail[5];
	uint64_t verify_errors;
	uint64_t resv[8];
};

struct pmv_ctx_stats_0_1 {
	unsigned mode;
	unsigned ntiers;
	uint64_t regions;
	uint64_t faults_missing, faults_wp, faults_first_touch, faults_waited, faults_sigbus;
	uint64_t migrations, migrate_bytes;
	uint64_t resv[8];
};

#if __SIZEOF_POINTER__ == 8 && __SIZEOF_LONG__ == 8
_Static_assert(sizeof(struct pmv_config_0_1) == 32, "0.1 pmv_config");
_Static_assert(sizeof(struct pmv_tier_config_0_1) == 24, "0.1 pmv_tier_config");
_Static_assert(sizeof(struct pmv_tier_stats_0_1) == 248, "0.1 pmv_tier_stats");
_Static_assert(sizeof(struct pmv_ctx_stats_0_1) == 136, "0.1 pmv_ctx_stats");
#endif

/* The stats are filled as a prefix of today's: 0.1's fields are where they were. */
#define SAME(type, f) \
	_Static_assert(offsetof(struct type, f) == offsetof(struct type##_0_1, f), #type "." #f)
SAME(pmv_tier_stats, node);
SAME(pmv_tier_stats, capacity);
SAME(pmv_tier_stats, resident_bytes);
SAME(pmv_tier_stats, pool_bytes);
SAME(pmv_tier_stats, migrate_bytes_in);
SAME(pmv_tier_stats, fail);
SAME(pmv_tier_stats, verify_errors);
SAME(pmv_ctx_stats, ntiers);
SAME(pmv_ctx_stats, regions);
SAME(pmv_ctx_stats, faults_sigbus);
SAME(pmv_ctx_stats, migrate_bytes);
_Static_assert(PMV_FAIL_NR == 5, "pmv_tier_stats.fail[] is ABI");
/* 0.2's tier fields took exactly 0.1's resv: a 0.2 program gets them all. */
_Static_assert(offsetof(struct pmv_tier_stats, active) ==
	       offsetof(struct pmv_tier_stats_0_1, resv), "0.2 tier fields");
_Static_assert(offsetof(struct pmv_tier_stats, kind) ==
	       sizeof(struct pmv_tier_stats_0_1), "0.2 tier fields");
/* 0.4's far-tier fields took the first words of 0.3's resv, 0.5's THP counters the next */
_Static_assert(offsetof(struct pmv_tier_stats, thp_fail) ==
	       sizeof(struct pmv_tier_stats_0_1) + 10 * 8, "0.4 tier fields");
_Static_assert(offsetof(struct pmv_tier_stats, resv) ==
	       sizeof(struct pmv_tier_stats_0_1) + 14 * 8, "0.5 tier fields");
/* ... and of the context's, those before `demoted` (header comment). */
_Static_assert(offsetof(struct pmv_ctx_stats, demoted) ==
	       sizeof(struct pmv_ctx_stats_0_1), "0.2 context fields");

/* ---- PAGEMOVE_0.1 ------------------------------------------------------ */

PMV_API pmv_ctx *pmv_create_0_1(const struct pmv_config_0_1 *old)
{
	struct pmv_tier_config tiers[PMV_MAX_TIERS];
	struct pmv_config cfg;

	if (!old)
		return _pmv_create(NULL);
	memset(&cfg, 0, sizeof(cfg));
	memset(tiers, 0, sizeof(tiers));
	cfg.ntiers = old->ntiers;
	cfg.tiers = old->tiers ? tiers : NULL;
	cfg.copy_threads = old->copy_threads;
	cfg.flags = old->flags;
	cfg.copy_engine = old->copy_engine;
	/* policy stays NULL: defaults, and the PAGEMOVE_POLICY* variables */
	for (unsigned i = 0; old->tiers && i < old->ntiers && i < PMV_MAX_TIERS; i++) {
		tiers[i].name = old->tiers[i].name;
		tiers[i].node = old->tiers[i].node;
		tiers[i].capacity = old->tiers[i].capacity;
	}
	/* More than PMV_MAX_TIERS: _pmv_create() refuses before reading tiers. */
	return _pmv_create(&cfg);
}
PMV_SYMVER_COMPAT(pmv_create_0_1, pmv_create, "PAGEMOVE_0.1");

PMV_API int pmv_tier_stats_0_1(pmv_ctx *ctx, int tier, struct pmv_tier_stats_0_1 *st)
{
	struct pmv_tier_stats now;
	int ret;

	if (!st)
		return _pmv_tier_stats(ctx, tier, NULL);	/* its -EINVAL and message */
	ret = _pmv_tier_stats(ctx, tier, &now);
	if (!ret)
		memcpy(st, &now, sizeof(*st));
	return ret;
}
PMV_SYMVER_COMPAT(pmv_tier_stats_0_1, pmv_tier_stats, "PAGEMOVE_0.1");

PMV_API int pmv_ctx_stats_0_1(pmv_ctx *ctx, struct pmv_ctx_stats_0_1 *st)
{
	struct pmv_ctx_stats now;
	int ret;

	if (!st)
		return _pmv_ctx_stats(ctx, NULL);
	ret = _pmv_ctx_stats(ctx, &now);
	if (!ret)
		memcpy(st, &now, sizeof(*st));
	return ret;
}
PMV_SYMVER_COMPAT(pmv_ctx_stats_0_1, pmv_ctx_stats, "PAGEMOVE_0.1");
