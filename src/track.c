/* SPDX-License-Identifier: MIT */
/*
 * Access tracking by unmapping: the user-space form of the kernel's NUMA
 * hinting faults. The policy thread moves a sampled page out of its address
 * into a hole of its own tier's pool ("parks" it: UFFDIO_MOVE, no copy, no
 * charge change). The next access, read or write, from user or kernel mode,
 * takes a MISSING fault; a fault handler records it and moves the page
 * straight back. The time from parking to that fault estimates the page's
 * access rate; `heat` is its decayed average.
 *
 * Why not UFFD_FEATURE_WP_ASYNC for writes: it is per userfaultfd and would
 * let writers through during a migration's copy. Why not only in
 * user-mode-only mode: there a kernel access (read(2), a futex) to a parked
 * page fails with EFAULT instead of waiting, so that mode never parks.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

uint64_t _pmv_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * The CPU time of the calling thread, cheaply where that is possible: the
 * thread CPU clock is a system call (no vDSO), two per sampled access. A
 * SCHED_FIFO fault handler is preempted only by interrupts and higher
 * real-time threads, so the monotonic clock, read in user space, gives
 * its CPU time plus any time an unpark spends asleep: waiting for
 * event_lock while another handler reads an event, for a tier lock, for
 * the page of a slot to be populated. That is an upper bound: the
 * tracking cost is over-counted, never under, so the budget
 * (track_cpu_permille, at most 2% of a core) holds; sampling only gets
 * a little stricter than it needs to be. Those waits are short and rare.
 */
static uint64_t track_clock_ns(void)
{
	static __thread int rt = -1;

	if (rt < 0)
		rt = _pmv_is_fault_thread() && sched_getscheduler(0) == SCHED_FIFO;
	return rt ? _pmv_now_ns() : _pmv_thread_cpu_ns();
}

uint64_t _pmv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Put a parked page back at its address: normally one move (through the
 * gate, so a page discarded or unmapped while parked stays out:
 * -ECANCELED). If that stops (only a park that itself stopped half way
 * leaves pieces on both sides), move back piece by piece whatever the
 * slot still holds. -EAGAIN: an event is unread, or one read since the
 * gate marked the page; it stays parked, for the next fault or unpark.
 */
static int restore(pmv_ctx *ctx, struct _pmv_page *pg, uintptr_t slot, size_t size, bool wake)
{
	uintptr_t addr = _pmv_page_addr(pg);
	size_t done = 0;
	int ret = _pmv_move_in_one(ctx, pg, (void *)slot, wake ? PMV_MV_WAKE : 0, &done);

	if (!ret)
		return 0;
	if (ret == -ECANCELED || ret == -EAGAIN)
		goto out;
	/*
	 * Piece by piece is a move in too: under event_lock read, and not
	 * once an event read since the gate has marked the page (the
	 * program's madvise would then zap before our moves and get its
	 * discarded data back; its munmap or mremap, a wrong address). The
	 * marks settle when the page unlocks, and the next restore goes
	 * through the gate. PMV_MV_ONCE: never wait for an event while
	 * holding the lock that its reader needs.
	 */
	pthread_rwlock_rdlock(&ctx->event_lock);
	ret = 0;
	for (size_t off = done; off < size; off += PMV_SIZE_4K) {
		uintptr_t to;
		int r;

		if (_pmv_page_flags(pg) & (PG_discard | PG_gone)) {
			ret = -EAGAIN;
			break;
		}
		if (!_pmv_page_mapped(ctx, slot + off))
			continue;
		/* a piece mremap moved goes to its new address (see copy_in, event.c) */
		to = _pmv_event_moved_to(ctx, addr + off);
		r = _pmv_uffd_move(ctx, to ? to : addr + off, slot + off, PMV_SIZE_4K,
				   PMV_MV_ONCE, NULL);
		/*
		 * ENOENT: no VMA there (the source piece is mapped, checked
		 * above). The program unmapped that part of the huge page
		 * while it was parked: it has nowhere to go. Unless its event
		 * is unread: an mremap's new address is not known yet, so the
		 * piece stays parked (-EAGAIN) until the event is read.
		 */
		if (r == -ENOENT && !to && _pmv_uffd_changing(ctx, addr + off))
			r = -EAGAIN;
		if (r == -ENOENT && !to) {
			_pmv_pool_discard(ctx, (void *)(slot + off), PMV_SIZE_4K);
			r = 0;
		}
		if (r && !ret)
			ret = r;
	}
	pthread_rwlock_unlock(&ctx->event_lock);
out:
	/*
	 * Nothing (or not all) went in, so no move woke the accessor: it
	 * faults again and meets what the program left there (a first touch,
	 * SIGSEGV, or this page, still parked).
	 */
	if (wake)
		_pmv_uffd_wake(ctx, addr, size);
	return ret;
}

static void parked_account(pmv_ctx *ctx, struct _pmv_page *pg, int d)
{
	atomic_fetch_add_explicit(&ctx->parked, (uint64_t)(int64_t)d, memory_order_relaxed);
	atomic_fetch_add_explicit(&ctx->tiers[pg->tier].parked, (uint64_t)(int64_t)d,
				  memory_order_relaxed);
}

int _pmv_park(pmv_ctx *ctx, struct _pmv_page *pg)
{
	struct _pmv_tier *t = &ctx->tiers[pg->tier];
	int ps = pg->region->ps;
	size_t size = _pmv_page_size(pg), done = 0;
	uintptr_t addr = _pmv_page_addr(pg);
	void *slot;
	int ret;

	if (_pmv_page_flags(pg) & PG_zap)
		return -EAGAIN;	/* its discard's zap is due (event.c) */
	slot = _pmv_pool_take_hole(ctx, t, ps);
	if (!slot)
		return -ENOMEM;
	/*
	 * No wake: nobody waits on a mapped page. Fails untouched on a page
	 * shared with a child or pinned (EBUSY) or discarded (ENOENT), or
	 * reached by a discard since we locked it (EAGAIN, event.c).
	 */
	for (int repaired = 0;; repaired++) {
		bool refused;

		_pmv_out_lock(ctx);
		refused = _pmv_out_refused(pg);
		ret = refused ? -EAGAIN :
		      _pmv_uffd_move(ctx, (uintptr_t)slot, addr, size, PMV_MV_POOL, &done);
		_pmv_out_unlock(ctx);
		/* a hole the program's mlock reached: the pools repaired, once more */
		if (!ret || refused || done || repaired ||
		    !_pmv_pool_refused(ctx, slot, size, ret))
			break;
	}
	/* a park that stopped half way: the moved pieces go back through the gate */
	if (ret && done && _pmv_move_in_head(ctx, pg, slot, done, 0)) {
		/*
		 * Part of it is out and will not go back now: keep it parked,
		 * so the next access (or any unpark) puts those pieces back.
		 */
		ret = 0;
	}
	if (ret) {
		/* filled again meanwhile (mlock): a hole must be empty */
		if (ret == -EEXIST) {
			_pmv_pool_discard(ctx, slot, size);
			if (ps == PMV_PS_2M) {
				_pmv_pool_retire(t, ps, slot);
				return ret;
			}
		}
		_pmv_pool_put_hole(t, ps, slot);
		return ret;
	}
	_pmv_park_keep(ctx, pg, slot);
	_pmv_stat_add(&ctx->samples, 1);
	return 0;
}

void _pmv_park_keep(pmv_ctx *ctx, struct _pmv_page *pg, void *slot)
{
	pg->park = slot;
	pg->parked_us = _pmv_now_us32(ctx);
	_pmv_page_set(pg, PG_parked);
	parked_account(ctx, pg, 1);
}

/* Back to normal: the slot is a hole again unless something stayed in it. */
static int unpark(pmv_ctx *ctx, struct _pmv_page *pg, bool wake)
{
	int ps = pg->region->ps;
	size_t size = _pmv_page_size(pg);
	int ret = restore(ctx, pg, (uintptr_t)pg->park, size, wake);

	if (ret == -ECANCELED) {
		/* discarded or unmapped while parked: it dies in its slot */
		_pmv_page_forget(ctx, pg);
		return 0;
	}
	if (ret) {
		/*
		 * An event unread or just read (-EAGAIN), or an outside
		 * munmap/mremap of managed memory that makes the address
		 * refuse its page. Keep the slot out of the pool (it still
		 * holds data) and the page parked: never lose it.
		 */
		return ret;
	}
	_pmv_pool_put_hole(&ctx->tiers[pg->tier], ps, pg->park);
	pg->park = NULL;
	_pmv_page_clear(pg, PG_parked);
	parked_account(ctx, pg, -1);
	/* seq_cst: pairs with watch() in policy.c (store watch, load flags) */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load(&ctx->watch) == pg)
		syscall(SYS_futex, &pg->flags, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	return 0;
}

int _pmv_unpark(pmv_ctx *ctx, struct _pmv_page *pg)
{
	if (!(_pmv_page_flags(pg) & PG_parked))
		return 0;
	return unpark(ctx, pg, false);
}

/*
 * A fault handler met an access to a parked page: map it back (waking the
 * accessor), fold the observed rate into heat, and age the LRU state the
 * way the kernel's mark_page_accessed() does: a second reference activates.
 */
void _pmv_track_fault(pmv_ctx *ctx, struct _pmv_page *pg)
{
	uint32_t dt = _pmv_now_us32(ctx) - pg->parked_us, rate, heat;
	uint64_t t0;

	_pmv_inject_hold(ctx);
	t0 = track_clock_ns();
	if (unpark(ctx, pg, true) || !(_pmv_page_flags(pg) & PG_present))
		return;	/* still parked, or discarded or unmapped meanwhile: no sample */
	heat = __atomic_load_n(&pg->heat, __ATOMIC_RELAXED);
	/*
	 * Lean to the lower envelope of the intervals: a sample is mostly
	 * too long (the accessor was descheduled, or blocked on another
	 * sampled page; the fault round trip itself costs tens of us). So a
	 * shorter interval moves the estimate half way, a longer one a
	 * quarter. Not all the way: a page a sequential scan is passing
	 * through gives one very short sample, and believing it at once made
	 * scanned pages outrank the hottest page. A page that cools shows it
	 * through aging (_pmv_track_age), which is not damped.
	 */
	if (!dt)
		dt = 1;
	if (heat) {
		uint32_t iv = 1000000u / heat;

		if (dt > iv)
			dt = iv + (dt - iv) / 4;
		else
			dt = iv - (iv - dt) / 2;
	}
	rate = 1000000u / dt;
	_pmv_page_set(pg, PG_tracked);
	__atomic_store_n(&pg->heat, rate ? rate : 1, __ATOMIC_RELAXED);
	if (_pmv_page_flags(pg) & PG_referenced) {
		_pmv_page_clear(pg, PG_referenced);
		_pmv_activate_page(ctx, pg, true);
	} else {
		_pmv_page_set(pg, PG_referenced);
	}
	_pmv_stat_add(&ctx->sample_faults, 1);
	/* CPU time (or, SCHED_FIFO, a bound of it): waiting to run is not cost */
	_pmv_stat_add(&ctx->track_ns, track_clock_ns() - t0);
}

/*
 * The sweep came back to a page still parked: not accessed for a whole
 * sweep. Decay its heat and deactivate it (the kernel's aging of the
 * active list, driven by our sampling instead of the accessed bit).
 */
void _pmv_track_age(pmv_ctx *ctx, struct _pmv_page *pg)
{
	uint32_t heat = __atomic_load_n(&pg->heat, __ATOMIC_RELAXED);
	uint64_t idle = _pmv_now_us32(ctx) - pg->parked_us;

	/* no access for `idle`: the next interval is at least that long */
	if (heat)
		heat = (uint32_t)(2000000 / ((uint64_t)1000000 / heat + idle + 1));
	__atomic_store_n(&pg->heat, heat, __ATOMIC_RELAXED);
	_pmv_page_set(pg, PG_tracked);
	_pmv_page_clear(pg, PG_referenced);
	_pmv_activate_page(ctx, pg, false);
}

/* munmap: the page dies in its slot. Clean the slot and make it a hole. */
void _pmv_park_drop(pmv_ctx *ctx, struct _pmv_page *pg)
{
	int ps = pg->region->ps;

	_pmv_pool_discard(ctx, pg->park, _pmv_ps_size(ps));
	_pmv_pool_put_hole(&ctx->tiers[pg->tier], ps, pg->park);
	pg->park = NULL;
	_pmv_page_clear(pg, PG_parked);
	parked_account(ctx, pg, -1);
}

void _pmv_unpark_all(pmv_ctx *ctx)
{
	sigset_t sigs;

	if (!atomic_load_explicit(&ctx->parked, memory_order_relaxed))
		return;
	_pmv_signals_hold(&sigs);
	_pmv_regions_rdlock(&ctx->regions_lock, false);
	for (size_t i = 0; i < ctx->nregions; i++) {
		struct _pmv_region *r = ctx->regions[i];

		for (size_t k = 0; k < r->npages; k++) {
			struct _pmv_page *pg = &r->pages[k];

			if (!(_pmv_page_flags(pg) & PG_parked))
				continue;
			/*
			 * A page stays locked only briefly (a fault handler)
			 * or by a migration, which unparks it itself; fork
			 * excludes migrations, and policy rounds are held off
			 * by the callers, so nothing parks behind us.
			 */
			if (_pmv_page_lock_timeout(pg, 1000000))
				continue;
			_pmv_unpark(ctx, pg);
			_pmv_page_unlock(ctx, pg);
		}
	}
	_pmv_regions_rdunlock(&ctx->regions_lock);
	_pmv_signals_release(&sigs);
}
