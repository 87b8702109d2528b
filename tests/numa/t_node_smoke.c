/*
 * t_node_smoke: guest smoke test for multi-node NUMA page moves.
 *
 * Allocates 64 MiB of anonymous memory in 4 KiB pages plus one 2 MiB-aligned
 * MADV_HUGEPAGE region of 8 MiB, fills both with a known pattern, moves every
 * page with the raw move_pages(2) syscall first to the first memory node and
 * then to the last one, and checks after each move that every page reports
 * the target node, that the huge region is still backed by whole THPs
 * (/proc/self/smaps AnonHugePages), and that every byte is intact.
 *
 * Exit: 0 pass, 1 fail, 77 skip (fewer than two memory nodes, or no
 * move_pages).  Needs no libnuma: build with gcc -O2 -static.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <numa.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)
#define SMALL_SIZE (64 * MIB)
#define HUGE_SIZE (8 * MIB)
#define HPAGE (2 * MIB)
#define MAX_NODES 1024

#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

static long page_size;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("t_node_smoke: FAIL: ", stdout);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	va_end(ap);
	fflush(stdout);
	exit(1);
}

static long sys_move_pages(unsigned long count, void **pages, const int *nodes,
			   int *status, int flags)
{
	return syscall(SYS_move_pages, 0, count, pages, nodes, status, flags);
}

/* Nodes with memory, in order; libnuma reads the kernel's node lists. */
static int memory_nodes(int *nodes, int max)
{
	int n = 0;

	if (numa_available() < 0)
		return 0;
	for (int i = 0; i <= numa_max_node() && n < max; i++)
		if (numa_bitmask_isbitset(numa_all_nodes_ptr, i))
			nodes[n++] = i;
	return n;
}

static inline uint64_t pattern(uint64_t idx, uint64_t seed)
{
	uint64_t x = (idx + seed) * 0x9E3779B97F4A7C15ULL;

	return x ^ (x >> 29) ^ seed;
}

static void fill(uint64_t *p, size_t bytes, uint64_t seed)
{
	for (size_t i = 0; i < bytes / 8; i++)
		p[i] = pattern(i, seed);
}

static void verify(const char *what, const uint64_t *p, size_t bytes, uint64_t seed)
{
	for (size_t i = 0; i < bytes / 8; i++) {
		uint64_t want = pattern(i, seed);

		if (p[i] != want) {
			const unsigned char *g = (const unsigned char *)&p[i];
			const unsigned char *w = (const unsigned char *)&want;
			size_t b = 0;

			while (b < 8 && g[b] == w[b])
				b++;
			fail("%s: byte %zu is 0x%02x, want 0x%02x", what, i * 8 + b, g[b], w[b]);
		}
	}
}

/* AnonHugePages (kB) summed over the VMAs that overlap [addr, addr+len). */
static long anon_huge_kb(const void *addr, size_t len)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + len;
	char line[512];
	int inside = 0;
	long total = 0, kb;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		fail("cannot open /proc/self/smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			inside = s < hi && e > lo;
			continue;
		}
		if (inside && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			total += kb;
	}
	fclose(f);
	return total;
}

static int thp_available(void)
{
	char buf[256];
	FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
	int ok;

	if (!f)
		return 0;
	ok = fgets(buf, sizeof(buf), f) && !strstr(buf, "[never]");
	fclose(f);
	return ok;
}

struct region {
	const char *name;
	char *addr;
	size_t len;
	uint64_t seed;
};

/* Move every page of every region to node; then check every page is there. */
static void move_all(struct region *r, int nr, int node)
{
	unsigned long count = 0, k = 0;
	void **pages;
	int *nodes, *status;
	long ret;

	for (int i = 0; i < nr; i++)
		count += r[i].len / page_size;
	pages = calloc(count, sizeof(*pages));
	nodes = calloc(count, sizeof(*nodes));
	status = calloc(count, sizeof(*status));
	if (!pages || !nodes || !status)
		fail("out of memory for %lu page entries", count);
	for (int i = 0; i < nr; i++)
		for (size_t off = 0; off < r[i].len; off += page_size) {
			pages[k] = r[i].addr + off;
			nodes[k] = node;
			k++;
		}

	/* A few tries: a page can be transiently busy (-EBUSY, -EAGAIN). */
	for (int attempt = 0; attempt < 5; attempt++) {
		ret = sys_move_pages(count, pages, nodes, status, MPOL_MF_MOVE);
		if (ret < 0)
			fail("move_pages(%lu pages -> node %d): %s", count, node, strerror(errno));
		if (ret == 0)
			break;
		printf("t_node_smoke: move_pages left %ld pages unmoved, retrying\n", ret);
	}

	/* Query with nodes == NULL: status is each page's current node. */
	memset(status, 0xff, count * sizeof(*status));
	ret = sys_move_pages(count, pages, NULL, status, 0);
	if (ret < 0)
		fail("move_pages(query): %s", strerror(errno));
	k = 0;
	for (int i = 0; i < nr; i++)
		for (size_t off = 0; off < r[i].len; off += page_size, k++)
			if (status[k] != node) {
				if (status[k] < 0)
					fail("%s: page at +0x%zx: status %d (%s), want node %d",
					     r[i].name, off, status[k], strerror(-status[k]), node);
				fail("%s: page at +0x%zx is on node %d, want node %d",
				     r[i].name, off, status[k], node);
			}
	printf("t_node_smoke: %lu pages (%lu MiB) all on node %d\n", count,
	       count * (unsigned long)page_size / MIB, node);
	free(pages);
	free(nodes);
	free(status);
}

int main(void)
{
	int mem_nodes[MAX_NODES], n_nodes, first, last, check_thp;
	struct region r[2];
	char *raw, *huge, *small;
	long thp_kb;

	setvbuf(stdout, NULL, _IOLBF, 0);
	page_size = sysconf(_SC_PAGESIZE);
	if (page_size != 4096) {
		printf("t_node_smoke: SKIP: page size is %ld, not 4096\n", page_size);
		return 77;
	}

	n_nodes = memory_nodes(mem_nodes, MAX_NODES);
	if (n_nodes < 2) {
		printf("t_node_smoke: SKIP: %d NUMA node(s) with memory, need 2\n",
		       n_nodes ? n_nodes : 1);
		return 77;
	}
	first = mem_nodes[0];
	last = mem_nodes[n_nodes - 1];
	printf("t_node_smoke: %d memory nodes, first %d, last %d\n", n_nodes, first, last);

	if (sys_move_pages(0, NULL, NULL, NULL, 0) < 0 && errno == ENOSYS) {
		printf("t_node_smoke: SKIP: move_pages(2) is not available (ENOSYS)\n");
		return 77;
	}

	small = mmap(NULL, SMALL_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (small == MAP_FAILED)
		fail("mmap %lu MiB: %s", SMALL_SIZE / MIB, strerror(errno));
	if (madvise(small, SMALL_SIZE, MADV_NOHUGEPAGE))
		fail("madvise(MADV_NOHUGEPAGE): %s", strerror(errno));

	raw = mmap(NULL, HUGE_SIZE + HPAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		fail("mmap %lu MiB: %s", (HUGE_SIZE + HPAGE) / MIB, strerror(errno));
	huge = (char *)(((uintptr_t)raw + HPAGE - 1) & ~(uintptr_t)(HPAGE - 1));
	check_thp = thp_available();
	if (madvise(huge, HUGE_SIZE, MADV_HUGEPAGE)) {
		if (errno != EINVAL)
			fail("madvise(MADV_HUGEPAGE): %s", strerror(errno));
		check_thp = 0;
	}
	if (!check_thp)
		printf("t_node_smoke: note: THP unavailable, the THP checks are skipped\n");

	r[0] = (struct region){ "4K region", small, SMALL_SIZE, 0x5eed0001 };
	r[1] = (struct region){ "THP region", huge, HUGE_SIZE, 0x5eed0002 };
	for (int i = 0; i < 2; i++)
		fill((uint64_t *)r[i].addr, r[i].len, r[i].seed);

	if (check_thp) {
		thp_kb = anon_huge_kb(huge, HUGE_SIZE);
		printf("t_node_smoke: THP region AnonHugePages %ld kB after fill\n", thp_kb);
		if (thp_kb < (long)(HUGE_SIZE / 1024))
			fail("THP region: AnonHugePages %ld kB after fill, want >= %lu kB "
			     "(no THP allocated)", thp_kb, HUGE_SIZE / 1024);
	}

	/* First to the first node (the pages may already be on the last one,
	 * when this runs on a CPU of that node), then to the last node. */
	int targets[2] = { first, last };
	for (int t = 0; t < 2; t++) {
		move_all(r, 2, targets[t]);
		if (check_thp) {
			thp_kb = anon_huge_kb(huge, HUGE_SIZE);
			printf("t_node_smoke: THP region AnonHugePages %ld kB on node %d\n",
			       thp_kb, targets[t]);
			if (thp_kb < (long)(HUGE_SIZE / 1024))
				fail("THP region: AnonHugePages %ld kB after the move to node %d, "
				     "want >= %lu kB (THP split)", thp_kb, targets[t], HUGE_SIZE / 1024);
		}
		for (int i = 0; i < 2; i++)
			verify(r[i].name, (const uint64_t *)r[i].addr, r[i].len, r[i].seed);
		printf("t_node_smoke: pattern intact after the move to node %d\n", targets[t]);
	}

	munmap(small, SMALL_SIZE);
	munmap(raw, HUGE_SIZE + HPAGE);
	printf("t_node_smoke: PASS\n");
	return 0;
}
