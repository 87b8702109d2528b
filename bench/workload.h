/* SPDX-License-Identifier: MIT */
/*
 * A skewed workload on managed memory, shared by "pagemove bench tiering"
 * and "pagemove demo".
 *
 * The region is an array of 4 KB items. The item of zipf rank r (r = 0 the
 * most popular) is the r-th of its rank group: ranks are grouped by page
 * (512 items to a 2 MB page), and groups are placed on pages by a random
 * permutation with a fixed seed, so the skew is at page level but the hot
 * pages are spread over the region. A phase change (wl_shift()) switches
 * to another permutation: other pages become hot.
 *
 * Every byte is predictable: an item is {key, counter} followed by a
 * pattern of its address. Workers read the first 64 bytes of an item,
 * check its key and atomically increment its counter, counting their
 * increments in ordinary memory, so wl_verify() can check every byte.
 *
 * Hit accounting: wl_query() asks the library which pages are on tier 0
 * and keeps the answer in fast[]; each access of a worker counts as a hit
 * when fast[] has its page. The scanner (wl_start(..., scan = 1)) reads the
 * whole region in a loop and is not counted.
 */
#ifndef WORKLOAD_H
#define WORKLOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "pagemove.h"

#define WL_ITEM		4096UL	/* item size */
#define WL_ZIPF_S	0.99

struct wl_thread {
	_Atomic uint64_t acc, hits;	/* published every few hundred accesses */
	uint64_t *shadow;		/* increments of this thread, per item */
	uint64_t rng, sink;
	struct workload *wl;
	pthread_t tid;
} __attribute__((aligned(64)));

struct workload {
	unsigned char *base;
	size_t size, psz, npages, nitems;
	unsigned ipp_shift;		/* log2(items per page) */
	unsigned rpp_shift;		/* log2(ranks per page): ipp_shift, less if sparse */
	size_t nranks;			/* items ever accessed: npages << rpp_shift */
	double *cdf;			/* zipf CDF over ranks */
	uint32_t **perm;		/* perm[phase][rank group] = page */
	unsigned nphases;
	_Atomic unsigned phase;
	unsigned char *fast;		/* fast[page]: on tier 0 at the last query */
	void **pages;			/* for wl_query() */
	int *status;
	unsigned nthreads, nstarted;
	struct wl_thread *th;
	pthread_t scan_tid;
	int scanning;
	_Atomic int stop;
	_Atomic uint64_t bad_keys;	/* accesses that found another item's key */
	_Atomic uint64_t scan_passes;
	uint64_t seed;
};

/*
 * Set up a workload on [base, base + size), psz the region's page size
 * (4 KB or 2 MB), with nphases permutations. Touches no managed memory.
 * 0 or -ENOMEM / -EINVAL.
 */
int wl_init(struct workload *wl, void *base, size_t size, size_t psz,
	    unsigned nthreads, unsigned nphases, uint64_t seed);
void wl_free(struct workload *wl);

/*
 * Map size bytes of ctx's managed memory in 2 MB pages (4 KB ones when
 * THP is off: wl->psz says which), wl_init() a workload on it and
 * wl_fill() it. 0 or a negative errno; on failure the region may stay
 * mapped until pmv_destroy().
 */
int wl_setup(struct workload *wl, pmv_ctx *ctx, size_t size, unsigned nthreads,
	     unsigned nphases, uint64_t seed);

/*
 * The sparse pattern: only hot (a power of two, at most the items per
 * page) items of each page are ever accessed, spread over the page (rank
 * group g's j-th item is piece j * ipp / hot plus an offset that depends
 * on the page); the zipf ranks run over those alone. Call before
 * wl_start(). 0 or -ENOMEM / -EINVAL.
 */
int wl_sparse(struct workload *wl, unsigned hot);

/* Write every item, in address order: the region's first touch. */
void wl_fill(struct workload *wl);

/* Start the workers (and the scanner); stop and join them. */
int wl_start(struct workload *wl, int scan);
void wl_stop(struct workload *wl);

/* Next permutation (wraps). */
void wl_shift(struct workload *wl);

/* Accesses and hits of all workers so far. */
void wl_counts(struct workload *wl, uint64_t *acc, uint64_t *hits);

/*
 * Refresh fast[] from pmv_move_pages() as a query. Returns the number of
 * pages on tier 0, or a negative errno; *errs (may be NULL) gets the
 * number of pages whose query failed (they count as slow).
 */
int wl_query(struct workload *wl, pmv_ctx *ctx, size_t *errs);

/*
 * The best hit fraction a fast tier of fast_pages pages allows: the access
 * probability of the fast_pages most popular pages (any phase).
 */
double wl_oracle(const struct workload *wl, size_t fast_pages);

/*
 * The same for a fast tier of fast_bytes whose pages could be split, so
 * that it held exactly the hottest items (4 KB pieces): what choosing the
 * page size per page (Memtis) could reach. Equals wl_oracle() unless sparse.
 */
double wl_oracle_4k(const struct workload *wl, size_t fast_bytes);

/*
 * The expected hit fraction of the current phase with fast[] as it is.
 */
double wl_expected_hits(const struct workload *wl);

/*
 * Check every byte, with the workers stopped. Returns -1 if all are right,
 * else the offset of the first wrong byte, with its value in *got and the
 * expected one in *want.
 */
long wl_verify(const struct workload *wl, unsigned char *got, unsigned char *want);

#endif /* WORKLOAD_H */
