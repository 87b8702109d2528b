/* SPDX-License-Identifier: MIT */
/*
 * Readers for another process's memory layout, shared by "pagemove migrate"
 * and "pagemove stat": /proc/PID/smaps, node lists, and the walk over
 * resident pages and THPs.
 *
 * Resident pages and THPs come from the best source available:
 *  - the PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7+): one call
 *    returns whole runs of present pages, flagged PAGE_IS_HUGE when PMD
 *    mapped, skips unpopulated ranges at page-table speed and needs only
 *    the ptrace-read access that /proc/PID/maps needs;
 *  - otherwise pagemap entries (present bit), and when we may read
 *    /proc/kpageflags (root), a PMD-sized block counts as one THP if its
 *    first PFN is a THP head, PMD aligned, and all its PTEs map the
 *    following PFNs;
 *  - otherwise pagemap entries alone: resident pages but no THPs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <numa.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/types.h>

#include "cli.h"

/* PAGEMAP_SCAN is Linux 6.7, newer than Debian 12's uapi headers */
#include "../src/compat.h"

/* Documentation/admin-guide/mm/pagemap.rst (PM_PRESENT: compat.h) */
#define PM_PFN_MASK		((1ULL << 55) - 1)
#define KPF_COMPOUND_HEAD	15
#define KPF_THP			22
#define KPF_ZERO_PAGE		24

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))

/* ---- small helpers ------------------------------------------------------- */

FILE *cli_proc_fopen(pid_t pid, const char *name, int *err)
{
	int fd = cli_proc_open(pid, name);
	FILE *f;

	if (fd < 0) {
		*err = fd;
		return NULL;
	}
	f = fdopen(fd, "r");
	if (!f) {
		*err = -errno;
		close(fd);
	}
	return f;
}

int cli_exit_code(int err)
{
	switch (err) {
	case 0:
		return CLI_EXIT_OK;
	case -ESRCH:
		return CLI_EXIT_NOPROC;
	case -EPERM:
	case -EACCES:
		return CLI_EXIT_PERM;
	default:
		return CLI_EXIT_ERROR;
	}
}

/* The first number of /proc/PID/status's "KEY:" line, or -1. */
static long status_field(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtol(line + klen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/*
 * Why reading another process's /proc files or calling move_pages() on it
 * was refused, as far as we can tell: both need ptrace read access to it
 * (the kernel's PTRACE_MODE_READ), which is the same user and group and a
 * dumpable process, or CAP_SYS_PTRACE; a security module may refuse either.
 * Only what we can see is claimed; the rest is named as likely.
 */
static const char *access_hint(pid_t pid, char *buf, size_t len)
{
	unsigned long long capeff = 0;
	long their = status_field(pid, "Uid");	/* its real uid: status is world-readable */
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	bool cap;

	if (f) {
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "CapEff:", 7))
				capeff = strtoull(line + 7, NULL, 16);
		fclose(f);
	}
	cap = capeff & (1ULL << 19);	/* CAP_SYS_PTRACE */
	if (cap)
		snprintf(buf, len, "this process has CAP_SYS_PTRACE, so likely a security "
			 "module (SELinux, AppArmor, Landlock) refused, or pid %d is in a user "
			 "namespace that this capability does not cover", (int)pid);
	else if (their >= 0 && their != (long)geteuid())
		snprintf(buf, len, "likely cause: pid %d runs as uid %ld and this process as uid "
			 "%d, without CAP_SYS_PTRACE", (int)pid, their, (int)geteuid());
	else
		snprintf(buf, len, "same user but no CAP_SYS_PTRACE: likely pid %d is not dumpable "
			 "(a set-user-ID or capability program, or prctl PR_SET_DUMPABLE 0), "
			 "its groups differ, or a security module refused", (int)pid);
	return buf;
}

int cli_pid_error(const char *cmd, pid_t pid, int err, const char *what)
{
	switch (err) {
	case -ESRCH:
		fprintf(stderr, "pagemove %s: pid %d: no such process\n",
			cmd, (int)pid);
		break;
	case -EPERM:
	case -EACCES: {
		char why[256];

		fprintf(stderr, "pagemove %s: pid %d: %s: %s (%s); %s\n", cmd, (int)pid,
			what, strerror(-err), cli_errno_name(err),
			access_hint(pid, why, sizeof(why)));
		break;
	}
	default:
		fprintf(stderr, "pagemove %s: pid %d: %s: %s\n",
			cmd, (int)pid, what, strerror(-err));
	}
	return cli_exit_code(err);
}

int cli_parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > INT_MAX)
		return -EINVAL;
	*pid = (pid_t)v;
	return 0;
}

int cli_proc_open(pid_t pid, const char *name)
{
	char path[64];
	struct stat st;
	int fd, err;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	err = errno;
	/* a missing file in an existing /proc/PID is not a missing process */
	if (err == ENOENT) {
		snprintf(path, sizeof(path), "/proc/%d", (int)pid);
		if (stat(path, &st) && errno == ENOENT)
			return -ESRCH;
	}
	return -err;
}

void cli_fmt_size(char *buf, size_t len, uint64_t bytes)
{
	static const char unit[] = "KMGTPE";
	double v = (double)bytes / 1024;
	unsigned int i = 0;

	while (v >= 1024 && i < sizeof(unit) - 2) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, "%.1f%c", v, unit[i]);
}

const char *cli_errno_name(int err)
{
	switch (err < 0 ? -err : err) {
	case EFAULT:	return "EFAULT";
	case ENOENT:	return "ENOENT";
	case EBUSY:	return "EBUSY";
	case ENOMEM:	return "ENOMEM";
	case EACCES:	return "EACCES";
	case EPERM:	return "EPERM";
	case EIO:	return "EIO";
	case EINVAL:	return "EINVAL";
	case EAGAIN:	return "EAGAIN";
	case ENODEV:	return "ENODEV";
	case ESRCH:	return "ESRCH";
	default:	return "other";
	}
}

/*
 * Our own parser rather than numa_parse_nodestring(): that one prints
 * "libnuma: Warning" lines of its own, checks nodes against *our* cpuset
 * instead of the target's, and cannot say which node was wrong.
 */
int cli_parse_nodes(const char *s, struct bitmask **mask, long *bad)
{
	int max = numa_max_node();
	struct bitmask *bm = numa_allocate_nodemask();
	const char *p = s;

	if (!bm)
		return -ENOMEM;
	if (!strcmp(s, "all")) {
		for (int n = 0; n <= max; n++)
			if (numa_node_size64(n, NULL) > 0)
				numa_bitmask_setbit(bm, n);
		*mask = bm;
		return 0;
	}
	for (;;) {
		long a, b;
		char *end;

		if (!isdigit((unsigned char)*p))
			goto inval;
		a = strtol(p, &end, 10);
		p = end;
		b = a;
		if (*p == '-') {
			p++;
			if (!isdigit((unsigned char)*p))
				goto inval;
			b = strtol(p, &end, 10);
			p = end;
			if (b < a)
				goto inval;
		}
		for (long n = a; n <= b; n++) {
			if (n > max || !numa_bitmask_isbitset(numa_nodes_ptr, n)) {
				*bad = n;
				numa_bitmask_free(bm);
				return -ENODEV;
			}
			numa_bitmask_setbit(bm, n);
		}
		if (!*p)
			break;
		if (*p++ != ',')
			goto inval;
	}
	*mask = bm;
	return 0;
inval:
	numa_bitmask_free(bm);
	return -EINVAL;
}

/* ---- /proc/PID/smaps ----------------------------------------------------- */

static const struct {
	const char *key;
	size_t off;
} smaps_keys[] = {
	{ "Rss",		offsetof(struct cli_vma, rss_kb) },
	{ "KernelPageSize",	offsetof(struct cli_vma, page_kb) },
	{ "AnonHugePages",	offsetof(struct cli_vma, anon_huge_kb) },
	{ "ShmemPmdMapped",	offsetof(struct cli_vma, shmem_pmd_kb) },
	{ "FilePmdMapped",	offsetof(struct cli_vma, file_pmd_kb) },
	{ "Shared_Hugetlb",	offsetof(struct cli_vma, hugetlb_kb) },
	{ "Private_Hugetlb",	offsetof(struct cli_vma, hugetlb_kb) },
	{ "Swap",		offsetof(struct cli_vma, swap_kb) },
};

static void smaps_field(struct cli_vma *v, char *line)
{
	char *colon = strchr(line, ':');
	unsigned long val;

	if (!colon)
		return;
	*colon = '\0';
	if (!strcmp(line, "VmFlags")) {
		char *save, *tok;

		for (tok = strtok_r(colon + 1, " ", &save); tok;
		     tok = strtok_r(NULL, " ", &save)) {
			if (!strcmp(tok, "io"))
				v->vmflags |= CLI_VM_IO;
			else if (!strcmp(tok, "pf"))
				v->vmflags |= CLI_VM_PFNMAP;
			else if (!strcmp(tok, "ht"))
				v->vmflags |= CLI_VM_HUGETLB;
		}
		return;
	}
	if (sscanf(colon + 1, "%lu", &val) != 1)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(smaps_keys); i++) {
		if (!strcmp(line, smaps_keys[i].key)) {
			/* += so both *_Hugetlb lines add up */
			*(unsigned long *)((char *)v + smaps_keys[i].off) += val;
			return;
		}
	}
}

void cli_free_vmas(struct cli_vma *vmas, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		free(vmas[i].path);
	free(vmas);
}

int cli_read_smaps(pid_t pid, struct cli_vma **vmas, size_t *nr)
{
	struct cli_vma *v = NULL, *cur = NULL;
	size_t n = 0, alloc = 0, cap = 0;
	char *line = NULL;
	ssize_t len;
	int err = 0;
	FILE *f;

	f = cli_proc_fopen(pid, "smaps", &err);
	if (!f)
		return err;
	errno = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		int pos = 0;
		char *p;

		if (line[len - 1] == '\n')
			line[--len] = '\0';
		/* field lines start "Name:", VMA headers with a hex address */
		if (isupper((unsigned char)line[0])) {
			if (cur)
				smaps_field(cur, line);
			continue;
		}
		if (n == alloc) {
			size_t na = alloc ? 2 * alloc : 64;
			struct cli_vma *nv = realloc(v, na * sizeof(*v));

			if (!nv) {
				err = -ENOMEM;
				goto out;
			}
			v = nv;
			alloc = na;
		}
		cur = &v[n];
		memset(cur, 0, sizeof(*cur));
		if (sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &cur->start,
			   &cur->end, cur->perms, &pos) < 3 || !pos) {
			cur = NULL;	/* unknown line format: ignore */
			continue;
		}
		for (p = line + pos; *p == ' '; p++)
			;
		cur->path = strdup(p);
		if (!cur->path) {
			err = -ENOMEM;
			goto out;
		}
		if (cur->perms[3] == 's')
			cur->vmflags |= CLI_VM_SHARED;
		n++;
	}
	if (ferror(f))
		err = errno ? -errno : -EIO;
out:
	free(line);
	fclose(f);
	if (err) {
		cli_free_vmas(v, n);
		return err;
	}
	*vmas = v;
	*nr = n;
	return 0;
}

const char *cli_vma_special(const struct cli_vma *vma)
{
	const char *p = vma->path;

	if (vma->vmflags & (CLI_VM_IO | CLI_VM_PFNMAP))
		return "device or PFN mapping";
	/* [vdso], [vvar], [vsyscall], [uprobes]...: pages owned by the kernel */
	if (p[0] == '[' && strcmp(p, "[heap]") && strncmp(p, "[stack", 6) &&
	    strncmp(p, "[anon", 5))
		return "kernel special mapping";
	return NULL;
}

/* ---- resident pages and THPs --------------------------------------------- */

struct run_acc {
	cli_run_fn fn;
	void *arg;
	unsigned long start, end;
	bool huge, have;
};

static int run_flush(struct run_acc *r)
{
	if (!r->have)
		return 0;
	r->have = false;
	return r->fn(r->arg, r->start, r->end, r->huge);
}

static int run_add(struct run_acc *r, unsigned long start, unsigned long end,
		   bool huge)
{
	int ret;

	if (r->have && r->end == start && r->huge == huge) {
		r->end = end;
		return 0;
	}
	ret = run_flush(r);
	if (ret)
		return ret;
	r->start = start;
	r->end = end;
	r->huge = huge;
	r->have = true;
	return 0;
}

static unsigned long read_pmd_size(unsigned long page_size)
{
	unsigned long v = 0;
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size",
			"re");

	if (f) {
		if (fscanf(f, "%lu", &v) != 1)
			v = 0;
		fclose(f);
	}
	/* a page table page holds page_size / 8 entries */
	return v ? v : page_size * (page_size / 8);
}

int cli_pagescan_open(struct cli_pagescan *ps, pid_t pid)
{
	struct page_region vec[1];
	struct pm_scan_arg arg;
	const char *force;
	int fd;

	ps->page_size = (unsigned long)sysconf(_SC_PAGESIZE);
	ps->pmd_size = read_pmd_size(ps->page_size);
	ps->kpageflags_fd = -1;
	fd = cli_proc_open(pid, "pagemap");
	if (fd < 0)
		return fd;
	ps->pagemap_fd = fd;

	/* PAGEMAP_SCAN=kpageflags|pagemap forces a fallback, for testing */
	force = getenv("PAGEMOVE_SCAN");
	if (force && strcmp(force, "kpageflags") && strcmp(force, "pagemap"))
		force = NULL;

	/* probe PAGEMAP_SCAN on one (unmapped) page; old kernels: ENOTTY */
	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.end = ps->page_size;
	arg.vec = (uintptr_t)vec;
	arg.vec_len = ARRAY_SIZE(vec);
	arg.category_mask = PAGE_IS_PRESENT;
	arg.return_mask = PAGE_IS_PRESENT;
	if (!force && ioctl(fd, PAGEMAP_SCAN, &arg) >= 0) {
		ps->mode = CLI_SCAN_IOCTL;
		return 0;
	}
	if (!force || !strcmp(force, "kpageflags"))
		ps->kpageflags_fd = open("/proc/kpageflags",
					 O_RDONLY | O_CLOEXEC);
	ps->mode = ps->kpageflags_fd >= 0 ? CLI_SCAN_KPAGEFLAGS :
					     CLI_SCAN_PAGEMAP;
	return 0;
}

void cli_pagescan_close(struct cli_pagescan *ps)
{
	if (ps->kpageflags_fd >= 0)
		close(ps->kpageflags_fd);
	close(ps->pagemap_fd);
}

const char *cli_pagescan_name(const struct cli_pagescan *ps)
{
	switch (ps->mode) {
	case CLI_SCAN_IOCTL:
		return "pagemap_scan";
	case CLI_SCAN_KPAGEFLAGS:
		return "kpageflags";
	default:
		return "none";
	}
}

static int scan_ioctl(struct cli_pagescan *ps, unsigned long start,
		      unsigned long end, struct run_acc *acc)
{
	unsigned long pmd_mask = ps->pmd_size - 1;
	struct page_region vec[256];
	struct pm_scan_arg arg;

	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.start = start;
	arg.end = end;
	arg.vec = (uintptr_t)vec;
	arg.vec_len = ARRAY_SIZE(vec);
	/* present, and not the shared zero page (move_pages: -EFAULT) */
	arg.category_inverted = PAGE_IS_PFNZERO;
	arg.category_mask = PAGE_IS_PRESENT | PAGE_IS_PFNZERO;
	arg.return_mask = PAGE_IS_PRESENT | PAGE_IS_HUGE;

	while (arg.start < end) {
		long n = ioctl(ps->pagemap_fd, PAGEMAP_SCAN, &arg);

		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++) {
			unsigned long s = vec[i].start, e = vec[i].end;
			unsigned long hs = (s + pmd_mask) & ~pmd_mask;
			unsigned long he = e & ~pmd_mask;
			int ret;

			/* only whole PMDs count as THPs */
			if (!(vec[i].categories & PAGE_IS_HUGE) || hs >= he) {
				ret = run_add(acc, s, e, false);
			} else {
				ret = 0;
				if (s < hs)
					ret = run_add(acc, s, hs, false);
				if (!ret)
					ret = run_add(acc, hs, he, true);
				if (!ret && he < e)
					ret = run_add(acc, he, e, false);
			}
			if (ret)
				return ret;
		}
		if (arg.walk_end <= arg.start)
			return -EIO;	/* no progress: do not spin */
		arg.start = arg.walk_end;
	}
	return 0;
}

/* Is the PMD-sized block of pagemap entries @ent one PMD-mapped THP? */
static bool block_is_thp(struct cli_pagescan *ps, const uint64_t *ent,
			 size_t n)
{
	uint64_t pfn = ent[0] & PM_PFN_MASK, flags;

	/* PFNs read as 0 without CAP_SYS_ADMIN */
	if (!(ent[0] & PM_PRESENT) || !pfn || pfn % n)
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(ent[i] & PM_PRESENT) || (ent[i] & PM_PFN_MASK) != pfn + i)
			return false;
	if (pread(ps->kpageflags_fd, &flags, sizeof(flags),
		  (off_t)(pfn * sizeof(flags))) != sizeof(flags))
		return false;
	return (flags & (1ULL << KPF_THP)) &&
	       (flags & (1ULL << KPF_COMPOUND_HEAD)) &&
	       !(flags & (1ULL << KPF_ZERO_PAGE));	/* huge zero page */
}

static int scan_pagemap(struct cli_pagescan *ps, unsigned long start,
			unsigned long end, struct run_acc *acc)
{
	size_t per_pmd = ps->pmd_size / ps->page_size;
	uint64_t *ent = malloc(per_pmd * sizeof(*ent));
	unsigned long a = start;
	int ret = 0;

	if (!ent)
		return -ENOMEM;
	/* blocks never cross a PMD boundary, so a whole block may be a THP */
	while (a < end && !ret) {
		unsigned long bend = (a & ~(ps->pmd_size - 1)) + ps->pmd_size;
		size_t n;
		ssize_t r;

		if (bend > end)
			bend = end;
		n = (bend - a) / ps->page_size;
		r = pread(ps->pagemap_fd, ent, n * sizeof(*ent),
			  (off_t)(a / ps->page_size * sizeof(*ent)));
		if (r < 0) {
			ret = -errno;
			break;
		}
		n = (size_t)r / sizeof(*ent);
		if (!n)
			break;
		if (ps->mode == CLI_SCAN_KPAGEFLAGS && n == per_pmd &&
		    block_is_thp(ps, ent, n)) {
			ret = run_add(acc, a, a + ps->pmd_size, true);
		} else {
			for (size_t i = 0; i < n && !ret; i++)
				if (ent[i] & PM_PRESENT)
					ret = run_add(acc, a + i * ps->page_size,
						      a + (i + 1) * ps->page_size,
						      false);
		}
		a += n * ps->page_size;
	}
	free(ent);
	return ret;
}

int cli_pagescan(struct cli_pagescan *ps, unsigned long start,
		 unsigned long end, cli_run_fn fn, void *arg)
{
	struct run_acc acc = { .fn = fn, .arg = arg };
	int ret;

	if (ps->mode == CLI_SCAN_IOCTL)
		ret = scan_ioctl(ps, start, end, &acc);
	else
		ret = scan_pagemap(ps, start, end, &acc);
	if (!ret)
		ret = run_flush(&acc);
	return ret;
}
