/* SPDX-License-Identifier: MIT */
/*
 * Tiers and their pools of free pages.
 *
 * Accounting model (like a NUMA node's memory): a tier's used bytes are its
 * resident pages plus its pool pages, and never exceed its capacity. Taking
 * a pool page for a migration or a first touch turns a pool page into a
 * resident one; a migration's source page comes back into its own tier's
 * pool; so a migration never changes the sum on either side, and a full tier
 * can still be migrated out of.
 */
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define POOL_CHUNK_4K	(8192UL * PMV_SIZE_4K)	/* 32 MB of VA per chunk */
#define POOL_CHUNK_2M	(256UL * PMV_SIZE_2M)	/* 512 MB of VA per chunk */
#define POOL_CHUNK_MIN	16			/* slots, when VA is short */
/*
 * A chunk is reserved PROT_NONE and made writable this much at a time, as
 * its slots are needed: mlockall(MCL_CURRENT) populates every writable
 * mapping in full, PROT_NONE ones not at all, so what it fills is bounded
 * by what the pool has used, not by the 512 MB of VA a 2 MB chunk takes.
 */
#define POOL_ARM_4K	(512UL * PMV_SIZE_4K)	/* 2 MB */
#define POOL_ARM_2M	(8UL * PMV_SIZE_2M)	/* 16 MB */
/*
 * Free pages kept per tier and page size. Trimming below what a round trip
 * of migrations needs makes every round re-populate, i.e. zero, its
 * destinations: the kernel's own migration never pays that. Tunable with
 * PAGEMOVE_POOL_MB; capped at a quarter of a bounded tier's capacity.
 */
#define POOL_HIGH_BYTES	(256UL << 20)
#define POOL_GROW_4K	64			/* pages populated per refill */
/*
 * Clean pages kept ready for first touches, zeroed by the fault helper
 * (_pmv_pool_fill) so that no fault waits for the kernel to zero one:
 * 2 MB of 4 KB pages, 8 MB of 2 MB pages (a 2 MB stream maps up to two
 * ahead, fault.c), refilled below half of that,
 * and never more than half the room the tier has left.
 */
#define FILL_4K		512
#define FILL_2M		4

static bool stack_push(void ***v, size_t *n, size_t *cap, void *x)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 256;
		void **nv = _pmv_krealloc(*v, ncap * sizeof(**v));

		if (!nv)
			return false;
		*v = nv;
		*cap = ncap;
	}
	(*v)[(*n)++] = x;
	return true;
}

/*
 * A hole back into the pool. The reserve is refilled first: it needs no
 * bookkeeping memory, and it is what keeps the fault handlers from needing
 * address space (see reserve_page()).
 */
static void set_reserve(struct _pmv_tier *t, struct _pmv_pool *p, void *slot)
{
	p->reserve = slot;
	if (p->reserve_out) {
		/* a handler may wait for it: see _pmv_pool_take_page */
		p->reserve_out = NULL;
		pthread_cond_broadcast(&t->reserve_cv);
	}
}

static bool push_hole(struct _pmv_tier *t, struct _pmv_pool *p, void *slot)
{
	if (!p->reserve) {
		set_reserve(t, p, slot);
		return true;
	}
	return stack_push(&p->holes, &p->nholes, &p->cap_holes, slot);
}

static size_t pool_pages(const struct _pmv_pool *p)
{
	return p->nclean + p->ndirty;
}

/*
 * What a tier holds: resident pages, the pool's pages, and the slots the
 * fault helper is populating right now (they hold memory already, or will
 * when its madvise returns; uncounted, a first touch meanwhile could take
 * the room they use and the tier hold more than its capacity).
 */
static size_t tier_used(const struct _pmv_tier *t)
{
	size_t used = 0;

	for (int ps = 0; ps < PMV_PS_NR; ps++)
		used += (t->resident[ps] + pool_pages(&t->pool[ps]) + t->pool[ps].nfilling) *
			_pmv_ps_size(ps);
	return used;
}

/*
 * A take that found no room while a fill is in flight waits for it (t->lock
 * held): the fill's slots come back as pool pages, or go back to the
 * kernel, and either way the room is the taker's then. Without the wait a
 * first touch on a nearly full bound tier would get SIGBUS for room that
 * is only in flight. The fill is one madvise of at most FILL_4K pages and
 * takes no lock meanwhile, so the wait is bounded. It waits for one fill
 * to end (false: none was in flight); the caller looks for room again.
 */
static bool wait_fill(struct _pmv_tier *t)
{
	if (!t->pool[PMV_PS_4K].nfilling && !t->pool[PMV_PS_2M].nfilling)
		return false;
	pthread_cond_wait(&t->fill_cv, &t->lock);
	return true;
}

static bool room_for(const struct _pmv_tier *t, size_t bytes)
{
	return !t->capacity || tier_used(t) + bytes <= t->capacity;
}

size_t _pmv_pool_slot_size(pmv_ctx *ctx, uintptr_t addr)
{
	for (unsigned i = 0; i < ctx->ntiers; i++) {
		struct _pmv_tier *t = &ctx->tiers[i];
		size_t found = 0;

		pthread_mutex_lock(&t->lock);
		for (int ps = 0; ps < PMV_PS_NR && !found; ps++)
			for (size_t c = 0; c < t->pool[ps].nchunks; c++) {
				uintptr_t b = (uintptr_t)t->pool[ps].chunks[c].base;

				if (addr >= b && addr < b + t->pool[ps].chunks[c].len) {
					found = _pmv_ps_size(ps);
					break;
				}
			}
		pthread_mutex_unlock(&t->lock);
		if (found)
			return found;
	}
	return 0;
}

static void tier_lock(struct _pmv_tier *t);

bool _pmv_tier_charge_room(struct _pmv_tier *t, int ps)
{
	bool ok;

	tier_lock(t);
	ok = room_for(t, _pmv_ps_size(ps));
	if (ok)
		t->resident[ps]++;
	pthread_mutex_unlock(&t->lock);
	return ok;
}

bool _pmv_tier_has_room(struct _pmv_tier *t, int ps)
{
	bool ok;

	pthread_mutex_lock(&t->lock);
	ok = pool_pages(&t->pool[ps]) || room_for(t, _pmv_ps_size(ps));
	pthread_mutex_unlock(&t->lock);
	return ok;
}

/*
 * Aligned anonymous VA, PROT_NONE and unlocked: nothing can populate it.
 * After mlockall(MCL_FUTURE) every new mapping is locked and populated in
 * full: a pool chunk's holes would all hold pages (a move into one fails),
 * a region would hold pages the library never placed, and the memory is
 * charged to no tier. mlock's population skips PROT_NONE, and munlock
 * (arm()) drops VM_LOCKED. Sets errno on failure.
 */
static void *map_va(size_t len, size_t align)
{
	size_t over = align > PMV_SIZE_4K ? len + align : len;
	char *p = mmap(NULL, over, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;
	int err;

	/*
	 * EAGAIN: mlockall(MCL_FUTURE) charged the new mapping to
	 * RLIMIT_MEMLOCK, though it would be unlocked at once. Unlock one
	 * page first and grow it: an unlocked mapping grows uncharged.
	 */
	if (p == MAP_FAILED && errno == EAGAIN) {
		p = mmap(NULL, PMV_SIZE_4K, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p != MAP_FAILED) {
			char *q = MAP_FAILED;

			if (!syscall(SYS_munlock, p, PMV_SIZE_4K))
				q = mremap(p, PMV_SIZE_4K, over, MREMAP_MAYMOVE);
			if (q == MAP_FAILED) {
				err = errno;
				munmap(p, PMV_SIZE_4K);
				errno = err;
			}
			p = q;
		}
	}
	if (p == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)p + align - 1) & ~(align - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	if ((uintptr_t)p + over > a + len)
		munmap((void *)(a + len), (uintptr_t)p + over - (a + len));
	if (syscall(SYS_munlock, a, len)) {
		err = errno;
		munmap((void *)a, len);
		errno = err;
		return NULL;
	}
	return (void *)a;
}

/*
 * Make [addr, addr+len) of map_va()'s VA writable without populating it.
 * The program may have locked it since (mlockall(MCL_CURRENT) locks
 * PROT_NONE mappings too, filling nothing), and mprotect populates a
 * locked mapping it makes writable: unlock first (a raw syscall, as
 * ASan's interceptor ignores munlock; a no-op when nothing is locked).
 */
static int arm(void *addr, size_t len)
{
	if (syscall(SYS_munlock, addr, len) || mprotect(addr, len, PROT_READ | PROT_WRITE))
		return -errno;
	return 0;
}

void *_pmv_map_anon(size_t len, size_t align)
{
	void *a = map_va(len, align);
	int err;

	if (a && arm(a, len)) {
		err = errno;
		munmap(a, len);
		errno = err;
		return NULL;
	}
	return a;
}

/*
 * ---- the program's mlock over the pools ----
 *
 * mlockall(MCL_CURRENT), or an mlock of a range that spans a pool, locks
 * the pool's chunks and populates their writable part: every hole then
 * holds a page. No event tells us. A hole must be empty (a move into it
 * fails with EEXIST), MADV_DONTNEED refuses a locked VMA (EINVAL), and
 * UFFDIO_MOVE refuses to move between a locked and an unlocked VMA
 * (EINVAL): left alone, failed moves would retire their slots with the
 * pages in them, new chunks would be mapped, and the next mlockall would
 * fill those too. The pools are ours: the rule is that they are never
 * locked and a hole never holds a page. Where a use finds otherwise (a
 * discard refused, a move into a hole refused), the library unlocks the
 * tier's chunks and empties every slot that must be empty: the holes, the
 * reserve, the retired slots (repair()). The program's own regions keep
 * their lock.
 */

/*
 * Does MADV_DONTNEED of a whole 2 MB range free its page table
 * (CONFIG_PT_RECLAIM)? Then a 2 MB hole that a failed move left pieces or
 * a page table in is whole again once discarded, and goes back to its
 * pool instead of being retired: without it, every such failure (an
 * exchange meeting the program's mlock or mprotect, say) leaked 2 MB of
 * VA for good. A kernel property, probed once per process: a page table
 * made by one small page, that page discarded, then a write fault under
 * MADV_HUGEPAGE must get a THP (PAGEMAP_SCAN says PAGE_IS_HUGE), which it
 * can only with a none PMD. No THP to be had, or no PAGEMAP_SCAN answer
 * no: holes are retired, as safe.
 */
static _Atomic int pt_reclaim_known;	/* 0 not probed, 1 no, 2 yes */

static bool probe_pt_reclaim(void)
{
	size_t len = 2 * PMV_SIZE_2M;
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct page_region r = { 0 };
	struct pm_scan_arg arg = { .size = sizeof(arg) };
	bool yes = false;
	char *a;
	int fd;

	if (m == MAP_FAILED)
		return false;
	/* made at the first 2 MB region: after a mlockall(MCL_FUTURE) maybe,
	 * whose lock would refuse the DONTNEED */
	munlock(m, len);
	a = (char *)(((uintptr_t)m + PMV_SIZE_2M - 1) & ~(uintptr_t)(PMV_SIZE_2M - 1));
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && !madvise(a, PMV_SIZE_2M, MADV_NOHUGEPAGE)) {
		*(volatile char *)a = 1;
		if (!madvise(a, PMV_SIZE_2M, MADV_DONTNEED) &&
		    !madvise(a, PMV_SIZE_2M, MADV_HUGEPAGE)) {
			*(volatile char *)a = 1;
			arg.start = (uintptr_t)a;
			arg.end = (uintptr_t)a + PMV_SIZE_2M;
			arg.vec = (uintptr_t)&r;
			arg.vec_len = 1;
			arg.category_mask = PAGE_IS_PRESENT;
			arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_HUGE;
			yes = ioctl(fd, PAGEMAP_SCAN, &arg) == 1 && (r.categories & PAGE_IS_HUGE) &&
			      r.start == (uintptr_t)a && r.end == (uintptr_t)a + PMV_SIZE_2M;
		}
	}
	if (fd >= 0)
		close(fd);
	munmap(m, len);
	return yes;
}

static bool pt_reclaim(void)
{
	int k = atomic_load_explicit(&pt_reclaim_known, memory_order_relaxed);

	/* two contexts probing at once agree: it is the kernel's answer */
	if (!k) {
		k = probe_pt_reclaim() ? 2 : 1;
		atomic_store_explicit(&pt_reclaim_known, k, memory_order_relaxed);
	}
	return k == 2;
}

/*
 * Probed at the first 2 MB region (pmv_mmap), not on the first failed
 * move: it faults in a THP, 2 MB zeroed, which a context of 4 KB regions
 * only (a short program under the preload) never needs.
 */
void _pmv_tier_probe_huge(void)
{
	pt_reclaim();
}

/* Give the pages of [slot, slot+len) back; true if the pool was locked. */
bool _pmv_pt_reclaim(void)
{
	return pt_reclaim();
}

/*
 * Pool fragmentation (issue 14). MADV_COLLAPSE of a 2 MB pool slot fails
 * when the node has no free 2 MB block. Then ask the kernel to compact the
 * node (nodeN/compact; /proc/sys/vm/compact_memory for a tier on no node),
 * where permitted (root), at most once per COMPACT_BACKOFF_NS a tier, and
 * try once more. Counted per tier: thp_fail, thp_compact, thp_compact_ok.
 * PAGEMOVE_INJECT_THP_FAIL=N[:K] (tests): every N-th first try fails (only
 * the first K such failures, if K is given).
 */
#define COMPACT_BACKOFF_NS	1000000000UL

static bool inject_thp_fail(void)
{
	static _Atomic int every = -1, limit = -1;
	static _Atomic unsigned count, failed;
	int n = atomic_load_explicit(&every, memory_order_relaxed);

	if (n < 0) {
		const char *e = getenv("PAGEMOVE_INJECT_THP_FAIL"), *k = e ? strchr(e, ':') : NULL;

		atomic_store_explicit(&limit, k ? atoi(k + 1) : -1, memory_order_relaxed);
		n = e ? atoi(e) : 0;
		atomic_store_explicit(&every, n, memory_order_relaxed);
	}
	if (n <= 0 || atomic_fetch_add(&count, 1) % (unsigned)n != (unsigned)n - 1)
		return false;
	return atomic_load(&limit) < 0 || atomic_fetch_add(&failed, 1) < (unsigned)atomic_load(&limit);
}

static bool compact_node(struct _pmv_tier *t)
{
	uint64_t now = _pmv_now_ns(), last = atomic_load(&t->compact_ns);
	char path[64];
	bool ok;
	int fd;

	if (last && now - last < COMPACT_BACKOFF_NS)
		return false;
	if (!atomic_compare_exchange_strong(&t->compact_ns, &last, now))
		return false;	/* another thread compacts it now */
	if (t->node >= 0)
		snprintf(path, sizeof(path), "/sys/devices/system/node/node%d/compact", t->node);
	else
		snprintf(path, sizeof(path), "/proc/sys/vm/compact_memory");
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return false;	/* not permitted: the 2 MB page fails as before */
	ok = write(fd, "1", 1) == 1;
	close(fd);
	if (ok)
		_pmv_stat_add(&t->thp_compact, 1);
	return ok;
}

/* A compaction of t's node would run now (not within the backoff). */
static bool compact_due(struct _pmv_tier *t)
{
	uint64_t last = atomic_load(&t->compact_ns);

	return !last || _pmv_now_ns() - last >= COMPACT_BACKOFF_NS;
}

/* After a failed collapse: compact the node and try again. 0 or -1. */
static int compact_and_retry(struct _pmv_tier *t, void *slot)
{
	if (!compact_node(t) || madvise(slot, PMV_SIZE_2M, MADV_COLLAPSE))
		return -1;
	_pmv_stat_add(&t->thp_compact_ok, 1);
	return 0;
}

/*
 * Make a populated 2 MB slot one THP: 0, or -1 (it keeps small pages).
 * Without may_compact (t->lock held) a failure does not compact: a node's
 * compaction takes tens of milliseconds or more, and every fault of the
 * tier would wait for the lock meanwhile.
 *
 * The populate nearly always faulted in a THP already, and MADV_COLLAPSE
 * is no cheap no-op then: it drains every CPU's LRU caches first, which
 * measured 12-68 us p50 and 0.7-3 ms p90 here, on the path of every first
 * touch or migration that grows the pool. A PAGEMAP_SCAN (2-4 us) tells.
 */
static int make_huge(pmv_ctx *ctx, struct _pmv_tier *t, void *slot, bool may_compact)
{
	if (!inject_thp_fail() && (_pmv_huge_mapped(ctx, (uintptr_t)slot) ||
				   !madvise(slot, PMV_SIZE_2M, MADV_COLLAPSE)))
		return 0;
	_pmv_stat_add(&t->thp_fail, 1);
	return may_compact ? compact_and_retry(t, slot) : -1;
}

/*
 * make_huge() for a slot popped from p's holes under t->lock: the
 * compaction runs with the lock dropped, the slot counted as filling
 * meanwhile (room taken, takers wait for it), unless the caller must not
 * wait (nowait) or a compaction ran within the backoff. The lock is held
 * again on return; the pool may have changed.
 */
static int make_huge_locked(pmv_ctx *ctx, struct _pmv_tier *t, struct _pmv_pool *p,
			    void *slot, bool may_compact)
{
	int ret;

	if (!make_huge(ctx, t, slot, false))
		return 0;
	if (!may_compact || !compact_due(t))
		return -1;
	p->nfilling++;
	pthread_mutex_unlock(&t->lock);
	ret = compact_and_retry(t, slot);
	tier_lock(t);
	p->nfilling--;
	pthread_cond_broadcast(&t->fill_cv);
	return ret;
}

static bool discard(void *slot, size_t len)
{
	if (!madvise(slot, len, MADV_DONTNEED) || errno != EINVAL)
		return false;
	/* VM_LOCKED: the slot must be emptied all the same (Linux 5.18) */
	madvise(slot, len, MADV_DONTNEED_LOCKED);
	return true;
}

/*
 * discard() inside tier.c, t->lock held or not: repair at t's next use.
 * The mark is a hint (relaxed): the repair itself runs under t->lock, and
 * a mark seen late only delays it by one use.
 */
static void tier_discard(struct _pmv_tier *t, void *slot, size_t len)
{
	if (discard(slot, len))
		atomic_store_explicit(&t->pools_locked, true, memory_order_relaxed);
}

/* An mlockall locks every tier's pools: each one repairs at its next use. */
static void mark_pools_locked(pmv_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->ntiers; i++)
		atomic_store_explicit(&ctx->tiers[i].pools_locked, true, memory_order_relaxed);
}

void _pmv_pool_discard(pmv_ctx *ctx, void *slot, size_t len)
{
	if (discard(slot, len))
		mark_pools_locked(ctx);
}

static int cmp_ptr(const void *a, const void *b);

/*
 * Empty the slots of p that must be empty and hold pages: every hole,
 * the reserve and the retired slots, found by mincore() a chunk at a
 * time, given back in runs. A 2 MB hole that mlock filled with small
 * pages (no THP to be had) would keep a page table after the discard,
 * and split every huge page moved through it: MADV_COLLAPSE first (a
 * no-op on a PMD-mapped THP, and the zap of a THP frees its table too);
 * a hole that cannot be collapsed is retired. With PT_RECLAIM the discard
 * frees the table: no collapse. t->lock held.
 */
static void sweep(struct _pmv_pool *p)
{
	size_t psz = _pmv_ps_size(p->ps), n = 0, k = 0;
	size_t total = p->nholes + p->nretired + 1;
	void **cand = _pmv_kcalloc(total, sizeof(*cand));
	bool *bad = _pmv_kcalloc(total, sizeof(*bad));

	if (!cand || !bad) {
		_pmv_kfree(cand);
		_pmv_kfree(bad);
		return;
	}
	for (size_t c = 0; c < p->nchunks; c++) {
		uintptr_t b = (uintptr_t)p->chunks[c].base;
		size_t armed = p->chunks[c].armed;
		unsigned char *vec = _pmv_kalloc(armed / PMV_SIZE_4K);

		if (!vec)
			continue;
		if (armed && mincore((void *)b, armed, vec)) {
			_pmv_kfree(vec);
			continue;
		}
		for (size_t i = 0; i < total; i++) {
			uintptr_t s = (uintptr_t)(i < p->nholes ? p->holes[i] :
				      i < p->nholes + p->nretired ? p->retired[i - p->nholes] :
				      p->reserve);
			bool res = false;

			if (!s || s < b || s >= b + armed)
				continue;
			for (size_t o = 0; o < psz && !res; o += PMV_SIZE_4K)
				res = vec[(s - b + o) / PMV_SIZE_4K] & 1;
			if (!res)
				continue;
			/* only holes are moved into: the others need no collapse */
			if (p->ps == PMV_PS_2M && i < p->nholes && !pt_reclaim() &&
			    madvise((void *)s, psz, MADV_COLLAPSE))
				bad[i] = true;
			cand[n++] = (void *)s;
		}
		_pmv_kfree(vec);
	}
	/* a hole that keeps small pages' table: retired (lost VA without memory) */
	for (size_t i = 0; i < p->nholes; i++) {
		if (!bad[i])
			p->holes[k++] = p->holes[i];
		else
			stack_push(&p->retired, &p->nretired, &p->cap_retired, p->holes[i]);
	}
	p->nholes = k;
	_pmv_sort(cand, n, sizeof(*cand), cmp_ptr);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && (char *)cand[j] == (char *)cand[i] + (j - i) * psz; j++)
			;
		discard(cand[i], (j - i) * psz);
	}
	_pmv_kfree(cand);
	_pmv_kfree(bad);
}

/*
 * Unlock every chunk of t's pools (VA we reserved: nobody else maps
 * there) and empty what must be empty. The pages in pool pages' slots,
 * and in slots out of the pool (a migration's, a parked page's, the
 * fault helper's), are left as they are. t->lock held.
 */
static void repair(struct _pmv_tier *t)
{
	atomic_store_explicit(&t->pools_locked, false, memory_order_relaxed);
	for (int ps = 0; ps < PMV_PS_NR; ps++) {
		struct _pmv_pool *p = &t->pool[ps];

		for (size_t c = 0; c < p->nchunks; c++)
			syscall(SYS_munlock, p->chunks[c].base, p->chunks[c].len);
		sweep(p);
	}
}

/* Take t->lock, repairing the pools first if a discard found them locked. */
static void tier_lock(struct _pmv_tier *t)
{
	pthread_mutex_lock(&t->lock);
	if (atomic_load_explicit(&t->pools_locked, memory_order_relaxed))
		repair(t);
}

/*
 * PMV_MOVE_NONBLOCK's tier_lock: the lock is a leaf held briefly, except
 * by a pool growth populating pages under it, which a non-blocking mover
 * must not wait for. A few tries, no sleep.
 */
static bool tier_trylock(struct _pmv_tier *t)
{
	for (int i = 0; i < 64; i++) {
		if (!pthread_mutex_trylock(&t->lock)) {
			if (atomic_load_explicit(&t->pools_locked, memory_order_relaxed))
				repair(t);
			return true;
		}
	}
	return false;
}

/* Any 4 KB piece of [a, a+len) resident? */
static bool resident(void *a, size_t len)
{
	size_t n = len / PMV_SIZE_4K;
	unsigned char vec[512];

	for (size_t i = 0; i < n; i += 512) {
		size_t k = n - i < 512 ? n - i : 512;

		if (mincore((char *)a + i * PMV_SIZE_4K, k * PMV_SIZE_4K, vec))
			return false;
		for (size_t j = 0; j < k; j++)
			if (vec[j] & 1)
				return true;
	}
	return false;
}

/*
 * Before a hole is populated: one that holds memory already was filled by
 * an mlock, with no refusal to tell (a populate over it succeeds, and the
 * page it finds is as good as a fresh one). The same mlock filled the
 * other holes and the retired slots of every tier, which nothing but a
 * repair empties: without this, an mlock that ended between two repairs
 * (an mlock and munlock with no move between, a populate that ran after
 * the repair's munlock) left them filled for good. `held` (t->lock held,
 * or NULL) and every tier free now repair at once; a busy one is marked,
 * and repairs at its next use (a trylock: tier locks never nest, but
 * one that does not wait cannot deadlock). One mincore per run, next to
 * the populate's zeroing of it.
 */
static void check_hole(pmv_ctx *ctx, struct _pmv_tier *held, void *slot, size_t len)
{
	if (!resident(slot, len))
		return;
	mark_pools_locked(ctx);
	for (unsigned i = 0; i < ctx->ntiers; i++) {
		struct _pmv_tier *u = &ctx->tiers[i];

		if (u == held) {
			repair(u);
		} else if (!pthread_mutex_trylock(&u->lock)) {
			if (atomic_load_explicit(&u->pools_locked, memory_order_relaxed))
				repair(u);
			pthread_mutex_unlock(&u->lock);
		}
	}
}

bool _pmv_pool_refused(pmv_ctx *ctx, void *hole, size_t len, int err)
{
	size_t psz = _pmv_pool_slot_size(ctx, (uintptr_t)hole);

	if (!psz)
		return false;
	if (err == -EINVAL) {
		/* an empty hole answers MADV_DONTNEED with EINVAL only when locked */
		if (!madvise(hole, len, MADV_DONTNEED) || errno != EINVAL)
			return false;
	} else if (err != -EEXIST || !resident(hole, len)) {
		return false;
	}
	for (unsigned i = 0; i < ctx->ntiers; i++) {
		pthread_mutex_lock(&ctx->tiers[i].lock);
		repair(&ctx->tiers[i]);
		pthread_mutex_unlock(&ctx->tiers[i].lock);
	}
	/* the caller's holes were out of the pool: empty them too, as sweep() */
	for (size_t off = 0; psz == PMV_SIZE_2M && off < len; off += psz)
		if (resident((char *)hole + off, psz) &&
		    madvise((char *)hole + off, psz, MADV_COLLAPSE))
			return false;
	_pmv_pool_discard(ctx, hole, len);
	return true;
}

/* Bind [addr, addr+len) to the tier's node: pages faulted there land on it. */
static int bind_to_node(struct _pmv_tier *t, void *addr, size_t len)
{
	unsigned long mask[16] = { 0 };	/* 1024 nodes */

	if (t->node < 0)
		return 0;
	mask[t->node / (8 * sizeof(long))] |= 1UL << (t->node % (8 * sizeof(long)));
	if (mbind(addr, len, MPOL_BIND, mask, sizeof(mask) * 8, 0))
		return -errno;
	return 0;
}

/*
 * Make up to `want` more slots of the newest chunk with unarmed VA
 * writable, a step at least, and push them as holes (high to low, so that
 * pops hand out ascending addresses). -ENOMEM if no chunk has VA left.
 * Called with t->lock held.
 */
static int arm_more(struct _pmv_pool *p, size_t want)
{
	size_t psz = _pmv_ps_size(p->ps);
	size_t step = p->ps == PMV_PS_2M ? POOL_ARM_2M : POOL_ARM_4K;

	for (size_t c = p->nchunks; c-- > 0;) {
		char *base = p->chunks[c].base;
		size_t armed = p->chunks[c].armed, len = want * psz;

		if (armed == p->chunks[c].len)
			continue;
		len = (len + step - 1) / step * step;
		if (len > p->chunks[c].len - armed)
			len = p->chunks[c].len - armed;
		if (arm(base + armed, len))
			return -ENOMEM;
		p->chunks[c].armed += len;
		for (size_t off = armed + len; off > armed; off -= psz)
			if (!stack_push(&p->holes, &p->nholes, &p->cap_holes, base + off - psz))
				break;	/* holes already pushed stay valid; the rest is just VA */
		return 0;
	}
	return -ENOMEM;
}

/* Add a chunk of holes. Called with t->lock held. */
static int pool_add_chunk(pmv_ctx *ctx, struct _pmv_tier *t, struct _pmv_pool *p)
{
	size_t psz = _pmv_ps_size(p->ps);
	size_t len = p->ps == PMV_PS_2M ? POOL_CHUNK_2M : POOL_CHUNK_4K;
	bool short_va = false;
	void *base, *nc;
	int ret;

	nc = _pmv_krealloc(p->chunks, (p->nchunks + 1) * sizeof(*p->chunks));
	if (!nc)
		return -ENOMEM;
	p->chunks = nc;
	/*
	 * Under RLIMIT_AS the full chunk may not fit where a smaller one
	 * does, and a first touch needs only one slot.
	 */
	while (!(base = map_va(len, psz))) {
		if (errno != ENOMEM || len / 2 < POOL_CHUNK_MIN * psz)
			return -ENOMEM;
		len /= 2;
		short_va = true;
	}
	/*
	 * Keep half of the largest chunk that fit: whatever VA is left is at
	 * least as much as the chunk takes, for the program and for the other
	 * tiers' pools. Taking all of it, a pmv_mmap that reserves several
	 * tiers failed under some limits where it passed under smaller ones.
	 */
	if (short_va && len / 2 >= POOL_CHUNK_MIN * psz) {
		munmap((char *)base + len / 2, len / 2);
		len /= 2;
	}
	/*
	 * 4 KB pools must never get a THP (moving a piece of one splits it);
	 * 2 MB pools want one per slot. Pools are not inherited by fork: a
	 * child's copy would COW-share our free pages and make them unmovable.
	 * All of it while PROT_NONE: the VMAs that arm() makes writable later
	 * inherit it, and merge with the writable part before them.
	 */
	if (madvise(base, len, p->ps == PMV_PS_2M ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) ||
	    madvise(base, len, MADV_DONTFORK)) {
		ret = -errno;
		goto fail;
	}
	ret = bind_to_node(t, base, len);
	if (ret)
		goto fail;
	ret = _pmv_uffd_register(ctx, base, len, false);
	if (ret)
		goto fail;
	p->chunks[p->nchunks].base = base;
	p->chunks[p->nchunks].len = len;
	p->chunks[p->nchunks].armed = 0;
	p->nchunks++;
	ret = arm_more(p, 1);
	if (ret) {
		p->nchunks--;
		goto fail;
	}
	if (!p->reserve && p->nholes)
		set_reserve(t, p, p->holes[--p->nholes]);
	return 0;
fail:
	munmap(base, len);
	return ret;
}

static void *pop_hole(pmv_ctx *ctx, struct _pmv_tier *t, struct _pmv_pool *p)
{
	if (!p->nholes && arm_more(p, 1) && pool_add_chunk(ctx, t, p))
		return NULL;
	if (!p->nholes)
		return NULL;	/* a reserve took the only one */
	return p->holes[--p->nholes];
}

/*
 * Free pool pages of the other size are free memory of the tier: give them
 * back to the kernel when a page of this size needs their room. Called
 * with t->lock held.
 */
static void make_room(struct _pmv_tier *t, int ps)
{
	struct _pmv_pool *o = &t->pool[!ps];
	size_t need = _pmv_ps_size(ps);

	while (t->capacity && !room_for(t, need) && pool_pages(o)) {
		void *slot = o->ndirty ? o->dirty[--o->ndirty] : o->clean[--o->nclean];

		tier_discard(t, slot, _pmv_ps_size(o->ps));
		if (!push_hole(t, o, slot))
			break;	/* the slot is lost VA; the page is freed */
	}
}

/* How many slots from slot[i] on are neighbours, psz apart (sorted slots). */
static size_t run_len(void *const *slot, size_t i, size_t n, size_t psz)
{
	size_t k = 1;

	while (i + k < n && (char *)slot[i + k] == (char *)slot[i] + k * psz)
		k++;
	return k;
}

/*
 * Populate up to POOL_GROW_4K holes at once, each run of neighbours in one
 * madvise: one call per page made a first touch's growth 64 system calls
 * (python3 -c pass under pagemove run). A run that fails goes a page at a
 * time, up to the first page that fails; that one and the rest go back to
 * the holes, emptied. Returns the pages added; t->lock held.
 */
static size_t grow_4k(pmv_ctx *ctx, struct _pmv_tier *t, struct _pmv_pool *p, size_t want)
{
	void *slot[POOL_GROW_4K];
	size_t n = 0, filled = 0, got = 0;

	while (n < want && n < POOL_GROW_4K && room_for(t, (n + 1) * PMV_SIZE_4K) &&
	       (slot[n] = pop_hole(ctx, t, p)))
		n++;
	_pmv_sort(slot, n, sizeof(*slot), cmp_ptr);
	/* slot[0, filled) hold pages */
	while (filled < n) {
		size_t k = run_len(slot, filled, n, PMV_SIZE_4K);

		check_hole(ctx, t, slot[filled], k * PMV_SIZE_4K);
		if (madvise(slot[filled], k * PMV_SIZE_4K, MADV_POPULATE_WRITE)) {
			/* it may have filled part of the run: find the page that fails */
			while (filled < n && !madvise(slot[filled], PMV_SIZE_4K, MADV_POPULATE_WRITE))
				filled++;
			break;
		}
		filled += k;
	}
	while (got < filled && stack_push(&p->clean, &p->nclean, &p->cap_clean, slot[got]))
		got++;
	/* a hole must be empty */
	for (size_t i = got; i < n; i++) {
		tier_discard(t, slot[i], PMV_SIZE_4K);
		stack_push(&p->holes, &p->nholes, &p->cap_holes, slot[i]);	/* else lost VA */
	}
	return got;
}

/*
 * Populate up to `want` holes with fresh zeroed pages on the node. Called
 * with t->lock held, which a node compaction (may_compact) drops for its
 * time; the pool VMAs have no MISSING registration, so these faults are
 * served by the kernel, not by our fault handlers.
 */
static int pool_grow(pmv_ctx *ctx, struct _pmv_tier *t, struct _pmv_pool *p,
		     size_t want, bool may_compact)
{
	size_t psz = _pmv_ps_size(p->ps);
	size_t got = 0, retired = 0;

	make_room(t, p->ps);
	if (p->ps == PMV_PS_4K) {
		for (size_t more = 1; got < want && more; got += more)
			more = grow_4k(ctx, t, p, want - got);
		return got ? 0 : -ENOMEM;
	}
	while (got < want && room_for(t, psz)) {
		void *slot = pop_hole(ctx, t, p);

		if (!slot)
			break;
		check_hole(ctx, t, slot, psz);
		if (madvise(slot, psz, MADV_POPULATE_WRITE)) {
			/* it may have filled part of the slot: a hole must be empty */
			tier_discard(t, slot, psz);
			p->holes[p->nholes++] = slot;	/* cannot fail: just popped */
			break;
		}
		/*
		 * A 2 MB slot must hold a THP, or moving it into a region would
		 * map 512 small pages. MADV_COLLAPSE is a no-op on a PMD-mapped
		 * THP and repairs a slot the fault filled with small pages.
		 */
		if (p->ps == PMV_PS_2M && make_huge_locked(ctx, t, p, slot, may_compact)) {
			tier_discard(t, slot, psz);
			/*
			 * The slot keeps a page table now: retire it, VA is
			 * cheap. A collapse fails transiently (EAGAIN) too, so
			 * one failure must not fail the migration: try a few
			 * other slots first.
			 */
			stack_push(&p->retired, &p->nretired, &p->cap_retired, slot);
			if (++retired == 4)
				break;
			continue;
		}
		if (!stack_push(&p->clean, &p->nclean, &p->cap_clean, slot)) {
			tier_discard(t, slot, psz);
			p->holes[p->nholes++] = slot;
			break;
		}
		got++;
	}
	return got ? 0 : -ENOMEM;
}

/*
 * The fault handlers' last resort, when the pool has neither pages nor
 * holes (parked pages and migrations hold its slots) and no address space
 * is left for a chunk: the reserve hole, populated and handed out without
 * any bookkeeping to grow. A first touch gives its slot back as a hole at
 * once, which refills the reserve, so one is enough: a second handler
 * that needs it meanwhile waits for it (_pmv_pool_take_page). A migration
 * can fail a page with -ENOMEM, a first touch only with SIGBUS: nobody
 * else takes it. Called with t->lock held.
 */
static void *reserve_page(pmv_ctx *ctx, struct _pmv_tier *t, struct _pmv_pool *p)
{
	size_t psz = _pmv_ps_size(p->ps);
	void *slot = p->reserve;

	if (!slot || !room_for(t, psz))
		return NULL;
	check_hole(ctx, t, slot, psz);
	if (madvise(slot, psz, MADV_POPULATE_WRITE) ||
	    (p->ps == PMV_PS_2M && make_huge(ctx, t, slot, false))) {
		/* kept: it is only ever populated and collapsed, never moved into */
		tier_discard(t, slot, psz);
		return NULL;
	}
	p->reserve = NULL;
	p->reserve_out = slot;
	return slot;
}

/* A first touch holds the reserve for one move: never more than this. */
#define RESERVE_WAIT_NS	100000000L

void *_pmv_pool_take_page(pmv_ctx *ctx, struct _pmv_tier *t, int ps,
			  bool want_clean, bool *clean)
{
	struct _pmv_pool *p = &t->pool[ps];
	void *slot = NULL;

	tier_lock(t);
	if (!pool_pages(p)) {
		pool_grow(ctx, t, p, ps == PMV_PS_2M ? 1 : POOL_GROW_4K, true);
		while (!pool_pages(p) && wait_fill(t))
			if (!pool_pages(p))
				pool_grow(ctx, t, p, ps == PMV_PS_2M ? 1 : POOL_GROW_4K, true);
		if (!pool_pages(p) && _pmv_is_fault_thread()) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += RESERVE_WAIT_NS;
			until.tv_sec += until.tv_nsec / 1000000000L;
			until.tv_nsec %= 1000000000L;
			slot = reserve_page(ctx, t, p);
			/* another handler has it, for one move: its hole comes back */
			while (!slot && p->reserve_out && !pool_pages(p) &&
			       !pthread_cond_timedwait(&t->reserve_cv, &t->lock, &until))
				slot = reserve_page(ctx, t, p);
		}
	}
	if (slot) {
		*clean = true;	/* the reserve, just populated */
	} else if (want_clean ? p->nclean : !p->ndirty && p->nclean) {
		slot = p->clean[--p->nclean];
		*clean = true;
	} else if (p->ndirty) {
		slot = p->dirty[--p->ndirty];
		*clean = false;
	} else if (p->nclean) {
		slot = p->clean[--p->nclean];
		*clean = true;
	}
	if (slot)
		t->resident[ps]++;
	pthread_mutex_unlock(&t->lock);
	return slot;
}

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Take up to n pages at once (one lock round trip), sorted by address so
 * that runs of slots are contiguous and their moves coalesce. Dirty pages
 * first: a migration overwrites them anyway. Returns how many were taken.
 */
size_t _pmv_pool_take_pages(pmv_ctx *ctx, struct _pmv_tier *t, int ps, size_t n,
			    void **out)
{
	return _pmv_pool_take_pages_nb(ctx, t, ps, n, out, false, NULL);
}

size_t _pmv_pool_take_pages_nb(pmv_ctx *ctx, struct _pmv_tier *t, int ps, size_t n,
			       void **out, bool nowait, bool *busy)
{
	struct _pmv_pool *p = &t->pool[ps];
	size_t got = 0;

	if (busy)
		*busy = false;
	if (!nowait) {
		tier_lock(t);
	} else if (!tier_trylock(t)) {
		*busy = true;
		return 0;
	}
	for (bool again = true; pool_pages(p) < n && again;) {
		size_t want = n - pool_pages(p);

		if (ps == PMV_PS_4K && want < POOL_GROW_4K)
			want = POOL_GROW_4K;
		pool_grow(ctx, t, p, want, !nowait);
		/* a fill in flight may bring pages: nowait does not wait for it */
		again = pool_pages(p) < n && !nowait && wait_fill(t);
		if (nowait && pool_pages(p) < n && p->nfilling)
			*busy = true;
	}
	while (got < n && p->ndirty)
		out[got++] = p->dirty[--p->ndirty];
	while (got < n && p->nclean)
		out[got++] = p->clean[--p->nclean];
	t->resident[ps] += got;
	pthread_mutex_unlock(&t->lock);
	_pmv_sort(out, got, sizeof(*out), cmp_ptr);
	return got;
}

size_t _pmv_pool_take_holes(pmv_ctx *ctx, struct _pmv_tier *t, int ps, size_t n,
			    void **out)
{
	return _pmv_pool_take_holes_nb(ctx, t, ps, n, out, false, NULL);
}

size_t _pmv_pool_take_holes_nb(pmv_ctx *ctx, struct _pmv_tier *t, int ps, size_t n,
			       void **out, bool nowait, bool *busy)
{
	struct _pmv_pool *p = &t->pool[ps];
	size_t got = 0;

	if (busy)
		*busy = false;
	if (!nowait) {
		tier_lock(t);
	} else if (!tier_trylock(t)) {
		*busy = true;
		return 0;
	}
	while (got < n) {
		void *h = pop_hole(ctx, t, p);

		if (!h)
			break;
		out[got++] = h;
	}
	pthread_mutex_unlock(&t->lock);
	_pmv_sort(out, got, sizeof(*out), cmp_ptr);
	return got;
}

/*
 * Map-ahead (fault.c): up to n clean pages, only those zeroed already. No
 * growth, no wait for a fill, no reserve: the fault was answered, and
 * what follows it must stay cheap. Of 4 KB pages at least AHEAD_KEEP stay
 * for the first touches that come next, whose inline growth is the slow
 * path; of 2 MB pages none (the fill keeps a few: keeping half left the
 * stream nothing to take, and its next fault costs the kernel's wasted
 * THP zeroing whatever the pool holds). Taken from the top of the clean
 * stack, which the fill pushed in address order, so out[] usually is one
 * ascending run (one move).
 */
#define AHEAD_KEEP(ps)	((ps) == PMV_PS_2M ? 0 : FILL_4K / 2)

size_t _pmv_pool_take_clean(struct _pmv_tier *t, int ps, size_t n, void **out)
{
	struct _pmv_pool *p = &t->pool[ps];
	size_t k;

	tier_lock(t);
	k = p->nclean > AHEAD_KEEP(ps) ? p->nclean - AHEAD_KEEP(ps) : 0;
	if (k > n)
		k = n;
	p->nclean -= k;
	memcpy(out, p->clean + p->nclean, k * sizeof(*out));
	t->resident[ps] += k;
	pthread_mutex_unlock(&t->lock);
	return k;
}

void _pmv_pool_put_holes(struct _pmv_tier *t, int ps, void *const *slot, size_t n)
{
	struct _pmv_pool *p = &t->pool[ps];

	pthread_mutex_lock(&t->lock);
	/* high to low, so that pops (the fill's) hand them out ascending */
	for (size_t i = n; i-- > 0;)
		push_hole(t, p, slot[i]);
	pthread_mutex_unlock(&t->lock);
}

void _pmv_pool_put_page(struct _pmv_tier *t, int ps, void *slot, bool clean)
{
	struct _pmv_pool *p = &t->pool[ps];
	bool ok;

	pthread_mutex_lock(&t->lock);
	t->resident[ps]--;
	if (clean)
		ok = stack_push(&p->clean, &p->nclean, &p->cap_clean, slot);
	else
		ok = stack_push(&p->dirty, &p->ndirty, &p->cap_dirty, slot);
	if (!ok) {
		/* No memory for bookkeeping: give the page back to the kernel. */
		tier_discard(t, slot, _pmv_ps_size(ps));
	}
	if (p->reserve_out) {
		/*
		 * A handler may wait for the reserve (_pmv_pool_take_page),
		 * and the pool has a page for it now. If this is the reserve
		 * itself, back as a page (its first touch moved nothing in),
		 * it is not out any more: the next hole refills the reserve.
		 * Else the waiters slept their 100 ms holding a page lock.
		 */
		if (slot == p->reserve_out)
			p->reserve_out = NULL;
		pthread_cond_broadcast(&t->reserve_cv);
	}
	pthread_mutex_unlock(&t->lock);
}

void *_pmv_pool_take_hole(pmv_ctx *ctx, struct _pmv_tier *t, int ps)
{
	void *slot;

	tier_lock(t);
	slot = pop_hole(ctx, t, &t->pool[ps]);
	pthread_mutex_unlock(&t->lock);
	return slot;
}

int _pmv_pool_reserve(pmv_ctx *ctx, struct _pmv_tier *t, int ps)
{
	struct _pmv_pool *p = &t->pool[ps];
	int ret = 0;

	if (t->store)
		return 0;	/* a far tier: no first touch, no pool */
	tier_lock(t);
	if (!p->reserve) {
		if (p->nholes)
			set_reserve(t, p, p->holes[--p->nholes]);
		else
			ret = pool_add_chunk(ctx, t, p);
	}
	pthread_mutex_unlock(&t->lock);
	return ret;
}

void _pmv_pool_put_hole(struct _pmv_tier *t, int ps, void *slot)
{
	struct _pmv_pool *p = &t->pool[ps];

	pthread_mutex_lock(&t->lock);
	/*
	 * Not a plain store: while the hole was out, a trim may have pushed
	 * other holes and filled the array. Without memory, the slot is lost
	 * VA, which is harmless.
	 */
	push_hole(t, p, slot);
	pthread_mutex_unlock(&t->lock);
}

void _pmv_pool_retire(struct _pmv_tier *t, int ps, void *slot)
{
	struct _pmv_pool *p = &t->pool[ps];

	/* discarded, so with PT_RECLAIM whole again: no VA lost */
	if (ps == PMV_PS_2M && pt_reclaim()) {
		_pmv_pool_put_hole(t, ps, slot);
		return;
	}
	pthread_mutex_lock(&t->lock);
	/* without memory for it, the slot is lost VA */
	stack_push(&p->retired, &p->nretired, &p->cap_retired, slot);
	pthread_mutex_unlock(&t->lock);
}

bool _pmv_tier_take_room(struct _pmv_tier *t, int ps)
{
	bool ok;

	if (t->node != PMV_NODE_ANY && numa_max_node() > 0)
		return false;	/* the kernel's page would be on its own choice of node */
	pthread_mutex_lock(&t->lock);
	ok = room_for(t, _pmv_ps_size(ps));
	if (ok)
		t->resident[ps]++;
	pthread_mutex_unlock(&t->lock);
	return ok;
}

size_t _pmv_tier_room(struct _pmv_tier *t)
{
	size_t used = 0;

	if (!t->capacity)
		return SIZE_MAX;
	/*
	 * Pool pages are room: a fault-in takes one. Counted as used, the
	 * fill helper's clean pages took the room the demoter made, and it
	 * evicted the whole tier into the pool (t_far's
	 * test_demoter_keeps_a_margin, under ASan).
	 */
	pthread_mutex_lock(&t->lock);
	for (int ps = 0; ps < PMV_PS_NR; ps++)
		used += t->resident[ps] * _pmv_ps_size(ps);
	pthread_mutex_unlock(&t->lock);
	return used < t->capacity ? t->capacity - used : 0;
}

void _pmv_tier_charge(struct _pmv_tier *t, int ps, size_t n)
{
	pthread_mutex_lock(&t->lock);
	t->resident[ps] += n;
	pthread_mutex_unlock(&t->lock);
}

void _pmv_tier_uncharge(struct _pmv_tier *t, int ps, size_t n)
{
	pthread_mutex_lock(&t->lock);
	t->resident[ps] -= n;
	pthread_mutex_unlock(&t->lock);
}

static size_t fill_target(int ps)
{
	return ps == PMV_PS_2M ? FILL_2M : FILL_4K;
}

/*
 * A fill that failed (no THP to be had, no memory) waits this long: a 2 MB
 * slot that failed keeps a page table and is retired, so failing fills
 * must not eat the pool's VA. First touches grow the pool meanwhile.
 */
#define FILL_BACKOFF_NS	1000000000UL

/* How many pages the fill may add now: t->lock held. */
static size_t fill_room(const struct _pmv_tier *t, const struct _pmv_pool *p)
{
	size_t psz = _pmv_ps_size(p->ps), want, used = tier_used(t);

	if (p->nclean + p->nfilling >= fill_target(p->ps) ||
	    (p->fill_failed_ns && _pmv_now_ns() - p->fill_failed_ns < FILL_BACKOFF_NS))
		return 0;
	want = fill_target(p->ps) - p->nclean - p->nfilling;
	if (t->capacity) {
		/* half the free room: a first touch must find room without us */
		size_t half = used < t->capacity ? (t->capacity - used) / psz / 2 : 0;

		if (want > half)
			want = half;
	}
	return want < p->nholes ? want : p->nholes;
}

bool _pmv_pool_wants_fill(struct _pmv_tier *t, int ps)
{
	struct _pmv_pool *p = &t->pool[ps];
	bool want;

	pthread_mutex_lock(&t->lock);
	want = p->nclean + p->nfilling < (fill_target(ps) + 1) / 2 && fill_room(t, p);
	pthread_mutex_unlock(&t->lock);
	return want;
}

/*
 * Bring the clean pages up to the fill target. The slots are taken from
 * the holes the pool has (never a new chunk: under RLIMIT_AS, VA is for
 * the program and for moves), populated without t->lock held (the kernel
 * zeroes them: a first touch must not wait for that lock meanwhile),
 * neighbours in one madvise. Meanwhile they count as used (nfilling, in
 * tier_used), so first touches see the room they take, and wait for it
 * (wait_fill) when they find none; if the tier filled up all the same (the
 * program's own moves), they go back to the kernel.
 */
void _pmv_pool_fill(pmv_ctx *ctx, struct _pmv_tier *t, int ps)
{
	struct _pmv_pool *p = &t->pool[ps];
	size_t psz = _pmv_ps_size(ps), n;
	void *slot[FILL_4K];
	bool ok[FILL_4K];

	tier_lock(t);
	n = fill_room(t, p);
	for (size_t i = 0; i < n; i++)
		slot[i] = p->holes[--p->nholes];
	p->nfilling += n;
	pthread_mutex_unlock(&t->lock);
	if (!n)
		return;
	/* popped in ascending order, mostly neighbours */
	for (size_t i = 0; i < n;) {
		size_t k = run_len(slot, i, n, psz);
		bool good;

		check_hole(ctx, NULL, slot[i], k * psz);
		good = !madvise(slot[i], k * psz, MADV_POPULATE_WRITE);

		for (size_t j = i; j < i + k; j++)
			ok[j] = good && (ps != PMV_PS_2M || !make_huge(ctx, t, slot[j], true));
		i += k;
	}
	pthread_mutex_lock(&t->lock);
	p->nfilling -= n;
	pthread_cond_broadcast(&t->fill_cv);	/* woken takers retake the lock after us */
	for (size_t i = 0; i < n; i++)
		if (!ok[i])
			p->fill_failed_ns = _pmv_now_ns();
	for (size_t i = 0; i < n; i++) {
		if (ok[i] && room_for(t, psz) &&
		    stack_push(&p->clean, &p->nclean, &p->cap_clean, slot[i]))
			continue;
		/* a hole must be empty; a 2 MB one that failed keeps a page table: retire it */
		tier_discard(t, slot[i], psz);
		/* others pushed holes meanwhile: this may need room; without, lost VA */
		if (ps != PMV_PS_2M || ok[i])
			stack_push(&p->holes, &p->nholes, &p->cap_holes, slot[i]);
		else
			stack_push(&p->retired, &p->nretired, &p->cap_retired, slot[i]);
	}
	pthread_mutex_unlock(&t->lock);
}

void _pmv_pool_trim(pmv_ctx *ctx, struct _pmv_tier *t, bool nowait)
{
	(void)ctx;
	if (!nowait)
		tier_lock(t);
	else if (!tier_trylock(t))
		return;		/* a later move trims */
	for (int ps = 0; ps < PMV_PS_NR; ps++) {
		struct _pmv_pool *p = &t->pool[ps];

		while (pool_pages(p) > p->high) {
			void *slot = p->ndirty ? p->dirty[--p->ndirty]
					       : p->clean[--p->nclean];

			tier_discard(t, slot, _pmv_ps_size(ps));
			if (!push_hole(t, p, slot))
				break;	/* the slot is lost VA; the page is freed */
		}
	}
	pthread_mutex_unlock(&t->lock);
}

static int check_node(int idx, int node)
{
	long long size;

	if (node == PMV_NODE_ANY)
		return 0;
	if (node < 0)
		return _pmv_set_errmsg(-EINVAL, "tier %d: bad node %d", idx, node);
	if (numa_available() < 0) {
		if (node == 0)
			return 0;
		return _pmv_set_errmsg(-ENODEV,
				       "tier %d: node %d does not exist (no NUMA support)", idx, node);
	}
	if (node > numa_max_node() || !numa_bitmask_isbitset(numa_all_nodes_ptr, node))
		return _pmv_set_errmsg(-ENODEV, "tier %d: node %d does not exist", idx, node);
	size = numa_node_size64(node, NULL);
	if (size <= 0)
		return _pmv_set_errmsg(-ENODEV, "tier %d: node %d has no memory", idx, node);
	return 0;
}

int _pmv_tiers_check(const struct pmv_tier_config *tc, unsigned n, unsigned *bad,
		     char *why, size_t len)
{
	unsigned nmem = 0;

	for (unsigned i = 0; i < n; i++) {
		*bad = i;
		if (tc[i].kind < 0 || tc[i].kind >= PMV_TIER_KIND_NR) {
			snprintf(why, len, "unknown kind %d", tc[i].kind);
			return -EINVAL;
		}
		if (tc[i].kind == PMV_TIER_MEM) {
			/*
			 * Fastest first, and a page faulted back from a far tier
			 * must land on a memory tier: far ones after them all.
			 */
			if (nmem < i) {
				snprintf(why, len, "a memory tier after far tier %u (far tiers "
					 "come after every memory tier)", nmem);
				return -EINVAL;
			}
			if (tc[i].level || tc[i].path) {
				snprintf(why, len, "a memory tier has no level nor path");
				return -EINVAL;
			}
			nmem++;
			continue;
		}
		if (tc[i].node != PMV_NODE_ANY) {
			snprintf(why, len, "a %s tier has no node (give PMV_NODE_ANY)",
				 _pmv_tier_kind_name(tc[i].kind));
			return -EINVAL;
		}
		if (_pmv_store_config_check(&tc[i], why, len))
			return -EINVAL;
	}
	if (n && !nmem) {
		*bad = 0;
		snprintf(why, len, "no memory tier (tier 0 must be memory)");
		return -EINVAL;
	}
	return 0;
}

int _pmv_tiers_init(pmv_ctx *ctx, const struct pmv_config *cfg)
{
	char why[160];
	unsigned bad;

	if (_pmv_tiers_check(cfg->tiers, cfg->ntiers, &bad, why, sizeof(why)))
		return _pmv_set_errmsg(-EINVAL, "pmv_create: tier %u: %s", bad, why);
	for (unsigned i = 0; i < cfg->ntiers; i++) {
		int ret = check_node(i, cfg->tiers[i].node);

		if (ret)
			return ret;
	}
	for (unsigned i = 0; i < cfg->ntiers; i++) {
		const struct pmv_tier_config *tc = &cfg->tiers[i];
		struct _pmv_tier *t = &ctx->tiers[i];
		size_t high = POOL_HIGH_BYTES;
		const char *env = getenv("PAGEMOVE_POOL_MB");

		if (env && *env)
			high = strtoull(env, NULL, 0) << 20;

		t->idx = i;
		if (tc->name)
			snprintf(t->name, sizeof(t->name), "%s", tc->name);
		else
			snprintf(t->name, sizeof(t->name), "tier%u", i);
		t->node = tc->node;
		t->capacity = tc->capacity;
		if (t->capacity && t->capacity / 4 < high)
			high = t->capacity / 4;
		/* SCHED_FIFO fault handlers wait for it: see _pmv_mutex_init_pi */
		_pmv_mutex_init_pi(&t->lock);
		pthread_cond_init(&t->reserve_cv, NULL);
		pthread_cond_init(&t->fill_cv, NULL);
		pthread_mutex_init(&t->lru_lock, NULL);
		_pmv_lru_init(&t->active);
		_pmv_lru_init(&t->inactive);
		for (int ps = 0; ps < PMV_PS_NR; ps++) {
			t->pool[ps].ps = ps;
			t->pool[ps].high = high / _pmv_ps_size(ps);
		}
		ctx->ntiers = i + 1;
		/* a far tier's capacity is its store's: its pools stay empty */
		if (tc->kind != PMV_TIER_MEM) {
			int ret = _pmv_far_open(ctx, i, tc);

			if (ret)
				return ret;
		}
	}
	return 0;
}

void _pmv_tiers_destroy(pmv_ctx *ctx)
{
	for (unsigned i = 0; i < ctx->ntiers; i++) {
		struct _pmv_tier *t = &ctx->tiers[i];

		for (int ps = 0; ps < PMV_PS_NR; ps++) {
			struct _pmv_pool *p = &t->pool[ps];

			for (size_t c = 0; c < p->nchunks; c++)
				munmap(p->chunks[c].base, p->chunks[c].len);
			_pmv_kfree(p->chunks);
			_pmv_kfree(p->clean);
			_pmv_kfree(p->dirty);
			_pmv_kfree(p->holes);
			_pmv_kfree(p->retired);
		}
		pthread_mutex_destroy(&t->lock);
		pthread_cond_destroy(&t->reserve_cv);
		pthread_cond_destroy(&t->fill_cv);
		pthread_mutex_destroy(&t->lru_lock);
		_pmv_far_close(ctx, i);
	}
	ctx->ntiers = 0;
}
