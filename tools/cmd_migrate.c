/* SPDX-License-Identifier: MIT */
/*
 * pagemove migrate --pid PID --from NODES --to NODES: move the pages of any
 * process between NUMA nodes with move_pages(2). Like numactl's
 * migratepages, but THPs move whole, several threads copy at once, the
 * rate can be capped, and every page that stays behind is accounted for.
 *
 *  1. /proc/PID/smaps lists the mappings; kernel and device mappings are
 *     skipped (move_pages can only fail on them).
 *  2. The page scan (procmaps.c) finds resident runs and PMD-mapped THPs,
 *     which are cut into work items of at most CHUNK_PAGES addresses: one
 *     address per base page, one per THP (its head, so the kernel migrates
 *     the folio whole), one per hugetlb page.
 *  3. Worker threads take items, look up each page's node (move_pages with
 *     nodes == NULL), and move the pages found on a --from node to their
 *     target (MPOL_MF_MOVE). See mig_move() for reading the result.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "../common/opt.h"

#define CMD		"migrate"
#define CHUNK_PAGES	512		/* addresses per move_pages() call */
#define CHUNK_BYTES	(16UL << 20)	/* ...and at most this much memory */
#define MAX_THREADS	1024
#define MAX_ATTEMPTS	3		/* move calls per page */
#define STATUS_UNSET	INT_MIN		/* the kernel did not write it */
#define NSEC		1000000000ULL

enum reason {
	R_EFAULT, R_ENOENT, R_EBUSY, R_ENOMEM, R_EACCES, R_EPERM, R_EIO,
	R_EINVAL, R_NOTMIG, R_OTHER, NR_REASONS
};

static const struct {
	const char *name;
	const char *why;
} reasons[NR_REASONS] = {
	[R_EFAULT] = { "EFAULT", "not movable (zero page, special or unmapped memory)" },
	[R_ENOENT] = { "ENOENT", "went away during the move (freed, unmapped, swapped out)" },
	[R_EBUSY]  = { "EBUSY",	 "busy: pinned, under I/O, or being changed" },
	[R_ENOMEM] = { "ENOMEM", "no free memory on the target node" },
	[R_EACCES] = { "EACCES", "shared with other processes (--move-all moves them)" },
	[R_EPERM]  = { "EPERM",	 "not permitted" },
	[R_EIO]	   = { "EIO",	 "I/O error writing back a dirty page" },
	[R_EINVAL] = { "EINVAL", "cannot be migrated (e.g. dirty page, file system without migration)" },
	[R_NOTMIG] = { "-",	 "not migrated: the kernel gave up without a per-page reason" },
	[R_OTHER]  = { "other",	 "other error" },
};

/* A run of addresses, `stride` apart; `present` of them were resident. */
struct mig_item {
	unsigned long start;
	unsigned long stride;
	unsigned int n;
	unsigned int present;
	bool huge;
};

/* Counts are in base pages, so a THP that moves adds 512 to `moved`. */
struct mig_stats {
	uint64_t resident;
	uint64_t in_place;	/* resident but not on a --from node */
	uint64_t moved;
	uint64_t moved_huge;	/* THPs and hugetlb pages moved */
	uint64_t moved_bytes;
	uint64_t failed[NR_REASONS];
};

struct mig_ctx {
	pid_t pid;
	int flags;		/* MPOL_MF_MOVE or MPOL_MF_MOVE_ALL */
	bool move_all, huge_only, quiet;
	int nnodes;
	int *node_map;		/* [nnodes]: target of a --from node, else -1 */
	unsigned long page_size;
	struct cli_pagescan ps;

	struct mig_item *items;
	size_t nr_items, alloc_items;
	uint64_t total_bytes;	/* resident bytes in items, for progress */
	unsigned int nr_scanned_vmas;	/* with resident pages */
	char skipped[256];	/* names of skipped mappings */
	unsigned int nr_skipped;

	/* shared by the workers */
	atomic_size_t next_item;
	atomic_uint_fast64_t done_bytes;
	atomic_uint_fast64_t moved_bytes;
	atomic_int fatal;	/* first fatal -errno */
	atomic_bool stop;

	double ns_per_byte;	/* --rate; 0: unlimited */
	pthread_mutex_t rate_lock;
	uint64_t rate_next, rate_burst;

	pthread_mutex_t lock;	/* running, total */
	pthread_cond_t done;
	unsigned int running;
	struct mig_stats total;
	uint64_t t_start, t_end;
};

static volatile sig_atomic_t mig_interrupted;

static void mig_on_signal(int sig)
{
	(void)sig;
	mig_interrupted = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = ns / NSEC, .tv_nsec = ns % NSEC };

	while (nanosleep(&ts, &ts) && errno == EINTR && !mig_interrupted)
		;
}

static bool mig_stopped(struct mig_ctx *c)
{
	return atomic_load_explicit(&c->stop, memory_order_relaxed) ||
	       mig_interrupted;
}

static void mig_fatal(struct mig_ctx *c, int err)
{
	int zero = 0;

	atomic_compare_exchange_strong(&c->fatal, &zero, err);
	atomic_store(&c->stop, true);
}

static void mig_usage(FILE *f)
{
	fputs(
"Usage: pagemove migrate --pid PID --from NODES --to NODES [options]\n"
"\n"
"Move the resident pages of process PID that are on the --from nodes to the\n"
"--to nodes with move_pages(2). The k-th --from node goes to the k-th --to\n"
"node (in ascending order); surplus --from nodes go to the last --to node.\n"
"Pages on other nodes stay. Transparent huge pages move whole.\n"
"NODES: a node list such as 0, 0-2, 0,2 or all.\n"
"\n"
"  -p, --pid PID       process whose pages to move\n"
"  -f, --from NODES    source nodes\n"
"  -t, --to NODES      target nodes (must have memory)\n"
"  -H, --huge-only     move only huge pages (THPs and hugetlb pages)\n"
"  -a, --move-all      also move pages shared with other processes\n"
"                      (MPOL_MF_MOVE_ALL; needs CAP_SYS_NICE)\n"
"  -j, --threads N     move from N threads at once (default: online CPUs)\n"
"  -r, --rate MB/s     limit the copy rate (MB = 10^6 bytes)\n"
"  -q, --quiet         no progress and no summary; errors only\n"
"  -h, --help          show this help\n"
"\n"
"Exit status:\n"
"  0  every page the kernel lets us move was moved\n"
"  1  some pages were not moved (see the summary), or interrupted\n"
"  2  usage error (unknown option, missing value, bad pid or node list)\n"
"  3  no such process, or it has no user memory (kernel thread, zombie)\n"
"  4  permission denied (needs the same user or CAP_SYS_PTRACE;\n"
"     --move-all needs CAP_SYS_NICE)\n"
"  5  other error (kernel without NUMA support, out of memory, I/O)\n"
"Pages shared with other processes (EACCES without --move-all) and pages\n"
"that go away during the run (ENOENT) do not make the status 1.\n",
	      f);
}

static int mig_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int mig_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("pagemove " CMD ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'pagemove " CMD " --help'.\n", stderr);
	return CLI_EXIT_USAGE;
}

/* ---- options and node lists --------------------------------------------- */

static int parse_node_opt(const char *opt, const char *arg,
			  struct bitmask **mask)
{
	long bad = 0;
	int err = cli_parse_nodes(arg, mask, &bad);

	if (err == -ENODEV)
		return mig_usage_error("%s %s: node %ld does not exist "
				       "(highest node: %d)", opt, arg, bad,
				       numa_max_node());
	if (err == -ENOMEM) {
		fputs("pagemove " CMD ": out of memory\n", stderr);
		return CLI_EXIT_ERROR;
	}
	if (err)
		return mig_usage_error("%s: invalid node list '%s' (expected "
				       "e.g. 0, 0-2, 0,2 or all)", opt, arg);
	if (!numa_bitmask_weight(*mask))
		return mig_usage_error("%s %s: no node with memory", opt, arg);
	return 0;
}

/*
 * The target's cpuset decides where its pages may go: move_pages() fails
 * the whole call with EACCES for a node outside it, which would otherwise
 * look like a permission problem.
 */
static int check_target_cpuset(struct mig_ctx *c, struct bitmask *to)
{
	struct bitmask *allowed = NULL;
	char *line = NULL, *list = NULL;
	size_t cap = 0;
	int err = 0, ret = 0;
	long bad;
	FILE *f;

	f = cli_proc_fopen(c->pid, "status", &err);
	if (!f)
		return cli_pid_error(CMD, c->pid, err, "reading status");
	while (getline(&line, &cap, f) > 0) {
		if (!strncmp(line, "Mems_allowed_list:", 18)) {
			list = line + 18 + strspn(line + 18, " \t");
			list[strcspn(list, "\n")] = '\0';
			break;
		}
	}
	if (list && !cli_parse_nodes(list, &allowed, &bad)) {
		for (int n = 0; n < c->nnodes; n++) {
			if (numa_bitmask_isbitset(to, n) &&
			    !numa_bitmask_isbitset(allowed, n)) {
				ret = mig_usage_error("--to: node %d is outside"
					" pid %d's cpuset (Mems_allowed_list: %s)",
					n, (int)c->pid, list);
				break;
			}
		}
		numa_bitmask_free(allowed);
	}
	free(line);
	fclose(f);
	return ret;
}

static int build_node_map(struct mig_ctx *c, struct bitmask *from,
			  struct bitmask *to)
{
	int last_to = -1, t = -1;

	for (int n = 0; n < c->nnodes; n++) {
		c->node_map[n] = -1;
		if (numa_bitmask_isbitset(to, n) &&
		    numa_node_size64(n, NULL) <= 0)
			return mig_usage_error("--to: node %d has no memory", n);
	}
	/* k-th from -> k-th to; surplus sources -> the last target */
	for (int n = 0; n < c->nnodes; n++) {
		if (!numa_bitmask_isbitset(from, n))
			continue;
		for (t = last_to + 1; t < c->nnodes; t++)
			if (numa_bitmask_isbitset(to, t))
				break;
		if (t < c->nnodes)
			last_to = t;
		c->node_map[n] = last_to;
	}
	return 0;
}

/* ---- work items --------------------------------------------------------- */

struct builder {
	struct mig_ctx *c;
	bool open;		/* a base-page item is being filled */
	struct mig_item cur;
	unsigned long hpage;	/* hugetlb page size of the current VMA */
};

static int add_item(struct mig_ctx *c, const struct mig_item *it)
{
	if (c->nr_items == c->alloc_items) {
		size_t na = c->alloc_items ? 2 * c->alloc_items : 256;
		struct mig_item *ni = realloc(c->items, na * sizeof(*ni));

		if (!ni)
			return -ENOMEM;
		c->items = ni;
		c->alloc_items = na;
	}
	c->items[c->nr_items++] = *it;
	c->total_bytes += (uint64_t)it->present * it->stride;
	return 0;
}

static int flush_open(struct builder *b)
{
	if (!b->open)
		return 0;
	b->open = false;
	return add_item(b->c, &b->cur);
}

/* Huge pages: up to CHUNK_BYTES of them per item, one address each. */
static int add_huge(struct mig_ctx *c, unsigned long start, unsigned long end,
		    unsigned long stride)
{
	unsigned long per = CHUNK_BYTES / stride;
	int err;

	if (!per)
		per = 1;
	if (per > CHUNK_PAGES)
		per = CHUNK_PAGES;
	for (unsigned long a = start; a < end; a += per * stride) {
		struct mig_item it = {
			.start = a, .stride = stride, .huge = true,
			.n = (unsigned int)((end - a) / stride < per ?
					    (end - a) / stride : per),
		};

		it.present = it.n;
		err = add_item(c, &it);
		if (err)
			return err;
	}
	return 0;
}

/*
 * Base pages: an item covers CHUNK_PAGES consecutive pages from its first
 * resident one, holes included (the kernel answers -ENOENT for them almost
 * for free), so sparse memory does not turn into tiny move_pages() calls.
 */
static int build_run(void *arg, unsigned long s, unsigned long e, bool huge)
{
	struct builder *b = arg;
	struct mig_ctx *c = b->c;
	unsigned long ps = c->page_size;
	int err;

	if (huge) {
		err = flush_open(b);
		return err ? err : add_huge(c, s, e, c->ps.pmd_size);
	}
	if (c->huge_only)
		return 0;
	while (s < e) {
		unsigned long limit, seg;

		if (b->open && s >= b->cur.start + CHUNK_PAGES * ps) {
			err = flush_open(b);
			if (err)
				return err;
		}
		if (!b->open) {
			b->open = true;
			b->cur = (struct mig_item){ .start = s, .stride = ps };
		}
		limit = b->cur.start + CHUNK_PAGES * ps;
		seg = e < limit ? e : limit;
		b->cur.n = (unsigned int)((seg - b->cur.start) / ps);
		b->cur.present += (unsigned int)((seg - s) / ps);
		s = seg;
	}
	return 0;
}

/* hugetlb: the scan reports resident runs; one address per huge page */
static int build_hugetlb_run(void *arg, unsigned long s, unsigned long e,
			     bool huge)
{
	struct builder *b = arg;
	unsigned long mask = b->hpage - 1;

	(void)huge;
	return add_huge(b->c, s & ~mask, (e + mask) & ~mask, b->hpage);
}

static void note_skipped(struct mig_ctx *c, const struct cli_vma *v)
{
	size_t len = strlen(c->skipped);

	c->nr_skipped++;
	if (len + strlen(v->path) + 2 < sizeof(c->skipped))
		snprintf(c->skipped + len, sizeof(c->skipped) - len, "%s%s",
			 len ? " " : "", v->path[0] ? v->path : "[device]");
}

static int build_items(struct mig_ctx *c, struct cli_vma *vmas, size_t nr)
{
	struct builder b = { .c = c };
	int err;

	for (size_t i = 0; i < nr; i++) {
		const struct cli_vma *v = &vmas[i];

		if (cli_vma_special(v)) {
			note_skipped(c, v);
			continue;
		}
		if (!cli_vma_resident(v))
			continue;
		c->nr_scanned_vmas++;
		if (v->vmflags & CLI_VM_HUGETLB) {
			b.hpage = v->page_kb ? v->page_kb * 1024 :
					       c->ps.pmd_size;
			err = cli_pagescan(&c->ps, v->start, v->end,
					   build_hugetlb_run, &b);
		} else {
			err = cli_pagescan(&c->ps, v->start, v->end,
					   build_run, &b);
			if (!err)
				err = flush_open(&b);
		}
		if (err)
			return err;
	}
	return 0;
}

/* ---- workers ------------------------------------------------------------- */

static enum reason reason_of(int status)
{
	switch (-status) {
	case EFAULT:	return R_EFAULT;
	case ENOENT:	return R_ENOENT;
	case EBUSY:	return R_EBUSY;
	case ENOMEM:	return R_ENOMEM;
	case EACCES:	return R_EACCES;
	case EPERM:	return R_EPERM;
	case EIO:	return R_EIO;
	case EINVAL:	return R_EINVAL;
	default:	return R_OTHER;
	}
}

/* Does a page left behind for @r make the exit status 1? */
static bool reason_fails(const struct mig_ctx *c, enum reason r)
{
	if (r == R_ENOENT)
		return false;	/* it is gone, not left behind */
	if (r == R_EACCES && !c->move_all)
		return false;	/* shared: not ours to move */
	return true;
}

/* Global token bucket, as a virtual clock: each move books its bytes. */
static bool rate_wait(struct mig_ctx *c, uint64_t bytes)
{
	uint64_t now, when;

	if (!c->ns_per_byte)
		return true;
	now = now_ns();
	pthread_mutex_lock(&c->rate_lock);
	if (c->rate_next + c->rate_burst < now)
		c->rate_next = now - c->rate_burst;	/* cap saved credit */
	when = c->rate_next;
	c->rate_next += (uint64_t)((double)bytes * c->ns_per_byte);
	pthread_mutex_unlock(&c->rate_lock);
	while (now < when) {
		uint64_t d = when - now;

		if (mig_stopped(c))
			return false;
		sleep_ns(d < NSEC / 10 ? d : NSEC / 10);
		now = now_ns();
	}
	return true;
}

struct batch {
	void *addr[CHUNK_PAGES];
	int node[CHUNK_PAGES];
	int status[CHUNK_PAGES];
	int prev[CHUNK_PAGES];
	unsigned int n;
};

/* A worker's buffers: the pages to move, and those to look at again. */
struct mig_bufs {
	struct batch b, q;
};

static void count_moved(struct mig_ctx *c, struct mig_stats *st,
			const struct mig_item *it)
{
	st->moved += it->stride / c->page_size;
	st->moved_bytes += it->stride;
	if (it->huge)
		st->moved_huge++;
	atomic_fetch_add_explicit(&c->moved_bytes, it->stride,
				  memory_order_relaxed);
}

static void count_failed(struct mig_ctx *c, struct mig_stats *st,
			 const struct mig_item *it, enum reason r)
{
	st->failed[r] += it->stride / c->page_size;
}

/*
 * Move the pages in @b (addresses, target nodes) and account for each.
 *
 * move_pages() leaves status entries unwritten when it gives up on a batch
 * (it then returns the number not migrated), and reports -EBUSY for every
 * address after the first in a large folio it already isolated through
 * that first address, although the folio does move. So any entry that does
 * not read "target node" or a definite error is looked up again: a page
 * now on its target moved; one still on a source is retried a few times.
 */
static int mig_move(struct mig_ctx *c, struct mig_stats *st,
		    const struct mig_item *it, struct mig_bufs *bufs)
{
	struct batch *b = &bufs->b, *q = &bufs->q;
	int err = 0;

	for (int attempt = 1; b->n; attempt++) {
		long r;

		for (unsigned int i = 0; i < b->n; i++)
			b->status[i] = STATUS_UNSET;
		r = move_pages(c->pid, b->n, b->addr, b->node, b->status,
			       c->flags);
		if (r < 0 && errno == ENOMEM) {
			/* the kernel could not even start */
			for (unsigned int i = 0; i < b->n; i++)
				count_failed(c, st, it, R_ENOMEM);
			break;
		}
		if (r < 0) {
			err = -errno;
			break;
		}
		q->n = 0;
		for (unsigned int i = 0; i < b->n; i++) {
			int s = b->status[i];

			if (s == b->node[i]) {
				count_moved(c, st, it);
			} else if (s == STATUS_UNSET || s == -EBUSY || s >= 0) {
				q->addr[q->n] = b->addr[i];
				q->node[q->n] = b->node[i];
				q->prev[q->n++] = s;
			} else {
				count_failed(c, st, it, reason_of(s));
			}
		}
		if (!q->n)
			break;
		if (move_pages(c->pid, q->n, q->addr, NULL, q->status, 0) < 0) {
			err = -errno;
			break;
		}
		b->n = 0;
		for (unsigned int i = 0; i < q->n; i++) {
			int s = q->status[i];

			if (s == q->node[i]) {
				count_moved(c, st, it);
			} else if (s < 0) {
				/* gone (or now the zero page) */
				count_failed(c, st, it, R_ENOENT);
			} else if (attempt < MAX_ATTEMPTS && s < c->nnodes &&
				   c->node_map[s] == q->node[i] &&
				   !mig_stopped(c)) {
				b->addr[b->n] = q->addr[i];
				b->node[b->n++] = q->node[i];
			} else {
				count_failed(c, st, it,
					     q->prev[i] == -EBUSY ? R_EBUSY :
					     q->prev[i] == STATUS_UNSET ?
						R_NOTMIG : R_OTHER);
			}
		}
	}
	return err;
}

static int mig_item_run(struct mig_ctx *c, struct mig_stats *st,
			const struct mig_item *it, struct mig_bufs *bufs)
{
	unsigned long ppe = it->stride / c->page_size;
	struct batch *b = &bufs->b;

	for (unsigned int i = 0; i < it->n; i++)
		b->addr[i] = (void *)(it->start + i * it->stride);
	if (move_pages(c->pid, it->n, b->addr, NULL, b->status, 0) < 0)
		return -errno;

	/* keep the pages on a --from node whose target is elsewhere */
	b->n = 0;
	for (unsigned int i = 0; i < it->n; i++) {
		int s = b->status[i];

		if (s < 0)
			continue;	/* not resident, or the zero page */
		st->resident += ppe;
		if (s >= c->nnodes || c->node_map[s] < 0 ||
		    c->node_map[s] == s) {
			st->in_place += ppe;
			continue;
		}
		b->addr[b->n] = b->addr[i];
		b->node[b->n++] = c->node_map[s];
	}
	if (!b->n || !rate_wait(c, (uint64_t)b->n * it->stride))
		return 0;
	return mig_move(c, st, it, bufs);
}

static void *mig_worker(void *arg)
{
	struct mig_ctx *c = arg;
	struct mig_stats st = { 0 };
	struct mig_bufs *bufs = malloc(sizeof(*bufs));

	if (!bufs)
		mig_fatal(c, -ENOMEM);
	while (bufs && !mig_stopped(c)) {
		size_t i = atomic_fetch_add(&c->next_item, 1);
		const struct mig_item *it;
		int err;

		if (i >= c->nr_items)
			break;
		it = &c->items[i];
		err = mig_item_run(c, &st, it, bufs);
		atomic_fetch_add_explicit(&c->done_bytes,
					  (uint64_t)it->present * it->stride,
					  memory_order_relaxed);
		if (err)
			mig_fatal(c, err);
	}
	free(bufs);

	pthread_mutex_lock(&c->lock);
	c->total.resident += st.resident;
	c->total.in_place += st.in_place;
	c->total.moved += st.moved;
	c->total.moved_huge += st.moved_huge;
	c->total.moved_bytes += st.moved_bytes;
	for (int r = 0; r < NR_REASONS; r++)
		c->total.failed[r] += st.failed[r];
	if (!--c->running) {
		c->t_end = now_ns();
		pthread_cond_signal(&c->done);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- progress and summary ---------------------------------------------- */

static double gbps(uint64_t bytes, uint64_t ns)
{
	return ns ? (double)bytes / (double)ns : 0;	/* bytes/ns = GB/s */
}

static void progress(struct mig_ctx *c, bool tty)
{
	static const char bar[] = "##############################";
	static const char gap[] = "------------------------------";
	const int width = sizeof(bar) - 1;
	uint64_t done = atomic_load(&c->done_bytes);
	uint64_t moved = atomic_load(&c->moved_bytes);
	double frac = c->total_bytes ? (double)done / c->total_bytes : 1;
	int fill = (int)(frac * width);
	char d[16], t[16], m[16];

	if (fill > width)
		fill = width;
	cli_fmt_size(d, sizeof(d), done);
	cli_fmt_size(t, sizeof(t), c->total_bytes);
	cli_fmt_size(m, sizeof(m), moved);
	if (tty)
		fprintf(stderr, "\r[%.*s%.*s] %3.0f%%  %s/%s scanned, %s moved,"
			" %.3f GB/s\033[K", fill, bar, width - fill, gap,
			frac * 100, d, t, m,
			gbps(moved, now_ns() - c->t_start));
	else
		fprintf(stderr, "pagemove " CMD ": %3.0f%% of %s scanned, %s "
			"moved, %.3f GB/s\n", frac * 100, t, m,
			gbps(moved, now_ns() - c->t_start));
}

static void print_nodes(const struct mig_ctx *c)
{
	bool first = true;

	for (int n = 0; n < c->nnodes; n++) {
		if (c->node_map[n] < 0)
			continue;
		printf("%s%d->%d", first ? "" : " ", n, c->node_map[n]);
		first = false;
	}
}

static void summary(struct mig_ctx *c, const char *comm)
{
	const struct mig_stats *t = &c->total;
	uint64_t ns = c->t_end - c->t_start, left = 0;
	char sz[16];

	printf("pid %d (%s): nodes ", (int)c->pid, comm);
	print_nodes(c);
	printf(", %s%s\n", c->move_all ? "all pages" : "private pages",
	       c->huge_only ? ", huge pages only" : "");
	cli_fmt_size(sz, sizeof(sz), t->resident * c->page_size);
	printf("  resident  %10llu pages %8s in %u mappings (THP detection: "
	       "%s)\n", (unsigned long long)t->resident, sz,
	       c->nr_scanned_vmas, cli_pagescan_name(&c->ps));
	cli_fmt_size(sz, sizeof(sz), t->moved_bytes);
	printf("  moved     %10llu pages %8s (%llu huge) in %.3f s, "
	       "%.3f GB/s\n", (unsigned long long)t->moved, sz,
	       (unsigned long long)t->moved_huge, (double)ns / NSEC,
	       gbps(t->moved_bytes, ns));
	printf("  in place  %10llu pages          (not on a --from node, or "
	       "already on its target)\n", (unsigned long long)t->in_place);
	for (int r = 0; r < NR_REASONS; r++)
		left += t->failed[r];
	if (left) {
		printf("  not moved %10llu pages:\n", (unsigned long long)left);
		for (int r = 0; r < NR_REASONS; r++)
			if (t->failed[r])
				printf("            %10llu  %-6s  %s%s\n",
				       (unsigned long long)t->failed[r],
				       reasons[r].name,
				       r == R_EACCES && c->move_all ?
					       "permission denied" :
					       reasons[r].why,
				       reason_fails(c, r) ? "" :
					       " [not an error]");
	}
	if (c->nr_skipped)
		printf("  skipped   %10u mappings       %s\n", c->nr_skipped,
		       c->skipped);
}

/* ---- main ---------------------------------------------------------------- */

static void read_comm(pid_t pid, char *buf, size_t len)
{
	int fd = cli_proc_open(pid, "comm");
	ssize_t n = -1;

	if (fd >= 0) {
		n = read(fd, buf, len - 1);
		close(fd);
	}
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

static int mig_fatal_exit(struct mig_ctx *c, int err)
{
	if (err == -EPERM && c->move_all) {
		fprintf(stderr, "pagemove " CMD ": pid %d: --move-all: "
			"permission denied (needs CAP_SYS_NICE)\n", (int)c->pid);
		return CLI_EXIT_PERM;
	}
	if (err == -ESRCH) {
		fprintf(stderr, "pagemove " CMD ": pid %d: process exited\n",
			(int)c->pid);
		return CLI_EXIT_NOPROC;
	}
	if (err == -EINVAL) {
		fprintf(stderr, "pagemove " CMD ": pid %d: move_pages: invalid "
			"argument (kernel thread?)\n", (int)c->pid);
		return CLI_EXIT_NOPROC;
	}
	return cli_pid_error(CMD, c->pid, err, "move_pages");
}

static int mig_run(struct mig_ctx *c, unsigned int threads)
{
	struct sigaction sa = { .sa_handler = mig_on_signal }, old_int, old_term;
	bool tty = isatty(STDERR_FILENO);
	uint64_t last = 0;
	pthread_condattr_t ca;
	pthread_t *tids;
	unsigned int started = 0;
	char comm[64];
	int err = 0;

	if (threads > c->nr_items)
		threads = c->nr_items ? (unsigned int)c->nr_items : 1;
	tids = calloc(threads, sizeof(*tids));
	if (!tids) {
		fputs("pagemove " CMD ": out of memory\n", stderr);
		return CLI_EXIT_ERROR;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->done, &ca);
	pthread_condattr_destroy(&ca);

	/* Ctrl-C stops after the calls in flight and still prints the tally */
	mig_interrupted = 0;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	c->t_start = now_ns();
	c->t_end = c->t_start;
	pthread_mutex_lock(&c->lock);
	for (; started < threads; started++) {
		err = pthread_create(&tids[started], NULL, mig_worker, c);
		if (err)
			break;
		c->running++;
	}
	if (!started)
		mig_fatal(c, err ? -err : -EAGAIN);
	while (c->running) {
		uint64_t now = now_ns(), period = tty ? NSEC / 10 : NSEC;
		uint64_t wake = now + period;
		struct timespec ts = { .tv_sec = wake / NSEC,
				       .tv_nsec = wake % NSEC };

		pthread_cond_timedwait(&c->done, &c->lock, &ts);
		now = now_ns();
		if (!c->quiet && c->running && now - last >= period) {
			last = now;
			pthread_mutex_unlock(&c->lock);
			progress(c, tty);
			pthread_mutex_lock(&c->lock);
		}
	}
	pthread_mutex_unlock(&c->lock);
	for (unsigned int i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (!c->quiet && tty && last)
		fputs("\r\033[K", stderr);

	err = atomic_load(&c->fatal);
	if (!c->quiet && (!err || c->total.resident)) {
		read_comm(c->pid, comm, sizeof(comm));
		summary(c, comm);
		fflush(stdout);
	}
	if (err)
		return mig_fatal_exit(c, err);
	if (mig_interrupted) {
		fputs("pagemove " CMD ": interrupted\n", stderr);
		return CLI_EXIT_PARTIAL;
	}
	for (int r = 0; r < NR_REASONS; r++)
		if (c->total.failed[r] && reason_fails(c, r))
			return CLI_EXIT_PARTIAL;
	return CLI_EXIT_OK;
}

static int mig_main(struct mig_ctx *c, struct bitmask *from,
		    struct bitmask *to, unsigned int threads)
{
	struct cli_vma *vmas = NULL;
	size_t nr = 0;
	int ret, err;

	c->nnodes = numa_max_node() + 1;
	c->node_map = calloc(c->nnodes, sizeof(*c->node_map));
	if (!c->node_map) {
		fputs("pagemove " CMD ": out of memory\n", stderr);
		return CLI_EXIT_ERROR;
	}
	ret = build_node_map(c, from, to);
	if (!ret)
		ret = check_target_cpuset(c, to);
	if (ret)
		return ret;

	err = cli_read_smaps(c->pid, &vmas, &nr);
	if (err)
		return cli_pid_error(CMD, c->pid, err, "reading smaps");
	if (!nr) {
		fprintf(stderr, "pagemove " CMD ": pid %d has no user memory "
			"(kernel thread or zombie)\n", (int)c->pid);
		return CLI_EXIT_NOPROC;
	}
	err = cli_pagescan_open(&c->ps, c->pid);
	if (err) {
		cli_free_vmas(vmas, nr);
		return cli_pid_error(CMD, c->pid, err, "opening pagemap");
	}
	if (c->huge_only && !cli_pagescan_sees_thp(&c->ps)) {
		fputs("pagemove " CMD ": --huge-only: cannot find THPs here: "
		      "needs Linux 6.7+ (PAGEMAP_SCAN) or root "
		      "(/proc/kpageflags)\n", stderr);
		ret = CLI_EXIT_ERROR;
		goto out;
	}
	err = build_items(c, vmas, nr);
	if (err) {
		ret = cli_pid_error(CMD, c->pid, err, "scanning pagemap");
		goto out;
	}
	ret = mig_run(c, threads);
out:
	cli_pagescan_close(&c->ps);
	cli_free_vmas(vmas, nr);
	return ret;
}

int cmd_migrate(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pid",	required_argument,	NULL, 'p' },
		{ "from",	required_argument,	NULL, 'f' },
		{ "to",		required_argument,	NULL, 't' },
		{ "huge-only",	no_argument,		NULL, 'H' },
		{ "move-all",	no_argument,		NULL, 'a' },
		{ "threads",	required_argument,	NULL, 'j' },
		{ "rate",	required_argument,	NULL, 'r' },
		{ "quiet",	no_argument,		NULL, 'q' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	const char *pid_arg = NULL, *from_arg = NULL, *to_arg = NULL;
	struct bitmask *from = NULL, *to = NULL;
	struct mig_ctx c = {
		.flags = MPOL_MF_MOVE,
		.rate_lock = PTHREAD_MUTEX_INITIALIZER,
		.lock = PTHREAD_MUTEX_INITIALIZER,
	};
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned long threads = online > 0 ? (unsigned long)online : 1;
	struct opt_parse op;
	double rate = 0;
	int opt, ret;

	opt_begin(&op, CMD);
	while ((opt = getopt_long(argc, argv, ":p:f:t:Haj:r:qh", longopts,
				  NULL)) != -1) {
		switch (opt) {
		case 'p':
			pid_arg = optarg;
			break;
		case 'f':
			from_arg = optarg;
			break;
		case 't':
			to_arg = optarg;
			break;
		case 'H':
			c.huge_only = true;
			break;
		case 'a':
			c.move_all = true;
			c.flags = MPOL_MF_MOVE_ALL;
			break;
		case 'j':
			opt_ulong(&op, "--threads", optarg, 1, MAX_THREADS,
				  &threads);
			break;
		case 'r':
			if (opt_double(&op, "--rate", optarg, 0, 1e12, &rate) &&
			    rate <= 0)
				opt_error(&op, "--rate: expected MB/s > 0, got "
					  "'%s'", optarg);
			break;
		case 'q':
			c.quiet = true;
			break;
		case 'h':
			mig_usage(stdout);
			return CLI_EXIT_OK;
		default:
			opt_getopt_error(&op, opt, argv);
			break;
		}
	}
	opt_no_args(&op, argc, argv);
	if (opt_end(&op))
		return CLI_EXIT_USAGE;
	if (!pid_arg || !from_arg || !to_arg)
		return mig_usage_error("--pid, --from and --to are required");
	if (cli_parse_pid(pid_arg, &c.pid))
		return mig_usage_error("invalid pid '%s'", pid_arg);
	if (numa_available() < 0) {
		fputs("pagemove " CMD ": NUMA is not available on this "
		      "system\n", stderr);
		return CLI_EXIT_ERROR;
	}
	ret = parse_node_opt("--from", from_arg, &from);
	if (!ret)
		ret = parse_node_opt("--to", to_arg, &to);
	if (ret)
		goto out;

	c.page_size = (unsigned long)sysconf(_SC_PAGESIZE);
	if (rate > 0) {
		c.ns_per_byte = 1e3 / rate;		/* 1e9 ns / (rate * 1e6 B) */
		c.rate_burst = NSEC / 10;		/* 100 ms of credit */
	}
	ret = mig_main(&c, from, to, (unsigned int)threads);
out:
	if (from)
		numa_bitmask_free(from);
	if (to)
		numa_bitmask_free(to);
	free(c.node_map);
	free(c.items);
	return ret;
}
