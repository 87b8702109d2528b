/* SPDX-License-Identifier: MIT */
/*
 * pagemove run [OPTIONS] -- PROG [ARGS...]: run an unmodified program with
 * libpagemove-preload.so, its large anonymous memory managed.
 *
 * Every option becomes the environment variable the preload reads
 * (common/runcfg.h), so that PROG's children that exec get their own
 * context with the same settings. Before PROG starts, the settings are
 * checked by making a context here (the tiers, the userfaultfd mode) and
 * PROG by reading its ELF header (static and set-id programs ignore
 * LD_PRELOAD). Then PROG runs as a child: its status is ours.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "pagemove.h"
#include "lib_cmds.h"
#include "../common/mode.h"
#include "../common/opt.h"
#include "../common/runcfg.h"

#define CMD	"run"

#ifndef PMV_LIBDIR
#define PMV_LIBDIR "/usr/local/lib"
#endif

/* Our own failures; anything else is PROG's status. */
enum {
	RUN_EXIT_CTX	 = 120,	/* the tiers or the context cannot be made */
	RUN_EXIT_MODE	 = 121,	/* user-mode-only, no --allow-user-mode */
	RUN_EXIT_PRELOAD = 122,	/* libpagemove-preload.so not found */
	RUN_EXIT_USAGE	 = 125,
	RUN_EXIT_NOEXEC	 = 126,	/* PROG cannot run (under the preload) */
	RUN_EXIT_NOTFOUND = 127,
};

static void run_usage(FILE *f)
{
	fputs(
"Usage: pagemove run [OPTIONS] [--] PROG [ARGS...]\n"
"\n"
"Run PROG with libpagemove-preload.so: its anonymous private mappings of\n"
"at least --min-size (large malloc blocks, mmap buffers, allocator arenas)\n"
"are managed memory on the tiers given, moved by the tiering policy.\n"
"\n"
"  -t, --tiers SPEC          tiers, fastest first, as pmv_tiers_parse(3):\n"
"                            mem[@NODE][:SIZE],... [PAGEMOVE_TIERS; mem]\n"
"  -p, --policy MODE         auto, track or off [PAGEMOVE_POLICY; auto]\n"
"  -m, --min-size SIZE       smallest mapping managed, at least 4K\n"
"                            [PAGEMOVE_RUN_MIN_SIZE; 1M]\n"
"  -H, --huge MODE           2 MB pages: auto (where a mapping allows them,\n"
"                            none with a far tier), always, never\n"
"                            [PAGEMOVE_RUN_HUGE; auto]\n"
"  -s, --stats-interval S    seconds between stats for 'pagemove stat --pid',\n"
"                            0: none [PAGEMOVE_RUN_STATS_INTERVAL; 1]\n"
"  -u, --allow-user-mode     run even when only the user-mode-only\n"
"                            userfaultfd is permitted (no tiering policy)\n"
"                            [PAGEMOVE_RUN_ALLOW_USER_MODE=1]\n"
"  -h, --help                show this help\n"
"\n"
"An option overrides its variable; the variables reach PROG's children.\n"
"\n"
"Exit status: PROG's, or 128+N if it died of signal N; else\n"
"  0  (--help)\n"
"  120  the tiers or the context cannot be made (the message says why)\n"
"  121  full mode is not permitted and --allow-user-mode was not given\n"
"  122  libpagemove-preload.so not found (PAGEMOVE_PRELOAD names it)\n"
"  125  usage error (unknown option, bad value, no PROG)\n"
"  126  PROG cannot run under the preload: not executable, statically\n"
"       linked, set-user-ID, set-group-ID or with file capabilities\n"
"  127  PROG not found\n",
	      f);
}

/* PROG's path: as given if it has a '/', else the first match in PATH. */
static int find_prog(const char *prog, char *out, size_t len)
{
	const char *path = getenv("PATH");
	int err = -ENOENT;

	if (strchr(prog, '/')) {
		snprintf(out, len, "%s", prog);
		return access(out, F_OK) ? -errno : 0;
	}
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t n = strcspn(path, ":");

		snprintf(out, len, "%.*s%s%s", (int)n, path, n ? "/" : "./", prog);
		if (access(out, X_OK) == 0)
			return 0;
		if (access(out, F_OK) == 0)
			err = -EACCES;
		path += n + (path[n] == ':');
	}
	return err;
}

/*
 * Why PROG cannot be preloaded, or NULL: the dynamic loader ignores
 * LD_PRELOAD (of a library outside the trusted directories) for set-id and
 * capability programs, and a static one has no loader at all.
 */
static const char *prog_unfit(const char *path)
{
	Elf64_Ehdr eh;
	struct stat st;
	int fd;

	if (stat(path, &st) || !S_ISREG(st.st_mode))
		return "is not a regular file";
	if (access(path, X_OK))
		return "is not executable";
	if (st.st_mode & S_ISUID)
		return "is set-user-ID: the loader ignores LD_PRELOAD for it";
	if (st.st_mode & S_ISGID)
		return "is set-group-ID: the loader ignores LD_PRELOAD for it";
	if (getxattr(path, "security.capability", NULL, 0) > 0)
		return "has file capabilities: the loader ignores LD_PRELOAD for it";
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;	/* exec will say */
	if (read(fd, &eh, sizeof(eh)) == (ssize_t)sizeof(eh) && !memcmp(eh.e_ident, ELFMAG, SELFMAG)) {
		bool interp = false;

		if (eh.e_ident[EI_CLASS] != ELFCLASS64) {
			close(fd);
			return "is not a 64-bit program";
		}
		for (int i = 0; i < eh.e_phnum; i++) {
			Elf64_Phdr ph;

			if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) !=
			    (ssize_t)sizeof(ph))
				break;
			interp |= ph.p_type == PT_INTERP;
		}
		close(fd);
		return interp ? NULL : "is statically linked: there is no loader to preload a library";
	}
	close(fd);
	return NULL;	/* a script: its interpreter gets the preload */
}

/* The preload library: PAGEMOVE_PRELOAD, next to this program (a build
 * tree), ../lib from it, or the install directory. */
static int find_preload(char *out, size_t len)
{
	const char *env = getenv("PAGEMOVE_PRELOAD");
	static const char *const rel[] = { "", "/../lib" };
	char exe[PATH_MAX - 64];
	ssize_t n;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, R_OK) ? -errno : 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		*strrchr(exe, '/') = 0;
		for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
			snprintf(out, len, "%s%s/libpagemove-preload.so", exe, rel[i]);
			if (access(out, R_OK) == 0)
				return 0;
		}
	}
	snprintf(out, len, "%s/libpagemove-preload.so", PMV_LIBDIR);
	return access(out, R_OK) ? -ENOENT : 0;
}

/* The library's (src/internal.h): pmv_create's checks, with no thread
 * started, so that the check does not cost PROG's start-up a thread
 * start and join each (ms on a loaded machine). */
pmv_ctx *_pmv_create_probe(const struct pmv_config *cfg);

/*
 * Make a context as the preload will, to say now what it would only
 * print: bad tiers, a far tier's store that cannot open, no userfaultfd,
 * or user-mode-only.
 */
static int probe(const struct _pmvp_config *c, bool allow_user_mode)
{
	struct pmv_config pc = { .ntiers = c->ntiers, .tiers = c->tiers };
	struct pmv_ctx_stats cs;
	char why[512];
	pmv_ctx *ctx = _pmv_create_probe(&pc);
	int err = errno;

	if (!ctx) {
		fprintf(stderr, "pagemove run: cannot make the tiers' context: %s%s%s\n",
			strerror(err), *pmv_errmsg() ? ": " : "", pmv_errmsg());
		return RUN_EXIT_CTX;
	}
	if (pmv_ctx_stats(ctx, &cs) == 0 && cs.mode != PMV_MODE_FULL && !allow_user_mode) {
		fprintf(stderr, "pagemove run: %s\n", mode_explain(&cs, why, sizeof(why)));
		fprintf(stderr, "pagemove run: refusing to run without full mode. Get it with one of:\n"
			"  chgrp userfaultfd /dev/userfaultfd; chmod 660 /dev/userfaultfd  "
			"(and the user in that group)\n"
			"  setcap cap_sys_ptrace+ep PROG  (it may then trace the user's processes)\n"
			"  sysctl vm.unprivileged_userfaultfd=1  (for every user)\n"
			"or accept the user-mode-only fallback: --allow-user-mode\n");
		pmv_destroy(ctx);
		return RUN_EXIT_MODE;
	}
	pmv_destroy(ctx);
	return 0;
}

static pid_t child;

static void forward(int sig)
{
	if (child > 0)
		kill(child, sig);
}

int cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "tiers",		required_argument,	NULL, 't' },
		{ "policy",		required_argument,	NULL, 'p' },
		{ "min-size",		required_argument,	NULL, 'm' },
		{ "huge",		required_argument,	NULL, 'H' },
		{ "stats-interval",	required_argument,	NULL, 's' },
		{ "allow-user-mode",	no_argument,		NULL, 'u' },
		{ "help",		no_argument,		NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	static const int fwd[] = { SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH };
	char prog[PATH_MAX], so[PATH_MAX], *ld;
	struct _pmvp_config c;
	struct opt_parse op;
	int opt, status, ret;
	size_t sz;
	unsigned ms;
	int huge;

	opt_begin(&op, CMD);
	while ((opt = getopt_long(argc, argv, "+:t:p:m:H:s:uh", longopts, NULL)) != -1) {
		switch (opt) {
		case 't': {
			struct pmv_tier_config t[PMV_MAX_TIERS];
			char buf[1024];

			if (strlen(optarg) >= sizeof(buf) ||
			    pmv_tiers_parse(optarg, t, PMV_MAX_TIERS, buf, sizeof(buf)) < 0)
				opt_error(&op, "--tiers '%s': %s", optarg,
					  strlen(optarg) >= sizeof(buf) ? "too long" : pmv_errmsg());
			else
				setenv("PAGEMOVE_TIERS", optarg, 1);
			break;
		}
		case 'p':
			if (_pmvp_parse_policy(optarg))
				opt_error(&op, "--policy '%s': not auto, track or off", optarg);
			else
				setenv("PAGEMOVE_POLICY", optarg, 1);
			break;
		case 'm':
			if (_pmvp_parse_size(optarg, &sz) || sz < 4096)
				opt_error(&op, "--min-size '%s': not a size of at least 4K (4096, 64K, "
					  "1M)", optarg);
			else
				setenv("PAGEMOVE_RUN_MIN_SIZE", optarg, 1);
			break;
		case 'H':
			if (_pmvp_parse_huge(optarg, &huge))
				opt_error(&op, "--huge '%s': not auto, always or never", optarg);
			else
				setenv("PAGEMOVE_RUN_HUGE", optarg, 1);
			break;
		case 's':
			if (_pmvp_parse_interval(optarg, &ms))
				opt_error(&op, "--stats-interval '%s': not a number of seconds "
					  "(0 to 86400)", optarg);
			else
				setenv("PAGEMOVE_RUN_STATS_INTERVAL", optarg, 1);
			break;
		case 'u':
			setenv("PAGEMOVE_RUN_ALLOW_USER_MODE", "1", 1);
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			opt_getopt_error(&op, opt, argv);
		}
	}
	if (optind >= argc && !op.bad)
		opt_error(&op, "no PROG to run");
	/* the variables as the preload will read them, options included */
	_pmvp_config_from_env(&c);
	if (c.error[0])
		opt_error(&op, "%s", c.error);
	if (opt_end(&op))
		return RUN_EXIT_USAGE;

	ret = find_prog(argv[optind], prog, sizeof(prog));
	if (ret) {
		fprintf(stderr, "pagemove run: %s: %s\n", argv[optind], strerror(-ret));
		return ret == -ENOENT ? RUN_EXIT_NOTFOUND : RUN_EXIT_NOEXEC;
	}
	const char *unfit = prog_unfit(prog);
	if (unfit) {
		fprintf(stderr, "pagemove run: %s %s\n", prog, unfit);
		return RUN_EXIT_NOEXEC;
	}
	if (find_preload(so, sizeof(so))) {
		fprintf(stderr, "pagemove run: libpagemove-preload.so not found next to pagemove, "
			"in ../lib from it, nor in %s; PAGEMOVE_PRELOAD=PATH names it\n", PMV_LIBDIR);
		return RUN_EXIT_PRELOAD;
	}
	if ((ret = probe(&c, c.allow_user_mode)))
		return ret;

	ld = getenv("LD_PRELOAD");
	if (ld && *ld) {
		size_t n = strlen(so) + strlen(ld) + 2;
		char *both = malloc(n);

		if (!both)
			return RUN_EXIT_CTX;
		snprintf(both, n, "%s:%s", so, ld);
		setenv("LD_PRELOAD", both, 1);
		free(both);
	} else {
		setenv("LD_PRELOAD", so, 1);
	}

	/* the terminal's SIGINT and SIGQUIT reach PROG itself, as with system(3) */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
		signal(fwd[i], forward);
	fflush(NULL);
	child = fork();
	if (child < 0) {
		fprintf(stderr, "pagemove run: fork: %s\n", strerror(errno));
		return RUN_EXIT_CTX;
	}
	if (child == 0) {
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		execv(prog, argv + optind);
		fprintf(stderr, "pagemove run: %s: %s\n", prog, strerror(errno));
		_exit(errno == ENOENT ? RUN_EXIT_NOTFOUND : RUN_EXIT_NOEXEC);
	}
	while (waitpid(child, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, "pagemove run: waitpid: %s\n", strerror(errno));
			return RUN_EXIT_CTX;
		}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
