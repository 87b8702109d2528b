/* SPDX-License-Identifier: MIT */
/*
 * Page migration: pmv_move_pages(), pmv_migrate() and the batch engine.
 *
 * One page, as built (docs/DESIGN.md has the full timeline):
 *   1. lock the descriptor, isolate it from the LRU;
 *   2. take a destination page from the target tier's pool, and a hole in
 *      the source tier's pool;
 *   3. UFFDIO_WRITEPROTECT the source: readers go on, writers wait;
 *   4. copy;
 *   5. UFFDIO_MOVE the source into the hole: the address is now empty, so
 *      any access waits in a MISSING fault (the migration entry);
 *   6. UFFDIO_MOVE the destination in (this wakes those waiters);
 *   7. unlock (waking faults that met the lock), put back on the LRU.
 * Until step 5 succeeds every failure rolls back to the untouched source.
 *
 * A batch runs each step over all its pages before the next step, so the
 * kernel's TLB flushes and our copies are amortised (seed 004, "concurrent").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define MIGRATE_BATCH		64
#define LOCK_TIMEOUT_US		20000

enum { ENT_SKIP, ENT_ACTIVE };

struct mig {
	struct _pmv_page *pg;
	uintptr_t addr;
	size_t size;
	int ps, src, dst;
	void *dst_slot, *hole;
	bool dst_clean, zapped, retry_reuse;
	int state;
	int alias;		/* index of an earlier entry for the same page */
	int status;
};

/* ---- copiers: threads that read region pages while holding page locks -- */

static __thread int copier_slot = -1;

void _pmv_copier_enter(pmv_ctx *ctx)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);

	/*
	 * Publish our tid so the fault thread can tell a fault taken while we
	 * copy a page we hold locked (the program discarded it under us) from
	 * an ordinary one, and rescue it instead of waiting for our unlock.
	 */
	for (int i = 0; i < PMV_MAX_COPIERS; i++) {
		pid_t zero = 0;

		if (atomic_compare_exchange_strong(&ctx->copiers[i], &zero, tid)) {
			copier_slot = i;
			return;
		}
	}
}

void _pmv_copier_exit(pmv_ctx *ctx)
{
	if (copier_slot >= 0) {
		atomic_store(&ctx->copiers[copier_slot], 0);
		copier_slot = -1;
	}
}

/* ---- helpers --------------------------------------------------------- */

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

static void count_fail(pmv_ctx *ctx, int tier, int err)
{
	if (tier >= 0 && (unsigned)tier < ctx->ntiers)
		_pmv_stat_add(&ctx->tiers[tier].fail[fail_cause(err)], 1);
}

/* Undo an active entry before its source left the address. */
static void rollback(pmv_ctx *ctx, struct mig *m, int err, bool wp_set)
{
	if (wp_set)
		_pmv_uffd_wp(ctx, m->addr, m->size, false);
	_pmv_pool_put_page(&ctx->tiers[m->dst], m->ps, m->dst_slot,
			   m->dst_clean && !wp_set);
	_pmv_pool_put_hole(&ctx->tiers[m->src], m->ps, m->hole);
	m->state = ENT_SKIP;
	m->status = err;
	count_fail(ctx, m->dst, err);
}

/* Step 1-2 for one entry. Leaves it ENT_ACTIVE and locked, or resolved. */
static void prepare(pmv_ctx *ctx, struct mig *m, int flags)
{
	struct _pmv_page *pg = m->pg;
	uint32_t f;

	m->state = ENT_SKIP;
	if (m->dst < 0 || (unsigned)m->dst >= ctx->ntiers) {
		m->status = -EINVAL;
		return;
	}
	if (_pmv_page_lock_timeout(pg, LOCK_TIMEOUT_US)) {
		m->status = -EBUSY;
		count_fail(ctx, m->dst, -EBUSY);
		return;
	}
	f = _pmv_page_flags(pg);
	m->addr = _pmv_page_addr(pg);
	m->size = _pmv_page_size(pg);
	m->ps = pg->region->ps;
	m->src = pg->tier;
	if (!(f & PG_present)) {
		m->status = -ENOENT;
		goto unlock;
	}
	if (m->src == m->dst) {
		m->status = m->dst;
		goto unlock;
	}
	if ((f & PG_shared) && !(flags & PMV_MOVE_ALL)) {
		if (_pmv_page_shared(ctx, m->addr)) {
			m->status = -EACCES;
			count_fail(ctx, m->dst, -EACCES);
			goto unlock;
		}
		_pmv_page_clear(pg, PG_shared);
	}
	m->dst_slot = _pmv_pool_take_page(ctx, &ctx->tiers[m->dst], m->ps,
					  false, &m->dst_clean);
	if (!m->dst_slot) {
		m->status = -ENOMEM;
		count_fail(ctx, m->dst, -ENOMEM);
		goto unlock;
	}
	m->hole = _pmv_pool_take_hole(ctx, &ctx->tiers[m->src], m->ps);
	if (!m->hole) {
		_pmv_pool_put_page(&ctx->tiers[m->dst], m->ps, m->dst_slot, m->dst_clean);
		m->status = -ENOMEM;
		count_fail(ctx, m->dst, -ENOMEM);
		goto unlock;
	}
	_pmv_isolate_lru_page(ctx, pg);
	m->state = ENT_ACTIVE;
	return;
unlock:
	_pmv_page_unlock(ctx, pg);
}

/*
 * A partial move-out could not be moved back. The copy is complete and the
 * source write-protected, so finish by dropping both halves: the address
 * ends empty and takes the copy, and the hole is a hole again.
 */
static int lost_partial(pmv_ctx *ctx, struct mig *m)
{
	if (madvise((void *)m->addr, m->size, MADV_DONTNEED))
		return -EBUSY;
	madvise(m->hole, m->size, MADV_DONTNEED);
	_pmv_pool_put_hole(&ctx->tiers[m->src], m->ps, m->hole);
	_pmv_tier_uncharge(&ctx->tiers[m->src], m->ps, 1);
	m->zapped = true;
	return 0;
}

/* Step 5 failed with EBUSY: shared with a child, pinned, or not exclusive. */
static bool move_out_busy(pmv_ctx *ctx, struct mig *m, int flags)
{
	if (_pmv_page_shared(ctx, m->addr)) {
		_pmv_page_set(m->pg, PG_shared);
		if (!(flags & PMV_MOVE_ALL)) {
			rollback(ctx, m, -EACCES, true);
			return false;
		}
		/*
		 * Un-share (MPOL_MF_MOVE_ALL): the copy is complete and the
		 * page is write-protected, so dropping our mapping loses
		 * nothing; the other process keeps its own.
		 */
		if (madvise((void *)m->addr, m->size, MADV_DONTNEED)) {
			rollback(ctx, m, -EBUSY, true);
			return false;
		}
		_pmv_pool_put_hole(&ctx->tiers[m->src], m->ps, m->hole);
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
	rollback(ctx, m, -EBUSY, true);
	return false;
}

static void finish(pmv_ctx *ctx, struct mig *m)
{
	struct _pmv_page *pg = m->pg;

	if (!m->zapped)
		_pmv_pool_put_page(&ctx->tiers[m->src], m->ps, m->hole, false);
	__atomic_store_n(&pg->tier, (int8_t)m->dst, __ATOMIC_RELAXED);
	_pmv_putback_lru_page(ctx, pg);
	_pmv_stat_add(&ctx->tiers[m->dst].migrate_in, 1);
	_pmv_stat_add(&ctx->tiers[m->dst].migrate_bytes_in, m->size);
	_pmv_stat_add(&ctx->tiers[m->src].migrate_out, 1);
	_pmv_stat_add(&ctx->migrations, 1);
	_pmv_stat_add(&ctx->migrate_bytes, m->size);
	m->status = m->dst;
	if ((ctx->flags & PMV_CTX_VERIFY) && ctx->tiers[m->dst].node >= 0) {
		int ret = _pmv_verify_node(ctx, m->addr, ctx->tiers[m->dst].node);

		if (ret) {
			_pmv_stat_add(&ctx->tiers[m->dst].verify_errors, 1);
			m->status = ret;
		}
	}
}

static void run_batch(pmv_ctx *ctx, struct mig *ms, size_t n, int flags)
{
	size_t i;

	/* 1-2: lock, isolate, reserve. A page named twice is done once. */
	for (i = 0; i < n; i++) {
		ms[i].alias = -1;
		for (size_t j = 0; j < i; j++) {
			if (ms[j].pg == ms[i].pg && ms[j].alias < 0) {
				ms[i].alias = j;
				break;
			}
		}
		if (ms[i].alias < 0)
			prepare(ctx, &ms[i], flags);
	}
	/* 3: write-protect. */
	for (i = 0; i < n; i++) {
		struct mig *m = &ms[i];
		int ret;

		if (m->alias >= 0 || m->state != ENT_ACTIVE)
			continue;
		ret = _pmv_uffd_wp(ctx, m->addr, m->size, true);
		if (ret) {
			rollback(ctx, m, ret == -ENOENT ? -EFAULT : ret, false);
			_pmv_putback_lru_page(ctx, m->pg);
			_pmv_page_unlock(ctx, m->pg);
		}
	}
	/* 4: copy. */
	_pmv_copier_enter(ctx);
	for (i = 0; i < n; i++) {
		struct mig *m = &ms[i];

		if (m->alias < 0 && m->state == ENT_ACTIVE)
			_pmv_copy(ctx, m->dst_slot, (void *)m->addr, m->size);
	}
	_pmv_copier_exit(ctx);
	/* 5-7: remap, one page at a time so each rollback is exact. */
	for (i = 0; i < n; i++) {
		struct mig *m = &ms[i];
		size_t done;
		int ret;

		if (m->alias >= 0 || m->state != ENT_ACTIVE)
			continue;
		ret = _pmv_uffd_move(ctx, (uintptr_t)m->hole, m->addr, m->size, false, &done);
		if (ret && done) {
			/*
			 * Stopped part way: a huge page split into PTEs, some of
			 * them shared. Put the moved part back before deciding.
			 */
			if (_pmv_uffd_move(ctx, m->addr, (uintptr_t)m->hole, done, false, NULL))
				ret = lost_partial(ctx, m);
		}
		if (!ret) {
			/* moved out, or finished by lost_partial() */
		} else if (ret == -EBUSY) {
			if (!move_out_busy(ctx, m, flags))
				goto undo;
		} else if (ret) {
			rollback(ctx, m, ret == -ENOENT ? -EFAULT : ret, true);
			goto undo;
		}
		/*
		 * Publish the new tier before the move-in wakes waiters, so a
		 * thread that waited here never queries the old one.
		 */
		__atomic_store_n(&m->pg->tier, (int8_t)m->dst, __ATOMIC_RELAXED);
		ret = _pmv_uffd_move(ctx, m->addr, (uintptr_t)m->dst_slot, m->size, true, NULL);
		if (ret) {
			__atomic_store_n(&m->pg->tier, (int8_t)m->src, __ATOMIC_RELAXED);
			/*
			 * The address was empty and we hold the lock, so only an
			 * outside munmap/mremap of managed memory gets here. Put
			 * the source back if we still can.
			 */
			if (!m->zapped &&
			    !_pmv_uffd_move(ctx, m->addr, (uintptr_t)m->hole, m->size, true, NULL)) {
				rollback(ctx, m, -EFAULT, false);
				goto undo;
			}
			_pmv_pool_put_page(&ctx->tiers[m->dst], m->ps, m->dst_slot, false);
			if (!m->zapped)
				_pmv_pool_put_page(&ctx->tiers[m->src], m->ps, m->hole, false);
			_pmv_page_clear(m->pg, PG_present);
			m->state = ENT_SKIP;
			m->status = -EFAULT;
			count_fail(ctx, m->dst, -EFAULT);
			_pmv_page_unlock(ctx, m->pg);
			continue;
		}
		finish(ctx, m);
		_pmv_page_unlock(ctx, m->pg);
		continue;
undo:
		_pmv_putback_lru_page(ctx, m->pg);
		_pmv_page_unlock(ctx, m->pg);
	}
	for (i = 0; i < n; i++)
		if (ms[i].alias >= 0)
			ms[i].status = ms[ms[i].alias].status;
}

/*
 * Move pgs[i] to tiers[i]. The caller holds ctx->fork_lock and
 * ctx->regions_lock for reading (so every pgs[i] stays valid). Returns the
 * number of pages that did not end on their target tier.
 */
int _pmv_move_list(pmv_ctx *ctx, size_t n, struct _pmv_page **pgs,
		   const int *tiers, int *status, int flags)
{
	struct mig ms[MIGRATE_BATCH];
	int left = 0;

	for (size_t base = 0; base < n; base += MIGRATE_BATCH) {
		size_t cnt = n - base < MIGRATE_BATCH ? n - base : MIGRATE_BATCH;
		bool retry = false;

		memset(ms, 0, cnt * sizeof(ms[0]));
		for (size_t i = 0; i < cnt; i++) {
			ms[i].pg = pgs[base + i];
			ms[i].dst = tiers[base + i];
		}
		run_batch(ctx, ms, cnt, flags);
		for (size_t i = 0; i < cnt; i++) {
			if (ms[i].retry_reuse) {
				/*
				 * Write-fault the page (unlocked now, so our fault
				 * thread can serve it) to make it exclusive again.
				 * The data is not touched.
				 */
				madvise((void *)ms[i].addr, ms[i].size, MADV_POPULATE_WRITE);
				retry = true;
			}
		}
		if (retry) {
			struct mig again[MIGRATE_BATCH];
			size_t na = 0, idx[MIGRATE_BATCH];

			memset(again, 0, sizeof(again));
			for (size_t i = 0; i < cnt; i++) {
				if (!ms[i].retry_reuse)
					continue;
				again[na].pg = ms[i].pg;
				again[na].dst = ms[i].dst;
				idx[na++] = i;
			}
			run_batch(ctx, again, na, flags);
			for (size_t k = 0; k < na; k++)
				ms[idx[k]].status = again[k].status;
		}
		for (size_t i = 0; i < cnt; i++) {
			status[base + i] = ms[i].status;
			if (ms[i].status != ms[i].dst)
				left++;
		}
	}
	for (unsigned t = 0; t < ctx->ntiers; t++)
		_pmv_pool_trim(ctx, &ctx->tiers[t]);
	return left;
}

#define MOVE_CHUNK	512

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
	if (flags & ~PMV_MOVE_ALL)
		return _pmv_set_errmsg(-EINVAL, "pmv_move_pages: unknown flags");
	if (count > INT32_MAX)
		return _pmv_set_errmsg(-E2BIG, "pmv_move_pages: count too large");

	for (size_t base = 0; base < count; base += MOVE_CHUNK) {
		size_t cnt = count - base < MOVE_CHUNK ? count - base : MOVE_CHUNK;
		size_t n = 0;

		if (tiers)
			pthread_rwlock_rdlock(&ctx->fork_lock);
		pthread_rwlock_rdlock(&ctx->regions_lock);
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
			_pmv_move_list(ctx, n, pgs, tgt, st, flags);
			for (size_t k = 0; k < n; k++) {
				status[map[k]] = st[k];
				if (st[k] != tgt[k])
					left++;
			}
		}
		pthread_rwlock_unlock(&ctx->regions_lock);
		if (tiers)
			pthread_rwlock_unlock(&ctx->fork_lock);
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
	if (flags & ~PMV_MOVE_ALL)
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
			struct _pmv_page *pgs[MIGRATE_BATCH * 4];
			int tg[MIGRATE_BATCH * 4], st[MIGRATE_BATCH * 4];
			size_t want = todo[t] < MIGRATE_BATCH * 4 ? todo[t] : MIGRATE_BATCH * 4;
			size_t n;

			pthread_rwlock_rdlock(&ctx->fork_lock);
			pthread_rwlock_rdlock(&ctx->regions_lock);
			n = scan_tier(ctx, &ctx->tiers[t], pgs, want);
			for (size_t i = 0; i < n; i++)
				tg[i] = map[t];
			if (n)
				left += _pmv_move_list(ctx, n, pgs, tg, st, flags);
			pthread_rwlock_unlock(&ctx->regions_lock);
			pthread_rwlock_unlock(&ctx->fork_lock);
			if (!n)
				break;
			todo[t] -= n;
		}
	}
	return left;
}

bool _pmv_is_copier(pmv_ctx *ctx, pid_t tid)
{
	for (int i = 0; i < PMV_MAX_COPIERS; i++)
		if (atomic_load_explicit(&ctx->copiers[i], memory_order_relaxed) == tid)
			return true;
	return false;
}
