/* SPDX-License-Identifier: MIT */
/*
 * pagemove stat --pid PID [--json]: where a process's memory lives, per
 * mapping and per NUMA node, like "numastat -p" but per mapping, with THPs.
 *
 * Resident pages per node come from /proc/PID/numa_maps (N<node>=pages, in
 * units of the mapping's kernel page size); sizes, Rss and THP totals from
 * /proc/PID/smaps, matched to numa_maps by start address. THPs per node are
 * not in either file: the THP heads found by the page scan (procmaps.c) are
 * looked up with move_pages(2) in query mode.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <numa.h>
#include <numaif.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "runstats.h"
#include "../common/opt.h"

#define CMD		"stat"
#define QUERY_CHUNK	512

struct smap {
	const struct cli_vma *vma;
	char *policy;		/* numa_maps policy; NULL if no numa_maps line */
	unsigned long *pages;	/* [nnodes], in vma->page_kb units */
	unsigned long *thp;	/* [nnodes] THPs; valid if thp_known */
	unsigned long thp_total;
	bool thp_known;
};

struct stat_ctx {
	pid_t pid;
	int nnodes;		/* numa_max_node() + 1 */
	bool *column;		/* [nnodes]: node is shown */
	struct cli_vma *vmas;
	size_t nr;
	struct smap *maps;
	struct cli_pagescan ps;
	bool have_scan;
	bool totals;		/* --totals: the TOTAL row alone */
	bool run_known;		/* under pagemove run: its stats */
	struct cli_run_stats run;
	char comm[64];
};

static void stat_usage(FILE *f)
{
	fputs(
"Usage: pagemove stat --pid PID [--totals] [--json]\n"
"\n"
"Show where the memory of process PID lives: resident MiB per NUMA node and\n"
"transparent huge pages (THPs) for every mapping, and totals.\n"
"\n"
"  -p, --pid PID   process to inspect\n"
"  -t, --totals    only the totals, as numastat -p prints them\n"
"  -j, --json      print one JSON object instead of a table\n"
"  -h, --help      show this help\n"
"\n"
"The table lists mappings with resident pages, sizes and memory in MiB;\n"
"--json lists all mappings, in KiB.\n"
"\n"
"Exit status:\n"
"  0  success\n"
"  2  usage error (unknown option, missing value, bad pid)\n"
"  3  no such process, or it has no user memory (kernel thread, zombie)\n"
"  4  permission denied (EPERM, EACCES): reading another process needs ptrace\n"
"     read access (the same user and a dumpable process, or CAP_SYS_PTRACE);\n"
"     the message gives the errno and the cause it can see\n"
"  5  other error (kernel without NUMA support, out of memory, I/O)\n",
	      f);
}

static int stat_usage_error(const char *fmt, const char *arg)
{
	fputs("pagemove " CMD ": ", stderr);
	fprintf(stderr, fmt, arg);
	fputs("\nTry 'pagemove " CMD " --help'.\n", stderr);
	return CLI_EXIT_USAGE;
}

static int read_numa_maps(struct stat_ctx *c)
{
	char *line = NULL, *save, *tok;
	size_t cap = 0, j = 0;
	int err = 0;
	FILE *f;

	f = cli_proc_fopen(c->pid, "numa_maps", &err);
	if (!f)
		return err;
	errno = 0;
	while (getline(&line, &cap, f) > 0) {
		unsigned long start;
		struct smap *m;

		tok = strtok_r(line, " \n", &save);
		if (!tok)
			continue;
		start = strtoul(tok, NULL, 16);
		/* both files are in address order; VMAs may change in between */
		while (j < c->nr && c->vmas[j].start < start)
			j++;
		if (j == c->nr || c->vmas[j].start != start)
			continue;
		m = &c->maps[j];
		tok = strtok_r(NULL, " \n", &save);
		if (!tok)
			continue;
		free(m->policy);
		m->policy = strdup(tok);
		if (!m->policy) {
			err = -ENOMEM;
			break;
		}
		while ((tok = strtok_r(NULL, " \n", &save))) {
			char *end;
			long node;

			if (tok[0] != 'N' || !isdigit((unsigned char)tok[1]))
				continue;
			node = strtol(tok + 1, &end, 10);
			if (*end == '=' && node < c->nnodes)
				m->pages[node] += strtoul(end + 1, NULL, 10);
		}
	}
	if (!err && ferror(f))
		err = errno ? -errno : -EIO;
	free(line);
	fclose(f);
	return err;
}

struct thp_query {
	struct stat_ctx *c;
	struct smap *m;
	void *addr[QUERY_CHUNK];
	unsigned int n;
};

static int thp_flush(struct thp_query *q)
{
	int status[QUERY_CHUNK];

	if (!q->n)
		return 0;
	if (move_pages(q->c->pid, q->n, q->addr, NULL, status, 0) < 0)
		return -errno;
	for (unsigned int i = 0; i < q->n; i++) {
		if (status[i] < 0 || status[i] >= q->c->nnodes)
			continue;	/* gone since the scan */
		q->m->thp[status[i]]++;
		q->m->thp_total++;
	}
	q->n = 0;
	return 0;
}

static int thp_run(void *arg, unsigned long start, unsigned long end, bool huge)
{
	struct thp_query *q = arg;
	int ret;

	if (!huge)
		return 0;
	for (unsigned long a = start; a < end; a += q->c->ps.pmd_size) {
		q->addr[q->n++] = (void *)a;
		if (q->n == QUERY_CHUNK && (ret = thp_flush(q)))
			return ret;
	}
	return 0;
}

/* THPs per node of one mapping; on failure thp_known stays false. */
static int count_thp(struct stat_ctx *c, struct smap *m)
{
	struct thp_query q = { .c = c, .m = m };
	int ret;

	ret = cli_pagescan(&c->ps, m->vma->start, m->vma->end, thp_run, &q);
	if (!ret)
		ret = thp_flush(&q);
	if (ret) {
		memset(m->thp, 0, c->nnodes * sizeof(*m->thp));
		m->thp_total = 0;
		return ret;
	}
	m->thp_known = true;
	return 0;
}

static unsigned long map_page_kb(const struct smap *m)
{
	return m->vma->page_kb ? m->vma->page_kb : 4;
}

static bool map_resident(const struct stat_ctx *c, const struct smap *m)
{
	for (int n = 0; n < c->nnodes; n++)
		if (m->pages[n])
			return true;
	return false;
}

static const char *map_kind(const struct smap *m)
{
	const struct cli_vma *v = m->vma;

	if (v->vmflags & CLI_VM_HUGETLB)
		return "hugetlb";
	if (cli_vma_special(v))
		return "special";
	if (!strcmp(v->path, "[heap]"))
		return "heap";
	if (!strncmp(v->path, "[stack", 6))
		return "stack";
	if (!v->path[0] || v->path[0] == '[')
		return "anon";
	return "file";
}

/* ---- output ---------------------------------------------------------------- */

static void print_path(FILE *f, const char *s)
{
	for (; *s; s++)
		fputc(iscntrl((unsigned char)*s) ? '?' : *s, f);
}

static void print_table(struct stat_ctx *c)
{
	unsigned long long total_size = 0, total_thp = 0;
	double *total_mib = calloc(c->nnodes, sizeof(double));
	size_t hidden = 0;
	char buf[32];

	printf("pid %d (%s): sizes and resident memory per node in MiB; THP = "
	       "PMD-mapped transparent huge pages", (int)c->pid, c->comm);
	if (!c->have_scan || !cli_pagescan_sees_thp(&c->ps))
		printf(" (from smaps; per-node THPs unavailable)");
	printf("\n%-12s %9s %-4s", "START", "SIZE", "PERM");
	for (int n = 0; n < c->nnodes; n++)
		if (c->column[n]) {
			snprintf(buf, sizeof(buf), "N%d", n);
			printf(" %9s", buf);
		}
	if (c->totals)
		printf(" %6s\n", "THP");
	else
		printf(" %6s  %-10s %s\n", "THP", "POLICY", "MAPPING");

	for (size_t i = 0; i < c->nr; i++) {
		struct smap *m = &c->maps[i];
		const struct cli_vma *v = m->vma;

		total_size += v->end - v->start;
		total_thp += m->thp_total;
		for (int n = 0; n < c->nnodes && total_mib; n++)
			total_mib[n] += m->pages[n] * map_page_kb(m) / 1024.0;
		if (c->totals)
			continue;
		if (!map_resident(c, m)) {
			hidden++;
			continue;
		}
		printf("%012lx %9.2f %-4s", v->start, (v->end - v->start) / 1048576.0, v->perms);
		for (int n = 0; n < c->nnodes; n++)
			if (c->column[n])
				printf(" %9.2f", m->pages[n] * map_page_kb(m) / 1024.0);
		printf(" %6lu  %-10s ", m->thp_total,
		       m->policy ? m->policy : "-");
		if (v->path[0])
			print_path(stdout, v->path);
		else
			fputs("[anon]", stdout);
		if (v->vmflags & CLI_VM_HUGETLB)
			printf(" (hugetlb %luK pages)", map_page_kb(m));
		putchar('\n');
	}
	printf("%-12s %9.2f %-4s", "TOTAL", total_size / 1048576.0, "-");
	for (int n = 0; n < c->nnodes; n++)
		if (c->column[n])
			printf(" %9.2f", total_mib ? total_mib[n] : 0.0);
	printf(" %6llu\n", total_thp);
	if (hidden)
		printf("(%zu of %zu mappings have no resident pages and are "
		       "not shown; --json lists all)\n", hidden, c->nr);
	free(total_mib);
}

/* JSON string: escapes quotes, backslashes, control and non-UTF-8 bytes. */
static void json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	while (*p) {
		unsigned char ch = *p;
		int len = ch < 0x80 ? 1 : (ch & 0xe0) == 0xc0 ? 2 :
			  (ch & 0xf0) == 0xe0 ? 3 : (ch & 0xf8) == 0xf0 ? 4 : 0;
		int ok = len > 1;

		for (int k = 1; k < len && ok; k++)
			ok = (p[k] & 0xc0) == 0x80;
		if (ch == '"' || ch == '\\') {
			fprintf(f, "\\%c", ch);
		} else if (ch < 0x20 || ch == 0x7f || (ch >= 0x80 && !ok)) {
			/* a stray byte becomes its Latin-1 code point */
			fprintf(f, "\\u%04x", ch);
		} else {
			fwrite(p, 1, len, f);
			p += len;
			continue;
		}
		p++;
	}
	fputc('"', f);
}

static void json_node_map(struct stat_ctx *c, const unsigned long long *v)
{
	bool first = true;

	putchar('{');
	for (int n = 0; n < c->nnodes; n++) {
		if (!c->column[n])
			continue;
		printf("%s\"%d\":%llu", first ? "" : ",", n, v[n]);
		first = false;
	}
	putchar('}');
}

static void print_json(struct stat_ctx *c)
{
	unsigned long long *kb = calloc(c->nnodes, sizeof(*kb));
	unsigned long long *thp = calloc(c->nnodes, sizeof(*thp));
	unsigned long long *tmp = calloc(c->nnodes, sizeof(*tmp));
	unsigned long long size = 0, rss = 0, swap = 0, ahp = 0, htlb = 0;
	unsigned long long thp_total = 0;
	bool thp_known = true, first = true;

	if (!kb || !thp || !tmp) {
		fputs("pagemove " CMD ": out of memory\n", stderr);
		goto out;
	}
	printf("{\"pid\":%d,\"comm\":", (int)c->pid);
	json_str(stdout, c->comm);
	printf(",\"page_size_kb\":%ld,\"thp_size_kb\":%lu,"
	       "\"thp_detection\":\"%s\",\"nodes\":[",
	       sysconf(_SC_PAGESIZE) / 1024, c->ps.pmd_size / 1024,
	       c->have_scan ? cli_pagescan_name(&c->ps) : "none");
	for (int n = 0; n < c->nnodes; n++) {
		if (!c->column[n])
			continue;
		printf("%s%d", first ? "" : ",", n);
		first = false;
	}
	printf("],\n");
	if (!c->totals)
		printf("\"mappings\":[");
	for (size_t i = 0; i < c->nr; i++) {
		struct smap *m = &c->maps[i];
		const struct cli_vma *v = m->vma;

		for (int n = 0; n < c->nnodes; n++)
			kb[n] += (unsigned long long)m->pages[n] * map_page_kb(m);
		if (m->thp_known)
			for (int n = 0; n < c->nnodes; n++)
				thp[n] += m->thp[n];
		else if (m->thp_total)
			thp_known = false;
		size += v->end - v->start;
		rss += v->rss_kb;
		swap += v->swap_kb;
		ahp += v->anon_huge_kb;
		htlb += v->hugetlb_kb;
		thp_total += m->thp_total;
		if (c->totals)
			continue;
		printf("%s\n{\"start\":\"0x%lx\",\"end\":\"0x%lx\","
		       "\"size_kb\":%lu,\"perms\":\"%s\",\"kind\":\"%s\","
		       "\"path\":", i ? "," : "", v->start, v->end,
		       (v->end - v->start) / 1024, v->perms, map_kind(m));
		json_str(stdout, v->path);
		printf(",\"policy\":");
		if (m->policy)
			json_str(stdout, m->policy);
		else
			printf("null");
		printf(",\"page_size_kb\":%lu,\"rss_kb\":%lu,\"swap_kb\":%lu,"
		       "\"anon_huge_kb\":%lu,\"hugetlb_kb\":%lu,"
		       "\"pages_per_node\":", map_page_kb(m), v->rss_kb,
		       v->swap_kb, v->anon_huge_kb, v->hugetlb_kb);
		for (int n = 0; n < c->nnodes; n++)
			tmp[n] = m->pages[n];
		json_node_map(c, tmp);
		printf(",\"thp\":%lu,\"thp_per_node\":", m->thp_total);
		if (m->thp_known) {
			for (int n = 0; n < c->nnodes; n++)
				tmp[n] = m->thp[n];
			json_node_map(c, tmp);
		} else {
			printf("null");
		}
		putchar('}');
	}
	if (!c->totals)
		printf("],\n");
	printf("\"totals\":{\"mappings\":%zu,\"size_kb\":%llu,"
	       "\"rss_kb\":%llu,\"swap_kb\":%llu,\"anon_huge_kb\":%llu,"
	       "\"hugetlb_kb\":%llu,\"kb_per_node\":", c->nr, size / 1024,
	       rss, swap, ahp, htlb);
	json_node_map(c, kb);
	printf(",\"thp\":%llu,\"thp_per_node\":", thp_total);
	if (thp_known)
		json_node_map(c, thp);
	else
		printf("null");
	printf("},\"run\":");
	if (c->run_known)
		cli_run_stats_json(&c->run);
	else
		printf("null");
	printf("}\n");
out:
	free(kb);
	free(thp);
	free(tmp);
}

/* ---- main -------------------------------------------------------------- */

static void read_comm(struct stat_ctx *c)
{
	int fd = cli_proc_open(c->pid, "comm");
	ssize_t n = -1;

	if (fd >= 0) {
		n = read(fd, c->comm, sizeof(c->comm) - 1);
		close(fd);
	}
	c->comm[n > 0 ? n : 0] = '\0';
	c->comm[strcspn(c->comm, "\n")] = '\0';
}

static int stat_run(struct stat_ctx *c, bool json)
{
	int err;

	err = cli_read_smaps(c->pid, &c->vmas, &c->nr);
	if (err)
		return cli_pid_error(CMD, c->pid, err, "reading smaps");
	if (!c->nr) {
		fprintf(stderr, "pagemove " CMD ": pid %d has no user memory "
			"(kernel thread or zombie)\n", (int)c->pid);
		return CLI_EXIT_NOPROC;
	}
	c->nnodes = numa_max_node() + 1;
	c->column = calloc(c->nnodes, sizeof(*c->column));
	c->maps = calloc(c->nr, sizeof(*c->maps));
	if (!c->column || !c->maps)
		goto nomem;
	for (size_t i = 0; i < c->nr; i++) {
		c->maps[i].vma = &c->vmas[i];
		c->maps[i].pages = calloc(c->nnodes, sizeof(unsigned long));
		c->maps[i].thp = calloc(c->nnodes, sizeof(unsigned long));
		if (!c->maps[i].pages || !c->maps[i].thp)
			goto nomem;
	}
	err = read_numa_maps(c);
	if (err == -ENOENT) {
		fputs("pagemove " CMD ": /proc/PID/numa_maps missing: kernel "
		      "without NUMA support\n", stderr);
		return CLI_EXIT_ERROR;
	}
	if (err)
		return cli_pid_error(CMD, c->pid, err, "reading numa_maps");

	err = cli_pagescan_open(&c->ps, c->pid);
	if (err == -ESRCH)
		return cli_pid_error(CMD, c->pid, err, "");
	c->have_scan = !err;
	for (size_t i = 0; i < c->nr; i++) {
		struct smap *m = &c->maps[i];
		const struct cli_vma *v = m->vma;

		if (v->vmflags & CLI_VM_HUGETLB) {
			m->thp_known = true;	/* no THPs: huge pages of its own */
			continue;
		}
		if (c->have_scan && cli_pagescan_sees_thp(&c->ps) &&
		    cli_vma_thp_kb(v)) {
			err = count_thp(c, m);
			if (err == -ESRCH)
				return cli_pid_error(CMD, c->pid, err, "");
			if (!err)
				continue;
		}
		/* no per-node answer: the count smaps implies */
		m->thp_total = cli_vma_thp_kb(v) * 1024 / c->ps.pmd_size;
		m->thp_known = !m->thp_total;
	}

	/* columns: nodes with memory, and any node that holds pages */
	for (int n = 0; n < c->nnodes; n++) {
		c->column[n] = numa_bitmask_isbitset(numa_nodes_ptr, n) &&
			       numa_node_size64(n, NULL) > 0;
		for (size_t i = 0; i < c->nr && !c->column[n]; i++)
			c->column[n] = c->maps[i].pages[n] != 0;
	}
	read_comm(c);
	c->run_known = cli_run_stats_read(c->pid, &c->run) == 0;
	if (json) {
		print_json(c);
	} else {
		print_table(c);
		if (c->run_known)
			cli_run_stats_print(&c->run);
	}
	if (fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "pagemove " CMD ": writing output: %s\n",
			strerror(errno));
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
nomem:
	fputs("pagemove " CMD ": out of memory\n", stderr);
	return CLI_EXIT_ERROR;
}

int cmd_stat(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid",	required_argument,	NULL, 'p' },
		{ "json",	no_argument,		NULL, 'j' },
		{ "totals",	no_argument,		NULL, 't' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	struct stat_ctx c = { .pid = 0 };
	const char *pid_arg = NULL;
	bool json = false;
	struct opt_parse op;
	int opt, ret;

	opt_begin(&op, CMD);
	while ((opt = getopt_long(argc, argv, ":p:jth", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			pid_arg = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 't':
			c.totals = true;
			break;
		case 'h':
			stat_usage(stdout);
			return CLI_EXIT_OK;
		default:
			opt_getopt_error(&op, opt, argv);
			break;
		}
	}
	opt_no_args(&op, argc, argv);
	if (opt_end(&op))
		return CLI_EXIT_USAGE;
	if (!pid_arg)
		return stat_usage_error("%s", "--pid is required");
	if (cli_parse_pid(pid_arg, &c.pid))
		return stat_usage_error("invalid pid '%s'", pid_arg);
	if (numa_available() < 0) {
		fputs("pagemove " CMD ": NUMA is not available on this "
		      "system\n", stderr);
		return CLI_EXIT_ERROR;
	}

	ret = stat_run(&c, json);

	if (c.have_scan)
		cli_pagescan_close(&c.ps);
	if (c.maps) {
		for (size_t i = 0; i < c.nr; i++) {
			free(c.maps[i].policy);
			free(c.maps[i].pages);
			free(c.maps[i].thp);
		}
		free(c.maps);
	}
	free(c.column);
	cli_free_vmas(c.vmas, c.nr);
	return ret;
}
