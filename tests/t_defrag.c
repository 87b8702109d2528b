/* SPDX-License-Identifier: MIT */
/*
 * Defragmentation (issue 14), part 1: PMV_MOVE_NONBLOCK. A non-blocking
 * pmv_move_pages, pmv_exchange_pages or pmv_migrate never waits for
 * another thread: a page a fault in progress holds gets -EAGAIN at once.
 * Part 2: pmv_collapse and the pool's THP failures; a collapse beside a
 * fault held in its handler (its discard's event needs a reader).
 * Return times are measured and printed (they go in the note),
 * never asserted: the machine is shared. Data is checked byte for byte.
 */
#include "harness.h"



static double now_us(void)
{
	return t_now() * 1e6;
}

static double cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void print_lat(const char *what, double *v, size_t n)
{
	if (!n) {
		printf("  %s: no calls\n", what);
		return;
	}
	qsort(v, n, sizeof(*v), cmp_dbl);
	printf("  %s: %zu calls, p50 %.1f us, p99 %.1f us, max %.1f us\n", what, n,
	       v[n / 2], v[(size_t)((double)n * 0.99)], v[n - 1]);
}

static pmv_ctx *ctx_off(void)
{
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF };

	return t_ctx_pol(2, NULL, 0, &pol);
}

/* ---- a fault in progress ---------------------------------------------- */

struct toucher {
	char *base;
	size_t psz, n;
	atomic_long done;	/* pages touched so far */
};

static void *touch_thread(void *arg)
{
	struct toucher *t = arg;

	for (size_t i = 0; i < t->n; i++) {
		t_fill(t->base + i * t->psz, t->psz, i, 14);
		atomic_store(&t->done, (long)i + 1);
	}
	return NULL;
}

/*
 * A thread first-touches pages one after another; every 4th fault's
 * handler holds the page locked for HOLD_US (PAGEMOVE_INJECT_HOLD_US)
 * before mapping it. Meanwhile the test calls pmv_move_pages(NONBLOCK)
 * on the page being touched, over and over: before the handler locks it
 * the page is -ENOENT (never touched), while it holds it -EAGAIN, after
 * it the page moves (tier 1). Nothing else is allowed, at least one call
 * must meet a held page (a hold lasts 100 ms, far longer than a call),
 * and every byte is the toucher's afterwards.
 */
static int test_nonblock_fault_in_progress_eagain(const struct t_case *c)
{
	size_t n = c->huge ? 8 : 32, psz = c->huge ? T_SZ_2M : T_SZ_4K, nlat = 0, cap = 1 << 20;
	long bad = 0, eagain = 0, enoent = 0, moved = 0, fast = 0;
	double *lat = malloc(cap * sizeof(*lat));
	struct toucher t = { .psz = psz, .n = n };
	pmv_ctx *ctx;
	pthread_t th;

	if (t_control())
		return T_SUB_SKIP;
	T_ASSERT(lat, "malloc");
	setenv("PAGEMOVE_INJECT_HOLD_US", "100000", 1);
	ctx = ctx_off();
	t.base = t_map(ctx, n * psz, 0, c->huge ? PMV_HUGE : 0);
	T_EQ(pthread_create(&th, NULL, touch_thread, &t), 0);
	for (size_t i = 0; i < n; i++) {
		void *page = t.base + i * psz;

		t_step("page %zu", i);
		while (atomic_load(&t.done) <= (long)i) {
			int to = 1, st = 0x7fff, ret;
			double t0 = now_us(), dt;

			ret = pmv_move_pages(ctx, 1, &page, &to, &st, PMV_MOVE_NONBLOCK);
			dt = now_us() - t0;
			if (st == -EAGAIN) {
				eagain++;
				fast += dt < 1000;
				if (nlat < cap)
					lat[nlat++] = dt;
			} else if (st == -ENOENT) {
				enoent++;
			} else if (st == 1) {
				moved++;
				/* back, so the next call on it is a move again */
				to = 0;
				pmv_move_pages(ctx, 1, &page, &to, &st, 0);
			} else {
				T_CHECK(bad, 0, "page %zu: status %d (%s), ret %d", i, st,
					pmv_strerror(st), ret);
				break;
			}
		}
	}
	pthread_join(th, NULL);
	printf("  statuses: %ld -EAGAIN (%ld of them under 1 ms), %ld -ENOENT, %ld moved\n",
	       eagain, fast, enoent, moved);
	print_lat("-EAGAIN return time (page held by a fault)", lat, nlat);
	T_CHECK(bad, eagain > 0, "no call met a page held by its fault");
	for (size_t i = 0; i < n; i++) {
		long off = t_check(t.base + i * psz, psz, i, 14);

		T_CHECK(bad, off < 0, "page %zu: bad byte at %ld", i, off);
	}
	t_destroy(ctx);
	free(lat);
	return (int)bad;
}

/* ---- under load ------------------------------------------------------- */

struct load {
	pmv_ctx *ctx;
	char *base;
	size_t psz, n;
	atomic_int stop;
	atomic_long writes, moves;
	unsigned gen[4096];	/* per page: the generation written last (writers) */
};

struct writer {
	struct load *l;
	size_t first, count;
};

/* Each writer owns its pages: it rewrites each whole, generation after generation. */
static void *writer_thread(void *arg)
{
	struct writer *w = arg;
	struct load *l = w->l;

	while (!atomic_load(&l->stop)) {
		for (size_t i = w->first; i < w->first + w->count && !atomic_load(&l->stop); i++) {
			unsigned g = l->gen[i] + 1;

			t_fill(l->base + i * l->psz, l->psz, i, g);
			l->gen[i] = g;
			atomic_fetch_add(&l->writes, 1);
		}
	}
	return NULL;
}

/* A blocking mover: random pages to random tiers, in batches of 16. */
static void *mover_thread(void *arg)
{
	struct load *l = arg;
	unsigned seed = 1414;

	while (!atomic_load(&l->stop)) {
		void *pages[16];
		int to[16], st[16];

		for (int k = 0; k < 16; k++) {
			pages[k] = l->base + (rand_r(&seed) % l->n) * l->psz;
			to[k] = rand_r(&seed) & 1;
		}
		pmv_move_pages(l->ctx, 16, pages, to, st, 0);
		atomic_fetch_add(&l->moves, 16);
	}
	return NULL;
}

/*
 * Two writers rewrite their pages and a blocking mover moves random ones,
 * while the test makes single-page non-blocking moves, exchanges and
 * migrations. Every status is a tier (moved), 0 (exchanged) or -EAGAIN;
 * the return times are printed (p50, p99, max); the writers' data is
 * exact at the end.
 */
static int test_nonblock_under_load_statuses_and_data(const struct t_case *c)
{
	size_t psz = c->huge ? T_SZ_2M : T_SZ_4K, n = c->huge ? 32 : 2048, cap = 1 << 20;
	size_t nlat = 0, nxlat = 0, nelat = 0;
	double *lat = malloc(cap * sizeof(*lat)), *xlat = malloc(cap * sizeof(*xlat));
	double *elat = malloc(cap * sizeof(*elat)), *ecpu = malloc(cap * sizeof(*ecpu));
	double until = t_now() + t_duration(3);
	long bad = 0, eagain = 0, ok = 0, calls = 0;
	struct load *l = calloc(1, sizeof(*l));
	struct writer w[2];
	pthread_t wt[2], mt;
	unsigned seed = 14;

	if (t_control())
		return T_SUB_SKIP;
	T_ASSERT(lat && xlat && elat && ecpu && l, "malloc");
	l->ctx = ctx_off();
	l->psz = psz;
	l->n = n;
	l->base = t_map(l->ctx, n * psz, 0, c->huge ? PMV_HUGE : 0);
	for (size_t i = 0; i < n; i++)
		t_fill(l->base + i * psz, psz, i, 0);
	for (int k = 0; k < 2; k++) {
		/* the writers own the first half; the second half stays still */
		w[k] = (struct writer){ .l = l, .first = k * n / 4, .count = n / 4 };
		T_EQ(pthread_create(&wt[k], NULL, writer_thread, &w[k]), 0);
	}
	T_EQ(pthread_create(&mt, NULL, mover_thread, l), 0);
	while (t_now() < until && !bad) {
		void *a = l->base + (rand_r(&seed) % n) * psz;
		void *b = l->base + (rand_r(&seed) % n) * psz;
		int to = rand_r(&seed) & 1, st = 0x7fff, kind = rand_r(&seed) % 8;
		double c0 = cpu_us(), t0 = now_us(), dt;
		long ret;

		if (kind == 0 && a != b) {
			ret = pmv_exchange_pages(l->ctx, 1, &a, &b, &st, PMV_MOVE_NONBLOCK);
			dt = now_us() - t0;
			/* the same tier for both is 0 too; a busy pair -EBUSY never: no wait */
			T_CHECK(bad, st == 0 || st == -EAGAIN, "exchange: status %d (%s)", st,
				pmv_strerror(st));
		} else if (kind == 1) {
			ret = pmv_migrate(l->ctx, 1UL << to, 1UL << !to, PMV_MOVE_NONBLOCK);
			dt = now_us() - t0;
			T_CHECK(bad, ret >= 0, "migrate: %ld", ret);
			st = 0;
			if (nxlat < cap)
				xlat[nxlat++] = dt;
			calls++;
			continue;
		} else {
			ret = pmv_move_pages(l->ctx, 1, &a, &to, &st, PMV_MOVE_NONBLOCK);
			dt = now_us() - t0;
			T_CHECK(bad, st == to || st == -EAGAIN, "move: status %d (%s)", st,
				pmv_strerror(st));
		}
		(void)ret;
		calls++;
		eagain += st == -EAGAIN;
		ok += st != -EAGAIN;
		if (st == -EAGAIN && nelat < cap) {
			ecpu[nelat] = cpu_us() - c0;
			elat[nelat++] = dt;
		}
		else if (st != -EAGAIN && nlat < cap)
			lat[nlat++] = dt;
		if (calls % 256 == 0)
			t_beat();
	}
	atomic_store(&l->stop, 1);
	for (int k = 0; k < 2; k++)
		pthread_join(wt[k], NULL);
	pthread_join(mt, NULL);
	printf("  load: %ld writes, %ld blocking moves; non-blocking: %ld calls, "
	       "%ld done, %ld -EAGAIN\n", atomic_load(&l->writes), atomic_load(&l->moves),
	       calls, ok, eagain);
	print_lat("non-blocking move/exchange of one page that moved, return time", lat, nlat);
	print_lat("non-blocking move/exchange of one page, -EAGAIN return time", elat, nelat);
	/* what of that was the call's own work, not time spent preempted */
	print_lat("  the same calls' own CPU time", ecpu, nelat);
	print_lat("non-blocking pmv_migrate of a whole tier, return time", xlat, nxlat);
	for (size_t i = 0; i < n; i++) {
		long off = t_check(l->base + i * psz, psz, i, l->gen[i]);

		T_CHECK(bad, off < 0, "page %zu gen %u: bad byte at %ld", i, l->gen[i], off);
		if (bad > 4)
			break;
	}
	t_destroy(l->ctx);
	free(l);
	free(lat);
	free(xlat);
	free(elat);
	free(ecpu);
	return (int)bad;
}

/* ---- the flag itself --------------------------------------------------- */

/*
 * A non-blocking call, again while it says -EAGAIN (at most 100 times, 10 ms
 * apart): the library's own threads contend too. Right after a first
 * touch its handler may still hold the page (it wakes the thread before it
 * lets go), and the fault helper may be filling the target pool; CI saw all
 * 8 pages refused once. Returns the last call's result.
 */
static int nb_retry(pmv_ctx *ctx, int n, void **pages, const int *to, void **with, int *st)
{
	int ret = 0;

	for (int tries = 0; tries < 100; tries++) {
		bool again = false;

		ret = with ? pmv_exchange_pages(ctx, n, pages, with, st, PMV_MOVE_NONBLOCK) :
			     pmv_move_pages(ctx, n, pages, to, st, PMV_MOVE_NONBLOCK);
		for (int i = 0; i < n; i++)
			again |= st[i] == -EAGAIN;
		if (ret < 0 || !again)
			break;
		usleep(10000);
	}
	return ret;
}

/*
 * Uncontended, a non-blocking call does what a blocking one does; unknown
 * flags are still refused.
 */
static int test_nonblock_uncontended_moves(const struct t_case *c)
{
	size_t psz = c->huge ? T_SZ_2M : T_SZ_4K, n = 8;
	void *pages[8];
	int to[8], st[8], ret;
	long bad = 0, left;
	pmv_ctx *ctx;
	char *base;

	if (t_control())
		return T_SUB_SKIP;
	ctx = ctx_off();
	base = t_map(ctx, n * psz, 0, c->huge ? PMV_HUGE : 0);
	for (size_t i = 0; i < n; i++) {
		t_fill(base + i * psz, psz, i, 7);
		pages[i] = base + i * psz;
		to[i] = 1;
	}
	ret = nb_retry(ctx, (int)n, pages, to, NULL, st);
	T_CHECK(bad, ret == 0, "move: %d left", ret);
	for (size_t i = 0; i < n; i++)
		T_CHECK(bad, st[i] == 1, "page %zu: status %d", i, st[i]);
	/* exchange pages 0-3 (tier 1) with... themselves moved back first */
	to[0] = to[1] = 0;
	T_CHECK(bad, nb_retry(ctx, 2, pages, to, NULL, st) == 0, "back");
	ret = nb_retry(ctx, 2, pages, NULL, pages + 2, st);
	T_CHECK(bad, ret == 0 && st[0] == 0 && st[1] == 0, "exchange: %d, %d %d", ret, st[0],
		st[1]);
	T_CHECK(bad, pmv_move_pages(ctx, 4, pages, NULL, st, 0) == 0 && st[0] == 1 &&
		st[1] == 1 && st[2] == 0 && st[3] == 0, "tiers after exchange %d %d %d %d",
		st[0], st[1], st[2], st[3]);
	for (int tries = 0; (left = pmv_migrate(ctx, 2, 1, PMV_MOVE_NONBLOCK)) > 0 && tries < 100;
	     tries++)
		usleep(10000);	/* its -EAGAIN pages are left: again, as nb_retry */
	T_CHECK(bad, left == 0, "migrate: %ld left", left);
	T_CHECK(bad, pmv_move_pages(ctx, n, pages, NULL, st, 0) == 0, "query");
	for (size_t i = 0; i < n; i++) {
		T_CHECK(bad, st[i] == 0, "page %zu on tier %d after migrate", i, st[i]);
		T_CHECK(bad, t_check(base + i * psz, psz, i, 7) < 0, "page %zu data", i);
	}
	T_CHECK(bad, pmv_move_pages(ctx, 1, pages, to, st, 1 << 20) == -EINVAL, "bad flag");
	T_CHECK(bad, pmv_exchange_pages(ctx, 1, pages, pages + 1, st, PMV_MPOL_BIND) == -EINVAL,
		"bad exchange flag");
	T_CHECK(bad, pmv_migrate(ctx, 1, 2, PMV_MF_STRICT) == -EINVAL, "bad migrate flag");
	T_CHECK(bad, !strcmp(pmv_strerror(-EAGAIN), "page busy now, not waited for"),
		"strerror: %s", pmv_strerror(-EAGAIN));
	t_destroy(ctx);
	return (int)bad;
}

/* ---- pmv_collapse -------------------------------------------------------- */

#define CP_PAGES	8
#define CP_PIECES	(CP_PAGES * 512)

struct cwriter {
	char *base;
	atomic_int stop;
	atomic_long rounds;
	unsigned gen[CP_PAGES];	/* the generation of piece 7 of each page */
};

/* Rewrites piece 7 of every page, generation after generation. */
static void *cwriter_thread(void *arg)
{
	struct cwriter *w = arg;

	while (!atomic_load(&w->stop)) {
		for (size_t i = 0; i < CP_PAGES; i++) {
			unsigned g = w->gen[i] + 1;

			t_fill(w->base + i * T_SZ_2M + 7 * T_SZ_4K, T_SZ_4K, i * 512 + 7, 1000 + g);
			w->gen[i] = g;
		}
		atomic_fetch_add(&w->rounds, 1);
	}
	return NULL;
}

static void coverage(pmv_ctx *ctx, const char *when, struct pmv_ctx_stats *cs)
{
	T_EQ(pmv_ctx_stats(ctx, cs), 0);
	printf("  %s: %llu of %llu huge bytes by PMDs (coverage %.3f), collapsed %llu\n", when,
	       (unsigned long long)cs->huge_pmd_bytes, (unsigned long long)cs->huge_bytes,
	       cs->huge_coverage, (unsigned long long)cs->collapsed);
}

/*
 * Eight 2 MB pages, filled; a writer keeps rewriting one piece of each.
 * Pages 0-3 are split by MADV_DONTNEED of pieces (page 2's then read: the
 * zero page; page 3's then written), pages 4-5 by a parent write after
 * fork (the child gone before the collapse). Coverage drops; one
 * pmv_collapse (a few if a page was busy: non-blocking) makes it 1 again,
 * each page a THP in smaps, and every byte is what it must be.
 */
static int test_collapse_split_pages_coverage_and_data(const struct t_case *c)
{
	struct pmv_ctx_stats cs;
	struct cwriter *w = calloc(1, sizeof(*w));
	static const size_t hole[4] = { 0, 100, 300, 511 };	/* the piece each loses */
	long bad = 0, kb;
	int calls = 0, left = -1, status;
	pmv_ctx *ctx;
	pthread_t th;
	char *base;
	pid_t pid;
	int pfd[2];

	(void)c;
	if (t_control())
		return T_SUB_SKIP;
	T_ASSERT(w, "calloc");
	ctx = ctx_off();
	base = w->base = t_map(ctx, CP_PAGES * T_SZ_2M, 0, PMV_HUGE);
	for (size_t i = 0; i < CP_PIECES; i++)
		t_fill(base + i * T_SZ_4K, T_SZ_4K, i, 0);
	coverage(ctx, "filled", &cs);
	if (cs.huge_coverage < 1)
		t_skip("no THP for a first touch here: %.3f", cs.huge_coverage);
	T_EQ(pthread_create(&th, NULL, cwriter_thread, w), 0);

	/* split: discards of one piece each */
	for (size_t i = 0; i < 4; i++)
		T_EQ(madvise(base + i * T_SZ_2M + hole[i] * T_SZ_4K, T_SZ_4K, MADV_DONTNEED), 0);
	T_CHECK(bad, *(volatile char *)(base + 2 * T_SZ_2M + hole[2] * T_SZ_4K) == 0,
		"discarded piece reads non-zero");
	t_fill(base + 3 * T_SZ_2M + hole[3] * T_SZ_4K, T_SZ_4K, 3 * 512 + hole[3], 77);
	/* split: a parent write after fork, with the child still there */
	T_EQ(pipe(pfd), 0);
	pid = fork();
	T_ASSERT(pid >= 0, "fork");
	if (!pid) {
		char x;

		close(pfd[1]);
		_exit(read(pfd[0], &x, 1) < 0);
	}
	close(pfd[0]);
	for (size_t i = 4; i < 6; i++)
		t_fill(base + i * T_SZ_2M + 64 * T_SZ_4K, T_SZ_4K, i * 512 + 64, 55);
	close(pfd[1]);
	T_EQ(waitpid(pid, &status, 0), pid);
	coverage(ctx, "split", &cs);
	T_CHECK(bad, cs.huge_coverage < 1, "nothing split");

	while (calls < 50 && left) {
		left = pmv_collapse(ctx, base, CP_PAGES * T_SZ_2M, 0);
		calls++;
		T_CHECK(bad, left >= 0, "pmv_collapse: %d (%s)", left, pmv_errmsg());
		if (left < 0)
			break;
	}
	kb = t_anon_huge_kb(base);
	coverage(ctx, "collapsed", &cs);
	printf("  pmv_collapse: %d call(s), %d left split; AnonHugePages %ld kB\n", calls, left, kb);
	T_CHECK(bad, left == 0, "%d pages left split after %d calls", left, calls);
	T_CHECK(bad, cs.huge_coverage == 1, "coverage %.3f", cs.huge_coverage);
	T_CHECK(bad, kb >= (long)(CP_PAGES * T_SZ_2M / 1024), "AnonHugePages %ld kB", kb);
	T_CHECK(bad, cs.collapsed >= 6, "collapsed %llu", (unsigned long long)cs.collapsed);

	atomic_store(&w->stop, 1);
	pthread_join(th, NULL);
	printf("  writer: %ld rounds\n", atomic_load(&w->rounds));
	for (size_t i = 0; i < CP_PIECES && bad < 8; i++) {
		size_t pg = i / 512, pc = i % 512;
		char *p = base + i * T_SZ_4K;
		long off;

		if (pc == 7)
			off = t_check(p, T_SZ_4K, i, 1000 + w->gen[pg]);
		else if (pg < 4 && pc == hole[pg] && pg != 3)
			off = memcmp(p, (char[T_SZ_4K]){ 0 }, T_SZ_4K) ? 0 : -1;
		else if (pg == 3 && pc == hole[3])
			off = t_check(p, T_SZ_4K, i, 77);
		else if (pg >= 4 && pg < 6 && pc == 64)
			off = t_check(p, T_SZ_4K, i, 55);
		else
			off = t_check(p, T_SZ_4K, i, 0);
		T_CHECK(bad, off < 0, "page %zu piece %zu: bad byte at %ld", pg, pc, off);
	}
	T_CHECK(bad, pmv_collapse(ctx, base, 1, 1) == -EINVAL, "flags accepted");
	T_CHECK(bad, pmv_collapse(ctx, base, 0, 0) == -EINVAL, "empty range accepted");
	T_CHECK(bad, pmv_collapse(ctx, (void *)4096, 4096, 0) == -EFAULT, "unmanaged range");
	t_destroy(ctx);
	free(w);
	return (int)bad;
}

/*
 * The same splits (discards; a parent write after fork), then nothing but
 * the policy (auto, 20 ms rounds, min residency 100 ms): it coalesces in
 * the background. Wait while it makes progress (collapsed grows) until all
 * eight pages are mapped (none parked for sampling) at coverage >= 0.99;
 * 10 s without progress fails. Data exact, the writer running throughout.
 */
static int test_policy_coalesces_split_pages(const struct t_case *c)
{
	struct pmv_policy_config pol = { .mode = PMV_POLICY_AUTO, .interval_ms = 20,
					 .min_residency_ms = 100 };
	struct pmv_ctx_stats cs;
	struct cwriter *w = calloc(1, sizeof(*w));
	uint64_t last = 0;
	double t0, progress;
	long bad = 0, polls = 0;
	int status, pfd[2];
	pmv_ctx *ctx;
	pthread_t th;
	char *base;
	pid_t pid;

	(void)c;
	if (t_control())
		return T_SUB_SKIP;
	T_ASSERT(w, "calloc");
	ctx = t_ctx_pol(2, NULL, 0, &pol);
	base = w->base = t_map(ctx, CP_PAGES * T_SZ_2M, 0, PMV_HUGE);
	for (size_t i = 0; i < CP_PIECES; i++)
		t_fill(base + i * T_SZ_4K, T_SZ_4K, i, 0);
	T_EQ(pthread_create(&th, NULL, cwriter_thread, w), 0);
	for (size_t i = 0; i < 4; i++)
		T_EQ(madvise(base + i * T_SZ_2M + (100 + i) * T_SZ_4K, T_SZ_4K, MADV_DONTNEED), 0);
	T_EQ(pipe(pfd), 0);
	pid = fork();
	T_ASSERT(pid >= 0, "fork");
	if (!pid) {
		char x;

		close(pfd[1]);
		_exit(read(pfd[0], &x, 1) < 0);
	}
	close(pfd[0]);
	for (size_t i = 4; i < 6; i++)
		t_fill(base + i * T_SZ_2M + 64 * T_SZ_4K, T_SZ_4K, i * 512 + 64, 55);
	close(pfd[1]);
	T_EQ(waitpid(pid, &status, 0), pid);
	coverage(ctx, "split", &cs);
	t0 = progress = t_now();
	for (;;) {
		T_EQ(pmv_ctx_stats(ctx, &cs), 0);
		if (cs.huge_bytes == CP_PAGES * T_SZ_2M && cs.huge_coverage >= 0.99)
			break;
		if (cs.collapsed != last) {
			last = cs.collapsed;
			progress = t_now();
			t_beat();
		}
		if (t_now() - progress > 10) {
			T_CHECK(bad, 0, "no progress for 10 s: coverage %.3f of %llu bytes, "
				"collapsed %llu", cs.huge_coverage,
				(unsigned long long)cs.huge_bytes, (unsigned long long)cs.collapsed);
			break;
		}
		polls++;
		usleep(20000);
	}
	coverage(ctx, "coalesced by the policy", &cs);
	printf("  after %.2f s (%ld polls), AnonHugePages %ld kB\n", t_now() - t0, polls,
	       t_anon_huge_kb(base));
	atomic_store(&w->stop, 1);
	pthread_join(th, NULL);
	for (size_t i = 0; i < CP_PIECES && bad < 8; i++) {
		size_t pg = i / 512, pc = i % 512;
		char *p = base + i * T_SZ_4K;
		long off;

		if (pc == 7)
			off = t_check(p, T_SZ_4K, i, 1000 + w->gen[pg]);
		else if (pg < 4 && pc == 100 + pg)
			off = memcmp(p, (char[T_SZ_4K]){ 0 }, T_SZ_4K) ? 0 : -1;
		else if (pg >= 4 && pg < 6 && pc == 64)
			off = t_check(p, T_SZ_4K, i, 55);
		else
			off = t_check(p, T_SZ_4K, i, 0);
		T_CHECK(bad, off < 0, "page %zu piece %zu: bad byte at %ld", pg, pc, off);
	}
	t_destroy(ctx);
	free(w);
	return (int)bad;
}

/*
 * Pool fragmentation, injected: every 4th first MADV_COLLAPSE of a 2 MB
 * pool page fails (PAGEMOVE_INJECT_THP_FAIL=4), as when the node has no
 * free 2 MB block. First touches and a migration of eight huge pages still
 * get THPs: the library compacts the node (root) and retries, or takes the
 * next slot. Counted per tier; every byte exact, every page AnonHugePages.
 */
static int test_pool_thp_failure_compacts_and_counts(const struct t_case *c)
{
	uint64_t fail = 0, compact = 0, ok = 0;
	void *pages[CP_PAGES];
	int to[CP_PAGES], st[CP_PAGES], ret;
	long bad = 0, kb;
	pmv_ctx *ctx;
	char *base;

	(void)c;
	if (t_control())
		return T_SUB_SKIP;
	setenv("PAGEMOVE_INJECT_THP_FAIL", "4", 1);
	ctx = ctx_off();
	base = t_map(ctx, CP_PAGES * T_SZ_2M, 0, PMV_HUGE);
	for (size_t i = 0; i < CP_PIECES; i++)
		t_fill(base + i * T_SZ_4K, T_SZ_4K, i, 3);
	for (size_t i = 0; i < CP_PAGES; i++)
		pages[i] = base + i * T_SZ_2M, to[i] = 1;
	ret = pmv_move_pages(ctx, CP_PAGES, pages, to, st, 0);
	T_CHECK(bad, ret == 0, "move: %d left (statuses %d %d %d %d %d %d %d %d)", ret, st[0], st[1],
		st[2], st[3], st[4], st[5], st[6], st[7]);
	for (int t = 0; t < 2; t++) {
		struct pmv_tier_stats ts;

		T_EQ(pmv_tier_stats(ctx, t, &ts), 0);
		printf("  tier %d: %llu collapse failures, %llu compactions, %llu made huge after one\n",
		       t, (unsigned long long)ts.thp_fail, (unsigned long long)ts.thp_compact,
		       (unsigned long long)ts.thp_compact_ok);
		fail += ts.thp_fail;
		compact += ts.thp_compact;
		ok += ts.thp_compact_ok;
	}
	kb = t_anon_huge_kb(base);
	printf("  AnonHugePages %ld kB\n", kb);
	T_CHECK(bad, fail > 0, "no injected failure counted");
	T_CHECK(bad, ok <= compact && compact <= fail, "counters %llu %llu %llu",
		(unsigned long long)fail, (unsigned long long)compact, (unsigned long long)ok);
	if (access("/proc/sys/vm/compact_memory", W_OK) == 0)
		T_CHECK(bad, compact > 0 && ok > 0, "root, but no compaction helped: %llu %llu",
			(unsigned long long)compact, (unsigned long long)ok);
	T_CHECK(bad, kb >= (long)(CP_PAGES * T_SZ_2M / 1024), "AnonHugePages %ld kB", kb);
	for (size_t i = 0; i < CP_PIECES; i++) {
		long off = t_check(base + i * T_SZ_4K, T_SZ_4K, i, 3);

		T_CHECK(bad, off < 0, "piece %zu: bad byte at %ld", i, off);
		if (bad > 4)
			break;
	}
	t_destroy(ctx);
	return (int)bad;
}

/*
 * A first touch with no THP to be had: the first 40 collapses of 2 MB
 * pool pages fail (PAGEMOVE_INJECT_THP_FAIL=1:40), so the first pages
 * touched get no huge page (four slots tried each, one compaction per
 * second) and are mapped as 4 KB pieces instead of SIGBUS. Then the pool
 * can make THPs again, and one pmv_collapse makes every page huge: coverage
 * 1, AnonHugePages, and every byte (written while in pieces) exact.
 */
static int test_first_touch_without_thp_pieces_then_collapse(const struct t_case *c)
{
	uint64_t pieces = 0;
	struct pmv_ctx_stats cs;
	long bad = 0, kb;
	pmv_ctx *ctx;
	char *base;
	int left = -1, calls = 0;

	(void)c;
	if (t_control())
		return T_SUB_SKIP;
	setenv("PAGEMOVE_INJECT_THP_FAIL", "1:40", 1);
	ctx = ctx_off();
	base = t_map(ctx, CP_PAGES * T_SZ_2M, 0, PMV_HUGE);
	for (size_t i = 0; i < CP_PIECES; i++)
		t_fill(base + i * T_SZ_4K, T_SZ_4K, i, 5);
	for (int t = 0; t < 2; t++) {
		struct pmv_tier_stats ts;

		T_EQ(pmv_tier_stats(ctx, t, &ts), 0);
		printf("  tier %d: %llu first touches as 4 KB pieces, %llu collapse failures\n", t,
		       (unsigned long long)ts.thp_pieces, (unsigned long long)ts.thp_fail);
		pieces += ts.thp_pieces;
	}
	coverage(ctx, "touched", &cs);
	T_CHECK(bad, pieces > 0, "no first touch fell back to pieces");
	T_CHECK(bad, cs.huge_bytes == CP_PAGES * T_SZ_2M, "huge_bytes %llu",
		(unsigned long long)cs.huge_bytes);
	while (left && calls < 20) {
		left = pmv_collapse(ctx, base, CP_PAGES * T_SZ_2M, 0);
		calls++;
		if (left < 0)
			break;
	}
	kb = t_anon_huge_kb(base);
	coverage(ctx, "collapsed", &cs);
	printf("  pmv_collapse: %d call(s), %d left; AnonHugePages %ld kB\n", calls, left, kb);
	T_CHECK(bad, left == 0, "%d left after %d calls (%s)", left, calls, pmv_errmsg());
	T_CHECK(bad, cs.huge_coverage == 1, "coverage %.3f", cs.huge_coverage);
	T_CHECK(bad, kb >= (long)(CP_PAGES * T_SZ_2M / 1024), "AnonHugePages %ld kB", kb);
	for (size_t i = 0; i < CP_PIECES; i++) {
		long off = t_check(base + i * T_SZ_4K, T_SZ_4K, i, 5);

		T_CHECK(bad, off < 0, "piece %zu: bad byte at %ld", i, off);
		if (bad > 4)
			break;
	}
	t_destroy(ctx);
	return (int)bad;
}

/*
 * pmv_collapse beside a fault in progress: a thread first-touches 4 KB
 * pages of another region while every 4th fault's handler holds its page
 * for HOLD_US (PAGEMOVE_INJECT_HOLD_US), and the test splits a huge page
 * (one piece discarded) and collapses it, again and again. The collapse's
 * return times are printed (p50, p99, max; nothing asserts a time): its
 * discard of the emptied range is a REMOVE event that a handler must read.
 * Every call ends with the page huge or left split (busy), and the bytes
 * are exact.
 */
static int test_collapse_beside_a_held_fault(const struct t_case *c)
{
	size_t n = 64, nlat = 0, cap = 1 << 18, nbusy = 0;
	double *lat = malloc(cap * sizeof(*lat)), *busy = malloc(cap * sizeof(*busy));
	struct toucher t = { .psz = T_SZ_4K, .n = n };
	long bad = 0;
	pmv_ctx *ctx;
	char *huge;
	pthread_t th;

	(void)c;
	if (t_control())
		return T_SUB_SKIP;
	T_ASSERT(lat && busy, "malloc");
	setenv("PAGEMOVE_INJECT_HOLD_US", "100000", 1);
	ctx = ctx_off();
	t.base = t_map(ctx, n * T_SZ_4K, 0, 0);
	huge = t_map(ctx, T_SZ_2M, 0, PMV_HUGE);
	for (size_t i = 0; i < 512; i++)
		t_fill(huge + i * T_SZ_4K, T_SZ_4K, i, 21);
	T_EQ(pthread_create(&th, NULL, touch_thread, &t), 0);
	for (size_t k = 0; atomic_load(&t.done) < (long)n && nlat < cap && !bad; k++) {
		size_t piece = 1 + k % 511;
		int left = 1;

		T_EQ(madvise(huge + piece * T_SZ_4K, T_SZ_4K, MADV_DONTNEED), 0);
		/* busy (the discard's zap watch, a page lock) until it is not */
		while (left == 1 && nlat < cap && atomic_load(&t.done) < (long)n) {
			double t0 = now_us(), dt;

			left = pmv_collapse(ctx, huge, T_SZ_2M, 0);
			dt = now_us() - t0;
			if (!left)
				lat[nlat++] = dt;
			else if (nbusy < cap)
				busy[nbusy++] = dt;
			T_CHECK(bad, left == 0 || left == 1, "pmv_collapse: %d (%s)", left,
				pmv_errmsg());
		}
		T_CHECK(bad, memcmp(huge + piece * T_SZ_4K, (char[T_SZ_4K]){ 0 }, T_SZ_4K) == 0,
			"piece %zu not zero after its discard", piece);
		/* rewritten: the next split is a discard of known bytes again */
		t_fill(huge + piece * T_SZ_4K, T_SZ_4K, piece, 21);
	}
	pthread_join(th, NULL);
	print_lat("pmv_collapse that made a split page huge, beside held faults, return time",
		  lat, nlat);
	print_lat("pmv_collapse that left it split (busy), return time", busy, nbusy);
	/* no fault held now: it collapses (a few calls: the discard's zap watch) */
	for (int k = 0; k < 200; k++) {
		int left = pmv_collapse(ctx, huge, T_SZ_2M, 0);

		T_CHECK(bad, left == 0 || left == 1, "pmv_collapse: %d (%s)", left, pmv_errmsg());
		if (left != 1)
			break;
		T_CHECK(bad, k < 199, "still split after the faults");
		usleep(10000);
	}
	T_CHECK(bad, t_anon_huge_kb(huge) >= 2048, "not a THP: AnonHugePages %ld kB",
		t_anon_huge_kb(huge));
	for (size_t i = 0; i < 512 && !bad; i++) {
		long off = t_check(huge + i * T_SZ_4K, T_SZ_4K, i, 21);

		T_CHECK(bad, off < 0, "piece %zu: bad byte at %ld", i, off);
	}
	for (size_t i = 0; i < n && !bad; i++) {
		long off = t_check(t.base + i * T_SZ_4K, T_SZ_4K, i, 14);

		T_CHECK(bad, off < 0, "page %zu: bad byte at %ld", i, off);
	}
	t_destroy(ctx);
	free(lat);
	free(busy);
	return (int)bad;
}

/*
 * The coalescing rate, printed (the figure; not asserted): 64
 * pages of 2 MB (128 MB), each split by the discard of one piece, then
 * one pmv_collapse over all of them, timed. 0 left, data exact.
 */
static int test_collapse_rate_printed(const struct t_case *c)
{
	size_t n = 64, pieces = n * 512;
	struct pmv_ctx_stats cs;
	long bad = 0;
	double t0, dt;
	pmv_ctx *ctx;
	char *base;
	int left;

	(void)c;
	if (t_control())
		return T_SUB_SKIP;
	ctx = ctx_off();
	base = t_map(ctx, n * T_SZ_2M, 0, PMV_HUGE);
	for (size_t i = 0; i < pieces; i++)
		t_fill(base + i * T_SZ_4K, T_SZ_4K, i, 9);
	for (size_t i = 0; i < n; i++)
		T_EQ(madvise(base + i * T_SZ_2M + (i % 512) * T_SZ_4K, T_SZ_4K, MADV_DONTNEED), 0);
	coverage(ctx, "split", &cs);
	t0 = t_now();
	left = pmv_collapse(ctx, base, n * T_SZ_2M, 0);
	dt = t_now() - t0;
	coverage(ctx, "collapsed", &cs);
	printf("  pmv_collapse of %zu split pages (%zu MB): %.1f ms, %.2f GB/s, %d left\n", n,
	       n * 2, dt * 1e3, (double)(n * T_SZ_2M - (size_t)(left > 0 ? left : 0) * T_SZ_2M) /
	       dt / 1e9, left);
	/* a busy machine may have no THP for a moment (thp_fail): a few more calls */
	for (int k = 0; k < 20 && left > 0; k++) {
		usleep(50000);
		left = pmv_collapse(ctx, base, n * T_SZ_2M, 0);
	}
	if (cs.collapsed < n) {
		struct pmv_tier_stats ts;

		T_EQ(pmv_tier_stats(ctx, 0, &ts), 0);
		printf("  first call short: tier 0 thp_fail %llu, thp_compact %llu; now %d left\n",
		       (unsigned long long)ts.thp_fail, (unsigned long long)ts.thp_compact, left);
	}
	T_CHECK(bad, left == 0, "%d left", left);
	for (size_t i = 0; i < pieces && bad < 4; i++) {
		size_t pg = i / 512, pc = i % 512;
		char *p = base + i * T_SZ_4K;
		long off = pc == pg % 512 ? (memcmp(p, (char[T_SZ_4K]){ 0 }, T_SZ_4K) ? 0 : -1)
					  : t_check(p, T_SZ_4K, i, 9);

		T_CHECK(bad, off < 0, "page %zu piece %zu: bad byte at %ld", pg, pc, off);
	}
	t_destroy(ctx);
	return (int)bad;
}

/*
 * The program's MADV_DONTNEED of pieces while pmv_collapse works on their
 * page: the collapse's own discard of the page is in flight, and the
 * program's REMOVE event inside it must not be taken for ours (it was:
 * the pieces read their old data; 4 runs in 200 of t_madvise's pieces
 * while policy_on). Rounds of: fill a huge page, split it (one piece
 * discarded), then pmv_collapse in this thread while another discards a
 * run of 4 pieces. The run and the split piece read zeros, every other
 * piece its bytes.
 */
struct piece_discarder {
	char *p;
	size_t off;
	unsigned delay_us;	/* into the collapse, so that rounds cover all of it */
	atomic_int go, done;
};

static void *piece_discard(void *arg)
{
	struct piece_discarder *d = arg;
	double t0;

	while (!atomic_load(&d->go))
		;
	for (t0 = now_us(); now_us() - t0 < d->delay_us;)
		;
	if (madvise(d->p + d->off, 4 * T_SZ_4K, MADV_DONTNEED))
		atomic_store(&d->done, -errno);
	else
		atomic_store(&d->done, 1);
	return NULL;
}

static int test_discards_during_collapse_read_zeros(const struct t_case *c)
{
	int rounds = t_rounds(400), bad_rounds = 0, collapsed = 0;
	pmv_ctx *ctx;
	char *base;
	long bad = 0;

	(void)c;
	if (t_control())
		return T_SUB_SKIP;
	ctx = ctx_off();
	base = t_map(ctx, T_SZ_2M, 0, PMV_HUGE);
	for (int r = 0; r < rounds; r++) {
		struct piece_discarder d = { .p = base };
		size_t run = 8 + (size_t)(r * 37) % 500;
		int pbad = 0, ret;
		pthread_t th;

		for (size_t k = 0; k < 512; k++)
			t_fill(base + k * T_SZ_4K, T_SZ_4K, (size_t)r * 512 + k, 5);
		T_EQ(madvise(base + 3 * T_SZ_4K, T_SZ_4K, MADV_DONTNEED), 0);
		d.off = run * T_SZ_4K;
		d.delay_us = (unsigned)(r % 64) * 30;
		T_EQ(pthread_create(&th, NULL, piece_discard, &d), 0);
		atomic_store(&d.go, 1);
		ret = pmv_collapse(ctx, base, T_SZ_2M, 0);
		pthread_join(th, NULL);
		if (ret == -EOPNOTSUPP) {
			pmv_destroy(ctx);
			t_skip("pmv_collapse: %s (no PT_RECLAIM)", pmv_strerror(ret));
		}
		collapsed += ret >= 0;
		T_CHECK(bad, atomic_load(&d.done) == 1, "round %d: madvise: %s", r,
			strerror(-atomic_load(&d.done)));
		for (size_t k = 0; k < 512; k++) {
			char *q = base + k * T_SZ_4K;
			bool zero = k == 3 || (k >= run && k < run + 4);
			bool wrong = zero ? !t_is_zero((const uint8_t *)q, T_SZ_4K) :
					    t_check(q, T_SZ_4K, (size_t)r * 512 + k, 5) >= 0;

			if (wrong && pbad++ < 2)
				printf("  round %d: piece %zu (%s) wrong\n", r, k,
				       zero ? "discarded: old data" : "kept");
		}
		bad_rounds += pbad > 0;
		t_beat();
	}
	printf("  %d rounds, %d collapse calls returned >= 0, %d rounds wrong\n", rounds, collapsed,
	       bad_rounds);
	T_CHECK(bad, bad_rounds == 0, "%d of %d rounds read wrong bytes", bad_rounds, rounds);
	pmv_destroy(ctx);
	return (int)bad;
}

int main(void)
{
	struct t_suite s;

	t_suite_init(&s);
	for (int h = 0; h < 2; h++) {
		T_CASE(&s, test_nonblock_uncontended_moves, -1, h);
		T_CASE(&s, test_nonblock_fault_in_progress_eagain, -1, h);
		T_CASE(&s, test_nonblock_under_load_statuses_and_data, -1, h);
	}
	T_CASE(&s, test_collapse_split_pages_coverage_and_data, -1, 1);
	T_CASE(&s, test_policy_coalesces_split_pages, -1, 1);
	T_CASE(&s, test_pool_thp_failure_compacts_and_counts, -1, 1);
	T_CASE(&s, test_first_touch_without_thp_pieces_then_collapse, -1, 1);
	T_CASE(&s, test_collapse_rate_printed, -1, 1);
	T_CASE(&s, test_collapse_beside_a_held_fault, -1, 1);
	T_CASE(&s, test_discards_during_collapse_read_zeros, -1, 1);
	return t_suite_end(&s);
}
