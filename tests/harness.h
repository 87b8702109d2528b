/* SPDX-License-Identifier: MIT */
/*
 * Tiny test harness, liburing style: each test is one program that exits
 * T_EXIT_PASS (0), T_EXIT_FAIL (1) or T_EXIT_SKIP (77), and probes for the
 * kernel features it needs. PMV_STRESS=1 lengthens time-bound loops.
 *
 * Programs made of sub-tests (t_mprotect, t_madvise, ...) run each one in a
 * forked child with a time limit (t_run_isolated, t_suite_case) and say
 * PASS, FAIL or SKIP per sub-test. PMV_TEST_CONTROL=1 runs them on plain
 * anonymous memory with every pagemove call skipped: the control run, which
 * must pass, shows that the tests ask for what the kernel itself does.
 * PMV_TEST_ONLY=SUBSTRING runs only the sub-tests whose name contains it;
 * PMV_TEST_PART_TIMEOUT=SECONDS sets the per sub-test limit.
 */
#ifndef PMV_TEST_HARNESS_H
#define PMV_TEST_HARNESS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pagemove.h"
#include "../common/threads.h"

#define T_EXIT_PASS	0
#define T_EXIT_FAIL	1
#define T_EXIT_SKIP	77

#define T_SZ_4K		4096UL
#define T_SZ_2M		(2UL << 20)

#define T_FAIL(...)							\
	do {								\
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);	\
		fprintf(stderr, __VA_ARGS__);				\
		fprintf(stderr, "\n");					\
		exit(T_EXIT_FAIL);					\
	} while (0)

/* Say that cond failed, where, and why; the callers decide what follows. */
#define T_REPORT(cond, ...)						\
	do {								\
		fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, cond); \
		fprintf(stderr, __VA_ARGS__);				\
		fprintf(stderr, "\n");					\
	} while (0)

#define T_ASSERT(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			T_REPORT(#cond, __VA_ARGS__);			\
			exit(T_EXIT_FAIL);				\
		}							\
	} while (0)

/* In a sub-test that returns its failure count: report, count in bad, go on. */
#define T_CHECK(bad, cond, ...)						\
	do {								\
		if (!(cond)) {						\
			T_REPORT(#cond, __VA_ARGS__);			\
			(bad)++;					\
		}							\
	} while (0)

#define T_EQ(a, b)							\
	do {								\
		long long _a = (long long)(a), _b = (long long)(b);	\
		if (_a != _b) {						\
			fprintf(stderr, "FAIL %s:%d: %s == %s: %lld != %lld\n", \
				__FILE__, __LINE__, #a, #b, _a, _b);	\
			exit(T_EXIT_FAIL);				\
		}							\
	} while (0)

static inline void t_skip(const char *why, ...)
{
	va_list ap;

	va_start(ap, why);
	printf("SKIP: ");
	vprintf(why, ap);
	printf("\n");
	va_end(ap);
	exit(T_EXIT_SKIP);
}

static inline double t_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Seconds (or a count) for a time-bound loop: short under `make test`,
 * long for stress, and shorter in the emulated NUMA guest (PMV_TEST_NODES),
 * which runs some 20 times slower and must finish within its budget.
 */
/* Under make stress (PMV_STRESS set, not 0)? */
static inline bool t_stress(void)
{
	const char *s = getenv("PMV_STRESS");

	return s && *s && strcmp(s, "0");
}

static inline double t_duration(double quick)
{
	/* PMV_STRESS=N lengthens by N (make stress: 5); other non-zero: 20 */
	if (t_stress()) {
		int n = atoi(getenv("PMV_STRESS"));

		return quick * (n >= 2 ? n : 20);
	}
	if (getenv("PMV_TEST_NODES"))
		return quick * 0.4;
	return quick;
}

/* Nodes to bind tiers to (PMV_TEST_NODES), or 0 for PMV_NODE_ANY. */
static inline int t_test_nodes(void)
{
	const char *s = getenv("PMV_TEST_NODES");

	return s ? atoi(s) : 0;
}

/*
 * Create a context of n tiers on any node (PMV_TEST_NODES: tier i on node
 * i mod N) with the policy pol, or skip if the kernel can't.
 */
/* pmv_create, or skip where the kernel cannot (EOPNOTSUPP, EPERM, ENOSYS), or fail. */
static inline pmv_ctx *t_create(const struct pmv_config *cfg)
{
	pmv_ctx *ctx = pmv_create(cfg);

	if (!ctx && (errno == EOPNOTSUPP || errno == EPERM || errno == ENOSYS))
		t_skip("pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	if (!ctx)
		T_FAIL("pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	return ctx;
}

static inline pmv_ctx *t_ctx_pol(unsigned n, const size_t *caps, unsigned flags,
				 const struct pmv_policy_config *pol)
{
	struct pmv_tier_config tc[PMV_MAX_TIERS];
	struct pmv_config cfg = { .ntiers = n, .tiers = tc, .policy = pol };
	static const char *names[] = { "fast", "slow", "slower", "slowest" };
	int nnodes = t_test_nodes();

	for (unsigned i = 0; i < n; i++) {
		tc[i] = (struct pmv_tier_config){
			.name = i < 4 ? names[i] : NULL,
			/* PMV_TEST_NODES=N (the NUMA guest): tier i on node i mod N */
			.node = nnodes > 0 ? (int)(i % nnodes) : PMV_NODE_ANY,
			.capacity = caps ? caps[i] : 0,
		};
	}
	if (nnodes > 0)
		flags |= PMV_CTX_VERIFY;
	cfg.flags = flags;
	return t_create(&cfg);
}

/* Create a context of n tiers on any node, or skip if the kernel can't. */
static inline pmv_ctx *t_ctx(unsigned n, const size_t *caps, unsigned flags)
{
	/*
	 * Tests that place pages by hand must not race the policy, but they
	 * should all run with sampling on: every data check then also checks
	 * that parking and unparking lose nothing. PMV_TEST_POLICY overrides.
	 */
	struct pmv_policy_config pol = { .mode = PMV_POLICY_TRACK, .interval_ms = 20,
					 .track_cpu_permille = 20 };
	const char *tp = getenv("PMV_TEST_POLICY");

	if (tp && !strcmp(tp, "off"))
		pol.mode = PMV_POLICY_OFF;
	else if (tp && !strcmp(tp, "auto"))
		pol.mode = PMV_POLICY_AUTO;
	return t_ctx_pol(n, caps, flags, &pol);
}

static inline int t_thp_enabled(void)
{
	char buf[128] = "";
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");

	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return buf[0] && !strstr(buf, "[never]");
}

/* AnonHugePages (kB) of the mapping that contains addr, or -1. */
static inline long t_anon_huge_kb(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	long kb = -1;
	int in = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char c;

		if (sscanf(line, "%lx-%lx %c", &s, &e, &c) == 3 && strchr(line, '-') &&
		    line[strspn(line, "0123456789abcdef")] == '-') {
			in = (uintptr_t)addr >= s && (uintptr_t)addr < e;
		} else if (in && !strncmp(line, "AnonHugePages:", 14)) {
			kb = atol(line + 14);
			in = 0;
		}
	}
	fclose(f);
	return kb;
}

/*
 * Set by t_ctx_mode(T_EVICTING): the fill pattern repeats each byte over
 * 32 (lz4 takes a page to about 1/8), so that evictions to the lz4 tier
 * are not all refused with -EMSGSIZE as the random bytes would be.
 */
static int t_pat_compressible;

/* The fill pattern: every byte depends on its page and offset. */
static inline uint8_t t_pat(size_t page, size_t off, unsigned seed)
{
	uint64_t x;

	if (t_pat_compressible)
		off = (off / 32) | (1UL << 40);	/* runs of 32, still unlike the random pattern */
	x = (page * 0x9E3779B97F4A7C15ULL) ^ (off * 0xBF58476D1CE4E5B9ULL) ^ seed;

	x ^= x >> 31;
	return (uint8_t)(x * 0x94D049BB133111EBULL >> 56);
}

static inline void t_fill(void *p, size_t size, size_t page, unsigned seed)
{
	uint8_t *b = p;

	for (size_t i = 0; i < size; i++)
		b[i] = t_pat(page, i, seed);
}

/* Byte-for-byte check; returns the first bad offset or -1. */
static inline long t_check(const void *p, size_t size, size_t page, unsigned seed)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < size; i++)
		if (b[i] != t_pat(page, i, seed))
			return (long)i;
	return -1;
}

/*
 * The integrity checker shared by the concurrency tests and the negative
 * control: page `page` of size `size` holds writer counters at
 * words[w * 8] for w < nwriters (one cache line each) that must equal
 * expect[w], and the fill pattern everywhere else. Returns 0 or the
 * number of bad bytes, printing the first few.
 */
static inline long t_check_page(const void *p, size_t size, size_t page, unsigned seed,
				unsigned nwriters, const uint64_t *expect)
{
	const uint8_t *b = p;
	long bad = 0;

	for (size_t i = 0; i < size; i++) {
		size_t w = i / 64;
		uint8_t want;

		if (w < nwriters && i % 64 < 8) {
			uint64_t v = expect[w];

			want = (uint8_t)(v >> (8 * (i % 64)));
		} else {
			want = t_pat(page, i, seed);
		}
		if (b[i] != want) {
			if (bad < 4)
				fprintf(stderr, "page %zu offset %zu: 0x%02x, want 0x%02x\n",
					page, i, b[i], want);
			bad++;
		}
	}
	return bad;
}

/*
 * t_check_page() over pages 0..n-1 after a counter run: page i is at
 * page_of(i), writer w's last value in it is expect[w][i] (nwriters <= 64).
 * Returns the bad bytes of all pages.
 */
static inline long t_check_counters(size_t n, char *(*page_of)(size_t, size_t *),
				    unsigned seed, unsigned nwriters, uint64_t *const *expect)
{
	long bad = 0;

	for (size_t i = 0; i < n; i++) {
		size_t psz;
		const char *p = page_of(i, &psz);
		uint64_t e[64];

		for (unsigned w = 0; w < nwriters; w++)
			e[w] = expect[w][i];
		bad += t_check_page(p, psz, i, seed, nwriters, e);
	}
	return bad;
}

/*
 * A mover's step: move n pages to `to`, count the ones that got there in
 * *moves, and anything but -EBUSY (a page held by a fault or another
 * move, which is allowed) in *bad, printing it.
 */
static inline void t_move_count(pmv_ctx *ctx, int n, void **pages, int to,
				atomic_long *moves, atomic_long *bad)
{
	int tiers[512], status[512];

	if (n > 512)
		T_FAIL("t_move_count: at most 512 pages");
	for (int i = 0; i < n; i++)
		tiers[i] = to;
	if (pmv_move_pages(ctx, n, pages, tiers, status, 0) < 0)
		atomic_fetch_add(bad, 1);
	for (int i = 0; i < n; i++) {
		if (status[i] == to) {
			atomic_fetch_add(moves, 1);
		} else if (status[i] != -EBUSY) {
			fprintf(stderr, "mover: status %d (%s)\n", status[i],
				pmv_strerror(status[i]));
			atomic_fetch_add(bad, 1);
		}
	}
}

/* ------------------------------------------------------------------------
 * Raw system calls. ASan intercepts some of these (its mlock is a no-op,
 * and it wraps mmap/munmap/mremap), and the requirement is about what the
 * kernel call does, so the tests make them directly. They return as libc
 * does: -1 (MAP_FAILED) and errno.
 */
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ	22
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE		25
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT		1U
#endif

static inline int t_sys_mprotect(void *a, size_t len, int prot)
{
	return (int)syscall(SYS_mprotect, a, len, prot);
}

static inline int t_sys_madvise(void *a, size_t len, int advice)
{
	return (int)syscall(SYS_madvise, a, len, advice);
}

static inline int t_sys_mlock(const void *a, size_t len)
{
	return (int)syscall(SYS_mlock, a, len);
}

static inline int t_sys_mlock2(const void *a, size_t len, unsigned flags)
{
	return (int)syscall(SYS_mlock2, a, len, flags);
}

static inline int t_sys_munlock(const void *a, size_t len)
{
	return (int)syscall(SYS_munlock, a, len);
}

static inline int t_sys_mlockall(int flags)
{
	return (int)syscall(SYS_mlockall, flags);
}

static inline int t_sys_munlockall(void)
{
	return (int)syscall(SYS_munlockall);
}

static inline int t_sys_munmap(void *a, size_t len)
{
	return (int)syscall(SYS_munmap, a, len);
}

static inline void *t_sys_mremap(void *old, size_t old_len, size_t new_len, int flags,
				 void *new_addr)
{
	return (void *)syscall(SYS_mremap, old, old_len, new_len, flags, new_addr);
}

static inline void *t_sys_mmap(void *a, size_t len, int prot, int flags, int fd, off_t off)
{
	return (void *)syscall(SYS_mmap, a, len, prot, flags, fd, off);
}

#if defined(__SANITIZE_ADDRESS__)
#define T_ASAN_BUILD	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define T_ASAN_BUILD	1
#endif
#endif
#ifndef T_ASAN_BUILD
#define T_ASAN_BUILD	0
#endif

/*
 * mlockall(MCL_CURRENT | MCL_FUTURE), as near as a build allows: under
 * ASan, whose terabytes of NORESERVE shadow MCL_CURRENT would populate,
 * mlockall(MCL_FUTURE) and an mlock of every mapping of the process
 * outside the shadow (below 0x10007fff8000 on x86-64) and under 1 GB:
 * the heap, the stacks, the regions and pagemove's pools, as
 * MCL_CURRENT locks them. 0 or -1 (errno).
 */
static inline int t_lock_current(void)
{
	char line[512];
	FILE *f;
	int ret = 0;

	if (!T_ASAN_BUILD)
		return t_sys_mlockall(MCL_CURRENT | MCL_FUTURE);
	if (t_sys_mlockall(MCL_FUTURE))
		return -1;
	f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	while (!ret && fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) != 2 || s < 0x10007fff8000UL ||
		    e - s >= (1UL << 30) || strstr(line, "[v"))
			continue;	/* shadow, huge reservations, [vdso], [vvar], [vsyscall] */
		if (t_sys_mlock((void *)s, e - s) && errno != ENOMEM)
			ret = -1;	/* ENOMEM: unmapped since the read */
	}
	fclose(f);
	return ret;
}

/* A field of /proc/self/status in kB ("VmRSS", "VmLck"), or -1. */
static inline long t_status_kb(const char *key)
{
	char line[256];
	size_t n = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, n) && line[n] == ':')
			v = atol(line + n + 1);
	fclose(f);
	return v;
}

/* Root passes every RLIMIT_MEMLOCK check with CAP_IPC_LOCK: drop it. 0 or -1. */
static inline int t_drop_cap_ipc_lock(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -1;
	d[CAP_IPC_LOCK / 32].effective &= ~(1U << (CAP_IPC_LOCK % 32));
	d[CAP_IPC_LOCK / 32].permitted &= ~(1U << (CAP_IPC_LOCK % 32));
	return (int)syscall(SYS_capset, &h, d);
}

/* Default disposition for sig, past any interceptor (ASan's SIGSEGV handler). */
static inline void t_default_signal(int sig)
{
	struct { void *handler; unsigned long flags; void *restorer; uint64_t mask; } ksa;

	memset(&ksa, 0, sizeof(ksa));	/* SIG_DFL */
	syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
}

/*
 * Is addr in a VMA registered for userfaultfd MISSING faults (VmFlags
 * "um" in /proc/self/smaps), as managed memory is? 1, 0 (another mapping,
 * or none), -1 if smaps cannot be read.
 */
static inline int t_uffd_missing_vma(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	int in = 0, r = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (line[strspn(line, "0123456789abcdef")] == '-' &&
		    sscanf(line, "%lx-%lx", &s, &e) == 2) {
			in = (uintptr_t)addr >= s && (uintptr_t)addr < e;
		} else if (in && !strncmp(line, "VmFlags:", 8)) {
			for (char *t = strtok(line + 8, " \n"); t; t = strtok(NULL, " \n"))
				r |= !strcmp(t, "um");
			break;
		}
	}
	fclose(f);
	return r;
}

/* Is any of [p, p+len) mapped? mincore() says ENOMEM where nothing is. */
static inline int t_mapped(const void *p, size_t len)
{
	static unsigned char vec[512];

	for (size_t off = 0; off < len; off += 512 * T_SZ_4K) {
		size_t l = len - off < 512 * T_SZ_4K ? len - off : 512 * T_SZ_4K;

		if (!mincore((char *)p + off, l, vec) || errno != ENOMEM)
			return 1;
		/* ENOMEM for a partly mapped range too: look page by page */
		for (size_t o = 0; o < l; o += T_SZ_4K)
			if (!mincore((char *)p + off + o, T_SZ_4K, vec))
				return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------------
 * The control run: PMV_TEST_CONTROL=1 puts every sub-test on plain
 * anonymous memory and skips the pagemove calls.
 */
static inline int t_control(void)
{
	const char *s = getenv("PMV_TEST_CONTROL");

	return s && *s && strcmp(s, "0");
}

/*
 * Plain anonymous memory shaped as pmv_mmap() shapes managed memory (2 MB
 * aligned with MADV_HUGEPAGE for PMV_HUGE, MADV_NOHUGEPAGE otherwise,
 * populated for PMV_POPULATE); t_map() gives managed memory, or plain
 * memory in a control run.
 */
static inline void *t_plain_map(size_t len, int flags)
{
	size_t extra = flags & PMV_HUGE ? T_SZ_2M : 0;
	char *p, *a;

	p = mmap(NULL, len + extra, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	T_ASSERT(p != MAP_FAILED, "mmap: %s", strerror(errno));
	a = p;
	if (extra) {
		a = (char *)(((uintptr_t)p + T_SZ_2M - 1) & ~(T_SZ_2M - 1));
		if (a > p)
			munmap(p, a - p);
		if (p + len + extra > a + len)
			munmap(a + len, p + len + extra - (a + len));
	}
	T_EQ(madvise(a, len, flags & PMV_HUGE ? MADV_HUGEPAGE : MADV_NOHUGEPAGE), 0);
	if (flags & PMV_POPULATE)
		T_EQ(madvise(a, len, MADV_POPULATE_WRITE), 0);
	return a;
}

static inline void *t_map(pmv_ctx *ctx, size_t len, int tier, int flags)
{
	void *p;

	if (t_control())
		return t_plain_map(len, flags);
	p = pmv_mmap(ctx, len, tier, flags);
	T_ASSERT(p, "pmv_mmap %zu bytes: %s (%s)", len, strerror(errno), pmv_errmsg());
	return p;
}

/* pmv_munmap(), or munmap() in a control run: 0 or a negative errno. */
static inline int t_unmap(pmv_ctx *ctx, void *p, size_t len)
{
	if (!t_control())
		return pmv_munmap(ctx, p, len);
	return t_sys_munmap(p, len) ? -errno : 0;
}

static inline void t_destroy(pmv_ctx *ctx)
{
	if (ctx)
		pmv_destroy(ctx);
}

/*
 * A sub-test's heartbeat, in memory shared with the parent: every finished
 * unit of work (a check, an agitator sync, t_step) beats, and t_step names
 * what comes next. A sub-test that stops beating for t_stall_secs() is
 * hung; the parent kills it and reports its last step.
 */
struct t_heartbeat {
	atomic_long beats;
	char step[160];
};

static struct t_heartbeat *t_hb;

static inline void t_beat(void)
{
	if (t_hb)
		atomic_fetch_add(&t_hb->beats, 1);
}

static inline void t_step(const char *fmt, ...)
{
	va_list ap;

	if (!t_hb)
		return;
	va_start(ap, fmt);
	vsnprintf(t_hb->step, sizeof(t_hb->step), fmt, ap);
	va_end(ap);
	t_beat();
}

/* ------------------------------------------------------------------------
 * What happens to managed memory meanwhile: the four situations every
 * sub-test runs in.
 */
enum t_mode {
	T_MIGRATING,	/* another thread moves the pages between 2 tiers */
	T_EXCHANGING,	/* another thread exchanges pairs of them (and moves some) */
	T_PARKED,	/* the policy samples (parks) them; nobody moves them */
	T_POLICY,	/* the policy is on, with a small fast tier */
	T_EVICTING,	/* another thread evicts them to a far (lz4) tier */
	T_NMODES
};

static const char *const t_mode_names[T_NMODES] = {
	"migrating", "exchanging", "parked", "policy_on", "evicting",
};

/*
 * Evicting: tier 0 memory, tier 1 an lz4 far tier, the policy off (only
 * the agitator evicts, only the program's accesses fault pages back).
 */
static inline pmv_ctx *t_ctx_far(const size_t *c)
{
	int nnodes = t_test_nodes();
	struct pmv_tier_config tc[2] = {
		{ .name = "fast", .node = nnodes > 0 ? 0 : PMV_NODE_ANY, .capacity = c[0] },
		{ .name = "lz4", .node = PMV_NODE_ANY, .capacity = c[1], .kind = PMV_TIER_LZ4 },
	};
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .policy = &pol,
				  .flags = nnodes > 0 ? PMV_CTX_VERIFY : 0 };

	return t_create(&cfg);
}

/*
 * A context of two tiers for mode m: the policy off for migrating and
 * exchanging (only the test moves pages), tracking with a 20 ms period
 * for parked, and the full policy for policy_on, whose tier 0 then holds
 * fast_cap bytes (0: unlimited); for evicting, tier 1 is far (lz4) and
 * the fill pattern compressible. caps (NULL: none) bound the tiers
 * otherwise. NULL in a control run.
 */
static inline pmv_ctx *t_ctx_mode(int m, size_t fast_cap, const size_t *caps)
{
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF };
	size_t c[2] = { caps ? caps[0] : 0, caps ? caps[1] : 0 };

	t_pat_compressible = m == T_EVICTING;
	if (t_control())
		return NULL;
	if (m == T_EVICTING) {
		/*
		 * PMV_TEST_EVICT_CAP=1 (not in any suite yet): tier 0 gets the
		 * policy mode's small capacity, so that fault-ins past it
		 * reclaim (evict) directly, and moves into it reclaim first
		 * (DESIGN.md, "A full memory tier").
		 */
		if (getenv("PMV_TEST_EVICT_CAP") && fast_cap)
			c[0] = fast_cap;
		return t_ctx_far(c);
	}
	if (m == T_PARKED) {
		pol.mode = PMV_POLICY_TRACK;
		pol.interval_ms = 20;
		pol.track_cpu_permille = 20;
	} else if (m == T_POLICY) {
		pol.mode = PMV_POLICY_AUTO;
		pol.interval_ms = 20;
		pol.track_cpu_permille = 20;
		pol.min_residency_ms = 100;
		pol.promote_min_heat = 1;
		pol.exchange_margin_pct = 10;
		if (fast_cap)
			c[0] = fast_cap;
	}
	return t_ctx_pol(2, c, 0, &pol);
}

/* ------------------------------------------------------------------------
 * The agitator: a thread that, for its mode, keeps moving (or exchanging)
 * random pages of [base, base + npages * psz), runs policy rounds, or
 * leaves the pages to the sampler, and counts its rounds so that a
 * sub-test can wait for it to have worked (t_agit_sync) instead of for a
 * time. Statuses are counted by errno; t_agit_check() judges them.
 */
#define T_AGIT_ERRNO	134

struct t_agit {
	pmv_ctx *ctx;
	int mode;
	char *base;
	size_t psz, npages;
	unsigned seed;
	/* judged statuses: besides success and -EBUSY, allow these */
	int allow[6];
	/* pages the test marked gone (unmapped): -EFAULT is right for those */
	const _Atomic uint8_t *gone;
	/* pages never touched: -ENOENT (no page to move) is right for those */
	const _Atomic uint8_t *untouched;
	atomic_int judge;	/* calls starting after this is set are judged */
	atomic_int stop;
	atomic_long rounds, moved, calls;
	atomic_long hist[T_AGIT_ERRNO];		/* every call's statuses, by errno */
	atomic_long bad[T_AGIT_ERRNO];		/* judged statuses that are not allowed */
	atomic_long bad_ret;
	pthread_t th;
	int running;
};

static inline int t_agit_allowed(const struct t_agit *a, int st, size_t page)
{
	if (st == -EBUSY)
		return 1;
	if (st == -ENOENT && a->untouched && atomic_load(&a->untouched[page]))
		return 1;
	if (a->gone && atomic_load(&a->gone[page]))
		return st == -EFAULT;
	for (int i = 0; i < 6; i++)
		if (a->allow[i] && st == a->allow[i])
			return 1;
	return 0;
}

static inline void *t_agit_thread(void *arg)
{
	struct t_agit *a = arg;
	unsigned seed = a->seed;
	void *pages[32], *pb[32];
	size_t idx[32], idxb[32];
	int tiers[32], status[32];

	while (!atomic_load(&a->stop)) {
		int judged = atomic_load(&a->judge);
		/*
		 * Exchanging, one call in four moves a page instead: first
		 * touches (after a discard) all land on tier 0, and a pair on
		 * one tier has nothing to exchange.
		 */
		int xchg = a->mode == T_EXCHANGING && rand_r(&seed) % 4;
		int n = xchg ? 1 + rand_r(&seed) % 4 : a->mode == T_EXCHANGING ? 1 :
			1 + rand_r(&seed) % 8;
		/* evicting: always to the far tier; the program's touches bring pages back */
		int to = a->mode == T_EVICTING ? 1 : rand_r(&seed) & 1, ret = 0;

		if (t_control() || a->mode == T_PARKED) {
			usleep(300);	/* the sampler parks pages by itself */
			atomic_fetch_add(&a->rounds, 1);
			continue;
		}
		if (a->mode == T_POLICY) {
			long r = pmv_tier_balance(a->ctx, 0);

			if (r < 0)
				atomic_fetch_add(&a->bad_ret, 1);
			else
				atomic_fetch_add(&a->moved, r);
			atomic_fetch_add(&a->calls, 1);
			usleep(500);
			atomic_fetch_add(&a->rounds, 1);
			continue;
		}
		for (int i = 0; i < n; i++) {
			idx[i] = rand_r(&seed) % a->npages;
			/* any address inside a page names it */
			pages[i] = a->base + idx[i] * a->psz + (rand_r(&seed) % a->psz & ~7UL);
			tiers[i] = to;
			if (xchg) {
				do
					idxb[i] = rand_r(&seed) % a->npages;
				while (a->npages > 1 && idxb[i] == idx[i]);
				pb[i] = a->base + idxb[i] * a->psz;
			}
		}
		if (xchg)
			ret = pmv_exchange_pages(a->ctx, n, pages, pb, status, 0);
		else
			ret = pmv_move_pages(a->ctx, n, pages, tiers, status, 0);
		if (ret < 0)
			atomic_fetch_add(&a->bad_ret, 1);
		atomic_fetch_add(&a->calls, 1);
		for (int i = 0; ret >= 0 && i < n; i++) {
			int st = status[i];
			int ok = xchg ? st == 0 : st == to;

			if (ok) {
				atomic_fetch_add(&a->moved, 1);
				continue;
			}
			if (st < 0 && -st < T_AGIT_ERRNO) {
				atomic_fetch_add(&a->hist[-st], 1);
				if (judged && !t_agit_allowed(a, st, idx[i]) &&
				    !(xchg && t_agit_allowed(a, st, idxb[i])))
					atomic_fetch_add(&a->bad[-st], 1);
			} else if (judged) {
				atomic_fetch_add(&a->bad[0], 1);	/* a wrong tier */
			}
		}
		/*
		 * Evictions are cheap next to the fault-ins they cause: without
		 * a pause the agitator, already on a CPU, takes a page back
		 * before the woken thread that faulted it in uses it (t_far's
		 * evictor, commit dfc0fae), and the program makes no progress.
		 */
		if (a->mode == T_EVICTING)
			usleep(1000);
		atomic_fetch_add(&a->rounds, 1);
	}
	return NULL;
}

/*
 * Set up an agitator of mode m on npages pages of psz at base; the caller
 * may then fill in allow, gone and untouched before t_agit_run().
 */
static inline void t_agit_init(struct t_agit *a, pmv_ctx *ctx, int m, void *base,
			       size_t psz, size_t npages, unsigned seed)
{
	memset(a, 0, sizeof(*a));
	a->ctx = ctx;
	a->mode = m;
	a->base = base;
	a->psz = psz;
	a->npages = npages;
	a->seed = seed;
	if (m == T_POLICY)
		a->allow[0] = -ENOMEM;	/* its fast tier is small */
	if (m == T_EVICTING)
		a->allow[0] = -EMSGSIZE;	/* a page the test filled with incompressible bytes */
	atomic_store(&a->judge, 1);
}

static inline void t_agit_run(struct t_agit *a)
{
	T_EQ(pthread_create(&a->th, NULL, t_agit_thread, a), 0);
	a->running = 1;
}

/* Start an agitator of mode m on npages pages of psz at base. */
static inline void t_agit_start(struct t_agit *a, pmv_ctx *ctx, int m, void *base,
				size_t psz, size_t npages, unsigned seed)
{
	t_agit_init(a, ctx, m, base, psz, npages, seed);
	t_agit_run(a);
}

/* Wait until the agitator has finished k more rounds. */
static inline void t_agit_sync(struct t_agit *a, long k)
{
	long r0;

	if (!a->running)
		return;
	t_step("wait for %ld rounds of the %s agitator", k, t_mode_names[a->mode]);
	r0 = atomic_load(&a->rounds);
	while (atomic_load(&a->rounds) < r0 + k + 1)
		usleep(100);
	t_beat();
}

static inline void t_agit_stop(struct t_agit *a)
{
	if (!a->running)
		return;
	t_step("stop the %s agitator", t_mode_names[a->mode]);
	atomic_store(&a->stop, 1);
	pthread_join(a->th, NULL);
	a->running = 0;
}

/*
 * Stop the agitator and judge its statuses: returns the number of
 * unexpected ones, printing them (prefixed by who) if strict, else only
 * noting them.
 */
static inline int t_agit_check(struct t_agit *a, const char *who, int strict)
{
	long bad = 0;
	char line[512];
	int n = 0;

	t_agit_stop(a);
	n = snprintf(line, sizeof(line), "%s: agitator %ld rounds, %ld calls, %ld moved",
		     who, atomic_load(&a->rounds), atomic_load(&a->calls),
		     atomic_load(&a->moved));
	for (int e = 1; e < T_AGIT_ERRNO && n < (int)sizeof(line) - 40; e++)
		if (atomic_load(&a->hist[e]))
			n += snprintf(line + n, sizeof(line) - n, ", %ld %s", atomic_load(&a->hist[e]),
				      strerrorname_np(e) ? strerrorname_np(e) : "?");
	printf("  %s\n", line);
	for (int e = 0; e < T_AGIT_ERRNO; e++) {
		long k = atomic_load(&a->bad[e]);

		if (!k)
			continue;
		bad += k;
		printf("  %s %s: %ld statuses %s%s\n", strict ? "FAIL" : "note", who, k,
		       e ? "-" : "", e ? strerrorname_np(e) : "naming a wrong tier");
	}
	if (atomic_load(&a->bad_ret)) {
		printf("  %s %s: %ld calls returned a negative errno\n", strict ? "FAIL" : "note",
		       who, atomic_load(&a->bad_ret));
		bad += atomic_load(&a->bad_ret);
	}
	return strict && bad ? 1 : 0;
}

/* ------------------------------------------------------------------------
 * Page state probes.
 */

/* Is the 4 KB page at p mapped (pagemap "present")? -1 if unknown. */
static inline int t_present(const void *p)
{
	static int fd = -1;
	uint64_t e;

	if (fd < 0)
		fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, &e, 8, (off_t)((uintptr_t)p / T_SZ_4K * 8)) != 8)
		return -1;
	return (int)(e >> 63);
}

/*
 * Wait (bounded) until at least want of the npages touched pages at base
 * are not mapped: parked by the sampler (or in a remap window). Returns
 * how many were; 0 at once in a control run or another mode.
 */
static inline size_t t_wait_parked(int mode, const char *base, size_t psz, size_t npages,
				   size_t want)
{
	size_t n = 0;

	if (t_control() || (mode != T_PARKED && mode != T_POLICY))
		return 0;
	for (int tries = 0; tries < 400; tries++) {
		n = 0;
		for (size_t i = 0; i < npages; i++)
			n += t_present(base + i * psz) == 0;
		if (n >= want)
			break;
		usleep(2500);
	}
	return n;
}

/* The first page in [from, npages) then [0, from) that is not mapped, or from. */
static inline size_t t_find_parked(const char *base, size_t psz, size_t npages, size_t from)
{
	if (t_control())
		return from;
	for (size_t k = 0; k < npages; k++) {
		size_t i = (from + k) % npages;

		if (t_present(base + i * psz) == 0)
			return i;
	}
	return from;
}

/* Resident bytes over all tiers (pmv_tier_stats), 0 in a control run. */
static inline uint64_t t_resident(pmv_ctx *ctx)
{
	uint64_t r = 0;
	int n;

	if (!ctx)
		return 0;
	n = pmv_tier_count(ctx);
	for (int t = 0; t < n; t++) {
		struct pmv_tier_stats st;

		T_EQ(pmv_tier_stats(ctx, t, &st), 0);
		r += st.resident_bytes;
	}
	return r;
}

/* This process's threads whose name starts with prefix. */
static inline int t_count_threads(const char *prefix)
{
	return cli_threads(prefix, NULL, 0);
}

/*
 * Resident bytes once things settle: poll (at most ~1 s) until they equal
 * want, and return the last value, which is what the caller judges.
 */
static inline uint64_t t_resident_settled(pmv_ctx *ctx, uint64_t want)
{
	uint64_t r = t_resident(ctx);

	for (int i = 0; i < 100 && r != want; i++) {
		usleep(10000);
		r = t_resident(ctx);
	}
	return r;
}

/* ------------------------------------------------------------------------
 * Children: sub-tests in their own process with a time limit, and short
 * probes ("does this access kill a process?").
 */
#define T_SUB_SKIP	(-1)	/* a sub-test's return: not applicable here */

/*
 * Seconds without a beat before a sub-test counts as hung. 15, not less:
 * on this shared 2-CPU machine, while other work loaded it, 2 MB parts
 * went 5 s without a beat (in setup, or one agitator round) and then ran
 * through; a real hang still fails, only later.
 */
static inline int t_stall_secs(void)
{
	const char *s = getenv("PMV_TEST_STALL");

	if (s && atoi(s) > 0)
		return atoi(s);
	return getenv("PMV_TEST_NODES") ? 60 : 15;
}

/*
 * Seconds a sub-test may take at all, beating or not. A hang is caught by
 * the heartbeat (t_stall_secs); this only bounds a sub-test that keeps
 * beating. ASan+UBSan runs its fixed work 2-5x slower, and under a loaded
 * machine t_signals' 2 MB storm took past 60 s while it beat: 3x there.
 */
static inline int t_part_timeout(void)
{
	const char *s = getenv("PMV_TEST_PART_TIMEOUT");

	if (s && atoi(s) > 0)
		return atoi(s);
	if (getenv("PMV_TEST_NODES"))
		return 600;
	return (int)(60 * (T_ASAN_BUILD ? 3 : 1) * (t_duration(1) > 1 ? t_duration(1) : 1));
}

/* Wait for pid at most secs; on timeout kill its process group. */
static inline int t_wait_child(pid_t pid, double secs, int *status)
{
	double deadline = t_now() + secs;

	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);

		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -1;
		if (t_now() > deadline) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			return -ETIMEDOUT;
		}
		usleep(2000);
	}
}

/*
 * Wait for a sub-test's child: kill it (its process group) when it has not
 * beaten for t_stall_secs() or has run for timeout seconds, and say so in
 * why. -ETIMEDOUT then, else 0 (or -1 if waitpid fails).
 */
static inline int t_wait_part(pid_t pid, int timeout, int *status, char *why, size_t whysz)
{
	double start = t_now(), last = start;
	long beats = -1;
	int stall = t_stall_secs();

	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		double now = t_now();
		long b = t_hb ? atomic_load(&t_hb->beats) : 0;

		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -1;
		if (b != beats) {
			beats = b;
			last = now;
		}
		if (now - last > stall || now - start > timeout) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, status, 0);
			if (now - start > timeout)
				snprintf(why, whysz, "timed out after %d s (last step: %s)", timeout,
					 t_hb ? t_hb->step : "?");
			else
				snprintf(why, whysz, "hung: no progress for %d s (last step: %s)",
					 stall, t_hb ? t_hb->step : "?");
			return -ETIMEDOUT;
		}
		usleep(2000);
	}
}

/*
 * Fork a child that runs probe(arg) with default SIGSEGV/SIGBUS and
 * exits with its return value. Returns the signal that killed it, 0 if
 * it exited 0, -1 if it exited otherwise, -ETIMEDOUT if it hung (10 s).
 */
static inline int t_probe(int (*probe)(void *), void *arg)
{
	int st = 0, r;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		struct rlimit rl = { 0, 0 };

		setrlimit(RLIMIT_CORE, &rl);
		t_default_signal(SIGSEGV);
		t_default_signal(SIGBUS);
		_exit(probe(arg));
	}
	r = t_wait_child(pid, 10, &st);
	if (r)
		return r == -ETIMEDOUT ? -ETIMEDOUT : -1;
	if (WIFSIGNALED(st))
		return WTERMSIG(st);
	return WEXITSTATUS(st) ? -1 : 0;
}

static inline int t_probe_read(void *p)
{
	char c = *(volatile char *)p;

	(void)c;
	return 0;
}

static inline int t_probe_write(void *p)
{
	*(volatile char *)p = 1;
	return 0;
}

/*
 * Does reading p kill a process (a fork child: same mappings, now)?
 * Returns 1 if the child died of SIGSEGV, else 0, printing what happened.
 */
static inline int t_read_segfaults(const void *p, const char *what)
{
	int r = t_probe(t_probe_read, (void *)p);

	if (r == SIGSEGV)
		return 1;
	printf("  %s: a read at %p %s\n", what, p,
	       r == 0 ? "went through" : r == -ETIMEDOUT ? "hung" : r > 0 ?
	       strsignal(r) : "failed otherwise");
	return 0;
}

/* One sub-test: which mode, which page size, which variant. */
struct t_case {
	int mode;		/* enum t_mode */
	int huge;		/* 2 MB pages */
	int variant;		/* the sub-test's own choice */
	const char *name;	/* the full name, as printed */
};

typedef int (*t_case_fn)(const struct t_case *);

struct t_suite {
	int passed, failed, skipped;
	char failed_names[16384];
	double t0;
};

static inline void t_suite_init(struct t_suite *s)
{
	memset(s, 0, sizeof(*s));
	s->t0 = t_now();
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (t_control())
		printf("control run (PMV_TEST_CONTROL): plain anonymous memory, "
		       "pagemove calls skipped\n");
}

/*
 * Run fn(c) in a forked child (its own process group, killed if this
 * process dies) with the sub-test time limit, and report one line:
 * PASS, SKIP (fn returned T_SUB_SKIP or called t_skip), or FAIL with the
 * failure count, the signal that killed it, or the timeout. With
 * expect_sig, the child must die of that signal (and fn, if it returns,
 * fails). Returns 1 if the sub-test failed.
 */
static inline int t_run_isolated(struct t_suite *s, const struct t_case *c, t_case_fn fn,
				 int expect_sig)
{
	const char *only = getenv("PMV_TEST_ONLY");
	int timeout = t_part_timeout(), st = 0, r, failed = 0;
	double t0;
	pid_t pid;
	char why[512] = "";

	if (only && *only && !strstr(c->name, only))
		return 0;
	if (!t_hb) {
		t_hb = mmap(NULL, sizeof(*t_hb), PROT_READ | PROT_WRITE,
			    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		T_ASSERT(t_hb != MAP_FAILED, "mmap: %s", strerror(errno));
	}
	atomic_store(&t_hb->beats, 0);
	snprintf(t_hb->step, sizeof(t_hb->step), "setup");
	fflush(stdout);
	fflush(stderr);
	t0 = t_now();
	pid = fork();
	if (pid < 0)
		T_FAIL("fork: %s", strerror(errno));
	if (!pid) {
		struct rlimit rl = { 0, 0 };
		int ret;

		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		setrlimit(RLIMIT_CORE, &rl);
		if (expect_sig)
			t_default_signal(expect_sig);
		ret = fn(c);
		fflush(stdout);
		fflush(stderr);
		_exit(ret < 0 ? T_EXIT_SKIP : ret > 50 ? 50 : ret);
	}
	setpgid(pid, pid);
	r = t_wait_part(pid, timeout, &st, why, sizeof(why));
	if (r == -ETIMEDOUT) {
		failed = 1;
	} else if (r) {
		snprintf(why, sizeof(why), "waitpid: %s", strerror(errno));
		failed = 1;
	} else if (WIFSIGNALED(st)) {
		if (WTERMSIG(st) != expect_sig) {
			snprintf(why, sizeof(why), "killed by SIG%s%s%s",
				 sigabbrev_np(WTERMSIG(st)) ?: "?",
				 expect_sig ? ", want SIG" : "",
				 expect_sig ? sigabbrev_np(expect_sig) : "");
			failed = 1;
		}
	} else if (WEXITSTATUS(st) == T_EXIT_SKIP) {
		printf("SKIP %s\n", c->name);
		s->skipped++;
		return 0;
	} else if (WEXITSTATUS(st)) {
		snprintf(why, sizeof(why), "%d failure%s", WEXITSTATUS(st),
			 WEXITSTATUS(st) > 1 ? "s" : "");
		failed = 1;
	} else if (expect_sig) {
		snprintf(why, sizeof(why), "exited normally, want death by SIG%s",
			 sigabbrev_np(expect_sig));
		failed = 1;
	}
	if (failed) {
		size_t l = strlen(s->failed_names);

		printf("FAIL %s: %s\n", c->name, why);
		s->failed++;
		snprintf(s->failed_names + l, sizeof(s->failed_names) - l, " %s", c->name);
		return 1;
	}
	printf("PASS %s (%.1fs)\n", c->name, t_now() - t0);
	s->passed++;
	return 0;
}

/*
 * A sub-test not run for want of a prerequisite (THP, root, a cpuset, a
 * second CPU): SKIP, saying why; under CI=true, where every prerequisite
 * must be there, a FAIL (as tests/run.sh fails a program that skips).
 */
static inline void t_suite_skip(struct t_suite *s, const char *name, const char *why)
{
	const char *only = getenv("PMV_TEST_ONLY"), *ci = getenv("CI");
	size_t l = strlen(s->failed_names);

	if (only && *only && !strstr(name, only))
		return;
	if (!ci || strcmp(ci, "true")) {
		printf("SKIP %s: %s\n", name, why);
		s->skipped++;
		return;
	}
	printf("FAIL %s: skipped under CI=true: %s\n", name, why);
	s->failed++;
	snprintf(s->failed_names + l, sizeof(s->failed_names) - l, " %s", name);
}

/*
 * The sub-test fn_name(mode, huge, variant): its name says what, while
 * what and which page size ("test_dontneed_zeroes_while_migrating_4k",
 * mode < 0: no mode). 2 MB cases are skipped, saying so, without THP.
 */
static inline int t_suite_case(struct t_suite *s, const char *fn_name, t_case_fn fn,
			       int mode, int huge, int variant, const char *vname,
			       int expect_sig)
{
	char name[256];
	struct t_case c = { .mode = mode, .huge = huge, .variant = variant, .name = name };

	snprintf(name, sizeof(name), "%s%s%s%s%s_%s", fn_name, vname ? "_" : "",
		 vname ? vname : "", mode >= 0 ? "_while_" : "",
		 mode >= 0 ? t_mode_names[mode] : "", huge ? "2m" : "4k");
	if (huge && !t_thp_enabled()) {
		t_suite_skip(s, name, "transparent huge pages are disabled");
		return 0;
	}
	return t_run_isolated(s, &c, fn, expect_sig);
}

#define T_CASE(s, fn, mode, huge)	t_suite_case(s, #fn, fn, mode, huge, 0, NULL, 0)
#define T_CASE_V(s, fn, v, vname, mode, huge) t_suite_case(s, #fn, fn, mode, huge, v, vname, 0)
#define T_CASE_SIG(s, fn, mode, huge, sig) t_suite_case(s, #fn, fn, mode, huge, 0, NULL, sig)

/*
 * A sub-test of no mode and no page size of its own, named fn_name as it
 * is: huge says it may use 2 MB pages too (THP is enabled), as it likes.
 */
static inline int t_suite_one(struct t_suite *s, const char *fn_name, t_case_fn fn, int huge)
{
	struct t_case c = { .mode = -1, .huge = huge && t_thp_enabled(), .name = fn_name };

	return t_run_isolated(s, &c, fn, 0);
}

#define T_CASE_ONE(s, fn, huge)	t_suite_one(s, #fn, fn, huge)

/*
 * Does a sub-test run in mode m? Evicting costs about as much as the
 * other four modes together would add again (2 MB compressions and
 * fault-ins), and `make test` is near its budget: there it runs only in
 * the sub-tests that pick it (pick: at least one per program and page
 * size), everywhere under PMV_STRESS or PMV_TEST_EVICTING=all.
 */
static inline int t_mode_on(int m, int pick)
{
	const char *ev = getenv("PMV_TEST_EVICTING");

	if (m != T_EVICTING || pick)
		return 1;
	return t_stress() || (ev && !strcmp(ev, "all"));
}

/* Every mode (evicting only where t_mode_on says) and both page sizes. */
#define T_CASE_ALL(s, fn)						\
	do {								\
		for (int _h = 0; _h < 2; _h++)				\
			for (int _m = 0; _m < T_NMODES; _m++)		\
				if (t_mode_on(_m, 0))			\
					T_CASE(s, fn, _m, _h);		\
	} while (0)

/* Every mode, evicting always, and both page sizes. */
#define T_CASE_ALL_FAR(s, fn)						\
	do {								\
		for (int _h = 0; _h < 2; _h++)				\
			for (int _m = 0; _m < T_NMODES; _m++)		\
				T_CASE(s, fn, _m, _h);			\
	} while (0)

/* Print the summary; the exit code of the program. */
static inline int t_suite_end(struct t_suite *s)
{
	if (s->failed)
		printf("failed:%s\n", s->failed_names);
	printf("%d sub-tests: %d passed, %d failed, %d skipped%s (%.1fs)\n",
	       s->passed + s->failed + s->skipped, s->passed, s->failed, s->skipped,
	       t_control() ? " [control run]" : "", t_now() - s->t0);
	return s->failed ? T_EXIT_FAIL : T_EXIT_PASS;
}

/* Loops scale with PMV_STRESS (longer) and the NUMA guest (shorter). */
static inline int t_rounds(int quick)
{
	int n = (int)(quick * t_duration(1));

	return n > 1 ? n : 1;
}

/* ------------------------------------------------------------------------
 * A region with a model of what each 4 KB piece holds: the fill pattern
 * of its generation, zeros, either of those (after MADV_FREE; or its data
 * up to a point, then zeros, when it is dropped while read), or nothing
 * (unmapped). Pieces are numbered across the region, so every piece's
 * pattern differs from every other's: another piece's data is told apart
 * from its own.
 */
enum { T_DATA, T_ZERO, T_MAYBE, T_GONE };

struct t_region {
	pmv_ctx *ctx;
	char *base;
	size_t len, psz, npages, npieces;
	unsigned seed;
	uint8_t *gen, *state;
	atomic_int reported;	/* bad pieces printed so far */
};

static inline unsigned t_gen_seed(const struct t_region *r, unsigned gen)
{
	return r->seed + gen * 0x3779b9u;
}

static inline char *t_piece(const struct t_region *r, size_t p)
{
	return r->base + p * T_SZ_4K;
}

/* Map npages pages (2 MB with huge) on tier with pmv_mmap flags; no fill. */
static inline void t_region_map(struct t_region *r, pmv_ctx *ctx, size_t npages, int huge,
				int tier, int flags, unsigned seed)
{
	memset(r, 0, sizeof(*r));
	r->ctx = ctx;
	r->psz = huge ? T_SZ_2M : T_SZ_4K;
	r->npages = npages;
	r->len = npages * r->psz;
	r->npieces = r->len / T_SZ_4K;
	r->seed = seed;
	r->base = t_map(ctx, r->len, tier, flags | (huge ? PMV_HUGE : 0));
	r->gen = calloc(r->npieces, 1);
	r->state = calloc(r->npieces, 1);
	T_ASSERT(r->gen && r->state, "calloc");
	for (size_t p = 0; p < r->npieces; p++)
		r->state[p] = T_ZERO;
}

/* Write piece p's next generation. */
static inline void t_piece_write(struct t_region *r, size_t p)
{
	r->gen[p]++;
	t_fill(t_piece(r, p), T_SZ_4K, p, t_gen_seed(r, r->gen[p]));
	r->state[p] = T_DATA;
}

static inline void t_region_fill(struct t_region *r)
{
	for (size_t p = 0; p < r->npieces; p++)
		t_piece_write(r, p);
}

static inline void t_pieces_write(struct t_region *r, size_t p, size_t n)
{
	for (size_t i = p; i < p + n && i < r->npieces; i++)
		t_piece_write(r, i);
}

/* Mark pieces [p, p+n) as state st (T_ZERO after DONTNEED, ...). */
static inline void t_pieces_mark(struct t_region *r, size_t p, size_t n, int st)
{
	for (size_t i = p; i < p + n && i < r->npieces; i++)
		r->state[i] = (uint8_t)st;
}

static inline int t_is_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* What a bad piece holds instead, in words. */
static inline void t_piece_explain(const struct t_region *r, size_t p, char *out, size_t outsz)
{
	const uint8_t *b = (const uint8_t *)t_piece(r, p);

	if (t_is_zero(b, T_SZ_4K)) {
		snprintf(out, outsz, "reads zeros");
		return;
	}
	if (r->state[p] != T_DATA && r->gen[p] > 0 &&
	    t_check(b, T_SZ_4K, p, t_gen_seed(r, r->gen[p])) < 0) {
		snprintf(out, outsz, "holds its old data (from before the discard)");
		return;
	}
	if (r->gen[p] > 0 && t_check(b, T_SZ_4K, p, t_gen_seed(r, r->gen[p] - 1)) < 0) {
		snprintf(out, outsz, "holds its data from before the last write");
		return;
	}
	for (size_t q = 0; q < r->npieces; q++) {
		for (int g = 0; g <= 1; g++) {
			unsigned gen = r->gen[q] - (unsigned)g;

			if (q != p && (g == 0 || r->gen[q] > 0) &&
			    t_check(b, T_SZ_4K, q, t_gen_seed(r, gen)) < 0) {
				snprintf(out, outsz, "holds piece %zu's data%s", q,
					 g ? " (its previous generation)" : "");
				return;
			}
		}
	}
	snprintf(out, outsz, "holds something else");
}

/* Check piece p against the model; 0 if right, else 1 (the first few printed). */
static inline int t_piece_check(struct t_region *r, size_t p, const char *who)
{
	const uint8_t *b = (const uint8_t *)t_piece(r, p);
	long off = -1;
	char what[96];

	switch (r->state[p]) {
	case T_GONE:
		return 0;
	case T_ZERO:
		if (t_is_zero(b, T_SZ_4K))
			return 0;
		for (off = 0; !b[off]; off++)
			;
		break;
	case T_MAYBE:
		/*
		 * Its data up to some offset, zeros from there on: a lazily
		 * freed page may be dropped at any moment, also while it is
		 * read (plain memory under reclaim does the same).
		 */
		off = t_check(b, T_SZ_4K, p, t_gen_seed(r, r->gen[p]));
		if (off < 0 || t_is_zero(b + off, T_SZ_4K - (size_t)off))
			return 0;
		break;
	default:
		off = t_check(b, T_SZ_4K, p, t_gen_seed(r, r->gen[p]));
		if (off < 0)
			return 0;
	}
	if (atomic_fetch_add(&r->reported, 1) < 4) {
		t_piece_explain(r, p, what, sizeof(what));
		printf("  FAIL %s: piece %zu (page %zu +%zu KB) %s: offset %ld is 0x%02x, want %s\n",
		       who, p, p * T_SZ_4K / r->psz, p * T_SZ_4K % r->psz / 1024, what, off, b[off],
		       r->state[p] == T_ZERO ? "zeros" :
		       r->state[p] == T_MAYBE ? "its data, then zeros" : "its data");
	}
	return 1;
}

/* Check pieces [p, p+n); the number of bad ones. */
static inline long t_pieces_check(struct t_region *r, size_t p, size_t n, const char *who)
{
	long bad = 0;

	t_step("%s: check pieces [%zu, %zu)", who, p, p + n);
	for (size_t i = p; i < p + n && i < r->npieces; i++)
		bad += t_piece_check(r, i, who);
	if (bad > 1 && r->reported >= 4)
		printf("  ... %s: %ld bad pieces in [%zu, %zu)\n", who, bad, p, p + n);
	t_beat();
	return bad;
}

static inline long t_region_check(struct t_region *r, const char *who)
{
	return t_pieces_check(r, 0, r->npieces, who);
}

/* Pieces per page. */
static inline size_t t_ppp(const struct t_region *r)
{
	return r->psz / T_SZ_4K;
}

/*
 * A random range of pieces for an operation: for 4 KB pages 1..maxpages
 * whole pages; for 2 MB pages alternately whole pages and a sub-range of
 * one page (1..64 pieces at a random place), so the kernel splits it.
 */
static inline void t_pick_range(const struct t_region *r, unsigned *seed, size_t maxpages,
				size_t *p, size_t *n)
{
	size_t ppp = t_ppp(r);
	size_t pages = 1 + rand_r(seed) % (maxpages < r->npages ? maxpages : r->npages);
	size_t page = rand_r(seed) % (r->npages - pages + 1);

	if (ppp > 1 && rand_r(seed) % 2) {
		size_t k = 1 + rand_r(seed) % 64;

		*p = page * ppp + rand_r(seed) % (ppp - k + 1);
		*n = k;
	} else {
		*p = page * ppp;
		*n = pages * ppp;
	}
}

/* t_pick_range(), moved (in parked mode) to start at a parked page. */
static inline void t_pick_range_mode(const struct t_region *r, int mode, unsigned *seed,
				     size_t maxpages, size_t *p, size_t *n)
{
	size_t ppp = t_ppp(r);

	t_pick_range(r, seed, maxpages, p, n);
	if (mode == T_PARKED) {
		size_t pg = t_find_parked(r->base, r->psz, r->npages, *p / ppp);

		if (pg != *p / ppp) {
			*p = pg * ppp + *p % ppp;
			if (*p + *n > r->npieces)
				*n = r->npieces - *p;
		}
	}
}

/*
 * Move every other page to tier 1 (not with the policy on), so that
 * exchanges find pairs on different tiers. No-op in a control run.
 */
static inline void t_region_spread(struct t_region *r, int mode)
{
	if (!r->ctx || mode == T_POLICY)
		return;
	for (size_t i = 1; i < r->npages; i += 2) {
		void *pg = r->base + i * r->psz;
		int to = 1, st;

		pmv_move_pages(r->ctx, 1, &pg, &to, &st, 0);
	}
}

static inline void t_region_free(struct t_region *r)
{
	free(r->gen);
	free(r->state);
	r->gen = r->state = NULL;
}

/*
 * Run fn(a, b) in a forked child under a 60 s watchdog (a hang is a
 * failure); print PASS or FAIL with name. Returns 0 or 1.
 */
static inline int t_run_child(const char *name, int (*fn)(int, int), int a, int b)
{
	int ws;
	pid_t pid = fork();

	if (pid == 0) {
		alarm(60);
		_exit(fn(a, b) ? 1 : 0);
	}
	if (pid < 0 || waitpid(pid, &ws, 0) != pid) {
		printf("FAIL %s (fork or wait failed)\n", name);
		return 1;
	}
	if (WIFEXITED(ws) && !WEXITSTATUS(ws)) {
		printf("PASS %s\n", name);
		return 0;
	}
	printf("FAIL %s (%s)\n", name, WIFSIGNALED(ws) ? strsignal(WTERMSIG(ws)) : "bad bytes");
	return 1;
}

#endif
