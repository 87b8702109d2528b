// SPDX-License-Identifier: MIT
/*
 * pagemove bench faults: what an access that reaches pagemove's fault
 * handling costs, against what the kernel's own equivalent costs, each
 * pair measured interleaved in one run so that the machine's noise hits
 * both. The method is in docs/BENCH.md ("Faults").
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pagemove.h"
#include "bench.h"
#include "../common/mode.h"
#include "../common/opt.h"
#include "../common/threads.h"

#define SZ_4K	4096UL
#define SZ_2M	(2UL << 20)

enum { FT_4K, FT_2M, SAMPLE, MIGWAIT, NCASES };
static const char *const case_name[NCASES] = {
	"fault_first_touch_4k", "fault_first_touch_2m", "fault_sample", "fault_migration_wait",
};

struct samples {
	double *v;		/* microseconds */
	size_t n, cap;
};

struct result {
	struct samples m, k;	/* pagemove's, the kernel's */
	int skipped;
	const char *why;
};

static struct result res[NCASES];
static long bad_bytes;

static void push(struct samples *s, double us)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? 2 * s->cap : 4096;
		double *nv = realloc(s->v, ncap * sizeof(*nv));

		if (!nv)
			return;		/* a lost sample, not a wrong one */
		s->v = nv;
		s->cap = ncap;
	}
	s->v[s->n++] = us;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(const struct samples *s, double p)
{
	return s->n ? s->v[(size_t)(p * (s->n - 1) + 0.5)] : 0;
}

static inline double now_us(void)
{
	return bench_now() * 1e6;
}

/* A page must read as zero but for the byte the touch wrote, which reads 1. */
static void check_zero(const unsigned char *p, size_t len, size_t written)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (i == written))
			bad_bytes++;
}

static void *map_aligned(size_t len, size_t align)
{
	char *p = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t a;

	if (p == MAP_FAILED)
		return NULL;
	a = ((uintptr_t)p + align - 1) & ~(align - 1);
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	munmap((char *)a + len, (uintptr_t)p + align - a);
	return (void *)a;
}

/*
 * First touch: a write to each page of a fresh managed range and of a
 * fresh anonymous one (THP for 2 MB pages), page by page in turn.
 */
static int first_touch(pmv_ctx *ctx, struct result *r, size_t len, int rounds, int huge)
{
	size_t psz = huge ? SZ_2M : SZ_4K, n = len / psz;

	for (int round = 0; round < rounds; round++) {
		unsigned char *m = pmv_mmap(ctx, len, 0, huge ? PMV_HUGE : 0);
		unsigned char *k = map_aligned(len, psz);

		if (!m && huge && errno == EOPNOTSUPP) {
			munmap(k, len);
			r->skipped = 1;
			r->why = "transparent huge pages are disabled";
			return 0;
		}
		if (!m || !k) {
			fprintf(stderr, "pagemove bench faults: mapping %zu MB: %s\n", len >> 20,
				strerror(errno));
			return -1;
		}
		madvise(k, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		for (size_t i = 0; i < n; i++) {
			size_t off = (i * 64) % psz;	/* not always the first line */
			double t0 = now_us(), t1, t2;

			*(volatile unsigned char *)(m + i * psz + off) = 1;
			t1 = now_us();
			*(volatile unsigned char *)(k + i * psz + off) = 1;
			t2 = now_us();
			push(&r->m, t1 - t0);
			push(&r->k, t2 - t1);
		}
		for (size_t i = 0; i < n; i++)
			check_zero(m + i * psz, psz, (i * 64) % psz);
		pmv_munmap(ctx, m, len);
		munmap(k, len);
	}
	return 0;
}

/*
 * Sampling: the policy parks one page at a time (tracking only) and waits
 * for its next access. This thread watches which page of a small region
 * is unmapped (mincore) and reads it. The kernel's equivalent maps an
 * existing page back on access: a read of a shared memfd page after
 * MADV_DONTNEED zapped its PTE (a minor fault; the page stays cached).
 */
static int sample(pmv_ctx *ctx, struct result *r, size_t want, double secs)
{
	size_t npages = 256, len = npages * SZ_4K;
	unsigned char *m = pmv_mmap(ctx, len, 0, 0), vec[256];
	int mfd = memfd_create("pmv-bench", MFD_CLOEXEC);
	unsigned char *k;
	double end;
	int err;

	if (!m || mfd < 0 || ftruncate(mfd, SZ_4K)) {
		fprintf(stderr, "pagemove bench faults: sample setup: %s\n", strerror(errno));
		return -1;
	}
	k = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (k == MAP_FAILED) {
		fprintf(stderr, "pagemove bench faults: memfd: %s\n", strerror(errno));
		return -1;
	}
	memset(k, 7, SZ_4K);
	for (size_t i = 0; i < npages; i++)
		memset(m + i * SZ_4K, (int)(i & 0xff) | 1, SZ_4K);
	err = pmv_tier_policy(ctx, PMV_POLICY_TRACK);
	if (err) {
		fprintf(stderr, "pagemove bench faults: pmv_tier_policy: %s\n", pmv_strerror(err));
		return -1;
	}
	end = bench_now() + secs;
	while (r->m.n < want && bench_now() < end) {
		if (mincore(m, len, vec))
			break;
		for (size_t i = 0; i < npages; i++) {
			double t0, t1, t2;
			unsigned char c;

			if (vec[i] & 1)
				continue;
			madvise(k, SZ_4K, MADV_DONTNEED);
			t0 = now_us();
			c = *(volatile unsigned char *)(m + i * SZ_4K + 64);
			t1 = now_us();
			c ^= *(volatile unsigned char *)(k + 64);
			t2 = now_us();
			if (c != (((i & 0xff) | 1) ^ 7))
				bad_bytes++;
			push(&r->m, t1 - t0);
			push(&r->k, t2 - t1);
		}
	}
	pmv_tier_policy(ctx, PMV_POLICY_OFF);
	for (size_t i = 0; i < npages; i++)
		for (size_t b = 0; b < SZ_4K; b++)
			bad_bytes += m[i * SZ_4K + b] != ((i & 0xff) | 1);
	munmap(k, SZ_4K);
	close(mfd);
	pmv_munmap(ctx, m, len);
	if (!r->m.n) {
		r->skipped = 1;
		r->why = "no page was parked for sampling (user-mode-only userfaultfd?)";
	}
	return 0;
}

/* ---- migration wait ------------------------------------------------------ */

struct mover {
	pmv_ctx *ctx;
	void *page;
	atomic_int stop;
	atomic_int pause, paused;	/* the baseline read: the page must not move */
	long moves, errors;
};

static void *mover(void *arg)
{
	struct mover *mv = arg;
	int to = 1, st;

	while (!atomic_load_explicit(&mv->stop, memory_order_relaxed)) {
		if (atomic_load(&mv->pause)) {
			/* between two moves: the page is at its address */
			atomic_store(&mv->paused, 1);
			while (atomic_load(&mv->pause))
				sched_yield();
			atomic_store(&mv->paused, 0);
			continue;
		}
		if (pmv_move_pages(mv->ctx, 1, &mv->page, &to, &st, 0) || st != to)
			mv->errors++;
		else
			mv->moves++;
		to ^= 1;
	}
	return NULL;
}

/*
 * One 4 KB page moves between the tiers, over and over, from another
 * thread. This thread reads it whenever mincore says it is out of its
 * address (a migration holds it), and times that read; then, with the
 * mover paused between two moves, it times a read of another line of the
 * same page: what the access costs when the page is not moving. (Without
 * the pause that read could meet the next move too.)
 */
static int migration_wait(pmv_ctx *ctx, struct result *r, size_t want, double secs)
{
	unsigned char *m = pmv_mmap(ctx, SZ_4K, 0, 0), vec;
	struct mover mv = { .ctx = ctx, .page = m };
	pthread_t th;
	double end;

	if (!m) {
		fprintf(stderr, "pagemove bench faults: mapping: %s\n", strerror(errno));
		return -1;
	}
	memset(m, 0x5a, SZ_4K);
	if (pthread_create(&th, NULL, mover, &mv)) {
		fprintf(stderr, "pagemove bench faults: pthread_create failed\n");
		return -1;
	}
	end = bench_now() + secs;
	while (r->m.n < want && bench_now() < end) {
		double t0, t1;
		unsigned char c;

		if (mincore(m, SZ_4K, &vec) || (vec & 1))
			continue;
		t0 = now_us();
		c = *(volatile unsigned char *)(m + 64);
		t1 = now_us();
		push(&r->m, t1 - t0);
		/* the baseline: the mover paused between two moves, the page in place */
		atomic_store(&mv.pause, 1);
		while (!atomic_load(&mv.paused))
			sched_yield();
		t0 = now_us();
		c ^= *(volatile unsigned char *)(m + 128);
		t1 = now_us();
		atomic_store(&mv.pause, 0);
		push(&r->k, t1 - t0);
		if (c)
			bad_bytes++;
	}
	atomic_store(&mv.stop, 1);
	pthread_join(th, NULL);
	for (size_t b = 0; b < SZ_4K; b++)
		bad_bytes += m[b] != 0x5a;
	if (mv.errors)
		fprintf(stderr, "  (%ld of %ld moves failed)\n", mv.errors, mv.errors + mv.moves);
	pmv_munmap(ctx, m, SZ_4K);
	if (!r->m.n) {
		r->skipped = 1;
		r->why = "no read met the page out of its address";
	}
	return 0;
}

/* The library's fault threads, by name: what is running now. */
static int fault_threads(void)
{
	return cli_threads("pmv-fault", NULL, 0);
}

static int usage(void)
{
	fputs("Usage: pagemove bench faults [--json] [--quick] [--mb MB]\n"
"\n"
"Times single accesses that pagemove's fault handling serves, each case\n"
"interleaved with the kernel's equivalent in the same run: the first touch\n"
"of fresh 4 KB pages and 2 MB pages (THP for the kernel), an access to a\n"
"page parked for sampling (the kernel: a minor fault on a memfd page), and\n"
"an access that meets a migrating 4 KB page (the kernel: the same access,\n"
"the page not moving). Reports p50, p99 and the maximum in microseconds.\n"
"\n"
"  -j, --json     print one JSON object instead of a table\n"
"  -q, --quick    fewer samples: a smoke test, not a measurement\n"
"  -m, --mb MB    MiB of fresh pages per round, an even number 4..4096\n"
"                 (default 64)\n"
"  -h, --help     show this help\n"
"\n"
"Exit status:\n"
"  0  every case measured or skipped with its reason\n"
"  1  no context or memory, or a byte read wrong\n"
"  2  usage error (unknown option, bad value)\n", stdout);
	return 0;
}

int cmd_bench_faults(int argc, char **argv)
{
	struct pmv_tier_config tc[2] = {
		{ .name = "fast", .node = PMV_NODE_ANY }, { .name = "slow", .node = PMV_NODE_ANY },
	};
	/* off but for the sampling case, which turns tracking on itself */
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF, .interval_ms = 20,
					 .track_cpu_permille = 20 };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .policy = &pol };
	size_t mb = 64, nsample = 4000;
	int json = 0, quick = 0, opt, rounds4k = 2, rounds2m = 2, ret = 0, threads;
	double secs = 5;
	struct pmv_ctx_stats cs;
	uint64_t ahead0, ahead[NCASES] = { 0 };
	pmv_ctx *ctx;

	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' }, { "quick", no_argument, 0, 'q' },
		{ "mb", required_argument, 0, 'm' }, { "help", no_argument, 0, 'h' }, { 0 }
	};
	struct opt_parse op;
	unsigned long mbv = mb;

	opt_begin(&op, "bench faults");
	while ((opt = getopt_long(argc, argv, ":jqm:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = 1; break;
		case 'q': quick = 1; break;
		case 'm':
			if (opt_ulong(&op, "--mb", optarg, 4, 4096, &mbv) && mbv % 2)
				opt_error(&op, "--mb: %lu is not an even number", mbv);
			break;
		case 'h': return usage();
		default: opt_getopt_error(&op, opt, argv); break;
		}
	}
	opt_no_args(&op, argc, argv);
	if (opt_end(&op))
		return OPT_EXIT_USAGE;
	mb = mbv;
	if (quick) {
		mb = 8;
		rounds4k = rounds2m = 1;
		nsample = 100;
		secs = 1;
	}
	unsetenv("PAGEMOVE_POLICY");	/* the bench turns tracking on itself */
	ctx = pmv_create(&cfg);
	if (!ctx) {
		fprintf(stderr, "pagemove bench faults: %s\n", pmv_errmsg());
		return errno == ENODEV || errno == EINVAL ? 2 : 1;
	}
	{
		struct pmv_ctx_stats cs;
		char why[512];

		pmv_ctx_stats(ctx, &cs);
		fprintf(stderr, "pagemove bench faults: %s\n", mode_explain(&cs, why, sizeof(why)));
	}
	threads = fault_threads();
	fprintf(stderr, "pagemove bench faults: %zu MB per round of 4 KB pages, %s; "
		"%d fault-handler thread%s\n", mb,
		quick ? "quick (not a measurement)" : "full", threads, threads == 1 ? "" : "s");

	/* how many of each case's touches found their page mapped ahead */
	pmv_ctx_stats(ctx, &cs);
	ahead0 = cs.faults_ahead;
	if (first_touch(ctx, &res[FT_4K], mb << 20, rounds4k, 0))
		ret = 1;
	pmv_ctx_stats(ctx, &cs);
	ahead[FT_4K] = cs.faults_ahead - ahead0;
	ahead0 = cs.faults_ahead;
	if (!ret && first_touch(ctx, &res[FT_2M], (quick ? 16 : 4 * mb) << 20, rounds2m, 1))
		ret = 1;
	pmv_ctx_stats(ctx, &cs);
	ahead[FT_2M] = cs.faults_ahead - ahead0;
	if (!ret && sample(ctx, &res[SAMPLE], nsample, secs))
		ret = 1;
	if (!ret && migration_wait(ctx, &res[MIGWAIT], nsample, secs))
		ret = 1;
	pmv_ctx_stats(ctx, &cs);
	threads = fault_threads();
	pmv_destroy(ctx);
	if (ret)
		return ret;

	for (int c = 0; c < NCASES; c++) {
		qsort(res[c].m.v, res[c].m.n, sizeof(double), cmp_double);
		qsort(res[c].k.v, res[c].k.n, sizeof(double), cmp_double);
		if (res[c].skipped)
			fprintf(stderr, "  %-22s skipped: %s\n", case_name[c], res[c].why);
		else
			fprintf(stderr, "  %-22s %6zu samples: p50 %.1f us (kernel %.2f), "
				"p99 %.1f us (kernel %.2f), max %.0f us\n", case_name[c],
				res[c].m.n, pct(&res[c].m, 0.5), pct(&res[c].k, 0.5),
				pct(&res[c].m, 0.99), pct(&res[c].k, 0.99),
				res[c].m.n ? res[c].m.v[res[c].m.n - 1] : 0);
	}
	fprintf(stderr, "  tracking CPU %.2f %% of a core; %d fault-handler thread%s at the end; "
		"first touches mapped ahead (no fault): %llu of %zu 4 KB, %llu of %zu 2 MB\n",
		100 * cs.track_cpu_fraction, threads, threads == 1 ? "" : "s",
		(unsigned long long)ahead[FT_4K], res[FT_4K].m.n,
		(unsigned long long)ahead[FT_2M], res[FT_2M].m.n);
	if (json) {
		int first = 1;

		printf("{\"faults\": [\n");
		for (int c = 0; c < NCASES; c++) {
			const struct result *r = &res[c];

			if (r->skipped) {
				/* listed, with why: a reader sees what is missing */
				printf("%s  {\"name\": \"%s\", \"skipped\": true, \"reason\": \"%s\"}",
				       first ? "" : ",\n", case_name[c], r->why);
				first = 0;
				continue;
			}
			printf("%s  {\"name\": \"%s\", \"p50_us\": %.2f, \"p99_us\": %.2f, "
			       "\"max_us\": %.2f, \"kernel_p50_us\": %.2f, \"kernel_p99_us\": %.2f}",
			       first ? "" : ",\n", case_name[c], pct(&r->m, 0.5), pct(&r->m, 0.99),
			       r->m.v[r->m.n - 1], pct(&r->k, 0.5), pct(&r->k, 0.99));
			first = 0;
		}
		printf("\n]}\n");
	} else {
		printf("%-22s %7s %9s %9s %9s %10s %10s %7s %7s\n", "fault", "samples", "p50 us",
		       "p99 us", "max us", "kernel p50", "kernel p99", "x p50", "x p99");
		for (int c = 0; c < NCASES; c++) {
			const struct result *r = &res[c];
			double kp50 = pct(&r->k, 0.5), kp99 = pct(&r->k, 0.99);

			if (r->skipped) {
				printf("%-22s skipped: %s\n", case_name[c], r->why);
				continue;
			}
			printf("%-22s %7zu %9.1f %9.1f %9.0f %10.2f %10.2f %7.1f %7.1f\n",
			       case_name[c], r->m.n, pct(&r->m, 0.5), pct(&r->m, 0.99),
			       r->m.v[r->m.n - 1], kp50, kp99, kp50 > 0 ? pct(&r->m, 0.5) / kp50 : 0,
			       kp99 > 0 ? pct(&r->m, 0.99) / kp99 : 0);
		}
	}
	for (int c = 0; c < NCASES; c++) {
		free(res[c].m.v);
		free(res[c].k.v);
	}
	if (bad_bytes) {
		fprintf(stderr, "pagemove bench faults: DATA CORRUPTED: %ld bad bytes\n", bad_bytes);
		return 1;
	}
	return 0;
}
