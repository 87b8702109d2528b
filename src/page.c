/* SPDX-License-Identifier: MIT */
/*
 * Page descriptors: the page lock, its waiters protocol, and the per-tier
 * two-list LRU with isolate/putback (as mm/vmscan.c names them).
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <time.h>

#include "internal.h"

bool _pmv_page_trylock(struct _pmv_page *pg)
{
	/*
	 * Acquire pairs with the release in _pmv_page_unlock(): the new owner
	 * sees tier/mapping changes made by the previous one.
	 */
	return !(atomic_fetch_or_explicit(&pg->flags, PG_locked,
					  memory_order_acquire) & PG_locked);
}

/*
 * A caller's thread must not run a signal handler while it holds, or waits
 * for, anything a fault handler may need: page locks, regions_lock (and
 * the mutex inside it), event_lock, tier and LRU locks. A handler that
 * touches managed memory faults, and a fault handler would wait for this
 * very thread. So every such stretch in a pmv_* call, from before the
 * first lock to after the last, runs with asynchronous signals held; they
 * wait for the end of a batch (BATCH_BYTES of copy) at most, as they wait
 * for the kernel's own migration inside one system call. Synchronous
 * signals cannot wait and never come from our code. Nesting is harmless
 * (the inner pair restores the outer mask).
 */
void _pmv_signals_hold(sigset_t *old)
{
	sigset_t s;

	sigfillset(&s);
	sigdelset(&s, SIGSEGV);
	sigdelset(&s, SIGBUS);
	sigdelset(&s, SIGFPE);
	sigdelset(&s, SIGILL);
	sigdelset(&s, SIGTRAP);
	pthread_sigmask(SIG_BLOCK, &s, old);
}

void _pmv_signals_release(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int _pmv_page_lock_timeout(struct _pmv_page *pg, unsigned usec)
{
	uint64_t deadline = 0;

	/*
	 * Only trylock-and-yield: lock holders never wait for us, but two
	 * batches may hold pages the other wants, so waiting forever could
	 * deadlock. Giving up with -EBUSY is what move_pages(2) does too.
	 */
	for (unsigned spins = 0; !_pmv_page_trylock(pg); spins++) {
		if (spins < 64)
			continue;
		if (!deadline)
			deadline = now_us() + usec;
		else if (now_us() > deadline)
			return -EBUSY;
		sched_yield();
	}
	return 0;
}

bool _pmv_page_wait_or_retry(struct _pmv_page *pg)
{
	/*
	 * A fault met a locked page. Both this fetch_or and the unlocker's
	 * fetch_and are RMWs on one word, so they are totally ordered: either
	 * the unlocker sees PG_waiters and wakes the range, or we see the lock
	 * already released and must retry ourselves (return true).
	 */
	uint32_t old = atomic_fetch_or_explicit(&pg->flags, PG_waiters,
						memory_order_acq_rel);
	return !(old & PG_locked);
}

uintptr_t _pmv_page_addr(const struct _pmv_page *pg)
{
	const struct _pmv_region *r = pg->region;

	return r->start + ((uintptr_t)(pg - r->pages) << r->shift);
}

size_t _pmv_page_size(const struct _pmv_page *pg)
{
	return (size_t)1 << pg->region->shift;
}

void _pmv_page_unlock(pmv_ctx *ctx, struct _pmv_page *pg)
{
	uint32_t old = atomic_load_explicit(&pg->flags, memory_order_relaxed);

	/*
	 * A fault handler marks a page it finds locked (PG_discard, PG_gone)
	 * with an RMW and then leaves it to us: the marking RMW and this CAS
	 * are ordered on one word, so either we see the mark and settle it
	 * before letting go, or the handler sees the lock free and
	 * settles it itself. Release: publish tier/mapping changes before the
	 * lock is seen free.
	 */
	for (;;) {
		if (old & (PG_discard | PG_gone)) {
			_pmv_page_settle(ctx, pg);
			old = atomic_load_explicit(&pg->flags, memory_order_relaxed);
			if (old & PG_discard)
				continue;
		}
		if (atomic_compare_exchange_weak_explicit(&pg->flags, &old,
							  old & ~(PG_locked | PG_waiters),
							  memory_order_acq_rel,
							  memory_order_relaxed))
			break;
	}
	if (old & PG_waiters)
		_pmv_uffd_wake(ctx, _pmv_page_addr(pg), _pmv_page_size(pg));
}

/* ---- LRU ------------------------------------------------------------- */

void _pmv_lru_init(struct _pmv_lru_list *l)
{
	l->head.lru_next = l->head.lru_prev = &l->head;
	l->nr = 0;
}

static void list_add_head(struct _pmv_lru_list *l, struct _pmv_page *pg)
{
	pg->lru_next = l->head.lru_next;
	pg->lru_prev = &l->head;
	l->head.lru_next->lru_prev = pg;
	l->head.lru_next = pg;
	l->nr++;
}

static void list_del(struct _pmv_lru_list *l, struct _pmv_page *pg)
{
	pg->lru_prev->lru_next = pg->lru_next;
	pg->lru_next->lru_prev = pg->lru_prev;
	pg->lru_next = pg->lru_prev = NULL;
	l->nr--;
}

/* Add a locked, present page to its tier's LRU (new pages are inactive). */
void _pmv_lru_add(pmv_ctx *ctx, struct _pmv_page *pg)
{
	struct _pmv_tier *t = &ctx->tiers[pg->tier];
	uint32_t f = _pmv_page_flags(pg);

	pthread_mutex_lock(&t->lru_lock);
	list_add_head(f & PG_active ? &t->active : &t->inactive, pg);
	_pmv_page_set(pg, PG_lru);
	pthread_mutex_unlock(&t->lru_lock);
}

/* Remove a locked page from whatever list it is on (munmap). */
void _pmv_lru_del(pmv_ctx *ctx, struct _pmv_page *pg)
{
	struct _pmv_tier *t;

	if (!(_pmv_page_flags(pg) & PG_lru))
		return;
	t = &ctx->tiers[pg->tier];
	pthread_mutex_lock(&t->lru_lock);
	list_del(_pmv_page_flags(pg) & PG_active ? &t->active : &t->inactive, pg);
	_pmv_page_clear(pg, PG_lru);
	pthread_mutex_unlock(&t->lru_lock);
}

/*
 * Take a locked page off the LRU so that no scanner (pmv_migrate, the
 * policy) picks it while it migrates. False if it was not on the LRU.
 */
bool _pmv_isolate_lru_page(pmv_ctx *ctx, struct _pmv_page *pg)
{
	if (!(_pmv_page_flags(pg) & PG_lru))
		return false;
	_pmv_lru_del(ctx, pg);
	_pmv_page_set(pg, PG_isolated);
	return true;
}

/* Put an isolated page back on the LRU of the tier it is now on. */
void _pmv_putback_lru_page(pmv_ctx *ctx, struct _pmv_page *pg)
{
	_pmv_page_clear(pg, PG_isolated);
	/* a page the program discarded meanwhile has no tier to go back to */
	if (_pmv_page_flags(pg) & PG_present)
		_pmv_lru_add(ctx, pg);
}

/*
 * Move a locked page between its tier's lists (the kernel's
 * activate_page/deactivate_page). An isolated page only has its flag set:
 * putback files it on the right list.
 */
void _pmv_activate_page(pmv_ctx *ctx, struct _pmv_page *pg, bool active)
{
	uint32_t f = _pmv_page_flags(pg);
	struct _pmv_tier *t;

	if (!!(f & PG_active) == active)
		return;
	if (!(f & PG_lru)) {
		if (active)
			_pmv_page_set(pg, PG_active);
		else
			_pmv_page_clear(pg, PG_active);
		return;
	}
	t = &ctx->tiers[pg->tier];
	pthread_mutex_lock(&t->lru_lock);
	list_del(active ? &t->inactive : &t->active, pg);
	if (active)
		_pmv_page_set(pg, PG_active);
	else
		_pmv_page_clear(pg, PG_active);
	list_add_head(active ? &t->active : &t->inactive, pg);
	pthread_mutex_unlock(&t->lru_lock);
}
