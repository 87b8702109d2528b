/* SPDX-License-Identifier: MIT */
/*
 * Context: creation and teardown, the fork quiesce, and the version.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define STR2(x) #x
#define STR(x) STR2(x)

PMV_API int pmv_version_major(void) { return PMV_VERSION_MAJOR; }
PMV_API int pmv_version_minor(void) { return PMV_VERSION_MINOR; }
PMV_API const char *pmv_version(void)
{
	return STR(PMV_VERSION_MAJOR) "." STR(PMV_VERSION_MINOR);
}

/* ---- fork ------------------------------------------------------------ */

static pthread_mutex_t ctx_list_lock = PTHREAD_MUTEX_INITIALIZER;
static pmv_ctx *ctx_list;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/*
 * Quiesce: fork waits until no migration is between write-protect and
 * remap, so the child's snapshot has no hole and no half-copied page.
 * Migrations hold fork_lock for reading across that window.
 */
static void atfork_prepare(void)
{
	pthread_mutex_lock(&ctx_list_lock);
	for (pmv_ctx *c = ctx_list; c; c = c->next_ctx) {
		pthread_rwlock_wrlock(&c->fork_lock);
		/*
		 * A parked page's address is empty, and the child gets no
		 * fault handler: it would read zeros. Sampling parks only
		 * under fork_lock, so after this none is parked until fork
		 * returns.
		 */
		_pmv_unpark_all(c);
		/*
		 * Evicted pages too: the child would read a hole where the
		 * parent has data. Each is loaded back (over capacity if it
		 * must), the cost of a fork with far pages (DESIGN.md, fork).
		 */
		_pmv_far_load_all(c);
	}
}

static void atfork_release(void)
{
	for (pmv_ctx *c = ctx_list; c; c = c->next_ctx)
		pthread_rwlock_unlock(&c->fork_lock);
	pthread_mutex_unlock(&ctx_list_lock);
}

static void atfork_child(void)
{
	_pmv_kmem_fork_child();
	atfork_release();
}

static void atfork_register(void)
{
	pthread_atfork(atfork_prepare, atfork_release, atfork_child);
}

static void ctx_list_del(pmv_ctx *ctx)
{
	pthread_mutex_lock(&ctx_list_lock);
	for (pmv_ctx **pp = &ctx_list; *pp; pp = &(*pp)->next_ctx) {
		if (*pp == ctx) {
			*pp = ctx->next_ctx;
			break;
		}
	}
	pthread_mutex_unlock(&ctx_list_lock);
}

/* ---- create / destroy ------------------------------------------------ */

static int env_flag(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

/*
 * PAGEMOVE_TIERS, the text form of pmv_tiers_parse(3), gives the tiers of
 * a config that names none: a program built for one tier list runs with
 * another (say "mem:1G,lz4") without being rebuilt. Checked whenever it is
 * set, as every variable is: false with *ctx NULL and errno set if it does
 * not parse; true with *ctx the context made from it when it applies.
 */
static pmv_ctx *create(const struct pmv_config *cfg, bool probe);

static bool tiers_from_env(const struct pmv_config *cfg, pmv_ctx **ctx, bool probe)
{
	const char *text = getenv("PAGEMOVE_TIERS");
	struct pmv_tier_config tiers[PMV_MAX_TIERS];
	struct pmv_config c;
	size_t len;
	char *buf;
	int n;

	*ctx = NULL;
	if (!text)
		return false;
	len = strlen(text) + 1;
	buf = malloc(len);
	if (!buf) {
		errno = ENOMEM;
		return true;
	}
	n = pmv_tiers_parse(text, tiers, PMV_MAX_TIERS, buf, len);
	if (n < 0) {
		char why[256];

		snprintf(why, sizeof(why), "%s", pmv_errmsg());	/* the same buffer */
		_pmv_set_errmsg(-EINVAL, "PAGEMOVE_TIERS=%s: %s", text, why);
		free(buf);
		errno = EINVAL;
		return true;
	}
	if (!cfg || cfg->tiers || cfg->ntiers) {
		free(buf);
		return false;
	}
	c = *cfg;
	c.tiers = tiers;
	c.ntiers = (unsigned)n;
	/* names and paths are copied (tier.c, the stores): buf may go */
	*ctx = create(&c, probe);
	free(buf);
	return true;
}

/*
 * probe: stop once everything that can refuse the config has been checked
 * (tiers, stores, the userfaultfd mode, the policy, the variables), before
 * any thread starts: no join, no waiting for a thread to be scheduled.
 */
static pmv_ctx *create(const struct pmv_config *cfg, bool probe)
{
	pthread_rwlockattr_t ra;
	pmv_ctx *ctx;
	int ret;

	_pmv_clear_errmsg();
	if (tiers_from_env(cfg, &ctx, probe))
		return ctx;
	if (!cfg || !cfg->tiers || !cfg->ntiers || cfg->ntiers > PMV_MAX_TIERS ||
	    (cfg->flags & ~(PMV_CTX_USER_MODE_ONLY | PMV_CTX_VERIFY | PMV_CTX_WP_COPY |
			    PMV_CTX_NO_RT))) {
		_pmv_set_errmsg(-EINVAL, "pmv_create: need 1..%d tiers (or PAGEMOVE_TIERS) "
				"and known flags", PMV_MAX_TIERS);
		errno = EINVAL;
		return NULL;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		errno = ENOMEM;
		return NULL;
	}
	_pmv_kmem_init();
	ctx->pid = getpid();
	ctx->epoch_ns = _pmv_now_ns();
	ctx->uffd = ctx->pool_uffd = ctx->pagemap_fd = -1;
	ctx->flags = cfg->flags;
	if (env_flag("PAGEMOVE_VERIFY"))
		ctx->flags |= PMV_CTX_VERIFY;
	if (getenv("PAGEMOVE_FAULT_NO_RT"))
		ctx->flags |= PMV_CTX_NO_RT;
	ctx->copy_threads = cfg->copy_threads;
	pthread_mutex_init(&ctx->copy_pool_lock, NULL);
	ctx->thp_ok = _pmv_thp_available();
	/* fork_lock prefers the writer, so fork() is not starved by batches. */
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&ctx->fork_lock, &ra);
	_pmv_regions_lock_init(&ctx->regions_lock);
	/* the fault handlers must get in between any number of moves in */
	pthread_rwlock_init(&ctx->event_lock, &ra);
	pthread_rwlockattr_destroy(&ra);
	pthread_mutex_init(&ctx->discard_mu, NULL);
	pthread_mutex_init(&ctx->surgery_mu, NULL);

	/*
	 * A variable fills in what the program left at its default (auto is
	 * 0), never overrides what it chose; a bad one fails either way, so
	 * that a typo is not taken for "no effect".
	 */
	ctx->copy_engine = cfg->copy_engine;
	if (getenv("PAGEMOVE_COPY")) {
		int env = _pmv_copy_engine_parse(getenv("PAGEMOVE_COPY"));

		if (env < 0 || env >= PMV_COPY_NR) {
			ret = _pmv_set_errmsg(-EINVAL, "unknown copy engine (PAGEMOVE_COPY=%s)",
					      getenv("PAGEMOVE_COPY"));
			goto fail;
		}
		if (ctx->copy_engine == PMV_COPY_AUTO)
			ctx->copy_engine = env;
	}
	if (ctx->copy_engine < 0 || ctx->copy_engine >= PMV_COPY_NR) {
		ret = _pmv_set_errmsg(-EINVAL, "pmv_config.copy_engine %d is no engine",
				      ctx->copy_engine);
		goto fail;
	}
	if (ctx->copy_engine == PMV_COPY_NT && !_pmv_copy_engines[PMV_COPY_NT].probe())
		ctx->copy_engine = PMV_COPY_MEMCPY;	/* no AVX2: the clean fallback */
	if (getenv("PAGEMOVE_INJECT_COPY_FAIL"))
		ctx->inject_copy_fail = atoi(getenv("PAGEMOVE_INJECT_COPY_FAIL"));
	if (getenv("PAGEMOVE_INJECT_HOLD_US"))
		ctx->inject_hold_us = atoi(getenv("PAGEMOVE_INJECT_HOLD_US"));
	ret = _pmv_tiers_init(ctx, cfg);
	if (ret)
		goto fail;
	ret = _pmv_uffd_open(ctx, cfg->flags & PMV_CTX_USER_MODE_ONLY);
	if (ret)
		goto fail;
	for (unsigned i = 0; i < ctx->ntiers && ctx->mode == PMV_MODE_USER_ONLY; i++) {
		if (!_pmv_tier_far(ctx, (int)i))
			continue;
		/* a system call reading an evicted page would get EFAULT, not wait */
		ret = _pmv_set_errmsg(-EOPNOTSUPP, "pmv_create: tier %u: a %s tier needs the "
				      "full userfaultfd mode (%s); for it, drop "
				      "PMV_CTX_USER_MODE_ONLY and give this user read-write "
				      "access to /dev/userfaultfd, or CAP_SYS_PTRACE, or set "
				      "vm.unprivileged_userfaultfd=1", i,
				      _pmv_tier_kind_name(ctx->tiers[i].kind),
				      ctx->mode_why == PMV_MODE_WHY_ASKED ?
				      "PMV_CTX_USER_MODE_ONLY asked for user-mode-only" :
				      "userfaultfd may not catch kernel faults here");
		goto fail;
	}
	ctx->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (ctx->pagemap_fd < 0) {
		ret = _pmv_set_errmsg(-errno, "cannot open /proc/self/pagemap: %s",
				      strerror(errno));
		goto fail;
	}
	ret = _pmv_policy_init(ctx, cfg);
	if (ret)
		goto fail;
	ctx->policy_inited = true;
	if (probe) {
		ret = _pmv_fault_check_env();
		if (ret)
			goto fail;
		return ctx;	/* on no list: nothing of it to quiesce at fork */
	}
	ret = _pmv_fault_start(ctx);
	if (ret)
		goto fail;
	if (ctx->copy_engine == PMV_COPY_AUTO || ctx->copy_engine == PMV_COPY_PARALLEL ||
	    ctx->copy_engine == PMV_COPY_OFFLOAD) {
		ret = _pmv_copy_pool_start(ctx);
		if (ret && ctx->copy_engine != PMV_COPY_AUTO)
			goto fail;
	}

	ret = _pmv_policy_start(ctx);
	if (ret)
		goto fail;
	ret = _pmv_far_kswapd_start(ctx);
	if (ret)
		goto fail;

	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&ctx_list_lock);
	ctx->next_ctx = ctx_list;
	ctx_list = ctx;
	pthread_mutex_unlock(&ctx_list_lock);
	return ctx;
fail:
	pmv_destroy(ctx);
	errno = -ret;
	return NULL;
}

pmv_ctx *_pmv_create(const struct pmv_config *cfg)
{
	return create(cfg, false);
}

pmv_ctx *_pmv_create_probe(const struct pmv_config *cfg)
{
	return create(cfg, true);
}

static bool all_zero(const void *p, size_t size)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < size; i++)
		if (b[i])
			return false;
	return true;
}

static pmv_ctx *resv_refused(const char *what)
{
	_pmv_set_errmsg(-EINVAL, "pmv_create: %s is not zero (zero the whole struct)", what);
	errno = EINVAL;
	return NULL;
}

/*
 * PAGEMOVE_0.3. The resv words must be zero (the ABI rule in pagemove.h):
 * then a field that a later release puts there is never ignored unseen.
 */
PMV_API pmv_ctx *pmv_create(const struct pmv_config *cfg)
{
	_pmv_clear_errmsg();
	if (!cfg)
		return _pmv_create(cfg);
	if (!all_zero(cfg->resv, sizeof(cfg->resv)))
		return resv_refused("pmv_config.resv");
	if (cfg->policy && !all_zero(cfg->policy->resv, sizeof(cfg->policy->resv)))
		return resv_refused("pmv_policy_config.resv");
	/* a bad tier count or NULL tiers: _pmv_create() says so */
	for (unsigned i = 0; cfg->tiers && cfg->ntiers <= PMV_MAX_TIERS && i < cfg->ntiers; i++)
		if (!all_zero(cfg->tiers[i].resv, sizeof(cfg->tiers[i].resv)))
			return resv_refused("a pmv_tier_config's resv");
	return _pmv_create(cfg);
}
PMV_SYMVER_DEFAULT(pmv_create, "PAGEMOVE_0.3");

PMV_API void pmv_destroy(pmv_ctx *ctx)
{
	if (!ctx)
		return;
	if (ctx->pid != getpid()) {
		/*
		 * A fork child: the fault handlers and the regions belong to the
		 * parent. Free only the bookkeeping; the child's copy of the
		 * managed memory stays as ordinary memory. It leaves the
		 * atfork list too, or the child's next fork would touch it.
		 */
		ctx_list_del(ctx);
		close(ctx->uffd);
		close(ctx->pool_uffd);
		close(ctx->pagemap_fd);
		_pmv_fault_forget(ctx);
		_pmv_regions_forget(ctx);
		ctx->policy_running = false;	/* not ours to join */
		atomic_store(&ctx->kswapd_running, false);
		_pmv_policy_stop(ctx);
		_pmv_copy_pool_forget(ctx);
		_pmv_kfree(ctx->discards);
		_pmv_kfree(ctx->zap_wait);
		_pmv_kfree(ctx->surgery);
		for (unsigned i = 0; i < ctx->ntiers; i++)
			for (int ps = 0; ps < PMV_PS_NR; ps++) {
				_pmv_kfree(ctx->tiers[i].pool[ps].chunks);
				_pmv_kfree(ctx->tiers[i].pool[ps].clean);
				_pmv_kfree(ctx->tiers[i].pool[ps].dirty);
				_pmv_kfree(ctx->tiers[i].pool[ps].holes);
				_pmv_kfree(ctx->tiers[i].pool[ps].retired);
			}
		free(ctx);
		return;
	}
	ctx_list_del(ctx);
	/* No round may start on regions going away; parked pages die below. */
	_pmv_policy_stop(ctx);
	_pmv_far_kswapd_stop(ctx);
	/* Unmap first: a waiting faulter is woken and sees the unmap. */
	_pmv_regions_destroy(ctx);
	_pmv_fault_stop(ctx);
	_pmv_copy_pool_stop(ctx);
	_pmv_tiers_destroy(ctx);
	if (ctx->uffd >= 0)
		close(ctx->uffd);
	if (ctx->pool_uffd >= 0)
		close(ctx->pool_uffd);
	if (ctx->pagemap_fd >= 0)
		close(ctx->pagemap_fd);
	_pmv_regions_lock_destroy(&ctx->regions_lock);
	pthread_rwlock_destroy(&ctx->fork_lock);
	pthread_rwlock_destroy(&ctx->event_lock);
	pthread_mutex_destroy(&ctx->discard_mu);
	pthread_mutex_destroy(&ctx->surgery_mu);
	_pmv_kfree(ctx->discards);
	_pmv_kfree(ctx->zap_wait);
	_pmv_kfree(ctx->surgery);
	if (ctx->policy_inited) {
		pthread_mutex_destroy(&ctx->policy_mu);
		pthread_mutex_destroy(&ctx->policy_wait_mu);
		pthread_cond_destroy(&ctx->policy_cv);
	}
	pthread_mutex_destroy(&ctx->copy_pool_lock);
	free(ctx);
}
