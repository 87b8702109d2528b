/* SPDX-License-Identifier: MIT */
/*
 * pagemove demo: the tiering policy at work. A skewed (zipf) workload runs
 * on a region whose fast tier holds a quarter of it; first touch fills the
 * fast tier with whatever comes first, then the policy moves the hot pages
 * in while the workers keep reading and writing. At the end every byte of
 * every page is checked. The workload is bench/workload.c, as in
 * "pagemove bench tiering". With --tiers the tiers are the caller's, far
 * ones included: pages past the memory tiers are then stored compressed or
 * in a file, and the demo shows the memory that saves.
 */
#include <errno.h>
#include <signal.h>
#include <getopt.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pagemove.h"
#include "lib_cmds.h"
#include "../bench/bench.h"
#include "../bench/workload.h"
#include "../common/mode.h"
#include "../common/opt.h"

#define TICK_NS		100000000L	/* tier query: 100 ms */
#define STATUS_TICKS	5		/* status line on a tty: 0.5 s */
#define LOG_TICKS	20		/* a line of log otherwise: 2 s */
#define BASE_TICKS	10		/* first touch, policy off: 1 s */
#define END_TICKS	20		/* "end" hit rate: the last 2 s */
#define SEED		1ULL

static void sleep_tick(struct timespec *next)
{
	next->tv_nsec += TICK_NS;
	if (next->tv_nsec >= 1000000000L) {
		next->tv_nsec -= 1000000000L;
		next->tv_sec++;
	}
	clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, next, NULL);
}

/* SIGINT/SIGTERM: stop the run early, then summarize and verify as usual. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static double frac(uint64_t hits, uint64_t acc)
{
	return acc ? (double)hits / acc : 0;
}

/* Far tiers' pages and what they take, "lz4 12 MiB in 3.1 MiB, 40 faulted in" */
static void far_line(pmv_ctx *ctx, unsigned ntiers, const char *sep)
{
	for (unsigned t = 0; t < ntiers; t++) {
		struct pmv_tier_stats st;

		if (pmv_tier_stats(ctx, (int)t, &st) || st.kind == PMV_TIER_MEM)
			continue;
		printf("%s%s %.0f MiB in %.1f MiB, %llu faulted in", sep, st.name,
		       st.stored_page_bytes / 1048576.0, st.stored_bytes / 1048576.0,
		       (unsigned long long)st.faults_in);
	}
}

/* What each tier is, and what the hit rates below are about. */
static void describe_tiers(const struct pmv_tier_config *tc, unsigned n, bool spec)
{
	static const char *const what[PMV_TIER_KIND_NR] = {
		[PMV_TIER_MEM] = "memory", [PMV_TIER_LZ4] = "compressed in RAM with lz4",
		[PMV_TIER_ZSTD] = "compressed in RAM with zstd", [PMV_TIER_FILE] = "a file",
	};
	unsigned mem = 0, unbound = 0;

	for (unsigned t = 0; t < n; t++) {
		if (tc[t].kind == PMV_TIER_MEM) {
			mem++;
			unbound += tc[t].node == PMV_NODE_ANY;
		}
	}
	if (!spec) {
		if (unbound)
			printf("tiers unbound: 'fast' and 'slow' are labels on memory of any node, "
			       "not faster and slower memory (--nodes A,B binds them)\n");
		else
			printf("tiers bound: fast on node %d, slow on node %d\n", tc[0].node,
			       tc[1].node);
		return;
	}
	for (unsigned t = 0; t < n; t++) {
		char cap[32] = "unlimited";

		if (tc[t].capacity)
			snprintf(cap, sizeof(cap), "%.0f MiB", tc[t].capacity / 1048576.0);
		if (tc[t].kind == PMV_TIER_MEM && tc[t].node != PMV_NODE_ANY)
			printf("tier %u '%s': memory on node %d, %s\n", t, tc[t].name, tc[t].node, cap);
		else if (tc[t].kind == PMV_TIER_MEM)
			printf("tier %u '%s': memory on any node, %s\n", t, tc[t].name, cap);
		else
			printf("tier %u '%s': %s, %s: its pages take %s\n", t, tc[t].name,
			       what[tc[t].kind], cap, tc[t].kind == PMV_TIER_FILE ?
			       "no memory" : "only the memory of their compressed bytes");
	}
	if (mem > 1 && unbound)
		printf("memory tiers unbound: between them the hit rates are about labels, "
		       "not faster and slower memory (mem@NODE binds one)\n");
}

static int usage(void)
{
	fputs("Usage: pagemove demo [--seconds S] [--mb MB] [--threads N] [--nodes A,B]\n"
"                     [--tiers SPEC]\n"
"\n"
"Runs a zipf workload from N threads on MB MiB of 2 MB pages whose fast tier\n"
"holds a quarter. First touch fills the fast tier in address order; after\n"
"1 s the tiering policy is turned on and moves the hot pages in. Shows the\n"
"fast tier's hit rate and the policy's moves as it goes, then checks every\n"
"byte. Ctrl-C (SIGINT) or SIGTERM ends the run early: the summary covers\n"
"what ran, and every byte is still checked.\n"
"\n"
"  -s, --seconds S   run the policy S seconds, 1..86400 (default 20)\n"
"  -m, --mb MB       MiB of managed memory, 16..65536, a multiple of 8\n"
"                    (default 256)\n"
"  -t, --threads N   worker threads, 1..64 (default 2)\n"
"  -n, --nodes A,B   bind the fast tier to NUMA node A and the slow one to B\n"
"                    (default: both unbound, on any node: the hit rates are\n"
"                    then about labels, not about faster memory)\n"
"  -T, --tiers SPEC  the tiers instead, fastest first, as pmv_tiers_parse(3),\n"
"                    e.g. mem:64M,lz4 or mem@0:64M,mem@1,zstd; the first\n"
"                    tier holds a quarter of MB unless SPEC sizes it. Far\n"
"                    tiers (lz4, zstd, file@DIR) hold the cold pages in\n"
"                    less memory, or none; the demo shows how much\n"
"  -h, --help        show this help\n"
"\n"
"Exit status:\n"
"  0  every byte verified (also after Ctrl-C)\n"
"  1  no context or memory (pmv_create or pmv_mmap failed), or data corrupted\n"
"  2  usage error (unknown option, bad value, a node that does not exist,\n"
"     a SPEC that does not parse, --tiers with --nodes)\n",
	      stdout);
	return 0;
}

int cmd_demo(int argc, char **argv)
{
	struct pmv_tier_config tiers[PMV_MAX_TIERS] = {
		{ .name = "fast", .node = PMV_NODE_ANY },
		{ .name = "slow", .node = PMV_NODE_ANY, .capacity = 0 },
	};
	char spec[1024];	/* --tiers' names and paths */
	bool have_spec = false, have_nodes = false;
	/* off until the region is filled: first touch decides the start */
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tiers, .policy = &pol };
	double secs = 20, oracle, first, t0, tprev;
	int tty = isatty(STDOUT_FILENO), opt, err, ret = 1, every;
	uint64_t a, h, a0, h0, aprev, hprev, bprev, aend, hend;
	unsigned long mb = 256;
	size_t size, psz;
	unsigned threads = 2;
	struct pmv_ctx_stats s0, s, s1;
	struct timespec next;
	struct workload wl;
	unsigned char got, want;
	long ticks, bad, i, done, end_from = 0;
	struct sigaction sa = { .sa_handler = on_signal };
	struct opt_parse op;
	char why[512];
	pmv_ctx *ctx;

	static const struct option opts[] = {
		{ "seconds", required_argument, 0, 's' }, { "mb", required_argument, 0, 'm' },
		{ "threads", required_argument, 0, 't' }, { "nodes", required_argument, 0, 'n' },
		{ "tiers", required_argument, 0, 'T' }, { "help", no_argument, 0, 'h' }, { 0 }
	};
	opt_begin(&op, "demo");
	while ((opt = getopt_long(argc, argv, ":s:m:t:n:T:h", opts, NULL)) != -1) {
		switch (opt) {
		case 's': opt_double(&op, "--seconds", optarg, 1, 86400, &secs); break;
		case 'm':
			if (opt_ulong(&op, "--mb", optarg, 16, 65536, &mb) && mb % 8)
				opt_error(&op, "--mb: %lu is not a multiple of 8", mb);
			break;
		case 't': opt_uint(&op, "--threads", optarg, 1, 64, &threads); break;
		case 'n':
			opt_node_pair(&op, "--nodes", optarg, numa_max_node(), &tiers[0].node,
				      &tiers[1].node);
			have_nodes = true;
			break;
		case 'T': {
			int n = strlen(optarg) >= sizeof(spec) ? -ENOBUFS :
				pmv_tiers_parse(optarg, tiers, PMV_MAX_TIERS, spec, sizeof(spec));

			if (n < 0)
				opt_error(&op, "--tiers '%s': %s", optarg,
					  n == -ENOBUFS ? "too long" : pmv_errmsg());
			else if (n < 2)
				opt_error(&op, "--tiers '%s': the demo needs two tiers or more",
					  optarg);
			else
				cfg.ntiers = (unsigned)n;
			have_spec = n >= 2;
			break;
		}
		case 'h': return usage();
		default: opt_getopt_error(&op, opt, argv); break;
		}
	}
	opt_no_args(&op, argc, argv);
	if (have_spec && have_nodes)
		opt_error(&op, "--tiers and --nodes: give one of them (mem@NODE binds a tier)");
	if (opt_end(&op))
		return OPT_EXIT_USAGE;
	size = mb << 20;
	if (!tiers[0].capacity)
		tiers[0].capacity = size / 4;
	ctx = pmv_create(&cfg);
	if (!ctx) {
		fprintf(stderr, "pagemove demo: %s: %s\n", strerror(errno), pmv_errmsg());
		return 1;
	}
	pmv_ctx_stats(ctx, &s0);
	printf("%s\n", mode_explain(&s0, why, sizeof(why)));
	describe_tiers(tiers, cfg.ntiers, have_spec);
	err = wl_setup(&wl, ctx, size, threads, 1, SEED);
	if (err) {
		fprintf(stderr, "pagemove demo: %s\n", strerror(-err));
		goto out_ctx;
	}
	psz = wl.psz;
	wl_query(&wl, ctx, NULL);
	oracle = wl_oracle(&wl, tiers[0].capacity / psz);
	printf("pagemove demo: %u threads, zipf over %lu MiB of %s pages; the fast tier "
	       "holds %.0f MiB\n", threads, mb, psz > 4096 ? "2 MB" : "4 KB",
	       tiers[0].capacity / 1048576.0);
	printf("best possible fast-tier hit rate (hottest pages all fast): %.1f %%\n",
	       100 * oracle);
	/*
	 * From here on Ctrl-C (or SIGTERM) ends the run early, and the data is
	 * still checked: no SA_RESTART, so the tick's sleep returns at once.
	 */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	err = wl_start(&wl, 0);
	if (err) {
		fprintf(stderr, "pagemove demo: threads: %s\n", strerror(-err));
		goto out_wl;
	}

	/* first touch, policy off */
	clock_gettime(CLOCK_MONOTONIC, &next);
	wl_counts(&wl, &a0, &h0);
	for (int k = 0; k < BASE_TICKS && !interrupted; k++) {
		sleep_tick(&next);
		wl_query(&wl, ctx, NULL);
	}
	wl_counts(&wl, &a, &h);
	first = frac(h - h0, a - a0);
	printf("first touch, policy off: fast-tier hit rate %.1f %%\n", 100 * first);

	pmv_ctx_stats(ctx, &s0);
	err = pmv_tier_policy(ctx, PMV_POLICY_AUTO);
	if (err) {
		fprintf(stderr, "pagemove demo: pmv_tier_policy: %s\n", pmv_strerror(err));
		wl_stop(&wl);
		goto out_wl;
	}
	printf("policy on for %.0f s%s\n", secs, tty ? "" : " (a line every 2 s)");
	fflush(stdout);
	every = tty ? STATUS_TICKS : LOG_TICKS;
	ticks = secs * 1e9 / TICK_NS + 0.5;
	t0 = tprev = bench_now();
	aprev = aend = a;
	hprev = hend = h;
	bprev = s0.policy_bytes;
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (i = 1; i <= ticks && !interrupted; i++) {
		sleep_tick(&next);
		wl_query(&wl, ctx, NULL);
		if (i == ticks - END_TICKS) {
			wl_counts(&wl, &aend, &hend);
			end_from = i;
		}
		if (i % every && i != ticks && !interrupted)
			continue;
		wl_counts(&wl, &a, &h);
		pmv_ctx_stats(ctx, &s);
		printf("%s  %5.1f s  fast-tier hits %5.1f %%  promoted %llu  demoted %llu  "
		       "exchanged %llu  %.0f MB/s", tty ? "\r" : "", bench_now() - t0,
		       100 * frac(h - hprev, a - aprev),
		       (unsigned long long)(s.promoted - s0.promoted),
		       (unsigned long long)(s.demoted - s0.demoted),
		       (unsigned long long)(s.exchanged - s0.exchanged),
		       (s.policy_bytes - bprev) / (bench_now() - tprev) / 1e6);
		far_line(ctx, cfg.ntiers, "  ");
		printf("%s", tty ? "   " : "\n");
		fflush(stdout);
		aprev = a;
		hprev = h;
		bprev = s.policy_bytes;
		tprev = bench_now();
	}
	done = i - 1;
	wl_counts(&wl, &a, &h);
	pmv_ctx_stats(ctx, &s1);
	wl_stop(&wl);
	if (tty)
		printf("\n");
	if (interrupted)
		printf("interrupted after %.1f s of %.0f: the summary covers what ran\n",
		       done * TICK_NS / 1e9, secs);

	printf("fast-tier hit rate: %.1f %% at first touch, %.1f %% over the last %.1f s "
	       "(best possible %.1f %%)\n", 100 * first, 100 * frac(h - hend, a - aend),
	       (done - end_from) * TICK_NS / 1e9, 100 * oracle);
	printf("policy: %llu pages promoted, %llu demoted, %llu pairs exchanged, %.2f GB migrated; "
	       "tracking CPU %.2f %% of one core\n",
	       (unsigned long long)(s1.promoted - s0.promoted),
	       (unsigned long long)(s1.demoted - s0.demoted),
	       (unsigned long long)(s1.exchanged - s0.exchanged),
	       (s1.policy_bytes - s0.policy_bytes) / 1e9, 100 * s1.track_cpu_fraction);

	for (unsigned t = 0; t < cfg.ntiers; t++) {
		struct pmv_tier_stats st;

		if (pmv_tier_stats(ctx, (int)t, &st) || st.kind == PMV_TIER_MEM)
			continue;
		printf("far tier '%s': %llu pages, %.1f MiB of them in %.1f MiB (%.1f MiB of memory "
		       "%s); %llu faulted back in, %.0f us each\n", st.name,
		       (unsigned long long)st.stored_pages, st.stored_page_bytes / 1048576.0,
		       st.stored_bytes / 1048576.0,
		       (st.stored_page_bytes - (st.kind == PMV_TIER_FILE ? 0 : st.stored_bytes)) /
			       1048576.0, st.kind == PMV_TIER_FILE ? "freed, to a file" : "saved",
		       (unsigned long long)st.faults_in,
		       st.faults_in ? st.fault_in_ns / 1e3 / st.faults_in : 0.0);
	}
	if (s1.mode != PMV_MODE_FULL)
		printf("tiering did nothing: the userfaultfd is user-mode-only, so the policy "
		       "could not sample (see the userfaultfd line above)\n");

	/* the policy is still on: pages may move while they are checked */
	bad = wl_verify(&wl, &got, &want);
	if (bad >= 0) {
		printf("DATA CORRUPTED: first bad byte at offset %ld (page %ld): 0x%02x, "
		       "expected 0x%02x\n", bad, bad / (long)psz, got, want);
	} else if (atomic_load(&wl.bad_keys)) {
		printf("DATA CORRUPTED: %llu accesses found another item's key\n",
		       (unsigned long long)atomic_load(&wl.bad_keys));
	} else {
		printf("data verified: %lu MiB, every byte\n", mb);
		ret = 0;
	}
out_wl:
	wl_free(&wl);
out_ctx:
	pmv_destroy(ctx);
	return ret;
}
