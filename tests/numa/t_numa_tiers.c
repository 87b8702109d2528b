/* SPDX-License-Identifier: MIT */
/*
 * t_numa_tiers: pagemove's tiers on real NUMA nodes (run in the qemu guest,
 * see tests/numa/README.md).
 *
 * Tier k is bound to the k-th node with memory (up to MAX_TIERS of them) and
 * the context verifies every moved page's node (PMV_CTX_VERIFY). Each tier
 * gets a region of 4 KB pages and, when THP is usable, a PMV_HUGE region of
 * 2 MB pages. Every byte of every region holds a pattern derived from the
 * region, the page index and the offset; after every step below the whole
 * pattern is checked, every page's real node is read with
 * move_pages(2, nodes=NULL), its tier with pmv_move_pages(tiers=NULL), the
 * THP regions must still be whole THPs (/proc/self/smaps AnonHugePages ==
 * their size), and pmv_tier_stats() must show no verify error, no failed
 * move and resident counts equal to where the pages are known to be.
 *
 *   a. first touch on tier k puts the pages on node k;
 *   b. pmv_move_pages() moves each region, 4 KB and 2 MB pages, through
 *      every other tier, then scatters a 4 KB region page by page over all
 *      tiers in one call and gathers it back;
 *   c. pmv_migrate() moves whole tier sets: {0..h-1} -> {h..2h-1} (h = N/2:
 *      {0,1} -> {2,3} on 4 nodes, {0} -> {1} on 2), back, and, with 3 or
 *      more nodes, {0..N-2} -> {N-1} (fewer targets than sources);
 *   d. pmv_create() with a tier on a node that does not exist, or on a node
 *      without memory (only if the machine has one), fails with ENODEV;
 *   e. the stats checks above, after every step, and zero residents after
 *      every region is unmapped.
 *   test_exchange(): with PMV_HAVE_EXCHANGE, pmv_exchange_pages() swaps the
 *      tiers of pairs of 4 KB and of 2 MB pages on every two neighbouring
 *      tiers (nodes), checked as above after every exchange.
 *
 * Exit: 0 pass, 1 fail, 77 skip (fewer than 2 nodes with memory, no
 * userfaultfd move support).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <numa.h>
#include <numaif.h>

#include "harness.h"

#define MAX_TIERS	8
#define SZ_4K_REGION	(640 * T_SZ_4K)	/* more than one 512-page chunk of pmv_move_pages() */
#define SZ_2M_REGION	(6UL << 20)	/* 3 pages of 2 MB per tier */
#define MAX_REGIONS	(2 * MAX_TIERS)

struct region {
	char *base;
	size_t len, psz, npages;
	int huge;
	unsigned id;
	int *tier;		/* where each page is known to be */
};

static pmv_ctx *ctx;
static int ntiers;
static int node_of[MAX_TIERS];		/* tier -> node */
static struct region regions[MAX_REGIONS];
static int nregions;
static int thp;
static uint64_t expect_migrations;	/* pages moved so far */
static uint64_t expect_first_touch[MAX_TIERS];
static unsigned step;
static int thp_own_vma;			/* 2 MB regions checked one by one */
static double t_start;

/* ---- pattern: every 8 bytes depend on region, page and offset -------- */

static inline uint64_t pat(unsigned id, size_t page, size_t word)
{
	uint64_t x = ((uint64_t)id << 56) ^ ((uint64_t)page << 24) ^ word;

	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

static void fill(struct region *r)
{
	for (size_t p = 0; p < r->npages; p++) {
		uint64_t *w = (uint64_t *)(r->base + p * r->psz);

		for (size_t i = 0; i < r->psz / 8; i++)
			w[i] = pat(r->id, p, i);
	}
}

/* Every byte of every region (compared 8 at a time). */
static void verify_all(const char *what)
{
	for (int k = 0; k < nregions; k++) {
		const struct region *r = &regions[k];

		for (size_t p = 0; p < r->npages; p++) {
			const uint64_t *w = (const uint64_t *)(r->base + p * r->psz);

			for (size_t i = 0; i < r->psz / 8; i++) {
				uint64_t want = pat(r->id, p, i);

				if (w[i] != want) {
					const uint8_t *g = (const uint8_t *)&w[i];
					const uint8_t *e = (const uint8_t *)&want;
					size_t b = 0;

					while (b < 7 && g[b] == e[b])
						b++;
					T_FAIL("%s: region %u (%s) page %zu (tier %d) offset %zu: "
					       "byte 0x%02x, want 0x%02x", what, r->id,
					       r->huge ? "2 MB" : "4 KB", p, r->tier[p],
					       i * 8 + b, g[b], e[b]);
				}
			}
		}
	}
}

/* ---- placement checks ------------------------------------------------ */

/* Every 4 KB piece of every page is on the node of the page's tier. */
static void check_nodes(const char *what)
{
	for (int k = 0; k < nregions; k++) {
		const struct region *r = &regions[k];
		size_t n = r->len / T_SZ_4K, per = r->psz / T_SZ_4K;
		void **addrs = calloc(n, sizeof(*addrs));
		int *status = calloc(n, sizeof(*status));
		long ret;

		T_ASSERT(addrs && status, "out of memory");
		for (size_t i = 0; i < n; i++) {
			addrs[i] = r->base + i * T_SZ_4K;
			status[i] = -12345;
		}
		ret = move_pages(0, n, addrs, NULL, status, 0);
		T_ASSERT(ret == 0, "%s: move_pages(query) of region %u: %ld (%s)",
			 what, r->id, ret, strerror(errno));
		for (size_t i = 0; i < n; i++) {
			int t = r->tier[i / per];

			if (status[i] != node_of[t])
				T_FAIL("%s: region %u (%s) page %zu, 4 KB piece %zu: on node %d "
				       "(%s), want node %d (tier %d)", what, r->id,
				       r->huge ? "2 MB" : "4 KB", i / per, i % per, status[i],
				       status[i] < 0 ? strerror(-status[i]) : "-", node_of[t], t);
		}
		free(addrs);
		free(status);
	}
}

/* pmv_move_pages(tiers == NULL) reports each page's tier. */
static void check_query(const char *what)
{
	for (int k = 0; k < nregions; k++) {
		const struct region *r = &regions[k];
		void **pages = calloc(r->npages, sizeof(*pages));
		int *status = calloc(r->npages, sizeof(*status));
		int ret;

		T_ASSERT(pages && status, "out of memory");
		for (size_t p = 0; p < r->npages; p++) {
			/* inside a 2 MB page any address names the whole page */
			pages[p] = r->base + p * r->psz + (r->huge ? 37 * T_SZ_4K + 5 : 0);
			status[p] = -12345;
		}
		ret = pmv_move_pages(ctx, r->npages, pages, NULL, status, 0);
		T_ASSERT(ret == 0, "%s: pmv_move_pages(query) of region %u: %d (%s)",
			 what, r->id, ret, pmv_strerror(ret));
		for (size_t p = 0; p < r->npages; p++)
			if (status[p] != r->tier[p])
				T_FAIL("%s: region %u page %zu: pmv says tier %d (%s), want %d",
				       what, r->id, p, status[p],
				       status[p] < 0 ? pmv_strerror(status[p]) : "-", r->tier[p]);
		free(pages);
		free(status);
	}
}

/*
 * AnonHugePages (kB) of the VMAs that overlap [lo, hi); *whole is cleared
 * when one of them reaches outside the range.
 */
static long huge_kb(uintptr_t lo, uintptr_t hi, int *whole)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	long total = 0, kb;
	int in = 0;

	T_ASSERT(f, "cannot open /proc/self/smaps: %s", strerror(errno));
	*whole = 1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (line[strspn(line, "0123456789abcdef")] == '-' &&
		    sscanf(line, "%lx-%lx ", &s, &e) == 2) {
			in = s < hi && e > lo;
			if (in && (s < lo || e > hi))
				*whole = 0;
			continue;
		}
		if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			total += kb;
	}
	fclose(f);
	return total;
}

/* The 2 MB regions are still made of whole THPs. */
static void check_thp(const char *what)
{
	uintptr_t lo = UINTPTR_MAX, hi = 0;
	size_t sum = 0;
	long kb;
	int whole;

	thp_own_vma = 0;
	for (int k = 0; k < nregions; k++) {
		const struct region *r = &regions[k];

		if (!r->huge)
			continue;
		kb = huge_kb((uintptr_t)r->base, (uintptr_t)r->base + r->len, &whole);
		/* a region's VMA can merge with another region's (same flags) */
		thp_own_vma += whole;
		if (whole && kb != (long)(r->len / 1024))
			T_FAIL("%s: region %u: AnonHugePages %ld kB, want %zu kB (THP split "
			       "or not allocated)", what, r->id, kb, r->len / 1024);
		if ((uintptr_t)r->base < lo)
			lo = (uintptr_t)r->base;
		if ((uintptr_t)r->base + r->len > hi)
			hi = (uintptr_t)r->base + r->len;
		sum += r->len;
	}
	if (!sum)
		return;
	/* All of them: what lies between them is ours or not THP-backed. */
	kb = huge_kb(lo, hi, &whole);
	if (kb < (long)(sum / 1024))
		T_FAIL("%s: the 2 MB regions have AnonHugePages %ld kB, want %zu kB",
		       what, kb, sum / 1024);
}

static void check_stats(const char *what)
{
	uint64_t res4[MAX_TIERS] = { 0 }, res2[MAX_TIERS] = { 0 }, migr_in = 0, migr_out = 0;
	struct pmv_ctx_stats cs;

	for (int k = 0; k < nregions; k++)
		for (size_t p = 0; p < regions[k].npages; p++)
			(regions[k].huge ? res2 : res4)[regions[k].tier[p]]++;
	for (int t = 0; t < ntiers; t++) {
		struct pmv_tier_stats st;
		int ret = pmv_tier_stats(ctx, t, &st);

		T_ASSERT(ret == 0, "%s: pmv_tier_stats(%d): %d", what, t, ret);
		if (st.verify_errors)
			T_FAIL("%s: tier %d (node %d): verify_errors %llu: pages landed on "
			       "the wrong node", what, t, node_of[t],
			       (unsigned long long)st.verify_errors);
		if (st.node != node_of[t])
			T_FAIL("%s: tier %d: stats say node %d, want %d", what, t, st.node,
			       node_of[t]);
		if (st.resident_4k != res4[t] || st.resident_2m != res2[t])
			T_FAIL("%s: tier %d: resident %llu x 4 KB + %llu x 2 MB, want %llu + %llu",
			       what, t, (unsigned long long)st.resident_4k,
			       (unsigned long long)st.resident_2m, (unsigned long long)res4[t],
			       (unsigned long long)res2[t]);
		if (st.resident_bytes != res4[t] * T_SZ_4K + res2[t] * T_SZ_2M)
			T_FAIL("%s: tier %d: resident_bytes %llu", what, t,
			       (unsigned long long)st.resident_bytes);
		if (st.first_touch != expect_first_touch[t] || st.fallback_in)
			T_FAIL("%s: tier %d: first_touch %llu (want %llu), fallback_in %llu",
			       what, t, (unsigned long long)st.first_touch,
			       (unsigned long long)expect_first_touch[t],
			       (unsigned long long)st.fallback_in);
		for (int i = 0; i < PMV_FAIL_NR; i++)
			if (st.fail[i])
				T_FAIL("%s: tier %d: fail[%d] = %llu", what, t, i,
				       (unsigned long long)st.fail[i]);
		migr_in += st.migrate_in;
		migr_out += st.migrate_out;
	}
	T_ASSERT(pmv_ctx_stats(ctx, &cs) == 0, "pmv_ctx_stats");
	if (migr_in != expect_migrations || migr_out != expect_migrations ||
	    cs.migrations != expect_migrations)
		T_FAIL("%s: migrate_in %llu, migrate_out %llu, migrations %llu; want %llu",
		       what, (unsigned long long)migr_in, (unsigned long long)migr_out,
		       (unsigned long long)cs.migrations,
		       (unsigned long long)expect_migrations);
}

/* Everything, after every step. */
static void check_all(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void check_all(const char *fmt, ...)
{
	char what[160];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	step++;
	verify_all(what);
	check_nodes(what);
	check_query(what);
	if (thp)
		check_thp(what);
	check_stats(what);
}

/* ---- moves ----------------------------------------------------------- */

/* Move page p of region r to to(r, p, arg) (or leave it if < 0), in one call. */
static void move_region(struct region *r, int (*to)(const struct region *, size_t, int),
			int arg, const char *what)
{
	void **pages = calloc(r->npages, sizeof(*pages));
	int *tiers = calloc(r->npages, sizeof(*tiers));
	int *status = calloc(r->npages, sizeof(*status));
	size_t n = 0, *idx = calloc(r->npages, sizeof(*idx));
	int ret;

	T_ASSERT(pages && tiers && status && idx, "out of memory");
	for (size_t p = 0; p < r->npages; p++) {
		int t = to(r, p, arg);

		if (t < 0 || t == r->tier[p])
			continue;
		pages[n] = r->base + p * r->psz;
		tiers[n] = t;
		status[n] = -12345;
		idx[n++] = p;
	}
	ret = pmv_move_pages(ctx, n, pages, tiers, status, 0);
	for (size_t i = 0; i < n; i++)
		if (status[i] != tiers[i])
			T_FAIL("%s: region %u page %zu -> tier %d: status %d (%s); errmsg '%s'",
			       what, r->id, idx[i], tiers[i], status[i],
			       status[i] < 0 ? pmv_strerror(status[i]) : "-", pmv_errmsg());
	T_ASSERT(ret == 0, "%s: pmv_move_pages returned %d", what, ret);
	for (size_t i = 0; i < n; i++)
		r->tier[idx[i]] = tiers[i];
	expect_migrations += n;
	free(pages);
	free(tiers);
	free(status);
	free(idx);
}

static int to_tier(const struct region *r, size_t p, int t)
{
	(void)r;
	(void)p;
	return t;
}

static int to_scatter(const struct region *r, size_t p, int shift)
{
	(void)r;
	return (int)((p + shift) % ntiers);
}

/* ---- a: first touch -------------------------------------------------- */

static void add_region(int tier, size_t len, int huge)
{
	struct region *r = &regions[nregions];

	r->base = pmv_mmap(ctx, len, tier, huge ? PMV_HUGE : 0);
	T_ASSERT(r->base, "pmv_mmap(%zu, tier %d%s): %s (%s)", len, tier,
		 huge ? ", PMV_HUGE" : "", strerror(errno), pmv_errmsg());
	r->len = len;
	r->huge = huge;
	r->psz = huge ? T_SZ_2M : T_SZ_4K;
	r->npages = len / r->psz;
	r->id = nregions + 1;
	r->tier = calloc(r->npages, sizeof(*r->tier));
	T_ASSERT(r->tier, "out of memory");
	for (size_t p = 0; p < r->npages; p++)
		r->tier[p] = tier;
	nregions++;
	fill(r);		/* the first touch */
	expect_first_touch[tier] += r->npages;
}

static void test_first_touch(void)
{
	for (int t = 0; t < ntiers; t++) {
		add_region(t, SZ_4K_REGION, 0);
		if (thp)
			add_region(t, SZ_2M_REGION, 1);
	}
	check_all("a: first touch");
	printf("a: first touch: %d regions on %d tiers, every page on its tier's node (%.1fs)\n",
	       nregions, ntiers, t_now() - t_start);
	if (thp)
		printf("a: AnonHugePages == size for the 2 MB regions together, and for %d of "
		       "them alone (the others share a VMA)\n", thp_own_vma);
}

/* ---- b: pmv_move_pages ------------------------------------------------ */

static void test_move_pages(void)
{
	for (int k = 0; k < nregions; k++) {
		struct region *r = &regions[k];
		int home = r->tier[0];

		/* through every other tier, ending next to where it started */
		for (int i = 1; i < ntiers; i++) {
			int t = (home + i) % ntiers;

			move_region(r, to_tier, t, "b: pmv_move_pages");
			check_all("b: region %u (%s) -> tier %d (node %d)", r->id,
				  r->huge ? "2 MB" : "4 KB", t, node_of[t]);
		}
	}
	printf("b: pmv_move_pages: every region moved through every other tier (%.1fs)\n",
	       t_now() - t_start);

	/* One call, many targets: page p of the first 4 KB region to tier p % N. */
	for (int s = 0; s < 2; s++) {
		move_region(&regions[0], to_scatter, s, "b: scatter");
		check_all("b: region %u scattered over all tiers (shift %d)", regions[0].id, s);
	}
	move_region(&regions[0], to_tier, 0, "b: gather");
	check_all("b: region %u gathered on tier 0", regions[0].id);
	printf("b: pmv_move_pages: one call moving pages to %d different tiers (%.1fs)\n",
	       ntiers, t_now() - t_start);
}

/* ---- c: pmv_migrate --------------------------------------------------- */

static unsigned long tier_mask(int first, int n)
{
	return ((1UL << n) - 1) << first;
}

/* pmv_migrate(from, to): apply its mapping to what we know, then check. */
static void migrate(unsigned long from, unsigned long to, const char *what)
{
	int map[MAX_TIERS], dst[MAX_TIERS], ndst = 0, k = 0;
	uint64_t moved = 0;
	long ret;

	for (int t = 0; t < ntiers; t++)
		if (to & (1UL << t))
			dst[ndst++] = t;
	for (int t = 0; t < ntiers; t++) {
		map[t] = t;
		if (from & (1UL << t)) {
			map[t] = dst[k < ndst ? k : ndst - 1];
			k++;
		}
	}
	ret = pmv_migrate(ctx, from, to, 0);
	T_ASSERT(ret == 0, "%s: pmv_migrate(0x%lx, 0x%lx) = %ld (%s)", what, from, to, ret,
		 ret < 0 ? pmv_strerror((int)ret) : "pages not moved");
	for (int i = 0; i < nregions; i++)
		for (size_t p = 0; p < regions[i].npages; p++) {
			int t = regions[i].tier[p];

			if (map[t] != t) {
				regions[i].tier[p] = map[t];
				moved++;
			}
		}
	expect_migrations += moved;
	check_all("%s: pmv_migrate(0x%lx -> 0x%lx), %llu pages", what, from, to,
		  (unsigned long long)moved);
	printf("%s: pmv_migrate(0x%lx -> 0x%lx): %llu pages moved, all verified (%.1fs)\n",
	       what, from, to, (unsigned long long)moved, t_now() - t_start);
}

static void test_migrate(void)
{
	int h = ntiers / 2;
	unsigned long lo = tier_mask(0, h), hi = tier_mask(h, h);

	/* Region k onto tier k % h: every tier of the source set has pages. */
	for (int k = 0; k < nregions; k++) {
		move_region(&regions[k], to_tier, k % h, "c: setup");
		check_all("c: setup: region %u -> tier %d", regions[k].id, k % h);
	}
	migrate(lo, hi, "c1");
	migrate(hi, lo, "c2");
	if (ntiers >= 3)
		migrate(tier_mask(0, ntiers - 1), tier_mask(ntiers - 1, 1), "c3");
	T_EQ(pmv_migrate(ctx, 0, 1, 0), -EINVAL);
	T_EQ(pmv_migrate(ctx, 1, 1UL << ntiers, 0), -EINVAL);
}

/* ---- d: pmv_create on a node that cannot hold a tier ------------------- */

static void expect_enodev(int node, const char *why)
{
	struct pmv_tier_config tc[2] = {
		{ .name = "good", .node = node_of[0] },
		{ .name = "bad", .node = node },
	};
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .flags = PMV_CTX_VERIFY };
	pmv_ctx *c;

	errno = 0;
	c = pmv_create(&cfg);
	if (c) {
		pmv_destroy(c);
		T_FAIL("d: pmv_create with a tier on node %d (%s) succeeded, want ENODEV",
		       node, why);
	}
	if (errno != ENODEV)
		T_FAIL("d: pmv_create with a tier on node %d (%s): errno %d (%s), want ENODEV",
		       node, why, errno, strerror(errno));
	T_ASSERT(pmv_errmsg()[0], "d: no pmv_errmsg() for node %d", node);
	printf("d: node %d (%s): ENODEV (%s)\n", node, why, pmv_errmsg());
}

static void test_bad_nodes(void)
{
	int memless = 0;

	expect_enodev(numa_max_node() + 1, "does not exist");
	expect_enodev(1000, "does not exist");
	/* numa_nodes_ptr: every node the kernel has; numa_all_nodes_ptr: with memory */
	for (int n = 0; n <= numa_max_node(); n++)
		if (numa_bitmask_isbitset(numa_nodes_ptr, n) &&
		    !numa_bitmask_isbitset(numa_all_nodes_ptr, n)) {
			expect_enodev(n, "online, no memory");
			memless++;
		}
	if (!memless)
		printf("d: no memoryless node on this machine, that case is not checked\n");
}

/* ---- exchange --------------------------------------------------------- */

#ifdef PMV_HAVE_EXCHANGE
/*
 * >>> EXCHANGE CHECK (built when include/pagemove.h declares
 * pmv_exchange_pages(); run-suite.sh then adds -DPMV_HAVE_EXCHANGE).
 *
 * Page i of region x is exchanged with page i of region y, one pair per
 * page, all in one call (more pairs than one batch of the library). Each
 * page then has the other's tier, its bytes stay at its address; check_all()
 * verifies every byte, every page's node with move_pages(2), the tiers pmv
 * reports, the THPs and the stats (no verify_errors, resident counts per
 * tier unchanged, 2 migrations counted per pair as migrate_in/out).
 */
static void exchange_regions(struct region *x, struct region *y)
{
	size_t n = x->npages < y->npages ? x->npages : y->npages, moved = 0;
	void **a = calloc(n, sizeof(*a)), **b = calloc(n, sizeof(*b));
	int *status = calloc(n, sizeof(*status));
	int ret;

	T_ASSERT(a && b && status, "out of memory");
	for (size_t i = 0; i < n; i++) {
		a[i] = x->base + i * x->psz;
		b[i] = y->base + i * y->psz;
		status[i] = -12345;
	}
	ret = pmv_exchange_pages(ctx, n, a, b, status, 0);
	for (size_t i = 0; i < n; i++)
		if (status[i] != 0)
			T_FAIL("exchange: region %u page %zu (tier %d) <-> region %u page %zu "
			       "(tier %d): status %d (%s); errmsg '%s'", x->id, i, x->tier[i],
			       y->id, i, y->tier[i], status[i], pmv_strerror(status[i]),
			       pmv_errmsg());
	T_ASSERT(ret == 0, "exchange: pmv_exchange_pages returned %d", ret);
	for (size_t i = 0; i < n; i++) {
		int t = x->tier[i];

		if (t != y->tier[i])
			moved += 2;
		x->tier[i] = y->tier[i];
		y->tier[i] = t;
	}
	expect_migrations += moved;
	free(a);
	free(b);
	free(status);
}

static void test_exchange(void)
{
	struct region *r4[2] = { NULL, NULL }, *r2[2] = { NULL, NULL };
	int n4 = 0, n2 = 0, st;
	void *p, *q;

	for (int k = 0; k < nregions; k++) {
		if (regions[k].huge && n2 < 2)
			r2[n2++] = &regions[k];
		else if (!regions[k].huge && n4 < 2)
			r4[n4++] = &regions[k];
	}
	T_ASSERT(n4 == 2 && (!thp || n2 == 2), "exchange: not enough regions");
	/* every pair of neighbouring tiers: (0,1), (1,2), ..., (N-1,0) */
	for (int r = 0; r < ntiers; r++) {
		int ta = r, tb = (r + 1) % ntiers;

		for (int k = 0; k < 2; k++) {
			move_region(r4[k], to_tier, k ? tb : ta, "exchange: setup");
			if (thp)
				move_region(r2[k], to_tier, k ? tb : ta, "exchange: setup");
		}
		check_all("exchange: setup: tiers %d and %d", ta, tb);
		exchange_regions(r4[0], r4[1]);
		if (thp)
			exchange_regions(r2[0], r2[1]);
		check_all("exchange: %s pages of tier %d (node %d) and tier %d (node %d) swapped",
			  thp ? "4 KB and 2 MB" : "4 KB", ta, node_of[ta], tb, node_of[tb]);
	}
	printf("exchange: pmv_exchange_pages between every pair of neighbouring tiers, "
	       "%zu pairs each (%.1fs)\n", r4[0]->npages + (thp ? r2[0]->npages : 0),
	       t_now() - t_start);

	/* A page paired with itself, and a 4 KB page with a 2 MB page: -EINVAL. */
	p = r4[0]->base;
	st = 0;
	T_EQ(pmv_exchange_pages(ctx, 1, &p, &p, &st, 0), 1);
	T_EQ(st, -EINVAL);
	if (thp) {
		q = r2[0]->base;
		st = 0;
		T_EQ(pmv_exchange_pages(ctx, 1, &p, &q, &st, 0), 1);
		T_EQ(st, -EINVAL);
	}
	check_all("exchange: after the invalid pairs");
}
#endif

/* ---- main ------------------------------------------------------------- */

/*
 * The kernel's automatic NUMA balancing migrates pages towards the CPU that
 * touches them, pagemove's managed pages included: with it on, a placement
 * check here can fail at random (see tests/numa/README.md).
 */
static const char *numa_balancing(void)
{
	static char buf[32];
	FILE *f = fopen("/proc/sys/kernel/numa_balancing", "r");

	snprintf(buf, sizeof(buf), "?");
	if (f) {
		if (fgets(buf, sizeof(buf), f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
	}
	return buf;
}

int main(void)
{
	struct pmv_tier_config tc[MAX_TIERS];
	struct pmv_config cfg = { .tiers = tc, .flags = PMV_CTX_VERIFY };
	static const char *names[MAX_TIERS] = { "t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7" };
	int maxn;

	setvbuf(stdout, NULL, _IOLBF, 0);
	t_start = t_now();
	if (sysconf(_SC_PAGESIZE) != (long)T_SZ_4K)
		t_skip("page size is %ld, not 4096", sysconf(_SC_PAGESIZE));
	if (numa_available() < 0)
		t_skip("no NUMA support (numa_available() < 0)");
	maxn = numa_max_node();
	for (int n = 0; n <= maxn && ntiers < MAX_TIERS; n++)
		if (numa_bitmask_isbitset(numa_all_nodes_ptr, n) &&
		    numa_node_size64(n, NULL) > 0)
			node_of[ntiers++] = n;
	if (ntiers < 2)
		t_skip("%d NUMA node(s) with memory, need 2", ntiers);

	for (int t = 0; t < ntiers; t++)
		tc[t] = (struct pmv_tier_config){ .name = names[t], .node = node_of[t] };
	cfg.ntiers = ntiers;
	/*
	 * Every check here reads real placement with move_pages(2): no page
	 * may move or be parked (unmapped, so no node) behind the test.
	 */
	cfg.policy = &(struct pmv_policy_config){ .mode = PMV_POLICY_OFF };
	ctx = pmv_create(&cfg);
	if (!ctx && (errno == EOPNOTSUPP || errno == EPERM || errno == ENOSYS))
		t_skip("pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	T_ASSERT(ctx, "pmv_create on %d nodes: %s (%s)", ntiers, strerror(errno),
		 pmv_errmsg());
	thp = t_thp_enabled();
	printf("t_numa_tiers: %d tiers on nodes", ntiers);
	for (int t = 0; t < ntiers; t++)
		printf(" %d", node_of[t]);
	printf("; THP %s; kernel.numa_balancing %s\n",
	       thp ? "on: 4 KB and 2 MB regions" : "[never]: 4 KB regions only",
	       numa_balancing());

	test_first_touch();
	test_move_pages();
	test_migrate();
#ifdef PMV_HAVE_EXCHANGE
	test_exchange();
#else
	printf("exchange: pmv_exchange_pages() is not in pagemove.h, not checked\n");
#endif

	for (int k = 0; k < nregions; k++) {
		int ret = pmv_munmap(ctx, regions[k].base, regions[k].len);

		T_ASSERT(ret == 0, "pmv_munmap of region %u: %d", regions[k].id, ret);
		free(regions[k].tier);
	}
	nregions = 0;
	check_stats("e: after unmapping every region");
	pmv_destroy(ctx);

	test_bad_nodes();
	printf("t_numa_tiers: PASS: %u steps, %llu pages moved, each step verified byte "
	       "for byte (%.1fs)\n", step, (unsigned long long)expect_migrations,
	       t_now() - t_start);
	return T_EXIT_PASS;
}
