/* SPDX-License-Identifier: MIT */
/*
 * Tiny test harness, liburing style: each test is one program that exits
 * T_EXIT_PASS (0), T_EXIT_FAIL (1) or T_EXIT_SKIP (77), and probes for the
 * kernel features it needs. PMV_STRESS=1 lengthens time-bound loops.
 */
#ifndef PMV_TEST_HARNESS_H
#define PMV_TEST_HARNESS_H

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "pagemove.h"

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
static inline double t_duration(double quick)
{
	const char *s = getenv("PMV_STRESS");

	if (s && *s && strcmp(s, "0"))
		return quick * 20;
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

/* Create a context of n tiers on any node, or skip if the kernel can't. */
static inline pmv_ctx *t_ctx(unsigned n, const size_t *caps, unsigned flags)
{
	struct pmv_tier_config tc[PMV_MAX_TIERS];
	/*
	 * Tests that place pages by hand must not race the policy, but they
	 * should all run with sampling on: every data check then also checks
	 * that parking and unparking lose nothing. PMV_TEST_POLICY overrides.
	 */
	struct pmv_policy_config pol = { .mode = PMV_POLICY_TRACK, .interval_ms = 20,
					 .track_cpu_permille = 20 };
	struct pmv_config cfg = { .ntiers = n, .tiers = tc, .policy = &pol };
	static const char *names[] = { "fast", "slow", "slower", "slowest" };
	const char *tp = getenv("PMV_TEST_POLICY");
	pmv_ctx *ctx;

	int nnodes = t_test_nodes();

	if (tp && !strcmp(tp, "off"))
		pol.mode = PMV_POLICY_OFF;
	else if (tp && !strcmp(tp, "auto"))
		pol.mode = PMV_POLICY_AUTO;

	for (unsigned i = 0; i < n; i++) {
		tc[i].name = i < 4 ? names[i] : NULL;
		/* PMV_TEST_NODES=N (the NUMA guest): tier i on node i mod N */
		tc[i].node = nnodes > 0 ? (int)(i % nnodes) : PMV_NODE_ANY;
		tc[i].capacity = caps ? caps[i] : 0;
	}
	if (nnodes > 0)
		flags |= PMV_CTX_VERIFY;
	cfg.flags = flags;
	ctx = pmv_create(&cfg);
	if (!ctx && (errno == EOPNOTSUPP || errno == EPERM || errno == ENOSYS))
		t_skip("pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	if (!ctx)
		T_FAIL("pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	return ctx;
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

/* The fill pattern: every byte depends on its page and offset. */
static inline uint8_t t_pat(size_t page, size_t off, unsigned seed)
{
	uint64_t x = (page * 0x9E3779B97F4A7C15ULL) ^ (off * 0xBF58476D1CE4E5B9ULL) ^ seed;

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

#endif
