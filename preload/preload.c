/* SPDX-License-Identifier: MIT */
/*
 * libpagemove-preload.so: puts an unmodified program's large anonymous
 * private memory in managed memory (pagemove run, docs/DESIGN.md "Preload").
 *
 * Two doors: mmap/mmap64 (what jemalloc, Python's arenas and programs' own
 * buffers use) and the malloc family (glibc's malloc maps its large blocks
 * with an internal __mmap that no preload can interpose). Everything else
 * (munmap, mremap, madvise, mprotect, fork) is the kernel's call on memory
 * the library already follows through its userfaultfd events, so it is not
 * interposed. The library is linked into this object (its PIC objects,
 * symbols local), so a program that links libpagemove itself keeps its own.
 *
 * Recursion: the library maps and allocates too. A call made while this
 * thread is inside the library (in_lib, set around every pmv_* call and in
 * the stats thread), or whose caller is code of this object (the library's
 * own threads), passes straight through. The real functions come from
 * dlsym(RTLD_NEXT); until they are resolved, mmap is the raw system call
 * and malloc a small static arena (dlsym itself allocates).
 *
 * A program that loads an allocator of its own (redis with libjemalloc.so)
 * keeps it: every malloc-family call goes to it untouched, since its other
 * calls (malloc_usable_size, mallocx) must see its own pointers, and it
 * maps its memory with mmap, which is caught here.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <signal.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pagemove.h"
#include "preload.h"

#define EXPORT __attribute__((visibility("default")))
#define PAGE_4K		4096UL
#define SIZE_2M		(2UL << 20)

extern void *__libc_malloc(size_t);
extern void *__libc_memalign(size_t, size_t);
extern size_t malloc_usable_size(void *);

/* The library's posix_memalign (Makefile: PRELOAD_REDEFINE), glibc's. */
int _pmvp_libc_posix_memalign(void **out, size_t align, size_t n);
int _pmvp_libc_posix_memalign(void **out, size_t align, size_t n)
{
	void *p = __libc_memalign(align, n);

	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

/* The library's, linked in (src/internal.h): fault-around's default. */
void _pmv_fault_around_default(unsigned pages);

/*
 * Fault-around of 16 pages (64 KB, the kernel's usual anonymous mTHP
 * size): allocators touch a fresh arena in scattered order (Python's
 * 16 KB pools, one page of each first), which map-ahead's streams miss.
 * python3 -c pass took 174 round trips to the handlers, and with it 46,
 * for 190 KB more resident (docs/DESIGN.md "Preload").
 */
#define PRELOAD_AROUND	16

/* this object's own image: a caller inside it is the library */
extern const char __ehdr_start[];
extern const char etext[];

static __thread int in_lib __attribute__((tls_model("initial-exec")));

static struct _pmvp_config cfg;
static pmv_ctx *ctx;
static enum { ST_UNINIT, ST_READY, ST_OFF } state;
static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t stats_thread;
static bool stats_running;
static pid_t owner_pid;		/* the process the context belongs to */
static bool forked;		/* a fork child: no stats file */

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
static mmap_fn real_mmap_fn;
static int resolving;

static void *sys_mmap(void *a, size_t l, int p, int f, int fd, off_t o)
{
	return (void *)syscall(SYS_mmap, a, l, p, f, fd, o);
}

static void *real_mmap(void *a, size_t l, int p, int f, int fd, off_t o)
{
	mmap_fn fn = __atomic_load_n(&real_mmap_fn, __ATOMIC_ACQUIRE);

	if (!fn && !__atomic_exchange_n(&resolving, 1, __ATOMIC_ACQ_REL)) {
		in_lib++;
		fn = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
		in_lib--;
		if (fn)
			__atomic_store_n(&real_mmap_fn, fn, __ATOMIC_RELEASE);
		else
			__atomic_store_n(&resolving, 0, __ATOMIC_RELEASE);
	}
	return fn ? fn(a, l, p, f, fd, o) : sys_mmap(a, l, p, f, fd, o);
}

static bool caller_is_ours(const void *ra)
{
	return (const char *)ra >= __ehdr_start && (const char *)ra < etext;
}

static void warn(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "pagemove-preload[%d]: ", (int)getpid());

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(2, buf, n) < 0)
		return;
}

/* ---- the allocator behind this one --------------------------------------- */

static struct {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	void *(*memalign)(size_t, size_t);
	size_t (*usable)(void *);
} nx;
static int nx_state;	/* 0 unresolved, 1 resolving, 2 resolved */
static bool foreign;	/* not glibc's: forward everything to it */

/* Allocations made while dlsym resolves the allocator: never freed. */
static _Alignas(64) char boot[64 << 10];
static size_t boot_used;

static void *boot_alloc(size_t n, size_t align)
{
	size_t hdr = align > 16 ? align : 16, at, end;

	do {
		at = __atomic_load_n(&boot_used, __ATOMIC_RELAXED);
		end = ((at + hdr + align - 1) & ~(align - 1)) + n;
		if (end > sizeof(boot))
			return NULL;
	} while (!__atomic_compare_exchange_n(&boot_used, &at, end, false, __ATOMIC_ACQ_REL,
					      __ATOMIC_RELAXED));
	char *p = boot + (end - n);
	((size_t *)p)[-1] = n;
	return p;
}

static bool in_boot(const void *p)
{
	return (const char *)p >= boot && (const char *)p < boot + sizeof(boot);
}

static bool next_ready(void)
{
	int s = __atomic_load_n(&nx_state, __ATOMIC_ACQUIRE);

	if (s == 2)
		return true;
	if (s == 0 && __atomic_compare_exchange_n(&nx_state, &s, 1, false, __ATOMIC_ACQ_REL,
						  __ATOMIC_ACQUIRE)) {
		in_lib++;
		nx.malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
		nx.free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
		nx.calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
		nx.realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
		nx.memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
		nx.usable = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
		in_lib--;
		if (!nx.malloc || !nx.free || !nx.calloc || !nx.realloc || !nx.memalign ||
		    !nx.usable) {
			__atomic_store_n(&nx_state, 0, __ATOMIC_RELEASE);
			return false;
		}
		/* glibc's malloc is an alias of its __libc_malloc */
		foreign = nx.malloc != __libc_malloc;
		__atomic_store_n(&nx_state, 2, __ATOMIC_RELEASE);
		return true;
	}
	return false;
}

static void *next_malloc(size_t n)
{
	return next_ready() ? nx.malloc(n) : boot_alloc(n, 16);
}

static void *next_calloc(size_t n, size_t m)
{
	size_t t;

	if (next_ready())
		return nx.calloc(n, m);
	return __builtin_mul_overflow(n, m, &t) ? NULL : boot_alloc(t, 16);	/* zero */
}

static void *next_memalign(size_t align, size_t n)
{
	return next_ready() ? nx.memalign(align, n) : boot_alloc(n, align < 16 ? 16 : align);
}

static size_t next_usable(void *p)
{
	if (in_boot(p))
		return ((size_t *)p)[-1];
	return next_ready() ? nx.usable(p) : 0;
}

static void next_free(void *p)
{
	if (p && !in_boot(p) && next_ready())
		nx.free(p);
}

static void *next_realloc(void *p, size_t n)
{
	if (in_boot(p)) {
		size_t old = ((size_t *)p)[-1];
		void *q = next_malloc(n);

		if (q)
			memcpy(q, p, old < n ? old : n);
		return q;
	}
	return next_ready() ? nx.realloc(p, n) : boot_alloc(n, 16);
}

/* The program's allocator is another library's: leave it alone. */
static bool is_foreign(void)
{
	return next_ready() && foreign;
}

/* ---- big blocks of the malloc family ------------------------------------ */

/*
 * Which page-aligned pointers are ours, and their mapping's length: an
 * open-addressing table in memory of its own (never malloc's). A pointer
 * that is not page aligned is never ours, so small frees never look here.
 */
#define BLK_SLOTS	(1U << 16)
#define BLK_TOMB	((uintptr_t)1)
struct blk { uintptr_t addr; size_t len; };
static struct blk *blks;
static unsigned blk_used;	/* live + tombstones */
static pthread_mutex_t blk_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned blk_hash(uintptr_t a)
{
	return (unsigned)((a >> 12) * 0x9E3779B97F4A7C15ULL >> 48) & (BLK_SLOTS - 1);
}

/* Remember [a, a+len). false when the table is full (the caller unmaps). */
static bool blk_add(void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;
	bool ok = false;

	pthread_mutex_lock(&blk_lock);
	if (!blks) {
		void *t = real_mmap(NULL, BLK_SLOTS * sizeof(*blks), PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (t != MAP_FAILED)
			blks = t;
	}
	if (blks && blk_used < BLK_SLOTS * 3 / 4) {
		for (unsigned i = blk_hash(a);; i = (i + 1) & (BLK_SLOTS - 1)) {
			if (blks[i].addr == 0 || blks[i].addr == BLK_TOMB) {
				if (blks[i].addr == 0)
					blk_used++;
				blks[i].addr = a;
				blks[i].len = len;
				ok = true;
				break;
			}
		}
	}
	pthread_mutex_unlock(&blk_lock);
	return ok;
}

/* The length of our block at p (and forget it if remove), or 0. */
static size_t blk_find(const void *p, bool remove)
{
	uintptr_t a = (uintptr_t)p;
	size_t len = 0;

	if (!p || (a & (PAGE_4K - 1)) || !__atomic_load_n(&blks, __ATOMIC_ACQUIRE))
		return 0;
	pthread_mutex_lock(&blk_lock);
	for (unsigned i = blk_hash(a); blks[i].addr; i = (i + 1) & (BLK_SLOTS - 1)) {
		if (blks[i].addr == a) {
			len = blks[i].len;
			if (remove)
				blks[i].addr = BLK_TOMB;
			break;
		}
	}
	pthread_mutex_unlock(&blk_lock);
	return len;
}

static void blk_set_len(const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;

	pthread_mutex_lock(&blk_lock);
	for (unsigned i = blk_hash(a); blks[i].addr; i = (i + 1) & (BLK_SLOTS - 1))
		if (blks[i].addr == a) {
			blks[i].len = len;
			break;
		}
	pthread_mutex_unlock(&blk_lock);
}

/* ---- the context -------------------------------------------------------- */

static void config_load(void);

/*
 * The settings, read at the first call that needs them: malloc runs
 * before this object's constructor (ld.so, libc and other constructors
 * allocate). Until they are read by someone, a call is passed through.
 */
static int cfg_state;	/* 0 unread, 1 reading, 2 read */

static bool config_ready(void)
{
	int s = __atomic_load_n(&cfg_state, __ATOMIC_ACQUIRE);

	if (s == 2)
		return true;
	if (s == 0 && __atomic_compare_exchange_n(&cfg_state, &s, 1, false, __ATOMIC_ACQ_REL,
						  __ATOMIC_ACQUIRE)) {
		in_lib++;
		config_load();
		in_lib--;
		__atomic_store_n(&cfg_state, 2, __ATOMIC_RELEASE);
		return true;
	}
	return false;
}

static void *stats_main(void *arg);
static void stats_sweep(void);

/*
 * One context per process, made at the first mapping that wants one. A
 * failure, or user-mode-only without PAGEMOVE_RUN_ALLOW_USER_MODE (it
 * populates every region: a sparse heap would become resident), leaves
 * the process on plain memory with one message.
 */
static pmv_ctx *get_ctx(void)
{
	if (__atomic_load_n(&state, __ATOMIC_ACQUIRE) == ST_READY)
		return ctx;
	if (state == ST_OFF)
		return NULL;
	in_lib++;
	pthread_mutex_lock(&ctx_lock);
	if (state == ST_UNINIT) {
		struct pmv_config pc = { 0 };
		struct pmv_policy_config pol = { .mode = cfg.policy };
		struct pmv_ctx_stats cs;
		pmv_ctx *c;

		pc.ntiers = cfg.ntiers;
		pc.tiers = cfg.tiers;
		pc.policy = &pol;
		_pmv_fault_around_default(PRELOAD_AROUND);
		c = pmv_create(&pc);
		if (!c) {
			warn("no managed memory: pmv_create: %s%s%s", strerror(errno),
			     *pmv_errmsg() ? ": " : "", pmv_errmsg());
			__atomic_store_n(&state, ST_OFF, __ATOMIC_RELEASE);
		} else if (pmv_ctx_stats(c, &cs) == 0 && cs.mode != PMV_MODE_FULL &&
			   !cfg.allow_user_mode) {
			warn("no managed memory: the userfaultfd is user-mode-only (full mode needs "
			     "/dev/userfaultfd access, CAP_SYS_PTRACE or "
			     "vm.unprivileged_userfaultfd=1); PAGEMOVE_RUN_ALLOW_USER_MODE=1 accepts it");
			pmv_destroy(c);
			__atomic_store_n(&state, ST_OFF, __ATOMIC_RELEASE);
		} else {
			ctx = c;
			owner_pid = getpid();
			if (cfg.stats_interval && !forked && (stats_sweep(), 1) &&
			    pthread_create(&stats_thread, NULL, stats_main, NULL) == 0)
				stats_running = true;
			__atomic_store_n(&state, ST_READY, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&ctx_lock);
	in_lib--;
	return state == ST_READY ? ctx : NULL;
}

/* Hugeness for a mapping of len bytes: 2 MB pages only where len is a whole
 * number of them, so that the region is exactly what the caller unmaps. */
static int huge_flags(size_t len)
{
	if (cfg.huge == _PMVP_HUGE_NEVER || len % SIZE_2M)
		return 0;
	return PMV_HUGE;
}

/* len bytes (a multiple of 4 KB) of managed memory, or NULL. */
static void *managed_map(size_t len, int extra)
{
	pmv_ctx *c = get_ctx();
	int flags = huge_flags(len) | extra;
	void *p;

	if (!c)
		return NULL;
	in_lib++;
	p = pmv_mmap(c, len, PMV_TIER_DEFAULT, flags);
	if (!p && (flags & PMV_HUGE))	/* THP off: 4 KB pages */
		p = pmv_mmap(c, len, PMV_TIER_DEFAULT, flags & ~PMV_HUGE);
	in_lib--;
	return p;
}

/* A malloc block of n bytes: its mapping's length, 2 MB pages where
 * rounding up to them costs at most an eighth (or always, --huge always). */
static size_t block_len(size_t n)
{
	size_t l4 = (n + PAGE_4K - 1) & ~(PAGE_4K - 1);
	size_t l2 = (n + SIZE_2M - 1) & ~(SIZE_2M - 1);

	if (l4 < n || l2 < n)
		return 0;
	if (cfg.huge == _PMVP_HUGE_ALWAYS && n >= SIZE_2M)
		return l2;
	if (cfg.huge == _PMVP_HUGE_AUTO && n >= SIZE_2M && l2 - n <= n / 8)
		return l2;
	return l4;
}

/* Our block for n bytes, or NULL (then the caller uses glibc's malloc). */
static void *block_alloc(size_t n)
{
	size_t len;
	void *p;

	if (in_lib || n < cfg.min_size || state == ST_OFF)
		return NULL;
	len = block_len(n);
	if (!len || !(p = managed_map(len, 0)))
		return NULL;
	if (!blk_add(p, len)) {
		munmap(p, len);
		return NULL;
	}
	return p;
}

static bool wanted(size_t n, const void *ra)
{
	return !in_lib && !is_foreign() && config_ready() && n >= cfg.min_size && state != ST_OFF &&
	       !caller_is_ours(ra);
}

EXPORT void *malloc(size_t n)
{
	void *p = wanted(n, __builtin_return_address(0)) ? block_alloc(n) : NULL;

	return p ? p : next_malloc(n);
}

EXPORT void *calloc(size_t n, size_t m)
{
	size_t t;
	void *p = NULL;

	if (!__builtin_mul_overflow(n, m, &t) && wanted(t, __builtin_return_address(0)))
		p = block_alloc(t);	/* fresh managed memory reads zero */
	return p ? p : next_calloc(n, m);
}

EXPORT void free(void *p)
{
	size_t len = blk_find(p, true);

	if (len)
		munmap(p, len);	/* the library follows it (UNMAP event) */
	else
		next_free(p);
}

EXPORT size_t malloc_usable_size(void *p)
{
	size_t len = blk_find(p, false);

	if (len)
		return len;
	return p ? next_usable(p) : 0;
}

/*
 * Growth copies into a new block: mremap would leave the grown tail as
 * plain memory, outside every region. A block that shrinks keeps its
 * mapping, less its tail beyond a page.
 */
EXPORT void *realloc(void *p, size_t n)
{
	size_t len = blk_find(p, false), old;
	void *q;

	if (!len) {
		if (!p || !wanted(n, __builtin_return_address(0)))
			return next_realloc(p, n);
		if (!(q = block_alloc(n)))
			return next_realloc(p, n);
		old = next_usable(p);
		memcpy(q, p, old < n ? old : n);
		next_free(p);
		return q;
	}
	if (n == 0) {
		free(p);
		return NULL;
	}
	if (n <= len) {
		size_t keep = block_len(n);

		/* a shrink keeps 2 MB pages whole: cut only whole tails of the
		 * same page size as the block */
		if (keep && keep < len && (len % SIZE_2M || keep % SIZE_2M == 0) &&
		    munmap((char *)p + keep, len - keep) == 0)
			blk_set_len(p, keep);
		return p;
	}
	q = block_alloc(n);
	if (!q && !(q = next_malloc(n)))
		return NULL;
	memcpy(q, p, len);
	free(p);
	return q;
}

EXPORT void *reallocarray(void *p, size_t n, size_t m)
{
	size_t t;

	if (__builtin_mul_overflow(n, m, &t)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, t);
}

/* Alignment up to a page comes with every block of ours. */
static void *aligned(size_t align, size_t n, const void *ra)
{
	void *p = align <= PAGE_4K && wanted(n, ra) ? block_alloc(n) : NULL;

	return p ? p : next_memalign(align, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	p = aligned(align, n, __builtin_return_address(0));
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	return aligned(align, n, __builtin_return_address(0));
}

EXPORT void *memalign(size_t align, size_t n)
{
	return aligned(align, n, __builtin_return_address(0));
}

EXPORT void *valloc(size_t n)
{
	return aligned(PAGE_4K, n, __builtin_return_address(0));
}

EXPORT void *pvalloc(size_t n)
{
	return aligned(PAGE_4K, (n + PAGE_4K - 1) & ~(PAGE_4K - 1), __builtin_return_address(0));
}

/* ---- mmap ---------------------------------------------------------------- */

/*
 * The program's own anonymous private read-write mappings. Left alone:
 * shared and file mappings, MAP_FIXED (over memory the program chose) and
 * MAP_FIXED_NOREPLACE, stacks, hugetlbfs, MAP_LOCKED, MAP_32BIT, and
 * PROT_NONE or read-only reservations (runtimes reserve gigabytes that
 * way; a region's descriptors would cost 1.5% of them). A hint address
 * is only a hint: the region goes where the library puts it.
 */
static bool mmap_wanted(size_t len, int prot, int flags, const void *ra)
{
	const int refuse = MAP_FIXED | MAP_FIXED_NOREPLACE |
			   MAP_GROWSDOWN | MAP_STACK | MAP_HUGETLB | MAP_LOCKED | MAP_32BIT;

	return !in_lib && config_ready() && state != ST_OFF && len >= cfg.min_size &&
	       (flags & MAP_TYPE) == MAP_PRIVATE && (flags & MAP_ANONYMOUS) &&
	       !(flags & refuse) && prot == (PROT_READ | PROT_WRITE) && !caller_is_ours(ra);
}

static void *do_mmap(void *a, size_t len, int prot, int flags, int fd, off_t off, const void *ra)
{
	/* a foreign allocator maps with its lock held: only on a context made
	 * before (by the constructor; its own first maps are plain) */
	if (mmap_wanted(len, prot, flags, ra) &&
	    (!is_foreign() || __atomic_load_n(&state, __ATOMIC_ACQUIRE) == ST_READY)) {
		void *p = managed_map((len + PAGE_4K - 1) & ~(PAGE_4K - 1),
				      flags & MAP_POPULATE ? PMV_POPULATE : 0);
		if (p)
			return p;
	}
	return real_mmap(a, len, prot, flags, fd, off);
}

EXPORT void *mmap(void *a, size_t len, int prot, int flags, int fd, off_t off)
{
	return do_mmap(a, len, prot, flags, fd, off, __builtin_return_address(0));
}

EXPORT void *mmap64(void *a, size_t len, int prot, int flags, int fd, off_t off)
{
	return do_mmap(a, len, prot, flags, fd, off, __builtin_return_address(0));
}

/* ---- stats for pagemove stat --pid --------------------------------------- */

static void stats_path(char *buf, size_t len, bool tmp)
{
	snprintf(buf, len, "%s/%spagemove-run.%u.%d%s", cfg.stats_dir, tmp ? "." : "",
		 (unsigned)getuid(), (int)getpid(), tmp ? ".tmp" : "");
}

/* Write the stats file: a new file renamed over the old, so a reader sees
 * one whole snapshot; 0600 and never through a symlink. */
static void stats_publish(void)
{
	char path[256], tmp[256], buf[8192];
	struct pmv_ctx_stats cs;
	size_t n = 0;
	int fd, nt;

	if (pmv_ctx_stats(ctx, &cs))
		return;
	nt = pmv_tier_count(ctx);
	n += snprintf(buf + n, sizeof(buf) - n,
		      "pagemove-run 1\npid %d\nmode %s\npolicy %s\nfaults %llu\n"
		      "first_touch %llu\nmigrations %llu\nmigrate_bytes %llu\npromoted %llu\n"
		      "demoted %llu\nexchanged %llu\nsamples %llu\nsample_faults %llu\n"
		      "regions %llu\ntiers %d\n",
		      (int)getpid(), cs.mode == PMV_MODE_FULL ? "full" : "user-mode-only",
		      cs.policy_mode == PMV_POLICY_AUTO ? "auto" :
		      cs.policy_mode == PMV_POLICY_TRACK ? "track" : "off",
		      (unsigned long long)(cs.faults_missing + cs.faults_wp),
		      (unsigned long long)cs.faults_first_touch,
		      (unsigned long long)cs.migrations, (unsigned long long)cs.migrate_bytes,
		      (unsigned long long)cs.promoted, (unsigned long long)cs.demoted,
		      (unsigned long long)cs.exchanged, (unsigned long long)cs.samples,
		      (unsigned long long)cs.sample_faults, (unsigned long long)cs.regions, nt);
	for (int t = 0; t < nt && n < sizeof(buf) - 512; t++) {
		struct pmv_tier_stats ts;

		if (pmv_tier_stats(ctx, t, &ts))
			continue;
		for (char *s = ts.name; *s; s++)
			if (*s == ' ' || *s == '\n')
				*s = '_';
		n += snprintf(buf + n, sizeof(buf) - n,
			      "tier %d %s resident %llu pool %llu capacity %llu migrate_in %llu "
			      "migrate_out %llu first_touch %llu active %llu inactive %llu\n", t,
			      ts.name[0] ? ts.name : "-", (unsigned long long)ts.resident_bytes,
			      (unsigned long long)ts.pool_bytes, (unsigned long long)ts.capacity,
			      (unsigned long long)ts.migrate_in, (unsigned long long)ts.migrate_out,
			      (unsigned long long)ts.first_touch, (unsigned long long)ts.active,
			      (unsigned long long)ts.inactive);
	}
	stats_path(tmp, sizeof(tmp), true);
	stats_path(path, sizeof(path), false);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (write(fd, buf, n) != (ssize_t)n || close(fd) || rename(tmp, path))
		unlink(tmp);
}

/* Remove the files of this user's processes that are gone (killed, or
 * ended by _exit, which runs no destructor). */
static void stats_sweep(void)
{
	char prefix[64], path[512];
	DIR *d = opendir(cfg.stats_dir);
	struct dirent *e;
	size_t n;

	if (!d)
		return;
	n = (size_t)snprintf(prefix, sizeof(prefix), "pagemove-run.%u.", (unsigned)getuid());
	while ((e = readdir(d))) {
		char *end;
		long pid;

		if (strncmp(e->d_name, prefix, n))
			continue;
		pid = strtol(e->d_name + n, &end, 10);
		if (*end || pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", cfg.stats_dir, e->d_name);
		unlink(path);
	}
	closedir(d);
}

static void *stats_main(void *arg)
{
	(void)arg;
	in_lib = 1;	/* this thread's allocations are the library's */
	for (;;) {
		struct timespec ts = { cfg.stats_interval / 1000,
				       (cfg.stats_interval % 1000) * 1000000L };

		stats_publish();
		nanosleep(&ts, NULL);
	}
	return NULL;
}

/* ---- process life --------------------------------------------------------- */

/*
 * fork: the library quiesces migrations and gives the child an ordinary
 * copy of managed memory; the parent's context is not the child's (its
 * calls return ECHILD there). The child makes a context of its own at its
 * first large mapping (stress-ng's workers, a server's forked workers);
 * its blocks from before the fork are plain memory there, freed with
 * munmap as ever. It publishes no stats file: many children end with
 * _exit, which would leave theirs behind. A child that execs gets a
 * context, and a stats file, from the environment.
 */
static void atfork_prepare(void)
{
	pthread_mutex_lock(&ctx_lock);
	pthread_mutex_lock(&blk_lock);
}

static void atfork_parent(void)
{
	pthread_mutex_unlock(&blk_lock);
	pthread_mutex_unlock(&ctx_lock);
}

static void atfork_child(void)
{
	pthread_mutex_unlock(&blk_lock);
	pthread_mutex_unlock(&ctx_lock);
	stats_running = false;
	forked = true;
	ctx = NULL;	/* the parent's: left as it is, its calls would fail */
	if (state == ST_READY)
		__atomic_store_n(&state, ST_UNINIT, __ATOMIC_RELEASE);
}

static void config_load(void)
{
	_pmvp_config_from_env(&cfg);
	if (cfg.error[0])
		warn("%s%s", cfg.error, cfg.enabled ? ": the default is used" :
		     ": running on plain memory");
	if (!cfg.enabled)
		__atomic_store_n(&state, ST_OFF, __ATOMIC_RELEASE);
	pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/*
 * With an allocator of the program's own, the context is made here rather
 * than at its first mmap: that mmap comes with the allocator's lock held,
 * and pmv_create's libraries (libnuma) allocate through it.
 */
__attribute__((constructor)) static void preload_init(void)
{
	config_ready();
	if (is_foreign())
		get_ctx();
}

/*
 * At exit the context stays: other threads may still run on managed
 * memory, and migrations in flight end with the process. Only the stats
 * file goes.
 */
__attribute__((destructor)) static void preload_fini(void)
{
	char path[256];

	if (stats_running && owner_pid == getpid()) {
		stats_path(path, sizeof(path), false);
		unlink(path);
	}
}
