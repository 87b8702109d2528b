/* SPDX-License-Identifier: MIT */
/*
 * Regions: managed anonymous memory. The region table is a sorted array
 * under ctx->regions_lock; lookups (faults, migrations) take it for reading,
 * mmap and munmap for writing, so a region is never freed under a reader.
 */
#include <errno.h>
#include <numaif.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

/* Callers hold ctx->regions_lock. */
struct _pmv_region *_pmv_region_find(pmv_ctx *ctx, uintptr_t addr)
{
	size_t lo = 0, hi = ctx->nregions;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		struct _pmv_region *r = ctx->regions[mid];

		if (addr < r->start)
			hi = mid;
		else if (addr >= r->start + r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

struct _pmv_region *_pmv_region_next(pmv_ctx *ctx, uintptr_t addr)
{
	size_t lo = 0, hi = ctx->nregions;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ctx->regions[mid]->start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ctx->nregions ? ctx->regions[lo] : NULL;
}

struct _pmv_page *_pmv_addr_to_page(pmv_ctx *ctx, uintptr_t addr,
				    struct _pmv_region **rp)
{
	struct _pmv_region *r = _pmv_region_find(ctx, addr);
	struct _pmv_page *pg = r ? &r->pages[(addr - r->start) >> r->shift] : NULL;

	if (pg && (_pmv_page_flags(pg) & PG_gone))
		pg = NULL, r = NULL;
	if (rp)
		*rp = r;
	return pg;
}

static int region_insert(pmv_ctx *ctx, struct _pmv_region *r)
{
	size_t i;

	if (ctx->nregions == ctx->cap_regions) {
		size_t ncap = ctx->cap_regions ? ctx->cap_regions * 2 : 16;
		void *nv = _pmv_krealloc(ctx->regions, ncap * sizeof(*ctx->regions));

		if (!nv)
			return -ENOMEM;
		ctx->regions = nv;
		ctx->cap_regions = ncap;
	}
	for (i = ctx->nregions; i > 0 && ctx->regions[i - 1]->start > r->start; i--)
		;
	/* never two regions on one address: lookups would find the wrong one */
	if ((i > 0 && ctx->regions[i - 1]->start + ctx->regions[i - 1]->len > r->start) ||
	    (i < ctx->nregions && r->start + r->len > ctx->regions[i]->start))
		return -EEXIST;
	memmove(&ctx->regions[i + 1], &ctx->regions[i],
		(ctx->nregions - i) * sizeof(*ctx->regions));
	ctx->regions[i] = r;
	ctx->nregions++;
	return 0;
}

static void region_remove(pmv_ctx *ctx, struct _pmv_region *r)
{
	size_t i;

	for (i = 0; i < ctx->nregions && ctx->regions[i] != r; i++)
		;
	memmove(&ctx->regions[i], &ctx->regions[i + 1],
		(ctx->nregions - i - 1) * sizeof(*ctx->regions));
	ctx->nregions--;
}

/* ---- region-table surgery: the program's own munmap and mremap ------- */

/*
 * A new region for descriptors [first, first+n) of r, placed at start.
 * The descriptors keep their state and their place on the LRU lists: the
 * neighbours are re-pointed to the copies. Caller holds regions_lock for
 * writing, so no page is locked and no list is walked meanwhile.
 */
static struct _pmv_region *region_clone(pmv_ctx *ctx, struct _pmv_region *r,
					size_t first, size_t n, uintptr_t start)
{
	struct _pmv_page *old = r->pages + first;
	struct _pmv_region *nr = _pmv_kcalloc(1, sizeof(*nr));

	if (!nr || !(nr->pages = _pmv_kcalloc(n, sizeof(*nr->pages)))) {
		_pmv_kfree(nr);
		return NULL;
	}
	nr->start = start;
	nr->shift = r->shift;
	nr->ps = r->ps;
	nr->npages = n;
	nr->len = n << r->shift;
	nr->flags = r->flags;
	memcpy(nr->pages, old, n * sizeof(*old));
	for (size_t i = 0; i < n; i++) {
		struct _pmv_page *pg = &nr->pages[i];
		struct _pmv_tier *t;

		pg->region = nr;
		_pmv_page_clear(pg, PG_gone);
		/* a moved range: its discard watches stay at the old address */
		if (start != r->start + (first << r->shift))
			_pmv_page_clear(pg, PG_zap);
		if (!(_pmv_page_flags(pg) & PG_lru))
			continue;
		t = &ctx->tiers[pg->tier];
		pthread_mutex_lock(&t->lru_lock);
#define RELOC(p) ((p) >= old && (p) < old + n ? nr->pages + ((p) - old) : (p))
		pg->lru_prev = RELOC(pg->lru_prev);
		pg->lru_next = RELOC(pg->lru_next);
#undef RELOC
		pg->lru_prev->lru_next = pg;
		pg->lru_next->lru_prev = pg;
		pthread_mutex_unlock(&t->lru_lock);
	}
	return nr;
}

static void region_free(struct _pmv_region *r)
{
	_pmv_kfree(r->pages);
	_pmv_kfree(r);
}

/* A page whose address is no longer ours: uncharge it. */
static void region_page_drop(pmv_ctx *ctx, struct _pmv_page *pg)
{
	if (!(_pmv_page_flags(pg) & PG_present))
		return;
	if (_pmv_page_flags(pg) & PG_parked)
		_pmv_park_drop(ctx, pg);
	_pmv_far_drop(ctx, pg);
	_pmv_lru_del(ctx, pg);
	_pmv_tier_uncharge(&ctx->tiers[pg->tier], pg->region->ps, 1);
	_pmv_page_clear(pg, PG_present);
}

/*
 * A piece that cannot enter the table (no memory, or the program mapped
 * something managed over its new place): its pages stay mapped, with their
 * data, as plain memory the library no longer tracks.
 */
static void region_abandon(pmv_ctx *ctx, struct _pmv_region *r)
{
	for (size_t i = 0; i < r->npages; i++) {
		struct _pmv_page *pg = &r->pages[i];

		/*
		 * A parked page goes back to its address first, directly: this
		 * runs with regions_lock written, so it may not take event_lock.
		 */
		if (_pmv_page_flags(pg) & PG_parked)
			_pmv_uffd_move(ctx, _pmv_page_addr(pg), (uintptr_t)pg->park,
				       _pmv_page_size(pg), PMV_MV_WAKE, NULL);
		_pmv_far_abandon(ctx, pg);	/* and an evicted one, copied in */
		region_page_drop(ctx, pg);
	}
	region_free(r);
}

/*
 * [s, e) of the region table left its place: unmapped (to == 0) or moved
 * to `to` by mremap. Whole pages only: a huge page that the range cuts
 * stays where it is, partly mapped, as after a partial discard.
 */
static void regions_cut(pmv_ctx *ctx, uintptr_t s, uintptr_t e, uintptr_t to)
{
	uintptr_t a = s;

	while (a < e) {
		struct _pmv_region *r = _pmv_region_find(ctx, a), *mid = NULL, *right = NULL;
		size_t psz, first, last;

		if (!r) {
			r = _pmv_region_next(ctx, a);
			if (!r || r->start >= e)
				return;
			a = r->start;
			continue;
		}
		psz = (size_t)1 << r->shift;
		first = (a - r->start + psz - 1) >> r->shift;
		last = ((e < r->start + r->len ? e : r->start + r->len) - r->start) >> r->shift;
		a = r->start + r->len;
		if (first >= last)
			continue;
		if (to)
			mid = region_clone(ctx, r, first, last - first,
					   to + (r->start + (first << r->shift) - s));
		if (last < r->npages)
			right = region_clone(ctx, r, last, r->npages - last,
					     r->start + (last << r->shift));
		if ((to && !mid) || (last < r->npages && !right)) {
			/* no memory: the pages stay PG_gone, which loses nothing */
			if (mid)
				region_free(mid);
			if (right)
				region_free(right);
			continue;
		}
		for (size_t i = first; !to && i < last; i++)
			region_page_drop(ctx, &r->pages[i]);	/* done by the event; for safety */
		if (!first) {
			region_remove(ctx, r);
			region_free(r);
		} else {
			r->npages = first;
			r->len = first << r->shift;
		}
		if (right && region_insert(ctx, right))
			region_abandon(ctx, right);
		if (mid && region_insert(ctx, mid))
			region_abandon(ctx, mid);
	}
}

/*
 * A parked or evicted huge page that a queued remap cuts (the range starts
 * or ends inside it): its pieces in the moved part must reach their new
 * address while the surgery that says where is still queued (copy_in in
 * event.c follows it), so it is unparked, or loaded back from its far
 * tier, before. An evicted page left far lost the moved pieces: the kernel
 * had nothing mapped to take along, and once the cut is applied the page
 * loads only at its old address, so the new one read zeros. The caller
 * holds regions_lock written, so no mover holds a page lock now: a page
 * that is locked anyway is left for the next try. -EAGAIN: not now (an
 * event unread).
 */
static int unpark_cut(pmv_ctx *ctx, uintptr_t a)
{
	struct _pmv_page *pg = _pmv_addr_to_page(ctx, a, NULL);
	uint32_t f;
	int ret;

	if (!pg || a == _pmv_page_addr(pg))
		return 0;
	f = _pmv_page_flags(pg);
	if (!(f & (PG_parked | PG_far)))
		return 0;
	if (!_pmv_page_trylock(pg))
		return -EAGAIN;
	f = _pmv_page_flags(pg);
	/* over capacity if need be, as fork's loads: else the moved pieces are lost */
	if (f & PG_far)
		ret = _pmv_far_load(ctx, pg, -1, PMV_FAR_WAKE | PMV_FAR_FORCE);
	else
		ret = _pmv_unpark(ctx, pg);
	_pmv_page_unlock(ctx, pg);
	return ret == -EAGAIN ? -EAGAIN : 0;
}

int _pmv_regions_apply(pmv_ctx *ctx)
{
	struct _pmv_surgery *ops;
	size_t n;

	if (!atomic_load_explicit(&ctx->surgery_pending, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&ctx->surgery_mu);
	n = ctx->nsurgery;
	ops = n ? _pmv_kcalloc(n, sizeof(*ops)) : NULL;
	if (ops)
		memcpy(ops, ctx->surgery, n * sizeof(*ops));
	pthread_mutex_unlock(&ctx->surgery_mu);
	for (size_t i = 0; ops && i < n; i++) {
		if (ops[i].kind != PMV_SURGERY_REMAP)
			continue;
		if (unpark_cut(ctx, ops[i].from) || unpark_cut(ctx, ops[i].from + ops[i].len)) {
			_pmv_kfree(ops);
			return -EAGAIN;
		}
	}
	_pmv_kfree(ops);
	pthread_mutex_lock(&ctx->surgery_mu);
	ops = ctx->surgery;
	n = ctx->nsurgery;
	ctx->surgery = NULL;
	ctx->nsurgery = ctx->cap_surgery = 0;
	atomic_store_explicit(&ctx->surgery_pending, 0, memory_order_release);
	pthread_mutex_unlock(&ctx->surgery_mu);
	for (size_t i = 0; i < n; i++)
		regions_cut(ctx, ops[i].from, ops[i].from + ops[i].len,
			    ops[i].kind == PMV_SURGERY_REMAP ? ops[i].to : 0);
	_pmv_kfree(ops);
	return 0;
}

/*
 * regions_lock for writing, with the table brought up to date. The
 * program's munmap returns once a fault handler has read its event, which
 * may be before the change is queued: event_lock, held by that handler
 * from read() until the batch's events are applied, is the barrier.
 */
static void regions_wrlock(pmv_ctx *ctx)
{
	pthread_rwlock_rdlock(&ctx->event_lock);
	pthread_rwlock_unlock(&ctx->event_lock);
	_pmv_regions_wrlock(&ctx->regions_lock);
	/* a remap's cut page waits for its mremap's caller to go on: let it */
	while (_pmv_regions_apply(ctx)) {
		_pmv_regions_wrunlock(&ctx->regions_lock);
		sched_yield();
		_pmv_regions_wrlock(&ctx->regions_lock);
	}
}

static bool thp_enabled(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return !strstr(buf, "[never]") && buf[0];
}

/*
 * Give the region an explicit memory policy. Without one, the kernel's
 * automatic NUMA balancing scans it (the default policy has MPOL_F_MOF) and
 * migrates pages toward the CPUs that touch them, off their tiers' nodes:
 * the guest suite caught it. An explicit policy without MPOL_F_MOF opts the
 * VMA out. It also steers the kernel's own allocations here (a COW break
 * after fork) to the preferred tier's node.
 */
static void region_set_policy(pmv_ctx *ctx, void *p, size_t len, int tier)
{
	unsigned long mask[16] = { 0 };
	int node = ctx->tiers[tier].node;

	if (node >= 0) {
		mask[node / (8 * sizeof(long))] |= 1UL << (node % (8 * sizeof(long)));
		mbind(p, len, MPOL_PREFERRED, mask, sizeof(mask) * 8, 0);
	} else {
		mbind(p, len, MPOL_LOCAL, NULL, 0, 0);
	}
	/* ENOSYS without NUMA support: nothing to opt out of then */
}

/* Place every page of a new region now (PMV_POPULATE, user-mode-only mode). */
static int region_populate(pmv_ctx *ctx, struct _pmv_region *r)
{
	for (size_t i = 0; i < r->npages; i++) {
		struct _pmv_page *pg = &r->pages[i];
		sigset_t sigs;
		int ret;

		_pmv_signals_hold(&sigs);
		if (_pmv_page_lock_timeout(pg, 1000000)) {
			_pmv_signals_release(&sigs);
			return -EBUSY;
		}
		ret = 0;
		if (!(_pmv_page_flags(pg) & PG_present))
			ret = _pmv_first_touch(ctx, pg, 0);
		_pmv_page_unlock(ctx, pg);
		_pmv_signals_release(&sigs);
		if (ret && ret != -EEXIST)
			return ret;
	}
	return 0;
}

/* How long pmv_mmap waits for a reused range's UNMAP event: a bug bound,
 * far beyond a handler's read under any load. */
#define STALE_WAIT_NS	(10ULL * 1000 * 1000 * 1000)

PMV_API void *pmv_mmap(pmv_ctx *ctx, size_t len, int tier, int flags)
{
	struct _pmv_region *r = NULL;
	size_t psz;
	void *p = MAP_FAILED, *base;
	sigset_t sigs;
	int ret;

	if (!ctx) {
		errno = EINVAL;
		return NULL;
	}
	if (ctx->pid != getpid()) {
		errno = ECHILD;
		return NULL;
	}
	if (tier == PMV_TIER_DEFAULT)
		tier = 0;
	/* a far tier holds evicted pages only: a first touch goes to memory */
	if (!len || tier < 0 || (unsigned)tier >= ctx->ntiers || _pmv_tier_far(ctx, tier) ||
	    (flags & ~(PMV_HUGE | PMV_BIND | PMV_POPULATE))) {
		_pmv_set_errmsg(-EINVAL, "pmv_mmap: bad length, tier (far tiers hold no first "
				"touch) or flags");
		errno = EINVAL;
		return NULL;
	}
	if ((flags & PMV_HUGE) && !ctx->thp_ok) {
		_pmv_set_errmsg(-EOPNOTSUPP, "pmv_mmap: transparent huge pages are disabled");
		errno = EOPNOTSUPP;
		return NULL;
	}
	if (flags & PMV_HUGE)
		_pmv_tier_probe_huge();
	psz = flags & PMV_HUGE ? PMV_SIZE_2M : PMV_SIZE_4K;
	if (len > SIZE_MAX - 2 * psz) {
		errno = ENOMEM;
		return NULL;
	}
	len = (len + psz - 1) & ~(psz - 1);

	r = _pmv_kcalloc(1, sizeof(*r));
	if (!r)
		goto nomem;
	r->shift = flags & PMV_HUGE ? PMV_SHIFT_2M : PMV_SHIFT_4K;
	r->ps = flags & PMV_HUGE ? PMV_PS_2M : PMV_PS_4K;
	r->len = len;
	r->npages = len >> r->shift;
	r->flags = flags;
	r->pages = _pmv_kcalloc(r->npages, sizeof(*r->pages));
	if (!r->pages)
		goto nomem;

	/*
	 * Never populated, even after mlockall(MCL_FUTURE): every page must
	 * come from a pool, through a fault handler. Nor locked: UFFDIO_MOVE
	 * refuses to move between a locked and an unlocked mapping, and the
	 * pools are kept unlocked (tier.c: a locked hole refuses MADV_DONTNEED).
	 */
	base = _pmv_map_anon(len, psz);
	if (!base) {
		ret = errno;
		_pmv_set_errmsg(-ret, "pmv_mmap: cannot map %zu bytes: %s", len, strerror(ret));
		errno = ret;
		goto out;
	}
	p = base;
	/*
	 * Say the page size to the kernel: a 4 KB region must never be
	 * collapsed into a THP behind our back (khugepaged), and a 2 MB one
	 * must take PMD-sized moves.
	 */
	if (madvise(p, len, flags & PMV_HUGE ? MADV_HUGEPAGE : MADV_NOHUGEPAGE))
		goto out;	/* errno from madvise */
	region_set_policy(ctx, p, len, tier);
	ret = _pmv_uffd_register(ctx, p, len, true);
	if (ret) {
		errno = -ret;
		goto out;
	}
	/*
	 * A first touch that finds no pool page and no address space for a
	 * chunk could only send SIGBUS: fail here instead, as mmap(2) does
	 * when RLIMIT_AS does not allow the mapping. Every tier the fault
	 * thread may try (first_touch_tiers()) needs its pool's reserve.
	 */
	for (unsigned t = 0; t < ctx->ntiers; t++) {
		if ((flags & PMV_BIND) && (int)t != tier)
			continue;
		ret = _pmv_pool_reserve(ctx, &ctx->tiers[t], r->ps);
		if (ret) {
			_pmv_set_errmsg(ret, "pmv_mmap: no address space for tier %s's pool "
					"(RLIMIT_AS?)", ctx->tiers[t].name);
			errno = -ret;
			goto out;
		}
	}
	r->start = (uintptr_t)p;
	for (size_t i = 0; i < r->npages; i++) {
		r->pages[i].region = r;
		r->pages[i].tier = -1;
		r->pages[i].pol_tier = tier;
		if (flags & PMV_BIND)
			r->pages[i].flags = PG_bind;
	}

	_pmv_signals_hold(&sigs);
	regions_wrlock(ctx);
	ret = region_insert(ctx, r);
	/*
	 * The kernel has just given us this range, so a region the table still
	 * has on it is gone: another thread unmapped it, and waits in munmap
	 * until a handler reads the UNMAP event, which the kernel sends after
	 * the unmap. Let that event land rather than fail.
	 */
	for (uint64_t until = _pmv_now_ns() + STALE_WAIT_NS;
	     ret == -EEXIST && _pmv_now_ns() < until;) {
		_pmv_regions_wrunlock(&ctx->regions_lock);
		sched_yield();
		regions_wrlock(ctx);
		ret = region_insert(ctx, r);
	}
	_pmv_regions_wrunlock(&ctx->regions_lock);
	_pmv_signals_release(&sigs);
	if (ret) {
		if (ret == -EEXIST)
			_pmv_set_errmsg(ret, "pmv_mmap: the table still has a region at %p that "
					"the kernel reused; its UNMAP event never came", p);
		errno = -ret;
		goto out;
	}

	if ((flags & PMV_POPULATE) || ctx->mode == PMV_MODE_USER_ONLY) {
		ret = region_populate(ctx, r);
		if (ret) {
			pmv_munmap(ctx, p, len);
			_pmv_set_errmsg(ret, "pmv_mmap: cannot populate %zu bytes: tiers full", len);
			errno = -ret;
			return NULL;
		}
	}
	return p;

nomem:
	errno = ENOMEM;
out:
	ret = errno;
	if (p != MAP_FAILED)
		munmap(p, len);
	if (r)
		_pmv_kfree(r->pages);
	_pmv_kfree(r);
	errno = ret;
	return NULL;
}

PMV_API int pmv_munmap(pmv_ctx *ctx, void *addr, size_t len)
{
	uintptr_t start = (uintptr_t)addr, end;
	struct _pmv_region *gone[64];
	size_t ngone = 0, more;

	PMV_CHECK_CTX(ctx);
	if (!addr)
		return _pmv_set_errmsg(-EINVAL, "pmv_munmap: NULL address");
	if (len > UINTPTR_MAX - start)
		return _pmv_set_errmsg(-EINVAL, "pmv_munmap: range wraps");
	/*
	 * Writing the lock waits for migrations and faults in flight, which
	 * hold it for reading; after that nobody can reach the region.
	 */
	do {
		size_t n[PMV_MAX_TIERS][PMV_PS_NR] = { { 0 } };
		struct _pmv_region *r;
		sigset_t sigs;

		_pmv_signals_hold(&sigs);
		regions_wrlock(ctx);
		r = _pmv_region_find(ctx, start);
		if (!r)
			r = _pmv_region_next(ctx, start);
		/*
		 * One region, or the pieces the program's own munmap or
		 * mremap left of one: every region the range meets, whole.
		 */
		end = r ? start + (((len + (1UL << r->shift) - 1) >> r->shift) << r->shift) : start;
		ngone = 0;
		more = 0;
		for (; r && r->start < end; r = _pmv_region_next(ctx, r->start)) {
			if (r->start < start || r->start + r->len > end) {
				_pmv_regions_wrunlock(&ctx->regions_lock);
				_pmv_signals_release(&sigs);
				return _pmv_set_errmsg(-EINVAL,
						       "pmv_munmap: %p+%zu is not exactly one managed region",
						       addr, len);
			}
			if (ngone == 64) {
				more = 1;
				break;
			}
			gone[ngone++] = r;
		}
		if (!ngone) {
			_pmv_regions_wrunlock(&ctx->regions_lock);
			_pmv_signals_release(&sigs);
			return _pmv_set_errmsg(-EINVAL,
					       "pmv_munmap: %p+%zu is not exactly one managed region",
					       addr, len);
		}
		for (size_t g = 0; g < ngone; g++) {
			r = gone[g];
			region_remove(ctx, r);
			for (size_t i = 0; i < r->npages; i++) {
				struct _pmv_page *pg = &r->pages[i];

				if (!(_pmv_page_flags(pg) & PG_present))
					continue;
				if (_pmv_page_flags(pg) & PG_parked)
					_pmv_park_drop(ctx, pg);
				_pmv_far_drop(ctx, pg);
				_pmv_lru_del(ctx, pg);
				n[pg->tier][r->ps]++;
			}
		}
		_pmv_regions_wrunlock(&ctx->regions_lock);
		_pmv_signals_release(&sigs);

		for (size_t g = 0; g < ngone; g++) {
			r = gone[g];
			/* only what is still ours: the gaps may be the program's now */
			_pmv_uffd_unregister(ctx, (void *)r->start, r->len);
			munmap((void *)r->start, r->len);
			/* Threads still waiting in a fault here retry and see the unmap. */
			_pmv_uffd_wake(ctx, r->start, r->len);
			region_free(r);
		}
		for (unsigned t = 0; t < ctx->ntiers; t++)
			for (int ps = 0; ps < PMV_PS_NR; ps++)
				if (n[t][ps])
					_pmv_tier_uncharge(&ctx->tiers[t], ps, n[t][ps]);
	} while (more);
	return 0;
}

void _pmv_regions_destroy(pmv_ctx *ctx)
{
	regions_wrlock(ctx);
	_pmv_regions_wrunlock(&ctx->regions_lock);
	while (ctx->nregions) {
		struct _pmv_region *r = ctx->regions[ctx->nregions - 1];

		pmv_munmap(ctx, (void *)r->start, r->len);
	}
	_pmv_kfree(ctx->regions);
	ctx->regions = NULL;
}

bool _pmv_thp_available(void)
{
	return thp_enabled();
}

/* In a fork child: drop the bookkeeping, keep the memory (it is the child's). */
void _pmv_regions_forget(pmv_ctx *ctx)
{
	for (size_t i = 0; i < ctx->nregions; i++) {
		_pmv_kfree(ctx->regions[i]->pages);
		_pmv_kfree(ctx->regions[i]);
	}
	_pmv_kfree(ctx->regions);
	ctx->regions = NULL;
	ctx->nregions = 0;
}

PMV_API int pmv_mbind(pmv_ctx *ctx, void *addr, size_t len, int tier, int flags)
{
	struct _pmv_region *r;
	struct _pmv_page **pgs = NULL;
	int *tiers = NULL, *status = NULL;
	size_t first, npages, nmove = 0;
	sigset_t sigs;
	int ret = 0;

	PMV_CHECK_CTX(ctx);
	if (flags & ~(PMV_MOVE | PMV_MOVE_ALL | PMV_MPOL_BIND | PMV_MF_STRICT))
		return _pmv_set_errmsg(-EINVAL, "pmv_mbind: unknown flags");
	if (tier == PMV_TIER_DEFAULT)
		tier = 0;
	if (tier < 0 || (unsigned)tier >= ctx->ntiers)
		return _pmv_set_errmsg(-EINVAL, "pmv_mbind: no tier %d", tier);
	if (!addr || !len)
		return _pmv_set_errmsg(-EINVAL, "pmv_mbind: empty range");

	/* fork_lock too: with PMV_MOVE this migrates (see _pmv_move_list) */
	_pmv_signals_hold(&sigs);
	pthread_rwlock_rdlock(&ctx->fork_lock);
	_pmv_regions_rdlock(&ctx->regions_lock, false);
	r = _pmv_region_find(ctx, (uintptr_t)addr);
	if (!r) {
		ret = _pmv_set_errmsg(-EFAULT, "pmv_mbind: %p is not managed memory", addr);
		goto out;
	}
	if (((uintptr_t)addr | len) & ((1UL << r->shift) - 1)) {
		ret = _pmv_set_errmsg(-EINVAL, "pmv_mbind: range not aligned to the region's page size");
		goto out;
	}
	if (len > r->start + r->len - (uintptr_t)addr) {
		ret = _pmv_set_errmsg(-EFAULT, "pmv_mbind: range leaves its region");
		goto out;
	}
	/* a first touch there may now use this tier's pool: see pmv_mmap */
	ret = _pmv_pool_reserve(ctx, &ctx->tiers[tier], r->ps);
	if (ret) {
		_pmv_set_errmsg(ret, "pmv_mbind: no address space for tier %s's pool (RLIMIT_AS?)",
				ctx->tiers[tier].name);
		goto out;
	}
	first = ((uintptr_t)addr - r->start) >> r->shift;
	npages = len >> r->shift;
	for (size_t i = 0; i < npages; i++) {
		struct _pmv_page *pg = &r->pages[first + i];

		/*
		 * pol_tier is read by the fault handlers under the page lock; a
		 * racing first touch may still use the old policy, which the
		 * move below (with PMV_MOVE) then corrects.
		 */
		__atomic_store_n(&pg->pol_tier, (int8_t)tier, __ATOMIC_RELAXED);
		if (flags & PMV_MPOL_BIND)
			_pmv_page_set(pg, PG_bind);
		else
			_pmv_page_clear(pg, PG_bind);
	}
	if (!(flags & (PMV_MOVE | PMV_MOVE_ALL)))
		goto out;

	/* kmem: under regions_lock, which a fault may wait for (internal.h) */
	pgs = _pmv_kcalloc(npages, sizeof(*pgs));
	tiers = _pmv_kcalloc(npages, sizeof(*tiers));
	status = _pmv_kcalloc(npages, sizeof(*status));
	if (!pgs || !tiers || !status) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < npages; i++) {
		struct _pmv_page *pg = &r->pages[first + i];
		uint32_t f = _pmv_page_flags(pg);

		if ((f & PG_present) && __atomic_load_n(&pg->tier, __ATOMIC_RELAXED) != tier) {
			pgs[nmove] = pg;
			tiers[nmove++] = tier;
		}
	}
	if (nmove) {
		int left = _pmv_move_list(ctx, nmove, pgs, tiers, status,
					  flags & PMV_MOVE_ALL);
		if (left < 0)
			ret = left;
		else if (left > 0 && (flags & PMV_MF_STRICT))
			ret = _pmv_set_errmsg(-EIO, "pmv_mbind: %d pages could not be moved", left);
	}
out:
	_pmv_regions_rdunlock(&ctx->regions_lock);
	pthread_rwlock_unlock(&ctx->fork_lock);
	_pmv_signals_release(&sigs);
	_pmv_kfree(pgs);
	_pmv_kfree(tiers);
	_pmv_kfree(status);
	return ret;
}
