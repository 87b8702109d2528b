/* SPDX-License-Identifier: MIT */
/*
 * The tiering policy (memory manage's hot/cold exchange, done
 * continuously): one thread that, every interval,
 *   1. samples pages for tracking (track.c), at a rate that keeps the
 *      tracking CPU (its own sweep plus the fault handlers' unparks) under
 *      track_cpu_permille of one core;
 *   2. picks, per tier and page size, the coldest pages (demotion and
 *      exchange candidates) and the hottest active ones (promotion);
 *   3. for each pair of adjacent tiers (fast t, slow t+1): demotes the
 *      coldest of t while its free space is below the low watermark, up to
 *      the high one; else promotes the hottest of t+1 while t keeps its
 *      high watermark free; then exchanges hot slow pages with cold fast
 *      ones, pair by pair, while the slow one is hotter by the margin.
 * Moves go through pmv_move_pages()/pmv_exchange_pages(), so they take
 * every lock and check a caller's would; the thread's own rounds pass
 * PMV_MOVE_NONBLOCK, so a page the program is faulting, or a munmap or
 * fork under way, is skipped this round rather than waited for (demotions
 * into far tiers excepted: a file tier's are I/O by nature; move_cands).
 * A token bucket bounds their
 * bandwidth (at most one second's budget in a burst); only demotion below
 * the min watermark may overdraw it. A page moved less than
 * min_residency ago is not a candidate: with the exchange margin, that is
 * the hysteresis against ping-pong. Pages move one tier at a time.
 *
 * Threads: the policy thread, and pmv_tier_balance() callers; policy_mu
 * makes their rounds one at a time. Lock order: policy_mu -> fork_lock ->
 * regions_lock -> page locks (trylock only).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <time.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

#define CAND_MAX	512	/* candidates per (tier, page size) and round */
#define WATCH_NS	2000000UL	/* wait this long for a sampled page's access */
#define WATCH_ROUND_NS	20000000UL	/* and this long in all per round */
#define SPLIT_MAX	64	/* split 2 MB pages remembered between rounds */
#define SPLIT_SCAN	256	/* 2 MB pages looked at per round (one PAGEMAP_SCAN each) */
#define IDLE_MAX	64	/* idle pages demoted per (tier, page size) and round */

struct cand {
	uintptr_t addr;
	uint32_t heat;
	bool known;		/* PG_tracked: heat was measured */
};

/* A bounded heap keeping the `cap` best candidates seen. */
struct heap {
	struct cand *v;
	size_t n, cap;
	bool keep_cold;		/* keep the coldest (root = hottest kept) */
};

struct _pmv_policy_scratch {
	struct heap cold[PMV_MAX_TIERS][PMV_PS_NR], hot[PMV_MAX_TIERS][PMV_PS_NR];
	void *a[2 * CAND_MAX], *b[2 * CAND_MAX];
	int tg[2 * CAND_MAX], st[2 * CAND_MAX];
	int mflags;	/* this round's move flags: PMV_MOVE_NONBLOCK off pmv_tier_balance */
	/* coalescing: split 2 MB pages seen, and since when; the sweep's place */
	uintptr_t split_addr[SPLIT_MAX];
	uint64_t split_ns[SPLIT_MAX];
	size_t nsplit;
	uintptr_t split_cursor;
	/* proactive demotion: pages the sweep found idle long enough, this round */
	struct cand idle[PMV_MAX_TIERS][PMV_PS_NR][IDLE_MAX];
	size_t nidle[PMV_MAX_TIERS][PMV_PS_NR];
};

/* ---- knobs ------------------------------------------------------------ */

/*
 * A variable fills in a knob the program left at 0, its default, and never
 * overrides one it set; a malformed one fails either way.
 */
static int env_uint(const char *name, unsigned *v)
{
	const char *s = getenv(name);
	char *end;
	unsigned long x;

	if (!s || !*s)
		return 0;
	errno = 0;
	x = strtoul(s, &end, 10);
	if (errno || *end || x > 1000000000UL)
		return _pmv_set_errmsg(-EINVAL, "%s=%s is not a number", name, s);
	if (!*v)
		*v = (unsigned)x;
	return 0;
}

static void dflt(unsigned *v, unsigned d)
{
	if (!*v)
		*v = d;
}

int _pmv_policy_init(pmv_ctx *ctx, const struct pmv_config *cfg)
{
	struct pmv_policy_config *p = &ctx->pol;
	const char *m = getenv("PAGEMOVE_POLICY");
	int ret = 0;

	memset(p, 0, sizeof(*p));
	if (cfg->policy)
		*p = *cfg->policy;
	if (m && *m) {
		int env;

		if (!strcasecmp(m, "auto"))
			env = PMV_POLICY_AUTO;
		else if (!strcasecmp(m, "track"))
			env = PMV_POLICY_TRACK;
		else if (!strcasecmp(m, "off"))
			env = PMV_POLICY_OFF;
		else
			return _pmv_set_errmsg(-EINVAL, "PAGEMOVE_POLICY=%s: want auto, track or off", m);
		/* auto is 0: the default, which the variable may fill in */
		if (p->mode == PMV_POLICY_AUTO)
			p->mode = env;
	}
	ret = ret ?: env_uint("PAGEMOVE_POLICY_INTERVAL_MS", &p->interval_ms);
	ret = ret ?: env_uint("PAGEMOVE_MIGRATE_MBPS", &p->migrate_mbps);
	ret = ret ?: env_uint("PAGEMOVE_TRACK_CPU_PERMILLE", &p->track_cpu_permille);
	ret = ret ?: env_uint("PAGEMOVE_MIN_RESIDENCY_MS", &p->min_residency_ms);
	ret = ret ?: env_uint("PAGEMOVE_EXCHANGE_MARGIN_PCT", &p->exchange_margin_pct);
	ret = ret ?: env_uint("PAGEMOVE_PROMOTE_MIN_HEAT", &p->promote_min_heat);
	ret = ret ?: env_uint("PAGEMOVE_WMARK_MIN_PERMILLE", &p->wmark_min_permille);
	ret = ret ?: env_uint("PAGEMOVE_WMARK_LOW_PERMILLE", &p->wmark_low_permille);
	ret = ret ?: env_uint("PAGEMOVE_WMARK_HIGH_PERMILLE", &p->wmark_high_permille);
	ret = ret ?: env_uint("PAGEMOVE_PROACTIVE_IDLE_S", &p->proactive_idle_s);
	if (ret)
		return ret;
	if (p->mode < PMV_POLICY_AUTO || p->mode > PMV_POLICY_OFF)
		return _pmv_set_errmsg(-EINVAL, "policy: unknown mode %d", p->mode);
	dflt(&p->interval_ms, 100);
	dflt(&p->migrate_mbps, 256);
	dflt(&p->track_cpu_permille, 15);
	dflt(&p->min_residency_ms, 1000);
	dflt(&p->exchange_margin_pct, 100);
	dflt(&p->promote_min_heat, 20);
	dflt(&p->wmark_min_permille, 10);
	dflt(&p->wmark_low_permille, 20);
	dflt(&p->wmark_high_permille, 40);
	if (p->track_cpu_permille > 20)
		return _pmv_set_errmsg(-EINVAL, "policy: tracking may cost at most 20 per mille of a core");
	/* parked_us wraps after 71 minutes */
	if (p->proactive_idle_s > 3600)
		return _pmv_set_errmsg(-EINVAL, "policy: proactive_idle_s is at most 3600");
	if (p->wmark_min_permille > p->wmark_low_permille ||
	    p->wmark_low_permille > p->wmark_high_permille || p->wmark_high_permille > 500)
		return _pmv_set_errmsg(-EINVAL, "policy: want wmark min <= low <= high <= 500 per mille");

	for (unsigned i = 0; i < ctx->ntiers; i++) {
		struct _pmv_tier *t = &ctx->tiers[i];
		const unsigned pm[3] = { p->wmark_min_permille, p->wmark_low_permille,
					 p->wmark_high_permille };

		/* each at least one small page above the one below */
		for (int w = 0; w < 3 && t->capacity; w++) {
			size_t v = t->capacity / 1000 * pm[w];
			size_t floor = (w ? t->wmark[w - 1] : 0) + PMV_SIZE_4K;

			t->wmark[w] = v > floor ? v : floor;
		}
	}
	atomic_store_explicit(&ctx->policy_mode, p->mode, memory_order_relaxed);
	/* user-mode-only: a kernel access to a parked page would get EFAULT */
	ctx->track_ok = ctx->mode == PMV_MODE_FULL;
	ctx->track_rate = 16;
	pthread_mutex_init(&ctx->policy_mu, NULL);
	pthread_mutex_init(&ctx->policy_wait_mu, NULL);
	pthread_cond_init(&ctx->policy_cv, NULL);
	return 0;
}

/* ---- tracking sweep --------------------------------------------------- */

/* The first region ending above addr, wrapping to the first one. */
static size_t region_at(pmv_ctx *ctx, uintptr_t addr)
{
	for (size_t i = 0; i < ctx->nregions; i++)
		if (ctx->regions[i]->start + ctx->regions[i]->len > addr)
			return i;
	return 0;
}

/*
 * Sleep until pg is unparked (its next access) or WATCH_NS pass, whichever
 * is first; true if it was unparked. One page is watched at a time because sampled pages interfere:
 * with many parked at once, the program's threads block on one after the
 * other, and each page's interval measures its place in that queue instead
 * of its use. The futex is the flags word itself; the fault handler wakes
 * it after unparking the watched page (track.c). No CPU is spent waiting.
 */
static bool watch(pmv_ctx *ctx, struct _pmv_page *pg, uint64_t round_end)
{
	bool back;

	uint64_t end = _pmv_now_ns() + WATCH_NS;

	if (end > round_end)
		end = round_end;
	/* seq_cst: pairs with the fault handler's load of ctx->watch after
	 * clearing PG_parked; one of us sees the other's store */
	atomic_store(&ctx->watch, pg);
	for (;;) {
		uint32_t f = _pmv_page_flags(pg);
		uint64_t now = _pmv_now_ns();
		struct timespec ts;

		back = !(f & PG_parked);
		if (back || now >= end)
			break;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(end - now);
		syscall(SYS_futex, &pg->flags, FUTEX_WAIT_PRIVATE, f, &ts, NULL, 0);
	}
	atomic_store(&ctx->watch, NULL);
	return back;
}

/*
 * UFFDIO_MOVE refuses a page that was shared with a fork child, even once
 * the child is gone, until a write makes it exclusive again: a read-mostly
 * page would never be sampled again. If this process alone maps it now,
 * write-fault it (no data changes; as the migration retry does). Unlocked,
 * so our fault handlers can serve the fault if part of the page is missing.
 */
static void reuse(pmv_ctx *ctx, struct _pmv_page *pg)
{
	uintptr_t addr = _pmv_page_addr(pg);
	size_t size = _pmv_page_size(pg);

	if (!_pmv_page_shared(ctx, addr, size))
		madvise((void *)addr, size, MADV_POPULATE_WRITE);
}

/*
 * Park up to track_rate pages, sweeping all regions in address order; a
 * page the sweep finds still parked was not used for a whole sweep: age it.
 * Caller holds policy_mu.
 */
static void track_round(pmv_ctx *ctx)
{
	/* an evicted page has nothing mapped to sample: its fault-in is its access */
	const uint32_t skip = PG_bind | PG_isolated | PG_shared | PG_locked | PG_far;
	uint64_t c0 = _pmv_thread_cpu_ns();
	/* bounded, so munmap and fork (which wait for our locks) wait little */
	uint64_t round_end = _pmv_now_ns() + WATCH_ROUND_NS;
	size_t want = (size_t)ctx->track_rate, parked = 0, total = 0, steps = 0;
	struct _pmv_page *again = NULL;
	size_t ri, k;

	pthread_rwlock_rdlock(&ctx->fork_lock);
	_pmv_regions_rdlock(&ctx->regions_lock, false);
	for (size_t i = 0; i < ctx->nregions; i++)
		total += ctx->regions[i]->npages;
	if (!total)
		goto out;
	ri = region_at(ctx, ctx->track_cursor);
	k = ctx->track_cursor > ctx->regions[ri]->start ?
	    (ctx->track_cursor - ctx->regions[ri]->start) >> ctx->regions[ri]->shift : 0;
	/* a parked page costs only a look: bound the walk by pages, not parks */
	while (parked < want && steps++ < total) {
		struct _pmv_region *r = ctx->regions[ri];
		struct _pmv_page *pg;
		uint32_t f;

		if (k >= r->npages) {
			ri = (ri + 1) % ctx->nregions;
			k = 0;
			continue;
		}
		pg = &r->pages[k++];
		f = _pmv_page_flags(pg);
		if ((f & (PG_present | skip)) != PG_present || !_pmv_page_trylock(pg))
			continue;
		f = _pmv_page_flags(pg);
		if ((f & (PG_present | (skip & ~PG_locked))) == PG_present) {
			int ret = 0;

			if (f & PG_parked) {
				_pmv_track_age(ctx, pg);
			} else if (!(ret = _pmv_park(ctx, pg))) {
				parked++;
				_pmv_page_unlock(ctx, pg);
				/*
				 * Back in time with a first reference: sample it
				 * again now, so a hot page is activated within a
				 * round rather than a whole sweep later (with 4 KB
				 * pages a sweep can take many seconds).
				 */
				if (_pmv_now_ns() < round_end && watch(ctx, pg, round_end) &&
				    pg != again && (_pmv_page_flags(pg) &
				    (PG_referenced | PG_active)) == PG_referenced) {
					again = pg;
					k--;
				}
				continue;
			}
			if (ret == -EBUSY) {
				/* refused as shared, not as discarded: that would fault it back */
				_pmv_page_unlock(ctx, pg);
				reuse(ctx, pg);
				continue;
			}
		}
		_pmv_page_unlock(ctx, pg);
	}
	ctx->track_cursor = k < ctx->regions[ri]->npages ?
			    ctx->regions[ri]->start + (k << ctx->regions[ri]->shift) :
			    ctx->regions[ri]->start + ctx->regions[ri]->len;
out:
	_pmv_regions_rdunlock(&ctx->regions_lock);
	pthread_rwlock_unlock(&ctx->fork_lock);
	_pmv_stat_add(&ctx->track_ns, _pmv_thread_cpu_ns() - c0);
}

/*
 * Steer the sample count toward the CPU budget, measured over the last
 * round: the sweep's own CPU plus the fault handlers' unparks, against
 * wall time. Multiplicative, bounded steps, so one noisy round cannot
 * swing it far. Rounds scatter +-30% around the aim, and a run averages
 * about on it: at the most a program may ask (20 per mille) that was just
 * over the 2% the library promises (2.03-2.05%, bench faults). So the aim
 * is the budget, but never more than TRACK_AIM_MAX per mille; budgets
 * below (the default 15) keep their sampling rate.
 */
#define TRACK_AIM_MAX	17
static void track_adapt(pmv_ctx *ctx, uint64_t now)
{
	uint64_t tr = atomic_load_explicit(&ctx->track_ns, memory_order_relaxed);
	double wall = (double)(now - ctx->wall_mark_ns);
	unsigned aim = ctx->pol.track_cpu_permille < TRACK_AIM_MAX ?
		       ctx->pol.track_cpu_permille : TRACK_AIM_MAX;
	double frac, target = aim / 1000.0, f;

	if (ctx->wall_mark_ns && wall > 0) {
		frac = (double)(tr - ctx->track_mark_ns) / wall;
		f = frac > 0 ? target / frac : 2;
		f = f < 0.5 ? 0.5 : f > 1.25 ? 1.25 : f;
		ctx->track_rate *= f;
		if (ctx->track_rate < 1)
			ctx->track_rate = 1;
		if (ctx->track_rate > 65536)
			ctx->track_rate = 65536;
		_pmv_stat_add(&ctx->track_wall_ns, now - ctx->wall_mark_ns);
	}
	ctx->wall_mark_ns = now;
	ctx->track_mark_ns = tr;
}

/* ---- candidates ------------------------------------------------------- */

static bool worse(const struct heap *h, uint32_t a, uint32_t b)
{
	/* is a worse than b for keeping? the root is the worst kept */
	return h->keep_cold ? a > b : a < b;
}

static void heap_sift_down(struct heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, w = i;
		struct cand tmp;

		if (l < h->n && worse(h, h->v[l].heat, h->v[w].heat))
			w = l;
		if (r < h->n && worse(h, h->v[r].heat, h->v[w].heat))
			w = r;
		if (w == i)
			return;
		tmp = h->v[i];
		h->v[i] = h->v[w];
		h->v[w] = tmp;
		i = w;
	}
}

static void heap_push(struct heap *h, uintptr_t addr, uint32_t heat, bool known)
{
	size_t i;

	if (h->n == h->cap) {
		if (!worse(h, h->v[0].heat, heat))
			return;
		h->v[0] = (struct cand){ addr, heat, known };
		heap_sift_down(h, 0);
		return;
	}
	i = h->n++;
	h->v[i] = (struct cand){ addr, heat, known };
	while (i && worse(h, h->v[i].heat, h->v[(i - 1) / 2].heat)) {
		struct cand tmp = h->v[i];

		h->v[i] = h->v[(i - 1) / 2];
		h->v[(i - 1) / 2] = tmp;
		i = (i - 1) / 2;
	}
}

static int cmp_cold_first(const void *x, const void *y)
{
	const struct cand *a = x, *b = y;

	return a->heat < b->heat ? -1 : a->heat > b->heat;
}

static int cmp_hot_first(const void *x, const void *y)
{
	return cmp_cold_first(y, x);
}

/*
 * Proactive demotion (pmv_policy_config.proactive_idle_s): a parked page
 * has not been used since the sweep parked it, which sampling knows of no
 * other page. Once that is longer than the knob, it is noted to move one
 * tier down this round (proactive_round), with room to spare or not:
 * memory idle that long is memory the program does not need fast, as TMO
 * and Senpai reason. A far page is never parked, so never noted; nor is
 * one on the last tier (collect() passes t < last only).
 */
static void idle_note(pmv_ctx *ctx, struct _pmv_policy_scratch *s, struct _pmv_page *pg,
		      int t, int ps, uint32_t now_us)
{
	if (now_us - pg->parked_us >= ctx->pol.proactive_idle_s * 1000000u &&
	    s->nidle[t][ps] < IDLE_MAX)
		s->idle[t][ps][s->nidle[t][ps]++] = (struct cand){ .addr = _pmv_page_addr(pg) };
}

/* One pass over every page's descriptor: racy reads, no page locks. */
static void collect(pmv_ctx *ctx, struct _pmv_policy_scratch *s)
{
	const uint32_t skip = PG_bind | PG_isolated | PG_shared | PG_far;
	uint16_t now = _pmv_now_ds(ctx);
	uint16_t res = (uint16_t)(ctx->pol.min_residency_ms / 100);
	int last = (int)ctx->ntiers - 1;
	uint32_t now_us = _pmv_now_us32(ctx);

	for (unsigned t = 0; t < ctx->ntiers; t++)
		for (int ps = 0; ps < PMV_PS_NR; ps++)
			s->cold[t][ps].n = s->hot[t][ps].n = s->nidle[t][ps] = 0;
	_pmv_regions_rdlock(&ctx->regions_lock, false);
	for (size_t i = 0; i < ctx->nregions; i++) {
		struct _pmv_region *r = ctx->regions[i];

		for (size_t k = 0; k < r->npages; k++) {
			struct _pmv_page *pg = &r->pages[k];
			uint32_t f = _pmv_page_flags(pg), heat;
			int t;

			if ((f & (PG_present | skip)) != PG_present)
				continue;
			if ((uint16_t)(now - pg->moved_ds) < res && pg->moved_ds)
				continue;
			t = __atomic_load_n(&pg->tier, __ATOMIC_RELAXED);
			heat = __atomic_load_n(&pg->heat, __ATOMIC_RELAXED);
			if (t < 0 || t > last)
				continue;
			/*
			 * Never measured is not cold: such a page could be the
			 * hottest. It may be demoted to make room (as the
			 * kernel reclaims unreferenced pages) but is never
			 * exchanged out (balance_pair skips it).
			 */
			if (t < last)
				heap_push(&s->cold[t][r->ps], _pmv_page_addr(pg),
					  (f & PG_tracked) ? heat : 0, f & PG_tracked);
			if (t < last && (f & PG_parked) && ctx->pol.proactive_idle_s)
				idle_note(ctx, s, pg, t, r->ps, now_us);
			/* promotion wants a second reference, as activation does */
			if (t > 0 && (f & PG_active) && heat >= ctx->pol.promote_min_heat)
				heap_push(&s->hot[t][r->ps], _pmv_page_addr(pg), heat, true);
		}
	}
	_pmv_regions_rdunlock(&ctx->regions_lock);
	for (unsigned t = 0; t < ctx->ntiers; t++) {
		for (int ps = 0; ps < PMV_PS_NR; ps++) {
			qsort(s->cold[t][ps].v, s->cold[t][ps].n, sizeof(struct cand), cmp_cold_first);
			qsort(s->hot[t][ps].v, s->hot[t][ps].n, sizeof(struct cand), cmp_hot_first);
		}
	}
}

/* ---- moves ------------------------------------------------------------ */

static int64_t tier_free(struct _pmv_tier *t)
{
	int64_t used;

	pthread_mutex_lock(&t->lock);
	used = (int64_t)(t->resident[PMV_PS_4K] * PMV_SIZE_4K +
			 t->resident[PMV_PS_2M] * PMV_SIZE_2M);
	pthread_mutex_unlock(&t->lock);
	return (int64_t)t->capacity - used;
}

/* Move n candidates to tier `to`; returns the bytes that moved. */
static size_t move_cands(pmv_ctx *ctx, struct _pmv_policy_scratch *s,
			 const struct cand *c, size_t n, int to, size_t psz, bool promote)
{
	size_t ok = 0;

	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++) {
		s->a[i] = (void *)c[i].addr;
		s->tg[i] = to;
	}
	/* demotions into far tiers excepted from NONBLOCK (see the top): a file's are I/O */
	if (pmv_move_pages(ctx, n, s->a, s->tg, s->st,
			   !promote && _pmv_tier_far(ctx, to) ? 0 : s->mflags) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		ok += s->st[i] == to;
	_pmv_stat_add(promote ? &ctx->promoted : &ctx->demoted, ok);
	_pmv_stat_add(promote ? &ctx->tiers[to].promote_in : &ctx->tiers[to].demote_in, ok);
	_pmv_stat_add(&ctx->policy_bytes, ok * psz);
	return ok * psz;
}

static bool spend(pmv_ctx *ctx, size_t bytes, bool urgent)
{
	if (ctx->tokens < (double)bytes && !urgent)
		return false;
	ctx->tokens -= (double)bytes;
	return true;
}

/*
 * Far tier t over its low watermark (its store's bytes against its
 * capacity): its oldest pages go down to far tier t + 1, store to store
 * (far.c), until high is free. Sampling never sees evicted pages, so
 * "oldest" is the tail of the tier's lists: the order they were evicted
 * (or loaded back and evicted again) in.
 */
static long far_demote(pmv_ctx *ctx, struct _pmv_policy_scratch *s, unsigned t)
{
	struct _pmv_tier *fast = &ctx->tiers[t];
	size_t free = _pmv_far_free(ctx, (int)t), n = 0, want, per;
	struct pmv_tier_stats st;
	size_t ok = 0;

	if (free == SIZE_MAX || free >= fast->wmark[1] || _pmv_tier_stats(ctx, (int)t, &st))
		return 0;
	per = st.stored_pages ? st.stored_bytes / st.stored_pages + 1 : PMV_SIZE_4K;
	want = (fast->wmark[2] - free) / per + 1;
	if (want > CAND_MAX)
		want = CAND_MAX;
	pthread_mutex_lock(&fast->lru_lock);
	for (int l = 0; l < 2; l++) {
		struct _pmv_lru_list *list = l ? &fast->active : &fast->inactive;

		for (struct _pmv_page *pg = list->head.lru_prev; pg != &list->head && n < want &&
		     spend(ctx, per, free < fast->wmark[0]); pg = pg->lru_prev) {
			s->a[n] = (void *)_pmv_page_addr(pg);
			s->tg[n++] = (int)t + 1;
		}
	}
	pthread_mutex_unlock(&fast->lru_lock);
	if (!n || pmv_move_pages(ctx, n, s->a, s->tg, s->st, 0) < 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		ok += s->st[i] == (int)t + 1;
	ctx->tokens += (double)((n - ok) * per);
	_pmv_stat_add(&ctx->demoted, ok);
	_pmv_stat_add(&ctx->tiers[t + 1].demote_in, ok);
	_pmv_stat_add(&ctx->policy_bytes, ok * per);
	return (long)ok;
}

/* One pair of adjacent tiers: fast t, slow t + 1. Returns pages moved. */
static long balance_pair(pmv_ctx *ctx, struct _pmv_policy_scratch *s, unsigned t)
{
	struct _pmv_tier *fast = &ctx->tiers[t];
	int64_t free = fast->capacity ? tier_free(fast) : INT64_MAX;
	long moved = 0;

	/*
	 * Into a far tier only demotion: an evicted page comes back up by
	 * its fault-in, not by promotion (collect() never picks one).
	 */
	if (_pmv_tier_far(ctx, (int)t))
		return _pmv_tier_far(ctx, (int)t + 1) ? far_demote(ctx, s, t) : 0;

	for (int ps = PMV_PS_NR - 1; ps >= 0; ps--) {
		size_t psz = _pmv_ps_size(ps), n = 0, nh = 0, got;
		struct heap *cold = &s->cold[t][ps], *hot = &s->hot[t + 1][ps];
		struct cand pa[CAND_MAX], pb[CAND_MAX];

		/* demote: below low, until high; below min, whatever the budget */
		if (fast->capacity && free < (int64_t)fast->wmark[1]) {
			int64_t f = free;

			while (n < cold->n && f < (int64_t)fast->wmark[2] &&
			       spend(ctx, psz, f < (int64_t)fast->wmark[0])) {
				f += (int64_t)psz;
				n++;
			}
			got = move_cands(ctx, s, cold->v, n, (int)t + 1, psz, false);
			ctx->tokens += (double)(n * psz - got);
			free += (int64_t)got;
			moved += (long)(got / psz);
			continue;	/* no promotion into a tier being drained */
		}
		/* promote the hottest while the high watermark stays free */
		while (nh < hot->n && free - (int64_t)psz >= (int64_t)fast->wmark[2] &&
		       spend(ctx, psz, false)) {
			free -= (int64_t)psz;
			nh++;
		}
		got = move_cands(ctx, s, hot->v, nh, (int)t, psz, true);
		ctx->tokens += (double)(nh * psz - got);
		free += (int64_t)(nh * psz - got);
		moved += (long)(got / psz);

		/* exchange what is left, hottest slow with coldest fast */
		n = 0;
		for (size_t i = nh, j = 0; i < hot->n && j < cold->n; i++, j++) {
			uint64_t h, c;

			while (j < cold->n && !cold->v[j].known)
				j++;
			if (j == cold->n)
				break;
			h = hot->v[i].heat;
			c = cold->v[j].heat;

			if (h * 100 <= c * (100 + ctx->pol.exchange_margin_pct) ||
			    !spend(ctx, 2 * psz, false))
				break;
			pa[n] = hot->v[i];
			pb[n++] = cold->v[j];
		}
		if (n) {
			size_t ok = 0;

			for (size_t i = 0; i < n; i++) {
				s->a[i] = (void *)pa[i].addr;
				s->b[i] = (void *)pb[i].addr;
			}
			if (pmv_exchange_pages(ctx, n, s->a, s->b, s->st, s->mflags) >= 0)
				for (size_t i = 0; i < n; i++)
					ok += !s->st[i];
			ctx->tokens += (double)(2 * psz * (n - ok));
			_pmv_stat_add(&ctx->exchanged, ok);
			_pmv_stat_add(&fast->promote_in, ok);
			_pmv_stat_add(&ctx->tiers[t + 1].demote_in, ok);
			_pmv_stat_add(&ctx->policy_bytes, 2 * ok * psz);
			moved += (long)(2 * ok);
		}
	}
	return moved;
}

/*
 * Coalescing in the background (collapse.c): a 2 MB page seen split and
 * still split min_residency later (the program's discards of a range tend
 * to come in bursts) is collapsed, each within the bandwidth budget, 2 MB
 * a page. The sweep looks at SPLIT_SCAN pages a round, round-robin over
 * the PMV_HUGE regions. Non-blocking throughout: a fork or region change
 * under way skips the round. Returns the pages collapsed.
 */
static long coalesce_round(pmv_ctx *ctx, struct _pmv_policy_scratch *s)
{
	uint64_t now = _pmv_now_ns(), age = (uint64_t)ctx->pol.min_residency_ms * 1000000;
	size_t keep = 0, looked = 0;
	long done = 0;

	if (!_pmv_pt_reclaim() || pthread_rwlock_tryrdlock(&ctx->fork_lock))
		return 0;
	if (!_pmv_regions_tryrdlock(&ctx->regions_lock)) {
		pthread_rwlock_unlock(&ctx->fork_lock);
		return 0;
	}
	for (size_t i = 0; i < s->nsplit; i++) {
		uintptr_t a = s->split_addr[i];
		size_t found = 0, left;

		if (now - s->split_ns[i] < age) {
			s->split_addr[keep] = a;
			s->split_ns[keep++] = s->split_ns[i];
			continue;
		}
		if (!spend(ctx, PMV_SIZE_2M, false)) {
			s->split_addr[keep] = a;	/* next round's budget */
			s->split_ns[keep++] = s->split_ns[i];
			continue;
		}
		left = _pmv_collapse_range(ctx, a, a + PMV_SIZE_2M, 1, &found);
		if (found && left) {
			s->split_addr[keep] = a;	/* busy: again next round */
			s->split_ns[keep++] = s->split_ns[i];
		} else {
			done += (long)(found - left);
		}
		if (!found || left)
			ctx->tokens += (double)PMV_SIZE_2M;	/* nothing was moved */
	}
	s->nsplit = keep;
	/* the sweep: find the pages split now */
	for (size_t ri = 0; ri < ctx->nregions && looked < SPLIT_SCAN && s->nsplit < SPLIT_MAX;) {
		struct _pmv_region *r = _pmv_region_find(ctx, s->split_cursor);
		uintptr_t a;

		if (!r)
			r = _pmv_region_next(ctx, s->split_cursor);
		if (!r) {
			if (!s->split_cursor)
				break;
			s->split_cursor = 0;	/* wrap */
			ri++;
			continue;
		}
		if (r->ps != PMV_PS_2M) {
			s->split_cursor = r->start + r->len;
			ri++;
			continue;
		}
		a = s->split_cursor > r->start ? s->split_cursor & ~(PMV_SIZE_2M - 1) : r->start;
		for (; a < r->start + r->len && looked < SPLIT_SCAN && s->nsplit < SPLIT_MAX;
		     a += PMV_SIZE_2M, looked++) {
			struct _pmv_page *pg = &r->pages[(a - r->start) >> r->shift];
			uint32_t f = _pmv_page_flags(pg);
			bool known = false;

			if ((f & (PG_present | PG_far | PG_parked)) != PG_present ||
			    _pmv_huge_mapped(ctx, a))
				continue;
			for (size_t i = 0; i < s->nsplit && !known; i++)
				known = s->split_addr[i] == a;
			if (!known) {
				s->split_addr[s->nsplit] = a;
				s->split_ns[s->nsplit++] = now;
			}
		}
		s->split_cursor = a;
		if (a >= r->start + r->len)
			ri++;
	}
	_pmv_regions_rdunlock(&ctx->regions_lock);
	pthread_rwlock_unlock(&ctx->fork_lock);
	return done;
}

/* The idle pages the sweep noted go one tier down, within the budget. */
static long proactive_round(pmv_ctx *ctx, struct _pmv_policy_scratch *s)
{
	long moved = 0;

	for (unsigned t = 0; t + 1 < ctx->ntiers; t++) {
		for (int ps = 0; ps < PMV_PS_NR; ps++) {
			size_t psz = _pmv_ps_size(ps), n = 0, got;

			while (n < s->nidle[t][ps] && spend(ctx, psz, false))
				n++;
			got = move_cands(ctx, s, s->idle[t][ps], n, (int)t + 1, psz, false);
			ctx->tokens += (double)(n * psz - got);
			_pmv_stat_add(&ctx->proactive, got / psz);
			moved += (long)(got / psz);
			s->nidle[t][ps] = 0;
		}
	}
	return moved;
}

/* Caller holds policy_mu. */
static long balance_round(pmv_ctx *ctx, bool manual)
{
	struct _pmv_policy_scratch *s = ctx->scratch;
	double rate = (double)ctx->pol.migrate_mbps * 1e6;
	uint64_t now = _pmv_now_ns();
	long moved = 0;

	/* refill the bucket; a burst is at most one second's budget */
	if (ctx->tokens_ns)
		ctx->tokens += rate * (double)(now - ctx->tokens_ns) / 1e9;
	ctx->tokens_ns = now;
	if (ctx->tokens > rate || (manual && ctx->tokens < rate))
		ctx->tokens = rate;
	/* the program's call waits as any caller's; the thread never does */
	s->mflags = manual ? 0 : PMV_MOVE_NONBLOCK;
	collect(ctx, s);
	/* top down: room made in tier t this round is filled from t + 1 */
	for (unsigned t = 0; t + 1 < ctx->ntiers; t++)
		moved += balance_pair(ctx, s, t);
	/* after the pressure's demotions and the promotions: idle pages, down */
	moved += proactive_round(ctx, s);
	/* what budget is left coalesces split huge pages (not counted in moved) */
	coalesce_round(ctx, s);
	_pmv_stat_add(&ctx->policy_rounds, 1);
	return moved;
}

/* ---- thread and API --------------------------------------------------- */

static void *policy_thread(void *arg)
{
	pmv_ctx *ctx = arg;

	for (;;) {
		struct timespec ts;
		uint64_t now;
		int mode;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)(ctx->pol.interval_ms % 1000) * 1000000;
		ts.tv_sec += ctx->pol.interval_ms / 1000 + ts.tv_nsec / 1000000000;
		ts.tv_nsec %= 1000000000;
		pthread_mutex_lock(&ctx->policy_wait_mu);
		if (!ctx->policy_stop)
			pthread_cond_timedwait(&ctx->policy_cv, &ctx->policy_wait_mu, &ts);
		if (ctx->policy_stop) {
			pthread_mutex_unlock(&ctx->policy_wait_mu);
			break;
		}
		pthread_mutex_unlock(&ctx->policy_wait_mu);

		pthread_mutex_lock(&ctx->policy_mu);
		mode = atomic_load_explicit(&ctx->policy_mode, memory_order_relaxed);
		now = _pmv_now_ns();
		if (mode != PMV_POLICY_OFF && ctx->track_ok) {
			track_adapt(ctx, now);
			track_round(ctx);
		} else {
			ctx->wall_mark_ns = 0;
		}
		if (mode == PMV_POLICY_AUTO)
			balance_round(ctx, false);
		pthread_mutex_unlock(&ctx->policy_mu);
	}
	return NULL;
}

int _pmv_policy_start(pmv_ctx *ctx)
{
	sigset_t all, old;
	int ret;

	if (ctx->ntiers < 2)
		return 0;	/* nothing to balance, so nothing to track */
	ctx->scratch = calloc(1, sizeof(*ctx->scratch));
	if (!ctx->scratch)
		return -ENOMEM;
	for (unsigned t = 0; t < ctx->ntiers; t++) {
		for (int ps = 0; ps < PMV_PS_NR; ps++) {
			struct heap *c = &ctx->scratch->cold[t][ps], *h = &ctx->scratch->hot[t][ps];

			c->v = malloc(CAND_MAX * sizeof(*c->v));
			h->v = malloc(CAND_MAX * sizeof(*h->v));
			if (!c->v || !h->v)
				return -ENOMEM;
			c->cap = h->cap = CAND_MAX;
			c->keep_cold = true;
		}
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&ctx->policy_thread, NULL, policy_thread, ctx);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		return -ret;
	pthread_setname_np(ctx->policy_thread, "pmv-policy");
	ctx->policy_running = true;
	return 0;
}

void _pmv_policy_stop(pmv_ctx *ctx)
{
	if (ctx->policy_running) {
		pthread_mutex_lock(&ctx->policy_wait_mu);
		ctx->policy_stop = true;
		pthread_cond_signal(&ctx->policy_cv);
		pthread_mutex_unlock(&ctx->policy_wait_mu);
		pthread_join(ctx->policy_thread, NULL);
		ctx->policy_running = false;
	}
	if (ctx->scratch) {
		for (unsigned t = 0; t < ctx->ntiers; t++) {
			for (int ps = 0; ps < PMV_PS_NR; ps++) {
				free(ctx->scratch->cold[t][ps].v);
				free(ctx->scratch->hot[t][ps].v);
			}
		}
		free(ctx->scratch);
		ctx->scratch = NULL;
	}
}

PMV_API int pmv_tier_policy(pmv_ctx *ctx, int mode)
{
	sigset_t sigs;

	PMV_CHECK_CTX(ctx);
	if (mode < PMV_POLICY_AUTO || mode > PMV_POLICY_OFF)
		return _pmv_set_errmsg(-EINVAL, "pmv_tier_policy: unknown mode %d", mode);
	_pmv_signals_hold(&sigs);
	pthread_mutex_lock(&ctx->policy_mu);
	atomic_store_explicit(&ctx->policy_mode, mode, memory_order_relaxed);
	if (mode == PMV_POLICY_OFF) {
		/* Off means off: no page stays unmapped on our account. */
		pthread_rwlock_rdlock(&ctx->fork_lock);
		_pmv_unpark_all(ctx);
		pthread_rwlock_unlock(&ctx->fork_lock);
	}
	pthread_mutex_unlock(&ctx->policy_mu);
	_pmv_signals_release(&sigs);
	return 0;
}

PMV_API long pmv_tier_balance(pmv_ctx *ctx, int flags)
{
	long moved = 0;
	sigset_t sigs;

	PMV_CHECK_CTX(ctx);
	if (flags)
		return _pmv_set_errmsg(-EINVAL, "pmv_tier_balance: unknown flags");
	if (!ctx->scratch)
		return 0;	/* one tier: nothing to balance */
	/* a round's locks, as any caller's: see _pmv_signals_hold */
	_pmv_signals_hold(&sigs);
	pthread_mutex_lock(&ctx->policy_mu);
	moved = balance_round(ctx, true);
	pthread_mutex_unlock(&ctx->policy_mu);
	_pmv_signals_release(&sigs);
	return moved;
}
