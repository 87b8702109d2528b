/* SPDX-License-Identifier: MIT */
/*
 * The tiering policy (pmv_policy_config, pmv_tier_policy, pmv_tier_balance),
 * end to end. Every data check is byte for byte.
 *  1. Convergence: the fast tier is first filled with cold pages (first
 *     touch in address order), then two threads hammer a hot set at the end
 *     of the region, which therefore starts on the slow tier. The policy,
 *     off during the fill and AUTO from then on, must bring 90% of it to
 *     tier 0 in time, making room by demotion or exchange. 4 KB pages (a
 *     small region, so sampling covers it quickly), then 2 MB pages.
 *  2. Meanwhile a monitor polls tier 0 every 2 ms: it never holds more than
 *     its capacity, resident or resident plus pool.
 *  3. Bandwidth budget: a workload that wants far more than migrate_mbps
 *     allows; at every poll policy_bytes stays within the budget since
 *     pmv_create() plus one second's burst and one page.
 *  4. Integrity: tracking, policy moves and exchanges, and a thread making
 *     explicit moves and exchanges, under two writers that each own a
 *     counter word in every page; afterwards every byte is known.
 *  5. Parked pages meet pmv_munmap() (nothing stays charged or parked),
 *     fork() (the child reads every byte, no page is a hole; once it has
 *     exited, the pages it shared are sampled again) and pmv_destroy() (no
 *     crash; the ASan run of the suite catches leaks).
 *  6. Modes: TRACK samples but never moves a page; pmv_tier_balance() then
 *     does; OFF maps every parked page back and stops sampling; bad modes
 *     and configurations are -EINVAL / EINVAL; the environment overrides.
 *  7. Three tiers: hot pages on tier 2 reach tier 0 one tier at a time.
 * Each part is a sub-test in a watchdog child (harness.h). Fixed seeds. No
 * wait has a time limit of its own: a wait beats the watchdog's heartbeat
 * only while what it waits for makes progress, so a policy that stops
 * converging is a stall, and one that never gets there a timeout, whatever
 * the machine's load. PMV_TEST_ONLY=name runs one sub-test.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "harness.h"

#define SEED		0x71e5
#define NWRITERS	2
#define MB		(1UL << 20)
/*
 * migrate_mbps counts 10^6 bytes a second (policy.c's token bucket): the
 * tighter reading of "MB", so the budget check holds either way.
 */
#define MBPS_UNIT	1e6

struct region {
	char *base;
	size_t psz, npages, len;
	unsigned seed;
};

static int thp;
static int guest;		/* the emulated NUMA guest: smaller, and slower */
static atomic_int stop_work;
static int deferred;		/* failures that do not stop the sub-test */

/*
 * A failed check of what the policy did (not of data or accounting) that
 * leaves nothing in a bad state: report it, run the rest of the sub-test,
 * and fail it at the end, so one policy shortfall does not hide the others.
 */
#define T_LATER(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			T_REPORT(#cond, __VA_ARGS__);			\
			deferred++;					\
		}							\
	} while (0)

/*
 * Sizes shrink in the guest, whose memory and time budget are small; 4 KB
 * regions most, since there sampling (a share of a core) covers some 20
 * times fewer pages a second.
 */
static size_t sz(size_t bytes, int huge)
{
	return guest ? bytes / (huge ? 4 : 16) : bytes;
}

/*
 * Each part sets its own knobs: a policy variable in the environment would
 * override them (it is meant to), so the ones the parts depend on go.
 */
static const char *const policy_env[] = {
	"PAGEMOVE_POLICY", "PAGEMOVE_POLICY_INTERVAL_MS", "PAGEMOVE_MIGRATE_MBPS",
	"PAGEMOVE_TRACK_CPU_PERMILLE", "PAGEMOVE_MIN_RESIDENCY_MS",
	"PAGEMOVE_EXCHANGE_MARGIN_PCT", "PAGEMOVE_PROMOTE_MIN_HEAT",
	"PAGEMOVE_WMARK_MIN_PERMILLE", "PAGEMOVE_WMARK_LOW_PERMILLE",
	"PAGEMOVE_WMARK_HIGH_PERMILLE",
};

static struct pmv_policy_config pol_base(int mode, unsigned interval_ms)
{
	struct pmv_policy_config p = {
		.mode = mode,
		.interval_ms = interval_ms,
		.migrate_mbps = 1024,		/* generous, unless a part is about it */
		.track_cpu_permille = 20,	/* the most allowed: sample fast */
		.min_residency_ms = 50,
		/* heat is measured by sampling, which sees few accesses a second */
		.promote_min_heat = 1,
	};

	return p;
}

/* As t_ctx(), with our own policy: n tiers, bound in the guest. */
static pmv_ctx *mk_ctx(unsigned n, const size_t *caps, const struct pmv_policy_config *pol)
{
	struct pmv_tier_config tc[PMV_MAX_TIERS];
	struct pmv_config cfg = { .ntiers = n, .tiers = tc, .policy = pol };
	int nodes = t_test_nodes();
	pmv_ctx *ctx;

	for (unsigned i = 0; i < n; i++) {
		tc[i] = (struct pmv_tier_config){
			.node = nodes > 0 ? (int)(i % nodes) : PMV_NODE_ANY,
			.capacity = caps ? caps[i] : 0,
		};
	}
	if (nodes > 0)
		cfg.flags |= PMV_CTX_VERIFY;
	ctx = pmv_create(&cfg);
	if (!ctx && (errno == EOPNOTSUPP || errno == EPERM || errno == ENOSYS))
		t_skip("pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	T_ASSERT(ctx, "pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	return ctx;
}

static struct pmv_ctx_stats ctx_stats(pmv_ctx *ctx)
{
	struct pmv_ctx_stats cs;

	T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	return cs;
}

static struct pmv_tier_stats tier_stats(pmv_ctx *ctx, int tier)
{
	struct pmv_tier_stats st;

	T_EQ(pmv_tier_stats(ctx, tier, &st), 0);
	return st;
}

static char *pg(const struct region *r, size_t i)
{
	return r->base + i * r->psz;
}

static void map_region(pmv_ctx *ctx, struct region *r, size_t len, int tier, int huge,
		       unsigned seed)
{
	r->psz = huge ? T_SZ_2M : T_SZ_4K;
	r->len = len;
	r->npages = len / r->psz;
	r->seed = seed;
	r->base = pmv_mmap(ctx, len, tier, huge ? PMV_HUGE : 0);
	T_ASSERT(r->base, "pmv_mmap %zu MB%s: %s (%s)", len >> 20, huge ? " huge" : "",
		 strerror(errno), pmv_errmsg());
}

/*
 * First touch in address order, so earlier pages fill the faster tiers;
 * the first nwriters words of each cache line 0..nwriters-1 are writer
 * counters, starting at 0.
 */
static void fill_region(const struct region *r, unsigned nwriters)
{
	for (size_t i = 0; i < r->npages; i++) {
		t_fill(pg(r, i), r->psz, i, r->seed);
		for (unsigned w = 0; w < nwriters; w++)
			memset(pg(r, i) + w * 64, 0, 8);
	}
}

/* Every byte of every page; expect[w][i] is writer w's count in page i. */
static long check_region(const struct region *r, unsigned nwriters, uint64_t *const *expect)
{
	long bad = 0;

	for (size_t i = 0; i < r->npages; i++) {
		uint64_t e[NWRITERS] = { 0 };

		for (unsigned w = 0; w < nwriters; w++)
			e[w] = expect[w][i];
		if (t_check_page(pg(r, i), r->psz, i, r->seed, nwriters, e) && bad++ < 4)
			fprintf(stderr, "%s page %zu of %zu is wrong\n",
				r->psz == T_SZ_2M ? "2M" : "4K", i, r->npages);
	}
	return bad;
}

/*
 * The number of pages [first, first + n) on `tier`, and each page's tier
 * in where[] if given. Every page must be found: a parked page is a
 * present page, only unmapped for a moment.
 */
static size_t count_on(pmv_ctx *ctx, const struct region *r, size_t first, size_t n,
		       int tier, int *where)
{
	void *pages[512];
	int status[512];
	size_t on = 0;

	for (size_t i = 0; i < n; i += 512) {
		int k = n - i < 512 ? (int)(n - i) : 512, ret;

		for (int j = 0; j < k; j++)
			pages[j] = pg(r, first + i + j);
		ret = pmv_move_pages(ctx, k, pages, NULL, status, 0);
		for (int j = 0; j < k && ret; j++)
			T_ASSERT(status[j] >= 0, "query of page %zu: %d (%s)", first + i + j,
				 status[j], pmv_strerror(status[j]));
		T_EQ(ret, 0);
		for (int j = 0; j < k; j++) {
			if (where)
				where[i + j] = status[j];
			on += status[j] == tier;
		}
	}
	return on;
}

/*
 * Poll until `want` of pages [first, first + n) are on tier 0. Progress is
 * a page more on tier 0 or a sampled access more (the policy learning
 * what is hot): only that beats, so a policy that stops getting closer
 * stalls the sub-test. Returns how many are; *took is the time from t0.
 */
static size_t wait_on0(pmv_ctx *ctx, const struct region *r, size_t first, size_t n,
		       size_t want, double t0, double *took)
{
	size_t on0 = 0, best = 0;
	uint64_t faults = 0;

	for (;;) {
		uint64_t f = ctx_stats(ctx).sample_faults;

		on0 = count_on(ctx, r, first, n, 0, NULL);
		if (on0 >= want)
			break;
		if (on0 > best || f > faults) {
			best = on0 > best ? on0 : best;
			faults = f;
			t_step("wait for %zu of %zu pages on tier 0: %zu there, %llu sample faults",
			       want, n, on0, (unsigned long long)f);
		}
		usleep(50000);
	}
	*took = t_now() - t0;
	return on0;
}

/* ---- hammers: readers of a hot set ------------------------------------ */

struct hammer {
	const struct region *r;
	size_t first, n;
	pthread_t tid;
};

static atomic_int stop_hammer;

/* Reads only, so the region keeps its fill pattern and can be checked. */
static void *hammer(void *arg)
{
	const struct hammer *h = arg;
	uint64_t sum = 0;

	while (!atomic_load(&stop_hammer))
		for (size_t i = 0; i < h->n; i++)
			for (size_t off = 512; off < h->r->psz; off += T_SZ_4K)
				sum += *(volatile uint64_t *)(pg(h->r, h->first + i) + off);
	return (void *)(uintptr_t)sum;
}

static void hammers_start(struct hammer *h, int n, const struct region *r, size_t first,
			  size_t count)
{
	atomic_store(&stop_hammer, 0);
	for (int i = 0; i < n; i++) {
		h[i] = (struct hammer){ .r = r, .first = first, .n = count };
		T_EQ(pthread_create(&h[i].tid, NULL, hammer, &h[i]), 0);
	}
}

static void hammers_stop(struct hammer *h, int n)
{
	atomic_store(&stop_hammer, 1);
	for (int i = 0; i < n; i++)
		pthread_join(h[i].tid, NULL);
}

/* ---- 1 and 2: convergence, capacity ------------------------------------ */

struct cap_monitor {
	pmv_ctx *ctx;
	int tier;
	pthread_t tid;
	atomic_int stop;
	uint64_t max_resident, max_used;
	_Atomic uint64_t polls;
	atomic_int err;
};

static void *cap_monitor(void *arg)
{
	struct cap_monitor *m = arg;

	while (!atomic_load(&m->stop)) {
		struct pmv_tier_stats st;

		m->err = pmv_tier_stats(m->ctx, m->tier, &st);
		if (m->err)
			break;
		if (st.resident_bytes > m->max_resident)
			m->max_resident = st.resident_bytes;
		/* both read under tier->lock: one consistent snapshot */
		if (st.resident_bytes + st.pool_bytes > m->max_used)
			m->max_used = st.resident_bytes + st.pool_bytes;
		m->polls++;
		usleep(2000);
	}
	return NULL;
}

static void check_converge(int huge)
{
	size_t len = sz(huge ? 128 * MB : 16 * MB, huge), cap = len / 4;
	size_t caps[2] = { cap, 0 };
	/*
	 * Off while the region is filled, then AUTO: a slow fill (ASan, the
	 * emulated guest) would otherwise see cold pages demoted under it
	 * and the hot set first-touched into the room they left.
	 */
	struct pmv_policy_config pol = pol_base(PMV_POLICY_OFF, 50);
	struct cap_monitor mon = { .tier = 0 };
	struct hammer hm[2];
	struct pmv_ctx_stats cs;
	struct pmv_tier_stats s0, s1;
	struct region r;
	size_t hot, first, on0, start0, want;
	double t0, took;
	pmv_ctx *ctx;

	ctx = mk_ctx(2, caps, &pol);
	map_region(ctx, &r, len, PMV_TIER_DEFAULT, huge, SEED + huge);
	/* a hot set of an eighth of the region, well under the fast capacity */
	hot = r.npages / 8;
	first = r.npages - hot;
	want = (hot * 9 + 9) / 10;

	mon.ctx = ctx;
	T_EQ(pthread_create(&mon.tid, NULL, cap_monitor, &mon), 0);
	fill_region(&r, 0);
	start0 = count_on(ctx, &r, first, hot, 0, NULL);
	/* the test proves nothing if the hot set starts where it should end */
	T_ASSERT(start0 < hot / 2, "%zu of %zu hot pages on tier 0 before any access",
		 start0, hot);

	t0 = t_now();
	T_EQ(pmv_tier_policy(ctx, PMV_POLICY_AUTO), 0);
	hammers_start(hm, 2, &r, first, hot);
	on0 = wait_on0(ctx, &r, first, hot, want, t0, &took);
	/* a monitor that polled a few times only proves little: let it go on */
	while (atomic_load(&mon.polls) <= 10 && !atomic_load(&mon.err))
		usleep(2000);
	hammers_stop(hm, 2);
	atomic_store(&mon.stop, 1);
	pthread_join(mon.tid, NULL);
	/*
	 * Off waits for the round in flight: a batch it moved is on tier 0
	 * before the round adds it to the counters read below.
	 */
	T_EQ(ctx_stats(ctx).policy_mode, PMV_POLICY_AUTO);
	T_EQ(pmv_tier_policy(ctx, PMV_POLICY_OFF), 0);

	cs = ctx_stats(ctx);
	s0 = tier_stats(ctx, 0);
	s1 = tier_stats(ctx, 1);
	printf("1. %s: %zu/%zu hot pages on tier 0 after %.1fs (from %zu): "
	       "%llu promoted, %llu demoted, %llu exchanged, %llu MB, %llu rounds, "
	       "%llu samples, %llu sample faults, tracking %.2f%% of a core\n",
	       huge ? "2M" : "4K", on0, hot, took, start0, (unsigned long long)cs.promoted,
	       (unsigned long long)cs.demoted, (unsigned long long)cs.exchanged,
	       (unsigned long long)(cs.policy_bytes >> 20),
	       (unsigned long long)cs.policy_rounds, (unsigned long long)cs.samples,
	       (unsigned long long)cs.sample_faults, cs.track_cpu_fraction * 100);
	T_ASSERT(cs.samples > 0 && cs.sample_faults > 0, "%llu samples, %llu faults",
		 (unsigned long long)cs.samples, (unsigned long long)cs.sample_faults);
	T_ASSERT(cs.policy_rounds > 0, "no policy round");
	/* hot pages came up; tier 0 was full of cold ones, so some went down */
	T_ASSERT(cs.promoted + cs.exchanged > 0, "nothing promoted or exchanged");
	T_ASSERT(cs.demoted + cs.exchanged > 0, "nothing demoted or exchanged");
	T_ASSERT(cs.policy_bytes > 0, "policy_bytes 0");
	/* two tiers: every page the policy brought up is on 0, every one down on 1 */
	T_EQ(s0.promote_in, cs.promoted + cs.exchanged);
	T_EQ(s1.demote_in, cs.demoted + cs.exchanged);
	T_EQ(s0.demote_in + s1.promote_in, 0);

	/* 2: capacity, all along */
	printf("2. %s: tier 0 at most %llu resident, %llu with its pool, of %zu (%llu polls)\n",
	       huge ? "2M" : "4K", (unsigned long long)mon.max_resident,
	       (unsigned long long)mon.max_used, cap, (unsigned long long)mon.polls);
	T_EQ(mon.err, 0);
	T_ASSERT(mon.polls > 10, "only %llu polls", (unsigned long long)mon.polls);
	T_ASSERT(mon.max_resident <= cap, "tier 0 held %llu resident bytes, capacity %zu",
		 (unsigned long long)mon.max_resident, cap);
	T_ASSERT(mon.max_used <= cap, "tier 0 held %llu bytes with its pool, capacity %zu",
		 (unsigned long long)mon.max_used, cap);
	T_ASSERT(s0.wmark_min > 0 && s0.wmark_min <= s0.wmark_low &&
		 s0.wmark_low <= s0.wmark_high && s0.wmark_high < cap,
		 "tier 0 watermarks %llu %llu %llu", (unsigned long long)s0.wmark_min,
		 (unsigned long long)s0.wmark_low, (unsigned long long)s0.wmark_high);

	T_EQ(check_region(&r, 0, NULL), 0);
	pmv_destroy(ctx);
}

/* ---- 3: bandwidth budget ------------------------------------------------ */

static void check_budget(void)
{
	const unsigned mbps = 8;
	int huge = thp;
	size_t len = sz(huge ? 64 * MB : 16 * MB, huge);
	struct pmv_policy_config pol = pol_base(PMV_POLICY_AUTO, 50);
	double secs = t_duration(4), t0, el = 0, worst = 0;
	uint64_t bytes = 0;
	struct hammer hm[2];
	struct region r;
	pmv_ctx *ctx;
	int polls = 0;

	pol.migrate_mbps = mbps;
	pol.min_residency_ms = 1;
	/* the budget starts with the context: measure from before it */
	t0 = t_now();
	ctx = mk_ctx(2, NULL, &pol);
	/* all on the slow tier, all hot, the fast tier unbounded: wants it all */
	map_region(ctx, &r, len, 1, huge, SEED + 3);
	fill_region(&r, 0);
	hammers_start(hm, 2, &r, 0, r.npages);
	do {
		usleep(100000);
		bytes = ctx_stats(ctx).policy_bytes;
		/* taken after the read: the allowance can only be larger */
		el = t_now() - t0;
		double allow = (double)mbps * MBPS_UNIT * (el + 1) + r.psz;

		if (bytes / allow > worst)
			worst = bytes / allow;
		T_ASSERT(bytes <= allow,
			 "policy moved %llu bytes in %.2fs: over %u MB/s plus 1s and a page (%.0f)",
			 (unsigned long long)bytes, el, mbps, allow);
		polls++;
		t_step("poll %d: %llu bytes moved", polls, (unsigned long long)bytes);
		/* a fixed window, and then until the policy has moved something */
	} while (el < secs || !bytes);
	hammers_stop(hm, 2);
	printf("3. %s: %llu MB of %zu MB moved in %.1fs at %u MB/s (%d polls, "
	       "at most %.0f%% of the allowance)\n", huge ? "2M" : "4K",
	       (unsigned long long)(bytes >> 20), len >> 20, el, mbps, polls, worst * 100);
	T_ASSERT(count_on(ctx, &r, 0, r.npages, 0, NULL) > 0, "no page on tier 0");
	T_EQ(check_region(&r, 0, NULL), 0);
	pmv_destroy(ctx);
}

/* ---- 4: integrity ------------------------------------------------------- */

static pmv_ctx *ictx;
static struct region ir;
static size_t ihot;
static uint64_t *expect[NWRITERS];
static atomic_long imoves, ixchgs, ibad;

static void *iwriter(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;
	double sweep = t_now();

	while (!atomic_load(&stop_work)) {
		/*
		 * The hot pages all the time, every page each 100 ms: the
		 * policy has hot and cold pages to tell apart, and parked
		 * cold pages get written too. (Writing every page all the
		 * time would make every page hot, and every sample cost a
		 * fault, which the tracking budget would pay for by sampling
		 * too slowly to ever promote.)
		 */
		size_t from = ir.npages - ihot;

		if (t_now() - sweep >= 0.1) {
			sweep = t_now();
			from = 0;
		}
		for (size_t i = from; i < ir.npages; i++) {
			volatile uint64_t *c = (uint64_t *)(pg(&ir, i) + w * 64);

			*c = *c + 1;
			expect[w][i]++;
		}
	}
	return NULL;
}

/* Explicit moves and exchanges, racing the policy's. */
static void *imover(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	void *a[64], *b[64];
	int tiers[64], status[64];
	double t0 = t_now();

	for (long round = 1; !atomic_load(&stop_work); round++) {
		int n, to, up, ret;

		/*
		 * A pause: the policy's moves must get their turn too, and
		 * tracking, which has 2% of a core, must not spend it all
		 * waiting behind our moves (it needs two sampled accesses
		 * to a page before it promotes it).
		 */
		usleep(2000);
		if (round % 4 == 0) {
			size_t pairs = ir.npages / 2;

			n = 1 + rand_r(&seed) % (pairs < 16 ? pairs : 16);
			for (int i = 0; i < n; i++) {
				size_t x = rand_r(&seed) % pairs;

				/* any address inside a page names the page */
				a[i] = pg(&ir, 2 * x) + rand_r(&seed) % ir.psz;
				b[i] = pg(&ir, 2 * x + 1);
			}
			ret = pmv_exchange_pages(ictx, n, a, b, status, 0);
			if (ret < 0) {
				fprintf(stderr, "pmv_exchange_pages: %d (%s)\n", ret,
					pmv_strerror(ret));
				atomic_fetch_add(&ibad, 1);
			}
			for (int i = 0; i < n && ret >= 0; i++) {
				if (!status[i]) {
					atomic_fetch_add(&ixchgs, 1);
				} else if (status[i] != -EBUSY) {
					fprintf(stderr, "exchange status[%d] = %d (%s)\n", i,
						status[i], pmv_strerror(status[i]));
					atomic_fetch_add(&ibad, 1);
				}
			}
			continue;
		}
		n = rand_r(&seed) % 3 ? 1 + rand_r(&seed) % 64 : 1;
		/*
		 * Half a second mostly up, half a second mostly down: the
		 * policy must drain a full tier 0 in the one, and promote and
		 * exchange into a roomy one in the other, all under the
		 * writers (random moves alone keep it draining for good).
		 */
		up = (long)((t_now() - t0) * 2) % 2 == 0;
		to = rand_r(&seed) % 4 == 0 ? up : !up;
		for (int i = 0; i < n; i++) {
			a[i] = pg(&ir, rand_r(&seed) % ir.npages) + rand_r(&seed) % ir.psz;
			tiers[i] = to;
		}
		ret = pmv_move_pages(ictx, n, a, tiers, status, 0);
		if (ret < 0) {
			fprintf(stderr, "pmv_move_pages: %d (%s)\n", ret, pmv_strerror(ret));
			atomic_fetch_add(&ibad, 1);
		}
		for (int i = 0; i < n && ret >= 0; i++) {
			if (status[i] == to) {
				atomic_fetch_add(&imoves, 1);
			} else if (status[i] == -EBUSY || (status[i] == -ENOMEM && to == 0)) {
				;	/* held by someone else; tier 0 is bounded (and full) */
			} else {
				fprintf(stderr, "move to %d: status[%d] = %d (%s)\n", to, i,
					status[i], pmv_strerror(status[i]));
				atomic_fetch_add(&ibad, 1);
			}
		}
	}
	return NULL;
}

static void check_integrity(int huge)
{
	/* small enough for the sampling sweep to pass the hot set many times */
	size_t len = sz(huge ? 32 * MB : 4 * MB, huge), cap = len / 4;
	size_t caps[2] = { cap, 0 };
	/* a short interval: park and unpark as much as the budget allows */
	struct pmv_policy_config pol = pol_base(PMV_POLICY_AUTO, 10);
	/* in the guest, long enough for a few emulated 2 MB exchanges */
	double secs = guest ? 3 : t_duration(3), t0;
	pthread_t wt[NWRITERS], mv;
	struct pmv_ctx_stats cs;
	uint64_t r4k = 0, r2m = 0;
	long bad;

	pol.min_residency_ms = 10;
	ictx = mk_ctx(2, caps, &pol);
	map_region(ictx, &ir, len, PMV_TIER_DEFAULT, huge, SEED + 4 + huge);
	ihot = ir.npages / 8;
	fill_region(&ir, NWRITERS);
	for (int w = 0; w < NWRITERS; w++)
		T_ASSERT((expect[w] = calloc(ir.npages, sizeof(uint64_t))), "calloc");
	atomic_store(&stop_work, 0);
	atomic_store(&imoves, 0);
	atomic_store(&ixchgs, 0);
	atomic_store(&ibad, 0);

	t0 = t_now();
	for (long w = 0; w < NWRITERS; w++)
		T_EQ(pthread_create(&wt[w], NULL, iwriter, (void *)w), 0);
	T_EQ(pthread_create(&mv, NULL, imover, (void *)(uintptr_t)(77 + huge)), 0);
	/* a fixed window, and then until the mover has done some of each */
	while (t_now() - t0 < secs || atomic_load(&imoves) <= 10 ||
	       atomic_load(&ixchgs) <= (guest ? 0 : 10)) {
		usleep(10000);
		t_step("writers and mover: %ld moves, %ld exchanges so far",
		       atomic_load(&imoves), atomic_load(&ixchgs));
	}
	atomic_store(&stop_work, 1);
	for (int w = 0; w < NWRITERS; w++)
		pthread_join(wt[w], NULL);
	pthread_join(mv, NULL);

	/* every byte, with the policy still parking pages under us */
	bad = check_region(&ir, NWRITERS, expect);
	/*
	 * Off waits for the round in flight: a page it is moving is charged
	 * to both tiers until the move ends, and its counters lag the move.
	 */
	T_EQ(pmv_tier_policy(ictx, PMV_POLICY_OFF), 0);
	cs = ctx_stats(ictx);
	/* every page is found and charged once */
	count_on(ictx, &ir, 0, ir.npages, 0, NULL);
	for (int t = 0; t < 2; t++) {
		struct pmv_tier_stats st = tier_stats(ictx, t);

		r4k += st.resident_4k;
		r2m += st.resident_2m;
	}
	printf("4. %s %.1fs: %ld explicit moves, %ld explicit exchanges; policy: "
	       "%llu promoted, %llu demoted, %llu exchanged; %llu samples, %llu sample "
	       "faults; %llu faults waited; %ld bad pages\n", huge ? "2M" : "4K", secs,
	       atomic_load(&imoves), atomic_load(&ixchgs), (unsigned long long)cs.promoted,
	       (unsigned long long)cs.demoted, (unsigned long long)cs.exchanged,
	       (unsigned long long)cs.samples, (unsigned long long)cs.sample_faults,
	       (unsigned long long)cs.faults_waited, bad);
	T_EQ(bad, 0);
	T_EQ(atomic_load(&ibad), 0);
	T_EQ(r4k, huge ? 0 : ir.npages);
	T_EQ(r2m, huge ? ir.npages : 0);
	/* what this part is about did happen */
	T_ASSERT(cs.samples > 0 && cs.sample_faults > 0, "%llu samples, %llu sample faults",
		 (unsigned long long)cs.samples, (unsigned long long)cs.sample_faults);
	/*
	 * The policy moved pages both ways under the writers: hot ones up
	 * (promoted or exchanged) and cold ones down (demoted or exchanged),
	 * and those are the pages it parks most. Not in the guest: there
	 * the part is over before sampling has seen a page twice, which
	 * promotion needs; it checks the data and the placement (verify).
	 */
	T_LATER(guest || (cs.promoted + cs.exchanged > 0 && cs.demoted + cs.exchanged > 0),
		"%s: the policy moved pages only one way: %llu up, %llu down, %llu exchanged",
		huge ? "2M" : "4K", (unsigned long long)cs.promoted,
		(unsigned long long)cs.demoted, (unsigned long long)cs.exchanged);
	T_ASSERT(atomic_load(&imoves) > 10, "only %ld explicit moves", atomic_load(&imoves));
	T_ASSERT(atomic_load(&ixchgs) > (guest ? 0 : 10), "only %ld explicit exchanges",
		 atomic_load(&ixchgs));
	pmv_destroy(ictx);
	for (int w = 0; w < NWRITERS; w++)
		free(expect[w]);
}

/* ---- 5: parked pages meet munmap, fork and destroy ---------------------- */

/*
 * Wait until some page is parked; returns how many are. Progress is a
 * sample more: a tracker that stops sampling stalls the sub-test.
 */
static uint64_t wait_parked(pmv_ctx *ctx, int ntiers, const char *what)
{
	uint64_t samples = 0;

	for (;;) {
		struct pmv_ctx_stats cs = ctx_stats(ctx);
		uint64_t pt = 0;

		for (int t = 0; t < ntiers; t++)
			pt += tier_stats(ctx, t).parked;
		if (cs.parked > 0 && pt > 0)
			return cs.parked;
		if (cs.samples > samples) {
			samples = cs.samples;
			t_step("%s: wait for a parked page (%llu samples)", what,
			       (unsigned long long)samples);
		}
		usleep(5000);
	}
}

static int is_mapped(const void *p, size_t len)
{
	unsigned char vec[1];

	/* mincore() fails with ENOMEM on a range that is not mapped */
	return !mincore((void *)p, len < T_SZ_4K ? len : T_SZ_4K, vec) || errno != ENOMEM;
}

/*
 * 4 KB pages on tier 0 (seed) and, with THP, 2 MB ones on tier 1 (seed + 1),
 * filled; returns once both tiers have pages parked.
 */
static uint64_t map_both_parked(pmv_ctx *ctx, struct region *r4, struct region *r2,
				unsigned seed, const char *what)
{
	map_region(ctx, r4, sz(4 * MB, 0), 0, 0, seed);
	fill_region(r4, 0);
	if (thp) {
		map_region(ctx, r2, sz(16 * MB, 1), 1, 1, seed + 1);
		fill_region(r2, 0);
	}
	return wait_parked(ctx, 2, what);
}

static void check_parked(void)
{
	/* track only: parked pages stay where they are, nothing moves them */
	struct pmv_policy_config pol = pol_base(PMV_POLICY_TRACK, 10);
	struct region r4, r2 = { 0 };
	pmv_ctx *ctx = mk_ctx(2, NULL, &pol);
	uint64_t parked, resumed;
	int status;
	pid_t pid;

	/* munmap: one region at a time, so what is parked is that region's */
	for (int huge = 0; huge <= thp; huge++) {
		struct region r;
		struct pmv_ctx_stats cs;

		/* 4 KB pages on tier 0, 2 MB ones on tier 1: both tiers park */
		map_region(ctx, &r, sz(huge ? 16 * MB : 4 * MB, huge), huge, huge,
			   SEED + 5 + huge);
		fill_region(&r, 0);
		parked = wait_parked(ctx, 2, "before munmap");
		T_EQ(pmv_munmap(ctx, r.base, r.len), 0);
		cs = ctx_stats(ctx);
		T_EQ(cs.parked, 0);
		T_EQ(cs.regions, 0);
		for (int t = 0; t < 2; t++) {
			struct pmv_tier_stats st = tier_stats(ctx, t);

			/* pool pages may stay: they are free memory of the tier */
			T_ASSERT(!st.resident_bytes && !st.resident_4k && !st.resident_2m &&
				 !st.parked && !st.active && !st.inactive,
				 "tier %d after munmap: %llu bytes resident (%llu 4K, %llu 2M), "
				 "%llu parked, %llu active, %llu inactive", t,
				 (unsigned long long)st.resident_bytes,
				 (unsigned long long)st.resident_4k,
				 (unsigned long long)st.resident_2m, (unsigned long long)st.parked,
				 (unsigned long long)st.active, (unsigned long long)st.inactive);
		}
		T_ASSERT(!is_mapped(r.base, r.len), "region %p still mapped", r.base);
		T_EQ(pmv_munmap(ctx, r.base, r.len), -EINVAL);
		printf("5. pmv_munmap of a %s region with %llu pages parked: nothing left\n",
		       huge ? "2M" : "4K", (unsigned long long)parked);
	}

	/* fork: the child's snapshot has every page, parked ones included */
	parked = map_both_parked(ctx, &r4, &r2, SEED + 7, "before fork");
	pid = fork();
	T_ASSERT(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int bad = check_region(&r4, 0, NULL) != 0 || (thp && check_region(&r2, 0, NULL));

		/* the context is the parent's: every call here is -ECHILD */
		if (pmv_tier_policy(ctx, PMV_POLICY_OFF) != -ECHILD ||
		    pmv_tier_balance(ctx, 0) != -ECHILD) {
			fprintf(stderr, "child: policy calls did not fail with ECHILD\n");
			bad = 1;
		}
		_exit(bad);
	}
	T_EQ(waitpid(pid, &status, 0), pid);
	T_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		 "the fork child found bad pages (status %#x)", status);
	T_EQ(check_region(&r4, 0, NULL), 0);
	if (thp)
		T_EQ(check_region(&r2, 0, NULL), 0);
	printf("5. fork with %llu pages parked: the child read every byte\n",
	       (unsigned long long)parked);

	/*
	 * The child is gone: the pages it shared (read, never written since)
	 * are the parent's alone again and must be sampled again, or the
	 * policy goes blind to read-mostly memory after any fork(). Judged
	 * at the end, so the destroy below runs whatever the outcome.
	 */
	resumed = wait_parked(ctx, 2, "after the fork child exited");
	T_EQ(pmv_munmap(ctx, r4.base, r4.len), 0);
	if (thp)
		T_EQ(pmv_munmap(ctx, r2.base, r2.len), 0);

	/* destroy with pages parked and regions mapped (fresh ones) */
	parked = map_both_parked(ctx, &r4, &r2, SEED + 9, "before destroy");
	pmv_destroy(ctx);
	T_ASSERT(!is_mapped(r4.base, r4.len), "region %p still mapped after destroy", r4.base);
	if (thp)
		T_ASSERT(!is_mapped(r2.base, r2.len), "region %p still mapped after destroy",
			 r2.base);
	printf("5. pmv_destroy with %llu pages parked: ok\n", (unsigned long long)parked);
	T_ASSERT(resumed, "after the fork child exited, no page it had shared was sampled again");
}

/* ---- 6: modes, pmv_tier_balance, errors --------------------------------- */

static void expect_create_fails(const struct pmv_policy_config *pol, const char *what)
{
	struct pmv_tier_config tc[2] = { { .node = PMV_NODE_ANY }, { .node = PMV_NODE_ANY } };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .policy = pol };
	pmv_ctx *ctx;

	errno = 0;
	ctx = pmv_create(&cfg);
	if (ctx)
		pmv_destroy(ctx);
	T_ASSERT(!ctx && errno == EINVAL, "%s: pmv_create %s, errno %d", what,
		 ctx ? "succeeded" : "failed", errno);
}

static void expect_env_mode(const char *val, int mode)
{
	struct pmv_policy_config pol = pol_base(PMV_POLICY_AUTO, 50);
	pmv_ctx *ctx;

	T_EQ(setenv("PAGEMOVE_POLICY", val, 1), 0);
	ctx = mk_ctx(2, NULL, &pol);
	T_ASSERT(ctx_stats(ctx).policy_mode == mode, "PAGEMOVE_POLICY=%s: mode %d, want %d",
		 val, ctx_stats(ctx).policy_mode, mode);
	pmv_destroy(ctx);
	T_EQ(unsetenv("PAGEMOVE_POLICY"), 0);
}

static void check_modes(void)
{
	struct pmv_policy_config pol = pol_base(PMV_POLICY_TRACK, 20);
	size_t caps[2] = { sz(8 * MB, 0), 0 };
	struct pmv_ctx_stats c0, c1, c2;
	struct hammer hm[2];
	struct region r;
	size_t hot, want, on0 = 0, all0;
	long total = 0, ret;
	int calls = 0;
	pmv_ctx *ctx;
	double t0;

	pol.min_residency_ms = 1;
	ctx = mk_ctx(2, caps, &pol);
	T_EQ(ctx_stats(ctx).policy_mode, PMV_POLICY_TRACK);
	/* everything on the slow tier, with room for all of it on the fast */
	map_region(ctx, &r, sz(4 * MB, 0), 1, 0, SEED + 6);
	fill_region(&r, 0);
	hot = r.npages / 8;
	want = (hot * 9 + 9) / 10;
	hammers_start(hm, 2, &r, 0, hot);

	/* TRACK: pages are sampled, and none moves by itself */
	t0 = t_now();
	do {
		usleep(100000);
		T_EQ(count_on(ctx, &r, 0, r.npages, 1, NULL), r.npages);
		c0 = ctx_stats(ctx);
		t_step("TRACK: %llu samples, %llu sample faults", (unsigned long long)c0.samples,
		       (unsigned long long)c0.sample_faults);
		/* a fixed window where nothing may move, then until a sample faulted */
	} while (t_now() - t0 < t_duration(1.5) || !c0.sample_faults);
	T_ASSERT(c0.samples > 0 && c0.sample_faults > 0, "TRACK: %llu samples, %llu faults",
		 (unsigned long long)c0.samples, (unsigned long long)c0.sample_faults);
	T_EQ(c0.promoted + c0.demoted + c0.exchanged, 0);
	T_EQ(c0.policy_bytes, 0);

	/* one round each call, in this thread: the hot set comes up */
	t0 = t_now();
	do {
		ret = pmv_tier_balance(ctx, 0);
		T_ASSERT(ret >= 0, "pmv_tier_balance: %ld (%s)", ret, pmv_strerror((int)ret));
		total += ret;
		calls++;
		on0 = count_on(ctx, &r, 0, hot, 0, NULL);
		if (on0 >= want)
			break;
		if (ret > 0)
			t_step("pmv_tier_balance: %zu of %zu hot pages on tier 0", on0, hot);
		usleep(50000);
	} while (1);
	hammers_stop(hm, 2);
	c1 = ctx_stats(ctx);
	all0 = count_on(ctx, &r, 0, r.npages, 0, NULL);
	printf("6. TRACK %.1fs: nothing moved (%llu samples); %d pmv_tier_balance calls "
	       "moved %ld pages, %zu/%zu hot on tier 0 (%zu pages in all)\n",
	       t_duration(1.5), (unsigned long long)c0.samples, calls, total, on0, hot, all0);
	T_ASSERT(total > 0 && on0 > 0, "pmv_tier_balance moved %ld pages, %zu hot on tier 0",
		 total, on0);
	/* it reports what it did, and only it moved pages */
	T_EQ(total, (long)((c1.promoted - c0.promoted) + (c1.demoted - c0.demoted) +
			   2 * (c1.exchanged - c0.exchanged)));
	T_EQ(all0, c1.promoted - c1.demoted);

	/* OFF: every parked page is mapped back before the call returns */
	T_EQ(pmv_tier_policy(ctx, PMV_POLICY_OFF), 0);
	c1 = ctx_stats(ctx);
	T_EQ(c1.policy_mode, PMV_POLICY_OFF);
	T_EQ(c1.parked, 0);
	for (int t = 0; t < 2; t++)
		T_EQ(tier_stats(ctx, t).parked, 0);
	/* and stays so: no page is unmapped to sample any more */
	usleep(200000);
	c2 = ctx_stats(ctx);
	T_EQ(c2.parked, 0);
	T_EQ(c2.samples, c1.samples);
	/* with no access information a round only enforces the watermarks */
	T_ASSERT(pmv_tier_balance(ctx, 0) >= 0, "pmv_tier_balance with the policy off");
	T_EQ(ctx_stats(ctx).parked, 0);

	/* unknown flags, as everywhere in the API */
	T_EQ(pmv_tier_balance(ctx, 1), -EINVAL);
	T_EQ(pmv_tier_balance(ctx, -1), -EINVAL);
	/* bad modes are refused and change nothing */
	T_EQ(pmv_tier_policy(ctx, -1), -EINVAL);
	T_EQ(pmv_tier_policy(ctx, PMV_POLICY_OFF + 1), -EINVAL);
	T_EQ(pmv_tier_policy(ctx, 1000), -EINVAL);
	T_EQ(ctx_stats(ctx).policy_mode, PMV_POLICY_OFF);
	T_EQ(pmv_tier_policy(ctx, PMV_POLICY_AUTO), 0);
	T_EQ(ctx_stats(ctx).policy_mode, PMV_POLICY_AUTO);
	T_EQ(pmv_tier_policy(ctx, PMV_POLICY_TRACK), 0);
	T_EQ(ctx_stats(ctx).policy_mode, PMV_POLICY_TRACK);
	T_EQ(check_region(&r, 0, NULL), 0);
	pmv_destroy(ctx);

	/* a bad policy configuration is a bad config: EINVAL */
	pol = pol_base(PMV_POLICY_OFF + 1, 50);
	expect_create_fails(&pol, "mode OFF + 1");
	pol = pol_base(-1, 50);
	expect_create_fails(&pol, "mode -1");
	pol = pol_base(PMV_POLICY_AUTO, 50);
	pol.track_cpu_permille = 21;
	expect_create_fails(&pol, "track_cpu_permille 21");

	/* the environment fills in a mode left at auto, the default (t_config) */
	expect_env_mode("off", PMV_POLICY_OFF);
	expect_env_mode("track", PMV_POLICY_TRACK);
	T_EQ(setenv("PAGEMOVE_POLICY", "sometimes", 1), 0);
	pol = pol_base(PMV_POLICY_AUTO, 50);
	expect_create_fails(&pol, "PAGEMOVE_POLICY=sometimes");
	T_EQ(unsetenv("PAGEMOVE_POLICY"), 0);
	printf("6. modes: OFF unparks and stops sampling; bad modes and configs: EINVAL\n");
}

/* ---- 7: three tiers, one step at a time --------------------------------- */

struct step_monitor {
	pmv_ctx *ctx;
	pthread_t tid;
	atomic_int stop;
	atomic_long polls, bad;
};

/*
 * Nothing but the policy moves pages and no tier is bounded, so every
 * page promoted into tier 0 was promoted into tier 1 before. Tier 0 is
 * read first: tier 1's count can only have grown by the second read.
 */
static void *step_monitor(void *arg)
{
	struct step_monitor *m = arg;

	while (!atomic_load(&m->stop)) {
		struct pmv_tier_stats s0, s1;

		if (pmv_tier_stats(m->ctx, 0, &s0) || pmv_tier_stats(m->ctx, 1, &s1)) {
			m->bad++;
			break;
		}
		if (s0.promote_in > s1.promote_in && m->bad++ < 4)
			fprintf(stderr, "tier 0 promote_in %llu > tier 1 promote_in %llu\n",
				(unsigned long long)s0.promote_in,
				(unsigned long long)s1.promote_in);
		m->polls++;
		usleep(5000);
	}
	return NULL;
}

static void check_three(void)
{
	struct pmv_policy_config pol = pol_base(PMV_POLICY_AUTO, 20);
	struct step_monitor mon = { 0 };
	struct pmv_tier_stats s[3];
	struct hammer hm[2];
	struct region r;
	size_t hot, want, on0, n[3] = { 0 };
	double t0, took;
	pmv_ctx *ctx;
	int *where;

	/* a page stays at least this long on tier 1 on its way up */
	pol.min_residency_ms = 100;
	ctx = mk_ctx(3, NULL, &pol);
	map_region(ctx, &r, sz(4 * MB, 0), 2, 0, SEED + 9);
	fill_region(&r, 0);
	T_EQ(count_on(ctx, &r, 0, r.npages, 2, NULL), r.npages);
	hot = r.npages / 16;
	want = (hot * 9 + 9) / 10;

	mon.ctx = ctx;
	T_EQ(pthread_create(&mon.tid, NULL, step_monitor, &mon), 0);
	t0 = t_now();
	hammers_start(hm, 2, &r, 0, hot);
	on0 = wait_on0(ctx, &r, 0, hot, want, t0, &took);
	while (atomic_load(&mon.polls) <= 10 && !atomic_load(&mon.bad))
		usleep(5000);
	hammers_stop(hm, 2);
	atomic_store(&mon.stop, 1);
	pthread_join(mon.tid, NULL);

	/* quiesce: no round may run while the counters are compared */
	T_EQ(pmv_tier_policy(ctx, PMV_POLICY_OFF), 0);
	for (int t = 0; t < 3; t++)
		s[t] = tier_stats(ctx, t);
	where = calloc(r.npages, sizeof(*where));
	T_ASSERT(where, "calloc");
	count_on(ctx, &r, 0, r.npages, 0, where);
	for (size_t i = 0; i < r.npages; i++) {
		T_ASSERT(where[i] >= 0 && where[i] < 3, "page %zu on tier %d", i, where[i]);
		n[where[i]]++;
	}
	free(where);
	printf("7. 3 tiers: %zu/%zu hot pages on tier 0 after %.1fs; pages on tiers "
	       "%zu/%zu/%zu; promote_in %llu/%llu, migrate_in %llu/%llu/%llu (%ld polls)\n",
	       on0, hot, took, n[0], n[1], n[2], (unsigned long long)s[0].promote_in,
	       (unsigned long long)s[1].promote_in, (unsigned long long)s[0].migrate_in,
	       (unsigned long long)s[1].migrate_in, (unsigned long long)s[2].migrate_in,
	       mon.polls);
	T_EQ(mon.bad, 0);
	T_ASSERT(mon.polls > 10, "only %ld polls", mon.polls);
	/* no tier is bounded: nothing is demoted or exchanged */
	for (int t = 0; t < 3; t++)
		T_EQ(s[t].demote_in, 0);
	T_EQ(ctx_stats(ctx).exchanged, 0);
	/* every move was one step up: 2 -> 1 -> 0 */
	T_EQ(s[0].migrate_out, 0);
	T_EQ(s[2].migrate_in, 0);
	T_EQ(s[0].migrate_in, s[0].promote_in);
	T_EQ(s[1].migrate_in, s[1].promote_in);
	T_EQ(s[1].migrate_in, s[2].migrate_out);
	T_EQ(s[0].migrate_in, s[1].migrate_out);
	T_EQ(n[0], s[0].promote_in);
	T_EQ(n[1], s[1].promote_in - s[0].promote_in);
	T_EQ(n[2], r.npages - s[1].promote_in);
	T_EQ(check_region(&r, 0, NULL), 0);
	pmv_destroy(ctx);
}

/* ---- the sub-tests: each returns its failure count ---------------------- */

static int test_hot_pages_reach_the_fast_tier_within_its_capacity(const struct t_case *c)
{
	check_converge(c->huge);
	return deferred;
}

static int test_policy_keeps_to_its_bandwidth_budget(const struct t_case *c)
{
	(void)c;
	check_budget();
	return deferred;
}

static int test_policy_and_explicit_moves_keep_every_byte(const struct t_case *c)
{
	check_integrity(c->huge);
	return deferred;
}

static int test_parked_pages_meet_munmap_fork_and_destroy(const struct t_case *c)
{
	(void)c;
	check_parked();
	return deferred;
}

static int test_modes_track_balance_off_and_bad_configs(const struct t_case *c)
{
	(void)c;
	check_modes();
	return deferred;
}

static int test_three_tiers_promote_one_step_at_a_time(const struct t_case *c)
{
	(void)c;
	check_three();
	return deferred;
}

int main(void)
{
	struct t_suite s;
	char secs[16];

	t_suite_init(&s);
	for (size_t i = 0; i < sizeof(policy_env) / sizeof(policy_env[0]); i++) {
		if (getenv(policy_env[i]))
			printf("note: %s ignored: each part sets its own\n", policy_env[i]);
		unsetenv(policy_env[i]);
	}
	/*
	 * A sub-test that progresses is never cut short by a load on the
	 * machine: its limit is for a hang, so generous (the stall check
	 * catches one sooner).
	 */
	snprintf(secs, sizeof(secs), "%d", t_part_timeout() > 180 ? t_part_timeout() : 180);
	setenv("PMV_TEST_PART_TIMEOUT", secs, 0);
	thp = t_thp_enabled();
	guest = t_test_nodes() > 0;
	{
		struct pmv_policy_config pol = pol_base(PMV_POLICY_OFF, 50);
		pmv_ctx *ctx = mk_ctx(2, NULL, &pol);
		unsigned mode = ctx_stats(ctx).mode;

		pmv_destroy(ctx);
		/*
		 * There a kernel access to a parked page would fail with
		 * EFAULT instead of waiting, so that mode never samples.
		 */
		if (mode == PMV_MODE_USER_ONLY)
			t_skip("user-mode-only userfaultfd: no access tracking");
	}

	for (int huge = 0; huge < 2; huge++)
		T_CASE(&s, test_hot_pages_reach_the_fast_tier_within_its_capacity, -1, huge);
	T_CASE(&s, test_policy_keeps_to_its_bandwidth_budget, -1, thp);
	for (int huge = 0; huge < 2; huge++)
		T_CASE(&s, test_policy_and_explicit_moves_keep_every_byte, -1, huge);
	T_CASE_ONE(&s, test_parked_pages_meet_munmap_fork_and_destroy, 1);
	T_CASE(&s, test_modes_track_balance_off_and_bad_configs, -1, 0);
	T_CASE(&s, test_three_tiers_promote_one_step_at_a_time, -1, 0);
	return t_suite_end(&s);
}
