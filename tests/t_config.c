/* SPDX-License-Identifier: MIT */
/*
 * Configuration precedence (pmv_create(3), ENVIRONMENT): an environment
 * variable fills in what the program left at its default (0) and never
 * overrides what it set; a variable that does not parse fails pmv_create()
 * with EINVAL whether or not it would have applied.
 *
 * The copy engine is seen through the copy threads it starts (offload
 * starts them at creation, memcpy never), the policy mode through
 * pmv_ctx_stats(), a knob through the watermark it sets in
 * pmv_tier_stats().
 */

#include "harness.h"

#define CAP	(64UL << 20)

static const char *const vars[] = {
	"PAGEMOVE_COPY", "PAGEMOVE_POLICY", "PAGEMOVE_WMARK_HIGH_PERMILLE",
	"PAGEMOVE_FAULT_NO_RT",
};

/* Two tiers, the first of CAP bytes; NULL with errno on failure. */
static pmv_ctx *create_flags(int engine, const struct pmv_policy_config *pol,
			     unsigned flags)
{
	struct pmv_tier_config tc[2] = {
		{ .name = "fast", .node = PMV_NODE_ANY, .capacity = CAP },
		{ .name = "slow", .node = PMV_NODE_ANY },
	};
	struct pmv_config cfg = { .ntiers = 2, .tiers = tc, .copy_engine = engine,
				  .policy = pol, .flags = flags };
	pmv_ctx *ctx = pmv_create(&cfg);

	if (!ctx && (errno == EOPNOTSUPP || errno == EPERM || errno == ENOSYS))
		t_skip("pmv_create: %s (%s)", strerror(errno), pmv_errmsg());
	return ctx;
}

static pmv_ctx *create(int engine, const struct pmv_policy_config *pol)
{
	return create_flags(engine, pol, 0);
}

/* Threads named prefix* that run SCHED_FIFO, and how many there are (*all). */
static int count_fifo(const char *prefix, int *all)
{
	struct cli_thread t[64];
	int n = 0;

	*all = cli_threads(prefix, t, 64);
	for (int i = 0; i < *all && i < 64; i++)
		n += sched_getscheduler(t[i].tid) == SCHED_FIFO;
	return n;
}

/*
 * pmv_create(3): the handlers run SCHED_FIFO when permitted (root here),
 * and PMV_CTX_NO_RT, or PAGEMOVE_FAULT_NO_RT, keeps them SCHED_OTHER.
 */
static int test_no_rt_keeps_handlers_sched_other(void)
{
	int bad = 0, fifo, all;
	pmv_ctx *ctx;

	ctx = create_flags(PMV_COPY_MEMCPY, NULL, 0);
	T_CHECK(bad, ctx, "pmv_create: %s", strerror(errno));
	if (ctx) {
		fifo = count_fifo("pmv-fault", &all);
		T_CHECK(bad, all > 0, "no pmv-fault threads");
		if (geteuid() == 0)
			T_CHECK(bad, fifo == all, "as root, %d of %d handlers SCHED_FIFO", fifo, all);
		pmv_destroy(ctx);
	}
	ctx = create_flags(PMV_COPY_MEMCPY, NULL, PMV_CTX_NO_RT);
	T_CHECK(bad, ctx, "pmv_create(PMV_CTX_NO_RT): %s", strerror(errno));
	if (ctx) {
		fifo = count_fifo("pmv-fault", &all);
		T_CHECK(bad, all > 0 && fifo == 0, "PMV_CTX_NO_RT: %d of %d handlers SCHED_FIFO",
			fifo, all);
		pmv_destroy(ctx);
	}
	setenv("PAGEMOVE_FAULT_NO_RT", "1", 1);
	ctx = create_flags(PMV_COPY_MEMCPY, NULL, 0);
	T_CHECK(bad, ctx, "pmv_create: %s", strerror(errno));
	if (ctx) {
		fifo = count_fifo("pmv-fault", &all);
		T_CHECK(bad, all > 0 && fifo == 0,
			"PAGEMOVE_FAULT_NO_RT: %d of %d handlers SCHED_FIFO", fifo, all);
		pmv_destroy(ctx);
	}
	unsetenv("PAGEMOVE_FAULT_NO_RT");
	return bad;
}

static int test_copy_env_fills_auto(void)
{
	int bad = 0, n;
	pmv_ctx *ctx;

	setenv("PAGEMOVE_COPY", "offload", 1);
	ctx = create(PMV_COPY_AUTO, NULL);
	T_CHECK(bad, ctx, "pmv_create: %s", strerror(errno));
	if (ctx) {
		n = t_count_threads("pmv-copy");
		T_CHECK(bad, n > 0, "PAGEMOVE_COPY=offload on an auto context: %d copy threads", n);
		pmv_destroy(ctx);
	}
	unsetenv("PAGEMOVE_COPY");
	return bad;
}

static int test_copy_env_keeps_explicit(void)
{
	int bad = 0, n;
	pmv_ctx *ctx;

	setenv("PAGEMOVE_COPY", "offload", 1);
	ctx = create(PMV_COPY_MEMCPY, NULL);
	T_CHECK(bad, ctx, "pmv_create: %s", strerror(errno));
	if (ctx) {
		n = t_count_threads("pmv-copy");
		T_CHECK(bad, n == 0, "PAGEMOVE_COPY=offload overrode memcpy: %d copy threads", n);
		pmv_destroy(ctx);
	}
	unsetenv("PAGEMOVE_COPY");
	return bad;
}

static int test_bad_variable_fails_always(void)
{
	struct pmv_policy_config pol = { .mode = PMV_POLICY_OFF, .wmark_high_permille = 50 };
	int bad = 0;
	pmv_ctx *ctx;

	setenv("PAGEMOVE_COPY", "bogus", 1);
	errno = 0;
	ctx = create(PMV_COPY_MEMCPY, NULL);
	T_CHECK(bad, !ctx && errno == EINVAL, "PAGEMOVE_COPY=bogus with memcpy set: %s, errno %d",
		ctx ? "created" : "failed", errno);
	if (ctx)
		pmv_destroy(ctx);
	unsetenv("PAGEMOVE_COPY");

	setenv("PAGEMOVE_POLICY", "sometimes", 1);
	errno = 0;
	ctx = create(PMV_COPY_AUTO, &pol);
	T_CHECK(bad, !ctx && errno == EINVAL, "PAGEMOVE_POLICY=sometimes with off set: %s, errno %d",
		ctx ? "created" : "failed", errno);
	if (ctx)
		pmv_destroy(ctx);
	unsetenv("PAGEMOVE_POLICY");

	setenv("PAGEMOVE_WMARK_HIGH_PERMILLE", "50x", 1);
	errno = 0;
	ctx = create(PMV_COPY_AUTO, &pol);
	T_CHECK(bad, !ctx && errno == EINVAL,
		"PAGEMOVE_WMARK_HIGH_PERMILLE=50x with the knob set: %s, errno %d",
		ctx ? "created" : "failed", errno);
	if (ctx)
		pmv_destroy(ctx);
	unsetenv("PAGEMOVE_WMARK_HIGH_PERMILLE");
	return bad;
}

static int policy_mode(const struct pmv_policy_config *pol, int *mode)
{
	struct pmv_ctx_stats st;
	pmv_ctx *ctx = create(PMV_COPY_AUTO, pol);

	if (!ctx)
		return -errno;
	pmv_ctx_stats(ctx, &st);
	*mode = st.policy_mode;
	pmv_destroy(ctx);
	return 0;
}

static int test_policy_env_fills_default_mode(void)
{
	struct pmv_policy_config off = { .mode = PMV_POLICY_OFF }, dflt = { 0 };
	int bad = 0, mode = -1, err;

	setenv("PAGEMOVE_POLICY", "track", 1);
	err = policy_mode(NULL, &mode);
	T_CHECK(bad, !err && mode == PMV_POLICY_TRACK,
		"PAGEMOVE_POLICY=track, policy NULL: err %d, mode %d", err, mode);
	err = policy_mode(&dflt, &mode);
	T_CHECK(bad, !err && mode == PMV_POLICY_TRACK,
		"PAGEMOVE_POLICY=track, mode left 0: err %d, mode %d", err, mode);
	err = policy_mode(&off, &mode);
	T_CHECK(bad, !err && mode == PMV_POLICY_OFF,
		"PAGEMOVE_POLICY=track overrode mode off: err %d, mode %d", err, mode);
	unsetenv("PAGEMOVE_POLICY");
	return bad;
}

static int wmark_high(const struct pmv_policy_config *pol, uint64_t *v)
{
	struct pmv_tier_stats ts;
	pmv_ctx *ctx = create(PMV_COPY_AUTO, pol);
	int err;

	if (!ctx)
		return -errno;
	err = pmv_tier_stats(ctx, 0, &ts);
	*v = ts.wmark_high;
	pmv_destroy(ctx);
	return err;
}

static int test_policy_env_fills_default_knob(void)
{
	struct pmv_policy_config left = { .mode = PMV_POLICY_OFF },
				 set = { .mode = PMV_POLICY_OFF, .wmark_high_permille = 50 };
	uint64_t v = 0;
	int bad = 0, err;

	setenv("PAGEMOVE_WMARK_HIGH_PERMILLE", "100", 1);
	err = wmark_high(&left, &v);
	T_CHECK(bad, !err && v == CAP / 1000 * 100,
		"PAGEMOVE_WMARK_HIGH_PERMILLE=100, knob left 0: err %d, wmark_high %llu, want %lu",
		err, (unsigned long long)v, CAP / 1000 * 100);
	err = wmark_high(&set, &v);
	T_CHECK(bad, !err && v == CAP / 1000 * 50,
		"PAGEMOVE_WMARK_HIGH_PERMILLE=100 overrode 50: err %d, wmark_high %llu, want %lu",
		err, (unsigned long long)v, CAP / 1000 * 50);
	unsetenv("PAGEMOVE_WMARK_HIGH_PERMILLE");
	return bad;
}

int main(void)
{
	static const struct {
		const char *name;
		int (*fn)(void);
	} tests[] = {
		{ "test_copy_env_fills_auto", test_copy_env_fills_auto },
		{ "test_copy_env_keeps_explicit", test_copy_env_keeps_explicit },
		{ "test_bad_variable_fails_always", test_bad_variable_fails_always },
		{ "test_policy_env_fills_default_mode", test_policy_env_fills_default_mode },
		{ "test_policy_env_fills_default_knob", test_policy_env_fills_default_knob },
		{ "test_no_rt_keeps_handlers_sched_other", test_no_rt_keeps_handlers_sched_other },
	};
	int failed = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
	for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		int bad = tests[i].fn();

		printf("%s %s\n", bad ? "FAIL" : "ok  ", tests[i].name);
		failed += bad != 0;
	}
	if (failed) {
		printf("t_config: %d sub-test(s) failed\n", failed);
		return T_EXIT_FAIL;
	}
	printf("t_config: variables fill in defaults, never override, bad ones fail\n");
	return T_EXIT_PASS;
}
