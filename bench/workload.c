// SPDX-License-Identifier: MIT
/* The skewed workload of "bench tiering" and "demo": see workload.h. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "workload.h"

#define WL_BATCH	256	/* accesses between publications and stop checks */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/*
 * The pattern word at region offset off (8-aligned, past an item's header).
 * Each word is repeated over 32 bytes, so that the pages compress about as
 * program data does (lz4 3-4:1) and far tiers have something to save.
 */
static uint64_t pattern(uint64_t off)
{
	uint64_t s = off >> 5;

	return splitmix64(&s);
}

static void zipf_cdf(double *cdf, size_t n)
{
	double sum = 0;

	for (size_t r = 0; r < n; r++)
		cdf[r] = sum += pow(r + 1, -WL_ZIPF_S);
	for (size_t r = 0; r < n; r++)
		cdf[r] /= sum;
	cdf[n - 1] = 1.0;	/* no rounding gap at the top */
}

int wl_init(struct workload *wl, void *base, size_t size, size_t psz,
	    unsigned nthreads, unsigned nphases, uint64_t seed)
{
	size_t ipp = psz / WL_ITEM;

	memset(wl, 0, sizeof(*wl));
	if (!size || size % psz || psz % WL_ITEM || (ipp & (ipp - 1)) || !nthreads || !nphases)
		return -EINVAL;
	wl->base = base;
	wl->size = size;
	wl->psz = psz;
	wl->npages = size / psz;
	wl->nitems = size / WL_ITEM;
	wl->ipp_shift = wl->rpp_shift = __builtin_ctzl(ipp);
	wl->nranks = wl->nitems;
	wl->nthreads = nthreads;
	wl->nphases = nphases;
	wl->seed = seed;
	wl->cdf = malloc(wl->nitems * sizeof(double));
	wl->perm = calloc(nphases, sizeof(*wl->perm));
	wl->fast = calloc(wl->npages, 1);
	wl->pages = malloc(wl->npages * sizeof(void *));
	wl->status = malloc(wl->npages * sizeof(int));
	wl->th = aligned_alloc(64, nthreads * sizeof(*wl->th));
	if (wl->th)
		memset(wl->th, 0, nthreads * sizeof(*wl->th));
	if (!wl->cdf || !wl->perm || !wl->fast || !wl->pages || !wl->status || !wl->th)
		goto nomem;

	zipf_cdf(wl->cdf, wl->nitems);

	for (unsigned ph = 0; ph < nphases; ph++) {
		uint64_t s = seed + 1000003ULL * ph;
		uint32_t *p = malloc(wl->npages * sizeof(uint32_t));

		if (!p)
			goto nomem;
		wl->perm[ph] = p;
		for (size_t i = 0; i < wl->npages; i++)
			p[i] = i;
		for (size_t i = wl->npages - 1; i > 0; i--) {
			size_t j = splitmix64(&s) % (i + 1);
			uint32_t x = p[i];

			p[i] = p[j];
			p[j] = x;
		}
	}
	for (size_t i = 0; i < wl->npages; i++)
		wl->pages[i] = wl->base + i * psz;
	for (unsigned t = 0; t < nthreads; t++) {
		wl->th[t].wl = wl;
		wl->th[t].rng = seed * 31 + t + 1;
		wl->th[t].shadow = calloc(wl->nitems, sizeof(uint64_t));
		if (!wl->th[t].shadow)
			goto nomem;
	}
	return 0;
nomem:
	wl_free(wl);
	return -ENOMEM;
}

int wl_sparse(struct workload *wl, unsigned hot)
{
	if (!hot || (hot & (hot - 1)))
		return -EINVAL;
	if (__builtin_ctz(hot) < (int)wl->ipp_shift)
		wl->rpp_shift = __builtin_ctz(hot);
	wl->nranks = wl->npages << wl->rpp_shift;
	zipf_cdf(wl->cdf, wl->nranks);	/* fewer ranks: the array is big enough */
	return 0;
}

/* The item of rank r under permutation perm. */
static size_t rank_item(const struct workload *wl, const uint32_t *perm, size_t r)
{
	size_t page = perm[r >> wl->rpp_shift], j = r & (((size_t)1 << wl->rpp_shift) - 1);
	unsigned gap = wl->ipp_shift - wl->rpp_shift;

	/* sparse: the j-th hot piece of a page is 2^gap apart, shifted by the page */
	return (page << wl->ipp_shift) | (j << gap) | (page & (((size_t)1 << gap) - 1));
}

void wl_free(struct workload *wl)
{
	if (wl->perm)
		for (unsigned ph = 0; ph < wl->nphases; ph++)
			free(wl->perm[ph]);
	if (wl->th)
		for (unsigned t = 0; t < wl->nthreads; t++)
			free(wl->th[t].shadow);
	free(wl->perm);
	free(wl->th);
	free(wl->cdf);
	free(wl->fast);
	free(wl->pages);
	free(wl->status);
	memset(wl, 0, sizeof(*wl));
}

int wl_setup(struct workload *wl, pmv_ctx *ctx, size_t size, unsigned nthreads,
	     unsigned nphases, uint64_t seed)
{
	size_t psz = 2UL << 20;
	void *base = pmv_mmap(ctx, size, 0, PMV_HUGE);
	int err;

	if (!base && errno == EOPNOTSUPP) {
		psz = 4096;
		base = pmv_mmap(ctx, size, 0, 0);
	}
	if (!base)
		return -errno;
	err = wl_init(wl, base, size, psz, nthreads, nphases, seed);
	if (!err)
		wl_fill(wl);
	return err;
}

void wl_fill(struct workload *wl)
{
	for (size_t k = 0; k < wl->nitems; k++) {
		uint64_t *it = (uint64_t *)(wl->base + k * WL_ITEM);

		it[0] = k;
		it[1] = 0;
		for (size_t w = 2; w < WL_ITEM / 8; w++)
			it[w] = pattern(k * WL_ITEM + w * 8);
	}
}

/* Smallest rank whose CDF exceeds u. */
static size_t zipf_rank(const double *cdf, size_t n, double u)
{
	size_t lo = 0, hi = n - 1;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static void *worker(void *arg)
{
	struct wl_thread *t = arg;
	struct workload *wl = t->wl;
	uint64_t acc = 0, hits = 0, sink = 0;

	while (!atomic_load_explicit(&wl->stop, memory_order_relaxed)) {
		unsigned ph = atomic_load_explicit(&wl->phase, memory_order_relaxed);
		const uint32_t *perm = wl->perm[ph];

		for (int i = 0; i < WL_BATCH; i++) {
			double u = (splitmix64(&t->rng) >> 11) * 0x1.0p-53;
			size_t r = zipf_rank(wl->cdf, wl->nranks, u);
			size_t key = rank_item(wl, perm, r), page = key >> wl->ipp_shift;
			uint64_t *it = (uint64_t *)(wl->base + key * WL_ITEM);

			/* one cache line: the header and six pattern words */
			if (it[0] != key)
				atomic_fetch_add(&wl->bad_keys, 1);
			sink += it[2] ^ it[3] ^ it[4] ^ it[5] ^ it[6] ^ it[7];
			__atomic_fetch_add(&it[1], 1, __ATOMIC_RELAXED);
			t->shadow[key]++;
			hits += __atomic_load_n(&wl->fast[page], __ATOMIC_RELAXED);
		}
		acc += WL_BATCH;
		atomic_store_explicit(&t->acc, acc, memory_order_relaxed);
		atomic_store_explicit(&t->hits, hits, memory_order_relaxed);
	}
	t->sink = sink;
	return NULL;
}

/* Reads one word of every cache line, in address order, over and over. */
static void *scanner(void *arg)
{
	struct workload *wl = arg;
	uint64_t sink = 0;

	while (!atomic_load_explicit(&wl->stop, memory_order_relaxed)) {
		for (size_t p = 0; p < wl->npages; p++) {
			const uint64_t *w = (const uint64_t *)(wl->base + p * wl->psz);

			/* word 0 of a line is a key or pattern: never written */
			for (size_t i = 0; i < wl->psz / 8; i += 8)
				sink += w[i];
			if (atomic_load_explicit(&wl->stop, memory_order_relaxed))
				break;
		}
		atomic_fetch_add(&wl->scan_passes, 1);
	}
	return (void *)(uintptr_t)(sink & 1);
}

int wl_start(struct workload *wl, int scan)
{
	int err;

	atomic_store(&wl->stop, 0);
	for (unsigned t = 0; t < wl->nthreads; t++) {
		err = pthread_create(&wl->th[t].tid, NULL, worker, &wl->th[t]);
		if (err) {
			wl_stop(wl);
			return -err;
		}
		wl->nstarted = t + 1;
	}
	if (scan) {
		err = pthread_create(&wl->scan_tid, NULL, scanner, wl);
		if (err) {
			wl_stop(wl);
			return -err;
		}
		wl->scanning = 1;
	}
	return 0;
}

void wl_stop(struct workload *wl)
{
	atomic_store(&wl->stop, 1);
	for (unsigned t = 0; t < wl->nstarted; t++)
		pthread_join(wl->th[t].tid, NULL);
	wl->nstarted = 0;
	if (wl->scanning)
		pthread_join(wl->scan_tid, NULL);
	wl->scanning = 0;
}

void wl_shift(struct workload *wl)
{
	unsigned ph = atomic_load(&wl->phase);

	atomic_store(&wl->phase, (ph + 1) % wl->nphases);
}

void wl_counts(struct workload *wl, uint64_t *acc, uint64_t *hits)
{
	*acc = *hits = 0;
	for (unsigned t = 0; t < wl->nthreads; t++) {
		*acc += atomic_load_explicit(&wl->th[t].acc, memory_order_relaxed);
		*hits += atomic_load_explicit(&wl->th[t].hits, memory_order_relaxed);
	}
}

int wl_query(struct workload *wl, pmv_ctx *ctx, size_t *errs)
{
	int ret = pmv_move_pages(ctx, wl->npages, wl->pages, NULL, wl->status, 0);
	size_t bad = 0;
	int nfast = 0;

	if (ret < 0)
		return ret;
	for (size_t i = 0; i < wl->npages; i++) {
		unsigned char f = wl->status[i] == 0;

		bad += wl->status[i] < 0;
		nfast += f;
		__atomic_store_n(&wl->fast[i], f, __ATOMIC_RELAXED);
	}
	if (errs)
		*errs = bad;
	return nfast;
}

double wl_oracle(const struct workload *wl, size_t fast_pages)
{
	size_t n = fast_pages << wl->rpp_shift;

	/* ranks are grouped by page in order: the top pages hold the top ranks */
	if (!n)
		return 0;
	return n >= wl->nranks ? 1.0 : wl->cdf[n - 1];
}

double wl_oracle_4k(const struct workload *wl, size_t fast_bytes)
{
	size_t n = fast_bytes / WL_ITEM;

	if (!n)
		return 0;
	return n >= wl->nranks ? 1.0 : wl->cdf[n - 1];
}

double wl_expected_hits(const struct workload *wl)
{
	const uint32_t *perm = wl->perm[atomic_load(&wl->phase)];
	size_t rpp = (size_t)1 << wl->rpp_shift;
	double prev = 0, sum = 0;

	for (size_t g = 0; g < wl->npages; g++) {
		double c = wl->cdf[(g + 1) * rpp - 1];

		if (__atomic_load_n(&wl->fast[perm[g]], __ATOMIC_RELAXED))
			sum += c - prev;
		prev = c;
	}
	return sum;
}

long wl_verify(const struct workload *wl, unsigned char *got, unsigned char *want)
{
	for (size_t k = 0; k < wl->nitems; k++) {
		const uint64_t *it = (const uint64_t *)(wl->base + k * WL_ITEM);
		uint64_t cnt = 0;

		for (unsigned t = 0; t < wl->nthreads; t++)
			cnt += wl->th[t].shadow[k];
		for (size_t w = 0; w < WL_ITEM / 8; w++) {
			uint64_t e = w == 0 ? k : w == 1 ? cnt : pattern(k * WL_ITEM + w * 8);

			if (it[w] == e)
				continue;
			for (int b = 0; b < 8; b++) {
				const unsigned char *g = (const unsigned char *)&it[w] + b;
				const unsigned char *x = (const unsigned char *)&e + b;

				if (*g != *x) {
					*got = *g;
					*want = *x;
					return k * WL_ITEM + w * 8 + b;
				}
			}
		}
	}
	return -1;
}
