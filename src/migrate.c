/* SPDX-License-Identifier: MIT */
/*
 * Page migration: pmv_move_pages(), pmv_migrate() and the batch engine.
 *
 * One page, as built (docs/DESIGN.md has the full timeline): unmap first,
 * as the kernel's own migration does, since a write-protect cannot stop a
 * write through a pin (O_DIRECT, process_vm_writev) taken before it:
 *   1. lock the descriptor, isolate it from the LRU;
 *   2. take a destination page from the target tier's pool, and a hole in
 *      the source tier's pool;
 *   3. UFFDIO_MOVE the source into the hole, through the out-gate: the
 *      address is now empty, so any access waits in a MISSING fault (the
 *      migration entry), and no pin can reach the page any more;
 *   4. copy hole -> destination (both pool memory: the copy never faults);
 *   5. UFFDIO_MOVE the destination in, through the gate (this wakes those
 *      waiters);
 *   6. unlock (waking faults that met the lock), put back on the LRU.
 * A page whose move-out says EBUSY (shared, pinned), and every 2 MB page
 * with PMV_CTX_WP_COPY, takes the write-protect path instead: protect,
 * copy while readers run, move out, compare and copy again if a pin wrote.
 * Until the source leaves its address every failure rolls back to it
 * untouched; after, a failure moves it back.
 *
 * A batch of 4 KB pages runs each step over all its pages before the next
 * step, so the kernel's TLB flushes and our copies are amortised
 * (concurrent migration: unmap all, copy all, remap all); 2 MB pages go
 * one at a time, so an accessor waits for about one page copy.
 */
#include <errno.h>
#include <numaif.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define BATCH_PAGES	512		/* the kernel caps its batch at 512 too */
#define BATCH_BYTES	(32UL << 20)	/* bounded, so the first page does not wait long */
#define LOCK_TIMEOUT_US	20000

enum { ENT_SKIP, ENT_ACTIVE };

struct mig {
	struct _pmv_page *pg;
	uintptr_t addr;
	size_t size;
	int ps, src, dst;
	void *dst_slot, *hole;
	bool zapped, retry_reuse, deferred;
	bool collapse;		/* _PMV_MIG_COLLAPSE: to its own tier, as one PMD */
	bool src_discarded;	/* the hole's source page is freed already (discard_sources) */
	bool hole_suspect;	/* a move into the hole failed: clean it first */
	int state;
	int status;
};

/* ---- helpers --------------------------------------------------------- */

/*
 * Give the hole back. One that a failed move touched is cleaned first (it
 * must be empty when reused); a 2 MB one is retired instead: it may keep a
 * page table, and every huge page moved through it would be split. Its
 * VA is not reused, which costs nothing else.
 */
static void put_hole(pmv_ctx *ctx, struct mig *m)
{
	if (m->hole_suspect) {
		_pmv_pool_discard(ctx, m->hole, m->size);
		if (m->ps == PMV_PS_2M) {
			_pmv_pool_retire(&ctx->tiers[m->src], m->ps, m->hole);
			return;
		}
	}
	_pmv_pool_put_hole(&ctx->tiers[m->src], m->ps, m->hole);
}

/*
 * The source page has left its address for good: give it back to the
 * kernel, never to the pool. A reference from outside its mapping (a pipe
 * after vmsplice, a get_user_pages() caller) does not stop UFFDIO_MOVE as
 * it stops the kernel's own migration, and user space cannot see one; a
 * pooled page would be overwritten with another page's data under it. The
 * kernel frees the page when its last reference goes. A PMD-mapped hole
 * is clean after MADV_DONTNEED; one a failed move touched is retired.
 */
static void free_source(pmv_ctx *ctx, struct mig *m)
{
	if (!m->src_discarded)
		_pmv_pool_discard(ctx, m->hole, m->size);
	if (!m->hole_suspect || m->ps != PMV_PS_2M)
		_pmv_pool_put_hole(&ctx->tiers[m->src], m->ps, m->hole);
	else
		_pmv_pool_retire(&ctx->tiers[m->src], m->ps, m->hole);
	_pmv_tier_uncharge(&ctx->tiers[m->src], m->ps, 1);
}

/*
 * The status of a page whose move out failed with err, the page whole at
 * its address. UFFDIO_MOVE refuses (EINVAL) a VMA the program made
 * read-only, PROT_NONE or mlocked: the page is in use as the kernel's
 * migration of a page it cannot isolate would say. EEXIST: the program's
 * mlock filled the hole again after the pools were repaired.
 */
static int out_status(int err)
{
	return err == -EINVAL || err == -EEXIST ? -EBUSY : -EFAULT;
}

/*
 * Did a move of a page into its hole, failed with err after done bytes,
 * maybe change the hole? Not when the kernel refused it before touching
 * anything: EINVAL (validation: the VMAs differ in protection or lock).
 */
static bool hole_touched(int err, size_t done)
{
	return done || err != -EINVAL;
}

/* Undo an active entry whose source is still at its address. */
static void release(pmv_ctx *ctx, struct mig *m, int err, bool wp_set)
{
	if (wp_set)
		_pmv_uffd_wp(ctx, m->addr, m->size, 0);
	_pmv_pool_put_page(&ctx->tiers[m->dst], m->ps, m->dst_slot, false);
	put_hole(ctx, m);
	m->state = ENT_SKIP;
	m->status = err;
	_pmv_count_fail(ctx, m->dst, err);
	_pmv_putback_lru_page(ctx, m->pg);
	_pmv_page_unlock(ctx, m->pg);
}

/* The page vanished under us (the program discarded it): it reads as zero. */
static void release_gone(pmv_ctx *ctx, struct mig *m)
{
	unsigned char v;

	/*
	 * Only in part (a discard of pieces of a huge page raced the move
	 * out): what is left is still the page, at its address.
	 */
	if (_pmv_pages_mapped(ctx, m->addr, m->size)) {
		release(ctx, m, -EBUSY, false);
		return;
	}
	/*
	 * No VMA there (mincore says ENOMEM), or one that is not ours
	 * (mmap(MAP_FIXED) over it: UFFDIO_WRITEPROTECT says ENOENT where no
	 * VMA registered for WP is; on ours it clears nothing, as the range
	 * is empty): not discarded but unmapped or replaced, or moved by
	 * mremap with its page, which the event settles.
	 */
	if ((mincore((void *)m->addr, PMV_SIZE_4K, &v) && errno == ENOMEM) ||
	    _pmv_uffd_wp(ctx, m->addr, PMV_SIZE_4K, 0) == -ENOENT) {
		release(ctx, m, -EFAULT, false);
		return;
	}
	_pmv_pool_put_page(&ctx->tiers[m->dst], m->ps, m->dst_slot, false);
	put_hole(ctx, m);
	_pmv_tier_uncharge(&ctx->tiers[m->src], m->ps, 1);
	_pmv_page_clear(m->pg, PG_present | PG_isolated);
	m->state = ENT_SKIP;
	/*
	 * A VMA is there, but maybe not ours: mmap(MAP_FIXED) over the page.
	 * Its UNMAP event, read meanwhile, marked the page gone.
	 */
	m->status = _pmv_page_flags(m->pg) & PG_gone ? -EFAULT : -ENOENT;
	_pmv_page_unlock(ctx, m->pg);
}

/*
 * Neither the copy could go in nor the source back: the address was
 * unmapped or remapped outside pagemove. Keep both pages as pool pages (a
 * slot that failed a move is cleaned first, see tier.c), drop the
 * descriptor's page and unlock, so nothing waits on it forever.
 */
static void gone_outside(pmv_ctx *ctx, struct mig *m)
{
	_pmv_pool_put_page(&ctx->tiers[m->dst], m->ps, m->dst_slot, false);
	if (!m->zapped)
		free_source(ctx, m);
	_pmv_page_clear(m->pg, PG_present | PG_isolated);
	m->state = ENT_SKIP;
	m->status = -EFAULT;
	_pmv_count_fail(ctx, m->dst, -EFAULT);
	_pmv_page_unlock(ctx, m->pg);
}

/*
 * The program discarded the page, or unmapped its address, while it was
 * out (event.c): neither the copy nor the source goes back. The copy's
 * slot is a pool page again; the source page is given back to the kernel,
 * not to the pool, since a reference from outside (a pipe) may still hold
 * it.
 */
static void dropped(pmv_ctx *ctx, struct mig *m)
{
	uint32_t f = _pmv_page_flags(m->pg);

	_pmv_pool_put_page(&ctx->tiers[m->dst], m->ps, m->dst_slot, false);
	if (!m->zapped)
		free_source(ctx, m);
	__atomic_store_n(&m->pg->tier, (int8_t)m->src, __ATOMIC_RELAXED);
	_pmv_page_clear(m->pg, PG_present | PG_isolated | PG_active | PG_referenced);
	m->state = ENT_SKIP;
	m->status = f & PG_gone ? -EFAULT : -ENOENT;
	_pmv_count_fail(ctx, m->dst, m->status);
	_pmv_page_unlock(ctx, m->pg);
}

/* Put the source back from its hole after a failure; see dropped(). */
static int move_back(pmv_ctx *ctx, struct mig *m)
{
	return _pmv_move_in_one(ctx, m->pg, m->hole, PMV_MV_WAKE, NULL);
}

/*
 * Step "move in": the copy goes to the page's address. EBUSY or EAGAIN can
 * be transient (the slot's page is part of a large folio that the kernel
 * must split first, and a split fails while other references exist), so
 * retry, carrying on from any partial progress. If it will not go, copy
 * into a fresh page of the same tier and move that in: once the source is
 * gone (dropped on un-share, or assembled), the copy is the only data, and
 * it must never be given up. Only an address that is not ours any more
 * (an outside munmap or mremap) fails for good.
 */
static int move_in(pmv_ctx *ctx, struct mig *m)
{
	size_t off = 0, done;
	int ret = 0;

	for (int i = 0; i < 64; i++) {
		done = off;
		ret = _pmv_move_in_one(ctx, m->pg, m->dst_slot, PMV_MV_WAKE, &done);
		off = done;
		if (!ret)
			return 0;
		if (ret != -EBUSY && ret != -EAGAIN)
			return ret;
		sched_yield();
	}
	if (!off) {
		bool clean;
		void *fresh = _pmv_pool_take_page(ctx, &ctx->tiers[m->dst], m->ps, false, &clean);

		if (fresh) {
			memcpy(fresh, m->dst_slot, m->size);
			done = 0;
			ret = _pmv_move_in_one(ctx, m->pg, fresh, PMV_MV_WAKE, &done);
			if (!ret) {
				/* the old slot keeps its page, as a pool page */
				_pmv_pool_put_page(&ctx->tiers[m->dst], m->ps, m->dst_slot, false);
				m->dst_slot = fresh;
				return 0;
			}
			if (!done || ret == -ECANCELED)
				_pmv_pool_put_page(&ctx->tiers[m->dst], m->ps, fresh, false);
		}
	}
	return ret;
}

/*
 * PMV_MOVE_NONBLOCK: a move between src and dst that reads or writes a
 * file store waits for I/O. The compressed stores are only CPU work.
 */
static bool needs_io(pmv_ctx *ctx, int src, int dst)
{
	return ctx->tiers[src].kind == PMV_TIER_FILE || ctx->tiers[dst].kind == PMV_TIER_FILE;
}

/* Step 1 for one entry: lock, check, isolate. Leaves it active or done. */
static void prepare(pmv_ctx *ctx, struct mig *m, int flags)
{
	struct _pmv_page *pg = m->pg;
	bool nb = flags & PMV_MOVE_NONBLOCK;
	uint32_t f;

	m->state = ENT_SKIP;
	if (m->dst < 0 || (unsigned)m->dst >= ctx->ntiers) {
		m->status = -EINVAL;
		return;
	}
	/* a fault in progress or another move holds it: skipped, not a failure */
	if (nb && !_pmv_page_trylock(pg)) {
		m->status = -EAGAIN;
		return;
	}
	if (!nb && _pmv_page_lock_timeout(pg, LOCK_TIMEOUT_US)) {
		m->status = -EBUSY;
		_pmv_count_fail(ctx, m->dst, -EBUSY);
		return;
	}
	f = _pmv_page_flags(pg);
	m->addr = _pmv_page_addr(pg);
	m->size = _pmv_page_size(pg);
	m->ps = pg->region->ps;
	m->src = pg->tier;
	if (!(f & PG_present)) {
		/* unmapped by the program since the lookup: not in a region now */
		m->status = f & PG_gone ? -EFAULT : -ENOENT;
		_pmv_count_fail(ctx, m->dst, m->status);
		goto unlock;
	}
	if (flags & _PMV_MIG_COLLAPSE)
		m->dst = m->src;	/* it may have moved since it was picked */
	m->collapse = (flags & _PMV_MIG_COLLAPSE) && m->ps == PMV_PS_2M && m->src == m->dst &&
		      !(f & PG_far);
	if (m->src == m->dst && !m->collapse) {
		m->status = m->dst;
		goto unlock;
	}
	if ((f & PG_zap) && nb) {
		m->status = -EAGAIN;	/* the janitor clears it soon */
		goto unlock;
	}
	if (f & PG_zap) {
		/* pieces discarded but not zapped yet: moved out, they would escape it */
		m->status = -EBUSY;
		_pmv_count_fail(ctx, m->dst, -EBUSY);
		goto unlock;
	}
	if (nb && ((f & PG_far) || _pmv_tier_far(ctx, m->dst)) && needs_io(ctx, m->src, m->dst)) {
		m->status = -EAGAIN;
		goto unlock;
	}
	if (f & PG_far) {
		/*
		 * Evicted: load it into the target if that is a memory tier;
		 * to another far tier its bytes go store to store, never mapped.
		 */
		int ret = _pmv_tier_far(ctx, m->dst) ? _pmv_far_move(ctx, pg, m->dst)
						     : _pmv_far_load(ctx, pg, m->dst, 0);

		m->status = ret == -ECANCELED ? -ENOENT : ret ? ret : m->dst;
		if (ret && !_pmv_tier_far(ctx, m->dst))
			_pmv_count_fail(ctx, m->dst, ret);
		goto unlock;
	}
	/* A sampled page comes home first: every step below expects it mapped. */
	if (_pmv_unpark(ctx, pg)) {
		m->status = -EBUSY;
		_pmv_count_fail(ctx, m->dst, -EBUSY);
		goto unlock;
	}
	if (!(_pmv_page_flags(pg) & PG_present)) {
		/* it was discarded while parked */
		m->status = -ENOENT;
		_pmv_count_fail(ctx, m->dst, -ENOENT);
		goto unlock;
	}
	if ((f & PG_shared) && !(flags & PMV_MOVE_ALL)) {
		if (_pmv_page_shared(ctx, m->addr, m->size)) {
			m->status = -EACCES;
			_pmv_count_fail(ctx, m->dst, -EACCES);
			goto unlock;
		}
		_pmv_page_clear(pg, PG_shared);
	}
	_pmv_isolate_lru_page(ctx, pg);
	m->state = ENT_ACTIVE;
	return;
unlock:
	_pmv_page_unlock(ctx, pg);
}

/* The active entries of page size ps going to (or coming from) tier t. */
static size_t select_group(struct mig **act, size_t n, int t, int ps, bool from,
			   struct mig **want)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (act[i]->state == ENT_ACTIVE && act[i]->ps == ps &&
		    (from ? act[i]->src : act[i]->dst) == t)
			want[k++] = act[i];
	return k;
}

/*
 * An entry reserve() could not serve: -ENOMEM (or -EAGAIN: a non-blocking
 * take met a pool growth or fill), back on its LRU, unlocked.
 */
static void reserve_fail(pmv_ctx *ctx, struct mig *m, bool busy)
{
	m->state = ENT_SKIP;
	m->status = busy ? -EAGAIN : -ENOMEM;
	if (!busy)
		_pmv_count_fail(ctx, m->dst, -ENOMEM);
	_pmv_putback_lru_page(ctx, m->pg);
	_pmv_page_unlock(ctx, m->pg);
}

/*
 * Step 2 for the whole batch: destination pages and holes in bulk, one
 * lock round trip per (tier, page size), handed out in address order so
 * that runs on both sides of a move stay contiguous. Pages first (from the
 * target tiers), then holes (in the source tiers) for the entries that got
 * one: an entry left without its hole gives its page back.
 */
static void reserve(pmv_ctx *ctx, struct mig **act, size_t n, int flags)
{
	bool nb = flags & PMV_MOVE_NONBLOCK;
	void *slots[BATCH_PAGES];

	for (int holes = 0; holes < 2; holes++)
		for (unsigned t = 0; t < ctx->ntiers; t++)
			for (int ps = 0; ps < PMV_PS_NR; ps++) {
				struct mig *want[BATCH_PAGES];
				size_t k = select_group(act, n, t, ps, holes, want), got;
				bool busy = false;

				if (!k)
					continue;
				got = holes ? _pmv_pool_take_holes_nb(ctx, &ctx->tiers[t], ps, k,
								      slots, nb, &busy)
					    : _pmv_pool_take_pages_nb(ctx, &ctx->tiers[t], ps, k,
								      slots, nb, &busy);
				for (size_t i = 0; i < k; i++) {
					if (i < got && holes)
						want[i]->hole = slots[i];
					else if (i < got)
						want[i]->dst_slot = slots[i];
					else if (holes)	/* no VA left for holes */
						_pmv_pool_put_page(&ctx->tiers[want[i]->dst], ps,
								   want[i]->dst_slot, false);
					if (i >= got)
						reserve_fail(ctx, want[i], busy);
				}
			}
}

/*
 * A partial move-out could not be moved back. The copy is complete and the
 * source write-protected, so finish by dropping both halves: the address
 * ends empty and takes the copy, and the hole is a hole again.
 */
static int lost_partial(pmv_ctx *ctx, struct mig *m)
{
	if (_pmv_discard_self(ctx, m->addr, m->size))
		return -EBUSY;
	_pmv_pool_discard(ctx, m->hole, m->size);
	put_hole(ctx, m);
	_pmv_tier_uncharge(&ctx->tiers[m->src], m->ps, 1);
	m->zapped = true;
	return 0;
}

/*
 * Step 5 failed with EBUSY (write-protect path): shared with a child,
 * pinned, or no longer exclusive. Returns true if the address is now empty
 * and the migration may go on.
 */
static bool move_out_busy(pmv_ctx *ctx, struct mig *m, int flags)
{
	if (_pmv_page_shared(ctx, m->addr, m->size)) {
		_pmv_page_set(m->pg, PG_shared);
		if (!(flags & PMV_MOVE_ALL)) {
			release(ctx, m, -EACCES, true);
			return false;
		}
		/*
		 * Un-share (MPOL_MF_MOVE_ALL): drop our mapping; the other
		 * process keeps its own. Pieces moved back by move_out() were
		 * made afresh, writable, and may have been written since the
		 * copy: protect the whole page again and copy it again first
		 * (present and ours, this read cannot fault), so dropping it
		 * loses nothing.
		 */
		_pmv_uffd_wp(ctx, m->addr, m->size, PMV_WP_SET);
		memcpy(m->dst_slot, (void *)m->addr, m->size);
		if (_pmv_discard_self(ctx, m->addr, m->size)) {
			release(ctx, m, -EBUSY, true);
			return false;
		}
		put_hole(ctx, m);
		_pmv_tier_uncharge(&ctx->tiers[m->src], m->ps, 1);
		_pmv_page_clear(m->pg, PG_shared);
		m->zapped = true;
		return true;
	}
	/*
	 * Mapped once but not exclusive (the child exited) or pinned. A write
	 * fault makes the former exclusive again; retry once after unlock.
	 */
	m->retry_reuse = true;
	release(ctx, m, -EBUSY, true);
	return false;
}

/* Step 7: account, put back on the target's LRU, verify, unlock. */
static void finish(pmv_ctx *ctx, struct mig *m)
{
	struct _pmv_page *pg = m->pg;

	if (!m->zapped)
		free_source(ctx, m);
	/* the copy's slot is empty now: a hole of its tier again, not lost VA */
	_pmv_pool_put_hole(&ctx->tiers[m->dst], m->ps, m->dst_slot);
	__atomic_store_n(&pg->tier, (int8_t)m->dst, __ATOMIC_RELAXED);
	_pmv_putback_lru_page(ctx, pg);
	if (m->collapse) {
		/* not a migration: the page stayed on its tier, in one piece now */
		_pmv_stat_add(&ctx->collapsed, 1);
		m->status = m->dst;
		m->state = ENT_SKIP;
		_pmv_page_unlock(ctx, pg);
		return;
	}
	pg->moved_ds = _pmv_now_ds(ctx);	/* the policy's minimum residency */
	_pmv_stat_add(&ctx->tiers[m->dst].migrate_in, 1);
	_pmv_stat_add(&ctx->tiers[m->dst].migrate_bytes_in, m->size);
	_pmv_stat_add(&ctx->tiers[m->src].migrate_out, 1);
	_pmv_stat_add(&ctx->migrations, 1);
	_pmv_stat_add(&ctx->migrate_bytes, m->size);
	m->status = m->dst;
	m->state = ENT_SKIP;
	if ((ctx->flags & PMV_CTX_VERIFY) && ctx->tiers[m->dst].node >= 0) {
		int ret = _pmv_verify_node(ctx, m->addr, ctx->tiers[m->dst].node);

		if (ret) {
			_pmv_stat_add(&ctx->tiers[m->dst].verify_errors, 1);
			m->status = ret;
		}
	}
	_pmv_page_unlock(ctx, pg);
}

/*
 * The last steps of a page whose copy is ready and whose address is empty:
 * publish the new tier before the move-in wakes waiters, move the copy in,
 * finish. If it will not go in (only an outside munmap or mremap of managed
 * memory does that), put the source back, or give the page up.
 */
static void complete(pmv_ctx *ctx, struct mig *m)
{
	int ret;

	__atomic_store_n(&m->pg->tier, (int8_t)m->dst, __ATOMIC_RELAXED);
	/*
	 * A collapse: the pieces' moves out left the address an empty page
	 * table, and a huge page moved onto one is split again. Discarding
	 * the empty range frees it (PT_RECLAIM, checked by pmv_collapse),
	 * so the copy goes in as one PMD. Nothing is there to lose.
	 */
	if (m->collapse) {
		/* its REMOVE event must not wait behind a busy handler's fault */
		_pmv_fault_extra_readers(ctx, true);
		_pmv_discard_self(ctx, m->addr, m->size);
		_pmv_fault_extra_readers(ctx, false);
	}
	ret = move_in(ctx, m);
	if (!ret) {
		finish(ctx, m);
		return;
	}
	__atomic_store_n(&m->pg->tier, (int8_t)m->src, __ATOMIC_RELAXED);
	if (ret != -ECANCELED && !m->zapped)
		ret = move_back(ctx, m);
	if (!ret) {
		release(ctx, m, -EFAULT, false);
		return;
	}
	if (ret == -ECANCELED) {
		dropped(ctx, m);
		return;
	}
	gone_outside(ctx, m);
}

/*
 * Step "move out" for one page: its page goes into its hole. A move that
 * stops part way (a THP split after fork, partly shared) is moved back
 * first. Pieces of a huge page the program discarded read as zero: map the
 * zero page there and try once more, or the page would look wholly gone.
 * Returns 0 or the error with the page whole at its address again, except
 * with *split set: the first *split bytes could not go back and are in the
 * hole. gated: the page is not write-protected, so a discard that reached
 * it since step 1 keeps it in place (-EBUSY, event.c); under write-protect
 * the program cannot have written it since, and the gate on the way in
 * zeroes what a discard names.
 */
static int move_out(pmv_ctx *ctx, struct mig *m, size_t *split, bool gated)
{
	bool repaired = false;
	size_t done = 0;
	int ret;

	*split = 0;
	for (int attempt = 0;; attempt++) {
		bool refused;

		if (gated)
			_pmv_out_lock(ctx);
		refused = gated && _pmv_out_refused(m->pg);
		ret = refused ? -EBUSY :
		      _pmv_uffd_move(ctx, (uintptr_t)m->hole, m->addr, m->size, PMV_MV_POOL, &done);
		if (gated)
			_pmv_out_unlock(ctx);
		if (!ret)
			return 0;
		/* the program's mlock reached the pools: repaired, once more */
		if (!refused && !done && !repaired &&
		    _pmv_pool_refused(ctx, m->hole, m->size, ret)) {
			repaired = true;
			attempt--;
			continue;
		}
		if (!refused && hole_touched(ret, done))
			m->hole_suspect = true;
		if (done) {
			/*
			 * Through the gate: the program may have discarded
			 * pieces of the head since it left, and their zap found
			 * the address empty.
			 */
			int back = _pmv_move_in_head(ctx, m->pg, m->hole, done, 0);

			if (back == -ECANCELED)
				return -ENOENT;	/* discarded whole, or unmapped */
			if (back) {
				*split = done;
				return ret;
			}
		}
		if (ret != -ENOENT || attempt || m->ps != PMV_PS_2M ||
		    !_pmv_pages_mapped(ctx, m->addr, m->size))
			return ret;
		for (size_t off = 0; off < m->size; off += PMV_SIZE_4K)
			if (!_pmv_page_mapped(ctx, m->addr + off))
				_pmv_uffd_zeropage(ctx, m->addr + off, PMV_SIZE_4K);
	}
}

/*
 * Write-protect [addr, addr+len) of m's page for its copy, unless a
 * discard reached it since step 1: then -EBUSY and it stays as it is
 * (event.c). After the protect, the program's writes wait for us, so a
 * discard read later may be applied to the copy.
 */
static int wp_range_for_copy(pmv_ctx *ctx, struct mig *m, uintptr_t addr, size_t len)
{
	int ret;

	for (;;) {
		_pmv_out_lock(ctx);
		ret = _pmv_out_refused(m->pg) ? -EBUSY :
		      _pmv_uffd_wp(ctx, addr, len, PMV_WP_SET | PMV_MV_ONCE);
		_pmv_out_unlock(ctx);
		/* an unread event: its reader needs event_lock written to read it */
		if (ret != -EAGAIN || _pmv_is_fault_thread())
			return ret;
		sched_yield();
	}
}

static int wp_for_copy(pmv_ctx *ctx, struct mig *m)
{
	return wp_range_for_copy(ctx, m, m->addr, m->size);
}

/*
 * Write-protect path, one page at a time so a writer waits for about one
 * page copy (huge pages, and small pages that could not be unmapped):
 * WP, copy from the live page, move out, move in.
 */
static void migrate_wp(pmv_ctx *ctx, struct mig *m, int flags)
{
	struct _pmv_copy_req req = { .dst = m->dst_slot, .src = (void *)m->addr,
				     .len = m->size };
	size_t split;
	int ret;

	ret = wp_for_copy(ctx, m);
	if (ret) {
		release(ctx, m, ret == -ENOENT ? -EFAULT : ret, false);
		return;
	}
	if (!_pmv_copier_enter(ctx)) {
		/* unregistered, a discard under the copy would deadlock us */
		release(ctx, m, -EBUSY, true);
		return;
	}
	_pmv_copy_batch(ctx, &req, 1);
	_pmv_copier_exit(ctx);
	if (req.status) {
		release(ctx, m, req.status, true);
		return;
	}
	ret = move_out(ctx, m, &split, false);
	if (split)
		ret = lost_partial(ctx, m);	/* the copy under WP is complete */
	if (!ret && !m->zapped && memcmp(m->dst_slot, m->hole, m->size)) {
		/*
		 * The page changed under its write-protect: a DMA through a pin
		 * taken before step 3 (O_DIRECT read, process_vm_writev) writes
		 * past the page tables, and the pin was gone by step 5, so
		 * UFFDIO_MOVE could not refuse; or a moved-back piece, made
		 * afresh and writable, was written; or a discarded piece is
		 * zero now. The page is out and no pin can reach it: copy
		 * again from it.
		 */
		memcpy(m->dst_slot, m->hole, m->size);
		_pmv_stat_add(&ctx->recopies, 1);
	}
	if (ret == -EBUSY) {
		if (!move_out_busy(ctx, m, flags))
			return;
	} else if (ret == -ENOENT && !m->zapped) {
		/* discarded before we write-protected it: nothing to move */
		_pmv_uffd_wp(ctx, m->addr, m->size, 0);
		release_gone(ctx, m);
		return;
	} else if (ret && !m->zapped) {
		release(ctx, m, out_status(ret), true);
		return;
	}
	complete(ctx, m);
}

/*
 * Moves out of migrate_unmapped() into holes that the program's mlock
 * reached (filled: EEXIST; locked: EINVAL): once the pools are repaired
 * (the first such hole does it), each is emptied and tried once more, one
 * page at a time, through the gate again.
 */
static void retry_refused(pmv_ctx *ctx, struct mig **u, const uintptr_t *a, const uintptr_t *b,
			  size_t n, int *res, size_t *part)
{
	bool repaired = false;

	for (size_t i = 0; i < n; i++) {
		if ((res[i] != -EEXIST && res[i] != -EINVAL) || part[i])
			continue;
		if (!repaired)
			repaired = _pmv_pool_refused(ctx, u[i]->hole, PMV_SIZE_4K, res[i]);
		else if (res[i] == -EEXIST)
			_pmv_pool_discard(ctx, u[i]->hole, PMV_SIZE_4K);
		if (!repaired)
			continue;
		_pmv_out_lock(ctx);
		res[i] = _pmv_out_refused(u[i]->pg) ? -EBUSY :
			 _pmv_uffd_move(ctx, a[i], b[i], PMV_SIZE_4K, PMV_MV_POOL, &part[i]);
		_pmv_out_unlock(ctx);
	}
}

static int cmp_uptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Free the source pages of the small pages whose copies went in (res[i]
 * 0), their holes in runs of neighbours: one MADV_DONTNEED, so one TLB
 * flush, per run instead of per page. The holes were taken sorted, so a
 * batch's holes are mostly one run. Each flush interrupts every other CPU
 * where the process runs: with one caller per CPU (bench's
 * migrate_4k_random_parallel) those IPIs were a third of the time.
 */
static void discard_sources(pmv_ctx *ctx, struct mig **out, const int *res, size_t n)
{
	uintptr_t h[BATCH_PAGES];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (res[i] || out[i]->zapped)
			continue;
		h[k++] = (uintptr_t)out[i]->hole;
		out[i]->src_discarded = true;
	}
	qsort(h, k, sizeof(*h), cmp_uptr);
	for (size_t i = 0, j; i < k; i = j) {
		for (j = i + 1; j < k && h[j] == h[j - 1] + PMV_SIZE_4K; j++)
			;
		_pmv_pool_discard(ctx, (void *)h[i], (j - i) * PMV_SIZE_4K);
	}
}

/*
 * Unmap path for small pages (as the kernel does): a write-protect costs
 * about as much as copying 4 KB, so instead move every source out at once
 * (accessors wait in MISSING faults), copy from the holes, move every copy
 * in. Runs of neighbours take one ioctl per step.
 */
static void migrate_unmapped(pmv_ctx *ctx, struct mig **u, size_t n)
{
	uintptr_t a[BATCH_PAGES], b[BATCH_PAGES];
	struct _pmv_copy_req reqs[BATCH_PAGES];
	struct mig *out[BATCH_PAGES];
	struct _pmv_page *pgs[BATCH_PAGES];
	int res[BATCH_PAGES], ret;
	size_t part[BATCH_PAGES], nout = 0;

	if (!n)
		return;
	for (size_t i = 0; i < n; i++) {
		a[i] = (uintptr_t)u[i]->hole;
		b[i] = u[i]->addr;
		pgs[i] = u[i]->pg;
	}
	/* a page a discard reached since step 1 stays (-EBUSY, event.c) */
	_pmv_move_out_runs(ctx, pgs, a, b, n, PMV_SIZE_4K, res, part);
	retry_refused(ctx, u, a, b, n, res, part);
	for (size_t i = 0; i < n; i++) {
		struct mig *m = u[i];

		if (res[i] && hole_touched(res[i], part[i]))
			m->hole_suspect = true;
		if (!res[i])
			out[nout++] = m;
		else if (res[i] == -EBUSY)
			m->deferred = true;	/* shared or pinned: the WP path decides */
		else if (res[i] == -ENOENT)
			release_gone(ctx, m);
		else
			release(ctx, m, out_status(res[i]), false);
	}
	for (size_t i = 0; i < nout; i++)
		reqs[i] = (struct _pmv_copy_req){ .dst = out[i]->dst_slot,
						  .src = out[i]->hole,
						  .len = PMV_SIZE_4K };
	_pmv_copy_batch(ctx, reqs, nout);
	/* A failed copy: the source goes back untouched. */
	for (size_t i = 0; i < nout; i++) {
		struct mig *m = out[i];

		if (!reqs[i].status)
			continue;
		ret = move_back(ctx, m);
		if (ret == -ECANCELED) {
			dropped(ctx, m);
			out[i] = NULL;
			continue;
		}
		if (ret) {
			/*
			 * Cannot happen (the address is ours and empty), but a
			 * torn copy must never be mapped: redo it here.
			 */
			memcpy(m->dst_slot, m->hole, m->size);
			continue;
		}
		release(ctx, m, reqs[i].status, false);
		out[i] = NULL;
	}
	n = 0;
	for (size_t i = 0; i < nout; i++) {
		if (!out[i])
			continue;
		out[n] = out[i];
		a[n] = out[i]->addr;
		b[n++] = (uintptr_t)out[i]->dst_slot;
		/* published before the move-in wakes anyone */
		__atomic_store_n(&out[i]->pg->tier, (int8_t)out[i]->dst, __ATOMIC_RELAXED);
	}
	for (size_t i = 0; i < n; i++)
		pgs[i] = out[i]->pg;
	_pmv_move_in(ctx, pgs, b, n, PMV_MV_WAKE, res, part);
	for (size_t i = 0; i < n; i++)
		if (res[i] && res[i] != -ECANCELED && !part[i])
			res[i] = move_in(ctx, out[i]);	/* transient EBUSY: retry alone */
	discard_sources(ctx, out, res, n);
	for (size_t i = 0; i < n; i++) {
		struct mig *m = out[i];

		if (!res[i]) {
			finish(ctx, m);
			continue;
		}
		__atomic_store_n(&m->pg->tier, (int8_t)m->src, __ATOMIC_RELAXED);
		if (res[i] != -ECANCELED)
			res[i] = move_back(ctx, m);
		if (!res[i]) {
			release(ctx, m, -EFAULT, false);
			continue;
		}
		if (res[i] == -ECANCELED) {
			dropped(ctx, m);
			continue;
		}
		gone_outside(ctx, m);
	}
}

/*
 * Unmap path for one huge page: move out, copy from the hole, move in. A
 * pinned page cannot be moved out (UFFDIO_MOVE refuses it), and once out
 * no pin can reach it, so a DMA can never write behind the copy; readers
 * wait for one page copy, as with the kernel's migration entries. EBUSY
 * (shared, pinned) goes to the write-protect path, which can judge it
 * with the page still mapped.
 */
static void migrate_unmap_one(pmv_ctx *ctx, struct mig *m, int flags)
{
	struct _pmv_copy_req req = { .dst = m->dst_slot, .src = m->hole, .len = m->size };
	size_t done;
	int ret;

	ret = move_out(ctx, m, &done, true);
	if (done) {
		/*
		 * Cannot put the moved part back: the page is split between
		 * the hole and its address. Assemble the copy from both, the
		 * mapped part under write-protect, and drop both halves. The
		 * write-protect for that copy passes the gate as every other
		 * does: a discard that reached the page since step 1 forbids
		 * it (event.c; after MADV_FREE the program may write the part
		 * at its address again, and the gate would zero those writes
		 * in the copy). Then the page stays split, parked: the hole
		 * holds the head, and its next access or unpark puts it back
		 * through the gate (track.c), the discard applied to it.
		 */
		ret = wp_range_for_copy(ctx, m, m->addr + done, m->size - done);
		if (ret) {
			_pmv_park_keep(ctx, m->pg, m->hole);
			_pmv_pool_put_page(&ctx->tiers[m->dst], m->ps, m->dst_slot, false);
			m->state = ENT_SKIP;
			m->status = -EBUSY;
			_pmv_count_fail(ctx, m->dst, -EBUSY);
			_pmv_putback_lru_page(ctx, m->pg);
			_pmv_page_unlock(ctx, m->pg);
			return;
		}
		memcpy(m->dst_slot, m->hole, done);
		/* no way back from here: wait for a slot (copiers end theirs soon) */
		while (!_pmv_copier_enter(ctx))
			sched_yield();
		memcpy((char *)m->dst_slot + done, (char *)m->addr + done, m->size - done);
		_pmv_copier_exit(ctx);
		_pmv_discard_self(ctx, m->addr + done, m->size - done);
		_pmv_pool_discard(ctx, m->hole, m->size);
		put_hole(ctx, m);
		_pmv_tier_uncharge(&ctx->tiers[m->src], m->ps, 1);
		m->zapped = true;
		goto move_in;
	}
	if (ret == -EBUSY) {
		void *fresh;

		/* the failed try may have left the hole a page table: swap it */
		if (_pmv_pool_take_holes(ctx, &ctx->tiers[m->src], m->ps, 1, &fresh) != 1) {
			release(ctx, m, -ENOMEM, false);
			return;
		}
		put_hole(ctx, m);
		m->hole = fresh;
		m->hole_suspect = false;
		migrate_wp(ctx, m, flags);
		return;
	}
	if (ret == -ENOENT) {
		release_gone(ctx, m);
		return;
	}
	if (ret) {
		release(ctx, m, out_status(ret), false);
		return;
	}
	_pmv_copy_batch(ctx, &req, 1);
	if (req.status) {
		ret = move_back(ctx, m);
		if (!ret) {
			release(ctx, m, req.status, false);
			return;
		}
		if (ret == -ECANCELED) {
			dropped(ctx, m);
			return;
		}
		memcpy(m->dst_slot, m->hole, m->size);	/* never map a torn copy */
	}
move_in:
	complete(ctx, m);
}

static int cmp_mig(const void *x, const void *y)
{
	const struct mig *a = *(struct mig *const *)x, *b = *(struct mig *const *)y;

	return a->addr < b->addr ? -1 : a->addr > b->addr;
}

/* The active entries whose target is a far tier: evicted (far.c), done. */
static void evict(pmv_ctx *ctx, struct mig **act, size_t n)
{
	struct _pmv_page *pgs[BATCH_PAGES];
	int dst[BATCH_PAGES], st[BATCH_PAGES];
	bool reuse[BATCH_PAGES];
	struct mig *ev[BATCH_PAGES];
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (!_pmv_tier_far(ctx, act[i]->dst))
			continue;
		ev[k] = act[i];
		pgs[k] = act[i]->pg;
		dst[k++] = act[i]->dst;
	}
	if (!k)
		return;
	_pmv_far_evict(ctx, pgs, dst, k, st, reuse, 0);
	for (size_t i = 0; i < k; i++) {
		ev[i]->status = st[i];
		ev[i]->state = ENT_SKIP;
		ev[i]->retry_reuse = reuse[i];	/* _pmv_move_list write-faults it, again */
	}
}

static void run_batch(pmv_ctx *ctx, struct mig *ms, size_t n, int flags)
{
	struct mig *act[BATCH_PAGES], *small[BATCH_PAGES];
	size_t nact = 0, nsmall = 0;

	/* 1: lock, check, isolate. No page is named twice (_pmv_move_list). */
	for (size_t i = 0; i < n; i++) {
		prepare(ctx, &ms[i], flags);
		if (ms[i].state == ENT_ACTIVE)
			act[nact++] = &ms[i];
	}
	/* 2: reserve in address order, so runs coalesce. */
	_pmv_sort(act, nact, sizeof(*act), cmp_mig);
	/* evictions (far targets) need no destination page: far.c does them */
	evict(ctx, act, nact);
	reserve(ctx, act, nact, flags);
	for (size_t i = 0; i < nact; i++)
		if (act[i]->state == ENT_ACTIVE && act[i]->ps == PMV_PS_4K)
			small[nsmall++] = act[i];
	/* 3-7 */
	migrate_unmapped(ctx, small, nsmall);
	for (size_t i = 0; i < nact; i++) {
		struct mig *m = act[i];

		if (m->state != ENT_ACTIVE)
			continue;
		if (m->deferred || (m->ps == PMV_PS_2M && !m->collapse &&
				    (ctx->flags & PMV_CTX_WP_COPY)))
			migrate_wp(ctx, m, flags);
		else if (m->ps == PMV_PS_2M)
			migrate_unmap_one(ctx, m, flags);
	}
}

#define SEEN_SLOTS	(2 * BATCH_PAGES)	/* a power of two, never more than half full */

/*
 * Add pg to the set of a batch's pages; true if it was there already.
 * Descriptors of neighbouring pages are neighbours in their region's
 * array, so their index is the hash.
 */
static bool seen_add(const struct _pmv_page **seen, const struct _pmv_page *pg)
{
	size_t h = (uintptr_t)pg / sizeof(*pg);

	for (;; h++) {
		const struct _pmv_page **slot = &seen[h & (SEEN_SLOTS - 1)];

		if (*slot == pg)
			return true;
		if (!*slot) {
			*slot = pg;
			return false;
		}
	}
}

/*
 * Move pgs[i] to tiers[i], with asynchronous signals held (page.c). The
 * caller holds ctx->fork_lock and
 * ctx->regions_lock for reading (so every pgs[i] stays valid). Returns the
 * number of pages that did not end on their target tier.
 */
int _pmv_move_list(pmv_ctx *ctx, size_t n, struct _pmv_page **pgs,
		   const int *tiers, int *status, int flags)
{
	/* kmem: under regions_lock, which a fault may wait for (internal.h) */
	struct mig *ms = _pmv_kcalloc(BATCH_PAGES, sizeof(*ms));
	const struct _pmv_page *seen[SEEN_SLOTS];
	int left = 0;

	if (!ms)
		return -ENOMEM;
	for (size_t base = 0; base < n;) {
		size_t cnt = 0, bytes = 0;
		bool retry = false;

		/*
		 * Bounded by pages and by bytes, and ended before a page named
		 * again: entries run in order, as in move_pages(2), so a later
		 * one must find the page where the earlier one left it.
		 */
		memset(seen, 0, sizeof(seen));
		while (base + cnt < n && cnt < BATCH_PAGES && bytes < BATCH_BYTES &&
		       !seen_add(seen, pgs[base + cnt]))
			bytes += _pmv_page_size(pgs[base + cnt++]);
		memset(ms, 0, cnt * sizeof(ms[0]));
		for (size_t i = 0; i < cnt; i++) {
			ms[i].pg = pgs[base + i];
			ms[i].dst = tiers[base + i];
		}
		run_batch(ctx, ms, cnt, flags);
		for (size_t i = 0; i < cnt; i++) {
			if (ms[i].retry_reuse && (flags & PMV_MOVE_NONBLOCK) &&
			    !(flags & _PMV_MIG_COLLAPSE)) {
				/*
				 * The write fault below would wait for a handler.
				 * A collapse does it: MADV_COLLAPSE is what mends a
				 * page a COW after fork split, and its fault is the
				 * kernel's (the page is whole and WP is cleared).
				 */
				ms[i].retry_reuse = false;
				ms[i].status = -EAGAIN;
			} else if (ms[i].retry_reuse) {
				/*
				 * Write-fault the page (unlocked now, so our fault
				 * thread can serve it) to make it exclusive again.
				 * The data is not touched. That cannot mend a huge
				 * page split into PTEs by a COW of its first 4 KB:
				 * UFFDIO_MOVE asks the folio's head page, which no
				 * one maps any more, so no fault can mark it
				 * exclusive. MADV_COLLAPSE copies such a page into
				 * a new THP of ours (a no-op on a PMD-mapped one).
				 * fork_lock is held: no child came since the check.
				 */
				if (ms[i].ps == PMV_PS_2M)
					madvise((void *)ms[i].addr, ms[i].size, MADV_COLLAPSE);
				madvise((void *)ms[i].addr, ms[i].size, MADV_POPULATE_WRITE);
				retry = true;
			}
		}
		if (retry) {
			struct mig *again = _pmv_kcalloc(cnt, sizeof(*again));
			size_t na = 0, *idx = _pmv_kcalloc(cnt, sizeof(*idx));

			for (size_t i = 0; again && idx && i < cnt; i++) {
				if (!ms[i].retry_reuse)
					continue;
				again[na].pg = ms[i].pg;
				again[na].dst = ms[i].dst;
				idx[na++] = i;
			}
			if (na)
				run_batch(ctx, again, na, flags);
			for (size_t k = 0; k < na; k++)
				ms[idx[k]].status = again[k].status;
			_pmv_kfree(again);
			_pmv_kfree(idx);
		}
		for (size_t i = 0; i < cnt; i++) {
			status[base + i] = ms[i].status;
			if (ms[i].status != ms[i].dst)
				left++;
		}
		base += cnt;
	}
	_pmv_kfree(ms);
	for (unsigned t = 0; t < ctx->ntiers; t++)
		_pmv_pool_trim(ctx, &ctx->tiers[t], flags & PMV_MOVE_NONBLOCK);
	return left;
}

#define MOVE_CHUNK	1024

/*
 * Entries that found their target, a bounded memory tier, full (-ENOMEM):
 * make room there by evicting its coldest pages to a far tier, and try
 * them again, as move_pages(2)'s allocation on the target node reclaims
 * there before it fails. Up to 4 rounds (each evicts what the failed
 * entries need). Not with PMV_MOVE_NONBLOCK (the policy's promotions):
 * reclaim waits for I/O and evicts. Caller holds regions_lock and
 * fork_lock for reading.
 */
static void reclaim_retry(pmv_ctx *ctx, size_t n, struct _pmv_page **pgs, const int *tgt,
			  int *st, int flags)
{
	struct _pmv_page **rp = NULL;
	int *rt = NULL, *rs = NULL;
	size_t *idx = NULL;

	if (flags & PMV_MOVE_NONBLOCK)
		return;
	for (int round = 0; round < 4; round++) {
		size_t bytes[PMV_MAX_TIERS] = { 0 }, k = 0;
		bool made = false;

		for (size_t i = 0; i < n; i++) {
			struct _pmv_tier *t = &ctx->tiers[tgt[i]];

			if (st[i] != -ENOMEM || !t->capacity || _pmv_tier_far(ctx, tgt[i]))
				continue;
			bytes[tgt[i]] += _pmv_page_size(pgs[i]);
			k++;
		}
		if (!k)
			break;
		for (unsigned t = 0; t < ctx->ntiers; t++)
			if (bytes[t] && !_pmv_far_reclaim(ctx, (int)t, bytes[t], NULL))
				made = true;
		if (!made)
			break;	/* nothing evictable (or a fork): the -ENOMEM stands */
		/* kmem, not the stack: a program thread's may be small (internal.h) */
		if (!rp) {
			rp = _pmv_kcalloc(n, sizeof(*rp));
			rt = _pmv_kcalloc(n, sizeof(*rt));
			rs = _pmv_kcalloc(n, sizeof(*rs));
			idx = _pmv_kcalloc(n, sizeof(*idx));
			if (!rp || !rt || !rs || !idx)
				break;
		}
		k = 0;
		for (size_t i = 0; i < n; i++) {
			if (st[i] != -ENOMEM || !ctx->tiers[tgt[i]].capacity ||
			    _pmv_tier_far(ctx, tgt[i]))
				continue;
			rp[k] = pgs[i];
			rt[k] = tgt[i];
			idx[k++] = i;
		}
		if (_pmv_move_list(ctx, k, rp, rt, rs, flags) < 0)
			break;
		for (size_t i = 0; i < k; i++)
			st[idx[i]] = rs[i];
	}
	_pmv_kfree(rp);
	_pmv_kfree(rt);
	_pmv_kfree(rs);
	_pmv_kfree(idx);
}

/*
 * fork_lock (if fork) and regions_lock for reading; with PMV_MOVE_NONBLOCK
 * only if neither has a writer in or waiting (false: neither taken).
 */
static bool lock_both(pmv_ctx *ctx, bool fork, int flags)
{
	if (!(flags & PMV_MOVE_NONBLOCK)) {
		if (fork)
			pthread_rwlock_rdlock(&ctx->fork_lock);
		_pmv_regions_rdlock(&ctx->regions_lock, false);
		return true;
	}
	if (fork && pthread_rwlock_tryrdlock(&ctx->fork_lock))
		return false;
	if (!_pmv_regions_tryrdlock(&ctx->regions_lock)) {
		if (fork)
			pthread_rwlock_unlock(&ctx->fork_lock);
		return false;
	}
	return true;
}

PMV_API int pmv_move_pages(pmv_ctx *ctx, size_t count, void *const pages[],
			   const int tiers[], int status[], int flags)
{
	struct _pmv_page *pgs[MOVE_CHUNK];
	int tgt[MOVE_CHUNK], st[MOVE_CHUNK];
	size_t map[MOVE_CHUNK];
	long left = 0;

	PMV_CHECK_CTX(ctx);
	if (count && (!pages || !status))
		return _pmv_set_errmsg(-EINVAL, "pmv_move_pages: NULL array");
	if (flags & ~(PMV_MOVE_ALL | PMV_MOVE_NONBLOCK))
		return _pmv_set_errmsg(-EINVAL, "pmv_move_pages: unknown flags");
	if (count > INT32_MAX)
		return _pmv_set_errmsg(-E2BIG, "pmv_move_pages: count too large");

	for (size_t base = 0; base < count; base += MOVE_CHUNK) {
		size_t cnt = count - base < MOVE_CHUNK ? count - base : MOVE_CHUNK;
		size_t n = 0;
		sigset_t sigs;

		_pmv_signals_hold(&sigs);
		if (!lock_both(ctx, tiers != NULL, flags)) {
			/* a fork or a region change is under way: nothing waits for it */
			for (size_t i = 0; i < cnt; i++)
				status[base + i] = -EAGAIN;
			left += (long)cnt;
			_pmv_signals_release(&sigs);
			continue;
		}
		for (size_t i = 0; i < cnt; i++) {
			uintptr_t a = (uintptr_t)pages[base + i];
			struct _pmv_page *pg = _pmv_addr_to_page(ctx, a, NULL);
			int *s = &status[base + i];

			if (!pg) {
				*s = -EFAULT;
			} else if (!tiers) {
				/* A racy read is fine: the page may move right after anyway. */
				*s = (_pmv_page_flags(pg) & PG_present) ?
				     __atomic_load_n(&pg->tier, __ATOMIC_RELAXED) : -ENOENT;
			} else if (tiers[base + i] < 0 ||
				   (unsigned)tiers[base + i] >= ctx->ntiers) {
				*s = -EINVAL;
			} else {
				pgs[n] = pg;
				tgt[n] = tiers[base + i];
				map[n++] = base + i;
				continue;
			}
			if (*s < 0)
				left++;
		}
		if (n) {
			int ret = _pmv_move_list(ctx, n, pgs, tgt, st, flags);

			for (size_t k = 0; ret < 0 && k < n; k++)
				st[k] = ret;	/* nothing was touched */
			if (ret > 0)
				reclaim_retry(ctx, n, pgs, tgt, st, flags);
			for (size_t k = 0; k < n; k++) {
				status[map[k]] = st[k];
				if (st[k] != tgt[k])
					left++;
			}
		}
		_pmv_regions_rdunlock(&ctx->regions_lock);
		if (tiers)
			pthread_rwlock_unlock(&ctx->fork_lock);
		_pmv_signals_release(&sigs);
	}
	return (int)left;
}

/* Pick up to max pages off the tail of a tier's LRU, oldest first. */
static size_t scan_tier(pmv_ctx *ctx, struct _pmv_tier *t, struct _pmv_page **out,
			size_t max)
{
	struct _pmv_lru_list *lists[2] = { &t->inactive, &t->active };
	size_t n = 0;

	(void)ctx;
	pthread_mutex_lock(&t->lru_lock);
	for (int l = 0; l < 2 && n < max; l++) {
		for (struct _pmv_page *pg = lists[l]->head.lru_prev;
		     pg != &lists[l]->head && n < max; pg = pg->lru_prev)
			out[n++] = pg;
	}
	pthread_mutex_unlock(&t->lru_lock);
	return n;
}

PMV_API long pmv_migrate(pmv_ctx *ctx, unsigned long from_tiers,
			 unsigned long to_tiers, int flags)
{
	unsigned long all = ctx && ctx->ntiers < 8 * sizeof(long) ?
			    (1UL << ctx->ntiers) - 1 : ~0UL;
	int map[PMV_MAX_TIERS], to[PMV_MAX_TIERS];
	size_t todo[PMV_MAX_TIERS] = { 0 };
	unsigned nto = 0, k = 0;
	long left = 0;

	PMV_CHECK_CTX(ctx);
	if (flags & ~(PMV_MOVE_ALL | PMV_MOVE_NONBLOCK))
		return _pmv_set_errmsg(-EINVAL, "pmv_migrate: unknown flags");
	if (!from_tiers || !to_tiers || (from_tiers & ~all) || (to_tiers & ~all))
		return _pmv_set_errmsg(-EINVAL, "pmv_migrate: empty or out-of-range tier mask");

	/* The k-th set bit of from maps to the k-th of to, or to the last one. */
	for (unsigned t = 0; t < ctx->ntiers; t++)
		if (to_tiers & (1UL << t))
			to[nto++] = t;
	for (unsigned t = 0; t < ctx->ntiers; t++) {
		map[t] = -1;
		if (from_tiers & (1UL << t)) {
			map[t] = to[k < nto ? k : nto - 1];
			k++;
		}
	}
	for (unsigned t = 0; t < ctx->ntiers; t++) {
		if (map[t] >= 0 && map[t] != (int)t) {
			struct _pmv_tier *tr = &ctx->tiers[t];

			pthread_mutex_lock(&tr->lru_lock);
			todo[t] = tr->active.nr + tr->inactive.nr;
			pthread_mutex_unlock(&tr->lru_lock);
		}
	}
	/*
	 * Bounded by each tier's page count at the start, so pages moved into
	 * a tier that is also a source are not picked up again.
	 */
	for (unsigned t = 0; t < ctx->ntiers; t++) {
		while (todo[t]) {
			struct _pmv_page *pgs[BATCH_PAGES];
			int tg[BATCH_PAGES], st[BATCH_PAGES];
			size_t want = todo[t] < BATCH_PAGES ? todo[t] : BATCH_PAGES;
			size_t n;
			sigset_t sigs;

			_pmv_signals_hold(&sigs);
			if (!lock_both(ctx, true, flags)) {
				/* skipped, counted as not moved, as its pages are */
				_pmv_signals_release(&sigs);
				left += (long)todo[t];
				break;
			}
			n = scan_tier(ctx, &ctx->tiers[t], pgs, want);
			for (size_t i = 0; i < n; i++)
				tg[i] = map[t];
			if (n) {
				int ret = _pmv_move_list(ctx, n, pgs, tg, st, flags);

				left += ret < 0 ? (long)n : ret;
			}
			_pmv_regions_rdunlock(&ctx->regions_lock);
			pthread_rwlock_unlock(&ctx->fork_lock);
			_pmv_signals_release(&sigs);
			if (!n)
				break;
			todo[t] -= n;
		}
	}
	return left;
}
