/* SPDX-License-Identifier: MIT */
/*
 * What the program does to its own address space: userfaultfd's
 * non-cooperative events, read by whichever fault handler reads them
 * (fault.c: several handlers read the one userfaultfd).
 *
 *   UFFD_EVENT_REMOVE  madvise(MADV_DONTNEED / MADV_FREE) on managed memory;
 *                      sent before the kernel zaps the range;
 *   UFFD_EVENT_UNMAP   munmap(2), an mremap(2) shrink, mmap(MAP_FIXED) over
 *                      it; sent after the range is gone;
 *   UFFD_EVENT_REMAP   mremap(2) that moved it; sent after the move, the
 *                      page tables (so the mapped pages) went along.
 *
 * The kernel completes an event, and lets the program's call go on, when
 * the event is read, not when we have acted on it; until then every ioctl
 * on ctx->uffd fails with EAGAIN (UFFDIO_MOVE or COPY into a VMA that is
 * gone says ENOENT first: move_in_from waits for the event then too). So
 * the zap of a REMOVE may run at any time after our read(). The race that matters is a mover that holds a
 * page out of its address (a migration, an exchange, a parked page) and
 * moves it back in after the zap: the program would read its discarded
 * data again. event_lock closes it. A handler holds it for writing from
 * before its read() until it has marked every page its batch's events
 * touch, so one handler reads at a time; every move into a region
 * address, by any thread, a handler's own included (another handler may
 * be reading meanwhile), holds it for reading and checks the marks first
 * (_pmv_move_in). A move in is thus either wholly before the read (and the
 * zap, after it, removes what it put there) or after the marks (and it
 * does not put back a discarded page, nor into an address that is gone;
 * a page mremap moved goes to its new address).
 *
 * Marks. A page the reading handler can lock is dealt with at once. A page
 * someone else holds (a migration, or another handler answering a fault
 * on it) gets PG_discard (pieces recorded in ctx->discards) or PG_gone,
 * and its holder settles it when it unlocks (_pmv_page_unlock); a holder
 * that meets a mark at the gate gets -ECANCELED and must wake whoever
 * waits at the address. Region-table changes (UNMAP, REMAP) need
 * regions_lock for writing, which no handler may wait for (a copier
 * holding it for reading may need a handler, see fault.c). They queue as
 * ctx->surgery, and the janitor handler applies them when no reader is
 * left (_pmv_regions_apply); until then the dead pages are PG_gone, and
 * faults at a moved range's new address wait for it.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

/* ---- discarded pieces of locked pages ---------------------------------- */

static int record_discard(pmv_ctx *ctx, struct _pmv_page *pg, size_t off, size_t len)
{
	struct _pmv_discard *d;

	pthread_mutex_lock(&ctx->discard_mu);
	if (ctx->ndiscards == ctx->cap_discards) {
		size_t ncap = ctx->cap_discards ? 2 * ctx->cap_discards : 64;
		void *nv = _pmv_krealloc(ctx->discards, ncap * sizeof(*ctx->discards));

		if (!nv) {
			pthread_mutex_unlock(&ctx->discard_mu);
			return -ENOMEM;
		}
		ctx->discards = nv;
		ctx->cap_discards = ncap;
	}
	d = &ctx->discards[ctx->ndiscards++];
	d->pg = pg;
	d->off = off;
	d->len = len;
	pthread_mutex_unlock(&ctx->discard_mu);
	return 0;
}

/*
 * Zero, in the copy at `data` of pg, every piece the program discarded
 * below `limit` bytes (the copy may hold only a head of the page); with
 * `take`, also drop those records. Returns true if they cover all of the
 * page. Caller holds the page lock.
 */
#define PIECE_WORDS	(PMV_SIZE_2M / PMV_SIZE_4K / 64)

static bool apply_discards(pmv_ctx *ctx, struct _pmv_page *pg, void *data, size_t limit,
			   bool take)
{
	size_t size = _pmv_page_size(pg), npieces = size / PMV_SIZE_4K, covered = 0;
	uint64_t bits[PIECE_WORDS] = { 0 };

	pthread_mutex_lock(&ctx->discard_mu);
	for (size_t i = 0; i < ctx->ndiscards;) {
		struct _pmv_discard *d = &ctx->discards[i];

		if (d->pg != pg) {
			i++;
			continue;
		}
		for (size_t p = d->off / PMV_SIZE_4K; p < (d->off + d->len) / PMV_SIZE_4K; p++)
			bits[p / 64] |= 1ULL << (p % 64);
		if (take)
			*d = ctx->discards[--ctx->ndiscards];
		else
			i++;
	}
	pthread_mutex_unlock(&ctx->discard_mu);
	for (size_t p = 0; p < npieces; p++) {
		if (!(bits[p / 64] & (1ULL << (p % 64))))
			continue;
		covered++;
		if (data && p * PMV_SIZE_4K < limit)
			memset((char *)data + p * PMV_SIZE_4K, 0, PMV_SIZE_4K);
	}
	return covered == npieces;
}

/*
 * The program discarded all of a locked page: it has no page now. A parked
 * page dies in its slot; a present one is uncharged (the zap, if it has not
 * run yet, frees it; nothing can fault on it before).
 */
void _pmv_page_forget(pmv_ctx *ctx, struct _pmv_page *pg)
{
	uint32_t f = _pmv_page_flags(pg);
	int ps = pg->region->ps;

	if (!(f & PG_present))
		return;
	if (f & PG_parked)
		_pmv_park_drop(ctx, pg);
	if (f & PG_far)
		_pmv_far_drop(ctx, pg);
	_pmv_lru_del(ctx, pg);
	_pmv_tier_uncharge(&ctx->tiers[pg->tier], ps, 1);
	_pmv_page_clear(pg, PG_present | PG_active | PG_referenced | PG_isolated);
}

/*
 * A discard of [off, off+len) of a page we hold locked. A page discarded
 * whole at its address stays ours until the watch sees its zap (below):
 * after MADV_FREE there is none, and the page, kept and maybe written
 * again, is still the program's memory. Unwatched (no memory), it goes now.
 */
static void discard_locked(pmv_ctx *ctx, struct _pmv_page *pg, size_t off, size_t len)
{
	uint32_t f = _pmv_page_flags(pg);

	if (!(f & PG_present))
		return;
	/*
	 * An evicted page's address is empty, as a parked one's: the zap
	 * misses it. Whole, it goes now; in part (a huge page), it comes
	 * back parked, so that its pieces can be zeroed in its slot.
	 */
	if ((f & PG_far) && !(off == 0 && len == _pmv_page_size(pg))) {
		if (!_pmv_far_to_parked(ctx, pg)) {
			f = _pmv_page_flags(pg);
		} else {
			/*
			 * No room to park it (a full memory tier): zero the
			 * pieces in the stored copy. Left as it was, the next
			 * load brought the discarded bytes back (t_madvise's
			 * pieces with PMV_TEST_EVICT_CAP).
			 */
			void *buf = _pmv_far_read(ctx, pg);

			if (buf) {
				memset((char *)buf + off, 0, len);
				_pmv_far_rewrite(ctx, pg, buf);
				_pmv_far_buf_put(buf, _pmv_page_size(pg));
			}
		}
	}
	if (off == 0 && len == _pmv_page_size(pg)) {
		if ((f & (PG_parked | PG_far)) || !(f & PG_zap))
			_pmv_page_forget(ctx, pg);
	} else if (f & PG_parked) {
		/* its address is empty: the zap misses it, so zero the slot */
		memset((char *)pg->park + off, 0, len);
	}
	/*
	 * Part of a mapped huge page: the zap splits it and frees the pieces;
	 * the page stays charged whole, as the kernel keeps the THP until it
	 * is split for good, and the fault path knows partly mapped pages.
	 */
}

/*
 * A discard of a page at its address: pieces of a huge page, or all of a
 * page. The program's madvise goes on, and zaps, once the event is read;
 * the records that cover a page someone holds are dropped when it
 * unlocks, which may come first. A page moved out after that and before
 * the zap (a migration, a park) would escape it and come back with the
 * discarded bytes. So PG_zap keeps movers off the page until the discarded
 * range is seen unmapped. A page discarded whole is forgotten then; if the
 * range is still mapped when the wait ends, it was MADV_FREE (which leaves
 * the pages, lazily freed, and a write keeps them), and the page stays.
 *
 * Watches name addresses, not descriptors: region-table surgery may copy
 * a descriptor elsewhere (a moved range's copy loses PG_zap), and a watch
 * whose address has no page any more just ends. They are touched with
 * regions_lock read and event_lock written: by the handler reading the
 * event, the janitor, and a first touch (_pmv_event_reap/_unwatch).
 */
#define ZAP_WAIT_NS	1000000000UL	/* MADV_FREE never unmaps; nor does a madvise whose VMA changed */

/*
 * Call fn for every page we know in [s, e), with the part of the page the
 * range covers, while it returns true. Returns false if fn stopped it.
 */
typedef bool (*range_fn)(pmv_ctx *ctx, struct _pmv_page *pg, size_t off, size_t len, void *arg);

static bool for_range(pmv_ctx *ctx, uintptr_t s, uintptr_t e, range_fn fn, void *arg)
{
	for (uintptr_t a = s; a < e;) {
		struct _pmv_region *r = _pmv_region_find(ctx, a);

		if (!r) {
			r = _pmv_region_next(ctx, a);
			if (!r || r->start >= e)
				return true;
			a = r->start;
			continue;
		}
		for (; a < e && a < r->start + r->len;) {
			struct _pmv_page *pg = &r->pages[(a - r->start) >> r->shift];
			uintptr_t pa = _pmv_page_addr(pg), pe = pa + _pmv_page_size(pg);

			if (!fn(ctx, pg, a - pa, (e < pe ? e : pe) - a, arg))
				return false;
			a = pe;
		}
	}
	return true;
}

/* 0, or -ENOMEM. */
static int watch_add(pmv_ctx *ctx, uintptr_t s, uintptr_t e, uint64_t until)
{
	if (ctx->nzap_wait == ctx->cap_zap_wait) {
		size_t ncap = ctx->cap_zap_wait ? 2 * ctx->cap_zap_wait : 16;
		void *nv = _pmv_krealloc(ctx->zap_wait, ncap * sizeof(*ctx->zap_wait));

		if (!nv)
			return -ENOMEM;
		ctx->zap_wait = nv;
		ctx->cap_zap_wait = ncap;
	}
	ctx->zap_wait[ctx->nzap_wait++] = (struct _pmv_zap_wait){ .start = s, .end = e,
								  .until = until };
	return 0;
}

static bool set_zap(pmv_ctx *ctx, struct _pmv_page *pg, size_t off, size_t len, void *arg)
{
	(void)ctx, (void)off, (void)len, (void)arg;
	/*
	 * Before the page is locked or marked (same word, later RMWs): whoever
	 * locks it after its present holder lets go sees PG_zap.
	 */
	if (_pmv_page_flags(pg) & PG_present)
		atomic_fetch_or_explicit(&pg->flags, PG_zap, memory_order_acq_rel);
	return true;
}

/*
 * Watch a discarded range [s, e), one entry per event (a madvise of 1 GB
 * is one entry, not a quarter million). Without memory the pages go
 * unwatched, without PG_zap: pages discarded whole are then forgotten
 * at once, as before MADV_FREE was told apart.
 */
static void zap_watch(pmv_ctx *ctx, uintptr_t s, uintptr_t e)
{
	if (!watch_add(ctx, s, e, _pmv_now_ns() + ZAP_WAIT_NS))
		for_range(ctx, s, e, set_zap, NULL);
}

/*
 * The end of the wait for a page discarded whole: forgotten if its address
 * is empty (zapped). A holder (PG_zap lets in only those that hold pages
 * briefly, as an unpark) gets a record covering the page, and forgets it
 * when it unlocks.
 */
static void whole_done(pmv_ctx *ctx, struct _pmv_page *pg)
{
	uintptr_t addr = _pmv_page_addr(pg);
	size_t size = _pmv_page_size(pg);

	for (;;) {
		uint32_t old;

		if (_pmv_page_trylock(pg)) {
			if (!_pmv_pages_mapped(ctx, addr, size))
				_pmv_page_forget(ctx, pg);
			_pmv_page_unlock(ctx, pg);
			return;
		}
		if (_pmv_pages_mapped(ctx, addr, size) || record_discard(ctx, pg, 0, size))
			return;
		old = atomic_fetch_or_explicit(&pg->flags, PG_discard, memory_order_acq_rel);
		if (old & PG_locked)
			return;	/* the holder settles it on unlock */
		apply_discards(ctx, pg, NULL, 0, true);
		_pmv_page_clear(pg, PG_discard);
	}
}

static bool watched(pmv_ctx *ctx, uintptr_t a, uintptr_t e)
{
	for (size_t k = 0; k < ctx->nzap_wait; k++)
		if (ctx->zap_wait[k].start < e && a < ctx->zap_wait[k].end)
			return true;
	return false;
}

/* A page of an ended watch (already out of ctx->zap_wait). */
static bool end_page(pmv_ctx *ctx, struct _pmv_page *pg, size_t off, size_t len, void *arg)
{
	uintptr_t pa = _pmv_page_addr(pg);

	(void)arg;
	if (!(_pmv_page_flags(pg) & PG_zap) || watched(ctx, pa, pa + _pmv_page_size(pg)))
		return true;	/* not ours to end, or another discard of it is still unzapped */
	/* cleared first: whole_done() may leave it to a holder, which must not keep it */
	_pmv_page_clear(pg, PG_zap);
	if (!off && len == _pmv_page_size(pg) && !(_pmv_page_flags(pg) & PG_gone))
		whole_done(ctx, pg);
	return true;
}

static void watch_end(pmv_ctx *ctx, size_t i)
{
	struct _pmv_zap_wait z = ctx->zap_wait[i];

	ctx->zap_wait[i] = ctx->zap_wait[--ctx->nzap_wait];
	for_range(ctx, z.start, z.end, end_page, NULL);
}

/*
 * A holder may have a page out of its address right now (a migration):
 * its pieces look unmapped, zapped or not. So a range is done when none
 * of it is mapped and none of its pages is locked.
 */
static bool unlocked(pmv_ctx *ctx, struct _pmv_page *pg, size_t off, size_t len, void *arg)
{
	(void)ctx, (void)off, (void)len, (void)arg;
	return !(_pmv_page_flags(pg) & PG_locked);
}

static bool range_done(pmv_ctx *ctx, const struct _pmv_zap_wait *z)
{
	return !_pmv_range_any_mapped(ctx, z->start, z->end - z->start) &&
	       for_range(ctx, z->start, z->end, unlocked, NULL);
}

void _pmv_event_poll(pmv_ctx *ctx)
{
	uint64_t now = ctx->nzap_wait ? _pmv_now_ns() : 0;

	for (size_t i = 0; i < ctx->nzap_wait;) {
		if (now < ctx->zap_wait[i].until && !range_done(ctx, &ctx->zap_wait[i]))
			i++;
		else
			watch_end(ctx, i);
	}
}

/*
 * From a first touch: its handler holds no event_lock, and readers of it
 * never wait for a page lock, so taking it written under the page lock
 * is safe; it keeps the watches the janitor and event readers share.
 */
bool _pmv_event_reap(pmv_ctx *ctx)
{
	bool any = false;

	pthread_rwlock_wrlock(&ctx->event_lock);
	for (size_t i = 0; i < ctx->nzap_wait;) {
		if (!range_done(ctx, &ctx->zap_wait[i])) {
			i++;
			continue;
		}
		watch_end(ctx, i);
		any = true;
	}
	pthread_rwlock_unlock(&ctx->event_lock);
	return any;
}

void _pmv_event_unwatch(pmv_ctx *ctx, struct _pmv_page *pg)
{
	uintptr_t pa = _pmv_page_addr(pg), pe = pa + _pmv_page_size(pg);
	size_t n, k = 0;

	pthread_rwlock_wrlock(&ctx->event_lock);	/* as in _pmv_event_reap() */
	n = ctx->nzap_wait;
	/* cut [pa, pe) out of every range */
	for (size_t i = 0; i < n; i++) {
		struct _pmv_zap_wait z = ctx->zap_wait[i];

		if (z.end <= pa || pe <= z.start)
			continue;
		/* the part after pg: a watch of its own (no memory: all waits on) */
		if (z.start < pa && pe < z.end && watch_add(ctx, pe, z.end, z.until))
			continue;
		if (z.start < pa)
			ctx->zap_wait[i].end = pa;
		else if (pe < z.end)
			ctx->zap_wait[i].start = pe;
		else
			ctx->zap_wait[i].end = ctx->zap_wait[i].start;	/* empty: dropped below */
	}
	for (size_t i = 0; i < ctx->nzap_wait; i++)
		if (ctx->zap_wait[i].start < ctx->zap_wait[i].end)
			ctx->zap_wait[k++] = ctx->zap_wait[i];
	ctx->nzap_wait = k;
	if (!watched(ctx, pa, pe))
		_pmv_page_clear(pg, PG_zap);
	pthread_rwlock_unlock(&ctx->event_lock);
}

void _pmv_page_settle(pmv_ctx *ctx, struct _pmv_page *pg)
{
	uint32_t f = _pmv_page_flags(pg);

	if (f & PG_discard) {
		size_t size = _pmv_page_size(pg);
		bool parked, all;
		void *buf;

		/* an evicted huge page comes back parked first: see discard_locked */
		if ((f & PG_far) && (f & PG_huge))
			_pmv_far_to_parked(ctx, pg);
		f = _pmv_page_flags(pg);
		parked = f & PG_parked;
		/* still far (no room to park it): the records zero its stored copy */
		buf = (f & PG_far) ? _pmv_far_read(ctx, pg) : NULL;

		/*
		 * Clear the mark before taking the records. The reading handler
		 * records, then marks (both acq_rel RMWs on pg->flags): a record
		 * this take misses comes with a mark set after our clear, which
		 * the unlock loop sees and settles. Clearing after the take
		 * would orphan it, and a later settle would zero newer data.
		 */
		atomic_fetch_and_explicit(&pg->flags, ~(uint32_t)PG_discard, memory_order_acq_rel);
		all = apply_discards(ctx, pg, parked ? pg->park : buf, size, true);
		if (buf) {
			if (!all)
				_pmv_far_rewrite(ctx, pg, buf);
			_pmv_far_buf_put(buf, size);
		}
		/*
		 * Discarded whole at its address (we left it there, or put it
		 * back, before the event was read): the watch forgets it once
		 * zapped, or keeps it after MADV_FREE (see zap_watch).
		 */
		if (all && (parked || (f & PG_far) || !(_pmv_page_flags(pg) & PG_zap)))
			_pmv_page_forget(ctx, pg);
	}
	if (f & PG_gone) {
		/* unmapped, or moved away: surgery owns what is left of it */
		if (!_pmv_event_moved_to(ctx, _pmv_page_addr(pg)))
			_pmv_page_forget(ctx, pg);
	}
}

/* ---- the gate of every move into a region address ---------------------- */

/*
 * Where pg's page must go in, or 0 if it must not: discarded whole, or its
 * address unmapped. Pieces discarded in part are zeroed in `slot` first
 * (below `limit`: what the slot holds). Caller holds event_lock for reading
 * (a fault handler too) and pg's lock.
 */
static uintptr_t gate(pmv_ctx *ctx, struct _pmv_page *pg, void *slot, size_t limit)
{
	uint32_t f = _pmv_page_flags(pg);
	uintptr_t addr = _pmv_page_addr(pg);

	if (f & PG_gone) {
		addr = _pmv_event_moved_to(ctx, addr);
		if (!addr)
			return 0;
	}
	if ((f & PG_discard) && apply_discards(ctx, pg, slot, limit, false))
		return 0;
	return addr;
}

/*
 * A move in that UFFDIO_MOVE refuses with EINVAL: the program made the
 * range read-only, PROT_NONE or mlocked after we moved the page out, and
 * UFFDIO_MOVE only moves between writable VMAs alike in protection and
 * VM_LOCKED. UFFDIO_COPY honours the destination VMA as it is; the slot is
 * then emptied, so the caller sees what a move leaves.
 */
static int copy_in(pmv_ctx *ctx, uintptr_t addr, uintptr_t slot, size_t len,
		   unsigned flags, size_t *done)
{
	int ret = _pmv_uffd_copy(ctx, addr, slot, len, flags, done);

	/*
	 * One UFFDIO_COPY must stay inside one VMA, and an mprotect or mlock
	 * of part of a huge page splits its VMA: go on a piece at a time. A
	 * piece with no VMA (ENOENT) is one the program unmapped while we
	 * held the page: it has no address to go to, as the kernel's unmap
	 * would have freed it. Unless the event is unread: an mremap's
	 * new address is not known yet, so the piece stays in the slot and
	 * the caller sees -EAGAIN with the pieces before it in.
	 */
	while (ret && ret != -EAGAIN && *done < len) {
		uintptr_t to = _pmv_event_moved_to(ctx, addr + *done);
		size_t one = 0;

		/*
		 * A piece mremap moved (surgery still queued: holders and the
		 * janitor's unpark see it, see _pmv_regions_apply) goes to its
		 * new address, where the kernel took the mapped pieces along.
		 */
		ret = _pmv_uffd_copy(ctx, to ? to : addr + *done, slot + *done, PMV_SIZE_4K,
				     flags, &one);
		if (ret == -ENOENT && !one) {
			if (!to && _pmv_uffd_changing(ctx, addr + *done)) {
				ret = -EAGAIN;
				break;
			}
			one = PMV_SIZE_4K;
			ret = 0;
		}
		*done += one;
		if (ret)
			break;
		ret = *done < len ? -EINVAL : 0;
	}
	if (*done && !(flags & PMV_MV_BUF))
		_pmv_pool_discard(ctx, (void *)slot, *done);
	if (!ret && !(flags & PMV_MV_BUF))
		_pmv_stat_add(&ctx->copied_in, 1);
	return ret;
}

/*
 * The fault handlers too: with several of them, another one may be reading
 * an event while this one moves a page in. None holds it written here.
 */
static void event_rdlock(pmv_ctx *ctx)
{
	pthread_rwlock_rdlock(&ctx->event_lock);
}

static void event_rdunlock(pmv_ctx *ctx)
{
	pthread_rwlock_unlock(&ctx->event_lock);
}

/*
 * _pmv_move_in, with the first off bytes of the first page already in; with
 * end (n == 1 only), just [off, end) of the page goes in, the rest of it
 * being at its address already.
 */
static void move_in_from(pmv_ctx *ctx, struct _pmv_page *const *pgs, const uintptr_t *slot,
			 size_t n, unsigned flags, int *res, size_t *part, size_t off, size_t end)
{
	bool ft = _pmv_is_fault_thread();
	size_t i = 0;

	flags |= PMV_MV_ONCE;	/* never wait for an event while holding event_lock */
	while (i < n) {
		size_t psz = _pmv_page_size(pgs[i]), k = 1, done = 0, total, ndone;
		size_t lim = end ? end : psz;
		uintptr_t dst, home = _pmv_page_addr(pgs[i]);
		unsigned fl = flags;
		int ret;

		event_rdlock(ctx);
		dst = gate(ctx, pgs[i], (void *)slot[i], lim);
		if (!dst) {
			event_rdunlock(ctx);
			res[i] = -ECANCELED;
			part[i++] = off;
			off = 0;
			continue;
		}
		/*
		 * The program moved the page with mremap while we held it: it
		 * goes to its new address, but whoever faulted waits at the old
		 * one, which a wake by the move would miss. Wake them there,
		 * after the move (they fault again and meet what is there now).
		 */
		if (dst != home)
			fl &= ~PMV_MV_WAKE;
		/* a run of neighbours on both sides, none of them marked */
		while (dst == home && !off && !end && i + k < n && _pmv_page_size(pgs[i + k]) == psz &&
		       !(_pmv_page_flags(pgs[i + k]) & (PG_discard | PG_gone)) &&
		       _pmv_page_addr(pgs[i + k]) == dst + k * psz &&
		       slot[i + k] == slot[i] + k * psz)
			k++;
		if (flags & PMV_MV_BUF) {
			/* a buffer, one page: copied whole or piece by piece */
			k = 1;
			if (!(_pmv_page_flags(pgs[i]) & (PG_discard | PG_gone | PG_zap))) {
				/*
				 * Unmarked: ENOENT with an event unread is that
				 * event, as for a move below; without, the
				 * caller keeps its copy. copy_in's piece loop
				 * would take it for pieces unmapped and report
				 * the page in, and the caller would drop its
				 * only copy.
				 */
				ret = _pmv_uffd_copy(ctx, dst + off, slot[i] + off, lim - off, fl,
						     &done);
				if (ret == -ENOENT && !done) {
					if (_pmv_uffd_changing(ctx, dst + off))
						ret = -EAGAIN;
				} else if (ret && ret != -EAGAIN) {
					size_t more = 0;

					ret = copy_in(ctx, dst + off + done, slot[i] + off + done,
						      lim - off - done, fl, &more);
					done += more;
				}
			} else {
				ret = copy_in(ctx, dst + off, slot[i] + off, lim - off, fl, &done);
			}
			total = off + done;
			goto moved;
		}
		ret = _pmv_uffd_move(ctx, dst + off, slot[i] + off, (k - 1) * psz + lim - off,
				     fl, &done);
		if (ret == -EINVAL && !done && k > 1) {
			/* a run may cross into a VMA the program changed: head alone */
			k = 1;
			ret = _pmv_uffd_move(ctx, dst + off, slot[i] + off, psz - off, fl, &done);
		}
		total = off + done;
		/*
		 * A head's caller has its own way out (it assembles the page).
		 * ENOENT: no VMA at the page's start; with a discard recorded
		 * or a remap queued there, the program cut off that part
		 * (gone_range): the rest goes in, piece by piece.
		 */
		if ((ret == -EINVAL ||
		     (ret == -ENOENT && !done && ((_pmv_page_flags(pgs[i]) & PG_discard) ||
						  _pmv_event_moved_to(ctx, dst)))) && !end) {
			size_t f = total / psz, o = total % psz, cdone = 0;

			ret = copy_in(ctx, dst + f * psz + o, slot[i + f] + o, lim - o, fl, &cdone);
			total += cdone;
			if (!ret)
				k = f + 1;	/* the run ends with the page copied */
		} else if (ret == -ENOENT && !done && !end &&
			   !(_pmv_page_flags(pgs[i]) & (PG_discard | PG_gone | PG_zap)) &&
			   _pmv_uffd_changing(ctx, dst + off)) {
			/*
			 * No VMA there and no mark: the program's mremap or
			 * munmap is done but its event is not read yet (marks
			 * are made under event_lock written, so none can be
			 * missing while we hold it read). UFFDIO_MOVE may look
			 * the VMA up before it checks mmap_changing, so it says
			 * ENOENT here, not EAGAIN: taken for a failure, the page
			 * was lost (t_unmap's mremap while exchanging). The
			 * probe asks mmap_changing itself. Wait for the event as
			 * for EAGAIN (a handler gets EAGAIN: it may be the one
			 * to read it), then the gate knows. An ENOENT no unread
			 * event explains stays one.
			 */
			ret = -EAGAIN;
		}
moved:
		event_rdunlock(ctx);
		if (fl != flags)
			_pmv_uffd_wake(ctx, home, psz);
		if (end && (!ret || total >= end)) {
			ret = 0;
			total = psz;	/* the tail was in already */
		}
		for (ndone = total / psz; ndone; ndone--) {
			res[i] = 0;
			part[i++] = 0;
		}
		off = total % psz;
		if (!ret)
			continue;
		if (ret == -EAGAIN && !ft) {
			/* an event is unread: let a handler read it, then see */
			sched_yield();
			continue;
		}
		res[i] = ret;
		part[i++] = off;
		off = 0;
	}
}

void _pmv_move_in(pmv_ctx *ctx, struct _pmv_page *const *pgs, const uintptr_t *slot,
		  size_t n, unsigned flags, int *res, size_t *part)
{
	move_in_from(ctx, pgs, slot, n, flags, res, part, 0, 0);
}

int _pmv_move_in_one(pmv_ctx *ctx, struct _pmv_page *pg, void *slot, unsigned flags,
		     size_t *part)
{
	uintptr_t s = (uintptr_t)slot;
	size_t p = 0, off = part ? *part : 0;
	int res = 0;

	if (off < _pmv_page_size(pg))
		move_in_from(ctx, &pg, &s, 1, flags, &res, &p, off, 0);
	if (part)
		*part = res ? p : _pmv_page_size(pg);
	return res;
}

int _pmv_move_in_head(pmv_ctx *ctx, struct _pmv_page *pg, void *slot, size_t len,
		      unsigned flags)
{
	uintptr_t s = (uintptr_t)slot;
	size_t p = 0;
	int res = 0;

	move_in_from(ctx, &pg, &s, 1, flags, &res, &p, 0, len);
	return res;
}

/* ---- the gate of every move out of a region address -------------------- */

/*
 * A holder that moves its locked page out of its address, or
 * write-protects it there (which also stops the program's writes), must
 * know that no discard reached the page since it locked it. If one did,
 * the program's madvise may have gone on with the page still at its
 * address: the kernel's zap there counts, and after MADV_FREE, which
 * leaves the pieces mapped, the program may have written them again, so
 * the gate's zeroing of a copy taken now would erase new data. Under
 * event_lock read no event is read: one read after the move finds the
 * page out (its pieces are then zeroed on the way in, and the program's
 * writes wait for it), one read before has marked it: PG_discard, or
 * PG_zap, set for every page the discard reaches.
 */
void _pmv_out_lock(pmv_ctx *ctx)
{
	event_rdlock(ctx);
}

void _pmv_out_unlock(pmv_ctx *ctx)
{
	event_rdunlock(ctx);
}

bool _pmv_out_refused(const struct _pmv_page *pg)
{
	return _pmv_page_flags(pg) & (PG_discard | PG_zap);
}

void _pmv_move_out_runs(pmv_ctx *ctx, struct _pmv_page *const *pgs,
			const uintptr_t *dst, const uintptr_t *src, size_t n,
			size_t psz, int *res, size_t *part)
{
	_pmv_out_lock(ctx);
	for (size_t i = 0, j = 0; i < n; i = j) {
		for (j = i; j < n && dst[j] && !_pmv_out_refused(pgs[j]); j++)
			;
		if (j > i)
			_pmv_move_runs(ctx, dst + i, src + i, j - i, psz, PMV_MV_POOL,
				       res + i, part + i);
		if (j < n) {
			res[j] = dst[j] ? -EBUSY : -ENOMEM;
			part[j++] = 0;
		}
	}
	_pmv_out_unlock(ctx);
}

/* ---- our own discards of region memory --------------------------------- */

static void remove_range(pmv_ctx *ctx, uintptr_t start, uintptr_t end);

/*
 * Which logged events are our madvise's: in log order, ranges that tile
 * [start, end) (one per VMA the range spans, in address order, each read
 * before the kernel goes on to the next). Depth-first, as the program's
 * may start where one of ours does. Marks them in `ours`; false if none
 * tile it.
 */
static bool self_tiling(const struct _pmv_self *sl, unsigned from, uintptr_t at, uintptr_t end,
			bool *ours)
{
	for (unsigned j = from; j < sl->nlog; j++) {
		if (sl->log[j].s != at || sl->log[j].e > end)
			continue;
		ours[j] = true;
		if (sl->log[j].e == end || self_tiling(sl, j + 1, sl->log[j].e, end, ours))
			return true;
		ours[j] = false;
	}
	return false;
}

int _pmv_discard_self(pmv_ctx *ctx, uintptr_t addr, size_t len)
{
	struct _pmv_self sl;
	bool ours[PMV_SELF_LOG] = { false };
	int ret, slot = -1;

	/*
	 * The library drops region memory it has copied (un-sharing, a page
	 * split between its address and its hole, a collapse). Its REMOVE
	 * event must not read as the program's, or the copy would be thrown
	 * away as discarded: say which range is ours before the madvise,
	 * which waits until a handler has read the event.
	 */
	pthread_mutex_lock(&ctx->discard_mu);
	for (int i = 0; i < PMV_MAX_SELF; i++)
		if (!ctx->self[i].len) {
			ctx->self[i].start = addr;
			ctx->self[i].len = len;
			ctx->self[i].nlog = 0;
			slot = i;
			break;
		}
	pthread_mutex_unlock(&ctx->discard_mu);
	if (slot < 0)
		return -EBUSY;
	ret = madvise((void *)addr, len, MADV_DONTNEED) ? -errno : 0;
	/*
	 * madvise returned once the event was read, maybe before the handler
	 * that read it looked at it: it holds event_lock until it has.
	 */
	pthread_rwlock_rdlock(&ctx->event_lock);
	pthread_rwlock_unlock(&ctx->event_lock);
	pthread_mutex_lock(&ctx->discard_mu);
	sl = ctx->self[slot];
	ctx->self[slot].len = 0;
	pthread_mutex_unlock(&ctx->discard_mu);
	/*
	 * The events read inside the range meanwhile are ours and maybe the
	 * program's: its MADV_DONTNEED of pieces of a page we hold (a collapse
	 * beside the policy's coalescing: t_madvise's pieces while policy_on,
	 * 4 runs in 200, read old data). Ours tile the range; the rest are its
	 * own, applied now as a handler would have, before we put the page
	 * back (the gate zeroes those pieces). If nothing tiles it (the
	 * madvise stopped at a locked VMA, or skipped a hole; the log
	 * overflowed), which are ours is not known: none is applied, as
	 * before, since applying ours would zero the copy itself.
	 */
	if ((sl.nlog > 1 || (sl.nlog == 1 && (sl.log[0].s != addr || sl.log[0].e != addr + len))) &&
	    self_tiling(&sl, 0, addr, addr + len, ours)) {
		pthread_rwlock_wrlock(&ctx->event_lock);
		for (unsigned j = 0; j < sl.nlog; j++)
			if (!ours[j])
				remove_range(ctx, sl.log[j].s, sl.log[j].e);
		pthread_rwlock_unlock(&ctx->event_lock);
	}
	return ret;
}

/*
 * A REMOVE event inside one of our discards in flight: logged there for
 * _pmv_discard_self to sort out, true. A log that fills (more than
 * PMV_SELF_LOG events in one madvise) keeps the first ones.
 */
static bool self_log(pmv_ctx *ctx, uintptr_t start, uintptr_t end)
{
	bool self = false;

	pthread_mutex_lock(&ctx->discard_mu);
	for (int i = 0; i < PMV_MAX_SELF && !self; i++) {
		struct _pmv_self *sl = &ctx->self[i];

		self = sl->len && start >= sl->start && end <= sl->start + sl->len;
		if (self && sl->nlog < PMV_SELF_LOG) {
			sl->log[sl->nlog].s = start;
			sl->log[sl->nlog++].e = end;
		}
	}
	pthread_mutex_unlock(&ctx->discard_mu);
	return self;
}

/* ---- region-table changes waiting for regions_lock --------------------- */

int _pmv_surgery_add(pmv_ctx *ctx, int kind, uintptr_t from, uintptr_t to, size_t len)
{
	pthread_mutex_lock(&ctx->surgery_mu);
	if (ctx->nsurgery == ctx->cap_surgery) {
		size_t ncap = ctx->cap_surgery ? 2 * ctx->cap_surgery : 16;
		void *nv = _pmv_krealloc(ctx->surgery, ncap * sizeof(*ctx->surgery));

		if (!nv) {
			pthread_mutex_unlock(&ctx->surgery_mu);
			return -ENOMEM;
		}
		ctx->surgery = nv;
		ctx->cap_surgery = ncap;
	}
	ctx->surgery[ctx->nsurgery++] = (struct _pmv_surgery){
		.kind = kind, .from = from, .to = to, .len = len };
	atomic_store_explicit(&ctx->surgery_pending, ctx->nsurgery, memory_order_release);
	pthread_mutex_unlock(&ctx->surgery_mu);
	return 0;
}

/* Follow addr through the queued changes, in order: 0 once it is unmapped. */
uintptr_t _pmv_event_moved_to(pmv_ctx *ctx, uintptr_t addr)
{
	uintptr_t a = addr;

	if (!atomic_load_explicit(&ctx->surgery_pending, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&ctx->surgery_mu);
	for (size_t i = 0; i < ctx->nsurgery && a; i++) {
		struct _pmv_surgery *s = &ctx->surgery[i];

		if (a < s->from || a >= s->from + s->len)
			continue;
		a = s->kind == PMV_SURGERY_REMAP ? s->to + (a - s->from) : 0;
	}
	pthread_mutex_unlock(&ctx->surgery_mu);
	return a == addr ? 0 : a;
}

bool _pmv_event_in_new_range(pmv_ctx *ctx, uintptr_t addr)
{
	bool in = false;

	if (!atomic_load_explicit(&ctx->surgery_pending, memory_order_acquire))
		return false;
	pthread_mutex_lock(&ctx->surgery_mu);
	for (size_t i = 0; i < ctx->nsurgery && !in; i++)
		in = ctx->surgery[i].kind == PMV_SURGERY_REMAP &&
		     addr >= ctx->surgery[i].to && addr < ctx->surgery[i].to + ctx->surgery[i].len;
	pthread_mutex_unlock(&ctx->surgery_mu);
	return in;
}

/* ---- the events -------------------------------------------------------- */

/*
 * Apply fn to every page of [start, end) we know: locked by us if we can,
 * else marked `mark` for its holder (another handler answering a fault on
 * it, say). The reading handler holds regions_lock for reading, so no
 * region goes away meanwhile.
 */
static void for_each_page(pmv_ctx *ctx, uintptr_t start, uintptr_t end, uint32_t mark,
			  void (*fn)(pmv_ctx *, struct _pmv_page *, size_t, size_t))
{
	for (uintptr_t a = start; a < end;) {
		struct _pmv_region *r = _pmv_region_find(ctx, a);

		if (!r) {
			struct _pmv_region *next = _pmv_region_next(ctx, a);

			if (!next || next->start >= end)
				return;
			a = next->start;
			continue;
		}
		for (; a < end && a < r->start + r->len;) {
			struct _pmv_page *pg = &r->pages[(a - r->start) >> r->shift];
			uintptr_t pa = _pmv_page_addr(pg), pe = pa + _pmv_page_size(pg);
			size_t off = a - pa, len = (end < pe ? end : pe) - a;

			for (;;) {
				uint32_t old;

				if (_pmv_page_trylock(pg)) {
					fn(ctx, pg, off, len);
					_pmv_page_unlock(ctx, pg);
					break;
				}
				/*
				 * Record before marking: the holder reads the
				 * records once it sees the mark.
				 */
				if (mark == PG_discard && record_discard(ctx, pg, off, len))
					break;	/* no memory: the zap still does its part */
				old = atomic_fetch_or_explicit(&pg->flags, mark, memory_order_acq_rel);
				if (old & PG_locked)
					break;	/* the holder settles it on unlock */
				/* it was unlocked just now: take it and do it here */
				if (mark == PG_discard)
					apply_discards(ctx, pg, NULL, 0, true);
				_pmv_page_clear(pg, mark);
			}
			a = pe;
		}
	}
}

static void remove_fn(pmv_ctx *ctx, struct _pmv_page *pg, size_t off, size_t len)
{
	discard_locked(ctx, pg, off, len);
}

static void gone_fn(pmv_ctx *ctx, struct _pmv_page *pg, size_t off, size_t len)
{
	(void)off;
	(void)len;
	_pmv_page_set(pg, PG_gone);
	if (!_pmv_event_moved_to(ctx, _pmv_page_addr(pg)))
		_pmv_page_forget(ctx, pg);
}

/* The program discarded [start, end). Under event_lock written. */
static void remove_range(pmv_ctx *ctx, uintptr_t start, uintptr_t end)
{
	_pmv_stat_add(&ctx->events_remove, 1);
	zap_watch(ctx, start, end);
	for_each_page(ctx, start, end, PG_discard, remove_fn);
}

static void on_remove(pmv_ctx *ctx, uintptr_t start, uintptr_t end)
{
	if (!self_log(ctx, start, end))
		remove_range(ctx, start, end);
}

/*
 * The pages wholly in [start, end) of an unmap or remap are gone from
 * their address; a huge page the range only cuts keeps the rest of its
 * address, where its other pieces must stay or come back (a parked or
 * moving page's too). For that page an unmap is a discard of the pieces
 * the range covers: they are zeroed in its copy, and the move in places
 * the pieces that still have an address (copy_in, restore).
 */
static void gone_range(pmv_ctx *ctx, uintptr_t start, uintptr_t end, bool remap)
{
	uintptr_t a = start;

	while (a < end) {
		struct _pmv_region *r = _pmv_region_find(ctx, a);
		uintptr_t pa, pe;

		if (!r) {
			r = _pmv_region_next(ctx, a);
			if (!r || r->start >= end)
				return;
			a = r->start;
			continue;
		}
		pa = r->start + ((a - r->start) >> r->shift << r->shift);
		pe = pa + ((uintptr_t)1 << r->shift);
		if (a == pa && pe <= end) {
			/* whole pages: as many as the range holds in this region */
			uintptr_t e = end < r->start + r->len ? end : r->start + r->len;

			e = r->start + ((e - r->start) >> r->shift << r->shift);
			for_each_page(ctx, a, e, PG_gone, gone_fn);
			a = e;
		} else {
			uintptr_t e = end < pe ? end : pe;

			/*
			 * Moved away by mremap, the pieces keep their data at
			 * the new address: the kernel took the mapped ones
			 * along, and a page held out of its address or parked
			 * puts the rest there while the surgery is queued
			 * (copy_in; _pmv_regions_apply unparks such pages
			 * first). Nothing to mark, nothing to zero; nor for
			 * the unmap of the old range that follows a remap's
			 * event (mremap sends both).
			 */
			if (!remap && !_pmv_event_moved_to(ctx, a))
				for_each_page(ctx, a, e, PG_discard, remove_fn);
			a = e;
		}
	}
}

static void on_unmap(pmv_ctx *ctx, uintptr_t start, uintptr_t end)
{
	_pmv_stat_add(&ctx->events_unmap, 1);
	if (_pmv_surgery_add(ctx, PMV_SURGERY_UNMAP, start, 0, end - start))
		return;
	gone_range(ctx, start, end, false);
}

static void on_remap(pmv_ctx *ctx, uintptr_t from, uintptr_t to, size_t len)
{
	_pmv_stat_add(&ctx->events_remap, 1);
	if (_pmv_surgery_add(ctx, PMV_SURGERY_REMAP, from, to, len))
		return;
	/*
	 * The pages went along: keep them, surgery gives them new descriptors.
	 * A huge page the range cuts stays, as after an unmap of the part.
	 */
	gone_range(ctx, from, from + len, true);
}

void _pmv_event_handle(pmv_ctx *ctx, const struct uffd_msg *msg)
{
	switch (msg->event) {
	case UFFD_EVENT_REMOVE:
		on_remove(ctx, msg->arg.remove.start, msg->arg.remove.end);
		break;
	case UFFD_EVENT_UNMAP:
		on_unmap(ctx, msg->arg.remove.start, msg->arg.remove.end);
		break;
	case UFFD_EVENT_REMAP:
		on_remap(ctx, msg->arg.remap.from, msg->arg.remap.to, msg->arg.remap.len);
		break;
	default:
		break;
	}
}
