/* SPDX-License-Identifier: MIT */
/*
 * Exchange, the hot/cold swap between tiers: page a takes b's tier and b
 * takes a's, with no free page on either tier, so it works when both are
 * exactly full.
 *
 *   1. lock and isolate both pages of every pair;
 *   2. UFFDIO_MOVE a into a hole of a's tier's pool, b into one of b's
 *      (both addresses are now empty: accessors wait, and no thread can
 *      ever see a half-swapped page);
 *   3. swap the two physical pages' contents in place (engine "swap"
 *      requests, batched and parallel like copies);
 *   4. move a's old page (on a's tier, now holding b's data) to b's
 *      address and b's old page to a's address: the data changed tiers;
 *   5. the holes are holes again; unlock, put back on the new LRUs.
 * Runs of neighbouring pages take one ioctl per step.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define XCHG_BATCH	256		/* pairs: 512 pages, the kernel's cap */
#define XCHG_BYTES	(32UL << 20)	/* so the first pair does not wait long */
#define LOCK_TIMEOUT_US	20000

struct xpage {
	struct _pmv_page *pg;
	uintptr_t addr;
	int tier;
	void *hole;
	bool out;	/* step 2 moved it into its hole */
	bool touched;	/* a move into the hole may have left something there */
	bool refused;	/* step 2 did not try it (the gate, no hole) */
	bool hole_busy;	/* PMV_MOVE_NONBLOCK: no hole without waiting */
	int err;	/* step 2 lost it: the pair's status */
};

struct xpair {
	struct xpage p[2];
	size_t size;
	int ps;
	bool active;
	int status;
};

/* A move in of step 4: slot (p[k]'s hole, on `tier`) to pg at addr. */
struct xin {
	uintptr_t addr, slot;
	struct _pmv_page *pg;
	int tier;
	uint16_t own;		/* which rx[] it belongs to */
};

static int cmp_in(const void *x, const void *y)
{
	const struct xin *a = x, *b = y;

	return a->addr < b->addr ? -1 : a->addr > b->addr;
}

static int cmp_addr(const void *x, const void *y)
{
	const struct xpage *a = *(struct xpage *const *)x, *b = *(struct xpage *const *)y;

	return a->addr < b->addr ? -1 : a->addr > b->addr;
}

static void unlock_pair(pmv_ctx *ctx, struct xpair *x, bool putback)
{
	for (int k = 0; k < 2; k++) {
		if (putback)
			_pmv_putback_lru_page(ctx, x->p[k].pg);
		_pmv_page_unlock(ctx, x->p[k].pg);
	}
}

/* Step 1 for one pair. */
/*
 * A NONBLOCK pair whose trylock failed: -EBUSY if an earlier pair of the
 * batch holds one of its pages (the lock is ours; a retry meets it again,
 * so -EAGAIN's "a later try may pass" would be false), else -EAGAIN.
 */
static int named_again(pmv_ctx *ctx, const struct xpair *xs, size_t i, void *a, void *b)
{
	struct _pmv_page *pa = _pmv_addr_to_page(ctx, (uintptr_t)a, NULL);
	struct _pmv_page *pb = _pmv_addr_to_page(ctx, (uintptr_t)b, NULL);

	for (size_t j = 0; j < i; j++)
		for (int k = 0; xs[j].active && k < 2; k++)
			if (xs[j].p[k].pg == pa || xs[j].p[k].pg == pb)
				return -EBUSY;
	return -EAGAIN;
}

static void prepare_pair(pmv_ctx *ctx, struct xpair *x, void *a, void *b, int flags)
{
	struct _pmv_page *pa, *pb;

	x->active = false;
	pa = _pmv_addr_to_page(ctx, (uintptr_t)a, NULL);
	pb = _pmv_addr_to_page(ctx, (uintptr_t)b, NULL);
	if (!pa || !pb) {
		x->status = -EFAULT;
		return;
	}
	if (pa == pb || pa->region->ps != pb->region->ps) {
		x->status = -EINVAL;	/* one page, or a 4 KB with a 2 MB page */
		return;
	}
	/* Lock in address order; trylock with a timeout anyway (see page.c). */
	if (pa > pb) {
		struct _pmv_page *t = pa;

		pa = pb;
		pb = t;
	}
	if (flags & PMV_MOVE_NONBLOCK) {
		/* a fault in progress or another move holds one: skipped at once */
		if (!_pmv_page_trylock(pa)) {
			x->status = -EAGAIN;
			return;
		}
		if (!_pmv_page_trylock(pb)) {
			_pmv_page_unlock(ctx, pa);
			x->status = -EAGAIN;
			return;
		}
	} else if (_pmv_page_lock_timeout(pa, LOCK_TIMEOUT_US)) {
		x->status = -EBUSY;
		_pmv_count_fail(ctx, __atomic_load_n(&pb->tier, __ATOMIC_RELAXED), -EBUSY);
		return;
	} else if (_pmv_page_lock_timeout(pb, LOCK_TIMEOUT_US)) {
		_pmv_page_unlock(ctx, pa);
		x->status = -EBUSY;
		_pmv_count_fail(ctx, __atomic_load_n(&pa->tier, __ATOMIC_RELAXED), -EBUSY);
		return;
	}
	x->p[0].pg = pa;
	x->p[1].pg = pb;
	x->ps = pa->region->ps;
	x->size = _pmv_page_size(pa);
	for (int k = 0; k < 2; k++) {
		struct _pmv_page *pg = x->p[k].pg;
		uint32_t f = _pmv_page_flags(pg);

		x->p[k].addr = _pmv_page_addr(pg);
		x->p[k].tier = pg->tier;
		x->p[k].err = 0;
		x->p[k].refused = false;
		x->p[k].touched = false;
		if (!(f & PG_present)) {
			/* unmapped by the program since the lookup: not in a region */
			x->status = f & PG_gone ? -EFAULT : -ENOENT;
			goto unlock;
		}
		if (f & PG_zap) {
			/* its discard's zap is due (event.c) */
			x->status = flags & PMV_MOVE_NONBLOCK ? -EAGAIN : -EBUSY;
			goto unlock;
		}
		if (f & PG_far) {
			/* evicted: no page to trade; pmv_move_pages loads and evicts */
			x->status = -EINVAL;
			goto unlock;
		}
		/*
		 * A page shared with a child cannot be moved out, and exchange
		 * does not un-share: pmv_move_pages(PMV_MOVE_ALL) does.
		 */
		if ((f & PG_shared) && _pmv_page_shared(ctx, x->p[k].addr, _pmv_page_size(pg))) {
			x->status = flags & PMV_MOVE_ALL ? -EBUSY : -EACCES;
			goto unlock;
		}
	}
	if (x->p[0].tier == x->p[1].tier) {
		x->status = 0;		/* each already has the other's tier */
		goto unlock;
	}
	/* sampled pages come home first: the steps below expect them mapped */
	for (int k = 0; k < 2; k++) {
		if (_pmv_unpark(ctx, x->p[k].pg)) {
			x->status = -EBUSY;
			goto unlock;
		}
		if (!(_pmv_page_flags(x->p[k].pg) & PG_present)) {
			x->status = -ENOENT;	/* discarded while parked */
			goto unlock;
		}
	}
	for (int k = 0; k < 2; k++)
		_pmv_isolate_lru_page(ctx, x->p[k].pg);
	x->active = true;
	return;
unlock:
	if (x->status && x->status != -EAGAIN)
		_pmv_count_fail(ctx, x->p[1].tier, x->status);
	unlock_pair(ctx, x, false);
}

/*
 * A page could not be put back at its address (only an outside munmap or
 * mremap of managed memory does that): its hole keeps it and is never
 * reused; the descriptor forgets the page.
 */
static void lost_out(pmv_ctx *ctx, struct xpage *p)
{
	_pmv_set_errmsg(-EFAULT, "exchange: page %p could not go back", (void *)p->addr);
	p->err = -EFAULT;
	_pmv_page_clear(p->pg, PG_present);
	_pmv_tier_uncharge(&ctx->tiers[p->tier], p->pg->region->ps, 1);
	p->hole = NULL;
}

/*
 * The program discarded a page (or unmapped it) while it was out: what
 * would have gone in at its address (in `hole`, charged to tier `t`) is
 * given back to the kernel, never to a pool: a pipe may still hold it.
 */
static void xdropped(pmv_ctx *ctx, struct _pmv_page *pg, void *hole, int t, int ps)
{
	_pmv_pool_discard(ctx, hole, _pmv_ps_size(ps));
	if (ps == PMV_PS_4K)
		_pmv_pool_put_hole(&ctx->tiers[t], ps, hole);
	else
		_pmv_pool_retire(&ctx->tiers[t], ps, hole);
	_pmv_tier_uncharge(&ctx->tiers[t], ps, 1);
	_pmv_page_clear(pg, PG_present);
}

/* Step 2 found p discarded whole or unmapped on its way back: no page now. */
static void xdropped_out(pmv_ctx *ctx, struct xpage *p, int ps)
{
	p->err = _pmv_page_flags(p->pg) & PG_gone ? -EFAULT : -ENOENT;
	xdropped(ctx, p->pg, p->hole, p->tier, ps);
	p->hole = NULL;
}

static void fail_pair(pmv_ctx *ctx, struct xpair *x, int err)
{
	for (int k = 0; k < 2; k++) {
		struct _pmv_tier *t = &ctx->tiers[x->p[k].tier];
		void *hole = x->p[k].hole;

		if (!hole)
			continue;
		/*
		 * A move into it may have left pieces, or a page table (2 MB:
		 * retired). One the kernel refused untouched (a VMA the
		 * program locked or protected) is a hole as it was.
		 */
		if (x->p[k].touched) {
			_pmv_pool_discard(ctx, hole, x->size);
			if (x->ps == PMV_PS_2M) {
				_pmv_pool_retire(t, x->ps, hole);
				continue;
			}
		}
		_pmv_pool_put_hole(t, x->ps, hole);
	}
	_pmv_count_fail(ctx, x->p[1].tier, err);
	x->active = false;
	x->status = err;
	unlock_pair(ctx, x, true);
}

/* Holes in bulk per (tier, size), in address order so runs coalesce. */
static void take_holes(pmv_ctx *ctx, struct xpage **pgs, size_t n, int ps, bool nb)
{
	void *slots[2 * XCHG_BATCH];

	for (unsigned t = 0; t < ctx->ntiers; t++) {
		struct xpage *want[2 * XCHG_BATCH];
		size_t k = 0, got;
		bool busy;

		for (size_t i = 0; i < n; i++)
			if (pgs[i]->tier == (int)t)
				want[k++] = pgs[i];
		if (!k)
			continue;
		got = _pmv_pool_take_holes_nb(ctx, &ctx->tiers[t], ps, k, slots, nb, &busy);
		for (size_t i = 0; i < k; i++) {
			want[i]->hole = i < got ? slots[i] : NULL;
			want[i]->hole_busy = i >= got && busy;
		}
	}
}

/*
 * Step 3: a's data to b's hole and b's to a's, each into a fresh page. The
 * old pages are given back to the kernel, not overwritten: a reference
 * from outside their mappings (a pipe after vmsplice) may still hold one,
 * and must never see the other page's data. Each hole is dropped and then
 * written, so its tier's pool VMA (bound to the tier's node) faults in a
 * new page in the same place: no tier's usage changes at any moment, and
 * exchange still works at exactly full tiers. a's data waits in `bounce`.
 * reqs[i].status is 0, or the error of a copy that failed before anything
 * changed (the pair goes back as it was).
 */
static void trade(pmv_ctx *ctx, struct xpair **rx, struct _pmv_copy_req *reqs, size_t nr,
		  size_t psz, char *bounce)
{
	int st[XCHG_BATCH];

	for (size_t i = 0; i < nr; i++)
		reqs[i] = (struct _pmv_copy_req){ .dst = bounce + i * psz,
						  .src = rx[i]->p[0].hole, .len = psz };
	_pmv_copy_batch(ctx, reqs, nr);
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < nr; i++) {
			st[i] = k ? st[i] : reqs[i].status;
			if (st[i])
				continue;
			_pmv_pool_discard(ctx, rx[i]->p[k].hole, psz);
			reqs[i] = (struct _pmv_copy_req){ .dst = rx[i]->p[k].hole,
							  .src = k ? bounce + i * psz : rx[i]->p[1].hole,
							  .len = psz };
		}
		_pmv_copy_batch(ctx, reqs, nr);
		/* past the point of return: a failed copy is done again, plainly */
		for (size_t i = 0; i < nr; i++)
			if (!st[i] && reqs[i].status)
				memcpy(reqs[i].dst, reqs[i].src, psz);
	}
	for (size_t i = 0; i < nr; i++)
		reqs[i].status = st[i];
}

/*
 * A move in that UFFDIO_MOVE refused for now, as migrate.c's move_in
 * retries it: EAGAIN (a fault or an event in between), and EBUSY, seen
 * when a huge page that was mapped by PTEs (a partial MADV_COLD or
 * mprotect splits the mapping) left its address a page table: the kernel
 * then has to split the huge page going in, which a passing reference to
 * it (the page was written in step 3) refuses. Giving up there lost the
 * page's data. Retry it alone, from where it stopped.
 */
static int move_in_retry(pmv_ctx *ctx, struct _pmv_page *pg, void *slot, size_t *part)
{
	int ret = -EBUSY;

	for (int i = 0; i < 64 && (ret == -EBUSY || ret == -EAGAIN); i++) {
		sched_yield();
		ret = _pmv_move_in_one(ctx, pg, slot, PMV_MV_WAKE, part);
	}
	return ret;
}

/*
 * One batch of one page size through steps 2-5. On the heap (one per
 * call): at 512 pages its arrays are 32 KB.
 */
struct xbatch {
	size_t psz, np, nr;
	int ps;
	char *bounce;
	struct xpage *pgs[2 * XCHG_BATCH];	/* every page, by address */
	struct xpair *rx[XCHG_BATCH];		/* the pairs that got out: steps 3-5 */
	struct _pmv_copy_req reqs[XCHG_BATCH];	/* step 3's, per rx[] */
	struct xin in[2 * XCHG_BATCH];		/* step 4's moves, by destination */
	uintptr_t dst[2 * XCHG_BATCH], src[2 * XCHG_BATCH];
	struct _pmv_page *ipg[2 * XCHG_BATCH];	/* steps 2 and 4: the pages moved */
	int res[2 * XCHG_BATCH];
	size_t part[2 * XCHG_BATCH];
	bool bad_in[XCHG_BATCH];		/* per rx[]: a page could not go in */
	uint8_t dropped_in[XCHG_BATCH];		/* per rx[]: holes given back, bit k = p[k]'s */
};

/*
 * Moves of step 2 into holes that the program's mlock reached (filled:
 * EEXIST; locked: EINVAL): once the pools are repaired (the first such
 * hole does it), each is emptied and tried once more, through the gate.
 */
static void retry_refused(pmv_ctx *ctx, struct xbatch *b)
{
	bool repaired = false;

	for (size_t i = 0; i < b->np; i++) {
		struct xpage *p = b->pgs[i];

		if ((b->res[i] != -EEXIST && b->res[i] != -EINVAL) || b->part[i] || p->refused)
			continue;
		if (!repaired)
			repaired = _pmv_pool_refused(ctx, p->hole, b->psz, b->res[i]);
		else if (b->res[i] == -EEXIST)
			_pmv_pool_discard(ctx, p->hole, b->psz);
		if (!repaired)
			continue;
		_pmv_out_lock(ctx);
		p->refused = _pmv_out_refused(p->pg);
		b->res[i] = p->refused ? -EBUSY :
			    _pmv_uffd_move(ctx, b->dst[i], b->src[i], b->psz, PMV_MV_POOL, &b->part[i]);
		_pmv_out_unlock(ctx);
	}
}

/*
 * Step 2: every page out, into its own tier's hole; a page without a hole,
 * or that a discard reached since step 1 (event.c), stays (its `out` is
 * false). A move that stopped part way goes back now, through the gate:
 * the program may have discarded pieces of the head since.
 */
static void step_move_out(pmv_ctx *ctx, struct xbatch *b)
{
	size_t np = b->np;

	for (size_t i = 0; i < np; i++) {
		b->dst[i] = (uintptr_t)b->pgs[i]->hole;
		b->src[i] = b->pgs[i]->addr;
		b->ipg[i] = b->pgs[i]->pg;
	}
	/* an untried page's -EBUSY/-ENOMEM is never one retry_refused takes */
	_pmv_move_out_runs(ctx, b->ipg, b->dst, b->src, np, b->psz, b->res, b->part);
	retry_refused(ctx, b);
	for (size_t i = 0; i < np; i++) {
		struct xpage *p = b->pgs[i];

		p->out = !b->res[i];
		/*
		 * Moved out (and maybe back: a huge page mapped by PTEs leaves
		 * its hole a page table), or failed after the kernel began:
		 * not a clean hole. The gate's and the kernel's refusals
		 * (EINVAL, checked before anything moves) leave it as it was.
		 */
		p->touched = p->hole && (p->out || b->part[i] ||
					 (b->res[i] != -EINVAL && !p->refused));
		if (b->res[i] && b->part[i]) {
			int back = _pmv_move_in_head(ctx, p->pg, (void *)b->dst[i], b->part[i], 0);

			if (back == -ECANCELED)
				xdropped_out(ctx, p, b->ps);
			else if (back)
				lost_out(ctx, p);
		}
	}
}

/*
 * After step 2: a pair with both pages out goes on (rx[]); one with a side
 * that could not leave puts the other back and fails.
 */
static void step_sort_out(pmv_ctx *ctx, struct xbatch *b, struct xpair *xs, size_t n)
{
	b->nr = 0;
	for (size_t i = 0; i < n; i++) {
		struct xpair *x = &xs[i];

		if (!x->active || x->ps != b->ps)
			continue;
		if (x->p[0].out && x->p[1].out) {
			b->rx[b->nr++] = x;
			continue;
		}
		for (int k = 0; k < 2; k++) {
			int ret;

			if (!x->p[k].out)
				continue;
			ret = _pmv_move_in_one(ctx, x->p[k].pg, x->p[k].hole, PMV_MV_WAKE, NULL);
			if (ret == -ECANCELED)
				xdropped_out(ctx, &x->p[k], b->ps);
			else if (ret)
				lost_out(ctx, &x->p[k]);
		}
		/* a page gone says so; else no hole was to be had, or it was busy */
		fail_pair(ctx, x, x->p[0].err ?: x->p[1].err ?:
			  x->p[0].hole && x->p[1].hole ? -EBUSY :
			  x->p[0].hole_busy || x->p[1].hole_busy ? -EAGAIN : -ENOMEM);
	}
}

/* Step 4: cross the pages over; tiers are published before the moves wake anyone. */
static void step_move_in(pmv_ctx *ctx, struct xbatch *b)
{
	size_t np = 0;

	for (size_t i = 0; i < b->nr; i++) {
		struct xpair *x = b->rx[i];
		bool ok = !b->reqs[i].status;

		b->bad_in[i] = false;
		b->dropped_in[i] = 0;
		if (ok) {
			__atomic_store_n(&x->p[0].pg->tier, (int8_t)x->p[1].tier, __ATOMIC_RELAXED);
			__atomic_store_n(&x->p[1].pg->tier, (int8_t)x->p[0].tier, __ATOMIC_RELAXED);
		}
		for (int k = 0; k < 2; k++) {
			/* a's old page goes to b's address, and the other way */
			struct xpage *to = ok ? &x->p[1 - k] : &x->p[k];

			b->in[np++] = (struct xin){ .addr = to->addr, .pg = to->pg,
						    .slot = (uintptr_t)x->p[k].hole,
						    .tier = x->p[k].tier, .own = (uint16_t)i };
		}
	}
	/* by destination, so runs coalesce */
	_pmv_sort(b->in, np, sizeof(b->in[0]), cmp_in);
	for (size_t i = 0; i < np; i++) {
		b->ipg[i] = b->in[i].pg;
		b->src[i] = b->in[i].slot;
	}
	_pmv_move_in(ctx, b->ipg, b->src, np, PMV_MV_WAKE, b->res, b->part);
	for (size_t i = 0; i < np; i++) {
		const struct xin *in = &b->in[i];
		int *res = &b->res[i];

		if (*res == -EBUSY || *res == -EAGAIN)
			*res = move_in_retry(ctx, in->pg, (void *)in->slot, &b->part[i]);
		if (*res == -ECANCELED) {
			/* discarded or unmapped meanwhile: nothing goes in there */
			xdropped(ctx, in->pg, (void *)in->slot, in->tier, b->ps);
			b->dropped_in[in->own] |= 1u << (in->slot == (uintptr_t)b->rx[in->own]->p[1].hole);
			continue;
		}
		/*
		 * The destinations were emptied by us and are locked, so this
		 * cannot fail, past the retries, short of an outside munmap
		 * of managed memory.
		 */
		if (*res) {
			_pmv_set_errmsg(*res, "exchange: move-in at %p failed", (void *)in->addr);
			b->bad_in[in->own] = true;
		}
	}
}

/* Step 5: holes back, account, unlock. */
static void step_finish(pmv_ctx *ctx, struct xbatch *b)
{
	for (size_t i = 0; i < b->nr; i++) {
		struct xpair *x = b->rx[i];
		int err = b->bad_in[i] ? -EFAULT : b->reqs[i].status;

		/* a hole whose page could not go in is not a hole: keep it out */
		for (int k = 0; k < 2 && !b->bad_in[i]; k++)
			if (!(b->dropped_in[i] & (1u << k)))
				_pmv_pool_put_hole(&ctx->tiers[x->p[k].tier], b->ps, x->p[k].hole);
		x->active = false;
		x->status = err;
		if (err) {
			_pmv_count_fail(ctx, x->p[1].tier, err);
			unlock_pair(ctx, x, true);
			continue;
		}
		for (int k = 0; k < 2; k++) {
			int to = x->p[1 - k].tier;

			x->p[k].pg->moved_ds = _pmv_now_ds(ctx);
			_pmv_stat_add(&ctx->tiers[to].migrate_in, 1);
			_pmv_stat_add(&ctx->tiers[to].migrate_bytes_in, b->psz);
			_pmv_stat_add(&ctx->tiers[x->p[k].tier].migrate_out, 1);
			if ((ctx->flags & PMV_CTX_VERIFY) && ctx->tiers[to].node >= 0 &&
			    _pmv_verify_node(ctx, x->p[k].addr, ctx->tiers[to].node)) {
				_pmv_stat_add(&ctx->tiers[to].verify_errors, 1);
				x->status = -EIO;
			}
		}
		_pmv_stat_add(&ctx->migrations, 2);
		_pmv_stat_add(&ctx->migrate_bytes, 2 * b->psz);
		unlock_pair(ctx, x, true);
	}
}

/* Steps 2-5 for the active pairs of one page size. */
static void exchange_batch(pmv_ctx *ctx, struct xbatch *b, struct xpair *xs, size_t n, int ps,
			   int flags)
{
	b->ps = ps;
	b->psz = _pmv_ps_size(ps);
	b->np = 0;
	for (size_t i = 0; i < n; i++)
		if (xs[i].active && xs[i].ps == ps)
			for (int k = 0; k < 2; k++)
				b->pgs[b->np++] = &xs[i].p[k];
	if (!b->np)
		return;
	_pmv_sort(b->pgs, b->np, sizeof(b->pgs[0]), cmp_addr);
	take_holes(ctx, b->pgs, b->np, ps, flags & PMV_MOVE_NONBLOCK);
	step_move_out(ctx, b);
	step_sort_out(ctx, b, xs, n);
	trade(ctx, b->rx, b->reqs, b->nr, b->psz, b->bounce);	/* 3 */
	step_move_in(ctx, b);
	step_finish(ctx, b);
}

PMV_API int pmv_exchange_pages(pmv_ctx *ctx, size_t count, void *const a[],
			       void *const b[], int status[], int flags)
{
	struct xpair *xs;
	struct xbatch *xb;
	size_t blen = (count < XCHG_BATCH ? count : XCHG_BATCH) * PMV_SIZE_2M;
	bool heap = false;
	int left = 0;

	PMV_CHECK_CTX(ctx);
	if (count && (!a || !b || !status))
		return _pmv_set_errmsg(-EINVAL, "pmv_exchange_pages: NULL array");
	if (flags & ~(PMV_MOVE_ALL | PMV_MOVE_NONBLOCK))
		return _pmv_set_errmsg(-EINVAL, "pmv_exchange_pages: unknown flags");
	if (count > INT32_MAX)
		return _pmv_set_errmsg(-E2BIG, "pmv_exchange_pages: count too large");
	xs = malloc(XCHG_BATCH * sizeof(*xs));
	xb = malloc(sizeof(*xb));
	/*
	 * A batch's first pages wait here (trade), aligned for the copy
	 * engines: as much as a batch of count pairs may need, and mapped as
	 * regions are (_pmv_map_anon), not malloc's. From malloc, 18 MB
	 * under mlockall(MCL_FUTURE) were populated at each call, and once
	 * glibc's dynamic mmap threshold rose past them (the first free) they
	 * came from the caller's arena, which kept them resident: t_mprotect's
	 * mlockall bound saw 18 MB more in its second round. Under
	 * RLIMIT_AS there may be no new address space for it, where the
	 * heap still has room: malloc's then, as before.
	 */
	if (blen > XCHG_BYTES / 2 + PMV_SIZE_2M)
		blen = XCHG_BYTES / 2 + PMV_SIZE_2M;
	if (xb) {
		xb->bounce = count ? _pmv_map_anon(blen, PMV_SIZE_4K) : NULL;
		if (count && !xb->bounce) {
			xb->bounce = aligned_alloc(PMV_SIZE_4K, blen);
			heap = true;
		}
	}
	if (!xs || !xb || (count && !xb->bounce)) {
		if (xb && heap)
			free(xb->bounce);
		else if (xb && xb->bounce)
			munmap(xb->bounce, blen);
		free(xs);
		free(xb);
		return -ENOMEM;
	}
	for (size_t base = 0, n; base < count; base += n) {
		size_t bytes = 0;
		sigset_t sigs;

		_pmv_signals_hold(&sigs);
		if (!(flags & PMV_MOVE_NONBLOCK)) {
			pthread_rwlock_rdlock(&ctx->fork_lock);
			_pmv_regions_rdlock(&ctx->regions_lock, false);
		} else if (pthread_rwlock_tryrdlock(&ctx->fork_lock)) {
			n = count - base;	/* a fork is under way: nothing waits for it */
			goto all_again;
		} else if (!_pmv_regions_tryrdlock(&ctx->regions_lock)) {
			pthread_rwlock_unlock(&ctx->fork_lock);
			n = count - base;	/* a region change is under way */
			goto all_again;
		}
		/* bounded by pairs and by bytes, as migration batches are */
		for (n = 0; base + n < count && n < XCHG_BATCH && bytes < XCHG_BYTES; n++) {
			struct _pmv_page *pg = _pmv_addr_to_page(ctx, (uintptr_t)a[base + n], NULL);

			bytes += 2 * (pg ? _pmv_page_size(pg) : PMV_SIZE_4K);
		}
		memset(xs, 0, n * sizeof(*xs));
		/*
		 * A page named by two pairs of one batch would be locked twice:
		 * prepare_pair() times out on it and reports -EBUSY (NONBLOCK:
		 * named_again() says so instead of -EAGAIN).
		 */
		for (size_t i = 0; i < n; i++) {
			prepare_pair(ctx, &xs[i], a[base + i], b[base + i], flags);
			if (xs[i].status == -EAGAIN && (flags & PMV_MOVE_NONBLOCK))
				xs[i].status = named_again(ctx, xs, i, a[base + i], b[base + i]);
		}
		exchange_batch(ctx, xb, xs, n, PMV_PS_4K, flags);
		exchange_batch(ctx, xb, xs, n, PMV_PS_2M, flags);
		_pmv_regions_rdunlock(&ctx->regions_lock);
		pthread_rwlock_unlock(&ctx->fork_lock);
		_pmv_signals_release(&sigs);
		for (size_t i = 0; i < n; i++) {
			status[base + i] = xs[i].status;
			left += xs[i].status != 0;
		}
		continue;
all_again:
		_pmv_signals_release(&sigs);
		for (size_t i = 0; i < n; i++)
			status[base + i] = -EAGAIN;
		left += (int)n;
	}
	free(xs);
	if (heap)
		free(xb->bounce);
	else if (xb->bounce)
		munmap(xb->bounce, blen);
	free(xb);
	return left;
}
