// SPDX-License-Identifier: MIT
/*
 * pagemove bench far: one workload over the same data, run with pagemove's
 * far tiers and with the kernel's own swap at the same DRAM budget, side by
 * side in one run. The method is in docs/BENCH.md ("Far tiers").
 *
 * The data is an array of 4 KB items, each half random and half text-like
 * (about 2:1 with lz4). A worker picks items by a zipf law (s = 0.99) over a
 * fixed random permutation, reads each item's key and increments its
 * counter one access in eight; "scan" adds a thread reading every item in
 * order, "shift" moves the hot set to another permutation twice. Every
 * access is timed; those over 2 us (they met a fault) make the latency
 * figures. Every byte is checked at the end.
 *
 * Each case runs in a child process. kernel_zram_lz4 runs in a memory
 * cgroup limited to the budget, swapping to a zram device with lz4 that
 * the bench adds and removes (root only; otherwise that case says why).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pagemove.h"
#include "bench.h"
#include "../common/mode.h"
#include "../common/opt.h"

#define ITEM		4096UL
#define SLOW_US		2.0	/* an access this slow met a fault */
#define NBUCKET		200	/* latency histogram: SLOW_US * 1.1^b */

enum { P_ZIPF, P_SCAN, P_SHIFT, P_NR };
static const char *const pattern_names[P_NR] = { "zipf", "scan", "shift" };

/* C_PROACTIVE only with --proactive: DRAM unbounded, idle pages go to lz4 */
enum { C_UNLIMITED, C_KERNEL, C_LZ4, C_ZSTD, C_FILE, C_PROACTIVE, C_NR };
static const char *const case_names[C_NR] = {
	"unlimited", "kernel_zram_lz4", "pagemove_lz4", "pagemove_zstd", "pagemove_file",
	"pagemove_proactive",
};

struct far_res {
	int skipped;
	char why[240];
	double maccess_per_s, p50_us, p99_us, max_us, ratio, cpu_s;
	uint64_t dram_bytes, store_bytes, slow;
	long bad;
};

struct far_opts {
	size_t bytes, budget;
	double secs;
	const char *dir;		/* the file tier's */
	int zram;			/* the kernel case's device, or -1 */
	char cgroup[128];		/* its cgroup directory */
	int cgroup_v2;
	unsigned proactive;		/* --proactive S: the C_PROACTIVE case's idle time */
};

static bool case_on(int c, const struct far_opts *o)
{
	return c != C_PROACTIVE || o->proactive;
}

/* ---- the data -------------------------------------------------------------- */

static uint64_t xs(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/*
 * Item i's bytes, with counter c: key, counter, 2 KB random, then 2 KB of
 * log-like text lines that differ in a number or two (what lz4 and zstd
 * shrink most): about 2:1 for the item.
 */
static void item_bytes(unsigned char *p, size_t i, uint64_t c)
{
	uint64_t s = i * 0x9e3779b97f4a7c15ULL + 1;
	size_t o = 16;
	char line[96];

	memcpy(p, &i, 8);
	memcpy(p + 8, &c, 8);
	for (; o < ITEM / 2; o += 8) {
		uint64_t r = xs(&s);

		memcpy(p + o, &r, 8);
	}
	for (unsigned k = 0; o < ITEM; k++) {
		int l = snprintf(line, sizeof(line), "item %09zu line %03u: status=ok bytes=%05u "
				 "tier=%u\n", i, k, (unsigned)(xs(&s) % 100000), k & 3);
		size_t n = (size_t)l < ITEM - o ? (size_t)l : ITEM - o;

		memcpy(p + o, line, n);
		o += n;
	}
}

/* ---- the workload ---------------------------------------------------------- */

struct wk {
	unsigned char *base;
	size_t n;			/* items */
	double *cdf;			/* zipf over ranks */
	uint32_t *perm[2];		/* rank -> item, per phase */
	uint64_t *shadow;		/* expected counter per item */
	_Atomic unsigned phase;
	_Atomic int stop;
	uint64_t hist[NBUCKET + 1], slow, acc;
	double max_us;
	long bad;
};

static double now_us(void)
{
	return bench_now() * 1e6;
}

static int wk_init(struct wk *w, unsigned char *base, size_t n)
{
	double sum = 0;
	uint64_t s = 0x5eed;

	memset(w, 0, sizeof(*w));
	w->base = base;
	w->n = n;
	w->cdf = malloc(n * sizeof(double));
	w->shadow = calloc(n, sizeof(uint64_t));
	for (int k = 0; k < 2; k++)
		w->perm[k] = malloc(n * sizeof(uint32_t));
	if (!w->cdf || !w->shadow || !w->perm[0] || !w->perm[1])
		return -ENOMEM;
	/* populated now, where the caller runs, not later in a case's cgroup */
	for (size_t i = 0; i < n; i += 512)
		((volatile uint64_t *)w->shadow)[i] = 0;
	for (size_t r = 0; r < n; r++)
		sum += 1.0 / pow((double)(r + 1), 0.99);
	for (size_t r = 0; r < n; r++)
		w->cdf[r] = (r ? w->cdf[r - 1] : 0) + 1.0 / pow((double)(r + 1), 0.99) / sum;
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < n; i++)
			w->perm[k][i] = (uint32_t)i;
		for (size_t i = n - 1; i > 0; i--) {
			size_t j = xs(&s) % (i + 1);
			uint32_t x = w->perm[k][i];

			w->perm[k][i] = w->perm[k][j];
			w->perm[k][j] = x;
		}
	}
	return 0;
}

static void wk_free(struct wk *w)
{
	free(w->cdf);
	free(w->shadow);
	free(w->perm[0]);
	free(w->perm[1]);
}

static size_t zipf_rank(const struct wk *w, uint64_t *s)
{
	double u = (xs(s) >> 11) * (1.0 / 9007199254740992.0);
	size_t lo = 0, hi = w->n - 1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (w->cdf[mid] < u)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void wk_fill(struct wk *w)
{
	for (size_t i = 0; i < w->n; i++)
		item_bytes(w->base + i * ITEM, i, 0);
}

static void *scanner(void *arg)
{
	struct wk *w = arg;
	uint64_t sink = 0;

	while (!atomic_load_explicit(&w->stop, memory_order_relaxed))
		for (size_t i = 0; i < w->n && !atomic_load_explicit(&w->stop,
								       memory_order_relaxed); i++)
			sink += *(volatile uint64_t *)(w->base + i * ITEM);
	return (void *)(uintptr_t)sink;
}

static void record(struct wk *w, double us)
{
	int b;

	if (us < SLOW_US)
		return;
	w->slow++;
	if (us > w->max_us)
		w->max_us = us;
	b = (int)(log(us / SLOW_US) / log(1.1));
	w->hist[b < NBUCKET ? b : NBUCKET]++;
}

static double pctl(const struct wk *w, double p)
{
	uint64_t want = (uint64_t)(p * w->slow), seen = 0;

	if (!w->slow)
		return 0;
	for (int b = 0; b <= NBUCKET; b++) {
		seen += w->hist[b];
		if (seen > want) {
			/* the bucket's top, never past the slowest seen */
			double top = SLOW_US * pow(1.1, b + 1);

			return b == NBUCKET || top > w->max_us ? w->max_us : top;
		}
	}
	return w->max_us;
}

/* The worker: secs of accesses, the scanner beside it for P_SCAN. */
static void wk_run(struct wk *w, int pattern, double secs)
{
	uint64_t s = 0xacce55;
	double t0 = bench_now(), end = t0 + secs;
	pthread_t sc;

	if (pattern == P_SCAN)
		pthread_create(&sc, NULL, scanner, w);
	while (bench_now() < end) {
		if (pattern == P_SHIFT)	/* two shifts: phases 0, 1, 0 */
			atomic_store(&w->phase, (unsigned)((bench_now() - t0) * 3 / secs) & 1);
		for (int k = 0; k < 1024; k++) {
			size_t i = w->perm[atomic_load(&w->phase)][zipf_rank(w, &s)];
			unsigned char *p = w->base + i * ITEM;
			double a = now_us();
			uint64_t key = *(volatile uint64_t *)p;

			if (key != i)
				w->bad++;
			if ((s & 7) == 0) {
				(*(volatile uint64_t *)(p + 8))++;
				w->shadow[i]++;
			}
			record(w, now_us() - a);
		}
		w->acc += 1024;
	}
	atomic_store(&w->stop, 1);
	if (pattern == P_SCAN)
		pthread_join(sc, NULL);
}

/* Wrong items after the run (every byte of every item). */
static long wk_verify(const struct wk *w)
{
	unsigned char want[ITEM];
	long bad = 0;

	for (size_t i = 0; i < w->n; i++) {
		item_bytes(want, i, w->shadow[i]);
		bad += memcmp(w->base + i * ITEM, want, ITEM) != 0;
	}
	return bad;
}

/* ---- system helpers ---------------------------------------------------------- */

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		ret = -errno;
	close(fd);
	return ret;
}

static long long read_num(const char *path, int field)
{
	char buf[512], *p = buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	for (int f = 0; f < field && p; f++) {
		p += strspn(p, " \t");
		p += strcspn(p, " \t\n");
	}
	return p ? strtoll(p, NULL, 10) : -1;
}

static uint64_t rss_anon(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	uint64_t kb = 0;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "RssAnon:", 8))
			kb = strtoull(line + 8, NULL, 10);
	if (f)
		fclose(f);
	return kb << 10;
}

static double cpu_secs(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
	       ru.ru_stime.tv_usec / 1e6;
}

/*
 * The kernel case's swap: a zram device of its own, lz4, as the only
 * swap with the highest priority, and a memory cgroup of the budget.
 * Returns 0, or -errno with why filled in.
 */
static int kernel_setup(struct far_opts *o, char *why, size_t len)
{
	char path[192], dev[64], val[64];
	long long n;

	o->zram = -1;
	if (geteuid()) {
		snprintf(why, len, "needs root (zram and a memory cgroup)");
		return -EPERM;
	}
	n = read_num("/sys/class/zram-control/hot_add", 0);
	if (n < 0) {
		snprintf(why, len, "no zram (/sys/class/zram-control/hot_add)");
		return -ENODEV;
	}
	o->zram = (int)n;
	snprintf(path, sizeof(path), "/sys/block/zram%d/comp_algorithm", o->zram);
	if (write_str(path, "lz4")) {
		snprintf(why, len, "zram%d: no lz4", o->zram);
		return -ENODEV;
	}
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", o->zram);
	snprintf(val, sizeof(val), "%zu", 2 * o->bytes);
	if (write_str(path, val)) {
		snprintf(why, len, "zram%d: disksize %s: %s", o->zram, val, strerror(errno));
		return -EIO;
	}
	snprintf(dev, sizeof(dev), "/dev/zram%d", o->zram);
	snprintf(path, sizeof(path), "mkswap %s >/dev/null 2>&1", dev);
	if (system(path) || swapon(dev, SWAP_FLAG_PREFER | (32767 & SWAP_FLAG_PRIO_MASK))) {
		snprintf(why, len, "%s: mkswap or swapon failed", dev);
		return -EIO;
	}
	/* v1 where the machine has it, else v2 */
	if (!access("/sys/fs/cgroup/memory/cgroup.procs", F_OK)) {
		snprintf(o->cgroup, sizeof(o->cgroup), "/sys/fs/cgroup/memory/pmv-bench-far.%d",
			 (int)getpid());
		o->cgroup_v2 = 0;
	} else {
		snprintf(o->cgroup, sizeof(o->cgroup), "/sys/fs/cgroup/pmv-bench-far.%d",
			 (int)getpid());
		o->cgroup_v2 = 1;
	}
	if (mkdir(o->cgroup, 0700)) {
		snprintf(why, len, "%s: %s", o->cgroup, strerror(errno));
		o->cgroup[0] = 0;
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/%s", o->cgroup,
		 o->cgroup_v2 ? "memory.max" : "memory.limit_in_bytes");
	snprintf(val, sizeof(val), "%zu", o->budget);
	if (write_str(path, val)) {
		snprintf(why, len, "%s: %s", path, strerror(errno));
		return -EIO;
	}
	return 0;
}

/* Always undone: a swap device left on changes every later run here. */
static void kernel_teardown(struct far_opts *o)
{
	sigset_t all, old;

	/* not twice at once: the signal handler below runs this too */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	char path[256], dev[64], val[16];

	if (o->cgroup[0])
		rmdir(o->cgroup);
	o->cgroup[0] = 0;
	if (o->zram < 0)
		return;
	snprintf(dev, sizeof(dev), "/dev/zram%d", o->zram);
	swapoff(dev);
	snprintf(path, sizeof(path), "/sys/block/zram%d/reset", o->zram);
	write_str(path, "1");
	snprintf(val, sizeof(val), "%d", o->zram);
	write_str("/sys/class/zram-control/hot_remove", val);
	o->zram = -1;
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/*
 * Interrupted (Ctrl-C, a test's timeout): the case's process goes, the
 * swap device and the cgroup too, then the signal takes its course.
 */
static struct far_opts *live_opts;
static volatile pid_t live_child;

static void on_signal(int sig)
{
	if (live_child > 0) {
		kill(live_child, SIGKILL);
		waitpid(live_child, NULL, 0);
	}
	if (live_opts)
		kernel_teardown(live_opts);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- one case, in a child ---------------------------------------------------- */

static int join_cgroup(const struct far_opts *o)
{
	char path[300], pid[24];

	snprintf(path, sizeof(path), "%s/cgroup.procs", o->cgroup);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	return write_str(path, pid);
}

static void run_case(int c, int pattern, const struct far_opts *o, struct far_res *r)
{
	static const int kinds[C_NR] = { 0, 0, PMV_TIER_LZ4, PMV_TIER_ZSTD, PMV_TIER_FILE,
					 PMV_TIER_LZ4 };
	size_t n = o->bytes / ITEM;
	pmv_ctx *ctx = NULL;
	unsigned char *base;
	struct wk w;
	double cpu0, t;

	memset(r, 0, sizeof(*r));
	/* the workload's own arrays first: the kernel's cgroup budget is the data's */
	if (wk_init(&w, NULL, n)) {
		r->skipped = 1;
		snprintf(r->why, sizeof(r->why), "setup: %s", strerror(ENOMEM));
		return;
	}
	if (c == C_KERNEL && join_cgroup(o)) {
		r->skipped = 1;
		snprintf(r->why, sizeof(r->why), "joining %s: %s", o->cgroup, strerror(errno));
		return;
	}
	if (c >= C_LZ4) {
		struct pmv_tier_config tc[2] = {
			{ .name = "dram", .node = PMV_NODE_ANY,
			  .capacity = c == C_PROACTIVE ? 0 : o->budget },
			{ .name = c == C_PROACTIVE ? "lz4" : case_names[c] + 9, .node = PMV_NODE_ANY,
			  .kind = kinds[c], .path = c == C_FILE ? o->dir : NULL },
		};
		struct pmv_policy_config pol = { .proactive_idle_s = o->proactive };
		struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .policy = &pol };

		ctx = pmv_create(&cfg);
		if (!ctx) {
			r->skipped = 1;
			snprintf(r->why, sizeof(r->why), "%s", pmv_errmsg());
			return;
		}
		if (c == C_LZ4 && pattern == 0) {
			/* each case runs in a child of its own: said at the first */
			struct pmv_ctx_stats cs;
			char why[512];

			pmv_ctx_stats(ctx, &cs);
			fprintf(stderr, "pagemove bench far: %s\n", mode_explain(&cs, why, sizeof(why)));
		}
		base = pmv_mmap(ctx, o->bytes, 0, 0);
	} else {
		base = mmap(NULL, o->bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			    -1, 0);
		if (base == MAP_FAILED)
			base = NULL;
		else
			madvise(base, o->bytes, MADV_NOHUGEPAGE);	/* 4 KB, as swap has it */
	}
	if (!base) {
		r->skipped = 1;
		snprintf(r->why, sizeof(r->why), "setup: %s", ctx ? pmv_errmsg() : strerror(errno));
		return;
	}
	w.base = base;
	wk_fill(&w);
	cpu0 = cpu_secs();
	t = bench_now();
	wk_run(&w, pattern, o->secs);
	t = bench_now() - t;
	r->cpu_s = cpu_secs() - cpu0;
	r->maccess_per_s = w.acc / t / 1e6;
	r->p50_us = pctl(&w, 0.5);
	r->p99_us = pctl(&w, 0.99);
	r->max_us = w.max_us;
	r->slow = w.slow;
	if (c == C_KERNEL) {
		char path[300];

		snprintf(path, sizeof(path), "%s/%s", o->cgroup,
			 o->cgroup_v2 ? "memory.current" : "memory.usage_in_bytes");
		r->dram_bytes = (uint64_t)read_num(path, 0);
		snprintf(path, sizeof(path), "/sys/block/zram%d/mm_stat", o->zram);
		/* orig_data_size compr_data_size mem_used_total ... */
		r->store_bytes = (uint64_t)read_num(path, 2);
		if (read_num(path, 2) > 0)
			r->ratio = (double)read_num(path, 0) / (double)read_num(path, 2);
	} else if (ctx) {
		struct pmv_tier_stats st;

		pmv_tier_stats(ctx, 0, &st);
		r->dram_bytes = st.resident_bytes + st.pool_bytes;
		/* what the far tier's store really uses, allocator waste included */
		pmv_tier_stats(ctx, 1, &st);
		r->store_bytes = st.stored_bytes;
		r->ratio = st.ratio;
	} else {
		r->dram_bytes = rss_anon();
	}
	r->bad = w.bad + wk_verify(&w);
	wk_free(&w);
	if (ctx)
		pmv_destroy(ctx);
}

/* Fork, run, and read the result back through a pipe. */
static void run_child(int c, int pattern, const struct far_opts *o, struct far_res *r)
{
	int p[2], st;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	if (pipe(p)) {
		r->skipped = 1;
		snprintf(r->why, sizeof(r->why), "pipe: %s", strerror(errno));
		return;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		run_case(c, pattern, o, r);
		if (write(p[1], r, sizeof(*r)) != sizeof(*r))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	live_child = pid;
	if (pid < 0 || read(p[0], r, sizeof(*r)) != sizeof(*r)) {
		r->skipped = 1;
		snprintf(r->why, sizeof(r->why), "the case's process died");
	}
	close(p[0]);
	if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFSIGNALED(st) && r->skipped)
		snprintf(r->why, sizeof(r->why), "the case's process was killed by SIG%s%s",
			 sigabbrev_np(WTERMSIG(st)) ?: "?", WTERMSIG(st) == SIGKILL && c == C_KERNEL ?
			 " (the memory cgroup's OOM killer: reclaim could not keep up)" : "");
	live_child = 0;
}

/* ---- --plot ------------------------------------------------------------------ */

/* Accesses per second and slow-access p99 per case, a panel each, patterns side by side. */
static int plot(const char *png, struct far_res res[P_NR][C_NR], size_t mb, size_t budget,
		const struct far_opts *o)
{
	char dat[] = "/tmp/pagemove-far-XXXXXX", gp[] = "/tmp/pagemove-far-XXXXXX";
	int fd1 = mkstemp(dat), fd2 = fd1 < 0 ? -1 : mkstemp(gp), ret = -1;
	FILE *d, *g;

	if (fd2 < 0) {
		perror("pagemove bench far: mkstemp");
		if (fd1 >= 0)
			unlink(dat), close(fd1);
		return -1;
	}
	d = fdopen(fd1, "w");
	g = fdopen(fd2, "w");
	/* a row per case: name, then accesses/s and p99 of each pattern (skipped: 0) */
	for (int c = 0; c < C_NR; c++) {
		if (!case_on(c, o))
			continue;
		fprintf(d, "%s", case_names[c]);
		for (int p = 0; p < P_NR; p++)
			fprintf(d, " %.4f %.1f", res[p][c].skipped ? 0 : res[p][c].maccess_per_s,
				res[p][c].skipped ? 0 : res[p][c].p99_us);
		fprintf(d, "\n");
	}
	fprintf(g, "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
		   "  set terminal pngcairo size 1000,800 font ',10'\n"
		   "} else {\n  set terminal png size 1000,800\n}\n");
	fprintf(g, "set output ");
	bench_gp_string(g, png);
	fprintf(g, "\nset multiplot layout 2,1 title 'pagemove bench far: %zu MB of data, "
		   "DRAM budget %zu MB (a skipped case is 0)'\n"
		   "set style data histograms\nset style histogram clustered gap 1\n"
		   "set style fill solid 0.8 border -1\nset grid ytics\nset key top right\n"
		   "set xtics noenhanced\n", mb, budget);
	fprintf(g, "set ylabel 'M accesses/s'\nplot ");
	for (int p = 0; p < P_NR; p++) {
		if (p)
			fprintf(g, ", ");
		bench_gp_string(g, dat);
		fprintf(g, " using %d:xtic(1) title '%s'", 2 + 2 * p, pattern_names[p]);
	}
	fprintf(g, "\nset ylabel 'slow access p99 (us)'\nset logscale y\nplot ");
	for (int p = 0; p < P_NR; p++) {
		if (p)
			fprintf(g, ", ");
		bench_gp_string(g, dat);
		fprintf(g, " using %d:xtic(1) title '%s'", 3 + 2 * p, pattern_names[p]);
	}
	fprintf(g, "\nunset multiplot\n");
	if (fclose(d) | fclose(g))
		perror("pagemove bench far: plot data");
	else
		ret = bench_gnuplot(gp, "pagemove bench far");
	unlink(dat);
	unlink(gp);
	return ret;
}

/* ---- the command ---------------------------------------------------------------- */

static int usage(void)
{
	fputs("Usage: pagemove bench far [--json] [--quick] [--plot FILE.png] [--mb MB]\n"
"                          [--seconds S] [--dir DIR] [--proactive S]\n"
"\n"
"The same workload over the same data with pagemove's far tiers and with\n"
"the kernel's own swap, at one DRAM budget (a quarter of the data), in one\n"
"run: zipf (s = 0.99), scan (zipf and a sequential scan) and shift (the hot\n"
"set moves twice), over MB of 4 KB items that compress about 2:1.\n"
"Cases: unlimited, kernel_zram_lz4 (a memory cgroup of the budget swapping\n"
"to zram with lz4: root only), pagemove_lz4, pagemove_zstd, pagemove_file.\n"
"\n"
"  -j, --json        print one JSON object instead of a table\n"
"  -q, --quick       128 MiB and 1 s a case: a smoke test, not a measurement\n"
"  -p, --plot FILE   also draw the results into FILE (PNG, needs gnuplot)\n"
"  -m, --mb MB       the data, 64..16384 MiB (default 1024)\n"
"  -s, --seconds S   each case's run, 0.5..600 (default 10)\n"
"  -d, --dir DIR     the file tier's directory (default /var/tmp)\n"
"  -P, --proactive S also pagemove_proactive: DRAM unbounded, lz4 below, and\n"
"                    pages idle S seconds demoted (proactive_idle_s), 1..3600\n"
"  -h, --help        show this help\n"
"\n"
"Exit status:\n"
"  0  every case measured or skipped with its reason\n"
"  1  a case found wrong data\n"
"  2  usage error\n",
	      stdout);
	return 0;
}

int cmd_bench_far(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' }, { "quick", no_argument, 0, 'q' },
		{ "mb", required_argument, 0, 'm' }, { "seconds", required_argument, 0, 's' },
		{ "dir", required_argument, 0, 'd' }, { "plot", required_argument, 0, 'p' },
		{ "proactive", required_argument, 0, 'P' },
		{ "help", no_argument, 0, 'h' }, { 0 }
	};
	struct far_opts o = { .secs = 10, .dir = "/var/tmp", .zram = -1 };
	struct far_res res[P_NR][C_NR];
	unsigned long mb = 1024;
	int json = 0, quick = 0, opt, mb_set = 0, secs_set = 0, bad = 0, kret;
	char kwhy[240] = "";
	const char *png = NULL;
	struct opt_parse op;

	opt_begin(&op, "bench far");
	while ((opt = getopt_long(argc, argv, ":jqm:s:d:p:P:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'j': json = 1; break;
		case 'q': quick = 1; break;
		case 'm': mb_set = opt_ulong(&op, "--mb", optarg, 64, 16384, &mb); break;
		case 's': secs_set = opt_double(&op, "--seconds", optarg, 0.5, 600, &o.secs); break;
		case 'd': o.dir = optarg; break;
		case 'P': opt_uint(&op, "--proactive", optarg, 1, 3600, &o.proactive); break;
		case 'p': png = optarg; break;
		case 'h': return usage();
		default: opt_getopt_error(&op, opt, argv); break;
		}
	}
	opt_no_args(&op, argc, argv);
	if (png && !bench_have_gnuplot())
		opt_error(&op, "--plot needs gnuplot (Debian: gnuplot-nox)");
	if (opt_end(&op))
		return OPT_EXIT_USAGE;
	if (quick) {
		if (!mb_set)
			mb = 128;
		if (!secs_set)
			o.secs = 1;
	}
	o.bytes = (size_t)mb << 20;
	o.budget = o.bytes / 4;
	fprintf(stderr, "pagemove bench far: %lu MB of 4 KB items, DRAM budget %zu MB, %.1f s a "
		"case\n", mb, o.budget >> 20, o.secs);
	live_opts = &o;
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	kret = kernel_setup(&o, kwhy, sizeof(kwhy));
	if (kret)
		kernel_teardown(&o);
	for (int p = 0; p < P_NR; p++) {
		for (int c = 0; c < C_NR; c++) {
			struct far_res *r = &res[p][c];

			if (!case_on(c, &o))
				continue;
			if (c == C_KERNEL && kret) {
				memset(r, 0, sizeof(*r));
				r->skipped = 1;
				snprintf(r->why, sizeof(r->why), "%s", kwhy);
			} else {
				run_child(c, p, &o, r);
			}
			bad += !r->skipped && r->bad;
			if (r->skipped)
				fprintf(stderr, "  %-6s %-18s skipped: %s\n", pattern_names[p],
					case_names[c], r->why);
			else
				fprintf(stderr, "  %-6s %-18s %7.2f M accesses/s, slow p50 %.0f us, "
					"p99 %.0f us%s\n", pattern_names[p], case_names[c],
					r->maccess_per_s, r->p50_us, r->p99_us,
					r->bad ? ", WRONG DATA" : "");
		}
	}
	kernel_teardown(&o);

	if (json) {
		int first = 1;

		printf("{\n  \"mb\": %lu,\n  \"budget_mb\": %zu,\n  \"seconds\": %.1f,\n"
		       "  \"cases\": [\n", mb, o.budget >> 20, o.secs);
		for (int p = 0; p < P_NR; p++)
			for (int c = 0; c < C_NR; c++) {
				const struct far_res *r = &res[p][c];

				if (!case_on(c, &o))
					continue;
				printf("%s    {\"name\": \"%s\", \"pattern\": \"%s\", ", first ? "" : ",\n",
				       case_names[c], pattern_names[p]);
				first = 0;
				if (r->skipped) {
					printf("\"skipped\": true, \"reason\": \"%s\"}", r->why);
					continue;
				}
				printf("\"maccess_per_s\": %.3f, \"fault_p50_us\": %.1f, "
				       "\"fault_p99_us\": %.1f, \"fault_max_us\": %.1f, "
				       "\"dram_bytes\": %llu, \"store_bytes\": %llu, \"ratio\": %.2f, "
				       "\"cpu_s\": %.2f, \"bad_items\": %ld}", r->maccess_per_s, r->p50_us,
				       r->p99_us, r->max_us, (unsigned long long)r->dram_bytes,
				       (unsigned long long)r->store_bytes, r->ratio, r->cpu_s, r->bad);
			}
		printf("\n  ]\n}\n");
	} else {
		printf("%lu MB of 4 KB items, DRAM budget %zu MB, %.1f s a case\n", mb,
		       o.budget >> 20, o.secs);
		printf("%-6s %-18s %9s %8s %8s %9s %9s %9s %6s %6s\n", "", "case", "Macc/s",
		       "p50 us", "p99 us", "max us", "DRAM MB", "store MB", "ratio", "cpu s");
		for (int p = 0; p < P_NR; p++)
			for (int c = 0; c < C_NR; c++) {
				const struct far_res *r = &res[p][c];

				if (!case_on(c, &o))
					continue;
				if (r->skipped) {
					printf("%-6s %-18s skipped: %s\n", pattern_names[p],
					       case_names[c], r->why);
					continue;
				}
				printf("%-6s %-18s %9.2f %8.0f %8.0f %9.0f %9.1f %9.1f %6.2f %6.2f%s\n",
				       pattern_names[p], case_names[c], r->maccess_per_s, r->p50_us,
				       r->p99_us, r->max_us, r->dram_bytes / 1048576.0,
				       r->store_bytes / 1048576.0, r->ratio, r->cpu_s,
				       r->bad ? "  WRONG DATA" : "");
			}
		printf("%s\n", bad ? "data WRONG in some case" : "data verified in every case run");
	}
	if (png && plot(png, res, mb, o.budget >> 20, &o) == 0)
		fprintf(stderr, "pagemove bench far: plot written to %s\n", png);
	return bad ? 1 : 0;
}
