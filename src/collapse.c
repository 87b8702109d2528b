/* SPDX-License-Identifier: MIT */
/*
 * Coalescing (issue 14): a 2 MB page of a PMV_HUGE region that the kernel
 * maps with 512 PTEs (a partial MADV_DONTNEED, a COW after fork, pieces
 * faulted back) costs TLB misses and migrates piece by piece. khugepaged
 * cannot mend it: it refuses a userfaultfd range with empty PTEs. So the
 * page is migrated to its own tier, non-blocking, into a fresh 2 MB pool
 * page (a THP): present pieces are copied, discarded ones were given the
 * zero page by the move out, and the copy goes back as one PMD once the
 * empty page table left at the address is freed (migrate.c complete(),
 * which needs the kernel's PT_RECLAIM). Also the coverage figures of
 * pmv_ctx_stats.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "internal.h"

#define COLLAPSE_BATCH	16	/* pages per move call: 32 MB, a migration batch */

static bool page_split(pmv_ctx *ctx, struct _pmv_page *pg)
{
	uint32_t f = _pmv_page_flags(pg);

	/* far and parked pages are not mapped: nothing to coalesce now */
	return (f & (PG_present | PG_far | PG_parked)) == PG_present &&
	       !_pmv_huge_mapped(ctx, _pmv_page_addr(pg));
}

size_t _pmv_collapse_range(pmv_ctx *ctx, uintptr_t start, uintptr_t end, size_t max,
			   size_t *found)
{
	struct _pmv_page *pgs[COLLAPSE_BATCH];
	int tg[COLLAPSE_BATCH], st[COLLAPSE_BATCH];
	size_t left = 0, seen = 0, n = 0;
	struct _pmv_region *r = _pmv_region_find(ctx, start);

	if (!r)
		r = _pmv_region_next(ctx, start);
	for (; r && r->start < end && seen < max; r = _pmv_region_next(ctx, r->start)) {
		size_t k, last;

		if (r->ps != PMV_PS_2M)
			continue;
		k = start > r->start ? (start - r->start) >> r->shift : 0;
		last = (end < r->start + r->len ? end - r->start + PMV_SIZE_2M - 1 : r->len) >>
		       r->shift;
		for (; k < last && seen < max; k++) {
			struct _pmv_page *pg = &r->pages[k];

			if (!page_split(ctx, pg))
				continue;
			seen++;
			pgs[n] = pg;
			tg[n++] = pg->tier;	/* prepare() keeps it on its tier anyway */
			if (n == COLLAPSE_BATCH) {
				_pmv_move_list(ctx, n, pgs, tg, st,
					       PMV_MOVE_NONBLOCK | _PMV_MIG_COLLAPSE);
				for (size_t i = 0; i < n; i++)
					left += page_split(ctx, pgs[i]);
				n = 0;
			}
		}
	}
	if (n) {
		_pmv_move_list(ctx, n, pgs, tg, st, PMV_MOVE_NONBLOCK | _PMV_MIG_COLLAPSE);
		for (size_t i = 0; i < n; i++)
			left += page_split(ctx, pgs[i]);
	}
	if (found)
		*found = seen;
	return left;
}

PMV_API int pmv_collapse(pmv_ctx *ctx, void *addr, size_t len, int flags)
{
	uintptr_t start = (uintptr_t)addr & ~(PMV_SIZE_2M - 1), end = (uintptr_t)addr + len;
	size_t left;
	sigset_t sigs;
	bool any;

	PMV_CHECK_CTX(ctx);
	if (flags)
		return _pmv_set_errmsg(-EINVAL, "pmv_collapse: unknown flags");
	if (!len || end < (uintptr_t)addr)
		return _pmv_set_errmsg(-EINVAL, "pmv_collapse: empty or wrapping range");
	if (!_pmv_pt_reclaim())
		return _pmv_set_errmsg(-EOPNOTSUPP, "pmv_collapse: the kernel keeps empty page "
				       "tables (no CONFIG_PT_RECLAIM): a huge page cannot be "
				       "mapped back as one PMD");
	_pmv_signals_hold(&sigs);
	/* non-blocking: a fork or a region change under way is not waited for */
	if (pthread_rwlock_tryrdlock(&ctx->fork_lock)) {
		_pmv_signals_release(&sigs);
		return -EAGAIN;
	}
	if (!_pmv_regions_tryrdlock(&ctx->regions_lock)) {
		pthread_rwlock_unlock(&ctx->fork_lock);
		_pmv_signals_release(&sigs);
		return -EAGAIN;
	}
	any = _pmv_region_find(ctx, start) ||
	      (_pmv_region_next(ctx, start) && _pmv_region_next(ctx, start)->start < end);
	/*
	 * A page skipped as busy (its lock, a pool growth or fill in flight)
	 * may pass a moment later: go over the range again while that helps.
	 */
	left = any ? _pmv_collapse_range(ctx, start, end, SIZE_MAX, NULL) : 0;
	for (size_t prev = SIZE_MAX; left && left < prev;) {
		prev = left;
		left = _pmv_collapse_range(ctx, start, end, SIZE_MAX, NULL);
	}
	_pmv_regions_rdunlock(&ctx->regions_lock);
	pthread_rwlock_unlock(&ctx->fork_lock);
	_pmv_signals_release(&sigs);
	if (!any)
		return _pmv_set_errmsg(-EFAULT, "pmv_collapse: no managed memory in the range");
	return left > INT32_MAX ? INT32_MAX : (int)left;
}

void _pmv_huge_coverage(pmv_ctx *ctx, uint64_t *bytes, uint64_t *pmd_bytes)
{
	struct page_region v[64];

	*bytes = *pmd_bytes = 0;
	for (size_t i = 0; i < ctx->nregions; i++) {
		struct _pmv_region *r = ctx->regions[i];
		uintptr_t a = r->start, end = r->start + r->len;

		if (r->ps != PMV_PS_2M)
			continue;
		for (size_t k = 0; k < r->npages; k++) {
			uint32_t f = _pmv_page_flags(&r->pages[k]);

			if ((f & (PG_present | PG_far | PG_parked)) == PG_present)
				*bytes += PMV_SIZE_2M;
		}
		/* one walk of the region: the PMD-mapped ranges (neighbours merge) */
		while (a < end) {
			struct pm_scan_arg arg = {
				.size = sizeof(arg), .start = a, .end = end,
				.vec = (uintptr_t)v, .vec_len = 64,
				.category_mask = PAGE_IS_PRESENT | PAGE_IS_HUGE,
				.return_mask = PAGE_IS_HUGE,
			};
			long n = ioctl(ctx->pagemap_fd, PAGEMAP_SCAN, &arg);

			for (long j = 0; j < n; j++)
				*pmd_bytes += v[j].end - v[j].start;
			if (n < 64 || arg.walk_end <= a)
				break;
			a = arg.walk_end;
		}
	}
	/* racy against moves: a page mapped a moment before its descriptor says so */
	if (*pmd_bytes > *bytes)
		*pmd_bytes = *bytes;
}
