/* SPDX-License-Identifier: MIT */
/*
 * Signals against threads blocked in userfaultfd faults and against
 * threads inside library calls. Writer threads own a counter word in every
 * page (as t_integrity) while pages move, and a signaller hammers the
 * writers and the library's callers with SIGUSR1 (no SA_RESTART) and
 * SIGUSR2 (SA_RESTART), so that signals land while threads wait in MISSING
 * and WP faults and while they hold or wait for the library's locks. A
 * signal makes a fault return to user space, run the handler (which reads
 * managed memory itself: a fault inside a handler that interrupted a fault
 * or a library call) and retry: no lost or doubled increment, no EINTR
 * from a kernel-mode copy, no hang (each sub-test runs under the harness
 * watchdog). Afterwards every byte is checked.
 *
 * test_storm_during_moves_keeps_counters: one mover calling
 *   pmv_move_pages as fast as it can.
 * test_storm_during_library_calls_keeps_data: in each mode (migrating,
 *   exchanging, parked, policy on) the mode's agitator, plus a caller that
 *   goes through every call that takes the library's locks
 *   (pmv_exchange_pages, pmv_mbind, pmv_migrate, pmv_tier_balance,
 *   pmv_tier_policy, pmv_tier_stats, pmv_ctx_stats, pmv_move_pages) a fixed
 *   number of times; both get signals.
 * test_handlers_fault_while_threads_malloc: in each mode, threads that
 *   only malloc and free (one glibc arena: M_ARENA_MAX=1) get the storm,
 *   so that handlers run while their thread holds the allocator's lock,
 *   and touch pages the agitator moves, parks or evicts; meanwhile a
 *   churner maps regions, discards and unmaps parts of them (the events
 *   the fault handlers read, the janitor's table surgery). No fault
 *   handler, and nothing a fault waits for, may wait for that lock
 *   (internal.h's allocator rule): a hang is the failure, under the
 *   watchdog. A fixed amount of work.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "harness.h"

#define NWRITERS	2
#define SEED		0x519
#define MAXPAGES	512

static pmv_ctx *ctx;
static char *base;
static size_t psz, npages;
static uint64_t *expect[NWRITERS];
static atomic_int stop, sig_stop, caller_done;
static atomic_long delivered[2], in_caller, handler_bad, moves, bad_status, syscalls,
	syscall_bad, calls, bad_calls;
static pthread_t wt[NWRITERS], targets[2];	/* the mover or agitator, the caller */
static int ntargets;
static int pipes[NWRITERS][2];
static _Thread_local int is_caller;
static struct t_agit AG;

static char *page_of(size_t i, size_t *ps)
{
	*ps = psz;
	return base + i * psz;
}

/*
 * Reads a pattern byte past the counters, which nobody writes, so it can
 * be checked here. The library holds asynchronous signals while it holds
 * a lock a fault may need, or a handler touching a page its own thread
 * holds could never be served.
 */
static void handler(int sig)
{
	static _Thread_local unsigned n;
	int saved = errno;
	size_t i = (n * 7919) % npages;
	const volatile uint8_t *p = (const uint8_t *)(base + i * psz);
	size_t off = NWRITERS * 64 + (n * 131) % (psz - NWRITERS * 64);

	if (p[off] != t_pat(i, off, SEED))
		atomic_fetch_add(&handler_bad, 1);
	n++;
	atomic_fetch_add(&delivered[sig == SIGUSR1 ? 0 : 1], 1);
	if (is_caller)
		atomic_fetch_add(&in_caller, 1);
	errno = saved;
}

static void *writer(void *arg)
{
	unsigned w = (unsigned)(uintptr_t)arg;
	long round = 0;

	while (!atomic_load(&stop)) {
		for (size_t i = 0; i < npages; i++) {
			volatile uint64_t *c = (uint64_t *)(base + i * psz + w * 64);

			*c = *c + 1;
			expect[w][i]++;
		}
		/*
		 * Every few rounds the kernel writes the counter instead:
		 * read(2) from a pipe into a page that may be migrating, with
		 * signals flying. A kernel-mode fault is not interrupted by a
		 * signal, so the read must be complete, never EINTR or EFAULT.
		 */
		if (++round % 4 == 0) {
			size_t i = (size_t)(round / 4 * 31 + w) % npages;
			uint64_t *c = (uint64_t *)(base + i * psz + w * 64);
			uint64_t v = expect[w][i] + 1;
			ssize_t r;

			if (write(pipes[w][1], &v, 8) != 8) {
				atomic_fetch_add(&syscall_bad, 1);
				continue;
			}
			r = read(pipes[w][0], c, 8);
			if (r != 8) {
				fprintf(stderr, "writer %u: read into page %zu: %zd (%s)\n", w, i,
					r, r < 0 ? strerror(errno) : "short");
				atomic_fetch_add(&syscall_bad, 1);
			} else {
				expect[w][i] = v;
			}
			atomic_fetch_add(&syscalls, 1);
		}
	}
	return NULL;
}

static void *mover(void *arg)
{
	unsigned seed = 77;
	void *pages[64];

	(void)arg;
	while (!atomic_load(&stop)) {
		int n = 1 + rand_r(&seed) % 64;
		int to = rand_r(&seed) & 1;

		for (int i = 0; i < n; i++)
			pages[i] = base + (rand_r(&seed) % npages) * psz;
		t_move_count(ctx, n, pages, to, &moves, &bad_status);
	}
	return NULL;
}

/*
 * As fast as it can: alternate signals at the writers and the library's
 * callers. Runs until every target has finished; none is joined before
 * this thread is, so each id stays valid.
 */
static void *signaller(void *arg)
{
	unsigned k = 0;

	(void)arg;
	while (!atomic_load(&sig_stop)) {
		int sig = k & 1 ? SIGUSR2 : SIGUSR1;
		pthread_t t = k % 4 == 3 && ntargets ? targets[(k / 4) % ntargets] :
			wt[(k / 2) % NWRITERS];
		int ret;

		k++;
		ret = pthread_kill(t, sig);
		if (ret && ret != ESRCH)
			T_FAIL("pthread_kill: %s", strerror(ret));
	}
	return NULL;
}

static void bad_call(const char *what, long ret)
{
	fprintf(stderr, "caller: %s returned %ld (%s)\n", what, ret, pmv_strerror((int)ret));
	atomic_fetch_add(&bad_calls, 1);
}

/*
 * One call of each kind in turn, a fixed number of rounds. Statuses may
 * be anything a concurrent move allows (a tier, -EBUSY; -ENOMEM on the
 * policy mode's small fast tier); return values must be what the man
 * pages promise for valid arguments.
 */
static void *caller(void *arg)
{
	const struct t_case *c = arg;
	int policy = c->mode == T_PARKED ? PMV_POLICY_TRACK :
		c->mode == T_POLICY ? PMV_POLICY_AUTO : PMV_POLICY_OFF;
	/*
	 * Evicting, each 2 MB move of the caller's is a compression and its
	 * touch a fault-in: 40 rounds took 5 s, a third of what the mode may
	 * add to `make test`. 16 still storm every kind of call many times.
	 */
	int rounds = t_rounds(c->huge ? (c->mode == T_EVICTING ? 16 : 40) : 200);
	int status[8], tiers[8];
	unsigned seed = 1234 + (unsigned)c->mode;
	void *a[8], *b[8];

	is_caller = 1;
	for (int r = 0; r < rounds * 8; r++) {
		int n = 1 + rand_r(&seed) % 4, to = rand_r(&seed) & 1;
		size_t at = rand_r(&seed) % npages;
		long ret = 0;

		for (int i = 0; i < n; i++) {
			a[i] = base + (rand_r(&seed) % npages) * psz;
			b[i] = base + (rand_r(&seed) % npages) * psz;
			tiers[i] = to;
		}
		switch (r % 8) {
		case 0:
			ret = pmv_exchange_pages(ctx, (size_t)n, a, b, status, 0);
			if (ret < 0)
				bad_call("pmv_exchange_pages", ret);
			break;
		case 1:
			ret = pmv_mbind(ctx, base + at * psz, psz, to, PMV_MOVE);
			if (ret < 0)
				bad_call("pmv_mbind", ret);
			break;
		case 2:
			ret = pmv_migrate(ctx, 1UL << to, 1UL << !to, 0);
			if (ret < 0)
				bad_call("pmv_migrate", ret);
			break;
		case 3:
			ret = pmv_tier_balance(ctx, 0);
			if (ret < 0)
				bad_call("pmv_tier_balance", ret);
			break;
		case 4:
			ret = pmv_tier_policy(ctx, policy);
			if (ret < 0)
				bad_call("pmv_tier_policy", ret);
			break;
		case 5: {
			struct pmv_tier_stats ts;

			for (int t = 0; t < 2 && ret >= 0; t++)
				if ((ret = pmv_tier_stats(ctx, t, &ts)) < 0)
					bad_call("pmv_tier_stats", ret);
			break;
		}
		case 6: {
			struct pmv_ctx_stats cs;

			ret = pmv_ctx_stats(ctx, &cs);
			if (ret < 0)
				bad_call("pmv_ctx_stats", ret);
			break;
		}
		default:
			ret = pmv_move_pages(ctx, (size_t)n, a, tiers, status, 0);
			if (ret < 0)
				bad_call("pmv_move_pages", ret);
			break;
		}
		atomic_fetch_add(&calls, 1);
		t_beat();
	}
	atomic_store(&caller_done, 1);
	return NULL;
}

/* The region, filled: a pattern everywhere, the writers' counters zero. */
static void setup(const struct t_case *c, size_t len)
{
	psz = c->huge ? T_SZ_2M : T_SZ_4K;
	npages = len / psz;
	base = t_map(ctx, len, 0, c->huge ? PMV_HUGE : 0);
	for (size_t i = 0; i < npages; i++) {
		t_fill(base + i * psz, psz, i, SEED);
		for (int w = 0; w < NWRITERS; w++)
			memset(base + i * psz + w * 64, 0, 8);
	}
	for (int w = 0; w < NWRITERS; w++) {
		T_ASSERT((expect[w] = calloc(npages, 8)), "calloc");
		T_EQ(pipe(pipes[w]), 0);
	}
}

/* One handler interrupts system calls for good, the other restarts them. */
static void set_handlers(void)
{
	struct sigaction sa = { .sa_handler = handler };

	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	T_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	sa.sa_flags = SA_RESTART;
	T_EQ(sigaction(SIGUSR2, &sa, NULL), 0);
}

static void start_writers_and_signals(pthread_t *sg)
{
	for (long w = 0; w < NWRITERS; w++)
		T_EQ(pthread_create(&wt[w], NULL, writer, (void *)w), 0);
	T_EQ(pthread_create(sg, NULL, signaller, NULL), 0);
}

/*
 * Stop everyone, signals still landing while they wind down; only then
 * join anyone, so that every thread id the signaller uses stays valid.
 * stop_targets() asks the mover or agitator and the caller to stop.
 */
static int finish(pthread_t sg, const char *who, void (*stop_targets)(void))
{
	struct pmv_ctx_stats cs = { 0 };
	int bad = 0;
	long wrong;

	if (stop_targets)
		stop_targets();
	atomic_store(&stop, 1);
	usleep(100000);
	atomic_store(&sig_stop, 1);
	T_EQ(pthread_join(sg, NULL), 0);
	for (int w = 0; w < NWRITERS; w++)
		T_EQ(pthread_join(wt[w], NULL), 0);
	t_step("%s: check every byte", who);
	wrong = t_check_counters(npages, page_of, SEED, NWRITERS, expect);
	if (ctx)
		T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	printf("  %s: %ld SIGUSR1 + %ld SIGUSR2 handled (%ld on the caller), %ld calls, "
	       "%llu migrations, %llu faults waited, %ld reads into managed pages, "
	       "%ld bad bytes\n", who, atomic_load(&delivered[0]), atomic_load(&delivered[1]),
	       atomic_load(&in_caller), atomic_load(&calls),
	       (unsigned long long)cs.migrations, (unsigned long long)cs.faults_waited,
	       atomic_load(&syscalls), wrong);
	T_CHECK(bad, wrong == 0, "%ld bytes wrong", wrong);
	T_CHECK(bad, atomic_load(&handler_bad) == 0, "%ld handler reads wrong",
		atomic_load(&handler_bad));
	T_CHECK(bad, atomic_load(&syscall_bad) == 0, "%ld reads into managed pages failed",
		atomic_load(&syscall_bad));
	T_CHECK(bad, atomic_load(&bad_status) == 0, "%ld unexpected statuses",
		atomic_load(&bad_status));
	T_CHECK(bad, atomic_load(&bad_calls) == 0, "%ld calls failed", atomic_load(&bad_calls));
	T_CHECK(bad, atomic_load(&delivered[0]) > 0 && atomic_load(&delivered[1]) > 0,
		"no signal handled: %ld + %ld", atomic_load(&delivered[0]),
		atomic_load(&delivered[1]));
	return bad;
}

/* The mover stops at `stop` with the writers. */
static void stop_agitator(void)
{
	atomic_store(&AG.stop, 1);
}

static int test_storm_during_moves_keeps_counters(const struct t_case *c)
{
	struct pmv_ctx_stats cs;
	double secs = t_duration(3);
	pthread_t sg;
	int bad;

	if (t_control())
		return T_SUB_SKIP;
	ctx = t_ctx(2, NULL, 0);
	setup(c, c->huge ? 8 << 20 : 2 << 20);
	set_handlers();
	T_EQ(pthread_create(&targets[0], NULL, mover, NULL), 0);
	ntargets = 1;
	start_writers_and_signals(&sg);
	t_step("storm for %.1f s", secs);
	for (double end = t_now() + secs; t_now() < end;) {
		usleep(10000);
		t_beat();
	}
	bad = finish(sg, "moves", NULL);
	T_EQ(pthread_join(targets[0], NULL), 0);
	T_EQ(pmv_ctx_stats(ctx, &cs), 0);
	/* progress, not a throughput bar: the NUMA guest handles a few hundred */
	T_CHECK(bad, atomic_load(&moves) > 0, "no progress: %ld moves", atomic_load(&moves));
	T_CHECK(bad, cs.faults_waited > 0, "no fault ever waited on a migration");
	T_CHECK(bad, cs.migrations > 0, "no migration");
	T_EQ(t_unmap(ctx, base, npages * psz), 0);
	t_destroy(ctx);
	return bad;
}

static int test_storm_during_library_calls_keeps_data(const struct t_case *c)
{
	pthread_t sg;
	int bad;

	ctx = t_ctx_mode(c->mode, c->huge ? 4 * T_SZ_2M : 64 * T_SZ_4K, NULL);
	setup(c, c->huge ? 8 * T_SZ_2M : 128 * T_SZ_4K);
	set_handlers();
	if (ctx) {
		t_region_spread(&(struct t_region){ .ctx = ctx, .base = base, .psz = psz,
						    .npages = npages }, c->mode);
		t_agit_init(&AG, ctx, c->mode, base, psz, npages, SEED + 7 * c->mode + c->huge);
		/* the caller's exchanges and mbinds move pages under the agitator too */
		AG.allow[1] = -ENOMEM;
		t_agit_run(&AG);
		targets[0] = AG.th;
		T_EQ(pthread_create(&targets[1], NULL, caller, (void *)c), 0);
		ntargets = 2;
	}
	start_writers_and_signals(&sg);
	if (ctx) {
		t_step("the caller's rounds");
		while (!atomic_load(&caller_done))
			usleep(1000);
		t_agit_sync(&AG, 2);
	} else {
		usleep(300000);
	}
	bad = finish(sg, "library calls", ctx ? stop_agitator : NULL);
	if (ctx) {
		T_EQ(pthread_join(targets[1], NULL), 0);
		bad += t_agit_check(&AG, "agitator", 1);
		T_CHECK(bad, atomic_load(&calls) > 0, "the caller made no call");
		if (c->mode == T_MIGRATING || c->mode == T_EXCHANGING)
			T_CHECK(bad, atomic_load(&AG.moved) > 0, "the agitator made no progress");
	}
	T_EQ(t_unmap(ctx, base, npages * psz), 0);
	t_destroy(ctx);
	return bad;
}

/* ---- handlers that fault while their thread holds malloc's lock ---- */

#define NALLOC		3
#define ALLOC_SIGNALS	2000	/* handled, on the allocators, before they stop */
#define CHURN_ROUNDS	100
#define CHURN_PAGES	32

static pthread_t alloc_th[NALLOC];
static atomic_int alloc_stop;
static atomic_long churn_bad, churn_rounds;

static void *allocator(void *arg)
{
	unsigned seed = SEED + (unsigned)(uintptr_t)arg;
	void *keep[16] = { 0 };

	for (int r = 0; !atomic_load(&alloc_stop); r++) {
		unsigned k = rand_r(&seed) % 16;

		free(keep[k]);
		/* small and large: arena bins and the top chunk, mmap'd ones too */
		keep[k] = malloc(16 + rand_r(&seed) % (r % 64 ? 4096 : 200000));
		if (keep[k])
			memset(keep[k], (int)k, 16);
	}
	for (int k = 0; k < 16; k++)
		free(keep[k]);
	return NULL;
}

/*
 * Regions made, discarded in part (REMOVE events), cut by a raw munmap in
 * the middle (UNMAP: the janitor splits the region) and unmapped.
 */
static void *churner(void *arg)
{
	size_t cp = T_SZ_4K, len = CHURN_PAGES * cp;

	(void)arg;
	for (int r = 0; r < CHURN_ROUNDS; r++) {
		char *b = t_map(ctx, len, 0, 0);

		for (size_t i = 0; i < CHURN_PAGES; i++)
			b[i * cp] = (char)(i + 1);
		if (t_sys_madvise(b + 4 * cp, 4 * cp, MADV_DONTNEED))
			atomic_fetch_add(&churn_bad, 1);
		if (t_sys_munmap(b + 12 * cp, 4 * cp))
			atomic_fetch_add(&churn_bad, 1);
		for (size_t i = 0; i < CHURN_PAGES; i++) {
			char want = i >= 4 && i < 8 ? 0 : (char)(i + 1);

			if (i >= 12 && i < 16)
				continue;
			if (b[i * cp] != want)
				atomic_fetch_add(&churn_bad, 1);
		}
		if (t_unmap(ctx, b, len))
			atomic_fetch_add(&churn_bad, 1);
		atomic_fetch_add(&churn_rounds, 1);
		t_beat();
	}
	return NULL;
}

static void *alloc_signaller(void *arg)
{
	unsigned k = 0;

	(void)arg;
	while (!atomic_load(&sig_stop)) {
		int ret = pthread_kill(alloc_th[k % NALLOC], k & 1 ? SIGUSR2 : SIGUSR1);

		if (ret && ret != ESRCH)
			T_FAIL("pthread_kill: %s", strerror(ret));
		k++;
	}
	return NULL;
}

static int test_handlers_fault_while_threads_malloc(const struct t_case *c)
{
	pthread_t sg, ch;
	long wrong;
	int bad = 0;

	/* every thread on one arena: a handler meets its lock as often as it can */
	mallopt(M_ARENA_MAX, 1);
	ctx = t_ctx_mode(c->mode, c->huge ? 4 * T_SZ_2M : 64 * T_SZ_4K, NULL);
	setup(c, c->huge ? 8 * T_SZ_2M : 128 * T_SZ_4K);
	set_handlers();
	if (ctx) {
		t_region_spread(&(struct t_region){ .ctx = ctx, .base = base, .psz = psz,
						    .npages = npages }, c->mode);
		t_agit_init(&AG, ctx, c->mode, base, psz, npages, SEED + 7 * c->mode + c->huge);
		t_agit_run(&AG);
	}
	for (long i = 0; i < NALLOC; i++)
		T_EQ(pthread_create(&alloc_th[i], NULL, allocator, (void *)i), 0);
	T_EQ(pthread_create(&ch, NULL, churner, NULL), 0);
	T_EQ(pthread_create(&sg, NULL, alloc_signaller, NULL), 0);
	t_step("%d threads malloc and free until %d signals and %d churn rounds", NALLOC,
	       ALLOC_SIGNALS, CHURN_ROUNDS);
	T_EQ(pthread_join(ch, NULL), 0);
	while (atomic_load(&delivered[0]) + atomic_load(&delivered[1]) < ALLOC_SIGNALS) {
		usleep(1000);
		t_beat();
	}
	if (ctx)
		t_agit_sync(&AG, 2);
	atomic_store(&alloc_stop, 1);
	/* the signaller stops only once the allocators are joined: ids stay valid */
	for (int i = 0; i < NALLOC; i++)
		T_EQ(pthread_join(alloc_th[i], NULL), 0);
	atomic_store(&sig_stop, 1);
	T_EQ(pthread_join(sg, NULL), 0);
	if (ctx) {
		stop_agitator();
		bad += t_agit_check(&AG, "agitator", 1);
	}
	t_step("check every byte");
	wrong = t_check_counters(npages, page_of, SEED, NWRITERS, expect);
	printf("  %ld SIGUSR1 + %ld SIGUSR2 handled, %ld churn rounds, %ld bad bytes\n",
	       atomic_load(&delivered[0]), atomic_load(&delivered[1]),
	       atomic_load(&churn_rounds), wrong);
	T_CHECK(bad, wrong == 0, "%ld bytes wrong", wrong);
	T_CHECK(bad, atomic_load(&handler_bad) == 0, "%ld handler reads wrong",
		atomic_load(&handler_bad));
	T_CHECK(bad, atomic_load(&churn_bad) == 0, "%ld churn steps wrong",
		atomic_load(&churn_bad));
	T_CHECK(bad, atomic_load(&delivered[0]) + atomic_load(&delivered[1]) > 0,
		"no signal handled");
	T_EQ(t_unmap(ctx, base, npages * psz), 0);
	t_destroy(ctx);
	return bad;
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	for (int h = 0; h < 2; h++)
		T_CASE(&s, test_storm_during_moves_keeps_counters, -1, h);
	T_CASE_ALL_FAR(&s, test_storm_during_library_calls_keeps_data);
	T_CASE_ALL_FAR(&s, test_handlers_fault_while_threads_malloc);
	return t_suite_end(&s);
}
