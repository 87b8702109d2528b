// SPDX-License-Identifier: MIT
/*
 * pagemove bench tiering: how much of a skewed workload's traffic the
 * tiering policy serves from the fast tier, against the best any placement
 * could do and against first touch, for four access patterns. The method
 * is in docs/BENCH.md ("Tiering").
 */
#include <errno.h>
#include <getopt.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pagemove.h"
#include "bench.h"
#include "workload.h"
#include "../common/mode.h"
#include "../common/opt.h"

#define TICK_NS		100000000L	/* tier query period: 100 ms */
#define IVL_TICKS	5		/* one hit-fraction point per 0.5 s */
#define IVL_S		0.5
#define SEED		1ULL
#define NEAR		0.9		/* "reached": 0.9 x oracle */
#define MAX_CONVERGE_S	10.0		/* zipf target */
#define MAX_TRACK_CPU	0.02		/* of one core */

enum { ZIPF, SHIFT, SCAN, SPARSE, NPAT };
static const char *const pat_name[NPAT] = { "zipf", "shift", "scan", "sparse" };
#define SPARSE_HOT	8		/* hot 4 KB pieces of each 2 MB page */

struct opts {
	size_t mb;
	unsigned threads;
	double run_s, ft_s, phase_s;
	int n0, n1;
};

struct result {
	/* the hit fraction per interval: first n_ft before the policy is on */
	double *hit_s;
	size_t n, n_ft, per;		/* per: intervals per phase */
	unsigned nphases;
	double phase_hit[64], phase_conv[64];
	double hit, oracle, oracle_4k, first_touch, first_touch_placed, converge_s, gb;
	double track_cpu, maccess_s;
	size_t ticks, top_fast;		/* policy on: ticks, and with the hottest page fast */
	uint64_t promoted, demoted, exchanged, samples, sample_faults;
	uint64_t bad_keys, scan_passes;
	size_t query_errs, psz;
	long fast_pages, fast_pages_end;
	int hit_met, conv_met, verified;
	struct pmv_ctx_stats cs;	/* at the start: the mode, and why */
};

/*
 * Run nivl intervals from now: query the tiers every tick, record the hit
 * fraction of each interval, and move the hot set every shift_ivl
 * intervals (0: never). Returns the hit fraction over all of them.
 * With the policy on, also count how often the hottest page is fast.
 */
static double measure(pmv_ctx *ctx, struct workload *wl, struct result *r,
		      size_t nivl, size_t shift_ivl, int policy_on)
{
	struct timespec next;
	uint64_t a0, h0, ap, hp, a = 0, h = 0;
	size_t errs;

	clock_gettime(CLOCK_MONOTONIC, &next);
	wl_counts(wl, &a0, &h0);
	ap = a = a0;
	hp = h = h0;
	for (size_t i = 0; i < nivl; i++) {
		for (int k = 0; k < IVL_TICKS; k++) {
			next.tv_nsec += TICK_NS;
			if (next.tv_nsec >= 1000000000L) {
				next.tv_nsec -= 1000000000L;
				next.tv_sec++;
			}
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
			if (wl_query(wl, ctx, &errs) >= 0)
				r->query_errs += errs;
			else
				r->query_errs += wl->npages;
			if (policy_on) {
				unsigned ph = atomic_load(&wl->phase);

				r->ticks++;
				r->top_fast += wl->fast[wl->perm[ph][0]];
			}
		}
		wl_counts(wl, &a, &h);
		r->hit_s[r->n++] = a > ap ? (double)(h - hp) / (a - ap) : 0;
		ap = a;
		hp = h;
		if (shift_ivl && (i + 1) % shift_ivl == 0 && i + 1 < nivl)
			wl_shift(wl);
	}
	return a > a0 ? (double)(h - h0) / (a - a0) : 0;
}

/* Steady state and convergence, per phase, of the policy-on intervals. */
static void analyze(struct result *r, int pat)
{
	const double *x = r->hit_s + r->n_ft;
	double target = NEAR * r->oracle, sum = 0, worst = 0;
	size_t from = (6 * r->per + 9) / 10;	/* the last 40 % */
	int all = 1;

	for (unsigned ph = 0; ph < r->nphases; ph++, x += r->per) {
		double s = 0;

		for (size_t i = from; i < r->per; i++)
			s += x[i];
		r->phase_hit[ph] = s / (r->per - from);
		sum += r->phase_hit[ph];
		r->phase_conv[ph] = -1;
		for (size_t i = 0; i < r->per; i++)
			if (x[i] >= target) {
				r->phase_conv[ph] = (i + 1) * IVL_S;
				break;
			}
		/* shift: phase 0 starts from first touch, not from a shift */
		if (pat == SHIFT && !ph)
			continue;
		if (r->phase_conv[ph] < 0)
			all = 0;
		else if (r->phase_conv[ph] > worst)
			worst = r->phase_conv[ph];
	}
	r->hit = sum / r->nphases;
	r->converge_s = all ? worst : -1;
	r->hit_met = r->hit >= target;
	if (pat == ZIPF)
		r->conv_met = r->converge_s >= 0 && r->converge_s <= MAX_CONVERGE_S;
	else if (pat == SHIFT)
		r->conv_met = all;
	else
		r->conv_met = 1;
}

static int run_pattern(int pat, const struct opts *o, struct result *r)
{
	size_t size = o->mb << 20;
	struct pmv_tier_config tc[2] = {
		{ .name = "fast", .node = o->n0, .capacity = size / 4 },
		{ .name = "slow", .node = o->n1 },
	};
	/* off until first touch is measured: tier 0 fills in address order */
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF };
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .policy = &pol };
	size_t ft_ivl = o->ft_s / IVL_S + 0.5, nivl = o->run_s / IVL_S + 0.5, shift_ivl = 0;
	struct pmv_ctx_stats s0, s1;
	struct pmv_tier_stats ts;
	struct workload wl;
	unsigned char got, want;
	pmv_ctx *ctx;
	double t0, t1;
	uint64_t a0, a1, h;
	long bad;
	int err;

	r->nphases = 1;
	if (pat == SHIFT) {
		shift_ivl = o->phase_s / IVL_S + 0.5;
		r->nphases = (nivl + shift_ivl - 1) / shift_ivl;
		if (r->nphases < 4)		/* at least three shifts */
			r->nphases = 4;
		if (r->nphases > 64)
			r->nphases = 64;
		nivl = r->nphases * shift_ivl;
	}
	r->per = shift_ivl ? shift_ivl : nivl;
	r->hit_s = calloc(ft_ivl + nivl, sizeof(double));
	if (!r->hit_s)
		return -ENOMEM;

	ctx = pmv_create(&cfg);
	if (!ctx) {
		err = -errno;
		fprintf(stderr, "pagemove bench tiering: %s\n", pmv_errmsg());
		return err;
	}
	err = wl_setup(&wl, ctx, size, o->threads, r->nphases, SEED);
	if (err) {
		fprintf(stderr, "pagemove bench tiering: %s\n", strerror(-err));
		pmv_destroy(ctx);
		return err;
	}
	r->psz = wl.psz;
	if (r->psz == 4096 && pat == ZIPF)
		fprintf(stderr, "  (THP is disabled: 4 KB pages, one item each)\n");
	r->fast_pages = wl_query(&wl, ctx, NULL);
	if (pat == SPARSE && (err = wl_sparse(&wl, SPARSE_HOT)))
		goto out;
	r->oracle = wl_oracle(&wl, size / 4 / r->psz);
	r->oracle_4k = wl_oracle_4k(&wl, size / 4);
	r->first_touch_placed = wl_expected_hits(&wl);
	err = wl_start(&wl, pat == SCAN);
	if (err)
		goto out;

	r->first_touch = measure(ctx, &wl, r, ft_ivl, 0, 0);
	r->n_ft = r->n;
	pmv_ctx_stats(ctx, &s0);
	r->cs = s0;
	err = pmv_tier_policy(ctx, PMV_POLICY_AUTO);
	if (err) {
		fprintf(stderr, "pagemove bench tiering: pmv_tier_policy: %s\n", pmv_strerror(err));
		wl_stop(&wl);
		goto out;
	}
	wl_counts(&wl, &a0, &h);
	t0 = bench_now();
	measure(ctx, &wl, r, nivl, shift_ivl, 1);
	wl_counts(&wl, &a1, &h);
	t1 = bench_now();
	pmv_ctx_stats(ctx, &s1);
	wl_stop(&wl);

	r->maccess_s = (a1 - a0) / (t1 - t0) / 1e6;
	r->gb = (s1.policy_bytes - s0.policy_bytes) / 1e9;
	r->track_cpu = s1.track_cpu_fraction;
	r->promoted = s1.promoted - s0.promoted;
	r->demoted = s1.demoted - s0.demoted;
	r->exchanged = s1.exchanged - s0.exchanged;
	r->samples = s1.samples - s0.samples;
	r->sample_faults = s1.sample_faults - s0.sample_faults;
	r->bad_keys = atomic_load(&wl.bad_keys);
	r->scan_passes = atomic_load(&wl.scan_passes);
	if (!pmv_tier_stats(ctx, 0, &ts))
		r->fast_pages_end = ts.resident_bytes / r->psz;
	analyze(r, pat);

	bad = wl_verify(&wl, &got, &want);
	r->verified = bad < 0 && !r->bad_keys;
	if (bad >= 0)
		fprintf(stderr, "pagemove bench tiering: %s: DATA CORRUPTED: byte %ld of the region "
			"is 0x%02x, not 0x%02x\n", pat_name[pat], bad, got, want);
	if (r->bad_keys)
		fprintf(stderr, "pagemove bench tiering: %s: DATA CORRUPTED: %llu accesses found "
			"another item\n", pat_name[pat], (unsigned long long)r->bad_keys);
out:
	wl_free(&wl);
	pmv_destroy(ctx);
	return err;
}

/* ---- plot ---------------------------------------------------------------- */

static int plot(const char *png, const struct result *res, const struct opts *o)
{
	char dat[] = "/tmp/pagemove-tiering-XXXXXX", gp[] = "/tmp/pagemove-tiering-XXXXXX";
	int fd1 = mkstemp(dat), fd2 = fd1 < 0 ? -1 : mkstemp(gp), ret = -1;
	FILE *d, *g;

	if (fd2 < 0) {
		perror("pagemove bench tiering: mkstemp");
		if (fd1 >= 0)
			unlink(dat), close(fd1);
		return -1;
	}
	d = fdopen(fd1, "w");
	g = fdopen(fd2, "w");
	/* one block per pattern: t, hit, oracle, first touch, 0.9 x oracle */
	for (int p = 0; p < NPAT; p++) {
		const struct result *r = &res[p];

		fprintf(d, "# %s\n", pat_name[p]);
		for (size_t i = 0; i < r->n; i++)
			fprintf(d, "%.2f %.4f %.4f %.4f %.4f\n",
				((double)i + 1 - r->n_ft) * IVL_S, r->hit_s[i], r->oracle,
				r->first_touch, NEAR * r->oracle);
		fprintf(d, "\n\n");
	}
	fprintf(g, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
		   "  set terminal pngcairo size 1000,1450 font ',10'\n"
		   "} else {\n  set terminal png size 1000,1450\n}\n");
	fprintf(g, "set output ");
	bench_gp_string(g, png);
	fprintf(g, "\nset multiplot layout %d,1 title 'pagemove bench tiering: "
		   "fast-tier hit fraction per 0.5 s (%zu MB, fast tier 1/4, %u thread%s)'\n"
		   "set yrange [0:1.2]\nset ytics 0,0.2,1\nset grid\nset key top center horizontal\n"
		   "set ylabel 'hit fraction'\n"
		   "set xlabel 'seconds since the policy was turned on (before 0: off)'\n",
		NPAT, o->mb, o->threads, o->threads > 1 ? "s" : "");
	for (int p = 0; p < NPAT; p++) {
		const struct result *r = &res[p];

		fprintf(g, "set title '%s: steady %.3f, oracle %.3f, first touch %.3f'\n",
			pat_name[p], r->hit, r->oracle, r->first_touch);
		for (unsigned ph = 1; ph < r->nphases; ph++)
			fprintf(g, "set arrow from %.2f, graph 0 to %.2f, graph 1 nohead "
				   "dt 3 lc rgb 'gray40'\n", ph * r->per * IVL_S, ph * r->per * IVL_S);
		fprintf(g, "plot ");
		bench_gp_string(g, dat);
		fprintf(g, " index %d using 1:2 with lines lw 2 title 'hit fraction', "
			   "'' index %d using 1:3 with lines dt 2 lc rgb 'black' title 'oracle', "
			   "'' index %d using 1:5 with lines dt 3 lc rgb 'dark-green' title '0.9 x oracle', "
			   "'' index %d using 1:4 with lines dt 4 lc rgb 'red' title 'first touch'\n"
			   "unset arrow\n", p, p, p, p);
	}
	fprintf(g, "unset multiplot\n");
	if (fclose(d) | fclose(g)) {
		perror("pagemove bench tiering: plot data");
		goto out;
	}
	ret = bench_gnuplot(gp, "pagemove bench tiering");
out:
	unlink(dat);
	unlink(gp);
	return ret;
}

/* ---- output -------------------------------------------------------------- */

/* A convergence time (< 0: never reached) for a table, and for JSON. */
static const char *conv_text(char *buf, size_t len, double s)
{
	if (s < 0)
		return "never";
	snprintf(buf, len, "%.1f", s);
	return buf;
}

static const char *conv_json(char *buf, size_t len, double s)
{
	return s < 0 ? "null" : conv_text(buf, len, s);
}

static const char *met(int ok)
{
	return ok ? "met" : "MISSED";
}

static void print_targets(const struct result *res, double cpu)
{
	const struct result *z = &res[ZIPF], *s = &res[SHIFT];

	printf("targets:\n");
	for (int p = 0; p < NPAT; p++)
		printf("  %-5s hit fraction %.3f >= %.3f (0.9 x oracle): %s\n", pat_name[p],
		       res[p].hit, NEAR * res[p].oracle, met(res[p].hit_met));
	printf("  zipf  reaches 0.9 x oracle within %.0f s: ", MAX_CONVERGE_S);
	if (z->converge_s >= 0)
		printf("%.1f s, %s\n", z->converge_s, met(z->conv_met));
	else
		printf("never, MISSED\n");
	printf("  shift reaches 0.9 x oracle again after each of %u shifts:", s->nphases - 1);
	for (unsigned ph = 1; ph < s->nphases; ph++)
		if (s->phase_conv[ph] >= 0)
			printf(" %.1f s", s->phase_conv[ph]);
		else
			printf(" never");
	printf(", %s\n", met(s->conv_met));
	printf("  tracking CPU %.2f %% of a core <= %.0f %%: %s\n", 100 * cpu,
	       100 * MAX_TRACK_CPU, met(cpu <= MAX_TRACK_CPU));
}

static void print_json(const struct result *res, double cpu, int all_met)
{
	printf("{\"workloads\": [\n");
	for (int p = 0; p < NPAT; p++) {
		const struct result *r = &res[p];
		char cb[32];

		printf("  {\"name\": \"%s\", \"hit_fraction\": %.4f, \"oracle_hit_fraction\": %.4f, "
		       "\"oracle_4k_hit_fraction\": %.4f, "
		       "\"first_touch_hit_fraction\": %.4f, \"converge_s\": %s, "
		       "\"gb_migrated\": %.3f, \"track_cpu_fraction\": %.4f, "
		       "\"promoted\": %llu, \"demoted\": %llu, \"exchanged\": %llu, "
		       "\"samples\": %llu, \"sample_faults\": %llu, \"maccess_per_s\": %.2f, "
		       "\"seconds\": %.1f, \"hottest_page_fast_fraction\": %.3f, "
		       "\"targets_met\": %s, \"data_verified\": %s,\n"
		       "   \"phase_hit_fraction\": [", pat_name[p], r->hit, r->oracle,
		       r->oracle_4k, r->first_touch, conv_json(cb, sizeof(cb), r->converge_s), r->gb, r->track_cpu,
		       (unsigned long long)r->promoted, (unsigned long long)r->demoted,
		       (unsigned long long)r->exchanged, (unsigned long long)r->samples,
		       (unsigned long long)r->sample_faults, r->maccess_s,
		       (r->n - r->n_ft) * IVL_S, r->ticks ? (double)r->top_fast / r->ticks : 0,
		       r->hit_met && r->conv_met ? "true" : "false",
		       r->verified ? "true" : "false");
		for (unsigned ph = 0; ph < r->nphases; ph++)
			printf("%s%.4f", ph ? ", " : "", r->phase_hit[ph]);
		printf("], \"phase_converge_s\": [");
		for (unsigned ph = 0; ph < r->nphases; ph++)
			printf("%s%s", ph ? ", " : "", conv_json(cb, sizeof(cb), r->phase_conv[ph]));
		printf("],\n   \"series\": [");
		for (size_t i = r->n_ft; i < r->n; i++)
			printf("%s%.3f", i > r->n_ft ? ", " : "", r->hit_s[i]);
		printf("]}%s\n", p + 1 < NPAT ? "," : "");
	}
	printf("], \"tracking_cpu_fraction\": %.4f, \"targets_met\": %s, \"mode\": \"%s\", "
	       "\"mode_why\": \"%s\"}\n", cpu, all_met ? "true" : "false", mode_name(&res[0].cs),
	       mode_why_key(&res[0].cs));
}

static void print_table(const struct result *res, const struct opts *o)
{
	printf("%zu MB of %s pages, fast tier %zu MB, %u thread%s, zipf s = %.2f over 4 KB items\n",
	       o->mb, res[0].psz > 4096 ? "2 MB" : "4 KB", o->mb / 4, o->threads,
	       o->threads > 1 ? "s" : "", WL_ZIPF_S);
	printf("%-6s %6s %7s %7s %9s %8s %8s %8s %9s %7s %7s\n", "", "hit", "oracle", "first",
	       "converge", "GB", "pages", "pages", "pairs", "track", "Macc");
	printf("%-6s %6s %7s %7s %9s %8s %8s %8s %9s %7s %7s\n", "", "", "", "touch",
	       "s", "moved", "promoted", "demoted", "exchanged", "CPU %", "/s");
	for (int p = 0; p < NPAT; p++) {
		const struct result *r = &res[p];

		char cb[32];

		printf("%-6s %6.3f %7.3f %7.3f %9s %8.2f %8llu %8llu %9llu %7.2f %7.1f\n",
		       pat_name[p], r->hit, r->oracle, r->first_touch,
		       conv_text(cb, sizeof(cb), r->converge_s), r->gb,
		       (unsigned long long)r->promoted, (unsigned long long)r->demoted,
		       (unsigned long long)r->exchanged, 100 * r->track_cpu, r->maccess_s);
	}
	printf("sparse: %d hot 4 KB pieces a 2 MB page; a fast tier of 4 KB pieces could serve "
	       "%.3f (oracle of 4 KB pages)\n", SPARSE_HOT, res[SPARSE].oracle_4k);
}

static int usage(void)
{
	fputs("Usage: pagemove bench tiering [--json] [--quick] [--plot FILE.png] [--seconds S]\n"
"                              [--mb MB] [--threads N] [--nodes A,B]\n"
"\n"
"Runs a zipf workload from N threads on MB MiB of 2 MB pages whose fast\n"
"tier holds a quarter, in four patterns (zipf; shift: the hot pages\n"
"change every 5 s; scan: plus a thread reading the whole region; sparse:\n"
"only 8 4 KB pieces of each page are accessed), first with the policy\n"
"off, then on for S seconds. Reports the fast-tier hit\n"
"fraction against the best possible (oracle) and first touch, the time to\n"
"converge (\"never\" if it did not), bytes migrated and tracking CPU, and\n"
"whether each target is met.\n"
"\n"
"  -j, --json          print one JSON object instead of a table\n"
"  -q, --quick         256 MiB (unless --mb), 12 s, a shift every 3 s\n"
"  -p, --plot FILE     draw the time series into FILE.png (needs gnuplot)\n"
"  -s, --seconds S     policy on for S seconds per pattern, 2..3600\n"
"                      (default 30)\n"
"  -m, --mb MB         MiB of managed memory, 64..65536, a multiple of 8\n"
"                      (default 512)\n"
"  -t, --threads N     worker threads, 1..64 (default 2)\n"
"  -n, --nodes A,B     bind the fast and slow tiers to NUMA nodes A and B\n"
"  -h, --help          show this help\n"
"\n"
"Exit status:\n"
"  0  every run finished and its data verified, whether or not the targets\n"
"     are met\n"
"  1  no context or memory, data corrupted, or the plot failed\n"
"  2  usage error (unknown option, bad value)\n", stdout);
	return 0;
}

int cmd_bench_tiering(int argc, char **argv)
{
	struct opts o = { .mb = 512, .threads = 2, .run_s = 30, .ft_s = 3, .phase_s = 5,
			  .n0 = PMV_NODE_ANY, .n1 = PMV_NODE_ANY };
	struct result res[NPAT];
	const char *png = NULL;
	int json = 0, opt, quick = 0, mb_set = 0, all_met, verified = 1, ret = 0;
	double secs = 0, cpu = 0;
	struct opt_parse op;
	unsigned long mb;
	char why[512];

	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' }, { "quick", no_argument, 0, 'q' },
		{ "plot", required_argument, 0, 'p' }, { "seconds", required_argument, 0, 's' },
		{ "mb", required_argument, 0, 'm' }, { "threads", required_argument, 0, 't' },
		{ "nodes", required_argument, 0, 'n' }, { "help", no_argument, 0, 'h' }, { 0 }
	};
	opt_begin(&op, "bench tiering");
	while ((opt = getopt_long(argc, argv, ":jqp:s:m:t:n:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = 1; break;
		case 'q': quick = 1; break;
		case 'p': png = optarg; break;
		case 's': opt_double(&op, "--seconds", optarg, 2, 3600, &secs); break;
		case 'm':
			if (opt_ulong(&op, "--mb", optarg, 64, 65536, &mb)) {
				if (mb % 8)
					opt_error(&op, "--mb: %lu is not a multiple of 8", mb);
				o.mb = mb;
				mb_set = 1;
			}
			break;
		case 't': opt_uint(&op, "--threads", optarg, 1, 64, &o.threads); break;
		case 'n': opt_node_pair(&op, "--nodes", optarg, numa_max_node(), &o.n0, &o.n1); break;
		case 'h': return usage();
		default: opt_getopt_error(&op, opt, argv); break;
		}
	}
	opt_no_args(&op, argc, argv);
	if (opt_end(&op))
		return OPT_EXIT_USAGE;
	if (quick) {
		o.run_s = 12;
		o.ft_s = 2;
		o.phase_s = 3;
		if (!mb_set)
			o.mb = 256;
	}
	if (secs)
		o.run_s = secs;
	if (png && !bench_have_gnuplot()) {
		fprintf(stderr, "pagemove bench tiering: --plot needs gnuplot, which is not in PATH; "
			"install it (apt-get install gnuplot-nox)\n");
		return 1;
	}
	memset(res, 0, sizeof(res));

	fprintf(stderr, "pagemove bench tiering: %zu MB, fast tier %zu MB, %u thread%s, "
		"policy on for %.0f s per pattern\n", o.mb, o.mb / 4, o.threads,
		o.threads > 1 ? "s" : "", o.run_s);
	for (int p = 0; p < NPAT; p++) {
		struct result *r = &res[p];
		int err = run_pattern(p, &o, r);
		char cb[32];

		if (err) {
			fprintf(stderr, "pagemove bench tiering: %s: %s\n", pat_name[p],
				pmv_strerror(err));
			ret = 1;
			goto out;
		}
		fprintf(stderr, "  %-5s first touch %.3f (placement says %.3f; %ld pages fast), "
			"policy: %.3f of oracle %.3f (4 KB pages: %.3f), converge %s%s, %.2f GB moved, "
			"%ld pages fast at the end, hottest page fast %.0f %% of the time, "
			"%.1f M accesses/s\n",
			pat_name[p], r->first_touch, r->first_touch_placed, r->fast_pages, r->hit,
			r->oracle, r->oracle_4k, conv_text(cb, sizeof(cb), r->converge_s),
			r->converge_s < 0 ? "" : " s", r->gb, r->fast_pages_end,
			r->ticks ? 100.0 * r->top_fast / r->ticks : 0, r->maccess_s);
		if (p == SCAN)
			fprintf(stderr, "  %-5s the scanner read the region %llu times\n", pat_name[p],
				(unsigned long long)r->scan_passes);
		if (r->query_errs)
			fprintf(stderr, "  %-5s %zu tier queries of a page failed (counted as slow)\n",
				pat_name[p], r->query_errs);
		if (r->track_cpu > cpu)
			cpu = r->track_cpu;
		verified &= r->verified;
	}
	all_met = cpu <= MAX_TRACK_CPU;
	for (int p = 0; p < NPAT; p++)
		all_met &= res[p].hit_met && res[p].conv_met;

	mode_explain(&res[0].cs, why, sizeof(why));
	if (json) {
		print_json(res, cpu, all_met);
	} else {
		printf("%s\n", why);
		if (res[0].cs.mode != PMV_MODE_FULL)
			printf("the policy could not sample: every figure below is first touch's\n");
		print_table(res, &o);
		print_targets(res, cpu);
		if (verified)
			printf("data verified: %zu MB x %d runs, every byte\n", o.mb, NPAT);
	}
	if (!verified) {
		fprintf(stderr, "pagemove bench tiering: data corrupted (see above)\n");
		ret = 1;
	}
	if (png && plot(png, res, &o))
		ret = 1;
	else if (png)
		fprintf(stderr, "pagemove bench tiering: plot written to %s\n", png);
out:
	for (int p = 0; p < NPAT; p++)
		free(res[p].hit_s);
	return ret;
}
