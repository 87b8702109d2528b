/* SPDX-License-Identifier: MIT */
/* Statistics: racy snapshots of relaxed counters, never a stop-the-world. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static uint64_t rd(_Atomic uint64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

static int fail_cause(int err)
{
	switch (err) {
	case -EBUSY: return PMV_FAIL_BUSY;
	case -ENOMEM: return PMV_FAIL_NOMEM;
	case -EACCES: return PMV_FAIL_ACCES;
	case -ENOENT: return PMV_FAIL_NOENT;
	default: return PMV_FAIL_OTHER;
	}
}

void _pmv_count_fail(pmv_ctx *ctx, int tier, int err)
{
	if (tier >= 0 && (unsigned)tier < ctx->ntiers)
		_pmv_stat_add(&ctx->tiers[tier].fail[fail_cause(err)], 1);
}

int _pmv_tier_stats(pmv_ctx *ctx, int tier, struct pmv_tier_stats *st)
{
	struct _pmv_tier *t;
	sigset_t sigs;

	PMV_CHECK_CTX(ctx);
	if (!st || tier < 0 || (unsigned)tier >= ctx->ntiers)
		return _pmv_set_errmsg(-EINVAL, "pmv_tier_stats: no tier %d", tier);
	t = &ctx->tiers[tier];
	memset(st, 0, sizeof(*st));
	memcpy(st->name, t->name, sizeof(st->name));
	st->node = t->node;
	st->capacity = t->capacity;
	_pmv_signals_hold(&sigs);
	pthread_mutex_lock(&t->lock);
	st->resident_4k = t->resident[PMV_PS_4K];
	st->resident_2m = t->resident[PMV_PS_2M];
	st->pool_4k = t->pool[PMV_PS_4K].nclean + t->pool[PMV_PS_4K].ndirty;
	st->pool_2m = t->pool[PMV_PS_2M].nclean + t->pool[PMV_PS_2M].ndirty;
	pthread_mutex_unlock(&t->lock);
	st->resident_bytes = st->resident_4k * PMV_SIZE_4K + st->resident_2m * PMV_SIZE_2M;
	st->pool_bytes = st->pool_4k * PMV_SIZE_4K + st->pool_2m * PMV_SIZE_2M;
	st->first_touch = rd(&t->first_touch);
	st->fallback_in = rd(&t->fallback_in);
	st->migrate_in = rd(&t->migrate_in);
	st->migrate_out = rd(&t->migrate_out);
	st->migrate_bytes_in = rd(&t->migrate_bytes_in);
	st->verify_errors = rd(&t->verify_errors);
	for (int i = 0; i < PMV_FAIL_NR; i++)
		st->fail[i] = rd(&t->fail[i]);
	pthread_mutex_lock(&t->lru_lock);
	st->active = t->active.nr;
	st->inactive = t->inactive.nr;
	pthread_mutex_unlock(&t->lru_lock);
	_pmv_signals_release(&sigs);
	st->parked = rd(&t->parked);
	st->wmark_min = t->wmark[0];
	st->wmark_low = t->wmark[1];
	st->wmark_high = t->wmark[2];
	st->promote_in = rd(&t->promote_in);
	st->demote_in = rd(&t->demote_in);
	st->thp_fail = rd(&t->thp_fail);
	st->thp_compact = rd(&t->thp_compact);
	st->thp_compact_ok = rd(&t->thp_compact_ok);
	st->thp_pieces = rd(&t->thp_pieces);
	_pmv_far_stats(ctx, tier, st);
	return 0;
}

int _pmv_ctx_stats(pmv_ctx *ctx, struct pmv_ctx_stats *st)
{
	sigset_t sigs;

	PMV_CHECK_CTX(ctx);
	if (!st)
		return -EINVAL;
	memset(st, 0, sizeof(*st));
	st->mode = ctx->mode;
	st->mode_why = ctx->mode_why;
	st->mode_errno = ctx->mode_errno;
	st->ntiers = ctx->ntiers;
	_pmv_signals_hold(&sigs);
	_pmv_regions_rdlock(&ctx->regions_lock, false);
	st->regions = ctx->nregions;
	_pmv_huge_coverage(ctx, &st->huge_bytes, &st->huge_pmd_bytes);
	_pmv_regions_rdunlock(&ctx->regions_lock);
	st->huge_coverage = st->huge_bytes ?
			    (double)st->huge_pmd_bytes / (double)st->huge_bytes : 0;
	st->collapsed = rd(&ctx->collapsed);
	st->proactive = rd(&ctx->proactive);
	_pmv_signals_release(&sigs);
	st->faults_missing = rd(&ctx->faults_missing);
	st->faults_wp = rd(&ctx->faults_wp);
	st->faults_first_touch = rd(&ctx->faults_first_touch);
	st->faults_waited = rd(&ctx->faults_waited);
	st->faults_sigbus = rd(&ctx->faults_sigbus);
	st->faults_ahead = rd(&ctx->faults_ahead);
	st->migrations = rd(&ctx->migrations);
	st->migrate_bytes = rd(&ctx->migrate_bytes);
	st->policy_mode = atomic_load_explicit(&ctx->policy_mode, memory_order_relaxed);
	st->parked = rd(&ctx->parked);
	st->samples = rd(&ctx->samples);
	st->sample_faults = rd(&ctx->sample_faults);
	st->track_ns = rd(&ctx->track_ns);
	st->track_wall_ns = rd(&ctx->track_wall_ns);
	st->track_cpu_fraction = st->track_wall_ns ?
				 (double)st->track_ns / (double)st->track_wall_ns : 0;
	st->promoted = rd(&ctx->promoted);
	st->demoted = rd(&ctx->demoted);
	st->exchanged = rd(&ctx->exchanged);
	st->policy_bytes = rd(&ctx->policy_bytes);
	st->policy_rounds = rd(&ctx->policy_rounds);
	return 0;
}

/* PAGEMOVE_0.3: the layouts with room to grow (src/abi.c has 0.1's). */
PMV_API int pmv_tier_stats(pmv_ctx *ctx, int tier, struct pmv_tier_stats *st)
{
	return _pmv_tier_stats(ctx, tier, st);
}
PMV_SYMVER_DEFAULT(pmv_tier_stats, "PAGEMOVE_0.3");

PMV_API int pmv_ctx_stats(pmv_ctx *ctx, struct pmv_ctx_stats *st)
{
	return _pmv_ctx_stats(ctx, st);
}
PMV_SYMVER_DEFAULT(pmv_ctx_stats, "PAGEMOVE_0.3");

PMV_API int pmv_tier_count(pmv_ctx *ctx)
{
	PMV_CHECK_CTX(ctx);
	return (int)ctx->ntiers;
}
