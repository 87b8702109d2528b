/* SPDX-License-Identifier: MIT */
/*
 * pagemove bench: every figure in one run, on the same buffers, each as
 * GB/s and as a ratio to memcpy measured in this run with the same number
 * of threads. docs/BENCH.md explains the method.
 */
#include <errno.h>
#include <getopt.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "pagemove.h"
#include "bench.h"
#include "../common/mode.h"
#include "../common/opt.h"

#define SZ_4K	4096UL
#define SZ_2M	(2UL << 20)

struct result {
	const char *name;
	double gbps, ratio;
};

static struct result results[16];
static int nresults;
/*
 * Each figure also goes to stderr as it is measured, for a run whose
 * results go to a file; on a terminal the table (or JSON) on stdout shows
 * them, and printing both would show every figure twice.
 */
static int verbose;

static void add(const char *name, double bytes, double secs, double base)
{
	struct result *r = &results[nresults++];

	r->name = name;
	r->gbps = bytes / secs / 1e9;
	r->ratio = r->gbps / base;
	if (verbose)
		fprintf(stderr, "  %-28s %7.2f GB/s  %5.2f of memcpy\n", name, r->gbps, r->ratio);
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

/* ---- migrations ---------------------------------------------------------- */

static pmv_ctx *ctx;

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
				if (st[k] != to)
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
					if (st[k])
						fprintf(stderr, "bench: exchange %p: %s\n", a[i + k],
							pmv_strerror(st[k]));
		}
	free(st);
	return bench_now() - t0;
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
			double mc1)
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
		add(runs[r].name, 2.0 * runs[r].n * runs[r].psz, t, mc1);
		if (fails)
			fprintf(stderr, "  (%ld kernel move_pages failures)\n", fails);
	}
	free(nodes);
	free(st);
}

static int usage(void)
{
	fputs("Usage: pagemove bench [--json] [--quick] [--mb MB] [--nodes A,B] [--kernel]\n"
"       pagemove bench tiering [OPTIONS]\n"
"       pagemove bench faults [OPTIONS]\n"
"\n"
"Measures memcpy, migration of 2 MB and 4 KB pages (single, batched,\n"
"parallel), exchange and the writer stall, in one run, each as GB/s and as\n"
"a ratio to memcpy measured in the same run.\n"
"\n"
"  -j, --json        print one JSON object instead of a table\n"
"  -q, --quick       32 MiB and two round trips: a smoke test, not a\n"
"                    measurement\n"
"  -m, --mb MB       MiB of 2 MB pages, 32..8192 (default 256)\n"
"  -n, --nodes A,B   bind the fast and slow tiers to NUMA nodes A and B\n"
"  -k, --kernel      also time move_pages(2) between nodes A and B on the\n"
"                    same buffers (needs --nodes with two nodes)\n"
"  -h, --help        show this help\n"
"\n"
"'pagemove bench tiering --help' describes the tiering policy bench,\n"
"'pagemove bench faults --help' the fault latency bench.\n"
"\n"
"Exit status:\n"
"  0  every figure measured\n"
"  1  no context or memory (pmv_create or pmv_mmap failed)\n"
"  2  usage error (unknown option, bad value, a node that does not exist)\n",
	      stdout);
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	struct pmv_tier_config tc[2] = {
		{ .name = "fast", .node = PMV_NODE_ANY }, { .name = "slow", .node = PMV_NODE_ANY },
	};
	/* the policy must not move pages behind the measurements' back */
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .policy = &pol };
	unsigned long mb = 256;
	size_t nhuge, nsmall;
	int json = 0, rounds = 4, opt, nthreads, kernel = 0, n0 = -1, n1 = -1;
	double mc1, mcn, copy2m_us, t;
	char *h, *s, *bufa, *bufb;
	void **hp, **sp, **xa, **xb;

	struct opt_parse op;
	struct pmv_ctx_stats cs;
	int mb_set = 0;
	char why[512];

	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' }, { "quick", no_argument, 0, 'q' },
		{ "mb", required_argument, 0, 'm' }, { "help", no_argument, 0, 'h' },
		{ "kernel", no_argument, 0, 'k' }, { "nodes", required_argument, 0, 'n' }, { 0 }
	};
	if (argc > 1 && !strcmp(argv[1], "tiering"))
		return cmd_bench_tiering(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "faults"))
		return cmd_bench_faults(argc - 1, argv + 1);
	verbose = !isatty(STDOUT_FILENO);
	opt_begin(&op, "bench");
	while ((opt = getopt_long(argc, argv, ":jqm:hkn:", opts, NULL)) != -1) {
		switch (opt) {
		case 'k': kernel = 1; break;
		case 'n': opt_node_pair(&op, "--nodes", optarg, numa_max_node(), &n0, &n1); break;
		case 'j': json = 1; break;
		case 'q': rounds = 2; break;
		case 'm': mb_set = opt_ulong(&op, "--mb", optarg, 32, 8192, &mb); break;
		case 'h': return usage();
		default: opt_getopt_error(&op, opt, argv); break;
		}
	}
	opt_no_args(&op, argc, argv);
	if (kernel && (n0 < 0 || n0 == n1))
		opt_error(&op, "--kernel needs --nodes A,B with two different nodes");
	if (opt_end(&op))
		return OPT_EXIT_USAGE;
	if (rounds == 2 && !mb_set)
		mb = 32;	/* --quick */
	if (n0 >= 0) {
		tc[0].node = n0;
		tc[1].node = n1;
	}
	/*
	 * Every measurement names its engine, and the warm-up runs with auto,
	 * which is 0: PAGEMOVE_COPY would fill it in. (The policy is set off
	 * above, which no variable overrides.)
	 */
	unsetenv("PAGEMOVE_COPY");
	nthreads = sysconf(_SC_NPROCESSORS_ONLN);
	if (nthreads > 16)
		nthreads = 16;
	ctx = pmv_create(&cfg);
	if (!ctx) {
		fprintf(stderr, "pagemove bench: %s\n", pmv_errmsg());
		return errno == ENODEV || errno == EINVAL ? 2 : 1;
	}
	pmv_ctx_stats(ctx, &cs);
	fprintf(stderr, "pagemove bench: %s\n", mode_explain(&cs, why, sizeof(why)));
	nhuge = (mb << 20) / SZ_2M;
	nsmall = (mb << 20) / 4 / SZ_4K;	/* a quarter: 4 KB moves are slower */
	h = pmv_mmap(ctx, mb << 20, 0, PMV_HUGE);
	s = pmv_mmap(ctx, nsmall * SZ_4K, 0, 0);
	bufa = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bufb = mmap(NULL, mb << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	hp = calloc(nhuge, sizeof(void *));
	sp = calloc(nsmall, sizeof(void *));
	if (!h || !s || bufa == MAP_FAILED || bufb == MAP_FAILED || !hp || !sp) {
		fprintf(stderr, "pagemove bench: setup: %s\n", strerror(errno));
		return 1;
	}
	memset(h, 1, mb << 20);
	memset(s, 2, nsmall * SZ_4K);
	memset(bufa, 3, mb << 20);
	memset(bufb, 4, mb << 20);
	for (size_t i = 0; i < nhuge; i++)
		hp[i] = h + i * SZ_2M;
	/* 4 KB pages in random order (fixed seed), so no two are neighbours */
	for (size_t i = 0; i < nsmall; i++)
		sp[i] = s + i * SZ_4K;
	{
		unsigned seed = 12345;

		for (size_t i = nsmall - 1; i > 0; i--) {
			size_t j = rand_r(&seed) % (i + 1);
			void *x = sp[i];

			sp[i] = sp[j];
			sp[j] = x;
		}
	}

	fprintf(stderr, "pagemove bench: %lu MB of 2 MB pages, %zu MB of 4 KB pages, %d threads\n",
		mb, nsmall * SZ_4K >> 20, nthreads);
	/* the limit */
	mc1 = memcpy_bw(bufb, bufa, mb << 20, 1, 3);
	mcn = memcpy_bw(bufb, bufa, mb << 20, nthreads, 3);
	{
		double best = 1e9;

		for (size_t i = 0; i < nhuge && i < 64; i++) {
			double t0 = bench_now();

			memcpy(bufb + i * SZ_2M, bufa + i * SZ_2M, SZ_2M);
			if (bench_now() - t0 < best)
				best = bench_now() - t0;
		}
		copy2m_us = best * 1e6;
	}
	if (verbose)
		fprintf(stderr, "  memcpy 1 thread %.2f GB/s, %d threads %.2f GB/s, 2 MB in %.0f us\n",
			mc1, nthreads, mcn, copy2m_us);

	/* warm the pools: one round trip, as a steady state would have */
	move_rounds(hp, nhuge, 16, 2);
	move_rounds(sp, nsmall, 512, 2);

	/* 2 MB pages, one thread copying */
	if (pmv_set_copy_engine(ctx, PMV_COPY_NT) ||
	    pmv_set_copy_engine(ctx, PMV_COPY_PARALLEL) ||
	    pmv_set_copy_engine(ctx, PMV_COPY_NT)) {
		fprintf(stderr, "pagemove bench: copy engines: %s\n", pmv_errmsg());
		return 1;
	}
	t = move_rounds(hp, nhuge, 1, rounds);
	add("migrate_2m_single_1t", (double)rounds * nhuge * SZ_2M, t, mc1);
	t = move_rounds(hp, nhuge, 16, rounds);
	add("migrate_2m_batch", (double)rounds * nhuge * SZ_2M, t, mc1);
	pmv_set_copy_engine(ctx, PMV_COPY_PARALLEL);
	t = move_rounds(hp, nhuge, 16, rounds);
	add("migrate_2m_parallel", (double)rounds * nhuge * SZ_2M, t, mcn);

	/* 4 KB pages in random order */
	pmv_set_copy_engine(ctx, PMV_COPY_MEMCPY);
	t = move_rounds(sp, nsmall, 512, rounds);
	add("migrate_4k_random_batch", (double)rounds * nsmall * SZ_4K, t, mc1);
	t = move_parallel(sp, nsmall, 512, rounds, nthreads);
	add("migrate_4k_random_parallel", (double)rounds * nsmall * SZ_4K, t, mcn);

	/* exchange: pairs across the tiers; bytes of both pages count */
	pmv_set_copy_engine(ctx, PMV_COPY_AUTO);
	move_all(hp, nhuge / 2, 1, 16);			/* first half on tier 1 */
	move_all(sp, nsmall / 2, 1, 512);
	xa = hp;
	xb = hp + nhuge / 2;
	t = exchange_rounds(xa, xb, nhuge / 2, 16, rounds);
	add("exchange_2m_batch", (double)rounds * nhuge * SZ_2M, t, mc1);
	xa = sp;
	xb = sp + nsmall / 2;
	t = exchange_rounds(xa, xb, nsmall / 2, 256, rounds);
	add("exchange_4k_batch", (double)rounds * nsmall * SZ_4K, t, mc1);

	if (kernel)
		kernel_runs(hp, nhuge, sp, nsmall, n0, n1, mc1);

	/* writer stall: one writer on a 2 MB page that moves back and forth */
	{
		pthread_t w;
		int to = 0, st;
		void *pg = hp[0];

		cap_stalls = 4096;
		stalls = calloc(cap_stalls, sizeof(double));
		pthread_create(&w, NULL, stall_writer, h);
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
	if (verbose)
		fprintf(stderr, "  writer stall: %zu stalls, p50 %.0f us, p99 %.0f us, max %.0f us "
			"(2 x copy_2m_1t = %.0f us)\n", nstalls, pct(stalls, nstalls, 0.5),
			pct(stalls, nstalls, 0.99), nstalls ? stalls[nstalls - 1] : 0, 2 * copy2m_us);

	if (json) {
		printf("{\n  \"memcpy_1t_gbps\": %.3f,\n  \"memcpy_all_gbps\": %.3f,\n"
		       "  \"threads\": %d,\n  \"copy_2m_1t_us\": %.1f,\n"
		       "  \"mode\": \"%s\",\n  \"mode_why\": \"%s\",\n  \"results\": [\n",
		       mc1, mcn, nthreads, copy2m_us, mode_name(&cs), mode_why_key(&cs));
		for (int i = 0; i < nresults; i++)
			printf("    {\"name\": \"%s\", \"gbps\": %.3f, \"ratio\": %.3f}%s\n",
			       results[i].name, results[i].gbps, results[i].ratio,
			       i + 1 < nresults ? "," : "");
		printf("  ],\n  \"writer_stall_p50_us\": %.1f,\n  \"writer_stall_p99_us\": %.1f,\n"
		       "  \"writer_stall_max_us\": %.1f,\n  \"writer_stalls\": %zu\n}\n",
		       pct(stalls, nstalls, 0.5), pct(stalls, nstalls, 0.99),
		       nstalls ? stalls[nstalls - 1] : 0, nstalls);
	} else {
		printf("%s\n", why);
		printf("%-28s %9s %9s\n", "benchmark", "GB/s", "ratio");
		printf("%-28s %9.2f %9s\n", "memcpy_1t", mc1, "1.00");
		printf("%-28s %9.2f %9s\n", "memcpy_all", mcn, "1.00");
		for (int i = 0; i < nresults; i++)
			printf("%-28s %9.2f %9.2f\n", results[i].name, results[i].gbps,
			       results[i].ratio);
		printf("copy_2m_1t_us %.0f; writer stall p50 %.0f us, p99 %.0f us, max %.0f us\n",
		       copy2m_us, pct(stalls, nstalls, 0.5), pct(stalls, nstalls, 0.99),
		       nstalls ? stalls[nstalls - 1] : 0);
	}
	free(stalls);
	free(hp);
	free(sp);
	munmap(bufa, mb << 20);
	munmap(bufb, mb << 20);
	pmv_destroy(ctx);
	return 0;
}
