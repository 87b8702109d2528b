/* SPDX-License-Identifier: MIT */
/*
 * The fault-handler thread. It reads userfaultfd messages and answers every
 * one, so no faulting thread can hang:
 *  - MISSING on a page never touched: first touch, a zeroed pool page on a
 *    tier chosen by policy and capacity;
 *  - MISSING or WP on a page a migration holds locked: set PG_waiters and
 *    return; the migration wakes the range when it unlocks;
 *  - anything stale (the page is back, the region is gone): wake.
 * It never blocks on a page lock, and it runs with all signals blocked.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define PMV_MAX_DEFERRED	256	/* faults waiting for the region table */

/* Tier order for a first touch: the policy tier, then the rest by index. */
static int first_touch_tiers(pmv_ctx *ctx, const struct _pmv_page *pg, int *order)
{
	int pol = __atomic_load_n(&pg->pol_tier, __ATOMIC_RELAXED);
	int n = 0;

	order[n++] = pol;
	if (_pmv_page_flags(pg) & PG_bind)
		return n;
	for (unsigned t = 0; t < ctx->ntiers; t++)
		if ((int)t != pol)
			order[n++] = t;
	return n;
}

/*
 * Place a zeroed page at a locked descriptor. Also used when PG_present is
 * set but the page was discarded (MADV_DONTNEED): wholly, it is replaced;
 * in part (a huge page whose pieces were dropped), -EEXIST tells the
 * caller to zero-fill just the faulting piece.
 */
int _pmv_first_touch(pmv_ctx *ctx, struct _pmv_page *pg)
{
	struct _pmv_region *r = pg->region;
	uintptr_t addr = _pmv_page_addr(pg);
	size_t size = (size_t)1 << r->shift, done = 0;
	int order[PMV_MAX_TIERS], n, ret;
	bool clean = false, was_present = false, uncharged = false;
	void *slot = NULL;
	int t = -1;

	if (_pmv_page_flags(pg) & PG_present) {
		if (_pmv_pages_mapped(ctx, addr, size))
			return -EEXIST;
		was_present = true;	/* discarded wholly: replace it */
	}
	n = first_touch_tiers(ctx, pg, order);
	for (int pass = 0; pass < 2 && !slot; pass++) {
		/* full: pages discarded whole may be zapped but not yet forgotten */
		if (pass && !_pmv_event_reap(ctx))
			break;
		for (int i = 0; i < n && !slot; i++) {
			t = order[i];
			slot = _pmv_pool_take_page(ctx, &ctx->tiers[t], r->ps, true, &clean);
		}
	}
	if (!slot && was_present) {
		/* a full bound tier: the discarded page's own room is free */
		_pmv_tier_uncharge(&ctx->tiers[pg->tier], r->ps, 1);
		uncharged = true;
		t = pg->tier;
		slot = _pmv_pool_take_page(ctx, &ctx->tiers[t], r->ps, true, &clean);
		if (!slot) {
			_pmv_lru_del(ctx, pg);
			_pmv_page_clear(pg, PG_present);
			return -ENOMEM;
		}
	}
	if (!slot)
		return -ENOMEM;
	/* No region ever sees another's old data. */
	if (!clean)
		memset(slot, 0, size);
	/*
	 * DONTWAKE: the faulting thread must not run on before the descriptor
	 * says present, or its own pmv_move_pages() would see -ENOENT. The
	 * caller wakes it after publishing.
	 */
	ret = _pmv_move_in_one(ctx, pg, slot, 0, &done);
	if (ret) {
		if (done) {
			/*
			 * Part of the slot's page went in (the address was
			 * partly mapped after all): the slot is no page any
			 * more. Clean it and keep it as a hole.
			 */
			madvise(slot, size, MADV_DONTNEED);
			_pmv_pool_put_hole(&ctx->tiers[t], r->ps, slot);
			_pmv_tier_uncharge(&ctx->tiers[t], r->ps, 1);
		} else {
			_pmv_pool_put_page(&ctx->tiers[t], r->ps, slot, true);
		}
		if (uncharged)
			_pmv_tier_charge(&ctx->tiers[pg->tier], r->ps, 1);
		return ret;
	}
	/*
	 * Only now is the old page known gone (the move found the address
	 * empty): forget it. Done earlier, a stale fault that met a page
	 * looking unmapped left it "never touched" while still mapped.
	 */
	if (was_present) {
		_pmv_lru_del(ctx, pg);
		if (!uncharged)
			_pmv_tier_uncharge(&ctx->tiers[pg->tier], r->ps, 1);
		_pmv_event_unwatch(ctx, pg);	/* its zap has run: this is its new page */
	}
	/* the slot is empty now: a hole again, or every first touch leaks VA */
	_pmv_pool_put_hole(&ctx->tiers[t], r->ps, slot);
	__atomic_store_n(&pg->tier, (int8_t)t, __ATOMIC_RELAXED);
	_pmv_page_clear(pg, PG_active | PG_referenced | PG_shared);
	_pmv_page_set(pg, PG_present | (r->ps == PMV_PS_2M ? PG_huge : 0));
	_pmv_lru_add(ctx, pg);
	_pmv_stat_add(&ctx->tiers[t].first_touch, 1);
	if (t != __atomic_load_n(&pg->pol_tier, __ATOMIC_RELAXED))
		_pmv_stat_add(&ctx->tiers[t].fallback_in, 1);
	_pmv_stat_add(&ctx->faults_first_touch, 1);
	return 0;
}

/*
 * A copier faulted on a page it holds locked: the program discarded (part
 * of) the page while it was being copied. A discarded page reads as zero,
 * so map the zero page at the faulting 4 KB: it needs no memory, cannot
 * fail for lack of room, and the migration moves it out with the rest.
 */
static void rescue_copier(pmv_ctx *ctx, uintptr_t fa)
{
	_pmv_uffd_zeropage(ctx, fa & ~(PMV_SIZE_4K - 1), PMV_SIZE_4K);
	_pmv_uffd_wake(ctx, fa & ~(PMV_SIZE_4K - 1), PMV_SIZE_4K);
}

static void sigbus_thread(pmv_ctx *ctx, pid_t tid)
{
	/* No room on any allowed tier: fail the access as the kernel would. */
	_pmv_stat_add(&ctx->faults_sigbus, 1);
	if (tid > 0)
		syscall(SYS_tgkill, ctx->pid, tid, SIGBUS);
}

/*
 * Answer one fault. Caller holds regions_lock for reading. False: the fault
 * is at the new place of a range the program moved with mremap, which the
 * region table does not know yet: it waits for the table (fault_thread()).
 */
static bool handle_fault(pmv_ctx *ctx, const struct uffd_msg *msg)
{
	uintptr_t fa = msg->arg.pagefault.address;
	bool wp = msg->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP;
	pid_t tid = msg->arg.pagefault.feat.ptid;
	struct _pmv_region *r;
	struct _pmv_page *pg;
	uintptr_t addr;
	size_t size;
	int ret;

	pg = _pmv_addr_to_page(ctx, fa, &r);
	if (!pg && _pmv_event_in_new_range(ctx, fa))
		return false;
	_pmv_stat_add(wp ? &ctx->faults_wp : &ctx->faults_missing, 1);
	if (!pg) {
		size_t slot = wp ? _pmv_pool_slot_size(ctx, fa) : 0;

		if (slot) {
			/*
			 * A write-protected pool page: a kernel that carries the
			 * uffd-wp bit across UFFDIO_MOVE would leave one behind.
			 * Pool pages are never protected on purpose: clear it.
			 */
			_pmv_uffd_wp(ctx, fa & ~(slot - 1), slot, PMV_MV_POOL);
			return true;
		}
		/*
		 * Registered but no page of ours: a range that mremap grew in
		 * place (the VMA's registration grows with it). It is plain
		 * anonymous memory: the zero page, as the kernel maps on a read
		 * fault (a write then breaks it as usual). Unmapped: the zero
		 * page fails, and the retry meets the unmap.
		 */
		if (!wp)
			_pmv_uffd_zeropage(ctx, fa & ~(PMV_SIZE_4K - 1), PMV_SIZE_4K);
		_pmv_uffd_wake(ctx, fa & ~(PMV_SIZE_4K - 1), PMV_SIZE_4K);
		return true;
	}
	addr = _pmv_page_addr(pg);
	size = (size_t)1 << r->shift;
	while (!_pmv_page_trylock(pg)) {
		if (!wp && _pmv_is_copier(ctx, tid)) {
			rescue_copier(ctx, fa);
			return true;
		}
		if (!_pmv_page_wait_or_retry(pg)) {
			/* The unlocker will see PG_waiters and wake us. */
			_pmv_stat_add(&ctx->faults_waited, 1);
			return true;
		}
	}
	if (_pmv_page_flags(pg) & PG_parked) {
		/* A sampled page's next access (a stale WP message too). */
		_pmv_track_fault(ctx, pg);
	} else if (wp) {
		/*
		 * Nobody migrates this page, so a write-protect left on it is
		 * stale: clear it, which also wakes the writer.
		 */
		_pmv_uffd_wp(ctx, addr, size, 0);
	} else if ((_pmv_page_flags(pg) & PG_present) && _pmv_page_mapped(ctx, fa)) {
		/* Stale: the migration that made us wait is over. */
		_pmv_uffd_wake(ctx, addr, size);
	} else {
		ret = _pmv_first_touch(ctx, pg);
		if (ret == -ENOMEM) {
			sigbus_thread(ctx, tid);
		} else if (ret && ret != -EAGAIN) {
			/*
			 * EAGAIN: an event is unread; the thread faults again
			 * after we read it. Otherwise part of a huge page was discarded (MADV_DONTNEED on a
			 * sub-range splits the THP), or the whole-page move met a
			 * partly mapped range: that part reads as zero. Never
			 * leave the thread to fault again on the same failure.
			 */
			_pmv_uffd_zeropage(ctx, fa & ~(PMV_SIZE_4K - 1), PMV_SIZE_4K);
		}
		_pmv_page_unlock(ctx, pg);
		_pmv_uffd_wake(ctx, addr, size);
		return true;
	}
	_pmv_page_unlock(ctx, pg);
	return true;
}

/*
 * Region-table changes (the program's munmap and mremap) wait for
 * regions_lock written, which the fault thread may only take once no
 * reader is left; faults at a moved range's new place wait with them.
 */
static void surgery(pmv_ctx *ctx, bool *announced, struct uffd_msg *deferred,
		    size_t *ndeferred)
{
	size_t n = *ndeferred;

	if (!_pmv_regions_trywrlock_fault(&ctx->regions_lock, announced))
		return;
	_pmv_regions_apply(ctx);
	_pmv_regions_wrunlock(&ctx->regions_lock);
	*ndeferred = 0;
	_pmv_regions_rdlock(&ctx->regions_lock, true);
	for (size_t i = 0; i < n; i++)
		if (!handle_fault(ctx, &deferred[i]) && *ndeferred < PMV_MAX_DEFERRED)
			deferred[(*ndeferred)++] = deferred[i];
	_pmv_regions_rdunlock(&ctx->regions_lock);
}

static void *fault_thread(void *arg)
{
	pmv_ctx *ctx = arg;
	struct uffd_msg msgs[64], deferred[PMV_MAX_DEFERRED];
	size_t ndeferred = 0;
	bool announced = false;

	_pmv_uffd_fault_thread();
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = ctx->uffd, .events = POLLIN },
			{ .fd = ctx->stop_fd, .events = POLLIN },
		};
		bool pending;
		ssize_t n;

		_pmv_regions_rdlock(&ctx->regions_lock, true);
		pending = _pmv_event_poll(ctx) ||
			  atomic_load_explicit(&ctx->surgery_pending, memory_order_acquire);
		_pmv_regions_rdunlock(&ctx->regions_lock);

		/* while surgery or a zap is awaited, look again soon */
		if (poll(pfd, 2, pending ? 1 : -1) < 0)
			continue;
		if (pfd[1].revents)
			break;
		_pmv_regions_rdlock(&ctx->regions_lock, true);
		/*
		 * Reading completes the program's munmap/mremap/madvise: hold
		 * event_lock written until their pages are marked, so that no
		 * move in slips between (event.c).
		 */
		pthread_rwlock_wrlock(&ctx->event_lock);
		n = read(ctx->uffd, msgs, sizeof(msgs));
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++)
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
				_pmv_event_handle(ctx, &msgs[i]);
		pthread_rwlock_unlock(&ctx->event_lock);
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(msgs[0]); i++) {
			if (msgs[i].event != UFFD_EVENT_PAGEFAULT || handle_fault(ctx, &msgs[i]))
				continue;
			if (ndeferred < PMV_MAX_DEFERRED)
				deferred[ndeferred++] = msgs[i];
			else	/* it faults again, once there is room */
				_pmv_uffd_wake(ctx, msgs[i].arg.pagefault.address & ~(PMV_SIZE_4K - 1),
					       PMV_SIZE_4K);
		}
		_pmv_regions_rdunlock(&ctx->regions_lock);
		if (atomic_load_explicit(&ctx->surgery_pending, memory_order_acquire) ||
		    announced)
			surgery(ctx, &announced, deferred, &ndeferred);
	}
	return NULL;
}

int _pmv_fault_start(pmv_ctx *ctx)
{
	sigset_t all, old;
	int ret;

	ctx->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (ctx->stop_fd < 0)
		return -errno;
	/* Signals belong to the program's threads, never to ours. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&ctx->fault_thread, NULL, fault_thread, ctx);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		close(ctx->stop_fd);
		ctx->stop_fd = -1;
		return -ret;
	}
	pthread_setname_np(ctx->fault_thread, "pmv-fault");
	{
		/*
		 * Every wait in a remap window and every sampled access is a
		 * round trip through this thread: when permitted, let it run
		 * as soon as a fault arrives instead of after the next tick.
		 * It only ever sleeps in poll() or serves a fault, so it
		 * cannot starve anyone. Unprivileged: stays SCHED_OTHER.
		 */
		struct sched_param sp = { .sched_priority = 1 };

		if (!getenv("PAGEMOVE_FAULT_NO_RT"))
			pthread_setschedparam(ctx->fault_thread, SCHED_FIFO, &sp);
	}
	ctx->fault_running = true;
	return 0;
}

void _pmv_fault_stop(pmv_ctx *ctx)
{
	uint64_t one = 1;

	if (!ctx->fault_running)
		return;
	if (write(ctx->stop_fd, &one, sizeof(one)) != sizeof(one))
		return;
	pthread_join(ctx->fault_thread, NULL);
	ctx->fault_running = false;
	close(ctx->stop_fd);
	ctx->stop_fd = -1;
}
