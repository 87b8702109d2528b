/* SPDX-License-Identifier: MIT */
/*
 * The fault handlers: threads that read userfaultfd messages and answer
 * every one, so no faulting thread can hang:
 *  - MISSING on a page never touched: first touch, a zeroed pool page on a
 *    tier chosen by policy and capacity;
 *  - MISSING or WP on a page a migration holds locked: set PG_waiters and
 *    return; the migration wakes the range when it unlocks;
 *  - anything stale (the page is back, the region is gone): wake.
 * None blocks on a page lock, and all run with all signals blocked. A
 * helper thread decides where they run (follow()).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define PMV_MAX_DEFERRED	256	/* faults waiting for the region table */

/*
 * Several handler threads read the one userfaultfd (DESIGN.md, "The fault
 * handlers"). A fault is cheap only when a handler runs on the CPU that
 * took it: the faulting thread's wakeup of the reader and the reader's
 * wakeup of the faulting thread then stay on that CPU, and on these VMs a
 * wakeup across CPUs is a trip through the host (71 us, against 3 us).
 * But every reader waiting on the fd is woken for every fault (the kernel
 * queues readers and pollers non-exclusively on one wait queue), so each
 * armed handler costs every fault an IPI and a wakeup: on a 2-CPU machine
 * a second one tripled the first touch. So a handler polls the fd
 * ("armed") only on a CPU where a faulting thread runs now; the helper
 * thread follows the faulting threads (follow()) and arms and parks
 * handlers. Any armed handler answers any fault: locality is a matter of
 * speed only.
 */
#define PMV_MAX_HANDLERS	16	/* at most this many handler threads */
#define PMV_SEEN		64	/* faulting threads remembered */
#define SEEN_NS			100000000UL	/* a thread that faulted within this */
#define FOLLOW_NS		10000000UL	/* look where they run at most this often, */
#define FOLLOW_MAX_NS		160000000UL	/* and back off to this while nothing changes */
#define FOLLOW_DELAY_NS		1000000L	/* after the fault that asked: see helper_main */
#define EVENT_SPIN_NS		20000	/* another handler reads: its hold is short */
#define THREAD_STACK		(512UL << 10)	/* ours need little; mlockall locks it all */
/*
 * Map-ahead (map_ahead()): a thread that first-touches pages one after
 * another gets the next pages of its stream mapped after its fault is
 * answered, so that it takes one fault per window instead of one per
 * page. The window starts at AHEAD_FIRST (4 KB pages) or 1 (2 MB), doubles
 * while the stream goes on, up to PAGEMOVE_FAULT_AHEAD pages (0: never)
 * or AHEAD_MAX_2M, and starts again after a break.
 */
#define AHEAD_DEFAULT		32
#define AHEAD_MAX		256
#define AHEAD_FIRST		4
/*
 * A stream of 2 MB first touches gets a window of one page, then two: a
 * write fault on a THP-able range zeroes a THP in the kernel before it
 * finds the range registered, drops it and raises the userfault, so a
 * 2 MB first touch cannot come near the kernel's; one not taken can. At
 * most 4 MB mapped that the program may not touch, against the 2 MB that
 * a THP maps on its first 4 KB touch.
 */
#define AHEAD_MAX_2M		2

enum { ARM_FOLLOW, ARM_ALL };

struct handler {
	struct _pmv_fault *f;
	pthread_t th;
	_Atomic pid_t tid;
	int idx;
	int cpu;		/* pinned to; -1: any of the allowed (helper, under f->mu) */
	int ctl;		/* eventfd: look at `armed` and f->stop again */
	_Atomic bool armed;	/* poll the userfaultfd */
};

struct _pmv_fault {
	pmv_ctx *ctx;
	int mode;			/* ARM_* (PAGEMOVE_FAULT_HANDLERS) */
	pthread_mutex_t mu;		/* the handler table, the deferred faults */
	struct handler h[PMV_MAX_HANDLERS];
	_Atomic unsigned nh;
	unsigned max;			/* handlers at most: min(CPUs, PMV_MAX_HANDLERS) */
	_Atomic bool stop;
	/*
	 * The janitor is the one handler (index + 1; 0: none) that, while any
	 * is pending, polls the zap watches and applies the region-table surgery
	 * (event.c), every 1 ms. `hold` is set while it has announced itself
	 * as a writer of regions_lock: the other handlers then stay out, or
	 * their batches could overlap for ever and keep the surgery out.
	 * `announced` is written by the janitor only (surgery()); every
	 * handler reads it after its batch, as one of the signs that there is
	 * housekeeping to take the janitor role for: atomic, and relaxed, as
	 * the role itself changes hands under mu.
	 */
	_Atomic int janitor;
	_Atomic uint32_t hold;		/* futex word */
	_Atomic bool announced;
	bool more;			/* under mu: work came while the janitor ran */
	struct uffd_msg deferred[PMV_MAX_DEFERRED];	/* under mu */
	size_t ndeferred;
	/* the janitor's copy of them, to answer outside mu: not malloc's (kmem.c) */
	struct uffd_msg again[PMV_MAX_DEFERRED];
	/* faulting threads, by tid: which CPUs need an armed handler */
	struct { _Atomic pid_t tid; _Atomic uint64_t ns; } seen[PMV_SEEN];
	_Atomic uint64_t follow_ns;	/* when the helper was last asked to look */
	_Atomic uint64_t follow_ivl;	/* how often it looks now */
	_Atomic bool follow_due;	/* it was asked */
	_Atomic bool spare;		/* a CPU without an armed handler, for the helper */
	_Atomic int extra;		/* _pmv_fault_extra_readers: every handler reads */
	cpu_set_t initial;		/* the creator's CPUs */
	int count[CPU_SETSIZE];		/* follow(): faulting threads per CPU (the helper's) */
	/*
	 * Sequential first-touch streams, by tid: the page a stream touches
	 * next if it goes on, and its window. Hints (relaxed): a thread
	 * faults once at a time, and a stale entry costs one window or none.
	 */
	unsigned ahead_max;		/* PAGEMOVE_FAULT_AHEAD */
	unsigned around;		/* PAGEMOVE_FAULT_AROUND: pages, 0 or a power of 2 */
	struct { _Atomic pid_t tid; _Atomic uintptr_t next; _Atomic unsigned win; } stream[PMV_SEEN];
	/* the helper thread */
	pthread_t helper;
	bool helper_started;
	_Atomic uint32_t kick;		/* futex word: the helper has work */
	_Atomic uint32_t fill;		/* pools to fill, bit 2 * tier + page size */
	_Atomic uint32_t started;	/* futex word: threads that are running */
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__asm__ __volatile__("" ::: "memory");
#endif
}

/* Tier order for a first touch: the policy tier, then the rest by index. */
static int first_touch_tiers(pmv_ctx *ctx, const struct _pmv_page *pg, int *order)
{
	int pol = __atomic_load_n(&pg->pol_tier, __ATOMIC_RELAXED);
	int n = 0;

	/* never a far tier: a page there is one that was evicted */
	if (!_pmv_tier_far(ctx, pol))
		order[n++] = pol;
	if (n && (_pmv_page_flags(pg) & PG_bind))
		return n;
	for (unsigned t = 0; t < ctx->ntiers; t++)
		if ((int)t != pol && !_pmv_tier_far(ctx, (int)t))
			order[n++] = t;
	return n;
}

/*
 * A first touch of a 2 MB page that got no 2 MB pool page though a tier
 * has room: the node could not give a THP (fragmentation; tier.c compacts
 * and retries first). Rather than SIGBUS, the page is charged to the
 * first such tier and mapped as 512 zero-page pieces, which writes break
 * into 4 KB pages as for any anonymous memory; pmv_collapse or the policy
 * coalesces it later (collapse.c), into a pool page on the tier's node.
 */
static int first_touch_pieces(pmv_ctx *ctx, struct _pmv_page *pg, const int *order, int n)
{
	uintptr_t addr = _pmv_page_addr(pg);
	int ret;

	for (int i = 0; i < n; i++) {
		int t = order[i];

		if (!_pmv_tier_charge_room(&ctx->tiers[t], PMV_PS_2M))
			continue;
		/* wakes the faulting threads; -EAGAIN: an event is unread, fault again */
		ret = _pmv_uffd_zeropage(ctx, addr, PMV_SIZE_2M);
		if (ret) {
			_pmv_tier_uncharge(&ctx->tiers[t], PMV_PS_2M, 1);
			return ret == -EEXIST ? -EEXIST : ret;
		}
		__atomic_store_n(&pg->tier, (int8_t)t, __ATOMIC_RELAXED);
		_pmv_page_clear(pg, PG_active | PG_referenced | PG_shared);
		_pmv_page_set(pg, PG_present | PG_huge);
		_pmv_lru_add(ctx, pg);
		_pmv_stat_add(&ctx->tiers[t].first_touch, 1);
		_pmv_stat_add(&ctx->tiers[t].thp_pieces, 1);
		if (t != __atomic_load_n(&pg->pol_tier, __ATOMIC_RELAXED))
			_pmv_stat_add(&ctx->tiers[t].fallback_in, 1);
		_pmv_stat_add(&ctx->faults_first_touch, 1);
		return 0;
	}
	return -ENOMEM;
}

/*
 * Place a zeroed page at a locked descriptor. Also used when PG_present is
 * set but the page was discarded (MADV_DONTNEED): wholly, it is replaced;
 * in part (a huge page whose pieces were dropped), -EEXIST tells the
 * caller to zero-fill just the faulting piece.
 */
int _pmv_first_touch(pmv_ctx *ctx, struct _pmv_page *pg, unsigned flags)
{
	struct _pmv_region *r = pg->region;
	uintptr_t addr = _pmv_page_addr(pg);
	size_t size = (size_t)1 << r->shift, done = 0;
	int order[PMV_MAX_TIERS], n, ret;
	bool clean = false, was_present = false, uncharged = false, early;
	int8_t old_tier = pg->tier;
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
	if (!slot && !was_present && r->ps == PMV_PS_2M)
		return first_touch_pieces(ctx, pg, order, n);
	if (!slot)
		return -ENOMEM;
	/* No region ever sees another's old data. */
	if (!clean)
		memset(slot, 0, size);
	/*
	 * The faulting thread must not run on before the descriptor says
	 * present, or its own pmv_move_pages() would see -ENOENT. With
	 * PMV_MV_WAKE the move itself wakes it, which saves the fault a
	 * UFFDIO_WAKE: publish first, and take it back if the move fails. The
	 * page lock is held throughout, so only racy readers (a query) can
	 * see the page present a moment early. A replaced page publishes
	 * after, and the caller wakes.
	 */
	early = (flags & PMV_MV_WAKE) && !was_present;
	_pmv_inject_hold(ctx);
	if (early) {
		__atomic_store_n(&pg->tier, (int8_t)t, __ATOMIC_RELAXED);
		_pmv_page_set(pg, PG_present | (r->ps == PMV_PS_2M ? PG_huge : 0));
	}
	ret = _pmv_move_in_one(ctx, pg, slot, early ? PMV_MV_WAKE : 0, &done);
	if (ret) {
		if (early) {
			_pmv_page_clear(pg, PG_present | PG_huge);
			__atomic_store_n(&pg->tier, old_tier, __ATOMIC_RELAXED);
		}
		if (done) {
			/*
			 * Part of the slot's page went in (the address was
			 * partly mapped after all): the slot is no page any
			 * more. Clean it and keep it as a hole.
			 */
			_pmv_pool_discard(ctx, slot, size);
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
	_pmv_fault_want_fill(ctx, t, r->ps);
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

/* ---- copiers: threads that read region pages while holding page locks -- */

static __thread int copier_slot = -1;

bool _pmv_copier_enter(pmv_ctx *ctx)
{
	pid_t tid = (pid_t)syscall(SYS_gettid);

	/*
	 * Publish our tid so the fault handlers can tell a fault taken while we
	 * copy a page we hold locked (the program discarded it under us) from
	 * an ordinary one, and rescue it instead of waiting for our unlock.
	 */
	for (int i = 0; i < PMV_MAX_COPIERS; i++) {
		pid_t zero = 0;

		if (atomic_compare_exchange_strong(&ctx->copiers[i], &zero, tid)) {
			copier_slot = i;
			return true;
		}
	}
	return false;
}

void _pmv_copier_exit(pmv_ctx *ctx)
{
	if (copier_slot >= 0) {
		atomic_store(&ctx->copiers[copier_slot], 0);
		copier_slot = -1;
	}
}

bool _pmv_is_copier(pmv_ctx *ctx, pid_t tid)
{
	/*
	 * Relaxed is enough: the copier published its tid before the access
	 * that faulted, and the fault reached us through the kernel (the
	 * uffd read), which orders the two.
	 */
	for (int i = 0; i < PMV_MAX_COPIERS; i++)
		if (atomic_load_explicit(&ctx->copiers[i], memory_order_relaxed) == tid)
			return true;
	return false;
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

/*
 * No memory tier had room for pg: make some on the first tier it may use
 * by evicting cold pages to a far tier (far.c), as the kernel reclaims
 * under a fault. 0 if any room was made.
 */
static int reclaim(pmv_ctx *ctx, struct _pmv_page *pg)
{
	int order[PMV_MAX_TIERS], n = first_touch_tiers(ctx, pg, order);

	if (!n)
		return -ENOMEM;
	return _pmv_far_reclaim(ctx, order[0], _pmv_page_size(pg), pg);
}

#define RECLAIM_TRIES	16	/* rounds of reclaim before SIGBUS, as the kernel's */

static bool have_far(pmv_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->ntiers; i++)
		if (_pmv_tier_far(ctx, (int)i))
			return true;
	return false;
}

/*
 * serve(pg) (a load or a first touch) found no room: reclaim and try
 * again, up to RECLAIM_TRIES rounds, as the kernel's reclaim retries
 * before it gives up. One round may free nothing while the room is on its
 * way (the candidates are locked by the policy evicting them, or held by
 * other handlers), and room one round made may go to another handler's
 * access first: a single try sent SIGBUS to a program with a far tier of
 * unlimited room (bench far's scan, two threads faulting). A round that
 * freed nothing backs off, 50 us doubling to 3.2 ms (about 30 ms in all);
 * one that freed nothing only because room is on its way is no try (up to
 * RECLAIM_WAIT_NS).
 * Returns serve's last result; -EAGAIN from a fork under way (fault
 * again). Without a far tier there is nothing to reclaim: a bound full
 * tier's SIGBUS is immediate, as documented.
 */
#define RECLAIM_WAIT_NS	1500000000ULL	/* room on its way: a zap watch's 1 s, and some */

static int with_reclaim(pmv_ctx *ctx, struct _pmv_page *pg,
			int (*serve)(pmv_ctx *, struct _pmv_page *, void *), void *arg, int ret)
{
	uint64_t until = 0;

	for (int i = 0, k = 0; ret == -ENOMEM && i < RECLAIM_TRIES && have_far(ctx); i++, k++) {
		int r = reclaim(ctx, pg);

		if (r == -EAGAIN)
			return r;
		if (r == -EBUSY) {
			/*
			 * The room is held by evictions or loads in flight or by
			 * a discard's zap watch (PMV_TEST_EVICT_CAP's SIGBUS
			 * after MADV_FREE): wait for it, as the kernel's reclaim
			 * waits for writeback, a bounded time, not a try; end
			 * the watches that may end (as _pmv_event_reap).
			 */
			uint64_t now = _pmv_now_ns();

			if (!until)
				until = now + RECLAIM_WAIT_NS;
			if (now < until)
				i--;
			pthread_rwlock_wrlock(&ctx->event_lock);
			_pmv_event_poll(ctx);
			pthread_rwlock_unlock(&ctx->event_lock);
		}
		if (r) {
			struct timespec ts = { 0, 50000L << (k < 6 ? k : 6) };

			nanosleep(&ts, NULL);
		}
		ret = serve(ctx, pg, arg);
	}
	return ret;
}

static int serve_load(pmv_ctx *ctx, struct _pmv_page *pg, void *arg)
{
	(void)arg;
	return _pmv_far_fault(ctx, pg, false);
}

/* *fresh: whether this try is the page's first touch, as the caller's */
static int serve_first_touch(pmv_ctx *ctx, struct _pmv_page *pg, void *fresh)
{
	*(bool *)fresh = !(_pmv_page_flags(pg) & PG_present);
	return _pmv_first_touch(ctx, pg, PMV_MV_WAKE);
}

static void sigbus_thread(pmv_ctx *ctx, pid_t tid)
{
	/* No room on any allowed tier: fail the access as the kernel would. */
	_pmv_stat_add(&ctx->faults_sigbus, 1);
	if (tid > 0)
		syscall(SYS_tgkill, ctx->pid, tid, SIGBUS);
}

/* ---- map-ahead of sequential first touches --------------------------------- */

/* A first touch just answered, whose stream wants `win` pages mapped after it. */
struct ahead {
	struct _pmv_page *pg;
	pid_t tid;
	unsigned win;
	bool around;
};

/*
 * A first touch of a page of size ps at addr by tid was answered: does
 * it go on the thread's stream (the page right after the last one it
 * faulted on, or after its last window)? Then the window grows, else the
 * stream starts again here, with none.
 */
static unsigned stream_touch(struct _pmv_fault *f, pid_t tid, uintptr_t addr, int ps)
{
	unsigned slot = (unsigned)tid % PMV_SEEN, win = 0;
	unsigned max = ps == PMV_PS_2M ? AHEAD_MAX_2M : f->ahead_max;

	if (atomic_load_explicit(&f->stream[slot].tid, memory_order_relaxed) == tid &&
	    atomic_load_explicit(&f->stream[slot].next, memory_order_relaxed) == addr) {
		win = atomic_load_explicit(&f->stream[slot].win, memory_order_relaxed);
		win = win ? 2 * win : ps == PMV_PS_2M ? 1 : AHEAD_FIRST;
		if (win > max)
			win = max;
	}
	atomic_store_explicit(&f->stream[slot].tid, tid, memory_order_relaxed);
	atomic_store_explicit(&f->stream[slot].next, addr + _pmv_ps_size(ps), memory_order_relaxed);
	atomic_store_explicit(&f->stream[slot].win, win, memory_order_relaxed);
	return win;
}

/* Where the stream's next fault will be, after n pages mapped ahead. */
static void stream_ahead(struct _pmv_fault *f, pid_t tid, uintptr_t addr, size_t n, int ps)
{
	unsigned slot = (unsigned)tid % PMV_SEEN;

	if (atomic_load_explicit(&f->stream[slot].tid, memory_order_relaxed) == tid)
		atomic_store_explicit(&f->stream[slot].next, addr + (n + 1) * _pmv_ps_size(ps),
				      memory_order_relaxed);
}

/*
 * A page map-ahead may take: never touched, nothing pending on it, of the
 * tier's policy; and (not_held) nobody's, before the trylock.
 */
static bool ahead_ok(const struct _pmv_page *pg, int tier, uint32_t not_held)
{
	return !(_pmv_page_flags(pg) & (PG_present | PG_parked | PG_discard | PG_gone | PG_zap |
					 not_held)) &&
	       __atomic_load_n(&pg->pol_tier, __ATOMIC_RELAXED) == tier;
}

/*
 * After a.pg's first touch was answered (the thread runs on): map the next
 * a.win pages of its region ahead, as first touches of their own would,
 * so that a sequential stream takes one fault per window. Only pages never
 * touched and not held, up to the first that is not; only on an unbounded
 * tier, and the faulting page's, which must be their policy tier too: on a
 * bounded tier they would take room (and bring pressure or SIGBUS) for
 * pages the program may never touch. Only pool pages zeroed already, in
 * one move per run of neighbours: nothing is grown or zeroed here. They
 * are then present, charged and on the LRU as any first touch; the gate
 * of _pmv_move_in keeps out those the program discarded or unmapped
 * meanwhile. Caller holds regions_lock for reading.
 */
/*
 * Map n pages of one region (each trylocked by the caller, never touched)
 * on unbounded tier t: pool pages zeroed already, in one move per run of
 * neighbours, present, charged and on the LRU as first touches. Unlocks
 * them all; res[i] is 0 for each that went in. Returns how many did.
 */
static size_t map_untouched(pmv_ctx *ctx, int t, int ps, struct _pmv_page **pgs, size_t n,
			    int *res)
{
	struct _pmv_tier *tier = &ctx->tiers[t];
	size_t psz = _pmv_ps_size(ps);
	void *slot[AHEAD_MAX], *holes[AHEAD_MAX];
	uintptr_t s[AHEAD_MAX];
	size_t part[AHEAD_MAX], got, placed = 0;

	got = n ? _pmv_pool_take_clean(tier, ps, n, slot) : 0;
	for (size_t i = got; i < n; i++) {
		res[i] = -ENOMEM;
		_pmv_page_unlock(ctx, pgs[i]);
	}
	n = got;
	if (!n)
		return 0;
	/*
	 * Published before the move, as a first touch does (_pmv_first_touch):
	 * a discard read while the page goes in then marks it PG_zap too, and
	 * after MADV_FREE it stays the program's, managed. Taken back below if
	 * it did not go in.
	 */
	for (size_t i = 0; i < n; i++) {
		s[i] = (uintptr_t)slot[i];
		__atomic_store_n(&pgs[i]->tier, (int8_t)t, __ATOMIC_RELAXED);
		_pmv_page_set(pgs[i], PG_present | (ps == PMV_PS_2M ? PG_huge : 0));
	}
	_pmv_inject_hold(ctx);
	_pmv_move_in(ctx, pgs, s, n, 0, res, part);
	for (size_t i = 0; i < n; i++) {
		struct _pmv_page *q = pgs[i];

		if (!res[i]) {
			holes[placed++] = slot[i];
			_pmv_page_clear(q, PG_active | PG_referenced | PG_shared);
			_pmv_lru_add(ctx, q);
			continue;
		}
		_pmv_page_clear(q, PG_present | PG_huge);
		if (part[i]) {
			/* part of a 2 MB slot went in: as _pmv_first_touch */
			_pmv_pool_discard(ctx, slot[i], psz);
			_pmv_pool_put_hole(tier, ps, slot[i]);
			_pmv_tier_uncharge(tier, ps, 1);
		} else {
			/* untouched by a refused move: still zero */
			_pmv_pool_put_page(tier, ps, slot[i], true);
		}
	}
	if (placed)
		_pmv_pool_put_holes(tier, ps, holes, placed);
	for (size_t i = 0; i < n; i++)
		_pmv_page_unlock(ctx, pgs[i]);
	_pmv_fault_want_fill(ctx, t, ps);
	_pmv_stat_add(&tier->first_touch, placed);
	_pmv_stat_add(&ctx->faults_first_touch, placed);
	_pmv_stat_add(&ctx->faults_ahead, placed);
	return placed;
}

/* Page q, for map_untouched on tier t: taken (locked), or false. */
static bool take_untouched(pmv_ctx *ctx, struct _pmv_page *q, int t)
{
	if (!ahead_ok(q, t, PG_locked) || !_pmv_page_trylock(q))
		return false;
	if (!ahead_ok(q, t, 0)) {	/* again, held: it may have changed */
		_pmv_page_unlock(ctx, q);
		return false;
	}
	return true;
}

/* The tier of a.pg's first touch, if map-ahead and fault-around may use
 * it (unbounded), else -1. */
static int ahead_tier(pmv_ctx *ctx, const struct ahead *a)
{
	int t = __atomic_load_n(&a->pg->tier, __ATOMIC_RELAXED);

	if (t < 0 || (unsigned)t >= ctx->ntiers || ctx->tiers[t].capacity)
		return -1;
	return t;
}

/*
 * After a.pg's first touch was answered (the thread runs on): map the next
 * a.win pages of its region ahead, as first touches of their own would,
 * so that a sequential stream takes one fault per window. Only pages never
 * touched and not held, up to the first that is not; only on an unbounded
 * tier, and the faulting page's, which must be their policy tier too: on a
 * bounded tier they would take room (and bring pressure or SIGBUS) for
 * pages the program may never touch. Nothing is grown or zeroed here
 * (map_untouched). The gate of _pmv_move_in keeps out those the program
 * discarded or unmapped meanwhile. Caller holds regions_lock for reading.
 */
static void map_ahead(pmv_ctx *ctx, const struct ahead *a)
{
	struct _pmv_region *r = a->pg->region;
	struct _pmv_page *pgs[AHEAD_MAX];
	int res[AHEAD_MAX], t = ahead_tier(ctx, a);
	size_t idx = (size_t)(a->pg - r->pages), n = 0, got;

	if (t < 0)
		return;
	while (n < a->win && idx + 1 + n < r->npages && take_untouched(ctx, &r->pages[idx + 1 + n], t))
		pgs[n] = &r->pages[idx + 1 + n], n++;
	if (!map_untouched(ctx, t, r->ps, pgs, n, res))
		return;
	/* the stream's next fault is past what went in, up to the first failure */
	for (got = 0; got < n && !res[got]; got++)
		;
	stream_ahead(ctx->fault, a->tid, _pmv_page_addr(a->pg), got, r->ps);
}

/*
 * Fault-around (f->around pages, a power of two): after a.pg's first
 * touch, the other untouched pages of its aligned block of f->around
 * pages, as the kernel's anonymous mTHP would map them in one fault. For
 * a program that touches its heap in scattered order (Python's arenas,
 * 4 pools of 16 KB apart), which map-ahead's streams do not catch. The
 * same limits as map_ahead: unbounded tier only, untouched pages only
 * (skipped, not stopped at). After map_ahead, so that a stream's next
 * fault moves past what this mapped. Caller holds regions_lock for reading.
 */
static void map_around(pmv_ctx *ctx, const struct ahead *a)
{
	struct _pmv_fault *f = ctx->fault;
	struct _pmv_region *r = a->pg->region;
	struct _pmv_page *pgs[AHEAD_MAX];
	int res[AHEAD_MAX], t = ahead_tier(ctx, a);
	size_t idx = (size_t)(a->pg - r->pages), lo = idx & ~((size_t)f->around - 1);
	size_t hi = lo + f->around, n = 0;
	unsigned slot = (unsigned)a->tid % PMV_SEEN;

	if (t < 0)
		return;
	if (hi > r->npages)
		hi = r->npages;
	for (size_t i = lo; i < hi; i++)
		if (i != idx && take_untouched(ctx, &r->pages[i], t))
			pgs[n++] = &r->pages[i];
	if (!map_untouched(ctx, t, PMV_PS_4K, pgs, n, res))
		return;
	/* a stream whose next page this mapped goes on after the block */
	if (atomic_load_explicit(&f->stream[slot].tid, memory_order_relaxed) == a->tid) {
		uintptr_t base = _pmv_page_addr(a->pg) - idx * PMV_SIZE_4K;
		uintptr_t next = atomic_load_explicit(&f->stream[slot].next, memory_order_relaxed);
		size_t k = (next - base) / PMV_SIZE_4K;

		if (next >= base && k >= lo && k < hi) {
			while (k < hi && (_pmv_page_flags(&r->pages[k]) & PG_present))
				k++;
			atomic_store_explicit(&f->stream[slot].next, base + k * PMV_SIZE_4K,
					      memory_order_relaxed);
		}
	}
}

/*
 * Answer one fault. Caller holds regions_lock for reading. False: the fault
 * is at the new place of a range the program moved with mremap, which the
 * region table does not know yet: it waits for the table (defer(), then
 * the janitor's surgery()).
 */
static bool handle_fault(pmv_ctx *ctx, const struct uffd_msg *msg, struct ahead *ah)
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
	} else if (_pmv_page_flags(pg) & PG_far) {
		/* An evicted page's access: load it (far.c); the move in wakes. */
		ret = with_reclaim(ctx, pg, serve_load, NULL, _pmv_far_fault(ctx, pg, false));
		/*
		 * Reclaim found nothing it may evict (every resident page
		 * pinned, locked, protected or shared with a child): the page
		 * comes in over the tier's capacity, as fork loads them, and
		 * is not refused. A SIGBUS never reaches a kernel-mode access
		 * (O_DIRECT's or mlock's GUP waits killable, and SIGBUS, a
		 * core-dump signal, is not made a group kill): it faulted
		 * again for ever, t_pins' O_DIRECT with the memory tier half
		 * the buffer (PMV_TEST_EVICT_CAP). Its bytes exist; a user-mode
		 * access would have died for want of room alone.
		 */
		if (ret == -ENOMEM)
			ret = _pmv_far_fault(ctx, pg, true);
		if (ret == -ENOMEM)
			sigbus_thread(ctx, tid);
		_pmv_page_unlock(ctx, pg);
		if (ret)
			_pmv_uffd_wake(ctx, addr, size);
		return true;
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
		bool fresh = !(_pmv_page_flags(pg) & PG_present);

		ret = _pmv_first_touch(ctx, pg, PMV_MV_WAKE);
		/* -EAGAIN from reclaim (a fork): the thread faults again */
		if (ret == -ENOMEM)
			ret = with_reclaim(ctx, pg, serve_first_touch, &fresh, ret);
		if (!ret && fresh) {
			int t = pg->tier;

			/* the move woke it (PMV_MV_WAKE) */
			_pmv_page_unlock(ctx, pg);
			_pmv_far_kick(ctx, t);	/* room ahead of the next ones */
			if (ah && tid > 0 && (ctx->fault->ahead_max || ctx->fault->around)) {
				ah->win = ctx->fault->ahead_max ?
					  stream_touch(ctx->fault, tid, addr, r->ps) : 0;
				/* fault-around is a block of 4 KB pages */
				ah->around = r->ps == PMV_PS_4K && ctx->fault->around;
				ah->pg = ah->win || ah->around ? pg : NULL;
				ah->tid = tid;
			}
			return true;
		}
		if (ret == -ENOMEM) {
			sigbus_thread(ctx, tid);
		} else if (ret && ret != -EAGAIN && ret != -ECANCELED) {
			/*
			 * Part of a huge page was discarded (MADV_DONTNEED on a
			 * sub-range splits the THP), or the whole-page move met
			 * a partly mapped range: that part reads as zero. Never
			 * leave the thread to fault again on the same failure.
			 *
			 * Not for EAGAIN (an event is unread) nor ECANCELED
			 * (another handler read the program's discard or unmap
			 * of the page while we held it): the unlock settles that,
			 * and the thread faults again and gets a first touch of
			 * its own, or SIGSEGV. The zero page here would be a page
			 * the library does not know: uncharged, and made the
			 * program's own by its next write.
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

/* ---- handler threads ------------------------------------------------------ */

static void poke(struct handler *h);

/*
 * Our own discard's REMOVE event is read by an armed handler, and madvise
 * waits for that: behind a fault that handler serves meanwhile (a far
 * fault-in's I/O, a 2 MB page's zeroing). While on, every handler polls
 * the userfaultfd, so an idle one reads it at once; each fault meanwhile
 * wakes them all, which is why it is only on for the discard.
 */
void _pmv_fault_extra_readers(pmv_ctx *ctx, bool on)
{
	struct _pmv_fault *f = ctx->fault;

	if (!f)
		return;
	if (!on) {
		atomic_fetch_sub(&f->extra, 1);
		return;	/* each one drops back at its next wakeup */
	}
	if (atomic_fetch_add(&f->extra, 1))
		return;	/* on already: they poll the fd */
	for (unsigned i = 0; i < atomic_load(&f->nh); i++)
		if (!atomic_load(&f->h[i].armed))
			poke(&f->h[i]);
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void futex_wake_all(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static void futex_wait_ns(_Atomic uint32_t *w, uint32_t val, long ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L };

	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, ns ? &ts : NULL, NULL, 0);
}

static void kick_helper(struct _pmv_fault *f)
{
	/* one wake per batch of work: the exchange sees a kick already owed */
	if (!atomic_exchange_explicit(&f->kick, 1, memory_order_acq_rel))
		syscall(SYS_futex, &f->kick, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/*
 * A new thread's first malloc makes its arena, a new mapping: do it now,
 * while pmv_create waits for us, so that it is made before the program
 * can call mlockall(MCL_FUTURE), which would lock the arena's whole
 * reservation. Then say we run.
 */
static void thread_started(struct _pmv_fault *f)
{
	void *volatile p = malloc(64);

	free(p);
	atomic_fetch_add(&f->started, 1);
	futex_wake_all(&f->started);
}

static void poke(struct handler *h)
{
	uint64_t one = 1;

	if (write(h->ctl, &one, sizeof(one)) != sizeof(one))
		return;	/* the counter is far from full: cannot fail */
}

/*
 * event_lock for writing, from before read() until the batch's events are
 * marked. Another handler holds it only across its read and marking, a
 * few microseconds: spin briefly before sleeping, as a sleep would make
 * the holder's CPU wake this one.
 */
static void event_wrlock(pmv_ctx *ctx)
{
	uint64_t until = 0;

	while (pthread_rwlock_trywrlock(&ctx->event_lock)) {
		uint64_t now = _pmv_now_ns();

		if (!until)
			until = now + EVENT_SPIN_NS;
		if (now > until) {
			pthread_rwlock_wrlock(&ctx->event_lock);
			return;
		}
		for (int i = 0; i < 64; i++)
			cpu_relax();
	}
}

/* Faults at a moved range's new place wait for the region table (janitor). */
static void defer(struct _pmv_fault *f, const struct uffd_msg *m)
{
	bool full;

	pthread_mutex_lock(&f->mu);
	full = f->ndeferred == PMV_MAX_DEFERRED;
	if (!full) {
		f->deferred[f->ndeferred] = *m;
		/* release: serve() reads the count without mu */
		__atomic_store_n(&f->ndeferred, f->ndeferred + 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&f->mu);
	if (full)	/* it faults again, once there is room */
		_pmv_uffd_wake(f->ctx, m->arg.pagefault.address & ~(PMV_SIZE_4K - 1), PMV_SIZE_4K);
}

/*
 * The janitor, between batches: apply the queued region-table changes
 * once no reader is left, then answer the faults that waited for them.
 * It never waits for readers (a copier holding regions_lock may need a
 * handler, see rescue_copier); it tries again 1 ms later, announced.
 */
static void surgery(struct _pmv_fault *f)
{
	pmv_ctx *ctx = f->ctx;
	struct uffd_msg *again;
	bool announced, got;
	size_t n;

	if (!atomic_load_explicit(&ctx->surgery_pending, memory_order_acquire) &&
	    !atomic_load_explicit(&f->announced, memory_order_relaxed) &&
	    !__atomic_load_n(&f->ndeferred, __ATOMIC_ACQUIRE))
		return;
	atomic_store(&f->hold, 1);
	/* the janitor's own copy: it is the only writer */
	announced = atomic_load_explicit(&f->announced, memory_order_relaxed);
	got = _pmv_regions_trywrlock_fault(&ctx->regions_lock, &announced);
	atomic_store_explicit(&f->announced, announced, memory_order_relaxed);
	if (!got)
		return;
	if (_pmv_regions_apply(ctx)) {
		/* not yet (unpark_cut in region.c): announced, 1 ms later */
		_pmv_regions_wrunlock(&ctx->regions_lock);
		atomic_store(&f->hold, 0);
		futex_wake_all(&f->hold);
		return;
	}
	_pmv_regions_wrunlock(&ctx->regions_lock);
	atomic_store(&f->hold, 0);
	futex_wake_all(&f->hold);

	pthread_mutex_lock(&f->mu);
	n = f->ndeferred;
	again = f->again;
	memcpy(again, f->deferred, n * sizeof(*again));
	__atomic_store_n(&f->ndeferred, f->ndeferred - n, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&f->mu);
	if (!n)
		return;
	_pmv_regions_rdlock(&ctx->regions_lock, true);
	for (size_t i = 0; i < n; i++)
		if (!handle_fault(ctx, &again[i], NULL))
			defer(f, &again[i]);
	_pmv_regions_rdunlock(&ctx->regions_lock);
}

/* Remember who faulted and when; ask the helper to look, at most every follow_ivl. */
static void note_faulters(struct _pmv_fault *f, const struct uffd_msg *m, size_t n)
{
	uint64_t now = 0, last;

	for (size_t i = 0; i < n; i++) {
		pid_t tid = m[i].arg.pagefault.feat.ptid;
		unsigned slot;

		if (m[i].event != UFFD_EVENT_PAGEFAULT || tid <= 0)
			continue;
		if (!now)
			now = _pmv_now_ns();
		slot = (unsigned)tid % PMV_SEEN;
		/* relaxed: a lost or mixed entry only delays following */
		atomic_store_explicit(&f->seen[slot].tid, tid, memory_order_relaxed);
		atomic_store_explicit(&f->seen[slot].ns, now, memory_order_relaxed);
	}
	if (!now)
		return;
	last = atomic_load_explicit(&f->follow_ns, memory_order_relaxed);
	if (now - last >= atomic_load_explicit(&f->follow_ivl, memory_order_relaxed) &&
	    atomic_compare_exchange_strong(&f->follow_ns, &last, now)) {
		atomic_store(&f->follow_due, true);
		kick_helper(f);
	}
}

/* One batch: up to 64 messages, read and answered. */
static void serve(struct handler *h)
{
	struct _pmv_fault *f = h->f;
	pmv_ctx *ctx = f->ctx;
	struct uffd_msg msgs[64];
	struct ahead ah[64];
	int me = h->idx + 1;
	bool jan = atomic_load(&f->janitor) == me, pending;
	size_t nmsg, zap;
	ssize_t n;

	_pmv_regions_rdlock(&ctx->regions_lock, true);
	/*
	 * Reading completes the program's munmap/mremap/madvise: hold
	 * event_lock written until their pages are marked, so that no move
	 * in slips between (event.c). The zap watches are touched only under
	 * it, by whichever handler reads and by the janitor.
	 */
	event_wrlock(ctx);
	n = read(ctx->uffd, msgs, sizeof(msgs));
	nmsg = n > 0 ? (size_t)n / sizeof(msgs[0]) : 0;
	for (size_t i = 0; i < nmsg; i++)
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
			_pmv_event_handle(ctx, &msgs[i]);
	if (jan)
		_pmv_event_poll(ctx);
	zap = ctx->nzap_wait;	/* only under event_lock written */
	pthread_rwlock_unlock(&ctx->event_lock);
	for (size_t i = 0; i < nmsg; i++) {
		ah[i].pg = NULL;
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT && !handle_fault(ctx, &msgs[i], &ah[i]))
			defer(f, &msgs[i]);
	}
	/* every fault of the batch answered first: then the streams' windows */
	for (size_t i = 0; i < nmsg; i++) {
		if (ah[i].pg && ah[i].win)
			map_ahead(ctx, &ah[i]);
		if (ah[i].pg && ah[i].around)
			map_around(ctx, &ah[i]);
	}
	_pmv_regions_rdunlock(&ctx->regions_lock);
	note_faulters(f, msgs, nmsg);

	pending = zap || atomic_load_explicit(&f->announced, memory_order_relaxed) ||
		  atomic_load_explicit(&ctx->surgery_pending, memory_order_acquire) ||
		  __atomic_load_n(&f->ndeferred, __ATOMIC_ACQUIRE);
	if (pending && !jan) {
		/*
		 * Under mu, as the janitor's leaving: either it sees `more` and
		 * stays, or it has left and this handler takes the role.
		 */
		pthread_mutex_lock(&f->mu);
		if (!atomic_load(&f->janitor)) {
			atomic_store(&f->janitor, me);
			jan = true;
		} else {
			f->more = true;
		}
		pthread_mutex_unlock(&f->mu);
	}
	if (!jan)
		return;
	surgery(f);
	pthread_mutex_lock(&f->mu);
	pending = zap || f->more || atomic_load_explicit(&f->announced, memory_order_relaxed) ||
		  f->ndeferred ||
		  atomic_load_explicit(&ctx->surgery_pending, memory_order_acquire);
	f->more = false;
	if (!pending)
		atomic_store(&f->janitor, 0);
	pthread_mutex_unlock(&f->mu);
}

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	struct _pmv_fault *f = h->f;
	pmv_ctx *ctx = f->ctx;
	int me = h->idx + 1;

	_pmv_uffd_fault_thread();
	atomic_store(&h->tid, gettid_());
	thread_started(f);
	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = h->ctl, .events = POLLIN },
			{ .fd = ctx->uffd, .events = POLLIN },
		};
		bool armed = atomic_load(&h->armed) || atomic_load(&f->extra) > 0,
		     jan = atomic_load(&f->janitor) == me;

		/* while the janitor has housekeeping pending, look again soon */
		if (poll(pfd, armed ? 2 : 1, jan ? 1 : -1) < 0)
			continue;
		if (pfd[0].revents) {
			uint64_t v;

			if (read(h->ctl, &v, sizeof(v)) < 0 && errno != EAGAIN)
				continue;
			if (atomic_load(&f->stop))
				break;
		}
		if (!jan && (!armed || !(pfd[1].revents & POLLIN)))
			continue;
		/* the janitor is cutting the region table: it reads meanwhile */
		while (!jan && atomic_load(&f->hold) && !atomic_load(&f->stop))
			futex_wait_ns(&f->hold, 1, 1000000);
		serve(h);
	}
	return NULL;
}

/*
 * Start the next handler, pinned to cpu (-1: floating over the creator's
 * CPUs), at the start of the context only.
 */
static int handler_start(struct _pmv_fault *f, int cpu, bool armed)
{
	unsigned i = atomic_load(&f->nh);
	struct handler *h = &f->h[i];
	pthread_attr_t attr;
	sigset_t all, old;
	char name[16];
	cpu_set_t set;
	int ret;

	if (i >= f->max)
		return -EAGAIN;
	h->f = f;
	h->idx = i;
	h->cpu = cpu;
	atomic_store(&h->armed, armed);
	h->ctl = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (h->ctl < 0)
		return -errno;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	if (cpu >= 0) {
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	} else if (CPU_COUNT(&f->initial)) {
		pthread_attr_setaffinity_np(&attr, sizeof(f->initial), &f->initial);
	}
	/* Signals belong to the program's threads, never to ours. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&h->th, &attr, handler_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (ret) {
		close(h->ctl);
		return -ret;
	}
	atomic_store(&f->nh, i + 1);
	snprintf(name, sizeof(name), "pmv-fault%u", i % 100);
	pthread_setname_np(h->th, name);
	{
		/*
		 * Every fault is a round trip through a handler: when
		 * permitted, let it run as soon as its fault arrives instead
		 * of after the next tick. It only sleeps in poll() or serves
		 * a batch, so it cannot starve anyone. Unprivileged, or with
		 * PMV_CTX_NO_RT: stays SCHED_OTHER.
		 */
		struct sched_param sp = { .sched_priority = 1 };

		if (!(f->ctx->flags & PMV_CTX_NO_RT))
			pthread_setschedparam(h->th, SCHED_FIFO, &sp);
	}
	return 0;
}

/* ---- following the faulting threads (the helper) -------------------------- */

/* The CPU tid last ran on (/proc stat field 39), or -1 if it is gone. */
static int task_cpu(pid_t tid)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd, field = 2;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strrchr(buf, ')');	/* the name may hold spaces and parentheses */
	for (; p && *p; p++)
		if (*p == ' ' && ++field == 39)
			return atoi(p + 1);
	return -1;
}

static bool pinned_to(pid_t tid, int cpu)
{
	cpu_set_t set;

	if (sched_getaffinity(tid, sizeof(set), &set))
		return false;
	return CPU_COUNT(&set) == 1 && CPU_ISSET(cpu, &set);
}

static struct handler *handler_on(struct _pmv_fault *f, int cpu)
{
	for (unsigned i = 0; i < atomic_load(&f->nh); i++)
		if (f->h[i].cpu == cpu)
			return &f->h[i];
	return NULL;
}

/*
 * The helper (this thread) works off the CPUs where threads fault, when
 * the program has others: woken by a handler on the faulting thread's
 * CPU, it could run before the thread the handler has just woken, and
 * that first touch would wait for the zeroing after all. Not a lower
 * priority instead: zeroing may compact memory and hold the page locks
 * of the program's pages; a thread starved while it does stalls them all
 * (t_integrity under ASan caught a SCHED_IDLE helper doing that).
 */
static void helper_place(struct _pmv_fault *f, const cpu_set_t *allowed, const cpu_set_t *busy)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, allowed) && !CPU_ISSET(c, busy))
			CPU_SET(c, &set);
	sched_setaffinity(0, sizeof(set), CPU_COUNT(&set) ? &set : allowed);
	/* without one, the zeroing cannot leave the faults' CPUs: _pmv_fault_want_fill */
	atomic_store(&f->spare, CPU_COUNT(&set) > 0);
}

/*
 * Arm a handler on each CPU in want (count: faulting threads there, most
 * first) and park the others, so that a fault finds a handler on its CPU
 * and wakes no handler elsewhere. An armed handler is always left: any
 * of them can answer any fault. Parked handlers float over the allowed
 * CPUs, so that none runs (even to exit) where the program may not.
 */
static bool arm(struct _pmv_fault *f, const int *count, const cpu_set_t *allowed)
{
	cpu_set_t want;
	unsigned narmed = 0;
	bool changed = false;

	CPU_ZERO(&want);
	pthread_mutex_lock(&f->mu);
	/* a cpuset change resets pinned threads' affinity: notice it */
	for (unsigned i = 0; i < atomic_load(&f->nh); i++) {
		struct handler *h = &f->h[i];

		if (h->cpu >= 0 && !pinned_to(atomic_load(&h->tid), h->cpu)) {
			h->cpu = -1;
			changed = true;
		}
	}
	for (unsigned k = 0; k < f->max; k++) {
		int best = -1;

		for (int c = 0; c < CPU_SETSIZE; c++)
			if (count[c] > 0 && !CPU_ISSET(c, &want) && (best < 0 || count[c] > count[best]))
				best = c;
		if (best < 0)
			break;
		CPU_SET(best, &want);
	}
	for (int c = 0; c < CPU_SETSIZE; c++) {
		struct handler *h;

		if (!CPU_ISSET(c, &want))
			continue;
		h = handler_on(f, c);
		/* none there: move one (they were all made at the start) */
		for (unsigned i = 0; !h && i < atomic_load(&f->nh); i++) {
			struct handler *p = &f->h[i];
			cpu_set_t one;

			if (atomic_load(&p->armed) && p->cpu >= 0 && CPU_ISSET(p->cpu, &want))
				continue;
			CPU_ZERO(&one);
			CPU_SET(c, &one);
			if (!sched_setaffinity(atomic_load(&p->tid), sizeof(one), &one)) {
				p->cpu = c;
				h = p;
				changed = true;
			}
		}
		if (!h)
			continue;
		narmed++;
		if (!atomic_exchange(&h->armed, true)) {
			poke(h);
			changed = true;
		}
	}
	for (unsigned i = 0; narmed && i < atomic_load(&f->nh); i++) {
		struct handler *h = &f->h[i];

		if (h->cpu >= 0 && CPU_ISSET(h->cpu, &want))
			continue;
		if (atomic_exchange(&h->armed, false)) {
			poke(h);
			changed = true;
		}
		if (h->cpu >= 0 || CPU_COUNT(allowed)) {
			sched_setaffinity(atomic_load(&h->tid), sizeof(*allowed), allowed);
			h->cpu = -1;
		}
	}
	pthread_mutex_unlock(&f->mu);
	helper_place(f, allowed, &want);
	return changed;
}

/*
 * Where do the threads that faulted lately run, and where may they? Arm
 * handlers there (ARM_FOLLOW), or on every CPU they may use (ARM_ALL).
 */
static bool follow(struct _pmv_fault *f)
{
	int *count = f->count;
	uint64_t now = _pmv_now_ns();
	cpu_set_t allowed;
	int seen = 0;

	memset(f->count, 0, sizeof(f->count));
	CPU_ZERO(&allowed);
	for (unsigned i = 0; i < PMV_SEEN; i++) {
		pid_t tid = atomic_load_explicit(&f->seen[i].tid, memory_order_relaxed);
		uint64_t ns = atomic_load_explicit(&f->seen[i].ns, memory_order_relaxed);
		cpu_set_t mask;
		int cpu;

		if (tid <= 0 || now - ns > SEEN_NS)
			continue;
		cpu = task_cpu(tid);
		if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(tid, sizeof(mask), &mask)) {
			atomic_compare_exchange_strong(&f->seen[i].tid, &tid, 0);
			continue;
		}
		count[cpu]++;
		CPU_OR(&allowed, &allowed, &mask);
		seen++;
	}
	if (!seen)
		return false;	/* nobody faults now: leave the handlers where they are */
	if (f->mode == ARM_ALL)
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &allowed) && !count[c])
				count[c] = 1;
	return arm(f, count, &allowed);
}

static void *helper_main(void *arg)
{
	struct _pmv_fault *f = arg;

	{
		cpu_set_t busy;

		CPU_ZERO(&busy);
		if (f->h[0].cpu >= 0)
			CPU_SET(f->h[0].cpu, &busy);
		if (CPU_COUNT(&f->initial))
			helper_place(f, &f->initial, &busy);
	}
	thread_started(f);
	for (;;) {
		/* ~0 CPU when idle: sleep until a handler has work for us */
		while (!atomic_load(&f->kick) && !atomic_load(&f->stop))
			futex_wait_ns(&f->kick, 0, 0);
		if (atomic_load(&f->stop))
			break;
		atomic_store(&f->kick, 0);
		/* first the pools: a first touch may be about to need one */
		for (uint32_t m = atomic_exchange(&f->fill, 0); m; m &= m - 1) {
			int bit = __builtin_ctz(m);

			_pmv_pool_fill(f->ctx, &f->ctx->tiers[bit / 2], bit % 2);
		}
		if (atomic_exchange(&f->follow_due, false)) {
			uint64_t ivl = atomic_load(&f->follow_ivl);

			/*
			 * Not within the fault that asked: on its CPU (one CPU
			 * for all, say) this work would land in its wait. A new
			 * kick (a fill) cuts the delay short.
			 */
			futex_wait_ns(&f->kick, 0, FOLLOW_DELAY_NS);
			if (follow(f))
				ivl = FOLLOW_NS;
			else if (ivl < FOLLOW_MAX_NS)
				ivl *= 2;	/* nothing moved: look less often */
			atomic_store(&f->follow_ivl, ivl);
		}
	}
	return NULL;
}

void _pmv_fault_want_fill(pmv_ctx *ctx, int tier, int ps)
{
	struct _pmv_fault *f = ctx->fault;
	uint32_t bit = 1u << (2 * tier + ps);

	/*
	 * Without a spare CPU the helper zeroes on the faulting thread's: a
	 * 2 MB fill then competes with the very touch that needs the page
	 * (taskset -c 0 doubled fault_first_touch_2m), but 4 KB fills, a few
	 * hundred pages at a time, still beat the inline growth of 64 on 1
	 * first touch in 64 (its p99: 80 us against 210).
	 */
	/*
	 * Relaxed, spare and fill alike: hints. A stale spare makes one 2 MB
	 * fill go ahead or wait for the next first touch that asks; a stale
	 * fill bit one kick more or less (the helper's exchange of the bits
	 * is the synchronization). Nothing else is published through them.
	 */
	if (!f || (ps == PMV_PS_2M && !atomic_load_explicit(&f->spare, memory_order_relaxed)) ||
	    (atomic_load_explicit(&f->fill, memory_order_relaxed) & bit) ||
	    !_pmv_pool_wants_fill(&ctx->tiers[tier], ps))
		return;
	atomic_fetch_or(&f->fill, bit);
	kick_helper(f);
}

/* ---- start and stop ----------------------------------------------------------- */

/* Fault-around's size for contexts made from now on, when
 * PAGEMOVE_FAULT_AROUND is unset: 0 (off) but for the preload's. */
static unsigned around_default;

void _pmv_fault_around_default(unsigned pages)
{
	__atomic_store_n(&around_default, pages, __ATOMIC_RELAXED);
}

/* The variables: 0 with *mode, *ahead and *around read, or -EINVAL. */
static int fault_env(int *arm, unsigned *ahead_max, unsigned *around_pages)
{
	const char *mode = getenv("PAGEMOVE_FAULT_HANDLERS");
	const char *ahead = getenv("PAGEMOVE_FAULT_AHEAD");
	const char *around = getenv("PAGEMOVE_FAULT_AROUND");
	unsigned long nahead = AHEAD_DEFAULT;
	unsigned long naround = __atomic_load_n(&around_default, __ATOMIC_RELAXED);

	if (mode && *mode && strcmp(mode, "follow") && strcmp(mode, "all"))
		return _pmv_set_errmsg(-EINVAL, "PAGEMOVE_FAULT_HANDLERS=%s: want follow or all", mode);
	if (ahead && *ahead) {
		char *end;

		errno = 0;
		nahead = strtoul(ahead, &end, 10);
		if (errno || *end || *ahead == '-' || nahead > AHEAD_MAX)
			return _pmv_set_errmsg(-EINVAL, "PAGEMOVE_FAULT_AHEAD=%s: want 0 (off) to %d "
					       "pages", ahead, AHEAD_MAX);
	}
	if (around && *around) {
		char *end;

		errno = 0;
		naround = strtoul(around, &end, 10);
		if (errno || *end || *around == '-' || naround > AHEAD_MAX ||
		    (naround & (naround - 1)))
			return _pmv_set_errmsg(-EINVAL, "PAGEMOVE_FAULT_AROUND=%s: want 0 (off) or "
					       "a power of two up to %d pages", around, AHEAD_MAX);
	}
	if (naround > AHEAD_MAX || (naround & (naround - 1)))
		naround = 0;
	*arm = mode && !strcmp(mode, "all") ? ARM_ALL : ARM_FOLLOW;
	*ahead_max = (unsigned)nahead;
	*around_pages = naround > 1 ? (unsigned)naround : 0;
	return 0;
}

int _pmv_fault_check_env(void)
{
	unsigned a, b;
	int m;

	return fault_env(&m, &a, &b);
}

int _pmv_fault_start(pmv_ctx *ctx)
{
	struct _pmv_fault *f;
	long ncpu = sysconf(_SC_NPROCESSORS_CONF);
	pthread_attr_t attr;
	sigset_t all, old;
	unsigned ahead_max, around_pages;
	int ret = 0, cpu, arm;
	uint32_t n;

	ret = fault_env(&arm, &ahead_max, &around_pages);
	if (ret)
		return ret;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->ctx = ctx;
	f->mode = arm;
	f->ahead_max = ahead_max;
	f->around = around_pages;
	atomic_store(&f->follow_ivl, FOLLOW_NS);
	f->max = ncpu > 0 && ncpu < PMV_MAX_HANDLERS ? (unsigned)ncpu : PMV_MAX_HANDLERS;
	_pmv_mutex_init_pi(&f->mu);
	ctx->fault = f;
	if (sched_getaffinity(0, sizeof(f->initial), &f->initial))
		CPU_ZERO(&f->initial);
	/*
	 * All f->max handlers are made now, so that no thread (stack, malloc
	 * arena) is made after the program may have called mlockall or set
	 * RLIMIT_AS (DESIGN.md: nothing is mapped later): one pinned to each
	 * CPU the creator may use, the rest parked, floating over those CPUs
	 * until arm() moves them where the program's threads come to fault
	 * (its affinity or cpuset may grow). Armed: the creator's CPU only
	 * (in a program that creates its context and then touches its
	 * memory, the first faults are taken there), or every one with
	 * ARM_ALL.
	 */
	cpu = sched_getcpu();
	if (cpu < 0 || !CPU_ISSET(cpu, &f->initial))
		cpu = -1;
	if (cpu >= 0)
		ret = handler_start(f, cpu, true);
	for (int c = 0; c < CPU_SETSIZE && !ret && atomic_load(&f->nh) < f->max; c++)
		if (c != cpu && CPU_ISSET(c, &f->initial))
			ret = handler_start(f, c, f->mode == ARM_ALL || !atomic_load(&f->nh));
	if (!ret && !atomic_load(&f->nh))
		ret = handler_start(f, -1, true);	/* no affinity to read: anywhere */
	while (!ret && atomic_load(&f->nh) < f->max)
		ret = handler_start(f, -1, false);
	if (ret)
		return ret;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, THREAD_STACK);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&f->helper, &attr, helper_main, f);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (ret)
		return -ret;
	f->helper_started = true;
	pthread_setname_np(f->helper, "pmv-helper");
	/* every thread has made its arena (thread_started) */
	while ((n = atomic_load(&f->started)) < atomic_load(&f->nh) + 1)
		futex_wait_ns(&f->started, n, 0);
	return 0;
}

void _pmv_fault_stop(pmv_ctx *ctx)
{
	struct _pmv_fault *f = ctx->fault;

	if (!f)
		return;
	atomic_store(&f->stop, true);
	if (f->helper_started) {
		atomic_store(&f->kick, 1);
		futex_wake_all(&f->kick);
		pthread_join(f->helper, NULL);
	}
	futex_wake_all(&f->hold);
	for (unsigned i = 0; i < atomic_load(&f->nh); i++)
		poke(&f->h[i]);
	for (unsigned i = 0; i < atomic_load(&f->nh); i++)
		pthread_join(f->h[i].th, NULL);
	pthread_mutex_destroy(&f->mu);
	_pmv_fault_forget(ctx);
}

/* Also in a fork child, where the threads are the parent's and mu may be held. */
void _pmv_fault_forget(pmv_ctx *ctx)
{
	struct _pmv_fault *f = ctx->fault;

	if (!f)
		return;
	for (unsigned i = 0; i < atomic_load(&f->nh); i++)
		close(f->h[i].ctl);
	free(f);
	ctx->fault = NULL;
}
