// SPDX-License-Identifier: MIT
/*
 * pagemove bench run: what pagemove run costs and gives an unmodified
 * program, in one run (docs/BENCH.md, "pagemove run").
 *
 *  - start-up: python3 -c pass natively and under pagemove run, the runs
 *    interleaved; the median of each, and the difference;
 *  - redis: the same load (redis-benchmark SET of --keys random keys of
 *    --value bytes) and the same measured mix (GET and SET, --requests
 *    each, 8 clients, random keys of the hot eighth of the key space)
 *    natively; under pagemove run with the policy
 *    off (the overhead); with a fast tier of a quarter of the data the
 *    native run held (used_memory) and the policy on (throughput, the
 *    fast tier's share of active pages, migrations); with that fast tier
 *    and an lz4 far tier; and natively in a memory cgroup of the same
 *    DRAM (the quarter plus redis's own start-up memory) swapping to a
 *    zram device with lz4, as bench far does (root only).
 *
 * Every program is found on PATH; redis's cases are skipped, saying why,
 * when redis-server, redis-cli or redis-benchmark is not there.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "../common/opt.h"

#define CMD	"bench run"

enum { R_NATIVE, R_OFF, R_POLICY, R_LZ4, R_KERNEL, R_NR };
static const char *const case_names[R_NR] = {
	"native", "run_policy_off", "run_fast_quarter_policy", "run_fast_quarter_lz4",
	"kernel_memcg_zram_lz4",
};

struct run_res {
	int skipped;
	char why[200];
	double get_rps, set_rps, fast_active;	/* fast_active < 0: none active */
	unsigned long long migrations, used_memory;
};

struct run_opts {
	unsigned long keys, value, requests, runs;
	char pm[4096];		/* this pagemove */
	char py[4096];		/* python3, resolved */
	int port;
	size_t quarter, base;	/* bytes: a quarter of the data; redis's own */
	int zram;
	char cgroup[128];
};

static int usage(FILE *f, int rc)
{
	fputs(
"Usage: pagemove bench run [--quick] [--json] [--keys N] [--value BYTES]\n"
"                          [--requests N] [--runs N] [--python PATH]\n"
"\n"
"Measure pagemove run on real programs: the start-up time it adds to\n"
"python3 -c pass (median of --runs runs of each, interleaved), and redis's\n"
"throughput natively, under pagemove run with the policy off, with a fast\n"
"tier of a quarter of its data and the policy on (and its fast-tier share of\n"
"active pages), with that fast tier and an lz4 far tier, and natively in a\n"
"memory cgroup of the same DRAM swapping to zram with lz4 (root only).\n"
"\n"
"  -q, --quick           small sizes: a smoke test, not a measurement\n"
"  -j, --json            print one JSON object instead of a table\n"
"  -k, --keys N          keys loaded, 1000 to 100000000 [400000]\n"
"  -v, --value BYTES     value size, 16 to 65536 [1024]\n"
"  -r, --requests N      GETs and SETs measured per case (to the hot eighth\n"
"                        of the keys), 1000 to 1e9 [400000]\n"
"  -n, --runs N          start-up runs of each, 3 to 10000 [51]\n"
"  -p, --python PATH     the python3 to start [python3's sys.executable]\n"
"  -h, --help            show this help\n"
"\n"
"Exit status:\n"
"  0  success (a case that cannot run here is reported as skipped)\n"
"  1  a case failed: python3 or redis did not run, or ran over 300 s\n"
"  2  usage error (unknown option, bad value)\n",
	      f);
	return rc;
}

/* ---- small process helpers --------------------------------------------------- */

/* The first line sh -c cmd prints, in buf; its exit status (-1: not run). */
static int sh_line(const char *cmd, char *buf, size_t len)
{
	FILE *p = popen(cmd, "r");
	int st;

	if (buf && len)
		buf[0] = 0;
	if (!p)
		return -1;
	if (buf && len && fgets(buf, (int)len, p))
		buf[strcspn(buf, "\r\n")] = 0;
	while (fgetc(p) != EOF)
		;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int on_path(const char *prog)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", prog);
	return sh_line(cmd, NULL, 0) == 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Run argv, output to /dev/null; its wall seconds, or -1 if it failed. */
static double time_run(char *const argv[])
{
	double t0 = bench_now();
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (!pid) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, 1);
		dup2(fd, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return bench_now() - t0;
}

/* ---- start-up ------------------------------------------------------------------ */

struct startup_res {
	double native_ms, run_ms, added_ms, native_p25_ms, run_p25_ms;
	int ok;
};

static void startup(const struct run_opts *o, struct startup_res *r)
{
	char *nat[] = { (char *)o->py, "-c", "pass", NULL };
	char *run[] = { (char *)o->pm, "run", "--", (char *)o->py, "-c", "pass", NULL };
	double *a = calloc(o->runs, sizeof(*a)), *b = calloc(o->runs, sizeof(*b));

	memset(r, 0, sizeof(*r));
	if (!a || !b)
		goto out;
	/* one of each first: the page cache holds both afterwards */
	if (time_run(nat) < 0 || time_run(run) < 0)
		goto out;
	for (unsigned long i = 0; i < o->runs; i++) {
		/* interleaved, so that a busy moment costs both alike */
		a[i] = time_run(nat);
		b[i] = time_run(run);
		if (a[i] < 0 || b[i] < 0)
			goto out;
	}
	qsort(a, o->runs, sizeof(*a), cmp_double);
	qsort(b, o->runs, sizeof(*b), cmp_double);
	r->native_ms = 1e3 * a[o->runs / 2];
	r->run_ms = 1e3 * b[o->runs / 2];
	r->native_p25_ms = 1e3 * a[o->runs / 4];
	r->run_p25_ms = 1e3 * b[o->runs / 4];
	r->added_ms = r->run_ms - r->native_ms;
	r->ok = 1;
out:
	free(a);
	free(b);
}

/* ---- redis ---------------------------------------------------------------------- */

static int cli(const struct run_opts *o, const char *args, char *buf, size_t len)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "redis-cli -p %d %s 2>/dev/null", o->port, args);
	return sh_line(cmd, buf, len);
}

/* A field of INFO, as a number (0 if none). */
static unsigned long long info_num(const struct run_opts *o, const char *section, const char *key)
{
	char cmd[512], buf[128];

	snprintf(cmd, sizeof(cmd), "redis-cli -p %d info %s 2>/dev/null | tr -d '\\r' | "
		 "sed -n 's/^%s:\\([0-9]*\\).*/\\1/p'", o->port, section, key);
	if (sh_line(cmd, buf, sizeof(buf)))
		return 0;
	return strtoull(buf, NULL, 10);
}

/* Start redis-server (prefix: pagemove run and its options, or ""),
 * in cgroup if given; its pid (that of what was started), or -1. */
static pid_t redis_start(const struct run_opts *o, const char *prefix, const char *cgroup,
			 const char *dir)
{
	char cmd[8192], pong[16];
	pid_t pid;

	snprintf(cmd, sizeof(cmd), "exec %s redis-server --port %d --dir '%s' --save '' "
		 "--appendonly no --daemonize no --logfile '%s/log'", prefix, o->port, dir, dir);
	pid = fork();
	if (pid < 0)
		return -1;
	if (!pid) {
		if (cgroup) {
			char path[256], me[24];
			int fd;

			snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
			snprintf(me, sizeof(me), "%d", (int)getpid());
			fd = open(path, O_WRONLY);
			if (fd < 0 || write(fd, me, strlen(me)) < 0)
				_exit(126);
			close(fd);
		}
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		int st;

		if (waitpid(pid, &st, WNOHANG) == pid)
			return -1;
		if (!cli(o, "ping", pong, sizeof(pong)) && !strcmp(pong, "PONG"))
			return pid;
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

static void redis_stop(const struct run_opts *o, pid_t pid)
{
	cli(o, "shutdown nosave", NULL, 0);
	for (int i = 0; i < 100 && waitpid(pid, NULL, WNOHANG) == 0; i++)
		usleep(50000);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/*
 * Requests per second of redis-benchmark's test t (get or set) over keys
 * 0..range-1; -1 if it failed or ran over BENCH_RUN_TIMEOUT seconds (a
 * far tier that thrashes: a case must end).
 */
#define BENCH_RUN_TIMEOUT	300
static double bench_rps(const struct run_opts *o, const char *t, unsigned long n,
			unsigned long range)
{
	char cmd[512], buf[256], *p;

	snprintf(cmd, sizeof(cmd), "timeout %d redis-benchmark -p %d -t %s -n %lu -r %lu -d %lu "
		 "-c 8 --csv 2>/dev/null | grep -i '^\"%s\"'", BENCH_RUN_TIMEOUT, o->port, t, n,
		 range, o->value, t);
	if (sh_line(cmd, buf, sizeof(buf)))
		return -1;
	p = strchr(buf, ',');
	return p ? strtod(p + 2, NULL) : -1;	/* "GET","123.45",... */
}

/* The fast tier's share of active pages and the migrations, from the
 * stats file of pid (preload/preload.c writes it). */
static void run_stats(pid_t pid, struct run_res *r)
{
	char path[256], line[512];
	unsigned long long act[16] = { 0 }, all = 0;
	FILE *f;

	r->fast_active = -1;
	snprintf(path, sizeof(path), "/dev/shm/pagemove-run.%u.%d", (unsigned)getuid(), (int)pid);
	f = fopen(path, "r");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long a;
		int t;
		char *s;

		if (sscanf(line, "migrations %llu", &r->migrations) == 1)
			continue;
		if (sscanf(line, "tier %d", &t) == 1 && t >= 0 && t < 16 &&
		    (s = strstr(line, " active ")) && sscanf(s, " active %llu", &a) == 1)
			act[t] = a;
	}
	fclose(f);
	for (int t = 0; t < 16; t++)
		all += act[t];
	if (all)
		r->fast_active = (double)act[0] / (double)all;
}

static void redis_case(int c, struct run_opts *o, struct run_res *r, const char *tmp)
{
	char prefix[8192], dir[512];
	const char *cg = NULL;
	pid_t pid, rpid;

	memset(r, 0, sizeof(*r));
	r->fast_active = -1;
	snprintf(dir, sizeof(dir), "%s/%s", tmp, case_names[c]);
	mkdir(dir, 0700);
	switch (c) {
	case R_NATIVE:
	case R_KERNEL:
		prefix[0] = 0;
		break;
	case R_OFF:
		snprintf(prefix, sizeof(prefix), "'%s' run --policy off --stats-interval 0.5 --", o->pm);
		break;
	default:
		snprintf(prefix, sizeof(prefix), "'%s' run --tiers mem:%zu,%s --stats-interval 0.5 --",
			 o->pm, o->quarter, c == R_LZ4 ? "lz4" : "mem");
	}
	if (c == R_KERNEL) {
		if (o->cgroup[0] == 0) {
			r->skipped = 1;
			return;
		}
		cg = o->cgroup;
	}
	pid = redis_start(o, prefix, cg, dir);
	if (pid < 0) {
		r->skipped = -1;
		snprintf(r->why, sizeof(r->why), "redis-server did not start (see its log)");
		return;
	}
	if (c == R_NATIVE)
		o->base = info_num(o, "memory", "used_memory_rss");
	/* the load: a SET of every key, by one client, then the mix */
	if (bench_rps(o, "set", o->keys, o->keys) < 0) {
		r->skipped = -1;
		snprintf(r->why, sizeof(r->why), "redis-benchmark failed");
		redis_stop(o, pid);
		return;
	}
	r->used_memory = info_num(o, "memory", "used_memory");
	/* skewed: every request to the hot eighth of the key space */
	r->get_rps = bench_rps(o, "get", o->requests, o->keys / 8);
	r->set_rps = r->get_rps < 0 ? -1 : bench_rps(o, "set", o->requests, o->keys / 8);
	if (r->get_rps < 0 || r->set_rps < 0) {
		r->skipped = -1;
		snprintf(r->why, sizeof(r->why), "redis-benchmark failed or ran over %d s",
			 BENCH_RUN_TIMEOUT);
	}
	rpid = (pid_t)info_num(o, "server", "process_id");
	if (c != R_NATIVE && c != R_KERNEL && rpid > 0) {
		usleep(600000);	/* one more stats interval */
		run_stats(rpid, r);
	}
	redis_stop(o, pid);
}

/* ---- the kernel case's zram and cgroup (as bench far) ---------------------------- */

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

static void kernel_teardown(struct run_opts *o)
{
	char path[256], val[16];

	if (o->cgroup[0])
		rmdir(o->cgroup);
	o->cgroup[0] = 0;
	if (o->zram < 0)
		return;
	snprintf(path, sizeof(path), "/dev/zram%d", o->zram);
	swapoff(path);
	snprintf(path, sizeof(path), "/sys/block/zram%d/reset", o->zram);
	write_str(path, "1");
	snprintf(val, sizeof(val), "%d", o->zram);
	write_str("/sys/class/zram-control/hot_remove", val);
	o->zram = -1;
}

/* A zram swap of lz4 and a cgroup of limit bytes: 0, or why not. */
static int kernel_setup(struct run_opts *o, size_t limit, size_t data, char *why, size_t len)
{
	char path[160], val[64];
	FILE *f;
	int n = -1;

	o->zram = -1;
	o->cgroup[0] = 0;
	if (geteuid()) {
		snprintf(why, len, "needs root (zram and a memory cgroup)");
		return -EPERM;
	}
	f = fopen("/sys/class/zram-control/hot_add", "r");
	if (!f || fscanf(f, "%d", &n) != 1) {
		if (f)
			fclose(f);
		snprintf(why, len, "no zram (/sys/class/zram-control/hot_add)");
		return -ENODEV;
	}
	fclose(f);
	o->zram = n;
	snprintf(path, sizeof(path), "/sys/block/zram%d/comp_algorithm", n);
	if (write_str(path, "lz4")) {
		snprintf(why, len, "zram%d: no lz4", n);
		goto fail;
	}
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", n);
	snprintf(val, sizeof(val), "%zu", 2 * data + (64UL << 20));
	if (write_str(path, val)) {
		snprintf(why, len, "zram%d: disksize %s", n, val);
		goto fail;
	}
	snprintf(path, sizeof(path), "mkswap /dev/zram%d >/dev/null 2>&1", n);
	if (system(path)) {
		snprintf(why, len, "mkswap /dev/zram%d failed", n);
		goto fail;
	}
	snprintf(path, sizeof(path), "/dev/zram%d", n);
	if (swapon(path, SWAP_FLAG_PREFER | (32767 & SWAP_FLAG_PRIO_MASK))) {
		snprintf(why, len, "swapon /dev/zram%d: %s", n, strerror(errno));
		goto fail;
	}
	if (!access("/sys/fs/cgroup/memory/cgroup.procs", F_OK))
		snprintf(o->cgroup, sizeof(o->cgroup), "/sys/fs/cgroup/memory/pmv-bench-run.%d",
			 (int)getpid());
	else
		snprintf(o->cgroup, sizeof(o->cgroup), "/sys/fs/cgroup/pmv-bench-run.%d",
			 (int)getpid());
	if (mkdir(o->cgroup, 0700)) {
		snprintf(why, len, "%s: %s", o->cgroup, strerror(errno));
		o->cgroup[0] = 0;
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", o->cgroup,
		 strstr(o->cgroup, "/memory/") ? "memory.limit_in_bytes" : "memory.max");
	snprintf(val, sizeof(val), "%zu", limit);
	if (write_str(path, val)) {
		snprintf(why, len, "the cgroup's memory limit cannot be set");
		goto fail;
	}
	return 0;
fail:
	kernel_teardown(o);
	return -EIO;
}

static struct run_opts *live;

static void on_signal(int sig)
{
	if (live)
		kernel_teardown(live);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---- the command ------------------------------------------------------------------ */

int cmd_bench_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "quick", no_argument, 0, 'q' }, { "json", no_argument, 0, 'j' },
		{ "keys", required_argument, 0, 'k' }, { "value", required_argument, 0, 'v' },
		{ "requests", required_argument, 0, 'r' }, { "runs", required_argument, 0, 'n' },
		{ "python", required_argument, 0, 'p' }, { "help", no_argument, 0, 'h' }, { 0 }
	};
	const char *python = NULL;
	struct run_opts o = { .keys = 400000, .value = 1024, .requests = 400000, .runs = 51,
			      .zram = -1 };
	int json = 0, quick = 0, opt, have_redis, ret = 0, set[4] = { 0 };
	struct run_res res[R_NR];
	struct startup_res su;
	char tmp[] = "/tmp/pmv-bench-run.XXXXXX", kwhy[200] = "", cmd[8200];
	struct opt_parse op;
	ssize_t n;

	opt_begin(&op, CMD);
	while ((opt = getopt_long(argc, argv, ":qjk:v:r:n:p:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'q': quick = 1; break;
		case 'j': json = 1; break;
		case 'k': set[0] = opt_ulong(&op, "--keys", optarg, 1000, 100000000, &o.keys); break;
		case 'v': set[1] = opt_ulong(&op, "--value", optarg, 16, 65536, &o.value); break;
		case 'r': set[2] = opt_ulong(&op, "--requests", optarg, 1000, 1000000000,
					     &o.requests); break;
		case 'n': set[3] = opt_ulong(&op, "--runs", optarg, 3, 10000, &o.runs); break;
		case 'p':
			if (access(optarg, X_OK))
				opt_error(&op, "--python '%s': not an executable file", optarg);
			python = optarg;
			break;
		case 'h': return usage(stdout, 0);
		default: opt_getopt_error(&op, opt, argv); break;
		}
	}
	opt_no_args(&op, argc, argv);
	if (opt_end(&op))
		return OPT_EXIT_USAGE;
	if (quick) {
		if (!set[0])
			o.keys = 20000;
		if (!set[1])
			o.value = 256;
		if (!set[2])
			o.requests = 20000;
		if (!set[3])
			o.runs = 5;
	}
	n = readlink("/proc/self/exe", o.pm, sizeof(o.pm) - 1);
	if (n <= 0) {
		fprintf(stderr, "pagemove " CMD ": /proc/self/exe: %s\n", strerror(errno));
		return 1;
	}
	o.pm[n] = 0;
	/* the interpreter itself, not a wrapper (pyenv's shims are scripts) */
	if (python && strlen(python) < sizeof(o.py))
		snprintf(o.py, sizeof(o.py), "%s", python);
	else if (sh_line("python3 -c 'import sys; print(sys.executable)' 2>/dev/null", o.py,
		    sizeof(o.py)) || !o.py[0]) {
		fprintf(stderr, "pagemove " CMD ": python3 does not run\n");
		return 1;
	}
	if (!mkdtemp(tmp)) {
		fprintf(stderr, "pagemove " CMD ": mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	o.port = 20000 + (int)(getpid() % 20000);
	if (!json)
		printf("pagemove bench run (%s): python3 %s, %lu start-ups each\n",
		       quick ? "quick, not a measurement" : "full", o.py, o.runs);
	startup(&o, &su);
	if (!su.ok) {
		fprintf(stderr, "pagemove " CMD ": python3 -c pass failed, natively or under "
			"pagemove run\n");
		ret = 1;
	} else if (!json) {
		printf("start-up: python3 -c pass %.2f ms, under pagemove run %.2f ms: "
		       "%+.2f ms (p25 %.2f and %.2f)\n", su.native_ms, su.run_ms, su.added_ms,
		       su.native_p25_ms, su.run_p25_ms);
	}
	have_redis = on_path("redis-server") && on_path("redis-cli") && on_path("redis-benchmark");
	for (int c = 0; c < R_NR; c++) {
		memset(&res[c], 0, sizeof(res[c]));
		res[c].fast_active = -1;
		if (!have_redis) {
			res[c].skipped = 1;
			snprintf(res[c].why, sizeof(res[c].why),
				 "redis-server, redis-cli or redis-benchmark not on PATH");
			continue;
		}
		if (c == R_POLICY) {
			/* a quarter of what the native run held */
			o.quarter = (res[R_NATIVE].used_memory / 4 + 4095) & ~4095UL;
			if (o.quarter < (4UL << 20))
				o.quarter = 4UL << 20;
		}
		if (c == R_KERNEL) {
			live = &o;
			signal(SIGINT, on_signal);
			signal(SIGTERM, on_signal);
			if (kernel_setup(&o, o.quarter + o.base, res[R_NATIVE].used_memory, kwhy,
					 sizeof(kwhy))) {
				res[c].skipped = 1;
				snprintf(res[c].why, sizeof(res[c].why), "%s", kwhy);
				continue;
			}
		}
		if (!json)
			printf("  %s ...\n", case_names[c]);
		fflush(stdout);
		redis_case(c, &o, &res[c], tmp);
		if (c == R_KERNEL) {
			kernel_teardown(&o);
			signal(SIGINT, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			live = NULL;
		}
		if (res[c].skipped < 0)
			ret = 1;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd))
		fprintf(stderr, "pagemove " CMD ": cannot remove %s\n", tmp);

	if (json) {
		printf("{\"quick\":%s,\"keys\":%lu,\"value\":%lu,\"requests\":%lu,\"runs\":%lu,",
		       quick ? "true" : "false", o.keys, o.value, o.requests, o.runs);
		if (su.ok)
			printf("\"startup\":{\"native_ms\":%.3f,\"run_ms\":%.3f,\"added_ms\":%.3f,"
			       "\"native_p25_ms\":%.3f,\"run_p25_ms\":%.3f},", su.native_ms,
			       su.run_ms, su.added_ms, su.native_p25_ms, su.run_p25_ms);
		else
			printf("\"startup\":null,");
		printf("\"fast_tier_bytes\":%zu,\"redis\":[", o.quarter);
		for (int c = 0; c < R_NR; c++) {
			const struct run_res *r = &res[c];

			printf("%s{\"name\":\"%s\"", c ? "," : "", case_names[c]);
			if (r->skipped) {
				printf(",\"skipped\":true,\"reason\":\"%s\"}", r->why);
				continue;
			}
			printf(",\"get_rps\":%.1f,\"set_rps\":%.1f,\"used_memory\":%llu",
			       r->get_rps, r->set_rps, r->used_memory);
			if (c != R_NATIVE && res[R_NATIVE].get_rps > 0)
				printf(",\"get_vs_native\":%.4f,\"set_vs_native\":%.4f",
				       r->get_rps / res[R_NATIVE].get_rps,
				       r->set_rps / res[R_NATIVE].set_rps);
			if (c == R_OFF || c == R_POLICY || c == R_LZ4) {
				printf(",\"migrations\":%llu", r->migrations);
				if (r->fast_active >= 0)
					printf(",\"fast_active_fraction\":%.4f", r->fast_active);
				else
					printf(",\"fast_active_fraction\":null");
			}
			printf("}");
		}
		printf("]}\n");
		return ret;
	}
	printf("redis: %lu keys of %lu bytes, %lu GETs and SETs per case; fast tier %.1f MB\n",
	       o.keys, o.value, o.requests, o.quarter / 1048576.0);
	printf("%-26s %12s %12s %8s %8s %11s %10s\n", "CASE", "GET/S", "SET/S", "GET%", "SET%",
	       "MIGRATIONS", "FAST_ACT%");
	for (int c = 0; c < R_NR; c++) {
		const struct run_res *r = &res[c];
		char fa[16] = "-";

		if (r->skipped) {
			printf("%-26s skipped: %s\n", case_names[c], r->why);
			continue;
		}
		if (r->fast_active >= 0)
			snprintf(fa, sizeof(fa), "%.1f", 100 * r->fast_active);
		printf("%-26s %12.0f %12.0f %8.1f %8.1f %11llu %10s\n", case_names[c], r->get_rps,
		       r->set_rps, res[R_NATIVE].get_rps > 0 ? 100 * r->get_rps /
		       res[R_NATIVE].get_rps : 0, res[R_NATIVE].set_rps > 0 ? 100 * r->set_rps /
		       res[R_NATIVE].set_rps : 0, r->migrations, fa);
	}
	return ret;
}
