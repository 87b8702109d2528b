/* SPDX-License-Identifier: MIT */
/*
 * Far-tier stores: what holds the pages of a far tier (pagemove.h, enum
 * pmv_tier_kind) while their addresses are empty.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zstd.h>

#include "internal.h"

static const char *const kind_names[PMV_TIER_KIND_NR] = {
	[PMV_TIER_MEM] = "mem",
	[PMV_TIER_LZ4] = "lz4",
	[PMV_TIER_ZSTD] = "zstd",
	[PMV_TIER_FILE] = "file",
};

const char *_pmv_tier_kind_name(int kind)
{
	return kind >= 0 && kind < PMV_TIER_KIND_NR ? kind_names[kind] : "?";
}

int _pmv_store_config_check(const struct pmv_tier_config *tc, char *why, size_t len)
{
	switch (tc->kind) {
	case PMV_TIER_LZ4:
		if (tc->level || tc->path) {
			snprintf(why, len, "an lz4 tier has no level nor path");
			return -EINVAL;
		}
		return 0;
	case PMV_TIER_ZSTD:
		if (tc->path) {
			snprintf(why, len, "a zstd tier has no path");
			return -EINVAL;
		}
		/* 0 is the default, 3; negative levels are zstd's fast ones */
		if (tc->level < ZSTD_minCLevel() || tc->level > ZSTD_maxCLevel()) {
			snprintf(why, len, "zstd level %d is not in %d..%d", tc->level,
				 ZSTD_minCLevel(), ZSTD_maxCLevel());
			return -EINVAL;
		}
		return 0;
	case PMV_TIER_FILE:
		if (!tc->path || !*tc->path) {
			snprintf(why, len, "a file tier needs a path (a directory or a block device)");
			return -EINVAL;
		}
		if (tc->level) {
			snprintf(why, len, "a file tier has no level");
			return -EINVAL;
		}
		return 0;
	default:
		snprintf(why, len, "%s is not a far tier kind", _pmv_tier_kind_name(tc->kind));
		return -EINVAL;
	}
}
