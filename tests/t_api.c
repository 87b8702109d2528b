/* SPDX-License-Identifier: MIT */
/*
 * Every public call: its success paths and every documented error, with
 * page contents checked byte for byte wherever a page moves. Each call's
 * checks are a sub-test in a watchdog child, on a context of their own.
 */
#include <limits.h>

#include "harness.h"

#define SEED 0xa11

/* Query n pages and expect every one on tier `want` (or that errno). */
static void expect_tiers(pmv_ctx *ctx, void **pages, int n, int want)
{
	int status[n], bad = 0, ret;

	ret = pmv_move_pages(ctx, n, pages, NULL, status, 0);
	for (int i = 0; i < n; i++)
		if (status[i] != want && bad++ < 4)
			fprintf(stderr, "page %d (%p): status %d, want %d\n", i, pages[i],
				status[i], want);
	T_ASSERT(!bad, "%d pages not on tier %d", bad, want);
	T_EQ(ret, want < 0 ? n : 0);
}

static void test_create(void)
{
	struct pmv_tier_config tc[PMV_MAX_TIERS + 1] = {
		{ .name = "a", .node = PMV_NODE_ANY },
	};
	struct pmv_config cfg = { .ntiers = 1, .tiers = tc };
	pmv_ctx *ctx;

	errno = 0;
	T_ASSERT(!pmv_create(NULL) && errno == EINVAL, "NULL config");
	cfg.ntiers = 0;
	T_ASSERT(!pmv_create(&cfg) && errno == EINVAL, "0 tiers");
	cfg.ntiers = PMV_MAX_TIERS + 1;
	T_ASSERT(!pmv_create(&cfg) && errno == EINVAL, "too many tiers");
	cfg.ntiers = 1;
	cfg.tiers = NULL;
	T_ASSERT(!pmv_create(&cfg) && errno == EINVAL, "NULL tiers");
	cfg.tiers = tc;
	cfg.flags = 1U << 30;
	T_ASSERT(!pmv_create(&cfg) && errno == EINVAL, "unknown flags");
	cfg.flags = 0;
	tc[0].node = 4095;
	T_ASSERT(!pmv_create(&cfg) && errno == ENODEV, "missing node: %s", strerror(errno));
	T_ASSERT(strstr(pmv_errmsg(), "node 4095"), "errmsg names the node: '%s'", pmv_errmsg());
	tc[0].node = -7;
	T_ASSERT(!pmv_create(&cfg) && errno == EINVAL, "negative node");
	tc[0].node = 0;		/* node 0 always exists */
	ctx = pmv_create(&cfg);
	if (!ctx && (errno == EOPNOTSUPP || errno == EPERM))
		t_skip("userfaultfd: %s", pmv_errmsg());
	T_ASSERT(ctx, "create on node 0: %s", pmv_errmsg());
	T_EQ(pmv_tier_count(ctx), 1);
	pmv_destroy(ctx);
	pmv_destroy(NULL);	/* like free(NULL) */
}

static void test_version(void)
{
	T_EQ(pmv_version_major(), PMV_VERSION_MAJOR);
	T_EQ(pmv_version_minor(), PMV_VERSION_MINOR);
	T_ASSERT(pmv_version()[0] == '0' + PMV_VERSION_MAJOR, "%s", pmv_version());
	T_ASSERT(strlen(pmv_strerror(-EBUSY)) > 3, "strerror");
	T_ASSERT(strcmp(pmv_strerror(-EACCES), pmv_strerror(-ENOMEM)), "distinct texts");
	T_ASSERT(strlen(pmv_strerror(-12345)) > 0, "unknown errno still has text");
}

/* Codes with no negation: built with SAN=1, UBSan checks there is none. */
static int strerror_takes_any_int(void)
{
	static const int codes[] = { INT_MIN, INT_MIN + 1, -4096, -1 };
	int bad = 0;

	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		const char *s = pmv_strerror(codes[i]);

		T_CHECK(bad, s && *s, "pmv_strerror(%d): no text", codes[i]);
	}
	return bad;
}

/* A status >= 0 is a tier, never a positive errno: tier 1 is not EPERM. */
static int strerror_reads_tiers_as_success(void)
{
	static const int tiers[] = { 0, 1, EPERM, EBUSY, PMV_MAX_TIERS - 1, INT_MAX };
	int bad = 0;

	for (size_t i = 0; i < sizeof(tiers) / sizeof(tiers[0]); i++)
		T_CHECK(bad, !strcmp(pmv_strerror(tiers[i]), "success"),
			"pmv_strerror(%d) = '%s'", tiers[i], pmv_strerror(tiers[i]));
	T_CHECK(bad, strcmp(pmv_strerror(-EPERM), "success"), "-EPERM reads as success");
	return bad;
}

static void test_mmap_munmap(pmv_ctx *ctx)
{
	char stackvar[64];
	char *p, *h;

	errno = 0;
	T_ASSERT(!pmv_mmap(NULL, 4096, 0, 0) && errno == EINVAL, "NULL ctx");
	T_ASSERT(!pmv_mmap(ctx, 0, 0, 0) && errno == EINVAL, "len 0");
	T_ASSERT(!pmv_mmap(ctx, 4096, 2, 0) && errno == EINVAL, "no tier 2");
	T_ASSERT(!pmv_mmap(ctx, 4096, -5, 0) && errno == EINVAL, "tier -5");
	T_ASSERT(!pmv_mmap(ctx, 4096, 0, 1 << 20) && errno == EINVAL, "bad flags");
	T_ASSERT(!pmv_mmap(ctx, SIZE_MAX, 0, 0) && errno == ENOMEM, "overflow: %d", errno);
	T_ASSERT(!pmv_mmap(ctx, SIZE_MAX - 4096, 0, 0) && errno == ENOMEM, "huge len");

	p = pmv_mmap(ctx, 10000, PMV_TIER_DEFAULT, 0);	/* rounds up to 3 pages */
	T_ASSERT(p, "mmap: %s", strerror(errno));
	T_ASSERT(((uintptr_t)p & 4095) == 0, "page aligned");
	for (int i = 0; i < 3 * 4096; i++)
		T_ASSERT(p[i] == 0, "first touch reads zero at %d", i);
	memset(p, 0x5a, 3 * 4096);

	T_EQ(pmv_munmap(NULL, p, 10000), -EINVAL);
	T_EQ(pmv_munmap(ctx, NULL, 10000), -EINVAL);
	T_EQ(pmv_munmap(ctx, p, 4096), -EINVAL);		/* not the whole region */
	T_EQ(pmv_munmap(ctx, p + 4096, 8192), -EINVAL);	/* not its start */
	T_EQ(pmv_munmap(ctx, p + 1, 10000), -EINVAL);	/* unaligned */
	T_EQ(pmv_munmap(ctx, stackvar, 64), -EINVAL);	/* unmanaged */
	T_EQ(pmv_munmap(ctx, p, 10000), 0);
	T_EQ(pmv_munmap(ctx, p, 10000), -EINVAL);		/* double munmap */

	if (t_thp_enabled()) {
		h = pmv_mmap(ctx, 3 << 20, 1, PMV_HUGE);	/* rounds up to 4 MB */
		T_ASSERT(h, "huge mmap: %s", strerror(errno));
		T_ASSERT(((uintptr_t)h & (T_SZ_2M - 1)) == 0, "2 MB aligned");
		h[0] = 1;
		h[(4 << 20) - 1] = 2;
		T_EQ(pmv_munmap(ctx, h, 3 << 20), 0);		/* same rounding */
	}
}

static void test_move_pages(pmv_ctx *ctx)
{
	enum { N = 8 };
	char *p = pmv_mmap(ctx, N * 4096, 0, 0);
	char other[4096];
	void *pages[N + 2];
	int tiers[N + 2], status[N + 2];
	int ret;

	T_ASSERT(p, "mmap");
	for (int i = 0; i < N; i++)
		pages[i] = p + i * 4096 + i;	/* any address inside the page */
	/* query before any touch: every page -ENOENT, the count of misses back */
	ret = pmv_move_pages(ctx, N, pages, NULL, status, 0);
	T_EQ(ret, N);
	for (int i = 0; i < N; i++)
		T_EQ(status[i], -ENOENT);
	/* moving pages never touched: -ENOENT too, nothing placed */
	for (int i = 0; i < N; i++)
		tiers[i] = 1;
	T_EQ(pmv_move_pages(ctx, N, pages, tiers, status, 0), N);
	for (int i = 0; i < N; i++)
		T_EQ(status[i], -ENOENT);

	for (int i = 0; i < N; i++)
		t_fill(p + i * 4096, 4096, i, SEED);
	expect_tiers(ctx, pages, N, 0);

	/* the move itself, and the data after it */
	T_EQ(pmv_move_pages(ctx, N, pages, tiers, status, 0), 0);
	for (int i = 0; i < N; i++) {
		T_EQ(status[i], 1);
		T_EQ(t_check(p + i * 4096, 4096, i, SEED), -1);
	}
	T_EQ(pmv_move_pages(ctx, N, pages, NULL, status, 0), 0);
	for (int i = 0; i < N; i++)
		T_EQ(status[i], 1);
	/* already there: success, status is the tier */
	T_EQ(pmv_move_pages(ctx, N, pages, tiers, status, 0), 0);
	T_EQ(status[0], 1);

	/* per-page errors, and the return value counts them */
	pages[N] = other;		/* unmanaged */
	tiers[N] = 0;
	pages[N + 1] = p;		/* no such tier */
	tiers[N + 1] = 9;
	tiers[0] = 0;
	ret = pmv_move_pages(ctx, N + 2, pages, tiers, status, 0);
	T_EQ(ret, 2);
	T_EQ(status[0], 0);
	T_EQ(status[N], -EFAULT);
	T_EQ(status[N + 1], -EINVAL);
	T_EQ(t_check(p, 4096, 0, SEED), -1);

	/* invalid calls */
	T_EQ(pmv_move_pages(NULL, 1, pages, tiers, status, 0), -EINVAL);
	T_EQ(pmv_move_pages(ctx, 1, NULL, tiers, status, 0), -EINVAL);
	T_EQ(pmv_move_pages(ctx, 1, pages, tiers, NULL, 0), -EINVAL);
	T_EQ(pmv_move_pages(ctx, 1, pages, tiers, status, 1 << 12), -EINVAL);
	T_EQ(pmv_move_pages(ctx, 0, NULL, NULL, NULL, 0), 0);
	for (int i = 0; i < N; i++)
		T_EQ(t_check(p + i * 4096, 4096, i, SEED), -1);
	T_EQ(pmv_munmap(ctx, p, N * 4096), 0);
	/* after munmap the addresses are unmanaged */
	T_EQ(pmv_move_pages(ctx, 1, pages, NULL, status, 0), 1);
	T_EQ(status[0], -EFAULT);
}

/*
 * A page named more than once runs its entries in order, as move_pages(2):
 * it ends where the last one sends it, and each entry's status is where
 * the page was after that entry. Every move is a real one (counted), and
 * the bytes come along. psz is 4 KB or 2 MB. Returns the failed checks.
 */
static int repeated_page_moves_in_order(pmv_ctx *ctx, size_t psz)
{
	enum { START, MIDDLE, LAST };	/* where in its page an entry points */
	static const struct {
		int n;
		struct { int page, at, tier, want; } e[4];
		int final[2], moves;
	} cases[] = {
		/* page 0 on tier 0: sent to 1 twice, by two addresses in it */
		{ 2, { { 0, START, 1, 1 }, { 0, LAST, 1, 1 } }, { 1, 0 }, 1 },
		/* page 0 on tier 1: back, out again, and back */
		{ 3, { { 0, MIDDLE, 0, 0 }, { 0, START, 1, 1 }, { 0, LAST, 0, 0 } },
		  { 0, 0 }, 3 },
		/* interleaved with page 1: each ends on its last entry's tier */
		{ 4, { { 0, START, 1, 1 }, { 1, START, 1, 1 }, { 0, MIDDLE, 0, 0 },
		       { 1, LAST, 1, 1 } }, { 0, 1 }, 3 },
	};
	const char *what = psz == T_SZ_2M ? "2M" : "4K";
	char *p = pmv_mmap(ctx, 2 * psz, 0, psz == T_SZ_2M ? PMV_HUGE : 0);
	void *both[2];
	int bad = 0;

	T_ASSERT(p, "pmv_mmap %s: %s", what, strerror(errno));
	for (int k = 0; k < 2; k++) {
		both[k] = p + k * psz;
		t_fill(both[k], psz, k, SEED + 7);
	}
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		size_t at[] = { 0, psz / 2, psz - 1 };
		struct pmv_ctx_stats cs0, cs1;
		void *pages[4];
		int tiers[4], st[4], ret;

		for (int i = 0; i < cases[c].n; i++) {
			pages[i] = (char *)both[cases[c].e[i].page] + at[cases[c].e[i].at];
			tiers[i] = cases[c].e[i].tier;
		}
		T_EQ(pmv_ctx_stats(ctx, &cs0), 0);
		ret = pmv_move_pages(ctx, cases[c].n, pages, tiers, st, 0);
		T_EQ(pmv_ctx_stats(ctx, &cs1), 0);
		T_CHECK(bad, ret == 0, "%s case %zu: returned %d", what, c, ret);
		for (int i = 0; i < cases[c].n; i++)
			T_CHECK(bad, st[i] == cases[c].e[i].want, "%s case %zu entry %d: "
				"status %d (%s), want %d", what, c, i, st[i],
				pmv_strerror(st[i]), cases[c].e[i].want);
		/* every entry that changed the tier was a real move */
		T_CHECK(bad, cs1.migrations - cs0.migrations == (uint64_t)cases[c].moves,
			"%s case %zu: %llu migrations, want %d", what, c,
			(unsigned long long)(cs1.migrations - cs0.migrations), cases[c].moves);
		T_EQ(pmv_move_pages(ctx, 2, both, NULL, st, 0), 0);
		for (int k = 0; k < 2; k++) {
			T_CHECK(bad, st[k] == cases[c].final[k], "%s case %zu: page %d on "
				"tier %d, want %d", what, c, k, st[k], cases[c].final[k]);
			T_CHECK(bad, t_check(both[k], psz, k, SEED + 7) == -1,
				"%s case %zu: page %d: bad data", what, c, k);
		}
	}
	T_EQ(pmv_munmap(ctx, p, 2 * psz), 0);
	return bad;
}

static void test_migrate(void)
{
	enum { N = 64 };
	pmv_ctx *ctx = t_ctx(3, NULL, 0);
	char *p = pmv_mmap(ctx, N * 4096, 0, 0);
	void *pages[N];
	int status[N];
	struct pmv_tier_stats st;

	T_ASSERT(p, "mmap");
	for (int i = 0; i < N; i++) {
		t_fill(p + i * 4096, 4096, i, SEED);
		pages[i] = p + i * 4096;
	}
	T_EQ(pmv_migrate(ctx, 0, 1, 0), -EINVAL);
	T_EQ(pmv_migrate(ctx, 1, 0, 0), -EINVAL);
	T_EQ(pmv_migrate(ctx, 1 << 3, 1, 0), -EINVAL);	/* no tier 3 */
	T_EQ(pmv_migrate(ctx, 1, 1 << 5, 0), -EINVAL);
	T_EQ(pmv_migrate(ctx, 1, 2, 1 << 9), -EINVAL);
	T_EQ(pmv_migrate(NULL, 1, 2, 0), -EINVAL);

	T_EQ(pmv_migrate(ctx, 1 << 0, 1 << 2, 0), 0);	/* 0 -> 2 */
	expect_tiers(ctx, pages, N, 2);
	/* half to tier 1, then {1,2} -> {0}: the extra source goes to the last */
	{
		int tiers[N / 2];

		for (int i = 0; i < N / 2; i++)
			tiers[i] = 1;
		T_EQ(pmv_move_pages(ctx, N / 2, pages, tiers, status, 0), 0);
	}
	T_EQ(pmv_migrate(ctx, (1 << 1) | (1 << 2), 1 << 0, 0), 0);
	expect_tiers(ctx, pages, N, 0);
	/* {0,1} -> {1,2}: the k-th to the k-th; tier 0's pages end on tier 1 */
	T_EQ(pmv_migrate(ctx, 3, 6, 0), 0);
	expect_tiers(ctx, pages, N, 1);
	pmv_tier_stats(ctx, 1, &st);
	T_EQ(st.resident_4k, N);
	for (int i = 0; i < N; i++)
		T_EQ(t_check(p + i * 4096, 4096, i, SEED), -1);
	pmv_destroy(ctx);
}

static void test_mbind(pmv_ctx *ctx)
{
	enum { N = 16 };
	char *p = pmv_mmap(ctx, N * 4096, 0, 0);
	char *q = pmv_mmap(ctx, 4096, 0, 0);
	char other[8192];
	void *pages[N];
	int status[N];

	T_ASSERT(p && q, "mmap");
	T_EQ(pmv_mbind(NULL, p, 4096, 1, 0), -EINVAL);
	T_EQ(pmv_mbind(ctx, p, 4096, 5, 0), -EINVAL);
	T_EQ(pmv_mbind(ctx, p + 1, 4096, 1, 0), -EINVAL);
	T_EQ(pmv_mbind(ctx, p, 100, 1, 0), -EINVAL);
	T_EQ(pmv_mbind(ctx, p, 0, 1, 0), -EINVAL);
	T_EQ(pmv_mbind(ctx, NULL, 4096, 1, 0), -EINVAL);
	T_EQ(pmv_mbind(ctx, p, 4096, 1, 1 << 11), -EINVAL);
	T_EQ(pmv_mbind(ctx, (char *)(((uintptr_t)other + 4095) & ~4095UL), 4096, 1, 0), -EFAULT);
	T_EQ(pmv_mbind(ctx, p, (N + 1) * 4096, 1, 0), -EFAULT);	/* leaves the region */

	/*
	 * First half touched, last page first: a sequential stream would have
	 * the pages after it mapped ahead (fault.c), placed by the policy of
	 * then, as the rest of a huge page is.
	 */
	for (int i = N; i-- > 0;) {
		pages[i] = p + i * 4096;
		if (i < N / 2)
			t_fill(p + i * 4096, 4096, i, SEED);
	}
	/* policy only: touched pages stay, new touches follow the policy */
	T_EQ(pmv_mbind(ctx, p, N * 4096, 1, 0), 0);
	T_EQ(pmv_move_pages(ctx, N / 2, pages, NULL, status, 0), 0);
	T_EQ(status[0], 0);
	p[(N / 2) * 4096] = 1;
	T_EQ(pmv_move_pages(ctx, 1, &pages[N / 2], NULL, status, 0), 0);
	T_EQ(status[0], 1);
	/*
	 * PMV_MOVE: existing pages comply. With PMV_MF_STRICT a page busy at
	 * that moment (held by a fault handler mapping ahead, slow in the NUMA
	 * guest) is -EIO: tried again, a bounded number of times.
	 */
	{
		int ret = -EIO;

		for (int tries = 0; tries < 20 && ret == -EIO; tries++) {
			ret = pmv_mbind(ctx, p, N * 4096, 1, PMV_MOVE | PMV_MF_STRICT);
			if (ret == -EIO)
				usleep(2000);
		}
		T_EQ(ret, 0);
	}
	T_EQ(pmv_move_pages(ctx, N / 2 + 1, pages, NULL, status, 0), 0);
	for (int i = 0; i < N / 2 + 1; i++)
		T_EQ(status[i], 1);
	for (int i = 0; i < N / 2; i++)
		T_EQ(t_check(p + i * 4096, 4096, i, SEED), -1);
	/* a sub-range, bound, back to tier 0 */
	T_EQ(pmv_mbind(ctx, p + 4096, 2 * 4096, 0, PMV_MOVE | PMV_MPOL_BIND), 0);
	T_EQ(pmv_move_pages(ctx, 4, pages, NULL, status, 0), 0);
	T_EQ(status[0], 1);
	T_EQ(status[1], 0);
	T_EQ(status[2], 0);
	T_EQ(status[3], 1);
	for (int i = 0; i < N / 2; i++)
		T_EQ(t_check(p + i * 4096, 4096, i, SEED), -1);
	pmv_munmap(ctx, p, N * 4096);
	pmv_munmap(ctx, q, 4096);
}

static void test_stats(pmv_ctx *ctx)
{
	struct pmv_tier_stats st0, st1;
	struct pmv_ctx_stats cs;
	char *p = pmv_mmap(ctx, 4 * 4096, 0, 0);
	void *pg = p;
	int to = 1, status;

	T_EQ(pmv_tier_stats(ctx, 2, &st0), -EINVAL);
	T_EQ(pmv_tier_stats(ctx, -1, &st0), -EINVAL);
	T_EQ(pmv_tier_stats(ctx, 0, NULL), -EINVAL);
	T_EQ(pmv_tier_stats(NULL, 0, &st0), -EINVAL);
	T_EQ(pmv_ctx_stats(ctx, NULL), -EINVAL);
	T_EQ(pmv_ctx_stats(NULL, &cs), -EINVAL);
	T_EQ(pmv_tier_count(NULL), -EINVAL);

	T_EQ(pmv_tier_stats(ctx, 0, &st0), 0);
	memset(p, 1, 4 * 4096);
	T_EQ(pmv_tier_stats(ctx, 0, &st1), 0);
	T_EQ(st1.resident_4k - st0.resident_4k, 4);
	T_EQ(st1.first_touch - st0.first_touch, 4);
	T_ASSERT(!strcmp(st1.name, "fast"), "name %s", st1.name);
	T_EQ(pmv_tier_stats(ctx, 1, &st0), 0);
	T_EQ(pmv_move_pages(ctx, 1, &pg, &to, &status, 0), 0);
	T_EQ(pmv_tier_stats(ctx, 1, &st1), 0);
	T_EQ(st1.migrate_in - st0.migrate_in, 1);
	T_EQ(st1.migrate_bytes_in - st0.migrate_bytes_in, 4096);
	T_EQ(st1.resident_bytes, st1.resident_4k * 4096 + st1.resident_2m * T_SZ_2M);
	T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	T_EQ(cs.ntiers, 2);
	T_ASSERT(cs.regions >= 1, "regions");
	T_ASSERT(cs.migrations >= 1 && cs.faults_first_touch >= 4, "counters");
	T_ASSERT(cs.mode == PMV_MODE_FULL || cs.mode == PMV_MODE_USER_ONLY, "mode");
	pmv_munmap(ctx, p, 4 * 4096);
}

/* Move n pages of size psz at p to tier `to`; every status and byte checked. */
static int move_checked(pmv_ctx *ctx, char *p, int n, size_t psz, int to, unsigned seed,
			const char *what)
{
	void *pages[64];
	int tiers[64], status[64], bad = 0, ret;

	for (int i = 0; i < n; i++) {
		pages[i] = p + i * psz;
		tiers[i] = to;
	}
	ret = pmv_move_pages(ctx, n, pages, tiers, status, 0);
	T_CHECK(bad, ret == 0, "%s: %d pages not moved", what, ret);
	for (int i = 0; i < n; i++) {
		T_CHECK(bad, status[i] == to, "%s: page %d: status %d (%s)", what, i,
			status[i], pmv_strerror(status[i]));
		T_CHECK(bad, t_check(p + i * psz, psz, i, seed) == -1, "%s: page %d: bad data",
			what, i);
	}
	return bad;
}

/*
 * A context created with the memcpy engine has no copy threads; switching
 * to parallel or offload starts them (once) and returns 0, and pages then
 * move through them intact (offload copies nothing in the caller, so a
 * move there proves the threads work). Returns the failed checks.
 */
static int copy_engine_starts_copy_threads(void)
{
	struct pmv_tier_config tc[2];
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .copy_threads = 2,
				  .copy_engine = PMV_COPY_MEMCPY, .policy = &pol };
	static const int engines[] = { PMV_COPY_PARALLEL, PMV_COPY_OFFLOAD };
	int nodes = t_test_nodes(), huge = t_thp_enabled(), bad = 0;
	pmv_ctx *ctx;
	char *p, *h = NULL;

	for (int i = 0; i < 2; i++)
		tc[i] = (struct pmv_tier_config){ .node = nodes > 0 ? i % nodes : PMV_NODE_ANY };
	unsetenv("PAGEMOVE_COPY");	/* it would override the engine */
	ctx = pmv_create(&cfg);
	T_ASSERT(ctx, "pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	T_CHECK(bad, t_count_threads("pmv-copy") == 0, "memcpy context: %d copy threads",
		t_count_threads("pmv-copy"));
	p = pmv_mmap(ctx, 64 * T_SZ_4K, 0, 0);
	T_ASSERT(p, "pmv_mmap: %s", strerror(errno));
	for (int i = 0; i < 64; i++)
		t_fill(p + i * T_SZ_4K, T_SZ_4K, i, SEED);
	if (huge) {
		h = pmv_mmap(ctx, 2 * T_SZ_2M, 0, PMV_HUGE);
		T_ASSERT(h, "pmv_mmap huge: %s", strerror(errno));
		for (int i = 0; i < 2; i++)
			t_fill(h + i * T_SZ_2M, T_SZ_2M, i, SEED);
	}
	for (int k = 0; k < 2; k++) {
		int e = engines[k], ret = pmv_set_copy_engine(ctx, e);

		T_CHECK(bad, ret == 0, "engine %d: %d (%s)", e, ret, pmv_errmsg());
		T_CHECK(bad, t_count_threads("pmv-copy") == 2, "engine %d: %d copy threads, "
			"want 2", e, t_count_threads("pmv-copy"));
		for (int to = 1; to >= 0; to--) {
			bad += move_checked(ctx, p, 64, T_SZ_4K, to, SEED, "4K");
			if (h)
				bad += move_checked(ctx, h, 2, T_SZ_2M, to, SEED, "2M");
		}
	}
	T_CHECK(bad, pmv_set_copy_engine(ctx, PMV_COPY_NR) == -EINVAL, "engine PMV_COPY_NR");
	T_CHECK(bad, pmv_set_copy_engine(ctx, -1) == -EINVAL, "engine -1");
	T_CHECK(bad, pmv_set_copy_engine(NULL, PMV_COPY_MEMCPY) == -EINVAL, "NULL ctx");
	T_CHECK(bad, pmv_set_copy_engine(ctx, PMV_COPY_MEMCPY) == 0, "back to memcpy");
	bad += move_checked(ctx, p, 64, T_SZ_4K, 1, SEED, "4K memcpy");
	pmv_destroy(ctx);
	return bad;
}

/* ---- sub-tests, each in a watchdog child ---------------------------------- */

/* One call's checks on a context of their own. */
#define ON_CTX(name, body)						\
	static int name(const struct t_case *c)				\
	{								\
		pmv_ctx *ctx = t_ctx(2, NULL, 0);			\
		int fails = 0;						\
									\
		(void)c;						\
		body;							\
		pmv_destroy(ctx);					\
		return fails;						\
	}

ON_CTX(test_mmap_and_munmap, test_mmap_munmap(ctx))
ON_CTX(test_move_pages_statuses_and_data, test_move_pages(ctx))
ON_CTX(test_repeated_page_moves_apply_in_order,
       fails += repeated_page_moves_in_order(ctx, c->huge ? T_SZ_2M : T_SZ_4K))
ON_CTX(test_mbind_moves_and_binds, test_mbind(ctx))
ON_CTX(test_stats_calls, test_stats(ctx))

static int test_create_and_its_errors(const struct t_case *c)
{
	(void)c;
	test_create();
	return 0;
}

static int test_version_calls(const struct t_case *c)
{
	(void)c;
	test_version();
	return 0;
}

static int test_strerror_any_int_and_tiers(const struct t_case *c)
{
	(void)c;
	return strerror_takes_any_int() + strerror_reads_tiers_as_success();
}

static int test_migrate_whole_tiers(const struct t_case *c)
{
	(void)c;
	test_migrate();
	return 0;
}

static int test_copy_engine_starts_copy_threads(const struct t_case *c)
{
	(void)c;
	return copy_engine_starts_copy_threads();
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	T_CASE_ONE(&s, test_create_and_its_errors, 0);
	T_CASE_ONE(&s, test_version_calls, 0);
	T_CASE_ONE(&s, test_strerror_any_int_and_tiers, 0);
	T_CASE_ONE(&s, test_mmap_and_munmap, 0);
	T_CASE_ONE(&s, test_move_pages_statuses_and_data, 0);
	for (int h = 0; h < 2; h++)
		T_CASE(&s, test_repeated_page_moves_apply_in_order, -1, h);
	T_CASE_ONE(&s, test_mbind_moves_and_binds, 0);
	T_CASE_ONE(&s, test_stats_calls, 0);
	T_CASE_ONE(&s, test_migrate_whole_tiers, 0);
	T_CASE_ONE(&s, test_copy_engine_starts_copy_threads, 0);
	return t_suite_end(&s);
}
