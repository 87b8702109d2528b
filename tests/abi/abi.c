/* SPDX-License-Identifier: MIT */
/*
 * The ABI test (tests/abi/README.md). Built as t_abi_X.Y against release
 * X.Y's header and a stub of X.Y's library, so that its calls bind to the
 * symbol versions X.Y's programs bind to, and run against today's library;
 * built as t_abi_current against include/pagemove.h and today's library.
 * What it expects depends only on the header's version (MINOR).
 *
 * Every struct it hands to the library sits right before CANARY bytes and
 * an inaccessible page (tail()): the library must leave the canary intact,
 * and a read past it faults. The canary's bytes are not zero: read as a
 * pointer (0.2's pmv_config.policy, past a 0.1 struct) they fault too.
 * Each sub-test runs in a child of its own under a watchdog, so that one
 * crash names its sub-test and does not hide the others.
 *
 * Self-contained: harness.h includes today's header.
 */
#include PMV_ABI_HEADER

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MINOR		PMV_VERSION_MINOR	/* of the header built with */
#define CANARY		256
#define PAGE		4096
#define NPAGES		16
#define FAST_CAP	(64UL << 20)

/*
 * The released headers are what their releases had (a copy edited by
 * mistake would test nothing); the sizes since 0.3 are pinned, as in
 * src/abi.c.
 */
#if __SIZEOF_POINTER__ != 8 || __SIZEOF_LONG__ != 8
/* the sizes below are LP64's (x86-64) */
#elif MINOR >= 3		/* the layouts with resv to grow in: fixed since */
_Static_assert(sizeof(struct pmv_tier_config) == 64, "pmv_tier_config");
_Static_assert(sizeof(struct pmv_policy_config) == 64, "pmv_policy_config");
_Static_assert(sizeof(struct pmv_config) == 104, "pmv_config");
_Static_assert(sizeof(struct pmv_tier_stats) == 376, "pmv_tier_stats");
_Static_assert(sizeof(struct pmv_ctx_stats) == 296, "pmv_ctx_stats");
#endif
#if __SIZEOF_POINTER__ == 8 && __SIZEOF_LONG__ == 8 && MINOR >= 4
/* 0.4's fields took the first words of 0.3's resv (40 bytes at 24) */
_Static_assert(offsetof(struct pmv_tier_config, kind) == 24, "pmv_tier_config.kind");
_Static_assert(offsetof(struct pmv_tier_config, level) == 28, "pmv_tier_config.level");
_Static_assert(offsetof(struct pmv_tier_config, path) == 32, "pmv_tier_config.path");
_Static_assert(offsetof(struct pmv_tier_config, resv) == 40, "pmv_tier_config.resv");
#endif
#if __SIZEOF_POINTER__ == 8 && __SIZEOF_LONG__ == 8 && MINOR >= 5
/* 0.5's coverage took the first words of 0.4's pmv_ctx_stats.resv (at 184) */
_Static_assert(offsetof(struct pmv_ctx_stats, huge_bytes) == 184, "pmv_ctx_stats.huge_bytes");
_Static_assert(offsetof(struct pmv_ctx_stats, collapsed) == 208, "pmv_ctx_stats.collapsed");
_Static_assert(offsetof(struct pmv_ctx_stats, proactive) == 216, "pmv_ctx_stats.proactive");
_Static_assert(offsetof(struct pmv_ctx_stats, resv) == 224, "pmv_ctx_stats.resv");
/* proactive demotion's knob took the first word of pmv_policy_config.resv */
_Static_assert(offsetof(struct pmv_policy_config, proactive_idle_s) == 40,
	       "pmv_policy_config.proactive_idle_s");
_Static_assert(offsetof(struct pmv_policy_config, resv) == 44, "pmv_policy_config.resv");
/* and the pool's THP counters the first three of pmv_tier_stats' (at 328) */
_Static_assert(offsetof(struct pmv_tier_stats, thp_fail) == 328, "pmv_tier_stats.thp_fail");
_Static_assert(offsetof(struct pmv_tier_stats, resv) == 360, "pmv_tier_stats.resv");
#endif
#if __SIZEOF_POINTER__ != 8 || __SIZEOF_LONG__ != 8 || MINOR >= 3
#elif MINOR == 1
_Static_assert(sizeof(struct pmv_tier_config) == 24, "0.1 pmv_tier_config");
_Static_assert(sizeof(struct pmv_config) == 32, "0.1 pmv_config");
_Static_assert(sizeof(struct pmv_tier_stats) == 248, "0.1 pmv_tier_stats");
_Static_assert(sizeof(struct pmv_ctx_stats) == 136, "0.1 pmv_ctx_stats");
#elif MINOR == 2
_Static_assert(sizeof(struct pmv_tier_config) == 24, "0.2 pmv_tier_config");
_Static_assert(sizeof(struct pmv_policy_config) == 40, "0.2 pmv_policy_config");
_Static_assert(sizeof(struct pmv_config) == 40, "0.2 pmv_config");
_Static_assert(sizeof(struct pmv_tier_stats) == 312, "0.2 pmv_tier_stats");
_Static_assert(sizeof(struct pmv_ctx_stats) == 232, "0.2 pmv_ctx_stats");
#endif

static char why[512];

/* Record why a sub-test failed; returns 1 for `return fail(...)`. */
__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return 1;
}

#define CHECK(cond, ...) do { if (!(cond)) return fail(__VA_ARGS__); } while (0)

static unsigned char canary_byte(size_t i)
{
	return (unsigned char)(0xa5 ^ i);	/* never 0 */
}

/*
 * size bytes, zeroed, ending CANARY bytes before an inaccessible page; the
 * CANARY bytes hold canary_byte(). NULL if it cannot be mapped.
 */
static void *tail(size_t size)
{
	size_t len = (size + CANARY + PAGE - 1) / PAGE * PAGE + PAGE;
	unsigned char *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *guard, *p;

	if (m == MAP_FAILED)
		return NULL;
	guard = m + len - PAGE;
	if (mprotect(guard, PAGE, PROT_NONE))
		return NULL;
	p = guard - CANARY - size;
	memset(p, 0, size);
	for (size_t i = 0; i < CANARY; i++)
		p[size + i] = canary_byte(i);
	return p;
}

/* -1 if the canary after p[0..size) is intact, else the first byte changed. */
static long canary_hit(const void *p, size_t size)
{
	const unsigned char *c = (const unsigned char *)p + size;

	for (size_t i = 0; i < CANARY; i++)
		if (c[i] != canary_byte(i))
			return (long)i;
	return -1;
}

#define CANARY_OK(p, size, what) \
	CHECK(canary_hit(p, size) < 0, "%s: byte %ld past its %zu bytes was written", \
	      what, canary_hit(p, size), (size_t)(size))

static int all_bytes(const void *p, size_t size, unsigned char v)
{
	for (size_t i = 0; i < size; i++)
		if (((const unsigned char *)p)[i] != v)
			return 0;
	return 1;
}

static unsigned char data_byte(size_t page, size_t i)
{
	return (unsigned char)(page * 31 + i * 7 + 1);
}

/* -1 if every byte of pages [0, n) holds its data_byte(), else the first page off. */
static long data_bad(const unsigned char *buf, size_t n)
{
	for (size_t p = 0; p < n; p++)
		for (size_t i = 0; i < PAGE; i++)
			if (buf[p * PAGE + i] != data_byte(p, i))
				return (long)p;
	return -1;
}

static void skip_if_no_uffd(void)
{
	if (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS) {
		printf("SKIP: pmv_create: %s (%s)\n", strerror(errno), pmv_errmsg());
		fflush(stdout);
		_exit(77);
	}
}

/*
 * A two-tier context made through structs at tail(): "fast" (FAST_CAP)
 * and "slow" (unlimited). *cfgp and *tiersp get the structs for canary
 * checks. NULL on failure (why says), or the process exits 77.
 */
static pmv_ctx *make_ctx(struct pmv_config **cfgp, struct pmv_tier_config **tiersp)
{
	struct pmv_tier_config *tiers = tail(2 * sizeof(*tiers));
	struct pmv_config *cfg = tail(sizeof(*cfg));
	pmv_ctx *ctx;

	if (!tiers || !cfg)
		return fail("mmap: %s", strerror(errno)), NULL;
	tiers[0] = (struct pmv_tier_config){ .name = "fast", .node = PMV_NODE_ANY,
					     .capacity = FAST_CAP };
	tiers[1] = (struct pmv_tier_config){ .name = "slow", .node = PMV_NODE_ANY };
	cfg->ntiers = 2;
	cfg->tiers = tiers;
	cfg->copy_engine = PMV_COPY_MEMCPY;
	ctx = pmv_create(cfg);
	if (!ctx) {
		skip_if_no_uffd();
		return fail("pmv_create: %s (%s)", strerror(errno), pmv_errmsg()), NULL;
	}
	*cfgp = cfg;
	*tiersp = tiers;
	return ctx;
}

/* NPAGES pages on tier 0 holding data_byte(), the last NPAGES/2 moved to tier 1. */
static unsigned char *fill_and_move(pmv_ctx *ctx)
{
	unsigned char *buf = pmv_mmap(ctx, NPAGES * PAGE, 0, 0);
	void *pages[NPAGES / 2];
	int to[NPAGES / 2], status[NPAGES / 2];
	int left;

	if (!buf)
		return fail("pmv_mmap: %s (%s)", strerror(errno), pmv_errmsg()), NULL;
	for (size_t p = 0; p < NPAGES; p++)
		for (size_t i = 0; i < PAGE; i++)
			buf[p * PAGE + i] = data_byte(p, i);
	for (int i = 0; i < NPAGES / 2; i++)
		pages[i] = buf + (NPAGES / 2 + i) * PAGE, to[i] = 1;
	left = pmv_move_pages(ctx, NPAGES / 2, pages, to, status, 0);
	if (left)
		return fail("pmv_move_pages: %d not moved (status[0] %d)", left, status[0]), NULL;
	if (data_bad(buf, NPAGES) >= 0)
		return fail("page %ld lost its bytes in the move", data_bad(buf, NPAGES)), NULL;
	return buf;
}

/* ---- sub-tests --------------------------------------------------------- */

/*
 * pmv_create reads its config and tier array with this header's layout
 * and stride, and nothing past them (0.2 read `policy` past a 0.1 struct).
 */
static int test_create_reads_only_its_structs(void)
{
	struct pmv_config *cfg;
	struct pmv_tier_config *tiers;
	pmv_ctx *ctx;
#if MINOR >= 2
	struct pmv_policy_config *pol = tail(sizeof(*pol));
	struct pmv_ctx_stats cs;

	CHECK(pol, "mmap: %s", strerror(errno));
#endif

	unsetenv("PAGEMOVE_POLICY");	/* the policy mode must be the config's or the default */
	ctx = make_ctx(&cfg, &tiers);
	if (!ctx)
		return 1;
	/* the tier names and capacities came through the right stride */
	for (int t = 0; t < 2; t++) {
		struct pmv_tier_stats *st = tail(sizeof(*st));

		CHECK(st, "mmap: %s", strerror(errno));
		CHECK(pmv_tier_stats(ctx, t, st) == 0, "pmv_tier_stats(%d) failed", t);
		CHECK(!strcmp(st->name, t ? "slow" : "fast"), "tier %d is named '%.32s'", t, st->name);
		CHECK(st->node == PMV_NODE_ANY, "tier %d: node %d", t, st->node);
		CHECK(st->capacity == (t ? 0 : FAST_CAP), "tier %d: capacity %llu", t,
		      (unsigned long long)st->capacity);
		CANARY_OK(st, sizeof(*st), "pmv_tier_stats");
	}
	CHECK(pmv_tier_count(ctx) == 2, "pmv_tier_count %d", pmv_tier_count(ctx));
	pmv_destroy(ctx);
	CANARY_OK(cfg, sizeof(*cfg), "pmv_config");
	CANARY_OK(tiers, 2 * sizeof(*tiers), "pmv_tier_config[2]");

#if MINOR >= 2
	/* with a policy: today's library takes it; a 0.2 program's is ignored */
	pol->mode = PMV_POLICY_TRACK;
	cfg->policy = pol;
	ctx = pmv_create(cfg);
	CHECK(ctx, "pmv_create with a policy: %s (%s)", strerror(errno), pmv_errmsg());
	CHECK(pmv_ctx_stats(ctx, &cs) == 0, "pmv_ctx_stats failed");
#if MINOR >= 3
	CHECK(cs.policy_mode == PMV_POLICY_TRACK, "policy mode %d, the config said track",
	      cs.policy_mode);
#else
	CHECK(cs.policy_mode == PMV_POLICY_AUTO,
	      "policy mode %d: a 0.2 program's policy is documented as ignored (auto)",
	      cs.policy_mode);
#endif
	pmv_destroy(ctx);
	CANARY_OK(cfg, sizeof(*cfg), "pmv_config");
	CANARY_OK(pol, sizeof(*pol), "pmv_policy_config");
#endif
	return 0;
}

/* pmv_tier_stats fills this header's struct, and not a byte past it. */
static int test_tier_stats_stays_in_its_struct(void)
{
	struct pmv_config *cfg;
	struct pmv_tier_config *tiers;
	struct pmv_tier_stats *st[2];
	unsigned char *buf;
	pmv_ctx *ctx;

	setenv("PAGEMOVE_POLICY", "off", 1);	/* exact counts: nothing moves by itself */
	ctx = make_ctx(&cfg, &tiers);
	if (!ctx)
		return 1;
	buf = fill_and_move(ctx);
	if (!buf)
		return 1;
	for (int t = 0; t < 2; t++) {
		st[t] = tail(sizeof(*st[t]));
		CHECK(st[t], "mmap: %s", strerror(errno));
		memset(st[t], 0xff, sizeof(*st[t]));
		CHECK(pmv_tier_stats(ctx, t, st[t]) == 0, "pmv_tier_stats(%d) failed", t);
		CANARY_OK(st[t], sizeof(*st[t]), "pmv_tier_stats");
		CHECK(!strcmp(st[t]->name, t ? "slow" : "fast"), "tier %d: name '%.32s'", t,
		      st[t]->name);
		CHECK(st[t]->node == PMV_NODE_ANY, "tier %d: node %d", t, st[t]->node);
		CHECK(st[t]->resident_4k == NPAGES / 2 && st[t]->resident_2m == 0,
		      "tier %d: %llu + %llu resident, want %d 4 KB pages", t,
		      (unsigned long long)st[t]->resident_4k,
		      (unsigned long long)st[t]->resident_2m, NPAGES / 2);
		CHECK(st[t]->resident_bytes == NPAGES / 2 * PAGE, "tier %d: %llu bytes resident", t,
		      (unsigned long long)st[t]->resident_bytes);
		CHECK(st[t]->verify_errors == 0, "tier %d: verify errors", t);
#if MINOR >= 2
		CHECK(st[t]->wmark_min <= st[t]->wmark_low && st[t]->wmark_low <= st[t]->wmark_high,
		      "tier %d: watermarks %llu %llu %llu out of order", t,
		      (unsigned long long)st[t]->wmark_min, (unsigned long long)st[t]->wmark_low,
		      (unsigned long long)st[t]->wmark_high);
		CHECK(st[t]->parked == 0 && st[t]->promote_in == 0 && st[t]->demote_in == 0,
		      "tier %d: policy counters moved with the policy off", t);
#endif
#if MINOR >= 3
		CHECK(all_bytes(st[t]->resv, sizeof(st[t]->resv), 0), "tier %d: resv not zeroed", t);
#endif
	}
	CHECK(st[0]->capacity == FAST_CAP && st[1]->capacity == 0, "capacities %llu, %llu",
	      (unsigned long long)st[0]->capacity, (unsigned long long)st[1]->capacity);
	CHECK(st[0]->first_touch == NPAGES, "tier 0: %llu first touches, want %d",
	      (unsigned long long)st[0]->first_touch, NPAGES);
	CHECK(st[0]->migrate_out == NPAGES / 2 && st[1]->migrate_in == NPAGES / 2 &&
	      st[1]->migrate_bytes_in == NPAGES / 2 * PAGE,
	      "moves: %llu out of tier 0, %llu (%llu bytes) into tier 1",
	      (unsigned long long)st[0]->migrate_out, (unsigned long long)st[1]->migrate_in,
	      (unsigned long long)st[1]->migrate_bytes_in);
#if MINOR >= 2
	CHECK(st[0]->wmark_high > 0, "tier 0 has a capacity but no watermark");
#endif
	/* errors leave the struct alone */
	memset(st[0], 0x5a, sizeof(*st[0]));
	CHECK(pmv_tier_stats(ctx, 2, st[0]) == -EINVAL, "tier 2 of 2 not refused");
	CHECK(pmv_tier_stats(ctx, 0, NULL) == -EINVAL, "NULL stats not refused");
	CHECK(all_bytes(st[0], sizeof(*st[0]), 0x5a), "a refused call wrote the struct");
	CANARY_OK(st[0], sizeof(*st[0]), "pmv_tier_stats");
	CHECK(data_bad(buf, NPAGES) < 0, "page %ld lost its bytes", data_bad(buf, NPAGES));
	pmv_destroy(ctx);
	CANARY_OK(cfg, sizeof(*cfg), "pmv_config");
	CANARY_OK(tiers, 2 * sizeof(*tiers), "pmv_tier_config[2]");
	return 0;
}

/* pmv_ctx_stats fills this header's struct (0.2's: up to `promoted`), no more. */
static int test_ctx_stats_stays_in_its_struct(void)
{
	struct pmv_config *cfg;
	struct pmv_tier_config *tiers;
	struct pmv_ctx_stats *cs;
	unsigned char *buf;
	pmv_ctx *ctx;

	setenv("PAGEMOVE_POLICY", "off", 1);
	ctx = make_ctx(&cfg, &tiers);
	if (!ctx)
		return 1;
	buf = fill_and_move(ctx);
	if (!buf)
		return 1;
	cs = tail(sizeof(*cs));
	CHECK(cs, "mmap: %s", strerror(errno));
	memset(cs, 0xff, sizeof(*cs));
	CHECK(pmv_ctx_stats(ctx, cs) == 0, "pmv_ctx_stats failed");
	CANARY_OK(cs, sizeof(*cs), "pmv_ctx_stats");
	CHECK(cs->mode == PMV_MODE_FULL || cs->mode == PMV_MODE_USER_ONLY, "mode %u", cs->mode);
	CHECK(cs->ntiers == 2, "ntiers %u", cs->ntiers);
	CHECK(cs->regions == 1, "regions %llu", (unsigned long long)cs->regions);
	CHECK(cs->migrations == NPAGES / 2 && cs->migrate_bytes == NPAGES / 2 * PAGE,
	      "%llu migrations, %llu bytes; want %d, %d", (unsigned long long)cs->migrations,
	      (unsigned long long)cs->migrate_bytes, NPAGES / 2, NPAGES / 2 * PAGE);
	CHECK(cs->faults_first_touch <= NPAGES && cs->faults_sigbus == 0,
	      "%llu first-touch faults, %llu SIGBUS", (unsigned long long)cs->faults_first_touch,
	      (unsigned long long)cs->faults_sigbus);
#if MINOR >= 2
	CHECK(cs->policy_mode == PMV_POLICY_OFF, "policy mode %d, PAGEMOVE_POLICY=off",
	      cs->policy_mode);
	CHECK(cs->parked == 0 && cs->samples == 0 && cs->promoted == 0,
	      "policy counters moved with the policy off");
	CHECK(cs->track_cpu_fraction >= 0 && cs->track_cpu_fraction <= 1,
	      "track_cpu_fraction %f", cs->track_cpu_fraction);
#endif
#if MINOR >= 3
	CHECK(cs->demoted == 0 && cs->exchanged == 0 && cs->policy_bytes == 0,
	      "policy counters moved with the policy off");
	CHECK(all_bytes(cs->resv, sizeof(cs->resv), 0), "resv not zeroed");
#elif MINOR == 2
	/* the fields 0.1's size cannot reach are left as they were (pagemove.h) */
	CHECK(all_bytes(&cs->demoted, sizeof(*cs) - offsetof(struct pmv_ctx_stats, demoted), 0xff),
	      "a 0.2 struct was written past 0.1's size");
#endif
	memset(cs, 0x5a, sizeof(*cs));
	CHECK(pmv_ctx_stats(ctx, NULL) == -EINVAL, "NULL stats not refused");
	CHECK(pmv_ctx_stats(NULL, cs) == -EINVAL, "NULL context not refused");
	CHECK(all_bytes(cs, sizeof(*cs), 0x5a), "a refused call wrote the struct");
	CHECK(data_bad(buf, NPAGES) < 0, "page %ld lost its bytes", data_bad(buf, NPAGES));
	pmv_destroy(ctx);
	CANARY_OK(cfg, sizeof(*cfg), "pmv_config");
	return 0;
}

/* Every other call of this release works as its header says. */
static int test_other_calls_of_the_release(void)
{
	struct pmv_config *cfg;
	struct pmv_tier_config *tiers;
	unsigned char *buf;
	void *a[1], *b[1], *q[NPAGES];
	int st[NPAGES], ret;
	long moved;
	pmv_ctx *ctx;

	CHECK(pmv_version_major() == PMV_VERSION_MAJOR, "library major %d, header %d",
	      pmv_version_major(), PMV_VERSION_MAJOR);
	CHECK(pmv_version_minor() >= PMV_VERSION_MINOR, "library minor %d older than header %d",
	      pmv_version_minor(), PMV_VERSION_MINOR);
	CHECK(pmv_version() && pmv_version()[0] == '0' + PMV_VERSION_MAJOR, "pmv_version '%s'",
	      pmv_version());
	CHECK(pmv_strerror(-EBUSY) && *pmv_strerror(-EBUSY), "pmv_strerror(-EBUSY) empty");
	CHECK(pmv_errmsg() != NULL, "pmv_errmsg NULL");

	setenv("PAGEMOVE_POLICY", "off", 1);
	ctx = make_ctx(&cfg, &tiers);
	if (!ctx)
		return 1;
	buf = fill_and_move(ctx);
	if (!buf)
		return 1;
	CHECK(pmv_set_copy_engine(ctx, PMV_COPY_NT) == 0, "pmv_set_copy_engine(NT)");
	/* exchange page 0 (tier 0) with the last page (tier 1) */
	a[0] = buf, b[0] = buf + (NPAGES - 1) * PAGE;
	ret = pmv_exchange_pages(ctx, 1, a, b, st, 0);
	CHECK(ret == 0 && st[0] == 0, "pmv_exchange_pages: %d, status %d", ret, st[0]);
	for (int i = 0; i < NPAGES; i++)
		q[i] = buf + i * PAGE;
	CHECK(pmv_move_pages(ctx, NPAGES, q, NULL, st, 0) == 0, "pmv_move_pages query");
	CHECK(st[0] == 1 && st[NPAGES - 1] == 0 && st[1] == 0 && st[NPAGES - 2] == 1,
	      "after the exchange pages are on tiers %d..%d, %d..%d", st[0], st[1],
	      st[NPAGES - 2], st[NPAGES - 1]);
	CHECK(data_bad(buf, NPAGES) < 0, "page %ld lost its bytes", data_bad(buf, NPAGES));
	/* everything on tier 1 back to tier 0 */
	moved = pmv_migrate(ctx, 1UL << 1, 1UL << 0, 0);
	CHECK(moved == 0, "pmv_migrate: %ld not moved", moved);
	CHECK(pmv_move_pages(ctx, NPAGES, q, NULL, st, 0) == 0, "pmv_move_pages query");
	for (int i = 0; i < NPAGES; i++)
		CHECK(st[i] == 0, "page %d on tier %d after pmv_migrate to 0", i, st[i]);
	ret = pmv_mbind(ctx, buf, 2 * PAGE, 1, PMV_MOVE);
	CHECK(ret == 0, "pmv_mbind: %d", ret);
	CHECK(pmv_move_pages(ctx, 2, q, NULL, st, 0) == 0 && st[0] == 1 && st[1] == 1,
	      "after pmv_mbind to 1: tiers %d, %d", st[0], st[1]);
#if MINOR >= 2
	CHECK(pmv_tier_policy(ctx, PMV_POLICY_TRACK) == 0, "pmv_tier_policy(track)");
	moved = pmv_tier_balance(ctx, 0);
	CHECK(moved >= 0, "pmv_tier_balance: %ld", moved);
	CHECK(pmv_tier_policy(ctx, PMV_POLICY_OFF) == 0, "pmv_tier_policy(off)");
#endif
	CHECK(data_bad(buf, NPAGES) < 0, "page %ld lost its bytes", data_bad(buf, NPAGES));
	CHECK(pmv_munmap(ctx, buf, NPAGES * PAGE) == 0, "pmv_munmap");
	CHECK(pmv_munmap(ctx, buf, NPAGES * PAGE) == -EINVAL, "second pmv_munmap not refused");
	pmv_destroy(ctx);
	CANARY_OK(cfg, sizeof(*cfg), "pmv_config");
	CANARY_OK(tiers, 2 * sizeof(*tiers), "pmv_tier_config[2]");
	return 0;
}

#if MINOR >= 3
#define TIER_RESV_LAST	((int)(sizeof(((struct pmv_tier_config *)0)->resv) / 8 - 1))
#define POL_RESV_LAST	((int)(sizeof(((struct pmv_policy_config *)0)->resv) / sizeof(unsigned) - 1))

/* A non-zero resv word is refused, so a later release's field is never ignored. */
static int test_create_refuses_nonzero_resv(void)
{
	struct pmv_config *cfg;
	struct pmv_tier_config *tiers;
	struct pmv_policy_config *pol = tail(sizeof(*pol));
	pmv_ctx *ctx;

	CHECK(pol, "mmap: %s", strerror(errno));
	ctx = make_ctx(&cfg, &tiers);
	if (!ctx)
		return 1;
	pmv_destroy(ctx);
	cfg->resv[7] = 1;
	errno = 0;
	CHECK(!pmv_create(cfg) && errno == EINVAL, "pmv_config.resv[7] = 1 accepted");
	CHECK(strstr(pmv_errmsg(), "resv"), "message '%s' does not name resv", pmv_errmsg());
	cfg->resv[7] = 0;
	/*
	 * The last word: a later release's field takes the first ones (0.4's
	 * kind is 0.3's resv[0]), so only the last stays resv in all of them.
	 */
	tiers[1].resv[TIER_RESV_LAST] = 1;
	errno = 0;
	CHECK(!pmv_create(cfg) && errno == EINVAL, "tiers[1].resv[%d] = 1 accepted",
	      TIER_RESV_LAST);
	tiers[1].resv[TIER_RESV_LAST] = 0;
	pol->resv[POL_RESV_LAST] = 1;
	cfg->policy = pol;
	errno = 0;
	CHECK(!pmv_create(cfg) && errno == EINVAL, "pmv_policy_config.resv[%d] = 1 accepted",
	      POL_RESV_LAST);
	pol->resv[POL_RESV_LAST] = 0;
	ctx = pmv_create(cfg);
	CHECK(ctx, "all resv zero again, but: %s (%s)", strerror(errno), pmv_errmsg());
	pmv_destroy(ctx);
	CANARY_OK(cfg, sizeof(*cfg), "pmv_config");
	CANARY_OK(tiers, 2 * sizeof(*tiers), "pmv_tier_config[2]");
	CANARY_OK(pol, sizeof(*pol), "pmv_policy_config");
	return 0;
}
#endif

#if MINOR >= 4
/*
 * pmv_create reads 0.4's tier fields: a far tier before a memory tier, an
 * unknown kind and a far tier with a node are refused.
 */
static int test_create_checks_tier_kinds(void)
{
	struct pmv_config *cfg;
	struct pmv_tier_config *tiers;
	pmv_ctx *ctx;

	ctx = make_ctx(&cfg, &tiers);
	if (!ctx)
		return 1;
	pmv_destroy(ctx);
	tiers[0].kind = PMV_TIER_LZ4;
	errno = 0;
	CHECK(!pmv_create(cfg) && errno == EINVAL, "lz4 before a memory tier accepted");
	CHECK(strstr(pmv_errmsg(), "tier 1") && strstr(pmv_errmsg(), "far"),
	      "message '%s' does not name tier 1 and the order", pmv_errmsg());
	tiers[0].kind = PMV_TIER_MEM;
	tiers[1].kind = PMV_TIER_KIND_NR + 3;
	errno = 0;
	CHECK(!pmv_create(cfg) && errno == EINVAL, "kind %d accepted", tiers[1].kind);
	tiers[1].kind = PMV_TIER_FILE;
	tiers[1].path = "/tmp";
	tiers[1].node = 0;
	errno = 0;
	CHECK(!pmv_create(cfg) && errno == EINVAL, "a file tier with a node accepted");
	tiers[1].kind = PMV_TIER_MEM;
	tiers[1].path = NULL;
	tiers[1].node = PMV_NODE_ANY;
	ctx = pmv_create(cfg);
	CHECK(ctx, "two memory tiers again, but: %s (%s)", strerror(errno), pmv_errmsg());
	pmv_destroy(ctx);
	CANARY_OK(cfg, sizeof(*cfg), "pmv_config");
	CANARY_OK(tiers, 2 * sizeof(*tiers), "pmv_tier_config[2]");
	return 0;
}

/* pmv_tiers_parse writes n tiers and at most strlen(text) + 1 bytes of buf. */
static int test_tiers_parse_stays_in_its_buffers(void)
{
	static const char text[] = "mem@0:512M, zstd@5:1G,file@/var/tmp";
	struct pmv_tier_config *tiers = tail(3 * sizeof(*tiers));
	char *buf = tail(sizeof(text));
	int n;

	CHECK(tiers && buf, "mmap: %s", strerror(errno));
	n = pmv_tiers_parse(text, tiers, 3, buf, sizeof(text));
	CHECK(n == 3, "pmv_tiers_parse: %d (%s)", n, pmv_errmsg());
	CANARY_OK(tiers, 3 * sizeof(*tiers), "pmv_tier_config[3]");
	CANARY_OK(buf, sizeof(text), "buf");
	CHECK(tiers[0].kind == PMV_TIER_MEM && tiers[0].node == 0 &&
	      tiers[0].capacity == 512UL << 20, "tier 0: kind %d node %d capacity %zu",
	      tiers[0].kind, tiers[0].node, tiers[0].capacity);
	CHECK(tiers[1].kind == PMV_TIER_ZSTD && tiers[1].level == 5 &&
	      tiers[1].capacity == 1UL << 30 && tiers[1].node == PMV_NODE_ANY,
	      "tier 1: kind %d level %d capacity %zu", tiers[1].kind, tiers[1].level,
	      tiers[1].capacity);
	CHECK(tiers[2].kind == PMV_TIER_FILE && tiers[2].path &&
	      !strcmp(tiers[2].path, "/var/tmp") && tiers[2].capacity == 0,
	      "tier 2: kind %d path %s", tiers[2].kind, tiers[2].path ? tiers[2].path : "NULL");
	for (int i = 0; i < 3; i++)
		CHECK(all_bytes(tiers[i].resv, sizeof(tiers[i].resv), 0), "tier %d: resv set", i);
	CHECK(pmv_tiers_parse("mem,mem,mem,mem", tiers, 3, buf, sizeof(text)) == -E2BIG,
	      "4 tiers into 3 not refused");
	CANARY_OK(tiers, 3 * sizeof(*tiers), "pmv_tier_config[3]");
	return 0;
}
#endif

#if MINOR >= 5
/* pmv_collapse (PAGEMOVE_0.5): its errors; a 4 KB region has nothing to coalesce. */
static int test_collapse_of_the_release(void)
{
	struct pmv_tier_config tier = { .name = "only", .node = PMV_NODE_ANY };
	struct pmv_config cfg = { .ntiers = 1, .tiers = &tier };
	pmv_ctx *ctx;
	char *p;
	int ret;

	CHECK(pmv_collapse(NULL, NULL, 1, 0) == -EINVAL, "NULL context not refused");
	setenv("PAGEMOVE_POLICY", "off", 1);
	ctx = pmv_create(&cfg);
	CHECK(ctx, "pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	p = pmv_mmap(ctx, NPAGES * PAGE, 0, 0);
	CHECK(p, "pmv_mmap: %s", strerror(errno));
	memset(p, 1, NPAGES * PAGE);
	ret = pmv_collapse(ctx, p, NPAGES * PAGE, 0);
	CHECK(ret == 0 || ret == -EOPNOTSUPP, "pmv_collapse of a 4 KB region: %d", ret);
	CHECK(pmv_collapse(ctx, p, NPAGES * PAGE, 1) == -EINVAL, "flags not refused");
	pmv_destroy(ctx);
	return 0;
}
#endif

/* ---- runner ------------------------------------------------------------ */

static const struct {
	const char *name;
	int (*fn)(void);
} tests[] = {
	{ "create_reads_only_its_structs", test_create_reads_only_its_structs },
	{ "tier_stats_stays_in_its_struct", test_tier_stats_stays_in_its_struct },
	{ "ctx_stats_stays_in_its_struct", test_ctx_stats_stays_in_its_struct },
	{ "other_calls_of_the_release", test_other_calls_of_the_release },
#if MINOR >= 3
	{ "create_refuses_nonzero_resv", test_create_refuses_nonzero_resv },
#endif
#if MINOR >= 4
	{ "create_checks_tier_kinds", test_create_checks_tier_kinds },
	{ "tiers_parse_stays_in_its_buffers", test_tiers_parse_stays_in_its_buffers },
#endif
#if MINOR >= 5
	{ "collapse_of_the_release", test_collapse_of_the_release },
#endif
};

int main(void)
{
	int failed = 0, skipped = 0, n = sizeof(tests) / sizeof(tests[0]);
	const char *hdr = PMV_ABI_HEADER;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = 0; i < n; i++) {
		int fds[2], status;
		char msg[sizeof(why)] = "";
		pid_t pid;

		if (pipe(fds) || (pid = fork()) < 0) {
			perror("pipe/fork");
			return 1;
		}
		if (pid == 0) {
			int r;

			close(fds[0]);
			alarm(60);	/* watchdog: SIGALRM reads as a failure */
			r = tests[i].fn();
			if (r && write(fds[1], why, strlen(why)) < 0)
				r = 1;
			_exit(r ? 1 : 0);
		}
		close(fds[1]);
		if (read(fds[0], msg, sizeof(msg) - 1) < 0)
			msg[0] = 0;
		close(fds[0]);
		waitpid(pid, &status, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			printf("ok   - %s\n", tests[i].name);
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
			skipped++;
		} else if (WIFSIGNALED(status)) {
			printf("FAIL - %s: killed by signal %d (%s)%s\n", tests[i].name,
			       WTERMSIG(status), strsignal(WTERMSIG(status)),
			       WTERMSIG(status) == SIGSEGV ? ": read or wrote past a struct?" : "");
			failed++;
		} else {
			printf("FAIL - %s: %s\n", tests[i].name, msg);
			failed++;
		}
	}
	if (failed) {
		printf("%s: %d of %d sub-tests failed\n", hdr, failed, n);
		return 1;
	}
	if (skipped == n)
		return 77;
	printf("%s: %d sub-tests passed against library %s\n", hdr, n - skipped, pmv_version());
	return 0;
}
