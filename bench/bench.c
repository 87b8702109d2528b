/* SPDX-License-Identifier: MIT */
/*
 * pagemove bench: every figure in one run, on the same buffers. Each case
 * runs with the default engine (auto) and with each fixed one, at the size
 * it names (warm: fits the pools; bulk: 2 GB or 4x the last-level cache),
 * and is reported as GB/s and as a ratio to the limit of its size: the
 * best of glibc memcpy and a streaming-store copy between THP-backed
 * buffers, measured right before and right after it (A, B, A), so that
 * noise hits both. docs/BENCH.md explains the method.
 */
#include <errno.h>
#include <getopt.h>
#include <immintrin.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pagemove.h"
#include "bench.h"
#include "../common/mode.h"
#include "../common/opt.h"

#define SZ_4K	4096UL
#define SZ_2M	(2UL << 20)

enum { SZ_WARM, SZ_BULK, SZ_NR };
static const char *const size_names[SZ_NR] = { "warm", "bulk" };

struct result {
	const char *name, *engine;
	int size;
	double gbps, ratio;
};

static struct result results[96];
static int nresults;
/*
 * Each figure also goes to stderr as it is measured, for a run whose
 * results go to a file; on a terminal the table (or JSON) on stdout shows
 * them, and printing both would show every figure twice.
 */
static int verbose;

static void add(const char *name, const char *engine, int size, double bytes, double secs,
		double limit)
{
	struct result *r = &results[nresults++];

	r->name = name;
	r->engine = engine;
	r->size = size;
	r->gbps = bytes / secs / 1e9;
	r->ratio = r->gbps / limit;
	if (verbose)
		fprintf(stderr, "  %-28s %-4s %-8s %7.2f GB/s  %5.2f of the limit\n", name,
			size_names[size], engine, r->gbps, r->ratio);
}

/* ---- memcpy: the limit --------------------------------------------------- */

struct mc_arg {
	char *dst, *src;
	size_t len;
	pthread_barrier_t *bar;
	double t0, t1;
};

static void *mc_thread(void *p)
{
	struct mc_arg *a = p;

	pthread_barrier_wait(a->bar);
	a->t0 = bench_now();
	memcpy(a->dst, a->src, a->len);
	a->t1 = bench_now();
	return NULL;
}

/*
 * Best of `reps` copies of len bytes split over n threads, in GB/s. Wall
 * time runs from the first thread's start to the last one's end: the main
 * thread may wake from the barrier after the workers are done.
 */
static double memcpy_bw(char *dst, char *src, size_t len, int n, int reps)
{
	double best = 0;

	for (int r = 0; r < reps; r++) {
		pthread_t th[16];
		struct mc_arg args[16];
		pthread_barrier_t bar;
		double first = 1e30, last = 0;

		pthread_barrier_init(&bar, NULL, n);
		for (int i = 0; i < n; i++) {
			args[i] = (struct mc_arg){ dst + i * (len / n), src + i * (len / n),
						   len / n, &bar, 0, 0 };
			pthread_create(&th[i], NULL, mc_thread, &args[i]);
		}
		for (int i = 0; i < n; i++) {
			pthread_join(th[i], NULL);
			if (args[i].t0 < first)
				first = args[i].t0;
			if (args[i].t1 > last)
				last = args[i].t1;
		}
		pthread_barrier_destroy(&bar);
		if (len / (last - first) / 1e9 > best)
			best = len / (last - first) / 1e9;
	}
	return best;
}

/*
 * The bench's own streaming-store copy, for the limit: independent of the
 * library's engines, which it judges.
 */
__attribute__((target("avx2")))
static void stream_copy(char *dst, const char *src, size_t len)
{
	for (size_t i = 0; i < len; i += 128) {
		__m256i a = _mm256_load_si256((const __m256i *)(src + i));
		__m256i b = _mm256_load_si256((const __m256i *)(src + i + 32));
		__m256i c = _mm256_load_si256((const __m256i *)(src + i + 64));
		__m256i d = _mm256_load_si256((const __m256i *)(src + i + 96));

		_mm256_stream_si256((__m256i *)(dst + i), a);
		_mm256_stream_si256((__m256i *)(dst + i + 32), b);
		_mm256_stream_si256((__m256i *)(dst + i + 64), c);
		_mm256_stream_si256((__m256i *)(dst + i + 96), d);
	}
	_mm_sfence();
}

/* limits[size]: every measurement of it, for the median in the output */
static double limits[SZ_NR][256];
static int nlimits[SZ_NR];

/* The limit for len bytes: the better of one memcpy and one streaming copy. */
static double limit_bw(char *dst, char *src, size_t len, int size)
{
	double t0 = bench_now(), best;

	memcpy(dst, src, len);
	best = len / (bench_now() - t0) / 1e9;
	if (__builtin_cpu_supports("avx2")) {
		double g;

		t0 = bench_now();
		stream_copy(dst, src, len);
		g = len / (bench_now() - t0) / 1e9;
		best = g > best ? g : best;
	}
	if (nlimits[size] < 256)
		limits[size][nlimits[size]++] = best;
	return best;
}

/* ---- migrations ---------------------------------------------------------- */

static pmv_ctx *ctx;
/* pages a move or exchange failed: their figures would be no measurement */
static atomic_ulong failed_pages;

/* Move npages pages (addresses in pg) to `to`, `per_call` at a time. */
static double move_all(void **pg, size_t npages, int to, size_t per_call)
{
	int *tiers = malloc(per_call * sizeof(int)), *st = malloc(per_call * sizeof(int));
	double t0 = bench_now();

	for (size_t i = 0; i < per_call; i++)
		tiers[i] = to;
	for (size_t i = 0; i < npages; i += per_call) {
		size_t n = npages - i < per_call ? npages - i : per_call;

		if (pmv_move_pages(ctx, n, pg + i, tiers, st, 0)) {
			for (size_t k = 0; k < n; k++)
				if (st[k] != to && atomic_fetch_add(&failed_pages, 1) < 10)
					fprintf(stderr, "bench: page %p: %s\n", pg[i + k],
						pmv_strerror(st[k]));
		}
	}
	free(tiers);
	free(st);
	return bench_now() - t0;
}

/* Round trips: time only the moves, `rounds` of them, alternating tiers. */
static double move_rounds(void **pg, size_t npages, size_t per_call, int rounds)
{
	double t = 0;

	for (int r = 0; r < rounds; r++)
		t += move_all(pg, npages, (r + 1) & 1, per_call);
	return t;
}

struct par_arg {
	void **pg;
	size_t n, per_call;
	int rounds;
	pthread_barrier_t *bar;
	double secs;
};

static void *par_mover(void *p)
{
	struct par_arg *a = p;

	pthread_barrier_wait(a->bar);
	a->secs = move_rounds(a->pg, a->n, a->per_call, a->rounds);
	return NULL;
}

/* nthreads callers, each moving its own share concurrently: wall time. */
static double move_parallel(void **pg, size_t npages, size_t per_call, int rounds, int nthreads)
{
	pthread_t th[16];
	struct par_arg args[16];
	pthread_barrier_t bar;
	double t0;

	pthread_barrier_init(&bar, NULL, nthreads + 1);
	for (int i = 0; i < nthreads; i++) {
		args[i] = (struct par_arg){ pg + i * (npages / nthreads), npages / nthreads,
					    per_call, rounds, &bar, 0 };
		pthread_create(&th[i], NULL, par_mover, &args[i]);
	}
	pthread_barrier_wait(&bar);
	t0 = bench_now();
	for (int i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	return bench_now() - t0;
}

static double exchange_rounds(void **a, void **b, size_t npairs, size_t per_call, int rounds)
{
	int *st = malloc(per_call * sizeof(int));
	double t0 = bench_now();

	for (int r = 0; r < rounds; r++)
		for (size_t i = 0; i < npairs; i += per_call) {
			size_t n = npairs - i < per_call ? npairs - i : per_call;

			if (pmv_exchange_pages(ctx, n, a + i, b + i, st, 0))
				for (size_t k = 0; k < n; k++)
					if (st[k] && atomic_fetch_add(&failed_pages, 1) < 10)
						fprintf(stderr, "bench: exchange %p: %s\n", a[i + k],
							pmv_strerror(st[k]));
		}
	free(st);
	return bench_now() - t0;
}

/* ---- coalescing ---------------------------------------------------------- */

/*
 * The coalescing rate (issue 14): each warm 2 MB page is split by the
 * MADV_DONTNEED of one 4 KB piece (a different one per page), then one
 * pmv_collapse over the region makes them huge again, timed; `rounds`
 * times. Bytes are those of the pages collapsed (2 MB each), as a move's
 * are. -1 when the kernel cannot map a collapsed page as one PMD (no
 * PT_RECLAIM): *why says so.
 */
static double collapse_rounds(char *base, size_t npages, int rounds, double *bytes,
			      long *left_out, const char **why)
{
	double t = 0;
	long left = 0;

	*bytes = 0;
	for (int r = 0; r < rounds; r++) {
		double t0;
		int ret;

		for (size_t i = 0; i < npages; i++)
			madvise(base + i * SZ_2M + ((i + r * 7) % 512) * SZ_4K, SZ_4K, MADV_DONTNEED);
		t0 = bench_now();
		ret = pmv_collapse(ctx, base, npages * SZ_2M, 0);
		t += bench_now() - t0;
		if (ret < 0) {
			*why = ret == -EOPNOTSUPP ? "the kernel has no PT_RECLAIM" : pmv_errmsg();
			return -1;
		}
		/* a page skipped as busy stays split: its bytes do not count */
		*bytes += (double)(npages - (size_t)ret) * SZ_2M;
		left += ret;
	}
	*left_out = left;
	return t;
}

/* ---- writer stall -------------------------------------------------------- */

static atomic_int stall_stop;
static double *stalls;
static size_t nstalls, cap_stalls;

static void *stall_writer(void *p)
{
	volatile uint64_t *w = p;
	uint64_t v = 0;

	while (!atomic_load_explicit(&stall_stop, memory_order_relaxed)) {
		double t0 = bench_now(), t;

		*w = ++v;	/* blocks while its page is write-protected or unmapped */
		t = bench_now() - t0;
		if (t > 2e-6 && nstalls < cap_stalls)
			stalls[nstalls++] = t * 1e6;
	}
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
	if (!n)
		return 0;
	return v[(size_t)(p * (n - 1) + 0.5)];
}

/*
 * --kernel: the kernel's move_pages(2) on the same buffers, between the
 * two tiers' nodes, for the record (one address per huge page, 4 KB pages
 * in the same random order and batches of 512). Each page goes to the
 * other node and back; the pages' tiers are unchanged afterwards.
 */
static void kernel_runs(void **hp, size_t nhuge, void **sp, size_t nsmall, int n0, int n1,
			double limit)
{
	int *nodes = malloc(512 * sizeof(int)), *st = malloc(512 * sizeof(int));
	struct { void **pg; size_t n, per, psz; const char *name; } runs[2] = {
		{ hp, nhuge, 16, SZ_2M, "kernel_move_pages_2m" },
		{ sp, nsmall, 512, SZ_4K, "kernel_move_pages_4k_random" },
	};

	for (int r = 0; r < 2; r++) {
		double t = 0;
		long fails = 0;

		for (int dir = 0; dir < 2; dir++) {
			double t0 = bench_now();

			for (size_t i = 0; i < runs[r].n; i += runs[r].per) {
				size_t k = runs[r].n - i < runs[r].per ? runs[r].n - i : runs[r].per;

				for (size_t j = 0; j < k; j++)
					nodes[j] = dir ? n0 : n1;
				if (move_pages(0, k, runs[r].pg + i, nodes, st, MPOL_MF_MOVE) < 0)
					fails += k;
				for (size_t j = 0; j < k; j++)
					fails += st[j] < 0;
			}
			t += bench_now() - t0;
		}
		add(runs[r].name, "kernel", SZ_WARM, 2.0 * runs[r].n * runs[r].psz, t, limit);
		if (fails)
			fprintf(stderr, "  (%ld kernel move_pages failures)\n", fails);
	}
	free(nodes);
	free(st);
}

static int usage(void)
{
	fputs("Usage: pagemove bench [--json] [--quick] [--mb MB] [--bulk-mb MB] [--hog]\n"
"                      [--nodes A,B] [--kernel]\n"
"       pagemove bench tiering [OPTIONS]\n"
"       pagemove bench faults [OPTIONS]\n"
"       pagemove bench far [OPTIONS]\n"
"       pagemove bench run [OPTIONS]\n"
"\n"
"Measures migration of 2 MB and 4 KB pages (single, batched, parallel),\n"
"exchange, coalescing (pmv_collapse of split 2 MB pages) and the writer\n"
"stall, in one run. Every case runs with the\n"
"default engine (auto) and with each fixed one, at a warm size (it fits\n"
"the pools) or at bulk size (2 GB, or 4x the last-level cache), and is\n"
"reported as GB/s and as a ratio to the limit of that size: the best of\n"
"memcpy and a streaming-store copy, measured right before and after it.\n"
"\n"
"  -j, --json        print one JSON object instead of a table\n"
"  -q, --quick       32 MiB warm, 64 MiB bulk, one round trip: a smoke\n"
"                    test, not a measurement\n"
"  -m, --mb MB       warm size: MiB of 2 MB pages, 32..8192 (default 256)\n"
"  -b, --bulk-mb MB  bulk size, 64..16384 (default 2048, or 4x the LLC)\n"
"  -H, --hog         run a CPU hog on the last CPU meanwhile\n"
"  -n, --nodes A,B   bind the fast and slow tiers to NUMA nodes A and B\n"
"  -k, --kernel      also time move_pages(2) between nodes A and B on the\n"
"                    same buffers (needs --nodes with two nodes)\n"
"  -h, --help        show this help\n"
"\n"
"'pagemove bench tiering --help' describes the tiering policy bench,\n"
"'pagemove bench faults --help' the fault latency bench,\n"
"'pagemove bench far --help' far tiers against the kernel's swap,\n"
"'pagemove bench run --help' pagemove run on python3 and redis.\n"
"\n"
"Exit status:\n"
"  0  every figure measured\n"
"  1  no context or memory (pmv_create or pmv_mmap failed), or a page move failed\n"
"  2  usage error (unknown option, bad value, a node that does not exist)\n",
	      stdout);
	return 0;
}

/* ---- the cases ------------------------------------------------------------ */

struct bufs {
	void **hw, **hb, **sp;	/* warm 2 MB pages, bulk 2 MB pages, 4 KB in random order */
	size_t nhw, nhb, ns;
	int rounds, rounds_bulk, nthreads;
};

struct bcase {
	const char *name;
	int size;
	/* returns the seconds, *bytes what they moved */
	double (*run)(const struct bufs *b, double *bytes);
	/* before and after the case's engines: its pages' tiers (exchange) */
	void (*setup)(const struct bufs *b), (*teardown)(const struct bufs *b);
};

static double c_2m_warm(const struct bufs *b, double *bytes)
{
	*bytes = (double)b->rounds * b->nhw * SZ_2M;
	return move_rounds(b->hw, b->nhw, 16, b->rounds);
}

static double c_2m_bulk(const struct bufs *b, double *bytes)
{
	*bytes = (double)b->rounds_bulk * b->nhb * SZ_2M;
	return move_rounds(b->hb, b->nhb, 16, b->rounds_bulk);
}

static double c_2m_single(const struct bufs *b, double *bytes)
{
	*bytes = (double)b->rounds * b->nhw * SZ_2M;
	return move_rounds(b->hw, b->nhw, 1, b->rounds);
}

static double c_4k_batch(const struct bufs *b, double *bytes)
{
	*bytes = (double)b->rounds * b->ns * SZ_4K;
	return move_rounds(b->sp, b->ns, 512, b->rounds);
}

static double c_4k_parallel(const struct bufs *b, double *bytes)
{
	*bytes = (double)b->rounds * b->ns * SZ_4K;
	return move_parallel(b->sp, b->ns, 512, b->rounds, b->nthreads);
}

/* exchange: pairs across the tiers; bytes of both pages count */
static void x2m_setup(const struct bufs *b)
{
	move_all(b->hw, b->nhw / 2, 1, 16);
}

static void x2m_teardown(const struct bufs *b)
{
	move_all(b->hw, b->nhw / 2, 0, 16);
}

static double c_x2m(const struct bufs *b, double *bytes)
{
	*bytes = (double)b->rounds * b->nhw * SZ_2M;
	return exchange_rounds(b->hw, b->hw + b->nhw / 2, b->nhw / 2, 16, b->rounds);
}

static void x4k_setup(const struct bufs *b)
{
	move_all(b->sp, b->ns / 2, 1, 512);
}

static void x4k_teardown(const struct bufs *b)
{
	move_all(b->sp, b->ns / 2, 0, 512);
}

static double c_x4k(const struct bufs *b, double *bytes)
{
	*bytes = (double)b->rounds * b->ns * SZ_4K;
	return exchange_rounds(b->sp, b->sp + b->ns / 2, b->ns / 2, 256, b->rounds);
}

static const struct bcase cases[] = {
	{ "migrate_2m_warm", SZ_WARM, c_2m_warm, NULL, NULL },
	{ "migrate_2m_bulk", SZ_BULK, c_2m_bulk, NULL, NULL },
	{ "migrate_2m_single_1t", SZ_WARM, c_2m_single, NULL, NULL },
	{ "migrate_4k_random_batch", SZ_WARM, c_4k_batch, NULL, NULL },
	{ "migrate_4k_random_parallel", SZ_WARM, c_4k_parallel, NULL, NULL },
	{ "exchange_2m_batch", SZ_WARM, c_x2m, x2m_setup, x2m_teardown },
	{ "exchange_4k_batch", SZ_WARM, c_x4k, x4k_setup, x4k_teardown },
};

/* auto first: what users get; then each fixed engine */
static const struct { int e; const char *name; } engines[] = {
	{ PMV_COPY_AUTO, "auto" }, { PMV_COPY_MEMCPY, "memcpy" }, { PMV_COPY_NT, "nt" },
	{ PMV_COPY_PARALLEL, "parallel" }, { PMV_COPY_OFFLOAD, "offload" },
};
#define NENGINES	(sizeof(engines) / sizeof(engines[0]))
#define NCASES		(sizeof(cases) / sizeof(cases[0]))

/* The CPU hog (--hog): a child spinning on the last CPU. */
static pid_t hog_start(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	pid_t pid, parent = getpid();

	if (n < 2) {
		fprintf(stderr, "pagemove bench: --hog: one CPU, no other to hog; running without\n");
		return 0;
	}
	pid = fork();
	if (pid == 0) {
		cpu_set_t set;
		volatile unsigned long x = 0;

		/* the bench's error paths return without killing it */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(0);
		CPU_ZERO(&set);
		CPU_SET(n - 1, &set);
		sched_setaffinity(0, sizeof(set), &set);
		for (;;)
			x++;
	}
	return pid > 0 ? pid : 0;
}

static double median(double *v, int n)
{
	double c[256];

	if (!n)
		return 0;
	memcpy(c, v, n * sizeof(*v));
	qsort(c, n, sizeof(*c), cmp_double);
	return c[n / 2];
}

/* A THP-backed, populated anonymous buffer. */
static char *thp_buf(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, MADV_HUGEPAGE);
	memset(p, 5, len);
	return p;
}

/* n pointers to the pages of a region, in order */
static void **page_list(char *base, size_t n, size_t psz)
{
	void **v = calloc(n, sizeof(void *));

	for (size_t i = 0; v && i < n; i++)
		v[i] = base + i * psz;
	return v;
}

static long llc_bytes(void)
{
	long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);

	return l3 > 0 ? l3 : 0;
}

int cmd_bench(int argc, char **argv)
{
	struct pmv_tier_config tc[2] = {
		{ .name = "fast", .node = PMV_NODE_ANY }, { .name = "slow", .node = PMV_NODE_ANY },
	};
	/* the policy must not move pages behind the measurements' back */
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .policy = &pol };
	unsigned long mb = 256, bulk_mb = 2048;
	int json = 0, opt, kernel = 0, n0 = -1, n1 = -1, hog = 0, quick = 0;
	double mc1, mcn, copy2m_us, lim[SZ_NR];
	char *hw, *hb, *s, *bufa, *bufb;
	size_t len[SZ_NR];
	struct bufs b = { .rounds = 4, .rounds_bulk = 2 };
	double auto_vs_best[NCASES];
	double collapse_gbps = 0, collapse_ratio = 0;
	const char *collapse_why = NULL;
	long collapse_left = 0;
	pid_t hog_pid = 0;

	struct opt_parse op;
	struct pmv_ctx_stats cs;
	int mb_set = 0, bulk_set = 0;
	char why[512];

	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' }, { "quick", no_argument, 0, 'q' },
		{ "mb", required_argument, 0, 'm' }, { "bulk-mb", required_argument, 0, 'b' },
		{ "hog", no_argument, 0, 'H' }, { "help", no_argument, 0, 'h' },
		{ "kernel", no_argument, 0, 'k' }, { "nodes", required_argument, 0, 'n' }, { 0 }
	};
	if (argc > 1 && !strcmp(argv[1], "tiering"))
		return cmd_bench_tiering(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "faults"))
		return cmd_bench_faults(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "far"))
		return cmd_bench_far(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "run"))
		return cmd_bench_run(argc - 1, argv + 1);
	verbose = !isatty(STDOUT_FILENO);
	opt_begin(&op, "bench");
	while ((opt = getopt_long(argc, argv, ":jqm:b:Hhkn:", opts, NULL)) != -1) {
		switch (opt) {
		case 'k': kernel = 1; break;
		case 'n': opt_node_pair(&op, "--nodes", optarg, numa_max_node(), &n0, &n1); break;
		case 'j': json = 1; break;
		case 'q': quick = 1; break;
		case 'H': hog = 1; break;
		case 'm': mb_set = opt_ulong(&op, "--mb", optarg, 32, 8192, &mb); break;
		case 'b': bulk_set = opt_ulong(&op, "--bulk-mb", optarg, 64, 16384, &bulk_mb); break;
		case 'h': return usage();
		default: opt_getopt_error(&op, opt, argv); break;
		}
	}
	opt_no_args(&op, argc, argv);
	if (kernel && (n0 < 0 || n0 == n1))
		opt_error(&op, "--kernel needs --nodes A,B with two different nodes");
	if (opt_end(&op))
		return OPT_EXIT_USAGE;
	if (quick) {
		b.rounds = b.rounds_bulk = 2;
		if (!mb_set)
			mb = 32;
		if (!bulk_set)
			bulk_mb = 64;
	} else if (!bulk_set && (unsigned long)(4 * llc_bytes() >> 20) > bulk_mb) {
		bulk_mb = 4 * llc_bytes() >> 20;
	}
	if (n0 >= 0) {
		tc[0].node = n0;
		tc[1].node = n1;
	}
	/*
	 * Every measurement names its engine, and auto is 0, which
	 * PAGEMOVE_COPY would fill in. (The policy is set off above, which no
	 * variable overrides.)
	 */
	unsetenv("PAGEMOVE_COPY");
	b.nthreads = sysconf(_SC_NPROCESSORS_ONLN);
	if (b.nthreads > 16)
		b.nthreads = 16;
	/*
	 * Before anything is mapped: a child forked later would share every
	 * page with this process, and shared pages do not move (-EACCES).
	 */
	if (hog)
		hog_pid = hog_start();
	ctx = pmv_create(&cfg);
	if (!ctx) {
		fprintf(stderr, "pagemove bench: %s\n", pmv_errmsg());
		return errno == ENODEV || errno == EINVAL ? 2 : 1;
	}
	pmv_ctx_stats(ctx, &cs);
	fprintf(stderr, "pagemove bench: %s\n", mode_explain(&cs, why, sizeof(why)));
	len[SZ_WARM] = mb << 20;
	len[SZ_BULK] = bulk_mb << 20;
	b.nhw = len[SZ_WARM] / SZ_2M;
	b.nhb = len[SZ_BULK] / SZ_2M;
	b.ns = len[SZ_WARM] / 4 / SZ_4K;	/* a quarter: 4 KB moves are slower */
	hw = pmv_mmap(ctx, len[SZ_WARM], 0, PMV_HUGE);
	hb = pmv_mmap(ctx, len[SZ_BULK], 0, PMV_HUGE);
	s = pmv_mmap(ctx, b.ns * SZ_4K, 0, 0);
	/* the limit's buffers: bulk size, their start for warm */
	bufa = thp_buf(len[SZ_BULK] > len[SZ_WARM] ? len[SZ_BULK] : len[SZ_WARM]);
	bufb = thp_buf(len[SZ_BULK] > len[SZ_WARM] ? len[SZ_BULK] : len[SZ_WARM]);
	b.hw = hw ? page_list(hw, b.nhw, SZ_2M) : NULL;
	b.hb = hb ? page_list(hb, b.nhb, SZ_2M) : NULL;
	b.sp = s ? page_list(s, b.ns, SZ_4K) : NULL;
	if (!b.hw || !b.hb || !b.sp || !bufa || !bufb) {
		fprintf(stderr, "pagemove bench: setup: %s\n", strerror(errno));
		return 1;
	}
	memset(hw, 1, len[SZ_WARM]);
	memset(hb, 6, len[SZ_BULK]);
	memset(s, 2, b.ns * SZ_4K);
	/* 4 KB pages in random order (fixed seed), so no two are neighbours */
	{
		unsigned seed = 12345;

		for (size_t i = b.ns - 1; i > 0; i--) {
			size_t j = rand_r(&seed) % (i + 1);
			void *x = b.sp[i];

			b.sp[i] = b.sp[j];
			b.sp[j] = x;
		}
	}
	fprintf(stderr, "pagemove bench: %lu MB warm and %lu MB bulk of 2 MB pages, %zu MB of "
		"4 KB pages, %d threads%s\n", mb, bulk_mb, b.ns * SZ_4K >> 20, b.nthreads,
		hog_pid ? ", a CPU hog on the last CPU" : "");
	/* for the record, and the thread scaling of a plain copy */
	mc1 = memcpy_bw(bufb, bufa, len[SZ_WARM], 1, 3);
	mcn = memcpy_bw(bufb, bufa, len[SZ_WARM], b.nthreads, 3);
	{
		double best = 1e9;

		for (size_t i = 0; i < b.nhw && i < 64; i++) {
			double t0 = bench_now();

			memcpy(bufb + i * SZ_2M, bufa + i * SZ_2M, SZ_2M);
			if (bench_now() - t0 < best)
				best = bench_now() - t0;
		}
		copy2m_us = best * 1e6;
	}
	if (verbose)
		fprintf(stderr, "  memcpy 1 thread %.2f GB/s, %d threads %.2f GB/s, 2 MB in %.0f us\n",
			mc1, b.nthreads, mcn, copy2m_us);

	/* warm the pools: one round trip, as a steady state would have */
	move_rounds(b.hw, b.nhw, 16, 2);
	move_rounds(b.sp, b.ns, 512, 2);

	for (size_t c = 0; c < NCASES; c++) {
		double best_fixed = 0, auto_gbps = 0;

		if (cases[c].setup)
			cases[c].setup(&b);
		for (size_t e = 0; e < NENGINES; e++) {
			int sz = cases[c].size;
			double before, after, t, bytes;

			if (pmv_set_copy_engine(ctx, engines[e].e)) {
				fprintf(stderr, "pagemove bench: engine %s: %s\n", engines[e].name,
					pmv_errmsg());
				continue;
			}
			before = limit_bw(bufb, bufa, len[sz], sz);
			t = cases[c].run(&b, &bytes);
			after = limit_bw(bufb, bufa, len[sz], sz);
			add(cases[c].name, engines[e].name, sz, bytes, t, (before + after) / 2);
			if (engines[e].e == PMV_COPY_AUTO)
				auto_gbps = results[nresults - 1].gbps;
			else if (results[nresults - 1].gbps > best_fixed)
				best_fixed = results[nresults - 1].gbps;
		}
		if (cases[c].teardown)
			cases[c].teardown(&b);
		auto_vs_best[c] = best_fixed ? auto_gbps / best_fixed : 0;
	}
	pmv_set_copy_engine(ctx, PMV_COPY_AUTO);
	for (int z = 0; z < SZ_NR; z++)
		lim[z] = median(limits[z], nlimits[z]);

	if (kernel)
		kernel_runs(b.hw, b.nhw, b.sp, b.ns, n0, n1, lim[SZ_WARM]);

	/* coalescing: split warm pages made huge again, against the warm limit */
	{
		double before = limit_bw(bufb, bufa, len[SZ_WARM], SZ_WARM), bytes, t;

		t = collapse_rounds(hw, b.nhw, b.rounds, &bytes, &collapse_left, &collapse_why);
		if (t > 0 && bytes > 0) {
			double after = limit_bw(bufb, bufa, len[SZ_WARM], SZ_WARM);

			collapse_gbps = bytes / t / 1e9;
			collapse_ratio = collapse_gbps / ((before + after) / 2);
		} else if (!collapse_why) {
			collapse_why = "no page was collapsed";
		}
		if (verbose && collapse_why)
			fprintf(stderr, "  collapse_2m: skipped: %s\n", collapse_why);
		else if (verbose)
			fprintf(stderr, "  %-28s %-4s %-8s %7.2f GB/s  %5.2f of the limit (%ld left split)\n",
				"collapse_2m", "warm", "auto", collapse_gbps, collapse_ratio,
				collapse_left);
	}

	/* writer stall: one writer on a 2 MB page that moves back and forth */
	{
		pthread_t w;
		int to = 0, st;
		void *pg = b.hw[0];

		cap_stalls = 4096;
		stalls = calloc(cap_stalls, sizeof(double));
		pthread_create(&w, NULL, stall_writer, hw);
		usleep(1000);
		for (int i = 0; i < 200; i++) {
			to ^= 1;
			pmv_move_pages(ctx, 1, &pg, &to, &st, 0);
			usleep(200);
		}
		atomic_store(&stall_stop, 1);
		pthread_join(w, NULL);
		qsort(stalls, nstalls, sizeof(double), cmp_double);
	}
	if (hog_pid) {
		kill(hog_pid, SIGKILL);
		waitpid(hog_pid, NULL, 0);
	}
	if (verbose)
		fprintf(stderr, "  writer stall: %zu stalls, p50 %.0f us, p99 %.0f us, max %.0f us "
			"(2 x copy_2m_1t = %.0f us)\n", nstalls, pct(stalls, nstalls, 0.5),
			pct(stalls, nstalls, 0.99), nstalls ? stalls[nstalls - 1] : 0, 2 * copy2m_us);

	if (json) {
		printf("{\n  \"memcpy_1t_gbps\": %.3f,\n  \"memcpy_all_gbps\": %.3f,\n"
		       "  \"limit_warm_gbps\": %.3f,\n  \"limit_bulk_gbps\": %.3f,\n"
		       "  \"warm_mb\": %lu,\n  \"bulk_mb\": %lu,\n  \"hog\": %s,\n"
		       "  \"threads\": %d,\n  \"copy_2m_1t_us\": %.1f,\n"
		       "  \"mode\": \"%s\",\n  \"mode_why\": \"%s\",\n  \"results\": [\n",
		       mc1, mcn, lim[SZ_WARM], lim[SZ_BULK], mb, bulk_mb, hog_pid ? "true" : "false",
		       b.nthreads, copy2m_us, mode_name(&cs), mode_why_key(&cs));
		for (int i = 0; i < nresults; i++)
			printf("    {\"name\": \"%s\", \"gbps\": %.3f, \"ratio\": %.3f, "
			       "\"engine\": \"%s\", \"size\": \"%s\"}%s\n",
			       results[i].name, results[i].gbps, results[i].ratio, results[i].engine,
			       size_names[results[i].size], i + 1 < nresults ? "," : "");
		printf("  ],\n  \"auto_vs_best\": [\n");
		for (size_t c = 0; c < NCASES; c++)
			printf("    {\"name\": \"%s\", \"ratio\": %.3f}%s\n", cases[c].name,
			       auto_vs_best[c], c + 1 < NCASES ? "," : "");
		if (collapse_why)
			printf("  ],\n  \"collapse_2m_gbps\": null,\n  \"collapse_2m_ratio\": null,\n"
			       "  \"collapse_2m_skipped\": \"%s\",\n", collapse_why);
		else
			printf("  ],\n  \"collapse_2m_gbps\": %.3f,\n  \"collapse_2m_ratio\": %.3f,\n"
			       "  \"collapse_2m_left\": %ld,\n", collapse_gbps, collapse_ratio,
			       collapse_left);
		printf("  \"writer_stall_p50_us\": %.1f,\n  \"writer_stall_p99_us\": %.1f,\n"
		       "  \"writer_stall_max_us\": %.1f,\n  \"writer_stalls\": %zu\n}\n",
		       pct(stalls, nstalls, 0.5), pct(stalls, nstalls, 0.99),
		       nstalls ? stalls[nstalls - 1] : 0, nstalls);
	} else {
		printf("%s\n", why);
		printf("limit (best of memcpy and streaming stores, THP buffers): warm %lu MB %.2f "
		       "GB/s, bulk %lu MB %.2f GB/s%s\n", mb, lim[SZ_WARM], bulk_mb, lim[SZ_BULK],
		       hog_pid ? "; a CPU hog on the last CPU" : "");
		printf("%-28s %-5s %-9s %9s %9s\n", "benchmark", "size", "engine", "GB/s", "ratio");
		for (int i = 0; i < nresults; i++)
			printf("%-28s %-5s %-9s %9.2f %9.2f\n", results[i].name,
			       size_names[results[i].size], results[i].engine, results[i].gbps,
			       results[i].ratio);
		printf("auto against the best fixed engine:");
		for (size_t c = 0; c < NCASES; c++)
			printf(" %s %.2f%s", cases[c].name, auto_vs_best[c], c + 1 < NCASES ? "," : "\n");
		if (collapse_why)
			printf("collapse_2m: skipped: %s\n", collapse_why);
		else
			printf("collapse_2m (split 2 MB pages made huge by pmv_collapse): %.2f GB/s, "
			       "%.2f of the warm limit, %ld left split\n", collapse_gbps,
			       collapse_ratio, collapse_left);
		printf("copy_2m_1t_us %.0f; writer stall p50 %.0f us, p99 %.0f us, max %.0f us\n",
		       copy2m_us, pct(stalls, nstalls, 0.5), pct(stalls, nstalls, 0.99),
		       nstalls ? stalls[nstalls - 1] : 0);
	}
	free(stalls);
	free(b.hw);
	free(b.hb);
	free(b.sp);
	munmap(bufa, len[SZ_BULK] > len[SZ_WARM] ? len[SZ_BULK] : len[SZ_WARM]);
	munmap(bufb, len[SZ_BULK] > len[SZ_WARM] ? len[SZ_BULK] : len[SZ_WARM]);
	pmv_destroy(ctx);
	if (failed_pages) {
		fprintf(stderr, "pagemove bench: %lu page moves failed (the first 10 are above): "
			"the figures are not valid\n", (unsigned long)failed_pages);
		return 1;
	}
	return 0;
}
