/* SPDX-License-Identifier: MIT */
/*
 * Probes of the program's page tables: /proc/self/pagemap (mapped, shared
 * with a fork child) and move_pages(2) with no nodes (which node a page is
 * on). They read, never change, and take no lock of the library's.
 */
#include <errno.h>
#include <numaif.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "internal.h"

static uint64_t pagemap_entry(pmv_ctx *ctx, uintptr_t addr)
{
	uint64_t e = 0;

	if (pread(ctx->pagemap_fd, &e, sizeof(e), (addr / PMV_SIZE_4K) * sizeof(e)) != sizeof(e))
		return 0;
	return e;
}

/* The 4 KB piece at addr maps the shared zero page. */
static bool zero_piece(pmv_ctx *ctx, uintptr_t addr)
{
	struct page_region r = { 0 };
	struct pm_scan_arg arg = {
		.size = sizeof(arg), .start = addr, .end = addr + PMV_SIZE_4K,
		.vec = (uintptr_t)&r, .vec_len = 1,
		.category_mask = PAGE_IS_PFNZERO, .return_mask = PAGE_IS_PFNZERO,
	};

	return ioctl(ctx->pagemap_fd, PAGEMAP_SCAN, &arg) == 1;
}

bool _pmv_page_shared(pmv_ctx *ctx, uintptr_t addr, size_t len)
{
	uint64_t e[512];
	size_t n = len / PMV_SIZE_4K;

	/*
	 * Every 4 KB piece: after fork, a parent write splits a THP and
	 * un-shares only the pieces it touched. Mapped more than once means
	 * another process (a fork child) maps it too.
	 */
	for (size_t i = 0; i < n; i += 512) {
		size_t k = n - i < 512 ? n - i : 512;
		ssize_t got = pread(ctx->pagemap_fd, e, k * sizeof(e[0]),
				    ((addr / PMV_SIZE_4K) + i) * sizeof(e[0]));

		/*
		 * The zero page is never "exclusive", and a discarded piece of
		 * a huge page gets it (fault.c, move_out): no other process.
		 */
		for (ssize_t j = 0; j < got / (ssize_t)sizeof(e[0]); j++)
			if ((e[j] & PM_PRESENT) && !(e[j] & PM_MMAP_EXCLUSIVE) &&
			    !zero_piece(ctx, addr + (i + (size_t)j) * PMV_SIZE_4K))
				return true;
	}
	return false;
}

/* Mapped 4 KB pieces of [addr, addr+len); with `first`, stop at one. */
static size_t count_mapped(pmv_ctx *ctx, uintptr_t addr, size_t len, bool first)
{
	uint64_t e[512];
	size_t n = len / PMV_SIZE_4K, mapped = 0;

	for (size_t i = 0; i < n && !(first && mapped); i += 512) {
		size_t k = n - i < 512 ? n - i : 512;
		ssize_t got = pread(ctx->pagemap_fd, e, k * sizeof(e[0]),
				    ((addr / PMV_SIZE_4K) + i) * sizeof(e[0]));

		for (ssize_t j = 0; j < got / (ssize_t)sizeof(e[0]); j++)
			mapped += !!(e[j] & (PM_PRESENT | PM_SWAP));
	}
	return mapped;
}

size_t _pmv_pages_mapped(pmv_ctx *ctx, uintptr_t addr, size_t len)
{
	return count_mapped(ctx, addr, len, false);
}

bool _pmv_range_any_mapped(pmv_ctx *ctx, uintptr_t addr, size_t len)
{
	return count_mapped(ctx, addr, len, true);
}

bool _pmv_page_mapped(pmv_ctx *ctx, uintptr_t addr)
{
	/* Present or swapped: anything but an empty PTE. */
	return pagemap_entry(ctx, addr) & (PM_PRESENT | PM_SWAP);
}

int _pmv_verify_node(pmv_ctx *ctx, uintptr_t addr, int node)
{
	void *p = (void *)addr;
	int st = -1;

	/*
	 * Cannot tell: not an error of placement. A negative status says the
	 * address has no page now (the program's mremap moved it meanwhile).
	 */
	if (move_pages(0, 1, &p, NULL, &st, 0) || st < 0)
		return 0;
	if (st == node)
		return 0;
	return _pmv_set_errmsg(-EIO, "page %p is on node %d, its tier is on node %d",
			       p, st, node);
	(void)ctx;
}

bool _pmv_huge_mapped(pmv_ctx *ctx, uintptr_t addr)
{
	struct page_region r = { 0 };
	struct pm_scan_arg arg = {
		.size = sizeof(arg), .start = addr, .end = addr + PMV_SIZE_2M,
		.vec = (uintptr_t)&r, .vec_len = 1,
		.category_mask = PAGE_IS_PRESENT, .return_mask = PAGE_IS_PRESENT | PAGE_IS_HUGE,
	};

	/* PAGE_IS_HUGE is a PMD mapping; PTE-mapped pieces of a THP lack it */
	return ioctl(ctx->pagemap_fd, PAGEMAP_SCAN, &arg) == 1 && (r.categories & PAGE_IS_HUGE) &&
	       r.start == addr && r.end == addr + PMV_SIZE_2M;
}
