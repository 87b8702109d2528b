/* SPDX-License-Identifier: MIT */
/*
 * Internal contracts of libpagemove. Everything here is hidden.
 *
 * Objects (see docs/DESIGN.md for the full picture):
 *  - _pmv_page: one per 4 KB or 2 MB page of a region (the kernel's struct
 *    page). `flags` is atomic; `tier` and `pol_tier` change only under the
 *    page lock (PG_locked) and may be read racily for stats and queries.
 *  - _pmv_region: a pmv_mmap() range and its descriptor array. The region
 *    table is protected by ctx->regions_lock; a region lives while any
 *    holder of that lock (read) can see it.
 *  - _pmv_tier: per-tier pools of free pages already on the tier's node,
 *    capacity accounting (tier->lock) and the LRU lists (tier->lru_lock).
 *
 * Lock order (outer first); nothing is ever taken in the other direction:
 *   ctx->fork_lock (read: migrations; write: fork)
 *   -> ctx->regions_lock (read: faults, migrations; write: mmap, munmap)
 *   -> page lock (PG_locked; trylock only, see _pmv_page_trylock)
 *   -> tier->lru_lock, tier->lock (leaves; never both at once)
 *
 * A fault handler never blocks on a page lock: a fault on a locked page
 * sets PG_waiters and returns; whoever unlocks the page wakes the range.
 */
#ifndef PMV_INTERNAL_H
#define PMV_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include "pagemove.h"
#include "compat.h"

#define PMV_HIDDEN	__attribute__((visibility("hidden")))
#define PMV_API		__attribute__((visibility("default")))

/*
 * Symbol versions (the ABI rule in pagemove.h; docs/DESIGN.md "ABI"). In
 * the shared library (built with -DPMV_SHARED) a public function whose
 * struct layout changed is exported as the default version of its node
 * (name@@node: what programs linked from now on get), and src/abi.c
 * exports the function for the old layout as name@old-node. The static
 * library has no versions: a static link always has the current header.
 * Use at file scope, after the function.
 */
#ifdef PMV_SHARED
#define PMV_SYMVER_DEFAULT(name, node) \
	__asm__(".symver " #name ", " #name "@@@" node)
#define PMV_SYMVER_COMPAT(impl, name, node) \
	__asm__(".symver " #impl ", " #name "@" node)
#else
#define PMV_SYMVER_DEFAULT(name, node)		_Static_assert(1, "")
#define PMV_SYMVER_COMPAT(impl, name, node)	_Static_assert(1, "")
#endif

#define PMV_SHIFT_4K	12
#define PMV_SHIFT_2M	21
#define PMV_SIZE_4K	(1UL << PMV_SHIFT_4K)
#define PMV_SIZE_2M	(1UL << PMV_SHIFT_2M)

/* Index of a page size in per-size arrays. */
enum { PMV_PS_4K = 0, PMV_PS_2M = 1, PMV_PS_NR = 2 };

static inline size_t _pmv_ps_size(int ps)
{
	return ps == PMV_PS_2M ? PMV_SIZE_2M : PMV_SIZE_4K;
}

/* ---- page descriptor (page.c) ---------------------------------------- */

enum {
	PG_present	= 1u << 0,	/* a page is mapped at the address */
	PG_locked	= 1u << 1,	/* owner may change tier/mapping */
	PG_waiters	= 1u << 2,	/* a fault met PG_locked: wake on unlock */
	PG_isolated	= 1u << 3,	/* off the LRU for migration */
	PG_lru		= 1u << 4,	/* on its tier's active/inactive list */
	PG_active	= 1u << 5,
	PG_referenced	= 1u << 6,
	PG_huge		= 1u << 7,	/* 2 MB page (THP) */
	PG_shared	= 1u << 8,	/* seen shared with another process */
	PG_bind		= 1u << 9,	/* policy binds to pol_tier */
	PG_parked	= 1u << 10,	/* moved to `park` to sample its next access */
	PG_tracked	= 1u << 11,	/* heat is a measurement, not just "unknown" */
	/*
	 * Marks a fault handler leaves on a page someone else holds locked
	 * (event.c); the holder settles them when it unlocks.
	 */
	PG_discard	= 1u << 12,	/* the program discarded pieces (ctx->discards) */
	PG_gone		= 1u << 13,	/* its address was unmapped or moved away */
	/*
	 * The program discarded pieces of the page and their zap may not
	 * have run yet: nobody moves it out until the janitor handler sees
	 * the zap (event.c), or the zap would miss what it moved.
	 */
	PG_zap		= 1u << 14,
	/*
	 * On a far tier (far.c): PG_present stays set (the page has data),
	 * but its address is empty and its bytes are in the tier's store
	 * under `handle`; the next access faults it back in.
	 */
	PG_far		= 1u << 15,
};

struct _pmv_region;

struct _pmv_page {
	_Atomic uint32_t flags;
	int8_t tier;		/* current tier; valid with PG_present */
	int8_t pol_tier;	/* preferred or bound tier */
	uint16_t moved_ds;	/* last migration, in 1/10 s (wraps; diffs only) */
	struct _pmv_page *lru_prev, *lru_next;	/* under tier->lru_lock */
	struct _pmv_region *region;
	/*
	 * Tracking (track.c), under the page lock; the policy reads `heat`
	 * racily to pick candidates. `park` is the pool slot holding the page
	 * while PG_parked; `parked_us` when it went there (wraps; diffs only).
	 */
	union {
		void *park;		/* PG_parked */
		uint64_t handle;	/* PG_far: the store's handle */
	};
	uint32_t heat;		/* decayed access rate, accesses/s */
	uint32_t parked_us;
};

struct _pmv_lru_list {
	struct _pmv_page head;	/* sentinel; only its links are used */
	size_t nr;
};

PMV_HIDDEN bool _pmv_page_trylock(struct _pmv_page *pg);
/*
 * Around every stretch of a caller's thread that holds or waits for a lock
 * a fault handler may take (page.c says why).
 */
PMV_HIDDEN void _pmv_signals_hold(sigset_t *old);
PMV_HIDDEN void _pmv_signals_release(const sigset_t *old);
/*
 * The allocator rule (kmem.c says why): a thread that a signal interrupts
 * inside malloc or free holds the allocator's lock while its handler
 * faults on managed memory. So none of these calls malloc, calloc,
 * realloc, aligned_alloc, posix_memalign, free, strdup, stdio or anything
 * that may (pthread_key_create, a library's lazy context): a fault handler
 * (the janitor too); the fault helper; a thread holding a page lock,
 * event_lock, regions_lock written, a tier, LRU, discard, surgery or store
 * lock, or the handlers' mutex; a store call. They take memory from
 * _pmv_kalloc/_pmv_kcalloc/_pmv_krealloc (pages from mmap, freed only with
 * _pmv_kfree), from fixed arrays, or before the first lock. Zeroed;
 * NULL/errno on failure, as malloc's; _pmv_krealloc never shrinks.
 */
PMV_HIDDEN void *_pmv_kalloc(size_t size);
PMV_HIDDEN void *_pmv_kcalloc(size_t n, size_t size);
PMV_HIDDEN void *_pmv_krealloc(void *p, size_t size);
PMV_HIDDEN void _pmv_kfree(void *p);
PMV_HIDDEN void _pmv_kmem_init(void);
PMV_HIDDEN void _pmv_kmem_fork_child(void);
/* qsort(3) without its malloc (sort.c): the library sorts under the rule above. */
PMV_HIDDEN void _pmv_sort(void *base, size_t n, size_t size,
			  int (*cmp)(const void *, const void *));
PMV_HIDDEN int _pmv_page_lock_timeout(struct _pmv_page *pg, unsigned usec);
PMV_HIDDEN bool _pmv_page_wait_or_retry(struct _pmv_page *pg);
/* Unlock; settles PG_discard / PG_gone first (_pmv_page_settle). */
PMV_HIDDEN void _pmv_page_unlock(pmv_ctx *ctx, struct _pmv_page *pg);
PMV_HIDDEN uintptr_t _pmv_page_addr(const struct _pmv_page *pg);
PMV_HIDDEN size_t _pmv_page_size(const struct _pmv_page *pg);

static inline uint32_t _pmv_page_flags(const struct _pmv_page *pg)
{
	/* Relaxed: callers either hold the page lock or only want a hint. */
	return atomic_load_explicit(&pg->flags, memory_order_relaxed);
}

static inline void _pmv_page_set(struct _pmv_page *pg, uint32_t f)
{
	atomic_fetch_or_explicit(&pg->flags, f, memory_order_relaxed);
}

static inline void _pmv_page_clear(struct _pmv_page *pg, uint32_t f)
{
	atomic_fetch_and_explicit(&pg->flags, ~f, memory_order_relaxed);
}

PMV_HIDDEN void _pmv_lru_init(struct _pmv_lru_list *l);
PMV_HIDDEN void _pmv_activate_page(pmv_ctx *ctx, struct _pmv_page *pg, bool active);
PMV_HIDDEN void _pmv_lru_add(pmv_ctx *ctx, struct _pmv_page *pg);
PMV_HIDDEN void _pmv_lru_del(pmv_ctx *ctx, struct _pmv_page *pg);
PMV_HIDDEN bool _pmv_isolate_lru_page(pmv_ctx *ctx, struct _pmv_page *pg);
PMV_HIDDEN void _pmv_putback_lru_page(pmv_ctx *ctx, struct _pmv_page *pg);

/* ---- locks shared with the fault handlers (lock.c) ------------------- */

/*
 * A mutex that SCHED_FIFO fault handlers and normal threads (the fault
 * helper, movers) both take: it lends a waiting handler's priority to the
 * holder, so that a holder preempted by other work does not hold up a
 * fault for a time slice.
 */
PMV_HIDDEN void _pmv_mutex_init_pi(pthread_mutex_t *mu);

/*
 * The region table's lock: a reader-writer lock that prefers writers
 * (munmap must not starve behind overlapping batches from several
 * threads), except for the fault handlers, which enter whenever no writer
 * *holds* it: a copier holding it for reading may wait for a fault
 * handler (rescue_copier), and a writer queued between them would
 * deadlock all three. pthread rwlocks cannot say "this reader ignores waiters".
 */
struct _pmv_regions_lock {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned readers, writers_waiting;
	bool writer;
};

PMV_HIDDEN void _pmv_regions_lock_init(struct _pmv_regions_lock *l);
PMV_HIDDEN void _pmv_regions_lock_destroy(struct _pmv_regions_lock *l);
PMV_HIDDEN void _pmv_regions_rdlock(struct _pmv_regions_lock *l, bool fault_thread);
/* PMV_MOVE_NONBLOCK: false, taking nothing, if a writer holds or awaits it. */
PMV_HIDDEN bool _pmv_regions_tryrdlock(struct _pmv_regions_lock *l);
PMV_HIDDEN void _pmv_regions_rdunlock(struct _pmv_regions_lock *l);
PMV_HIDDEN void _pmv_regions_wrlock(struct _pmv_regions_lock *l);
PMV_HIDDEN void _pmv_regions_wrunlock(struct _pmv_regions_lock *l);
/*
 * A fault handler's way in as a writer: it must never wait for readers
 * (see above), so it announces itself (new readers other than the
 * handlers then wait; fault.c keeps the other handlers out) and takes the
 * lock only once no reader is left. False: try again later, still
 * announced.
 */
PMV_HIDDEN bool _pmv_regions_trywrlock_fault(struct _pmv_regions_lock *l, bool *announced);

/* ---- region (region.c) ----------------------------------------------- */

/*
 * Apply the queued region-table changes (event.c); regions_lock written.
 * 0, or -EAGAIN: nothing applied yet, because a parked huge page that a
 * queued remap cuts could not be unparked now (its pieces' new address
 * is known only while the change is queued); try again later.
 */
PMV_HIDDEN int _pmv_regions_apply(pmv_ctx *ctx);

struct _pmv_region {
	uintptr_t start;
	size_t len;
	unsigned shift;		/* PMV_SHIFT_4K or PMV_SHIFT_2M */
	int ps;			/* PMV_PS_* */
	size_t npages;
	int flags;		/* pmv_mmap() flags */
	struct _pmv_page *pages;
};

PMV_HIDDEN struct _pmv_region *_pmv_region_find(pmv_ctx *ctx, uintptr_t addr);
/* The first region starting above addr, or NULL. */
PMV_HIDDEN struct _pmv_region *_pmv_region_next(pmv_ctx *ctx, uintptr_t addr);
/* NULL also for a page whose address is no longer managed (PG_gone). */
PMV_HIDDEN struct _pmv_page *_pmv_addr_to_page(pmv_ctx *ctx, uintptr_t addr,
					       struct _pmv_region **rp);
PMV_HIDDEN void _pmv_regions_destroy(pmv_ctx *ctx);
PMV_HIDDEN void _pmv_regions_forget(pmv_ctx *ctx);
PMV_HIDDEN bool _pmv_thp_available(void);

/* ---- tiers and pools (tier.c) ---------------------------------------- */

/*
 * A pool is a set of page-sized slots in private VMAs registered with the
 * context's userfaultfd for WP only, so UFFDIO_MOVE accepts them as a
 * destination and their vm_page_prot matches the regions'. A slot either
 * holds a page (clean = known zero, or dirty) or is a hole, ready to take a
 * page moved out of a region.
 */
struct _pmv_pool {
	int ps;
	void **clean, **dirty, **holes;
	size_t nclean, ndirty, nholes;
	size_t cap_clean, cap_dirty, cap_holes;
	/*
	 * VA reserved PROT_NONE; the first `armed` bytes are writable slots
	 * (tier.c: an mlockall populates only those).
	 */
	struct { void *base; size_t len, armed; } *chunks;
	size_t nchunks;
	/* 2 MB slots never moved into again (a page table may be left) */
	void **retired;
	size_t nretired, cap_retired;
	size_t high;		/* trim the pool above this many pages */
	size_t nfilling;	/* slots the fault helper is populating (counted used) */
	uint64_t fill_failed_ns;	/* when a fill last failed (tier.c) */
	void *reserve;		/* a hole only the fault handlers may use */
	void *reserve_out;	/* the reserve a handler holds (tier->reserve_cv) */
};

struct _pmv_tier {
	int idx;
	char name[32];
	int node;
	size_t capacity;	/* bytes; 0 = unlimited */

	pthread_mutex_t lock;	/* pools and the counters below */
	pthread_cond_t reserve_cv;	/* a pool's reserve came back */
	pthread_cond_t fill_cv;		/* a fill of the helper's ended */
	struct _pmv_pool pool[PMV_PS_NR];
	/* the program's mlock reached these pools: unlock and empty them (tier.c) */
	atomic_bool pools_locked;
	uint64_t resident[PMV_PS_NR];

	pthread_mutex_t lru_lock;
	struct _pmv_lru_list active, inactive;

	/* statistics: updated with relaxed atomics, read racily */
	_Atomic uint64_t first_touch, fallback_in, migrate_in, migrate_out;
	_Atomic uint64_t migrate_bytes_in, verify_errors;
	_Atomic uint64_t fail[PMV_FAIL_NR];
	_Atomic uint64_t parked, promote_in, demote_in;
	size_t wmark[3];	/* free bytes: min, low, high (policy.c) */

	/* 2 MB pool pages (tier.c make_huge): collapse failures, compactions */
	_Atomic uint64_t thp_fail, thp_compact, thp_compact_ok, compact_ns;
	_Atomic uint64_t thp_pieces;	/* first touches mapped as 4 KB pieces (fault.c) */

	/* far tiers (far.c): the store; NULL on a memory tier */
	int kind;		/* enum pmv_tier_kind */
	struct _pmv_store *store;
	_Atomic uint64_t faults_in, fault_in_ns, load_errors;
};

static inline bool _pmv_tier_far(const pmv_ctx *ctx, int t);

/*
 * A tier list's kinds (pmv_create, pmv_tiers_parse): known kinds, each
 * with its own fields only (a memory tier no level nor path; a far tier
 * no node, and what _pmv_store_config_check asks), at least one memory
 * tier, far tiers after every memory tier. 0, or -EINVAL with *bad the
 * tier at fault and why[len] a phrase (no errmsg set). Touches nothing.
 */
PMV_HIDDEN int _pmv_tiers_check(const struct pmv_tier_config *tc, unsigned n, unsigned *bad,
				char *why, size_t len);
PMV_HIDDEN int _pmv_tiers_init(pmv_ctx *ctx, const struct pmv_config *cfg);
PMV_HIDDEN void _pmv_tiers_destroy(pmv_ctx *ctx);
/* Take a free page and count it resident: NULL if the tier has no room. */
PMV_HIDDEN void *_pmv_pool_take_page(pmv_ctx *ctx, struct _pmv_tier *t, int ps,
				     bool want_clean, bool *clean);
/* Give a resident page's slot back to the pool (it now holds the page). */
PMV_HIDDEN void _pmv_pool_put_page(struct _pmv_tier *t, int ps, void *slot,
				   bool clean);
/* Bulk forms, sorted by address; they return how many they took. */
PMV_HIDDEN size_t _pmv_pool_take_pages(pmv_ctx *ctx, struct _pmv_tier *t, int ps,
				       size_t n, void **out);
PMV_HIDDEN size_t _pmv_pool_take_holes(pmv_ctx *ctx, struct _pmv_tier *t, int ps,
				       size_t n, void **out);
/*
 * The same for PMV_MOVE_NONBLOCK when nowait: never wait for the tier lock
 * (a growth under it) nor for a fill in flight; *busy (if given) says a
 * shortfall was such a wait, not a lack of room or VA.
 */
PMV_HIDDEN size_t _pmv_pool_take_pages_nb(pmv_ctx *ctx, struct _pmv_tier *t, int ps,
					  size_t n, void **out, bool nowait, bool *busy);
PMV_HIDDEN size_t _pmv_pool_take_holes_nb(pmv_ctx *ctx, struct _pmv_tier *t, int ps,
					  size_t n, void **out, bool nowait, bool *busy);
/*
 * Up to n clean (zeroed) pages, counted resident, for a map-ahead: never
 * grows the pool, waits or takes the reserve; of 4 KB pages it leaves a
 * few for the next first touches. Ascending when they are neighbours.
 */
PMV_HIDDEN size_t _pmv_pool_take_clean(struct _pmv_tier *t, int ps, size_t n, void **out);
/* Give n emptied slots back as holes (each as _pmv_pool_put_hole). */
PMV_HIDDEN void _pmv_pool_put_holes(struct _pmv_tier *t, int ps, void *const *slot, size_t n);
/* A hole to move a page out into; NULL only when VA is exhausted. */
PMV_HIDDEN void *_pmv_pool_take_hole(pmv_ctx *ctx, struct _pmv_tier *t, int ps);
PMV_HIDDEN void _pmv_pool_put_hole(struct _pmv_tier *t, int ps, void *slot);
/* The slot size if addr is in one of the pools, else 0. */
PMV_HIDDEN size_t _pmv_pool_slot_size(pmv_ctx *ctx, uintptr_t addr);
/*
 * A 2 MB hole that a failed move may have left a page table in: never
 * moved into again (every huge page moved through it would be split),
 * but kept, so that a later repair can empty it (below). Discard it first.
 * Where the kernel frees the page table of a discarded range (PT_RECLAIM,
 * probed at pmv_create), the hole is whole again and simply put back.
 */
PMV_HIDDEN void _pmv_pool_retire(struct _pmv_tier *t, int ps, void *slot);
/*
 * Give the pages in pool slots [slot, slot+len) back to the kernel: every
 * slot that becomes a hole goes through here. It works when the program's
 * mlock (mlockall(MCL_CURRENT)) reached the pools, where MADV_DONTNEED
 * refuses: then the pools are marked for repair, which unlocks and empties
 * them at their next use. Any thread, any locks.
 */
PMV_HIDDEN void _pmv_pool_discard(pmv_ctx *ctx, void *slot, size_t len);
/* Learn, once per process, whether the kernel frees a discarded 2 MB
 * range's page table (tier.c): before the first 2 MB region is made. */
PMV_HIDDEN void _pmv_tier_probe_huge(void);
/*
 * A move of pages into the pool holes [hole, hole+len) failed with err
 * before anything moved. True if the program's mlock caused it (a locked
 * pool: EINVAL; holes it populated: EEXIST): the pools are now unlocked and
 * emptied, the caller's holes too, and one more try may pass. False
 * otherwise (the program's own VMA refused, say), the holes as they were.
 * Call with no tier lock, and without event_lock (it may take a while).
 */
PMV_HIDDEN bool _pmv_pool_refused(pmv_ctx *ctx, void *hole, size_t len, int err);
/* Before a region is published: its first touch must never need new VA. */
PMV_HIDDEN int _pmv_pool_reserve(pmv_ctx *ctx, struct _pmv_tier *t, int ps);
/* A resident page left the tier without coming to the pool (zap, munmap). */
PMV_HIDDEN void _pmv_tier_uncharge(struct _pmv_tier *t, int ps, size_t n);
PMV_HIDDEN void _pmv_tier_charge(struct _pmv_tier *t, int ps, size_t n);
/*
 * Charge one page of room that no pool page holds (a page the kernel gives,
 * by UFFDIO_COPY): false if the tier is full, or bound to one node of
 * several (the kernel's page could be elsewhere). Uncharge to undo.
 */
PMV_HIDDEN bool _pmv_tier_take_room(struct _pmv_tier *t, int ps);
/* Bytes of t no resident page uses (pool pages are room); SIZE_MAX: unlimited. */
PMV_HIDDEN size_t _pmv_tier_room(struct _pmv_tier *t);
/* nowait (PMV_MOVE_NONBLOCK): not if the tier lock is busy; a later move trims. */
PMV_HIDDEN void _pmv_pool_trim(pmv_ctx *ctx, struct _pmv_tier *t, bool nowait);
/*
 * Clean pages kept ready for first touches (tier.c says how many): does
 * the pool want more, and make them (the fault helper, off any fault).
 */
PMV_HIDDEN bool _pmv_pool_wants_fill(struct _pmv_tier *t, int ps);
PMV_HIDDEN void _pmv_pool_fill(pmv_ctx *ctx, struct _pmv_tier *t, int ps);
PMV_HIDDEN bool _pmv_tier_has_room(struct _pmv_tier *t, int ps);
/* Charge one resident page of size ps with no pool page if the tier has room. */
PMV_HIDDEN bool _pmv_tier_charge_room(struct _pmv_tier *t, int ps);
/* MADV_DONTNEED of a whole empty 2 MB range frees its page table (probed once). */
PMV_HIDDEN bool _pmv_pt_reclaim(void);
/* Anonymous VA for regions, never populated or locked by mlockall(MCL_FUTURE). */
PMV_HIDDEN void *_pmv_map_anon(size_t len, size_t align);

/* ---- far-tier stores (store.c, store_ram.c, store_lz4.c, store_zstd.c,
 *      store_file.c) --------------------------------------------------- */

/*
 * A store keeps the bytes of pages that are not mapped: a far tier's.
 * Each stored page has a handle (a non-zero 64-bit word) that its owner
 * keeps, as the kernel keeps a swap entry in the page table. store.c is the
 * front end every kind shares: it takes pages that are one repeated 8-byte
 * word without storing anything (as zram does), checksums every other page
 * (XXH3-64 of its bytes, kept in RAM with the handle, checked after every
 * load), counts, and injects faults for tests; the backend (struct
 * _pmv_store_ops) stores bytes.
 *
 * Calls and threads:
 *  - _pmv_store_open, _pmv_store_close: one thread; close only when no
 *    other call on the store is in flight, nor follows. Close frees every
 *    page and discards the file's blocks (punch hole, BLKDISCARD).
 *  - _pmv_store_put, _pmv_store_get, _pmv_store_drop, _pmv_store_stats:
 *    any threads, concurrently, on any pages; batches are the fast way
 *    (one io_uring submission, one entry-table lock). A handle belongs to
 *    the one caller that got it from put (the holder of the page's lock):
 *    get and drop on one handle are never concurrent, get may be repeated
 *    until drop, and a handle is dead after drop.
 *  - _pmv_store_inject, _pmv_store_corrupt: tests; any thread.
 * None of them takes a lock of the rest of the library (they may be called
 * with a page locked), nor waits for a fault handler.
 *
 * Page buffers (req.page) are 4 KB aligned: the file store reads and
 * writes them with O_DIRECT.
 */

/* The distinct statuses of a store, besides -ENOSPC, -EIO and -ENOMEM. */
#define PMV_E_INCOMPRESSIBLE	EMSGSIZE	/* put: not below 3/4 compressed; send it elsewhere */
#define PMV_E_CHECKSUM		EBADMSG		/* get: the bytes read are not those stored */

struct _pmv_store;
struct _pmv_store_entry;

struct _pmv_store_req {
	void *page;		/* put: the page's bytes; get: where they go */
	int ps;			/* PMV_PS_4K or PMV_PS_2M */
	int status;		/* out: 0 or a negative errno */
	uint64_t handle;	/* put: out (0 on failure); get: in */
	bool raw_ok;		/* put: a page that does not compress is kept as
				 * it is, not refused (store_ram.c) */
	struct _pmv_store_entry *e;	/* store.c's, for the backend */
};

struct _pmv_store_stats {
	uint64_t pages[PMV_PS_NR];	/* pages stored now, same-filled ones included */
	uint64_t same_filled;		/* of them, one repeated word: no storage */
	uint64_t page_bytes;		/* the bytes of the pages stored now */
	uint64_t stored_bytes;		/* what the store uses now, allocator waste
					 * included: what capacity bounds */
	uint64_t data_bytes;		/* of that, the stored (compressed) bytes */
	uint64_t meta_bytes;		/* handle table, in RAM, not in stored_bytes */
	uint64_t capacity;		/* 0: unlimited */
	/* since open */
	uint64_t puts, gets, drops;	/* pages */
	uint64_t incompressible;	/* puts not below 3/4 compressed: refused with
					 * PMV_E_INCOMPRESSIBLE, or kept raw (raw_ok) */
	uint64_t nospc;			/* puts refused with -ENOSPC (capacity or device) */
	uint64_t io_errors;		/* reads or writes that failed */
	uint64_t csum_errors;		/* loads refused with PMV_E_CHECKSUM */
	double ratio;			/* page_bytes / stored_bytes; 0 when nothing is stored */
	bool direct_io;			/* file: O_DIRECT (else the page cache) */
	bool uring;			/* file: io_uring (else pread/pwrite) */
};

/*
 * Open the store of a far tier (tc checked by _pmv_store_config_check):
 * 0 and *sp, or a negative errno with the message set (-ENOENT, -EACCES:
 * the path; -EINVAL: neither a directory nor a block device; -ENOMEM).
 */
PMV_HIDDEN int _pmv_store_open(struct _pmv_store **sp, const struct pmv_tier_config *tc);
PMV_HIDDEN void _pmv_store_close(struct _pmv_store *s);
/*
 * Store r[0..n): each r[i].status is 0 with r[i].handle set, or
 *   PMV_E_INCOMPRESSIBLE  (compressed stores) not below 3/4 of the page
 *   -ENOSPC               the capacity, or the file system, is full
 *   -EIO                  the write failed
 *   -ENOMEM               no memory for the handle or the bytes
 * with handle 0; nothing of a failed page stays stored. The page's bytes
 * are read, never changed. Returns how many were stored.
 */
PMV_HIDDEN size_t _pmv_store_put(struct _pmv_store *s, struct _pmv_store_req *r, size_t n);
/*
 * Load r[0..n) from their handles into r[i].page: status 0, or
 *   -EIO                  the read failed
 *   PMV_E_CHECKSUM        what was read (or decompressed) is not what was
 *                         stored
 *   -EINVAL               not a live handle, or of another page size
 * A failed page's buffer is zeroed: wrong data is never handed out. The
 * page stays stored either way. Returns how many loaded.
 */
PMV_HIDDEN size_t _pmv_store_get(struct _pmv_store *s, struct _pmv_store_req *r, size_t n);
/* Free the pages of h[0..n) (0 entries are skipped). */
PMV_HIDDEN void _pmv_store_drop(struct _pmv_store *s, const uint64_t *h, size_t n);
/* A snapshot, read racily, as the tier counters are. */
PMV_HIDDEN void _pmv_store_stats(struct _pmv_store *s, struct _pmv_store_stats *st);
/*
 * Fault injection (tests; also PAGEMOVE_INJECT_STORE at open): spec is
 * OP:ERR:N[,...] with OP put or get, ERR eio, enospc (put) or corrupt
 * (put: the N-th stored page's stored bytes are damaged afterwards), and
 * every N-th call of OP hit; "" clears. 0 or -EINVAL.
 */
PMV_HIDDEN int _pmv_store_inject(struct _pmv_store *s, const char *spec);
/* Damage the stored bytes of h (tests): 0, -EINVAL (same-filled, not live). */
PMV_HIDDEN int _pmv_store_corrupt(struct _pmv_store *s, uint64_t h);

/* "mem", "lz4", "zstd", "file"; "?" for anything else. */
PMV_HIDDEN const char *_pmv_tier_kind_name(int kind);
/*
 * A far tier's own fields: lz4 neither level nor path; zstd a level in
 * zstd's range (0: 3) and no path; file a non-empty path and no level.
 * 0, or -EINVAL with why[len] a phrase. Nothing is opened.
 */
PMV_HIDDEN int _pmv_store_config_check(const struct pmv_tier_config *tc, char *why,
				       size_t len);

/* ---- userfaultfd wrappers (uffd.c) ----------------------------------- */

/*
 * Contracts (as mimalloc's prim.h): every call returns 0 or a negative
 * errno from the ioctl; none takes a lock.
 *
 * Flags of _pmv_uffd_move / _pmv_uffd_copy / _pmv_uffd_wp:
 *  PMV_MV_WAKE  wake threads waiting in a fault on the destination;
 *  PMV_MV_POOL  the destination is a pool slot (ctx->pool_uffd), else a
 *               region address (ctx->uffd);
 *  PMV_MV_ONCE  return -EAGAIN instead of retrying it. ctx->uffd fails
 *               everything with EAGAIN while the program's munmap, mremap
 *               or madvise event is unread, so a thread that holds
 *               event_lock, and a fault handler (always), must not retry.
 *               Everyone else retries until the event is read (a handler
 *               always reads it), yielding, then sleeping up to 1 ms.
 *  PMV_WP_SET   _pmv_uffd_wp: protect (else unprotect, which wakes).
 *  PMV_MV_BUF   _pmv_move_in only: the source is a private buffer, not a
 *               pool slot: UFFDIO_COPY it in (a new page of the kernel's,
 *               no TLB flush as a move's clearing of the slot needs), and
 *               leave the buffer as it is.
 */
#define PMV_MV_WAKE	1u
#define PMV_MV_POOL	2u
#define PMV_MV_ONCE	4u
#define PMV_WP_SET	8u
#define PMV_MV_BUF	16u

PMV_HIDDEN int _pmv_uffd_open(pmv_ctx *ctx, bool user_mode_only);
/* The calling thread is a fault handler: never retry EAGAIN. */
PMV_HIDDEN void _pmv_uffd_fault_thread(void);
/* missing: a region (MISSING|WP on ctx->uffd); else a pool (WP on pool_uffd). */
PMV_HIDDEN int _pmv_uffd_register(pmv_ctx *ctx, void *addr, size_t len,
				  bool missing);
PMV_HIDDEN int _pmv_uffd_unregister(pmv_ctx *ctx, void *addr, size_t len);
/*
 * Write-protect (PMV_WP_SET) or unprotect [addr, addr+len): present pages
 * only; an empty piece stays empty. -ENOENT: no registered VMA there
 * (the program unmapped it); -EAGAIN as PMV_MV_ONCE says.
 */
PMV_HIDDEN int _pmv_uffd_wp(pmv_ctx *ctx, uintptr_t addr, size_t len, unsigned flags);
/*
 * True if an event on ctx->uffd is unread (the kernel's mmap_changing):
 * after a move or copy to addr said ENOENT, tells an unmap or remap the
 * library has seen from one whose event is still queued. Precondition:
 * addr holds no page of ours (the probe clears WP on one), and the caller
 * holds event_lock for reading, so the answer holds until it lets go.
 */
PMV_HIDDEN bool _pmv_uffd_changing(pmv_ctx *ctx, uintptr_t addr);
/*
 * UFFDIO_MOVE [src, src+len) to [dst, dst+len), which must be empty.
 * *moved: the leading bytes that did move, also on failure (a THP split
 * part way, a piece shared or pinned), counting those the kernel moved
 * without saying so (see moved_unreported). -EBUSY: a page is shared,
 * pinned or not exclusive; -ENOENT: a source piece is empty (or no VMA);
 * -EEXIST: a destination piece is mapped; -EINVAL: the two VMAs differ in
 * protection or VM_LOCKED, are not writable, or one is not registered;
 * -EAGAIN: only with PMV_MV_ONCE or in a fault handler.
 */
PMV_HIDDEN int _pmv_uffd_move(pmv_ctx *ctx, uintptr_t dst, uintptr_t src,
			      size_t len, unsigned flags, size_t *moved);
/*
 * _pmv_uffd_move of n pages dst[i] <- src[i] of psz bytes, one ioctl per
 * run where both sides are contiguous. res[i]: 0 or its -errno; part[i]:
 * the bytes of a failed page that did move (it must be undone).
 */
PMV_HIDDEN void _pmv_move_runs(pmv_ctx *ctx, const uintptr_t *dst, const uintptr_t *src,
				size_t n, size_t psz, unsigned flags, int *res, size_t *part);
/*
 * UFFDIO_COPY into a region address: the kernel allocates the page (by the
 * region's memory policy) and honours the VMA's protection and VM_LOCKED,
 * which UFFDIO_MOVE refuses to cross. *copied as *moved above.
 */
PMV_HIDDEN int _pmv_uffd_copy(pmv_ctx *ctx, uintptr_t dst, uintptr_t src,
			      size_t len, unsigned flags, size_t *copied);
/*
 * Map the zero page at an empty address and wake its waiters: -EEXIST if
 * mapped; -EAGAIN (never retried) while an event is unread.
 */
PMV_HIDDEN int _pmv_uffd_zeropage(pmv_ctx *ctx, uintptr_t addr, size_t len);
/*
 * Put a poison marker at an empty address and wake its waiters: every
 * access there gets SIGBUS (a system call EFAULT) until it is zapped.
 * -EEXIST if mapped; -EAGAIN (never retried) while an event is unread.
 */
PMV_HIDDEN int _pmv_uffd_poison(pmv_ctx *ctx, uintptr_t addr, size_t len);
/* Wake threads waiting in a fault on the range; maps nothing. */
PMV_HIDDEN int _pmv_uffd_wake(pmv_ctx *ctx, uintptr_t addr, size_t len);

/* ---- the program's own address-space changes (event.c) ---------------- */

struct _pmv_discard {
	struct _pmv_page *pg;
	size_t off, len;
};

enum { PMV_SURGERY_UNMAP, PMV_SURGERY_REMAP };

/* A discarded range whose zap is awaited (event.c): addresses, not descriptors. */
struct _pmv_zap_wait {
	uintptr_t start, end;
	uint64_t until;
};

struct _pmv_surgery {
	int kind;
	uintptr_t from, to;
	size_t len;
};

/*
 * A fault handler, holding event_lock written since its read(): apply one
 * non-pagefault message (REMOVE, UNMAP, REMAP).
 */
PMV_HIDDEN void _pmv_event_handle(pmv_ctx *ctx, const struct uffd_msg *msg);
/*
 * The program discarded all of a locked page, or unmapped it: it has no
 * page now. A parked one dies in its slot; a present one is uncharged.
 */
PMV_HIDDEN void _pmv_page_forget(pmv_ctx *ctx, struct _pmv_page *pg);
/*
 * The janitor handler (fault.c), with regions_lock read and event_lock
 * written: clear PG_zap of pages whose discarded range is unmapped now
 * (forgetting pages discarded whole), or whose wait is over. Its caller
 * reads ctx->nzap_wait, under the same lock, to know whether to poll
 * again soon.
 */
PMV_HIDDEN void _pmv_event_poll(pmv_ctx *ctx);
/*
 * A first touch finding no room, with regions_lock read: forget now the
 * pages discarded whole whose zap has run. True if it forgot any.
 */
PMV_HIDDEN bool _pmv_event_reap(pmv_ctx *ctx);
/* A first touch, pg locked and replaced, with regions_lock read: stop its watches. */
PMV_HIDDEN void _pmv_event_unwatch(pmv_ctx *ctx, struct _pmv_page *pg);
/* Settle the marks of a locked page (called by _pmv_page_unlock). */
PMV_HIDDEN void _pmv_page_settle(pmv_ctx *ctx, struct _pmv_page *pg);
/*
 * Move pages in: slot[i] (a pool slot) to the address of pgs[i] (locked,
 * its address empty), neighbours coalesced. Every move into a region
 * address goes through here (the fault handlers' too), under event_lock,
 * so it never puts back a page the program has discarded or into an
 * address that has gone. res[i]: 0, or
 *   -ECANCELED  not moved: discarded whole, or the address is unmapped;
 *               the slot still holds the page;
 *   other       the move failed (part[i] bytes of it went in).
 * A destination that the program made read-only, PROT_NONE or mlocked
 * meanwhile is filled with UFFDIO_COPY instead and the slot emptied, so
 * that success always leaves the slot empty. A page moved by mremap goes
 * to its new address; with PMV_MV_WAKE the threads waiting at its old one
 * are woken (they fault again there).
 */
PMV_HIDDEN void _pmv_move_in(pmv_ctx *ctx, struct _pmv_page *const *pgs,
			     const uintptr_t *slot, size_t n, unsigned flags,
			     int *res, size_t *part);
/* One page; *part (if given): bytes already in on entry, in on return. */
PMV_HIDDEN int _pmv_move_in_one(pmv_ctx *ctx, struct _pmv_page *pg, void *slot,
				unsigned flags, size_t *part);
/*
 * Every move of a locked page out of its region address, and every
 * write-protect of one that is to be copied, runs between _pmv_out_lock()
 * and _pmv_out_unlock() (event_lock read) and only if _pmv_out_refused()
 * is false for the page: a discard reached it since it was locked and its
 * holder must leave it in place (-EBUSY). Inside, the moves go to pool
 * slots (ctx->pool_uffd, never -EAGAIN); a call on ctx->uffd there must
 * pass PMV_MV_ONCE and retry outside.
 */
PMV_HIDDEN void _pmv_out_lock(pmv_ctx *ctx);
PMV_HIDDEN void _pmv_out_unlock(pmv_ctx *ctx);
PMV_HIDDEN bool _pmv_out_refused(const struct _pmv_page *pg);
/*
 * Move n locked pages of psz bytes out of their addresses src[i] into the
 * holes dst[i] (pool slots), runs coalesced, inside the out-gate: a page
 * the gate refuses stays, res -EBUSY, and so does one without a hole
 * (dst[i] 0), res -ENOMEM; runs never cross either. res and part as
 * _pmv_move_runs: a page with part set is split and must be moved back.
 */
PMV_HIDDEN void _pmv_move_out_runs(pmv_ctx *ctx, struct _pmv_page *const *pgs,
				   const uintptr_t *dst, const uintptr_t *src, size_t n,
				   size_t psz, int *res, size_t *part);
/*
 * A move out that stopped part way: put the first len bytes of pg's page
 * back from slot, through the gate (pieces the program discarded meanwhile
 * go back as zeros). No UFFDIO_COPY fallback: a refused move (-EINVAL,
 * the program changed the VMA) leaves the head in slot for the caller.
 * 0; -ECANCELED if the page was discarded whole or its address is gone
 * (the bytes stay in slot); another error if the move failed, with an
 * unknown part of the head back in.
 */
PMV_HIDDEN int _pmv_move_in_head(pmv_ctx *ctx, struct _pmv_page *pg, void *slot, size_t len,
				 unsigned flags);
/*
 * madvise(MADV_DONTNEED) of region memory by the library itself, which
 * holds the pages' locks (and regions_lock for reading). A discard of the
 * program's inside the range meanwhile is applied to those pages as if
 * read by a handler (marked, for the gate), not taken for ours.
 */
PMV_HIDDEN int _pmv_discard_self(pmv_ctx *ctx, uintptr_t addr, size_t len);
/* Queue a region-table change: 0, or -ENOMEM. */
PMV_HIDDEN int _pmv_surgery_add(pmv_ctx *ctx, int kind, uintptr_t from, uintptr_t to,
				size_t len);
/* Where a queued mremap put addr, or 0 if it did not move (or is unmapped). */
PMV_HIDDEN uintptr_t _pmv_event_moved_to(pmv_ctx *ctx, uintptr_t addr);
/* Is addr inside the new range of a queued mremap? */
PMV_HIDDEN bool _pmv_event_in_new_range(pmv_ctx *ctx, uintptr_t addr);
PMV_HIDDEN bool _pmv_is_fault_thread(void);
/* While on (nested), every handler reads events: see fault.c. */
PMV_HIDDEN void _pmv_fault_extra_readers(pmv_ctx *ctx, bool on);

/* ---- far tiers: eviction and fault-in (far.c) --------------------------- */

/*
 * Evict pgs[0..n) to the far tiers dst[i]: each locked, isolated, present
 * and mapped at its address (unparked), on a memory tier; the caller holds
 * fork_lock and regions_lock for reading. Each page is moved out of its
 * address through the out-gate, stored, and its pool page freed; on any
 * failure it goes back untouched. Every page is unlocked on return, with
 * status[i] its tier or a negative errno (-EBUSY, -ENOSPC, -EIO, -ENOMEM,
 * -EMSGSIZE: incompressible and no later far tier took it; -EACCES:
 * shared with a child). reuse[i] (if given): -EBUSY because the page is
 * not exclusive though mapped once; a write fault after the unlock makes
 * it so, and another try may pass.
 */
PMV_HIDDEN void _pmv_far_evict(pmv_ctx *ctx, struct _pmv_page **pgs, const int *dst,
			       size_t n, int *status, bool *reuse, unsigned flags);
/*
 * _pmv_far_evict flags. PMV_EVICT_RECLAIM: room for a fault, which has
 * nowhere else to go; a page that does not compress is kept as it is on
 * the last far tier (as zram keeps one) instead of -EMSGSIZE, or a
 * program whose data does not compress would get SIGBUS.
 */
#define PMV_EVICT_RECLAIM	1u
/* _pmv_far_load flags */
#define PMV_FAR_WAKE	1u	/* wake the faulting threads with the move in */
#define PMV_FAR_FORCE	2u	/* no room on any memory tier: copy it in over capacity */
#define PMV_FAR_FAULT	4u	/* a fault: count it, and the page comes back hot */
/*
 * Bring a locked PG_far page back to a memory tier: `tier`, or with -1
 * the region's policy tier, else the first memory tier with room. 0 (the
 * page is present on that tier), -ENOMEM (no room), -EIO (the store could
 * not give its bytes back: read error or checksum; the page stays far),
 * -ECANCELED (discarded or unmapped meanwhile: the unlock settles it),
 * another error of the move.
 */
PMV_HIDDEN int _pmv_far_load(pmv_ctx *ctx, struct _pmv_page *pg, int tier, unsigned flags);
/*
 * A fault handler met an access to a PG_far page it holds locked: load it
 * and map it, or on a load error poison the address (the thread gets
 * SIGBUS, a kernel access EFAULT); -ENOMEM: no room (the caller
 * reclaims, then forces). force: with no room, over capacity
 * (PMV_FAR_FORCE).
 */
PMV_HIDDEN int _pmv_far_fault(pmv_ctx *ctx, struct _pmv_page *pg, bool force);
/*
 * A fault found memory tier `tier` full: evict its coldest pages to the
 * first far tier until `bytes` are free (not `self`). 0 if it freed
 * something, -ENOMEM if not (no far tier, nothing it could lock),
 * -EAGAIN while a fork is under way (fault again). Caller holds
 * regions_lock for reading and no page lock but self's.
 */
PMV_HIDDEN int _pmv_far_reclaim(pmv_ctx *ctx, int tier, size_t bytes, struct _pmv_page *self);
/*
 * Move a locked PG_far page to far tier dst without mapping it: its bytes
 * go from one store to the other. 0, or the store's error (the page stays
 * where it was).
 */
PMV_HIDDEN int _pmv_far_move(pmv_ctx *ctx, struct _pmv_page *pg, int dst);
/* Free bytes of a far tier's capacity (its store's), SIZE_MAX if unbounded. */
PMV_HIDDEN size_t _pmv_far_free(pmv_ctx *ctx, int tier);
/* The page's data is gone (discard, unmap): drop its handle, clear PG_far. */
PMV_HIDDEN void _pmv_far_drop(pmv_ctx *ctx, struct _pmv_page *pg);
/*
 * Part of a far huge page was discarded: bring it back as a parked page
 * of a memory tier, so that the discard can zero its pieces. 0 or -errno.
 */
PMV_HIDDEN int _pmv_far_to_parked(pmv_ctx *ctx, struct _pmv_page *pg);
/*
 * Where _pmv_far_to_parked finds no room (a full memory tier): the stored
 * bytes of a locked PG_far page in a new buffer (_pmv_far_buf_put), or NULL; and
 * buf stored in their place (0, or the store's error: the old ones stay).
 */
PMV_HIDDEN void *_pmv_far_read(pmv_ctx *ctx, struct _pmv_page *pg);
PMV_HIDDEN int _pmv_far_rewrite(pmv_ctx *ctx, struct _pmv_page *pg, void *buf);
/* Free a buffer of size bytes that far.c gave (a fault handler's comes from mmap). */
PMV_HIDDEN void _pmv_far_buf_put(void *p, size_t size);
/*
 * A piece of a region the table drops with its memory kept (region.c's
 * region_abandon, regions_lock written): an evicted page's bytes are
 * copied back to its address directly, without the gate.
 */
PMV_HIDDEN void _pmv_far_abandon(pmv_ctx *ctx, struct _pmv_page *pg);
/*
 * The background demoter ("kswapd"): with a far tier after a bounded
 * memory tier, a thread that evicts the coldest pages of a memory tier
 * whose free room fell below its low watermark, until the high one is
 * free, so that a fault-in finds room instead of evicting first. Start
 * after the policy's init (watermarks), stop before the regions go.
 * _pmv_far_kick: a fault just took room on memory tier t; wakes the
 * demoter if t is below its low watermark. Any thread, any locks but
 * t->lock.
 */
PMV_HIDDEN int _pmv_far_kswapd_start(pmv_ctx *ctx);
PMV_HIDDEN void _pmv_far_kswapd_stop(pmv_ctx *ctx);
PMV_HIDDEN void _pmv_far_kick(pmv_ctx *ctx, int t);
/* fork: load every far page back (fork_lock written); see DESIGN.md. */
PMV_HIDDEN void _pmv_far_load_all(pmv_ctx *ctx);
PMV_HIDDEN int _pmv_far_open(pmv_ctx *ctx, unsigned i, const struct pmv_tier_config *tc);
PMV_HIDDEN void _pmv_far_close(pmv_ctx *ctx, unsigned i);
PMV_HIDDEN void _pmv_far_stats(pmv_ctx *ctx, int tier, struct pmv_tier_stats *st);
/* Far-tier tests: the store's fault injection and damage (see store.c). */
PMV_HIDDEN int _pmv_far_inject(pmv_ctx *ctx, int tier, const char *spec);

/* ---- fault handler (fault.c) ----------------------------------------- */

struct _pmv_fault;	/* the handler threads and their helper (fault.c) */

/* Start the handlers and the helper: 0 or -errno. */
PMV_HIDDEN int _pmv_fault_start(pmv_ctx *ctx);
/*
 * Fault-around for contexts made after this call, unless
 * PAGEMOVE_FAULT_AROUND says otherwise: a first touch on an unbounded
 * tier also maps the untouched pages of its aligned block of `pages` (0
 * off, the default; else a power of two, at most 256). The preload's.
 */
PMV_HIDDEN void _pmv_fault_around_default(unsigned pages);
/* The handlers' variables (PAGEMOVE_FAULT_*) as _pmv_fault_start reads
 * them: 0 or -EINVAL with the message set. */
PMV_HIDDEN int _pmv_fault_check_env(void);
/* Stop and join them; the regions are gone, so no fault is pending. */
PMV_HIDDEN void _pmv_fault_stop(pmv_ctx *ctx);
/* In a fork child: free what _pmv_fault_start made, join nothing. */
PMV_HIDDEN void _pmv_fault_forget(pmv_ctx *ctx);
/* Ask the helper to fill a pool with clean pages, if it wants and may. */
PMV_HIDDEN void _pmv_fault_want_fill(pmv_ctx *ctx, int tier, int ps);
/*
 * Place a zeroed page at pg (locked, not present, or present but discarded
 * wholly): 0; -EEXIST (partly mapped); -ENOMEM (no room); -ECANCELED (the
 * program discarded or unmapped it meanwhile: nothing placed); -EAGAIN or
 * another error of the move. flags: PMV_MV_WAKE wakes the faulting threads
 * with the move itself when pg had no page (else the caller wakes them).
 */
PMV_HIDDEN int _pmv_first_touch(pmv_ctx *ctx, struct _pmv_page *pg, unsigned flags);
/*
 * Copiers: threads that read a region page they hold locked (a copy
 * thread, a mover on the write-protect path). If the program discards the
 * page under the copy, the handler that takes the copier's fault maps the
 * zero page instead of waiting for an unlock that waits for the copy.
 * Enter before the first read of the region page, exit after the last.
 * Enter is false when all PMV_MAX_COPIERS slots are taken: the caller must
 * then not read a region page it holds locked. Any thread.
 */
PMV_HIDDEN bool _pmv_copier_enter(pmv_ctx *ctx) __attribute__((warn_unused_result));
PMV_HIDDEN void _pmv_copier_exit(pmv_ctx *ctx);
/* A fault handler: whether the faulting thread tid is a copier now. */
PMV_HIDDEN bool _pmv_is_copier(pmv_ctx *ctx, pid_t tid);

/* ---- access tracking (track.c) --------------------------------------- */

/*
 * Sampling by unmapping: a parked page sits in a hole of its own tier's
 * pool, still resident and charged there; its address is empty, so the
 * next access takes a MISSING fault. Every path that locks a page to move
 * it unparks it first (_pmv_unpark), so the rest of the library never sees
 * a parked page. All calls need the page locked, except _pmv_park_drop,
 * which needs the region unreachable (munmap holds regions_lock writing).
 */
/*
 * _pmv_park: 0; -EBUSY if UFFDIO_MOVE refused the page (shared with a
 * child or pinned); -EAGAIN if a discard of it is in flight (PG_discard,
 * PG_zap: leave it alone, do not fault it in); -ENOMEM (no hole), other.
 */
PMV_HIDDEN int _pmv_park(pmv_ctx *ctx, struct _pmv_page *pg);
/*
 * A mover's page that is split between its address and slot (a hole of
 * its tier) and cannot be made whole now: park it there as it is, as a
 * park that stopped half way is, so that its next access or unpark puts
 * back what the slot holds, through the gate.
 */
PMV_HIDDEN void _pmv_park_keep(pmv_ctx *ctx, struct _pmv_page *pg, void *slot);
PMV_HIDDEN int _pmv_unpark(pmv_ctx *ctx, struct _pmv_page *pg);
PMV_HIDDEN void _pmv_track_fault(pmv_ctx *ctx, struct _pmv_page *pg);
PMV_HIDDEN void _pmv_track_age(pmv_ctx *ctx, struct _pmv_page *pg);
PMV_HIDDEN void _pmv_park_drop(pmv_ctx *ctx, struct _pmv_page *pg);
/* Unpark every page; the caller holds fork_lock (either way). */
PMV_HIDDEN void _pmv_unpark_all(pmv_ctx *ctx);
PMV_HIDDEN uint64_t _pmv_now_ns(void);
PMV_HIDDEN uint64_t _pmv_thread_cpu_ns(void);

static inline uint16_t _pmv_now_ds(pmv_ctx *ctx);
/* The clock of pg->parked_us: microseconds since the epoch (wraps; diffs only). */
static inline uint32_t _pmv_now_us32(pmv_ctx *ctx);

/* ---- policy (policy.c) ----------------------------------------------- */

PMV_HIDDEN int _pmv_policy_init(pmv_ctx *ctx, const struct pmv_config *cfg);
PMV_HIDDEN int _pmv_policy_start(pmv_ctx *ctx);
PMV_HIDDEN void _pmv_policy_stop(pmv_ctx *ctx);

/* ---- migration (migrate.c) ------------------------------------------- */

/*
 * _pmv_move_list flag, never a caller's: a 2 MB page whose target is its
 * own tier is moved all the same, into a fresh 2 MB pool page (a THP),
 * and mapped back as one PMD (collapse.c). Counted in ctx->collapsed, not
 * as a migration.
 */
#define _PMV_MIG_COLLAPSE	(1 << 30)

PMV_HIDDEN int _pmv_move_list(pmv_ctx *ctx, size_t n, struct _pmv_page **pgs,
			      const int *tiers, int *status, int flags);

/* ---- coalescing (collapse.c) ------------------------------------------ */

/*
 * Coalesce the split 2 MB pages of PMV_HUGE regions in [start, end) (at
 * most max of them): each is moved non-blocking to its own tier as one
 * PMD. Caller holds fork_lock and regions_lock for reading. Returns how
 * many of those found split are still split; *found (if given): how many
 * were found.
 */
PMV_HIDDEN size_t _pmv_collapse_range(pmv_ctx *ctx, uintptr_t start, uintptr_t end,
				      size_t max, size_t *found);
/*
 * Mapped PMV_HUGE bytes (present, not far, not parked) and those of them
 * mapped by one PMD. Caller holds regions_lock for reading.
 */
PMV_HIDDEN void _pmv_huge_coverage(pmv_ctx *ctx, uint64_t *bytes, uint64_t *pmd_bytes);

/* ---- copy engines (copy.c) ------------------------------------------- */

struct _pmv_copy_req {
	void *dst, *src;
	size_t len;
	int status;		/* 0 or -EIO, set by _pmv_copy_batch() */
	size_t done;		/* on failure: leading bytes copied */
};

struct _pmv_copy_job;

struct _pmv_copy_ops {
	const char *name;
	bool (*probe)(void);
	int (*copy)(pmv_ctx *ctx, void *dst, const void *src, size_t len);
	int (*copy_batch)(pmv_ctx *ctx, struct _pmv_copy_req *reqs, size_t n);
	/* asynchronous pair: NULL for engines that only copy inline */
	int (*submit)(pmv_ctx *ctx, struct _pmv_copy_req *reqs, size_t n,
		      struct _pmv_copy_job **ticket);
	int (*wait)(pmv_ctx *ctx, struct _pmv_copy_job *ticket);
};

PMV_HIDDEN extern const struct _pmv_copy_ops _pmv_copy_engines[PMV_COPY_NR];
PMV_HIDDEN int _pmv_copy_batch(pmv_ctx *ctx, struct _pmv_copy_req *reqs, size_t n);
PMV_HIDDEN int _pmv_copy_pool_start(pmv_ctx *ctx);
PMV_HIDDEN void _pmv_copy_pool_stop(pmv_ctx *ctx);
PMV_HIDDEN void _pmv_copy_pool_forget(pmv_ctx *ctx);
PMV_HIDDEN int _pmv_copy_engine_parse(const char *name);
PMV_HIDDEN const char *_pmv_copy_engine_name(int engine);

/* ---- context (context.c) --------------------------------------------- */

struct pmv_ctx {
	pid_t pid;			/* the creator; a fork child differs */
	unsigned flags;			/* PMV_CTX_* */
	unsigned mode;			/* PMV_MODE_* */
	unsigned mode_why;		/* PMV_MODE_WHY_* */
	int mode_errno;			/* with PMV_MODE_WHY_DENIED */
	int uffd;			/* regions: faults and events */
	int pool_uffd;			/* pools: no events (uffd.c) */
	int pagemap_fd;			/* /proc/self/pagemap, for sharing */
	struct _pmv_fault *fault;	/* fault handlers (fault.c) */

	unsigned ntiers;
	struct _pmv_tier tiers[PMV_MAX_TIERS];
	unsigned copy_threads;
	int copy_engine;		/* enum pmv_copy_engine */
	struct _pmv_copy_pool *copy_pool;	/* set once, under copy_pool_lock */
	pthread_mutex_t copy_pool_lock;
	/*
	 * auto, for large batches (copy.c auto_engine()): each engine's recent
	 * throughput (a double's bits, bytes/s; 0 = not measured), and the
	 * large batches copied so far. Racy by design, see there.
	 */
	_Atomic uint64_t copy_bps[PMV_COPY_NR];
	_Atomic unsigned copy_nbatch;
	unsigned inject_copy_fail;	/* tests: fail every N-th copy */
	_Atomic unsigned inject_count;
	unsigned inject_hold_us;	/* tests: see _pmv_inject_hold */
	_Atomic unsigned inject_holds;
	bool thp_ok;			/* THP usable for PMV_HUGE regions */

	pthread_rwlock_t fork_lock;
	struct _pmv_regions_lock regions_lock;
	struct _pmv_region **regions;	/* sorted by start */
	size_t nregions, cap_regions;

	/* tids of threads copying from pages they hold locked (migrate.c) */
#define PMV_MAX_COPIERS	64
	_Atomic pid_t copiers[PMV_MAX_COPIERS];

	pmv_ctx *next_ctx;		/* global list for pthread_atfork */

	/* the program's own address-space changes (event.c) */
	pthread_rwlock_t event_lock;	/* write: reading events; read: a move in */
	pthread_mutex_t discard_mu;	/* discards, self */
	struct _pmv_discard *discards;
	size_t ndiscards, cap_discards;
#define PMV_MAX_SELF	64
#define PMV_SELF_LOG	32
	/* our own discards in flight, and the REMOVE events read inside each */
	struct _pmv_self {
		uintptr_t start;
		size_t len;
		unsigned nlog;
		struct { uintptr_t s, e; } log[PMV_SELF_LOG];
	} self[PMV_MAX_SELF];
	pthread_mutex_t surgery_mu;	/* surgery */
	struct _pmv_surgery *surgery;
	size_t nsurgery, cap_surgery;
	_Atomic size_t surgery_pending;
	_Atomic uint64_t events_remove, events_unmap, events_remap, copied_in;
	/* PG_zap pages (under event_lock written, or regions_lock written) */
	struct _pmv_zap_wait *zap_wait;
	size_t nzap_wait, cap_zap_wait;

	/* tiering (track.c, policy.c) */
	uint64_t epoch_ns;		/* CLOCK_MONOTONIC at create */
	struct pmv_policy_config pol;	/* resolved knobs */
	_Atomic int policy_mode;
	bool track_ok;			/* sampling allowed (not user-mode-only) */
	pthread_t policy_thread;
	bool policy_inited, policy_running, policy_stop;
	pthread_mutex_t policy_mu;	/* one round at a time; mode changes */
	pthread_mutex_t policy_wait_mu;
	pthread_cond_t policy_cv;
	uintptr_t track_cursor;		/* sampling sweep position (policy_mu) */
	double track_rate;		/* samples per round (policy_mu) */
	double tokens;			/* bandwidth budget, bytes (policy_mu) */
	uint64_t tokens_ns, wall_mark_ns, track_mark_ns;	/* (policy_mu) */
	struct _pmv_policy_scratch *scratch;	/* (policy_mu) */
	struct _pmv_page *_Atomic watch;	/* sampled page the policy waits on */
	_Atomic uint64_t parked, samples, sample_faults, track_ns, track_wall_ns;
	_Atomic uint64_t promoted, demoted, exchanged, policy_bytes, policy_rounds;

	/* statistics */
	_Atomic uint64_t faults_missing, faults_wp, faults_first_touch;
	_Atomic uint64_t faults_waited, faults_sigbus, faults_ahead;
	_Atomic uint64_t migrations, migrate_bytes;
	_Atomic uint64_t collapsed;	/* 2 MB pages coalesced into one PMD (collapse.c) */
	_Atomic uint64_t proactive;	/* of demoted: idle pages (policy.c proactive_round) */
	_Atomic uint64_t recopies;	/* pages written through a pin during a copy */
	_Atomic uint64_t far_pages;	/* pages on far tiers now (fork loads them) */
	/* the background demoter (far.c): keeps the memory tiers' margin free */
	pthread_t kswapd;
	_Atomic bool kswapd_running;	/* read by the fault handlers' kicks */
	_Atomic bool kswapd_stop;
	_Atomic uint32_t kswapd_kick;	/* futex word: a tier went below its low watermark */
	_Atomic uint64_t kswapd_evicted, direct_evicted;	/* pages, by who evicted them */
};

static inline bool _pmv_tier_far(const pmv_ctx *ctx, int t)
{
	return ctx->tiers[t].store != NULL;
}

/*
 * Fault injection (PAGEMOVE_INJECT_HOLD_US, for tests): every 4th fault a
 * handler answers with a page locked (a first touch, a sampled access)
 * holds it this long before moving it in, so that the program's mremap,
 * munmap or madvise read meanwhile by another handler finds the page
 * locked and marks it: a window of a few microseconds otherwise.
 */
static inline void _pmv_inject_hold(pmv_ctx *ctx)
{
	if (ctx->inject_hold_us && atomic_fetch_add(&ctx->inject_holds, 1) % 4 == 3)
		usleep(ctx->inject_hold_us);
}

static inline uint16_t _pmv_now_ds(pmv_ctx *ctx)
{
	return (uint16_t)((_pmv_now_ns() - ctx->epoch_ns) / 100000000);
}

static inline uint32_t _pmv_now_us32(pmv_ctx *ctx)
{
	return (uint32_t)((_pmv_now_ns() - ctx->epoch_ns) / 1000);
}


/* ---- error text (error.c) -------------------------------------------- */

/*
 * Any thread; the text is the calling thread's (pmv_errmsg reads it).
 * _pmv_set_errmsg returns err unchanged, so `return _pmv_set_errmsg(-E, ...)`
 * sets the text and the errno in one step.
 */
PMV_HIDDEN int _pmv_set_errmsg(int err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A public call starts with no message of an earlier one. */
PMV_HIDDEN void _pmv_clear_errmsg(void);

/* ---- page-table probes (pagemap.c) ------------------------------------ */

/*
 * Any thread, no lock needed or taken. Each reads the page tables once
 * (ctx->pagemap_fd, /proc/self/pagemap); a fault, a move or the program
 * can change them right after, so a caller that acts on an answer holds
 * what keeps it true (the page lock, the out-gate, the regions lock
 * against munmap). A pagemap read that fails answers "not mapped" and
 * "not shared": the callers then treat the page as absent, the safe way.
 * Lengths are multiples of 4 KB.
 */
/* Whether another process (a fork child) maps any 4 KB piece of the range. */
PMV_HIDDEN bool _pmv_page_shared(pmv_ctx *ctx, uintptr_t addr, size_t len);
/* Present or swapped (anything but an empty PTE). */
PMV_HIDDEN bool _pmv_page_mapped(pmv_ctx *ctx, uintptr_t addr);
/* How many 4 KB pieces of [addr, addr+len) are mapped (present or swapped). */
PMV_HIDDEN size_t _pmv_pages_mapped(pmv_ctx *ctx, uintptr_t addr, size_t len);
/* Whether the 2 MB at addr (aligned) are mapped by one PMD (a THP). */
PMV_HIDDEN bool _pmv_huge_mapped(pmv_ctx *ctx, uintptr_t addr);
/* Whether any 4 KB piece of [addr, addr+len) is mapped; stops at the first. */
PMV_HIDDEN bool _pmv_range_any_mapped(pmv_ctx *ctx, uintptr_t addr, size_t len);
/*
 * 0 when the page at addr is on node, or when move_pages(2) cannot tell
 * (no page there now); -EIO with pmv_errmsg set when it is elsewhere.
 */
PMV_HIDDEN int _pmv_verify_node(pmv_ctx *ctx, uintptr_t addr, int node);

/* Count a failed move of a page on tier by its errno (stats.c); any thread. */
PMV_HIDDEN void _pmv_count_fail(pmv_ctx *ctx, int tier, int err);

static inline void _pmv_stat_add(_Atomic uint64_t *c, uint64_t v)
{
	/* Counters are advisory: no ordering with anything else. */
	atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/*
 * The public calls whose structs changed, as the compatibility symbols of
 * src/abi.c reach them: the current layout, no resv check (abi.c builds
 * the current structs itself). Same returns and errnos as the public ones.
 */
PMV_HIDDEN pmv_ctx *_pmv_create(const struct pmv_config *cfg);
/*
 * pagemove run's check of its settings (tools/cmd_run.c): _pmv_create's
 * refusals, errnos and messages, and pmv_ctx_stats' mode, from a context
 * that stops before any thread or region (no fault handlers, copy pool
 * or policy thread): only pmv_ctx_stats and pmv_destroy may be called on
 * it.
 */
PMV_HIDDEN pmv_ctx *_pmv_create_probe(const struct pmv_config *cfg);
PMV_HIDDEN int _pmv_tier_stats(pmv_ctx *ctx, int tier, struct pmv_tier_stats *st);
PMV_HIDDEN int _pmv_ctx_stats(pmv_ctx *ctx, struct pmv_ctx_stats *st);

/* Calls made in a fork child on the parent's context fail with -ECHILD. */
#define PMV_CHECK_CTX(ctx)						\
	do {								\
		if (!(ctx))						\
			return -EINVAL;					\
		if ((ctx)->pid != getpid())				\
			return -ECHILD;					\
	} while (0)

#endif /* PMV_INTERNAL_H */
