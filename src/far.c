/* SPDX-License-Identifier: MIT */
/*
 * Far tiers (issue 11): eviction of pages into a tier's store, and their
 * fault-back. A page on a far tier keeps PG_present (it has data) and gets
 * PG_far: its address is empty and its bytes are in the store under
 * pg->handle, as the kernel keeps a swap entry in the page table. The next
 * access, from user or kernel mode, takes a MISSING fault (full mode only:
 * pmv_create refuses far tiers in user-mode-only mode).
 *
 * Evicting is a migration whose target is a far tier (migrate.c hands it
 * here after step 1): move out through the out-gate (accessors wait in
 * MISSING faults), store the batch, free the pool pages. A store failure
 * moves the page back untouched. Loading is the reverse: a pool page of a
 * memory tier, the store's bytes into it, a move in through the gate (which
 * wakes the waiters), the handle dropped. A load that fails (read error,
 * checksum mismatch) poisons the address: the thread gets SIGBUS, as with
 * the kernel's swap read errors; wrong bytes are never mapped.
 *
 * Charging: a far page counts in its far tier's resident[] (pages, for the
 * stats and every uncharge path), never in a memory tier's; the bytes its
 * store really uses are what the far tier's capacity bounds (the store
 * enforces it).
 */
#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include "internal.h"

#define EVICT_MAX	512	/* a batch of migrate.c is at most this */
#define RECLAIM_MAX	64	/* pages a fault looks at to make room */
#define RECLAIM_WALK	(4 * RECLAIM_MAX)	/* list entries, past bound pages */

/* ---- open, close, stats ------------------------------------------------ */

int _pmv_far_open(pmv_ctx *ctx, unsigned i, const struct pmv_tier_config *tc)
{
	struct _pmv_tier *t = &ctx->tiers[i];
	int ret = _pmv_store_open(&t->store, tc);

	if (ret) {
		char why[256];

		snprintf(why, sizeof(why), "%s", pmv_errmsg());	/* the same buffer */
		return _pmv_set_errmsg(ret, "pmv_create: tier %u (%s): %s", i,
				       _pmv_tier_kind_name(tc->kind), why);
	}
	t->kind = tc->kind;
	return 0;
}

void _pmv_far_close(pmv_ctx *ctx, unsigned i)
{
	struct _pmv_tier *t = &ctx->tiers[i];

	if (!t->store)
		return;
	/* every page's handle dies with the store, which discards its blocks */
	_pmv_store_close(t->store);
	t->store = NULL;
}

void _pmv_far_stats(pmv_ctx *ctx, int tier, struct pmv_tier_stats *st)
{
	struct _pmv_tier *t = &ctx->tiers[tier];
	struct _pmv_store_stats ss;

	st->kind = (uint64_t)t->kind;
	if (!t->store)
		return;
	_pmv_store_stats(t->store, &ss);
	st->stored_pages = ss.pages[PMV_PS_4K] + ss.pages[PMV_PS_2M];
	st->stored_bytes = ss.stored_bytes;
	st->stored_page_bytes = ss.page_bytes;
	st->ratio = ss.ratio;
	st->same_filled = ss.same_filled;
	st->incompressible = ss.incompressible;
	st->io_errors = ss.io_errors + ss.csum_errors;
	st->faults_in = atomic_load_explicit(&t->faults_in, memory_order_relaxed);
	st->fault_in_ns = atomic_load_explicit(&t->fault_in_ns, memory_order_relaxed);
}

int _pmv_far_inject(pmv_ctx *ctx, int tier, const char *spec)
{
	if (tier < 0 || (unsigned)tier >= ctx->ntiers || !_pmv_tier_far(ctx, tier))
		return -EINVAL;
	return _pmv_store_inject(ctx->tiers[tier].store, spec);
}

/* ---- eviction ---------------------------------------------------------- */

struct ev {
	struct _pmv_page *pg;
	uintptr_t addr;
	size_t size;
	int ps, src, dst;	/* dst: the far tier it is tried on now */
	void *hole;
	bool suspect;		/* a failed move touched the hole */
	bool pending;		/* out, to be stored on dst */
	bool reuse;		/* not exclusive (a child came and went): write-fault, again */
	bool raw_ok;		/* PMV_EVICT_RECLAIM: the last far tier keeps it as it is */
	int status;
	uint64_t handle;
};

/* The hole goes back to its pool; one a failed move touched is cleaned first. */
static void ev_put_hole(pmv_ctx *ctx, struct ev *e, bool full)
{
	if (full || e->suspect) {
		_pmv_pool_discard(ctx, e->hole, e->size);
		/* a 2 MB hole a failed move touched may keep a page table: retire it */
		if (e->suspect && e->ps == PMV_PS_2M) {
			_pmv_pool_retire(&ctx->tiers[e->src], e->ps, e->hole);
			return;
		}
	}
	_pmv_pool_put_hole(&ctx->tiers[e->src], e->ps, e->hole);
}

/* The page stays where it was (whole at its address): report err, unlock. */
static void ev_release(pmv_ctx *ctx, struct ev *e, int err)
{
	e->status = err;
	_pmv_count_fail(ctx, e->dst, err);
	_pmv_putback_lru_page(ctx, e->pg);
	_pmv_page_unlock(ctx, e->pg);
}

/*
 * The page's address was discarded or unmapped while its page was out:
 * the page in the hole is given back to the kernel, the descriptor has
 * no page.
 */
static void ev_dropped(pmv_ctx *ctx, struct ev *e)
{
	uint32_t f = _pmv_page_flags(e->pg);

	ev_put_hole(ctx, e, true);
	_pmv_tier_uncharge(&ctx->tiers[e->src], e->ps, 1);
	_pmv_page_clear(e->pg, PG_present | PG_isolated | PG_active | PG_referenced);
	e->status = f & PG_gone ? -EFAULT : -ENOENT;
	_pmv_count_fail(ctx, e->dst, e->status);
	_pmv_page_unlock(ctx, e->pg);
}

/*
 * A stored page that cannot stay stored (err): back to its address. Never
 * given up while its address is ours: if the move back fails for now (an
 * unread event, which a fault handler must not wait for; a transient
 * EBUSY), the page stays parked in its hole, whole, and its next access or
 * unpark puts it back (track.c).
 */
static void ev_back(pmv_ctx *ctx, struct ev *e, int err)
{
	size_t done = 0;
	int ret;

	for (int i = 0;; i++) {
		ret = _pmv_move_in_one(ctx, e->pg, e->hole, PMV_MV_WAKE, &done);
		if (ret != -EBUSY || done || i == 64)
			break;
		sched_yield();
	}
	if (!ret) {
		ev_put_hole(ctx, e, false);
		ev_release(ctx, e, err);
		return;
	}
	if (ret == -ECANCELED) {
		ev_dropped(ctx, e);
		return;
	}
	_pmv_park_keep(ctx, e->pg, e->hole);
	_pmv_uffd_wake(ctx, e->addr, e->size);
	ev_release(ctx, e, err);
}

/* The page is stored: free its pool page, publish it far, unlock. */
static void ev_commit(pmv_ctx *ctx, struct ev *e)
{
	struct _pmv_page *pg = e->pg;

	/* discarded already (discard_stored) */
	_pmv_pool_put_hole(&ctx->tiers[e->src], e->ps, e->hole);
	_pmv_tier_uncharge(&ctx->tiers[e->src], e->ps, 1);
	_pmv_tier_charge(&ctx->tiers[e->dst], e->ps, 1);
	pg->handle = e->handle;
	__atomic_store_n(&pg->tier, (int8_t)e->dst, __ATOMIC_RELAXED);
	_pmv_page_clear(pg, PG_active | PG_referenced);
	_pmv_page_set(pg, PG_far);
	pg->moved_ds = _pmv_now_ds(ctx);
	_pmv_putback_lru_page(ctx, pg);	/* on the far tier's list: pmv_migrate finds it */
	_pmv_stat_add(&ctx->far_pages, 1);
	_pmv_stat_add(&ctx->tiers[e->dst].migrate_in, 1);
	_pmv_stat_add(&ctx->tiers[e->dst].migrate_bytes_in, e->size);
	_pmv_stat_add(&ctx->tiers[e->src].migrate_out, 1);
	_pmv_stat_add(&ctx->migrations, 1);
	_pmv_stat_add(&ctx->migrate_bytes, e->size);
	e->status = e->dst;
	/* waiters fault again and load it (far fault) */
	_pmv_page_unlock(ctx, pg);
}

/* Step "move out" of a group of one page size: sort out what did not go. */
static size_t ev_move_out(pmv_ctx *ctx, struct ev **g, size_t n, size_t psz, struct ev **out)
{
	uintptr_t dst[EVICT_MAX], src[EVICT_MAX];
	struct _pmv_page *pgs[EVICT_MAX];
	size_t part[EVICT_MAX], nout = 0;
	int res[EVICT_MAX];

	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		dst[i] = (uintptr_t)g[i]->hole;
		src[i] = g[i]->addr;
		pgs[i] = g[i]->pg;
	}
	_pmv_move_out_runs(ctx, pgs, dst, src, n, psz, res, part);
	for (size_t i = 0; i < n; i++) {
		struct ev *e = g[i];
		int back;

		if (!res[i]) {
			out[nout++] = e;
			continue;
		}
		/* as migrate.c's hole_touched: only EINVAL refuses before touching */
		e->suspect = part[i] || res[i] != -EINVAL;
		if (part[i]) {
			/* a huge page split part way: its head goes back through the gate */
			back = _pmv_move_in_head(ctx, e->pg, e->hole, part[i], 0);
			if (back == -ECANCELED) {
				ev_dropped(ctx, e);
				continue;
			}
			if (back) {
				/* split for now: parked as it is, the next access mends it */
				_pmv_park_keep(ctx, e->pg, e->hole);
				ev_release(ctx, e, -EBUSY);
				continue;
			}
			ev_put_hole(ctx, e, false);
			ev_release(ctx, e, -EBUSY);
			continue;
		}
		if (res[i] == -ENOENT && !_pmv_pages_mapped(ctx, e->addr, e->size)) {
			/* discarded since step 1: nothing to store */
			ev_put_hole(ctx, e, false);
			_pmv_page_forget(ctx, e->pg);
			e->status = _pmv_page_flags(e->pg) & PG_gone ? -EFAULT : -ENOENT;
			_pmv_count_fail(ctx, e->dst, e->status);
			_pmv_page_clear(e->pg, PG_isolated);
			_pmv_page_unlock(ctx, e->pg);
			continue;
		}
		ev_put_hole(ctx, e, false);
		if (res[i] == -EBUSY && !_pmv_out_refused(e->pg)) {
			/*
			 * UFFDIO_MOVE wants an exclusive page. Shared with a
			 * child: -EACCES, as a move says. Mapped once but not
			 * exclusive (the child exited): the caller write-faults
			 * it after the unlock and tries once more (migrate.c).
			 */
			if (_pmv_page_shared(ctx, e->addr, e->size)) {
				_pmv_page_set(e->pg, PG_shared);
				ev_release(ctx, e, -EACCES);
				continue;
			}
			e->reuse = true;
		}
		/* pinned, locked or protected by the program: in use */
		ev_release(ctx, e, res[i] == -ENOMEM ? -ENOMEM : -EBUSY);
	}
	return nout;
}

/*
 * Step "store", far tier by far tier in order: a page refused as
 * incompressible is tried on the next far tier.
 */
static void ev_store(pmv_ctx *ctx, struct ev **out, size_t n)
{
	struct _pmv_store_req reqs[EVICT_MAX];
	struct ev *grp[EVICT_MAX];

	for (unsigned t = 0; t < ctx->ntiers; t++) {
		bool next_far = t + 1 < ctx->ntiers && _pmv_tier_far(ctx, (int)t + 1);
		size_t k = 0;

		if (!_pmv_tier_far(ctx, (int)t))
			continue;
		for (size_t i = 0; i < n; i++) {
			if (!out[i]->pending || out[i]->dst != (int)t)
				continue;
			reqs[k] = (struct _pmv_store_req){ .page = out[i]->hole, .ps = out[i]->ps,
							   .raw_ok = out[i]->raw_ok && !next_far };
			grp[k++] = out[i];
		}
		if (!k)
			continue;
		_pmv_store_put(ctx->tiers[t].store, reqs, k);
		for (size_t i = 0; i < k; i++) {
			struct ev *e = grp[i];

			if (!reqs[i].status) {
				e->handle = reqs[i].handle;
				e->status = 0;
				e->pending = false;
			} else if (reqs[i].status == -PMV_E_INCOMPRESSIBLE && next_far) {
				e->dst = (int)t + 1;	/* still pending: the next far tier tries */
			} else {
				e->status = reqs[i].status;
				e->pending = false;
			}
		}
	}
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The slots of the stored pages of a group (one page size) go back to the
 * kernel a run of neighbours at a time: each madvise is a TLB flush, an
 * IPI to the program's CPUs, and one per page was most of the background
 * demoter's time. Before the commits uncharge them, so that the tier
 * never holds more than its capacity.
 */
static void discard_stored(pmv_ctx *ctx, struct ev **out, size_t n, size_t psz)
{
	void *h[EVICT_MAX];
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		if (!out[i]->status)
			h[k++] = out[i]->hole;
	_pmv_sort(h, k, sizeof(*h), cmp_ptr);
	for (size_t i = 0, j; i < k; i = j) {
		for (j = i + 1; j < k && (char *)h[j] == (char *)h[j - 1] + psz; j++)
			;
		_pmv_pool_discard(ctx, h[i], (j - i) * psz);
	}
}

static void evict_group(pmv_ctx *ctx, struct ev **g, size_t n, size_t psz)
{
	struct ev *out[EVICT_MAX];
	size_t nout;

	if (!n)
		return;
	nout = ev_move_out(ctx, g, n, psz, out);
	for (size_t i = 0; i < nout; i++)
		out[i]->pending = true;
	ev_store(ctx, out, nout);
	for (size_t i = 0; i < nout; i++) {
		struct ev *e = out[i];

		/*
		 * A discard or unmap read while the page was out: its store
		 * copy is not what the program has. Back through the gate,
		 * which applies it.
		 */
		if (!e->status && (_pmv_page_flags(e->pg) & (PG_discard | PG_gone))) {
			_pmv_store_drop(ctx->tiers[e->dst].store, &e->handle, 1);
			e->status = -EBUSY;
		}
	}
	discard_stored(ctx, out, nout, psz);
	for (size_t i = 0; i < nout; i++) {
		if (!out[i]->status)
			ev_commit(ctx, out[i]);
		else
			ev_back(ctx, out[i], out[i]->status);
	}
}

void _pmv_far_evict(pmv_ctx *ctx, struct _pmv_page **pgs, const int *dst, size_t n,
		    int *status, bool *reuse, unsigned flags)
{
	/* kmem: a fault handler's reclaim evicts, and every caller holds page locks */
	struct ev *evs = _pmv_kcalloc(n ? n : 1, sizeof(*evs));
	struct ev *g[PMV_PS_NR][EVICT_MAX];
	size_t ng[PMV_PS_NR] = { 0 };

	for (size_t i = 0; i < n; i++) {
		struct _pmv_page *pg = pgs[i];
		struct ev tmp = {
			.pg = pg, .addr = _pmv_page_addr(pg), .size = _pmv_page_size(pg),
			.ps = pg->region->ps, .src = pg->tier, .dst = dst[i],
			.raw_ok = flags & PMV_EVICT_RECLAIM,
		};
		struct ev *e = evs ? &evs[i] : &tmp;

		if (evs)
			*e = tmp;
		if (!evs || n > EVICT_MAX ||
		    _pmv_pool_take_holes(ctx, &ctx->tiers[e->src], e->ps, 1, &e->hole) != 1) {
			ev_release(ctx, e, -ENOMEM);
			status[i] = e->status;
			continue;
		}
		g[e->ps][ng[e->ps]++] = e;
	}
	evict_group(ctx, g[PMV_PS_4K], ng[PMV_PS_4K], PMV_SIZE_4K);
	evict_group(ctx, g[PMV_PS_2M], ng[PMV_PS_2M], PMV_SIZE_2M);
	for (size_t i = 0; evs && i < n; i++) {
		status[i] = evs[i].status;
		if (reuse)
			reuse[i] = evs[i].reuse;
	}
	_pmv_kfree(evs);
}

/*
 * Bounce buffers for a page's bytes. No thread that holds the page's lock
 * takes the program's malloc locks (internal.h's allocator rule): a thread
 * interrupted inside malloc (holding an arena's lock; under ASan, its
 * allocator's) may run a signal handler that touches this very page, and
 * its fault then waits for the lock holder that waits for that allocator
 * lock (t_signals' storm while evicting hung so, a fault handler in
 * load_buf's aligned_alloc, the caller interrupted in free). So buffers
 * come from the kernel: 4 KB pages are kept for reuse (the 4 KB fault-in
 * is the hot path, and a munmap flushes every CPU's TLB), a few per
 * process, under a leaf lock that no thread holds while a signal can
 * reach it (handlers block them all, callers hold them across page locks);
 * mmap for a huge page.
 */
#define BUF_KEEP	16

static pthread_mutex_t buf_mu = PTHREAD_MUTEX_INITIALIZER;
static void *buf_kept[BUF_KEEP];
static unsigned buf_nkept;

static void *buf_get(size_t size)
{
	void *p = NULL;

	if (size == PMV_SIZE_4K) {
		pthread_mutex_lock(&buf_mu);
		if (buf_nkept)
			p = buf_kept[--buf_nkept];
		pthread_mutex_unlock(&buf_mu);
		if (p)
			return p;
	}
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void _pmv_far_buf_put(void *p, size_t size)
{
	if (!p)
		return;
	if (size == PMV_SIZE_4K) {
		pthread_mutex_lock(&buf_mu);
		if (buf_nkept < BUF_KEEP) {
			buf_kept[buf_nkept++] = p;
			p = NULL;
		}
		pthread_mutex_unlock(&buf_mu);
		if (!p)
			return;
	}
	munmap(p, size);
}

/* ---- between far tiers ---------------------------------------------------- */

int _pmv_far_move(pmv_ctx *ctx, struct _pmv_page *pg, int dst)
{
	int ps = pg->region->ps, src = pg->tier;
	size_t size = _pmv_ps_size(ps);
	struct _pmv_store_req get = { .ps = ps, .handle = pg->handle }, put = { .ps = ps };
	void *buf = buf_get(size);

	if (!buf)
		return -ENOMEM;
	get.page = put.page = buf;
	if (_pmv_store_get(ctx->tiers[src].store, &get, 1) != 1) {
		_pmv_far_buf_put(buf, size);
		_pmv_stat_add(&ctx->tiers[src].load_errors, 1);
		return -EIO;
	}
	_pmv_store_put(ctx->tiers[dst].store, &put, 1);
	_pmv_far_buf_put(buf, size);
	if (put.status) {
		_pmv_count_fail(ctx, dst, put.status);
		return put.status;
	}
	/* the page never leaves its empty address: only its handle and tier change */
	_pmv_store_drop(ctx->tiers[src].store, &pg->handle, 1);
	_pmv_lru_del(ctx, pg);
	pg->handle = put.handle;
	_pmv_tier_uncharge(&ctx->tiers[src], ps, 1);
	_pmv_tier_charge(&ctx->tiers[dst], ps, 1);
	__atomic_store_n(&pg->tier, (int8_t)dst, __ATOMIC_RELAXED);
	pg->moved_ds = _pmv_now_ds(ctx);
	if (!(_pmv_page_flags(pg) & PG_isolated))
		_pmv_lru_add(ctx, pg);
	_pmv_stat_add(&ctx->tiers[dst].migrate_in, 1);
	_pmv_stat_add(&ctx->tiers[dst].migrate_bytes_in, size);
	_pmv_stat_add(&ctx->tiers[src].migrate_out, 1);
	_pmv_stat_add(&ctx->migrations, 1);
	_pmv_stat_add(&ctx->migrate_bytes, size);
	return 0;
}

size_t _pmv_far_free(pmv_ctx *ctx, int tier)
{
	struct _pmv_tier *t = &ctx->tiers[tier];
	struct _pmv_store_stats ss;

	if (!t->store || !t->capacity)
		return SIZE_MAX;
	_pmv_store_stats(t->store, &ss);
	return ss.stored_bytes < t->capacity ? t->capacity - ss.stored_bytes : 0;
}

/* ---- room for a fault, and the background demoter --------------------- */

/*
 * Evict the coldest pages of memory tier `tier` (the tails of its
 * inactive, then active list) to the first far tier until `bytes` are
 * free. Only pages it can lock at once; never `self`. A page bound to its
 * tier (PG_bind, pmv_mbind's PMV_MPOL_BIND) only when the unbound ones do
 * not free enough, and never for the demoter (`background`): it does the
 * policy's work ahead, and the policy never moves a bound page; a fault
 * that needs room may, as the kernel's reclaim swaps out MPOL_BIND pages,
 * or it would get SIGBUS. The caller holds
 * regions_lock for reading. fork_lock is only tried: a fork in progress
 * loads every evicted page back, and one evicted behind it would be a
 * hole in the child: -EAGAIN then. 0 and *freed, or nothing freed:
 * -EBUSY (room on its way, below) or -ENOMEM.
 */
static int reclaim(pmv_ctx *ctx, int tier, size_t bytes, struct _pmv_page *self,
		   size_t *freed, uint64_t *pages, bool background)
{
	struct _pmv_tier *t = &ctx->tiers[tier];
	struct _pmv_page *cand[2][RECLAIM_MAX], *pgs[RECLAIM_MAX];
	int dst[RECLAIM_MAX], st[RECLAIM_MAX], far = -1;
	size_t nc[2] = { 0 }, n = 0, got = 0, walked = 0, busy = 0, listed, charged = 0;

	*freed = 0;
	*pages = 0;
	for (unsigned i = 0; i < ctx->ntiers && far < 0; i++)
		if (_pmv_tier_far(ctx, (int)i))
			far = (int)i;
	if (far < 0 || _pmv_tier_far(ctx, tier))
		return -ENOMEM;
	if (pthread_rwlock_tryrdlock(&ctx->fork_lock))
		return -EAGAIN;	/* a fork (or one queued behind a batch): fault again */
	/* the tails: cand[0] unbound pages, cand[1] bound ones, walking past those */
	pthread_mutex_lock(&t->lru_lock);
	for (int l = 0; l < 2; l++) {
		struct _pmv_lru_list *list = l ? &t->active : &t->inactive;

		for (struct _pmv_page *pg = list->head.lru_prev;
		     pg != &list->head && nc[0] < RECLAIM_MAX && walked < RECLAIM_WALK;
		     pg = pg->lru_prev, walked++) {
			int b = !!(_pmv_page_flags(pg) & PG_bind);

			if (nc[b] < RECLAIM_MAX)
				cand[b][nc[b]++] = pg;
		}
	}
	listed = t->inactive.nr + t->active.nr;
	pthread_mutex_unlock(&t->lru_lock);
	for (int b = 0; b < (background ? 1 : 2); b++) {
		for (size_t i = 0; i < nc[b] && got < bytes && n < RECLAIM_MAX; i++) {
			struct _pmv_page *pg = cand[b][i];
			uint32_t f;

			if (pg == self)
				continue;
			if (!_pmv_page_trylock(pg)) {
				busy++;
				continue;
			}
			f = _pmv_page_flags(pg);
			busy += !!(f & (PG_zap | PG_isolated));
			/* as prepare() in migrate.c: only a mapped, unshared page of this tier */
			if ((f & (PG_present | PG_far | PG_zap | PG_shared | PG_isolated)) !=
			    PG_present || (background && (f & PG_bind)) || pg->tier != tier ||
			    _pmv_unpark(ctx, pg) || !(_pmv_page_flags(pg) & PG_present)) {
				_pmv_page_unlock(ctx, pg);
				continue;
			}
			_pmv_isolate_lru_page(ctx, pg);
			pgs[n] = pg;
			dst[n++] = far;
			got += _pmv_page_size(pg);
		}
	}
	if (n)
		_pmv_far_evict(ctx, pgs, dst, n, st, NULL, PMV_EVICT_RECLAIM);
	pthread_rwlock_unlock(&ctx->fork_lock);
	for (size_t i = 0; i < n; i++)
		if (st[i] >= 0 && _pmv_tier_far(ctx, st[i])) {
			*freed += _pmv_page_size(pgs[i]);
			++*pages;
		}
	if (*freed)
		return 0;
	/*
	 * Nothing freed. Room on its way, where the kernel's reclaim would
	 * wait for writeback: pages held by others (an eviction or a load in
	 * flight: locked, or charged and off the lists) or a discard's zap
	 * watch (PG_zap, at most 1 s): -EBUSY. Otherwise -ENOMEM.
	 */
	pthread_mutex_lock(&t->lock);
	for (int ps = 0; ps < PMV_PS_NR; ps++)
		charged += t->resident[ps];
	pthread_mutex_unlock(&t->lock);
	return busy || charged > listed ? -EBUSY : -ENOMEM;
}

/* A fault found memory tier `tier` full: direct reclaim, as the kernel's. */
int _pmv_far_reclaim(pmv_ctx *ctx, int tier, size_t bytes, struct _pmv_page *self)
{
	size_t freed;
	uint64_t pages;
	int ret = reclaim(ctx, tier, bytes, self, &freed, &pages, false);

	_pmv_stat_add(&ctx->direct_evicted, pages);
	_pmv_far_kick(ctx, tier);	/* it is below low: the demoter gets ahead again */
	return ret;
}

/*
 * The demoter, as the kernel's kswapd: woken when a memory tier's free
 * room falls below its low watermark, it evicts until the high one is
 * free, a batch at a time (regions_lock is let go between batches, for
 * munmap). On the 2-CPU VM direct reclaim was most of a fault-in's time
 * (move out, compress, free the page, before the load could start); here
 * that runs on another CPU while the program goes on. Only in the AUTO
 * policy mode, as the policy's own moves; direct reclaim stays the
 * backstop when the demoter falls behind. Not min_residency: a tail that
 * young means the tier turns over faster, and skipping it would only move
 * the eviction into a fault. Raw storage as direct reclaim's, which would
 * store the page a moment later; refused, it would be compressed again at
 * every kick.
 */
#define KSWAPD_NAP_NS	100000000L	/* a lost kick costs at most this */

static void kswapd_tier(pmv_ctx *ctx, int t)
{
	struct _pmv_tier *tier = &ctx->tiers[t];
	size_t room = _pmv_tier_room(tier), freed;
	uint64_t pages;

	if (room >= tier->wmark[1])
		return;
	while (room < tier->wmark[2] &&
	       !atomic_load_explicit(&ctx->kswapd_stop, memory_order_relaxed) &&
	       atomic_load_explicit(&ctx->policy_mode, memory_order_relaxed) == PMV_POLICY_AUTO) {
		size_t want = tier->wmark[2] - room;
		int ret;

		_pmv_regions_rdlock(&ctx->regions_lock, false);
		ret = reclaim(ctx, t, want, NULL, &freed, &pages, true);
		_pmv_regions_rdunlock(&ctx->regions_lock);
		if (ret)
			return;	/* nothing to evict now (all locked, a fork): the next kick */
		_pmv_stat_add(&ctx->kswapd_evicted, pages);
		/* the policy's work done ahead: counted as its demotions */
		_pmv_stat_add(&ctx->demoted, pages);
		_pmv_stat_add(&ctx->policy_bytes, freed);
		for (unsigned f = 0; f < ctx->ntiers; f++)
			if (_pmv_tier_far(ctx, (int)f)) {
				_pmv_stat_add(&ctx->tiers[f].demote_in, pages);
				break;	/* reclaim() evicts to the first far tier */
			}
		room = _pmv_tier_room(tier);
	}
}

static void *kswapd_main(void *arg)
{
	pmv_ctx *ctx = arg;

	while (!atomic_load_explicit(&ctx->kswapd_stop, memory_order_relaxed)) {
		struct timespec ts = { 0, KSWAPD_NAP_NS };

		/* cleared before the look: a kick during the work is not lost */
		atomic_store_explicit(&ctx->kswapd_kick, 0, memory_order_seq_cst);
		if (atomic_load_explicit(&ctx->policy_mode, memory_order_relaxed) ==
		    PMV_POLICY_AUTO)
			for (unsigned t = 0; t < ctx->ntiers; t++)
				if (!_pmv_tier_far(ctx, (int)t) && ctx->tiers[t].capacity)
					kswapd_tier(ctx, (int)t);
		syscall(SYS_futex, &ctx->kswapd_kick, FUTEX_WAIT_PRIVATE, 0, &ts, NULL, 0);
	}
	return NULL;
}

void _pmv_far_kick(pmv_ctx *ctx, int t)
{
	struct _pmv_tier *tier;

	if (!atomic_load_explicit(&ctx->kswapd_running, memory_order_acquire) || t < 0 || (unsigned)t >= ctx->ntiers ||
	    _pmv_tier_far(ctx, t) || !ctx->tiers[t].capacity ||
	    atomic_load_explicit(&ctx->kswapd_kick, memory_order_relaxed))
		return;
	tier = &ctx->tiers[t];
	if (_pmv_tier_room(tier) >= tier->wmark[1])
		return;
	if (!atomic_exchange_explicit(&ctx->kswapd_kick, 1, memory_order_seq_cst))
		syscall(SYS_futex, &ctx->kswapd_kick, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int _pmv_far_kswapd_start(pmv_ctx *ctx)
{
	bool far = false, bounded = false;
	sigset_t all, old;
	int ret;

	for (unsigned t = 0; t < ctx->ntiers; t++) {
		far |= _pmv_tier_far(ctx, (int)t);
		bounded |= !_pmv_tier_far(ctx, (int)t) && ctx->tiers[t].capacity;
	}
	if (!far || !bounded)
		return 0;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&ctx->kswapd, NULL, kswapd_main, ctx);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return -ret;
	pthread_setname_np(ctx->kswapd, "pmv-kswapd");
	atomic_store_explicit(&ctx->kswapd_running, true, memory_order_release);
	return 0;
}

void _pmv_far_kswapd_stop(pmv_ctx *ctx)
{
	if (!atomic_load(&ctx->kswapd_running))
		return;
	atomic_store(&ctx->kswapd_stop, true);
	atomic_store(&ctx->kswapd_kick, 1);
	syscall(SYS_futex, &ctx->kswapd_kick, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_join(ctx->kswapd, NULL);
	atomic_store(&ctx->kswapd_running, false);
}

/* ---- loading back ------------------------------------------------------ */

/* Memory tiers to load into: `tier`, or the policy tier then the rest. */
static int load_order(pmv_ctx *ctx, const struct _pmv_page *pg, int tier, int *order)
{
	int pol = __atomic_load_n(&pg->pol_tier, __ATOMIC_RELAXED), n = 0;

	if (tier >= 0) {
		order[n++] = tier;
		return n;
	}
	if (pol >= 0 && (unsigned)pol < ctx->ntiers && !_pmv_tier_far(ctx, pol))
		order[n++] = pol;
	for (unsigned t = 0; t < ctx->ntiers; t++)
		if ((int)t != pol && !_pmv_tier_far(ctx, (int)t))
			order[n++] = (int)t;
	return n;
}

/* The page is back on memory tier t: drop its handle, account, LRU. */
static void landed(pmv_ctx *ctx, struct _pmv_page *pg, int ft, int t, unsigned flags,
		   uint64_t t0)
{
	int ps = pg->region->ps;
	size_t size = _pmv_ps_size(ps);
	struct _pmv_tier *far = &ctx->tiers[ft];

	_pmv_store_drop(far->store, &pg->handle, 1);
	pg->handle = 0;
	_pmv_page_clear(pg, PG_far);
	_pmv_tier_uncharge(far, ps, 1);
	atomic_fetch_sub_explicit(&ctx->far_pages, 1, memory_order_relaxed);
	if (flags & PMV_FAR_FAULT) {
		/* an access brought it back: it is hot (the "fault-in counts") */
		uint32_t min = ctx->pol.promote_min_heat ? ctx->pol.promote_min_heat : 1;

		if (__atomic_load_n(&pg->heat, __ATOMIC_RELAXED) < min)
			__atomic_store_n(&pg->heat, min, __ATOMIC_RELAXED);
		_pmv_page_set(pg, PG_active | PG_referenced | PG_tracked);
		_pmv_stat_add(&far->faults_in, 1);
		_pmv_stat_add(&far->fault_in_ns, _pmv_now_ns() - t0);
	}
	pg->moved_ds = _pmv_now_ds(ctx);
	if (!(_pmv_page_flags(pg) & PG_isolated))
		_pmv_lru_add(ctx, pg);
	_pmv_stat_add(&ctx->tiers[t].migrate_in, 1);
	_pmv_stat_add(&ctx->tiers[t].migrate_bytes_in, size);
	_pmv_stat_add(&far->migrate_out, 1);
	_pmv_stat_add(&ctx->migrations, 1);
	_pmv_stat_add(&ctx->migrate_bytes, size);
	_pmv_far_kick(ctx, t);
}

/*
 * No pool page anywhere (fork, PMV_FAR_FORCE): copy the bytes in with
 * UFFDIO_COPY, the kernel's page, charged to the first memory tier over
 * its capacity. Through the gate's rule by hand: under event_lock read,
 * never into an address the program discarded or unmapped meanwhile.
 */
static int load_copy(pmv_ctx *ctx, struct _pmv_page *pg, int t, unsigned flags, uint64_t t0)
{
	int ps = pg->region->ps, ft = pg->tier, ret;
	size_t size = _pmv_ps_size(ps), done = 0;
	struct _pmv_store_req req = { .ps = ps, .handle = pg->handle };
	void *buf = buf_get(size);

	if (!buf)
		return -ENOMEM;
	req.page = buf;
	if (_pmv_store_get(ctx->tiers[ft].store, &req, 1) != 1) {
		_pmv_far_buf_put(buf, size);
		_pmv_stat_add(&ctx->tiers[ft].load_errors, 1);
		return -EIO;
	}
	for (;;) {
		pthread_rwlock_rdlock(&ctx->event_lock);
		if (_pmv_page_flags(pg) & (PG_discard | PG_gone))
			ret = -ECANCELED;
		else
			ret = _pmv_uffd_copy(ctx, _pmv_page_addr(pg) + done, (uintptr_t)buf + done,
					     size - done, PMV_MV_ONCE |
					     ((flags & PMV_FAR_WAKE) ? PMV_MV_WAKE : 0), &done);
		pthread_rwlock_unlock(&ctx->event_lock);
		if (ret != -EAGAIN || _pmv_is_fault_thread())
			break;
		sched_yield();
	}
	_pmv_far_buf_put(buf, size);
	if (ret)
		return ret;
	_pmv_lru_del(ctx, pg);
	_pmv_tier_charge(&ctx->tiers[t], ps, 1);
	__atomic_store_n(&pg->tier, (int8_t)t, __ATOMIC_RELAXED);
	landed(ctx, pg, ft, t, flags, t0);
	return 0;
}

/*
 * A 4 KB page, with room on memory tier t that no pool page holds: the
 * store's bytes into a buffer, which the kernel copies into a page of its
 * own at the address (PMV_MV_BUF). A move from a pool slot clears the
 * slot's PTE, and that TLB flush is an IPI to every CPU that ran the
 * program lately: on the 2-CPU VM it was the largest cost of a fault-in
 * after the eviction. Nor is a pool page populated here, or discarded by
 * the eviction that makes the room. 1: not this way (no room without a
 * pool page, a tier bound to one node of several): the caller moves a
 * pool page in.
 */
static int load_buf(pmv_ctx *ctx, struct _pmv_page *pg, int t, unsigned flags, uint64_t t0)
{
	int ft = pg->tier, ret;
	struct _pmv_store_req req = { .ps = PMV_PS_4K, .handle = pg->handle };
	struct _pmv_tier *tier = &ctx->tiers[t];
	size_t done = 0;
	void *buf;

	if (!_pmv_tier_take_room(tier, PMV_PS_4K))
		return 1;
	buf = buf_get(PMV_SIZE_4K);
	if (!buf) {
		_pmv_tier_uncharge(tier, PMV_PS_4K, 1);
		return 1;
	}
	req.page = buf;
	if (_pmv_store_get(ctx->tiers[ft].store, &req, 1) != 1) {
		_pmv_far_buf_put(buf, PMV_SIZE_4K);
		_pmv_tier_uncharge(tier, PMV_PS_4K, 1);
		_pmv_stat_add(&ctx->tiers[ft].load_errors, 1);
		return -EIO;
	}
	/* published before the copy wakes the faulting threads, as below */
	_pmv_lru_del(ctx, pg);
	__atomic_store_n(&pg->tier, (int8_t)t, __ATOMIC_RELAXED);
	ret = _pmv_move_in_one(ctx, pg, buf,
			       PMV_MV_BUF | ((flags & PMV_FAR_WAKE) ? PMV_MV_WAKE : 0), &done);
	_pmv_far_buf_put(buf, PMV_SIZE_4K);
	if (ret) {
		/* a 4 KB copy is all or nothing: the page is still far */
		__atomic_store_n(&pg->tier, (int8_t)ft, __ATOMIC_RELAXED);
		if (!(_pmv_page_flags(pg) & PG_isolated))
			_pmv_lru_add(ctx, pg);
		_pmv_tier_uncharge(tier, PMV_PS_4K, 1);
		return ret;
	}
	landed(ctx, pg, ft, t, flags, t0);
	return 0;
}

int _pmv_far_load(pmv_ctx *ctx, struct _pmv_page *pg, int tier, unsigned flags)
{
	int ps = pg->region->ps, ft = pg->tier, order[PMV_MAX_TIERS], n, t = -1, ret;
	size_t size = _pmv_ps_size(ps), done = 0;
	struct _pmv_store_req req = { .ps = ps, .handle = pg->handle };
	uint64_t t0 = _pmv_now_ns();
	uint32_t f = _pmv_page_flags(pg);
	void *slot = NULL;
	bool clean;

	if (!(f & PG_far))
		return 0;
	n = load_order(ctx, pg, tier, order);
	for (int i = 0; i < n && !slot; i++) {
		t = order[i];
		if (ps == PMV_PS_4K && (ret = load_buf(ctx, pg, t, flags, t0)) <= 0)
			return ret;
		slot = _pmv_pool_take_page(ctx, &ctx->tiers[t], ps, false, &clean);
	}
	if (!slot)
		return (flags & PMV_FAR_FORCE) && n ? load_copy(ctx, pg, order[0], flags, t0)
						    : -ENOMEM;
	req.page = slot;
	if (_pmv_store_get(ctx->tiers[ft].store, &req, 1) != 1) {
		/* the store zeroed the slot: it is a pool page again */
		_pmv_pool_put_page(&ctx->tiers[t], ps, slot, false);
		_pmv_stat_add(&ctx->tiers[ft].load_errors, 1);
		return -EIO;
	}
	/*
	 * Off the far tier's list and published before the move in wakes the
	 * faulting threads: one that asks right away sees the page where it is.
	 */
	_pmv_lru_del(ctx, pg);
	__atomic_store_n(&pg->tier, (int8_t)t, __ATOMIC_RELAXED);
	/*
	 * EBUSY can be transient (the slot's page in a large folio the kernel
	 * must split first, as migrate.c's move_in() says): again, a while.
	 */
	for (int i = 0;; i++) {
		ret = _pmv_move_in_one(ctx, pg, slot, (flags & PMV_FAR_WAKE) ? PMV_MV_WAKE : 0,
				       &done);
		if (ret != -EBUSY || i == 64)
			break;
		sched_yield();
	}
	if (ret) {
		__atomic_store_n(&pg->tier, (int8_t)ft, __ATOMIC_RELAXED);
		if (!(_pmv_page_flags(pg) & PG_isolated))
			_pmv_lru_add(ctx, pg);
		if (done) {
			/* part went in (the address was partly mapped): a hole now */
			_pmv_pool_discard(ctx, slot, size);
			_pmv_pool_put_hole(&ctx->tiers[t], ps, slot);
			_pmv_tier_uncharge(&ctx->tiers[t], ps, 1);
		} else {
			_pmv_pool_put_page(&ctx->tiers[t], ps, slot, false);
		}
		return ret;
	}
	/* the slot is empty now: a hole of its tier again */
	_pmv_pool_put_hole(&ctx->tiers[t], ps, slot);
	landed(ctx, pg, ft, t, flags, t0);
	return 0;
}

/*
 * The store cannot give the page back: the address gets a poison marker,
 * so the access fails as a hardware memory error would (SIGBUS; EFAULT in
 * a system call) until the program discards or unmaps it. Not where a
 * discard or unmap was read meanwhile: the unlock settles that page.
 */
static void poison(pmv_ctx *ctx, struct _pmv_page *pg)
{
	uintptr_t addr = _pmv_page_addr(pg);
	size_t size = _pmv_page_size(pg);
	int ret = -ECANCELED, len;
	char msg[256];

	pthread_rwlock_rdlock(&ctx->event_lock);
	if (!(_pmv_page_flags(pg) & (PG_discard | PG_gone)))
		ret = _pmv_uffd_poison(ctx, addr, size);
	pthread_rwlock_unlock(&ctx->event_lock);
	if (ret)
		_pmv_uffd_wake(ctx, addr, size);
	_pmv_stat_add(&ctx->faults_sigbus, 1);
	/* not stdio: its lock may be held by the very thread that faulted */
	len = snprintf(msg, sizeof(msg), "pagemove: tier %s: the page at %p could not be "
		       "loaded back (read error or checksum mismatch): SIGBUS\n",
		       ctx->tiers[pg->tier].name, (void *)addr);
	if (len > 0 && write(STDERR_FILENO, msg, (size_t)len < sizeof(msg) ? (size_t)len :
			     sizeof(msg) - 1) < 0)
		return;
}

int _pmv_far_fault(pmv_ctx *ctx, struct _pmv_page *pg, bool force)
{
	int ret = _pmv_far_load(ctx, pg, -1, PMV_FAR_WAKE | PMV_FAR_FAULT |
				(force ? PMV_FAR_FORCE : 0));

	if (ret == -EIO) {
		poison(ctx, pg);
		return 0;
	}
	return ret;
}

void _pmv_far_drop(pmv_ctx *ctx, struct _pmv_page *pg)
{
	if (!(_pmv_page_flags(pg) & PG_far))
		return;
	_pmv_store_drop(ctx->tiers[pg->tier].store, &pg->handle, 1);
	pg->handle = 0;
	_pmv_page_clear(pg, PG_far);
	atomic_fetch_sub_explicit(&ctx->far_pages, 1, memory_order_relaxed);
}

int _pmv_far_to_parked(pmv_ctx *ctx, struct _pmv_page *pg)
{
	int ps = pg->region->ps, ft = pg->tier, order[PMV_MAX_TIERS], n, t = -1;
	struct _pmv_store_req req = { .ps = ps, .handle = pg->handle };
	void *slot = NULL;
	bool clean;

	n = load_order(ctx, pg, -1, order);
	for (int i = 0; i < n && !slot; i++) {
		t = order[i];
		slot = _pmv_pool_take_page(ctx, &ctx->tiers[t], ps, false, &clean);
	}
	if (!slot)
		return -ENOMEM;
	req.page = slot;
	if (_pmv_store_get(ctx->tiers[ft].store, &req, 1) != 1) {
		_pmv_pool_put_page(&ctx->tiers[t], ps, slot, false);
		_pmv_stat_add(&ctx->tiers[ft].load_errors, 1);
		return -EIO;
	}
	_pmv_lru_del(ctx, pg);
	_pmv_store_drop(ctx->tiers[ft].store, &pg->handle, 1);
	pg->handle = 0;
	_pmv_page_clear(pg, PG_far);
	_pmv_tier_uncharge(&ctx->tiers[ft], ps, 1);
	atomic_fetch_sub_explicit(&ctx->far_pages, 1, memory_order_relaxed);
	__atomic_store_n(&pg->tier, (int8_t)t, __ATOMIC_RELAXED);
	_pmv_park_keep(ctx, pg, slot);
	if (!(_pmv_page_flags(pg) & PG_isolated))
		_pmv_lru_add(ctx, pg);
	return 0;
}

void *_pmv_far_read(pmv_ctx *ctx, struct _pmv_page *pg)
{
	size_t size = _pmv_ps_size(pg->region->ps);
	struct _pmv_store_req req = { .ps = pg->region->ps, .handle = pg->handle };
	void *buf;

	if (!(_pmv_page_flags(pg) & PG_far))
		return NULL;
	buf = buf_get(size);
	if (!buf)
		return NULL;
	req.page = buf;
	if (_pmv_store_get(ctx->tiers[pg->tier].store, &req, 1) != 1) {
		_pmv_stat_add(&ctx->tiers[pg->tier].load_errors, 1);
		_pmv_far_buf_put(buf, size);
		return NULL;
	}
	return buf;
}

int _pmv_far_rewrite(pmv_ctx *ctx, struct _pmv_page *pg, void *buf)
{
	struct _pmv_store *st = ctx->tiers[pg->tier].store;
	/* kept as it is if it does not compress: it was stored, it stays stored */
	struct _pmv_store_req req = { .page = buf, .ps = pg->region->ps, .raw_ok = true };

	if (_pmv_store_put(st, &req, 1) != 1)
		return req.status ? req.status : -EIO;
	_pmv_store_drop(st, &pg->handle, 1);
	pg->handle = req.handle;
	return 0;
}

void _pmv_far_abandon(pmv_ctx *ctx, struct _pmv_page *pg)
{
	int ps = pg->region->ps;
	size_t size = _pmv_ps_size(ps);
	struct _pmv_store_req req = { .ps = ps, .handle = pg->handle };
	void *buf;

	if (!(_pmv_page_flags(pg) & PG_far))
		return;
	buf = buf_get(size);
	if (!buf)
		return;
	req.page = buf;
	if (_pmv_store_get(ctx->tiers[pg->tier].store, &req, 1) == 1)
		_pmv_uffd_copy(ctx, _pmv_page_addr(pg), (uintptr_t)buf, size,
			       PMV_MV_WAKE | PMV_MV_ONCE, NULL);
	_pmv_far_buf_put(buf, size);
}

void _pmv_far_load_all(pmv_ctx *ctx)
{
	sigset_t sigs;

	if (!atomic_load_explicit(&ctx->far_pages, memory_order_relaxed))
		return;
	_pmv_signals_hold(&sigs);
	_pmv_regions_rdlock(&ctx->regions_lock, false);
	for (size_t i = 0; i < ctx->nregions; i++) {
		struct _pmv_region *r = ctx->regions[i];

		for (size_t k = 0; k < r->npages; k++) {
			struct _pmv_page *pg = &r->pages[k];

			if (!(_pmv_page_flags(pg) & PG_far))
				continue;
			/* as _pmv_unpark_all: fork excludes migrations, faults hold briefly */
			if (_pmv_page_lock_timeout(pg, 1000000))
				continue;
			/* unreadable: poisoned, so the child gets SIGBUS too, not a hole */
			if (_pmv_far_load(ctx, pg, -1, PMV_FAR_FORCE) == -EIO)
				poison(ctx, pg);
			_pmv_page_unlock(ctx, pg);
		}
	}
	_pmv_regions_rdunlock(&ctx->regions_lock);
	_pmv_signals_release(&sigs);
}
