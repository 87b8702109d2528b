/* SPDX-License-Identifier: MIT */
/*
 * Bookkeeping memory for every path a fault may wait on, not malloc's.
 *
 * A thread that a signal interrupts inside malloc or free keeps its
 * allocator's lock (a glibc arena's; ASan's or another allocator's, which
 * may be global) until its handler returns. A handler that touches managed
 * memory faults, and that fault waits for a fault handler, and perhaps for
 * whoever holds the page's lock, a tier lock, event_lock or the region
 * table. If any of those waits for the same allocator lock, the process
 * hangs (b66894f: a fault handler in aligned_alloc, the interrupted thread
 * in free). So nothing a fault may wait for calls the program's allocator:
 * it takes memory here.
 *
 * Blocks are whole pages, zeroed, their length in a 16-byte header in
 * front (so they keep malloc's alignment and _pmv_kfree needs no size).
 * They are cut from chunks that stay mapped (freed pages go back to the
 * kernel by MADV_DONTNEED), not mapped one by one: the handlers allocate
 * while they read the program's munmap, and a fresh mmap lands first in
 * the hole the program just made, where the program may then map or
 * unmap again (t_faults' plugs did: they unmapped a region table), so
 * chunks come from address space reserved up front. A block bigger than
 * a chunk is mapped on its own, next to the chunks. A
 * page bitmap per chunk, under a leaf mutex taken with every signal held
 * (the callers include program threads).
 *
 * Not scanned by LeakSanitizer: a block must point only to other blocks of
 * here or to mappings, never to malloc's.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

#define KMEM_HDR	16
#define CHUNK_PAGES	256			/* 1 MB at most */
#define CHUNK_BYTES	(CHUNK_PAGES * PMV_SIZE_4K)
#define FIRST_PAGES	16			/* the first chunk: 64 KB */
#define MAX_CHUNKS	1024			/* 1 GB of chunks; more: mapped alone */

/*
 * Chunks grow from 64 KB, doubling to 1 MB: under RLIMIT_AS a program may
 * leave the library little more address space than its pools need
 * (t_rlimit's as_first_touch_while_parked_pages_hold_the_holes).
 */
struct chunk {
	char *base;
	size_t npages;
	uint64_t used[CHUNK_PAGES / 64];
};

static pthread_mutex_t kmem_mu = PTHREAD_MUTEX_INITIALIZER;
static struct chunk chunks[MAX_CHUNKS];
static unsigned nchunks;
/*
 * Address space for the chunks, reserved PROT_NONE at the first call
 * (pmv_create's, before the program can have made holes among ours):
 * a chunk is made readable there, so no mapping of ours is ever placed
 * later in a hole the program has just made. PROT_NONE: mlockall does not
 * populate it. 8 MB (the descriptors of some 680 MB of 4 KB pages), less
 * under RLIMIT_AS; past it chunks are mapped near the others.
 */
#define RESERVE_MAX	(8UL << 20)
#define RESERVE_MIN	(256UL << 10)

static char *res_base;
static size_t res_len, res_used;
static bool res_tried;

static void reserve_va(void)
{
	res_tried = true;
	for (size_t len = RESERVE_MAX; len >= RESERVE_MIN; len /= 2) {
		void *p = mmap(NULL, len, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p != MAP_FAILED) {
			res_base = p;
			res_len = len;
			return;
		}
	}
}

static bool bit(const struct chunk *c, size_t i)
{
	return c->used[i / 64] >> (i % 64) & 1;
}

static void set_bits(struct chunk *c, size_t i, size_t n, bool on)
{
	for (size_t k = i; k < i + n; k++) {
		if (on)
			c->used[k / 64] |= 1ULL << (k % 64);
		else
			c->used[k / 64] &= ~(1ULL << (k % 64));
	}
}

/* Near the chunks (the kernel takes a free hint as it is), not in a fresh hole. */
static void *map_near(size_t len)
{
	void *hint = nchunks ? chunks[nchunks - 1].base - len : NULL;
	void *p = mmap(hint, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* A chunk's address space: from the reservation while it lasts. Under kmem_mu. */
static void *chunk_va(size_t len)
{
	if (!res_tried)
		reserve_va();
	if (res_base && res_len - res_used >= len &&
	    !mprotect(res_base + res_used, len, PROT_READ | PROT_WRITE)) {
		res_used += len;
		return res_base + res_used - len;
	}
	return map_near(len);
}

/* n pages from a chunk, a new one if none has room; NULL. Under kmem_mu. */
static char *pages_get(size_t n)
{
	for (unsigned ci = 0;; ci++) {
		struct chunk *c = &chunks[ci];

		if (ci == nchunks) {
			size_t np = nchunks < 5 ? (size_t)FIRST_PAGES << nchunks : CHUNK_PAGES;

			if (np < n)
				np = n;
			if (nchunks == MAX_CHUNKS || !(c->base = chunk_va(np * PMV_SIZE_4K)))
				return NULL;
			c->npages = np;
			memset(c->used, 0, sizeof(c->used));
			nchunks++;
		}
		for (size_t i = 0, run = 0; i < c->npages; i++) {
			run = bit(c, i) ? 0 : run + 1;
			if (run == n) {
				set_bits(c, i + 1 - n, n, true);
				return c->base + (i + 1 - n) * PMV_SIZE_4K;
			}
		}
	}
}

/* Under kmem_mu: false if p is not in a chunk. */
static bool pages_put(char *p, size_t len)
{
	for (unsigned ci = 0; ci < nchunks; ci++) {
		struct chunk *c = &chunks[ci];

		if (p < c->base || p >= c->base + c->npages * PMV_SIZE_4K)
			continue;
		/*
		 * Zeroed for the next block, and no longer memory; mlock (an
		 * mlockall(MCL_CURRENT) of the program's) makes the kernel
		 * refuse the discard: zeroed by hand then.
		 */
		if (madvise(p, len, MADV_DONTNEED))
			memset(p, 0, len);
		set_bits(c, (size_t)(p - c->base) / PMV_SIZE_4K, len / PMV_SIZE_4K, false);
		return true;
	}
	return false;
}

static void lock(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, old);
	pthread_mutex_lock(&kmem_mu);
}

static void unlock(const sigset_t *old)
{
	pthread_mutex_unlock(&kmem_mu);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/* pmv_create: the reservation, before the program can have made holes among ours. */
void _pmv_kmem_init(void)
{
	sigset_t old;

	lock(&old);
	if (!res_tried)
		reserve_va();
	unlock(&old);
}

void *_pmv_kalloc(size_t size)
{
	size_t len;
	sigset_t old;
	char *p;

	if (size > SIZE_MAX / 2) {
		errno = ENOMEM;
		return NULL;
	}
	len = (size + KMEM_HDR + PMV_SIZE_4K - 1) & ~(PMV_SIZE_4K - 1);
	lock(&old);
	p = len <= CHUNK_BYTES ? pages_get(len / PMV_SIZE_4K) : map_near(len);
	unlock(&old);
	if (!p) {
		errno = ENOMEM;
		return NULL;
	}
	*(size_t *)p = len;
	return p + KMEM_HDR;
}

void *_pmv_kcalloc(size_t n, size_t size)
{
	if (size && n > SIZE_MAX / 2 / size) {
		errno = ENOMEM;
		return NULL;
	}
	return _pmv_kalloc(n * size);
}

void _pmv_kfree(void *q)
{
	sigset_t old;
	size_t len;
	char *p;
	bool in;

	if (!q)
		return;
	p = (char *)q - KMEM_HDR;
	len = *(size_t *)p;
	lock(&old);
	in = len <= CHUNK_BYTES && pages_put(p, len);
	unlock(&old);
	if (!in)
		munmap(p, len);
}

void *_pmv_krealloc(void *q, size_t size)
{
	size_t old;
	void *nq;

	if (!q)
		return _pmv_kalloc(size);
	old = *(size_t *)((char *)q - KMEM_HDR);
	if (size <= old - KMEM_HDR)
		return q;	/* never shrinks: the arrays here only grow */
	nq = _pmv_kalloc(size);
	if (!nq)
		return NULL;
	memcpy(nq, q, old - KMEM_HDR);
	_pmv_kfree(q);
	return nq;
}

/*
 * In a fork child (context.c's handler), alone: another thread of the
 * parent may have held the lock. Not taken across fork instead: a signal
 * to the forking thread meanwhile could fault and wait for a handler that
 * waits for it.
 */
void _pmv_kmem_fork_child(void)
{
	pthread_mutex_init(&kmem_mu, NULL);
}
