/* SPDX-License-Identifier: MIT */
#ifndef PAGEMOVE_H
#define PAGEMOVE_H

/*
 * pagemove: move a running program's pages between memory tiers.
 *
 * A context (pmv_ctx) owns a set of tiers, a userfaultfd, a fault-handler
 * thread and the regions made by pmv_mmap(). Managed memory is ordinary
 * anonymous memory: the program reads and writes it directly. pagemove
 * moves its pages between tiers with UFFDIO_MOVE while threads keep running;
 * an access that meets a page in its short remap window waits in the kernel
 * and then proceeds.
 *
 * Error convention (as liburing and the kernel): calls return 0 or a
 * negative errno; constructors return NULL and set errno. pmv_errmsg() gives
 * a sentence about the last failure of the calling thread.
 *
 * Threads: every call except pmv_destroy() may be made from any thread,
 * concurrently, including from threads that are touching managed memory.
 * pmv_destroy() must be the last call on a context, made when no other call
 * on it is in flight.
 *
 * fork(): the child gets a private copy-on-write snapshot of all managed
 * memory as ordinary anonymous memory; in-flight migrations are quiesced
 * first, so the snapshot never has a hole or a half-copied page. The context
 * itself is not usable in the child: every call there returns -ECHILD.
 * In the parent, pages still shared with a child report -EACCES from
 * pmv_move_pages() unless PMV_MOVE_ALL is given, which un-shares them.
 *
 * ABI: a program built against any release runs with every later one
 * (soname libpagemove.so.0; tests/abi keeps each release's header and
 * runs a program built with it). The rule for the structs below:
 *  - A struct never changes its size, nor the offset of any field. A new
 *    field takes the first words of its struct's resv[] that it needs, and
 *    its zero means what the library did before the field existed.
 *  - Structs a program passes in (pmv_config, pmv_tier_config,
 *    pmv_policy_config): zero them whole, with = { 0 } or a designated
 *    initializer. A non-zero resv word is refused with EINVAL, so a
 *    program that sets a field of a later release fails cleanly on an
 *    earlier library rather than having the field ignored.
 *  - Structs the library fills (the stats): it writes all of them, resv
 *    as zeros, and nothing past them.
 *  - When a struct's resv runs out, the struct gets a new layout and each
 *    call taking it a new default symbol version, in a new node of
 *    src/libpagemove.map; the old symbol stays and keeps the old layout.
 * Why resv rather than a size field, as perf_event_attr has: every caller
 * already zero-initializes these structs (a size field would have to be
 * set by each), and pmv_config.tiers is an array, whose stride must not
 * depend on the caller. Symbol versions are the way out only when resv
 * cannot serve: they cost a compatibility function per call and release.
 *
 * They served once. 0.2 put new fields past the end of 0.1's pmv_config,
 * pmv_tier_stats and pmv_ctx_stats under the same PAGEMOVE_0.1 symbols, so
 * a 0.1 program had policy read from beyond its struct and stats written
 * beyond its. Since 0.3 the structs have the layout below, with room to
 * grow, and pmv_create, pmv_tier_stats and pmv_ctx_stats are PAGEMOVE_0.3
 * symbols. Programs built against 0.1 or 0.2 still call the PAGEMOVE_0.1
 * ones, which read a 0.1 pmv_config and fill a 0.1-sized struct: a 0.1
 * program works as before. A 0.2 program, which cannot be told apart,
 * has its pmv_config.policy ignored (the PAGEMOVE_POLICY* variables still
 * apply) and its pmv_ctx_stats fields from demoted on left as they were;
 * every field of its pmv_tier_stats is filled. Rebuild it to get them all.
 * 0.4's pmv_tier_config.kind, level and path took the first three words
 * of 0.3's resv, under the same symbols; so did 0.5's huge-page coverage
 * in pmv_ctx_stats and its THP pool counters in pmv_tier_stats (thp_fail,
 * thp_compact, thp_compact_ok, thp_pieces; pmv_collapse is a PAGEMOVE_0.5
 * symbol), and 0.5's proactive demotion (pmv_policy_config.proactive_idle_s,
 * pmv_ctx_stats.proactive).
 */

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PMV_VERSION_MAJOR	0
#define PMV_VERSION_MINOR	5

#define PMV_MAX_TIERS		16
#define PMV_NODE_ANY		(-1)	/* tier not bound to a NUMA node */
#define PMV_TIER_DEFAULT	(-1)	/* pmv_mmap(): prefer tier 0 */

typedef struct pmv_ctx pmv_ctx;

/*
 * Tier kinds (pmv_tier_config.kind, since 0.4). A memory tier holds mapped
 * pages in RAM on its node. A far tier holds pages that are not mapped:
 * their content lives in a store, and an access faults them back into a
 * memory tier. Far tiers come after every memory tier (tier 0 is always
 * memory), have no node, and their capacity counts the bytes their store
 * really uses, allocator waste included. Data at rest is not encrypted,
 * as with the kernel's swap; store files are readable by their owner only.
 * A migration to a far tier evicts the page (its address is left empty,
 * its status is the far tier); its next access, from user or kernel mode,
 * faults it back into the region's policy tier, or the first memory tier
 * with room; where every tier is full and nothing can be evicted (pinned,
 * locked or shared pages), into the first one over its capacity, since its
 * bytes exist. A page that cannot be loaded (read error, checksum mismatch)
 * gets SIGBUS at the access, never wrong bytes. fork() loads every evicted
 * page back first. Far tiers need the full mode: in user-mode-only mode
 * pmv_create() refuses them with EOPNOTSUPP.
 */
enum pmv_tier_kind {
	PMV_TIER_MEM = 0,	/* memory (the only kind before 0.4) */
	PMV_TIER_LZ4,		/* compressed in RAM with lz4 */
	PMV_TIER_ZSTD,		/* compressed in RAM with zstd at `level` */
	PMV_TIER_FILE,		/* an unnamed file in directory `path`, or block device `path` */
	PMV_TIER_KIND_NR
};

struct pmv_tier_config {
	const char *name;	/* for stats and messages; may be NULL */
	int node;		/* NUMA node, or PMV_NODE_ANY (far tiers: PMV_NODE_ANY) */
	size_t capacity;	/* bytes; 0 means unlimited */
	int kind;		/* enum pmv_tier_kind; 0: memory (0.4) */
	int level;		/* PMV_TIER_ZSTD: zstd level, 0 means 3; else 0 (0.4) */
	const char *path;	/* PMV_TIER_FILE: directory or block device; else NULL (0.4) */
	uint64_t resv[3];	/* zero */
};

/*
 * Parse the text form of a tier list (the CLI's and PAGEMOVE_TIERS's):
 * tiers separated by commas, fastest first, each KIND[@WHERE][:CAPACITY]:
 *   mem[@NODE]          memory, on NUMA node NODE (default: any node)
 *   lz4                 compressed in RAM with lz4
 *   zstd[@LEVEL]        compressed in RAM with zstd at LEVEL (default 3;
 *                       negative levels are zstd's fast ones)
 *   file@DIR|@DEVICE    an unnamed file in directory DIR, or a block device
 * CAPACITY is a byte count with an optional K, M, G or T suffix (powers
 * of 1024, either case), not 0; without it the tier is unlimited. WHERE may contain neither ','
 * nor ':'. Blanks around a tier are ignored. Example:
 * "mem@0:512M,lz4:1G,file@/var/tmp:8G".
 * Fills tiers[0..n) (each zeroed first; name is "KIND[@WHERE]") and returns
 * n; names and paths are copied into buf, of buflen bytes, for which
 * strlen(text) + 1 always suffices. The list is checked as pmv_create()
 * checks it, except that nodes are not looked up. Errors, with pmv_errmsg()
 * naming the tier at fault: -EINVAL (syntax, unknown kind, bad WHERE, a
 * far tier before a memory tier, no memory tier), -ERANGE (a number too
 * large), -E2BIG (more than max tiers), -ENOBUFS (buf too small). On
 * error tiers and buf hold nothing useful.
 * Threads: any.
 */
int pmv_tiers_parse(const char *text, struct pmv_tier_config *tiers, unsigned max,
		    char *buf, size_t buflen);

/* pmv_config.flags */
#define PMV_CTX_USER_MODE_ONLY	(1U << 0) /* force the unprivileged fallback mode */
#define PMV_CTX_VERIFY		(1U << 1) /* check each moved page's real node */
/*
 * Copy 2 MB pages under write-protect, so readers keep running during the
 * copy. A DMA through a pin taken before the write-protect (O_DIRECT read,
 * process_vm_writev) can still write the old page, so each page is
 * compared after it is unmapped and copied again if it changed: safe, but
 * it reads every page twice. Default: unmap first, as the kernel does.
 */
#define PMV_CTX_WP_COPY		(1U << 2)
/*
 * Keep the fault handlers SCHED_OTHER. By default, when permitted (root,
 * CAP_SYS_NICE), they run SCHED_FIFO at priority 1, so that a fault is
 * answered as soon as it arrives rather than after the next tick; they
 * only sleep or answer faults. The PAGEMOVE_FAULT_NO_RT variable sets it too.
 */
#define PMV_CTX_NO_RT		(1U << 3)

/*
 * Copy engines (pmv_config.copy_engine). The environment variable
 * PAGEMOVE_COPY=auto|memcpy|nt|parallel|offload fills it in when it is
 * PMV_COPY_AUTO (0), and never overrides another engine.
 */
enum pmv_copy_engine {
	PMV_COPY_AUTO = 0,	/* by batch size, then the fastest lately */
	PMV_COPY_MEMCPY,
	PMV_COPY_NT,		/* AVX2 non-temporal stores (memcpy without AVX2) */
	PMV_COPY_PARALLEL,	/* copy threads and the caller split the work */
	PMV_COPY_OFFLOAD,	/* a copy-thread engine: the batch goes to the copy
				 * threads and the caller waits (no DMA hardware) */
	PMV_COPY_NR
};

/*
 * The tiering policy (docs/TIERING.md). A policy thread samples pages by
 * unmapping them (the next access takes a fault that records it and maps
 * the page straight back), ages them on each tier's two-list LRU, and keeps
 * hot pages in faster tiers: it demotes the coldest pages of a tier whose
 * free space falls below its low watermark, promotes hot pages of the next
 * slower tier while a tier has room above its high watermark, and exchanges
 * hot slow pages with cold fast ones when it has none. Pages move one tier
 * at a time, within a bandwidth budget, after a minimum residency.
 */
enum pmv_policy_mode {
	PMV_POLICY_AUTO = 0,	/* track and migrate (default with 2+ tiers) */
	PMV_POLICY_TRACK,	/* track only; migrate on pmv_tier_balance() */
	PMV_POLICY_OFF,		/* neither: no page is ever unmapped to sample */
};

/*
 * Every field's 0 means its default; each has an environment variable that
 * fills it in when it is 0, and never overrides a value the program set
 * (PAGEMOVE_POLICY=auto|track|off, and the name in brackets).
 */
struct pmv_policy_config {
	int mode;			/* enum pmv_policy_mode */
	unsigned interval_ms;		/* policy period [POLICY_INTERVAL_MS]: 100 */
	unsigned migrate_mbps;		/* migration budget, MB/s [MIGRATE_MBPS]: 256 */
	unsigned track_cpu_permille;	/* tracking CPU, of one core [TRACK_CPU_PERMILLE]:
					 * 15, at most 20 */
	unsigned min_residency_ms;	/* no move sooner after one [MIN_RESIDENCY_MS]: 1000 */
	unsigned exchange_margin_pct;	/* hotter by this much to exchange
					 * [EXCHANGE_MARGIN_PCT]: 100 */
	unsigned promote_min_heat;	/* accesses/s to promote [PROMOTE_MIN_HEAT]: 20 */
	/* free-space watermarks, per mille of capacity, each at least one page
	 * [WMARK_MIN_PERMILLE...]: 10, 20, 40 */
	unsigned wmark_min_permille, wmark_low_permille, wmark_high_permille;
	/*
	 * Proactive demotion (0.5), in the spirit of TMO: a page the sampler
	 * finds unused for this long moves one tier down, even with room
	 * left, within the migration budget [PROACTIVE_IDLE_S]: 0, off;
	 * at most 3600. AUTO mode only.
	 */
	unsigned proactive_idle_s;
	unsigned resv[5];		/* zero */
};

struct pmv_config {
	unsigned ntiers;			/* 1..PMV_MAX_TIERS */
	const struct pmv_tier_config *tiers;	/* tier 0 is the fastest */
	unsigned copy_threads;			/* 0: one per CPU, less one */
	unsigned flags;				/* PMV_CTX_* */
	int copy_engine;			/* enum pmv_copy_engine */
	const struct pmv_policy_config *policy;	/* NULL: all defaults */
	uint64_t resv[8];			/* zero */
};

/*
 * Create a context: probe the kernel, open the userfaultfd, set up the tiers'
 * pools and start the fault-handler thread (and copy threads for the auto,
 * parallel and offload engines, and the policy thread with 2+ tiers).
 * Returns NULL and sets errno: EINVAL (bad config, a non-zero resv word in
 * cfg, its tiers or its policy, unknown PAGEMOVE_COPY,
 * bad policy knob or PAGEMOVE_POLICY* variable, a bad tier kind, level or
 * path, a far tier before a memory tier), ENODEV (a tier's node does not exist or
 * has no memory), EOPNOTSUPP (kernel lacks UFFD_FEATURE_MOVE or anonymous
 * WP; a far tier in user-mode-only mode), EPERM (userfaultfd not permitted at all), EACCES (/proc/self/pagemap
 * cannot be opened), EAGAIN (no copy thread could start for the parallel
 * or offload engine), ENOMEM.
 * Threads: any.
 */
pmv_ctx *pmv_create(const struct pmv_config *cfg);
/* (A cfg with tiers NULL and ntiers 0 takes them from PAGEMOVE_TIERS, in
 * pmv_tiers_parse()'s text form; a set one that does not parse: EINVAL.) */

/*
 * Stop the fault thread and release everything: regions are unmapped.
 * Threads: any, but no other call on ctx may be in flight or follow.
 */
void pmv_destroy(pmv_ctx *ctx);

/* pmv_mmap() flags */
#define PMV_HUGE	(1 << 0) /* 2 MB pages (THP), region 2 MB aligned */
#define PMV_BIND	(1 << 1) /* bind to the tier: no fallback */
#define PMV_POPULATE	(1 << 2) /* place every page now, not at first touch */

/*
 * Map len bytes of managed memory (rounded up to the page size) whose pages
 * are first placed on `tier` (or PMV_TIER_DEFAULT = 0). Without PMV_BIND a
 * full tier falls back to the other tiers in index order; with PMV_BIND a
 * first touch that finds the tier full gets SIGBUS, as a fault the kernel
 * cannot satisfy would; lack of address space never does: it is reserved
 * here, and under RLIMIT_AS the call fails with ENOMEM instead. Managed
 * memory is never populated here nor locked, even after
 * mlockall(MCL_FUTURE). Returns NULL and sets errno: EINVAL (also for a
 * far tier: first touches go to memory tiers), ENOMEM,
 * EOPNOTSUPP (PMV_HUGE with THP disabled), ECHILD.
 * Threads: any.
 */
void *pmv_mmap(pmv_ctx *ctx, size_t len, int tier, int flags);

/*
 * Unmap a whole region: addr is what pmv_mmap() returned and len its length.
 * After the program's own munmap(2) or mremap(2) of part of it, the same
 * range unmaps the pieces left (and only those). Waits for migrations in
 * flight on it. -EINVAL for anything that is not exactly one region or its
 * pieces (including a second unmap).
 * Threads: any.
 */
int pmv_munmap(pmv_ctx *ctx, void *addr, size_t len);

/* pmv_move_pages() and pmv_mbind() flags */
#define PMV_MOVE	(1 << 0) /* pmv_mbind(): move existing pages to comply */
#define PMV_MOVE_ALL	(1 << 1) /* also move pages shared with another process */
#define PMV_MPOL_BIND	(1 << 2) /* pmv_mbind(): bind instead of prefer */
#define PMV_MF_STRICT	(1 << 3) /* pmv_mbind(): -EIO if a page could not move */
/*
 * pmv_move_pages(), pmv_exchange_pages(), pmv_migrate() (since 0.5): never
 * wait for another thread: not for a page lock (a fault in progress,
 * another move), a pool refill in flight, far-tier file I/O, a discard's
 * pending zap, or the fork and regions locks. A page that would need one
 * gets -EAGAIN at once (a whole call that would wait for a lock: every
 * entry). The caller's own work (copies, pool pages it populates) is done.
 */
#define PMV_MOVE_NONBLOCK	(1 << 4)

/*
 * The analog of move_pages(2). With tiers == NULL, status[i] is the tier of
 * pages[i]. Otherwise pages[i] moves to tiers[i] and status[i] is its tier
 * afterwards or a negative errno:
 *   -EFAULT not in a managed region    -ENOENT never touched
 *   -EBUSY  in use, could not move (locked by another move, pinned, or
 *           in a range the program made read-only, PROT_NONE or mlocked)
 *   -ENOMEM target full / no pool page
 *   -EACCES shared with another process and no PMV_MOVE_ALL
 *   -EINVAL no such tier
 *   -EIO    the copy failed (the page stayed, intact), or, with
 *           PMV_CTX_VERIFY, the page moved but is not on its tier's node;
 *           a far tier's write failed, or its read (the page stays far)
 *   -ENOSPC a far target is full (capacity, file system): page stayed
 *   -EMSGSIZE a compressed far target: not below 3/4 compressed, and no
 *           later far tier took it (page stayed)
 *   -EAGAIN  PMV_MOVE_NONBLOCK only: moving it now would wait (page
 *           stayed); a later try may pass
 * A page the program discards (MADV_DONTNEED/FREE) or unmaps while it
 * moves reads as the kernel says it must, and reports -ENOENT (or -EFAULT).
 * In a PMV_HUGE region any address inside a 2 MB page names the whole page,
 * which moves whole. Entries run in order, as in move_pages(2): a page named
 * more than once ends where its last entry sends it, and each entry's
 * status is the page's tier after that entry (or why that entry failed).
 * Returns 0 if every entry moved its page (or, for a query, found it),
 * else the number that did not, or a negative errno for an invalid call:
 * -EINVAL (NULL arrays with count > 0, unknown flags), -E2BIG (count over
 * INT32_MAX), -ECHILD (in a fork child).
 * Threads: any.
 */
int pmv_move_pages(pmv_ctx *ctx, size_t count, void *const pages[],
		   const int tiers[], int status[], int flags);

/*
 * Exchange pages pairwise (exchange migration): a[i] takes b[i]'s tier and
 * b[i] takes a[i]'s, with no free page needed on either tier, so it works
 * when both are exactly full. Both pages are unmapped while their contents
 * change pages, so no thread ever sees a half-exchanged page; each side's
 * data goes into a fresh page, so a pipe holding an old one (vmsplice)
 * never sees the other's data. A pair is two 4 KB or two 2 MB pages.
 * status[i] is 0 or a negative errno as in pmv_move_pages(), plus -EINVAL
 * for a mixed pair or a page paired with itself. Exchange does not
 * un-share: a page known to be shared with another process gets -EACCES
 * (-EBUSY with PMV_MOVE_ALL), one not yet known to
 * be shared -EBUSY; pmv_move_pages(PMV_MOVE_ALL) un-shares. flags: 0,
 * PMV_MOVE_ALL, PMV_MOVE_NONBLOCK (-EAGAIN as in pmv_move_pages). Returns 0 if
 * every pair was exchanged, else the number that were not, or a negative
 * errno for an invalid call (-EINVAL, -E2BIG, -ECHILD).
 * Threads: any.
 */
int pmv_exchange_pages(pmv_ctx *ctx, size_t count, void *const a[],
		       void *const b[], int status[], int flags);

/*
 * Switch the copy engine at run time (enum pmv_copy_engine). Batches in
 * flight finish with the engine they started with. The copy threads of
 * parallel, offload and auto are started here if the context has none yet.
 * -EINVAL for an unknown engine; -ENODEV for parallel or offload when no
 * copy thread can start.
 * Threads: any.
 */
int pmv_set_copy_engine(pmv_ctx *ctx, int engine);

/*
 * The analog of migrate_pages(2) on tier masks (bit i = tier i): every page
 * on the k-th tier of from_tiers moves to the k-th tier of to_tiers, or to
 * the last one if to_tiers has fewer. flags may hold PMV_MOVE_ALL and
 * PMV_MOVE_NONBLOCK (a page that would wait is skipped and counted). Returns
 * the number of pages not moved or a negative errno (-EINVAL: empty or
 * out-of-range masks, unknown flags).
 * Threads: any.
 */
long pmv_migrate(pmv_ctx *ctx, unsigned long from_tiers,
		 unsigned long to_tiers, int flags);

/*
 * The analog of mbind(2): set the placement policy of [addr, addr+len),
 * which must lie in one region and be aligned to its page size. Default
 * mode prefers `tier` (PMV_TIER_DEFAULT: tier 0); PMV_MPOL_BIND binds to it.
 * PMV_MOVE moves existing pages to comply, PMV_MOVE_ALL (alone or with
 * PMV_MOVE) shared ones too; with a move flag and PMV_MF_STRICT, a page
 * that could not be moved makes the call return -EIO. Errors: -EINVAL (bad
 * tier, flags, alignment, empty range), -EFAULT (not managed, or the range
 * leaves its region), -ENOMEM.
 * Threads: any.
 */
int pmv_mbind(pmv_ctx *ctx, void *addr, size_t len, int tier, int flags);

/*
 * Switch the policy mode at run time (enum pmv_policy_mode). Turning it
 * off maps every sampled page back before returning. -EINVAL for an
 * unknown mode.
 * Threads: any.
 */
int pmv_tier_policy(pmv_ctx *ctx, int mode);

/*
 * Run one policy round now, in the calling thread, whatever the mode (with
 * PMV_POLICY_OFF it has no access information, so it only enforces the
 * watermarks). Each call may move up to one second's bandwidth budget:
 * callers that loop on it pace themselves. Returns the number of pages
 * moved (an exchange counts two) or a negative errno.
 * Threads: any; rounds never overlap (a call waits for the policy thread's).
 */
long pmv_tier_balance(pmv_ctx *ctx, int flags);

/* Failure causes counted in pmv_tier_stats.fail[]. */
enum pmv_fail {
	PMV_FAIL_BUSY,		/* -EBUSY */
	PMV_FAIL_NOMEM,		/* -ENOMEM */
	PMV_FAIL_ACCES,		/* -EACCES */
	PMV_FAIL_NOENT,		/* -ENOENT */
	PMV_FAIL_OTHER,
	PMV_FAIL_NR
};

struct pmv_tier_stats {
	char name[32];
	int node;
	uint64_t capacity;		/* bytes, 0 = unlimited */
	uint64_t resident_4k;		/* pages mapped in regions */
	uint64_t resident_2m;
	uint64_t resident_bytes;
	uint64_t pool_4k;		/* free pages held for migrations */
	uint64_t pool_2m;
	uint64_t pool_bytes;
	uint64_t first_touch;		/* pages placed here by a fault */
	uint64_t fallback_in;		/* first touches that fell back here */
	uint64_t migrate_in;		/* pages moved here */
	uint64_t migrate_out;		/* pages moved away */
	uint64_t migrate_bytes_in;
	uint64_t fail[PMV_FAIL_NR];	/* failed moves *to* this tier, by cause */
	uint64_t verify_errors;		/* pages found on the wrong node */
	uint64_t active;		/* pages on the active LRU list */
	uint64_t inactive;		/* pages on the inactive LRU list */
	uint64_t parked;		/* pages unmapped for sampling now */
	uint64_t wmark_min, wmark_low, wmark_high;	/* free bytes */
	uint64_t promote_in;		/* pages the policy promoted here */
	uint64_t demote_in;		/* pages the policy demoted here */
	/*
	 * Far tiers (since 0.4; zero on a memory tier, and from an older
	 * library). resident_* count the pages stored here; capacity bounds
	 * stored_bytes.
	 */
	uint64_t kind;			/* enum pmv_tier_kind (0.4) */
	uint64_t stored_pages;		/* pages in the store now, same-filled included */
	uint64_t stored_bytes;		/* bytes the store uses, allocator waste included */
	uint64_t stored_page_bytes;	/* the bytes of those pages, uncompressed */
	double ratio;			/* stored_page_bytes / stored_bytes; 0: empty */
	uint64_t same_filled;		/* stored pages of one repeated word: no storage */
	uint64_t incompressible;	/* pages not below 3/4 compressed: refused, or
					 * kept as they are for a fault's reclaim */
	uint64_t faults_in;		/* pages an access faulted back in from here */
	uint64_t fault_in_ns;		/* their handlers' time, load and map: / faults_in */
	uint64_t io_errors;		/* failed reads and writes, checksum mismatches */
	/*
	 * 2 MB pool pages (0.5): MADV_COLLAPSE failed (no free 2 MB block on
	 * the node); node compactions the library asked for then (root only,
	 * at most one a second); pages made huge by the retry after one.
	 */
	uint64_t thp_fail, thp_compact, thp_compact_ok;
	uint64_t thp_pieces;		/* first touches with no THP to be had: mapped
					 * as 4 KB pieces, coalesced later (0.5) */
	uint64_t resv[2];		/* zero */
};

/*
 * Snapshot of one tier's counters. -EINVAL for a bad tier or NULL st.
 * Threads: any; counters are read without stopping the world.
 */
int pmv_tier_stats(pmv_ctx *ctx, int tier, struct pmv_tier_stats *st);

/* pmv_ctx_stats.mode */
#define PMV_MODE_FULL		0 /* kernel-mode accesses wait in faults */
#define PMV_MODE_USER_ONLY	1 /* UFFD_USER_MODE_ONLY: memory populated,
				   * no access tracking, so no tiering policy */

/* pmv_ctx_stats.mode_why: why pmv_create() chose that mode */
enum pmv_mode_why {
	PMV_MODE_WHY_UNKNOWN = 0, /* a library before 0.3 says nothing */
	PMV_MODE_WHY_DEVICE,	/* full: /dev/userfaultfd could be opened */
	PMV_MODE_WHY_SYSCALL,	/* full: userfaultfd(2) allowed kernel-mode faults
				 * (CAP_SYS_PTRACE or vm.unprivileged_userfaultfd = 1) */
	PMV_MODE_WHY_ASKED,	/* user-only: PMV_CTX_USER_MODE_ONLY */
	PMV_MODE_WHY_DENIED,	/* user-only: /dev/userfaultfd failed (mode_errno)
				 * and userfaultfd(2) refused kernel-mode faults */
};

struct pmv_ctx_stats {
	unsigned mode;
	unsigned ntiers;
	uint64_t regions;
	uint64_t faults_missing;	/* MISSING faults read */
	uint64_t faults_wp;		/* WP faults read */
	uint64_t faults_first_touch;	/* pages placed by a fault */
	uint64_t faults_waited;		/* faults that met a migration */
	uint64_t faults_sigbus;		/* first touches that found no room */
	uint64_t migrations;		/* pages moved */
	uint64_t migrate_bytes;
	/* tiering (pmv_policy_config) */
	int policy_mode;		/* enum pmv_policy_mode now */
	uint64_t parked;		/* pages unmapped for sampling now */
	uint64_t samples;		/* pages ever unmapped for sampling */
	uint64_t sample_faults;		/* accesses those samples caught */
	uint64_t track_ns;		/* time spent tracking (policy + fault thread) */
	uint64_t track_wall_ns;		/* time tracking has been on */
	double track_cpu_fraction;	/* track_ns / track_wall_ns: of one core */
	uint64_t promoted, demoted;	/* pages moved by the policy */
	uint64_t exchanged;		/* pairs exchanged by the policy */
	uint64_t policy_bytes;		/* bytes the policy moved */
	uint64_t policy_rounds;
	unsigned mode_why;		/* enum pmv_mode_why (since 0.3) */
	int mode_errno;			/* PMV_MODE_WHY_DENIED: the errno of
					 * /dev/userfaultfd (ENOENT: none) */
	uint64_t faults_ahead;		/* of faults_first_touch, pages mapped
					 * ahead of a sequential stream (0.4) */
	/*
	 * Huge-page coverage (0.5): of the PMV_HUGE bytes mapped now (2 MB
	 * pages present at their address: not evicted, not parked), those
	 * mapped by one PMD each, i.e. still transparent huge pages.
	 */
	uint64_t huge_bytes;
	uint64_t huge_pmd_bytes;
	double huge_coverage;		/* huge_pmd_bytes / huge_bytes; 0 when none */
	uint64_t collapsed;		/* 2 MB pages coalesced into one PMD (0.5) */
	uint64_t proactive;		/* of demoted, pages idle proactive_idle_s (0.5) */
	uint64_t resv[9];		/* zero */
};

/* Threads: any. */
int pmv_ctx_stats(pmv_ctx *ctx, struct pmv_ctx_stats *st);

/*
 * Coalesce (since 0.5): every 2 MB page of a PMV_HUGE region that overlaps
 * [addr, addr+len) and is mapped by 4 KB pieces rather than one PMD (after
 * a partial MADV_DONTNEED, a copy-on-write after fork, ...) is migrated
 * within its tier into a fresh huge page and mapped back as one PMD: the
 * pieces present are copied, the discarded ones read as zeros, as before.
 * Non-blocking, as PMV_MOVE_NONBLOCK: a page a fault or another call
 * holds is left for a later call; evicted and sampled (parked) pages are
 * not mapped, and are left. Memory of other regions in the range is
 * ignored. flags: 0. Returns the number of split pages left split (0:
 * the range is all huge pages now), or -EINVAL (flags, empty or wrapping
 * range), -EFAULT (no managed memory in the range), -EOPNOTSUPP (the
 * kernel keeps empty page tables: no CONFIG_PT_RECLAIM), -EAGAIN (a fork
 * or a region change is under way), -ECHILD.
 * Threads: any.
 */
int pmv_collapse(pmv_ctx *ctx, void *addr, size_t len, int flags);

/* The number of tiers, or a negative errno. Threads: any. */
int pmv_tier_count(pmv_ctx *ctx);

/* Library version; compare with PMV_VERSION_* to catch a header mismatch. */
int pmv_version_major(void);
int pmv_version_minor(void);
const char *pmv_version(void);

/*
 * Text for a negative errno or status code above; any value >= 0 (a tier)
 * is "success", so negate an errno value first. Thread-safe (unknown codes
 * fall back to strerror(3)).
 */
const char *pmv_strerror(int err);

/*
 * A sentence about the calling thread's latest failure that had one to say
 * (which feature the kernel lacks, which node is missing...), or "". A
 * successful call does not clear it: read it right after a failure.
 */
const char *pmv_errmsg(void);

#ifdef __cplusplus
}
#endif

#endif /* PAGEMOVE_H */
