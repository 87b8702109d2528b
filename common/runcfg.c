/* SPDX-License-Identifier: MIT */
/* The settings of pagemove run and the preload; see runcfg.h. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runcfg.h"

int _pmvp_parse_size(const char *s, size_t *v)
{
	unsigned long long n = 0, mul = 1;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -ERANGE;
		n = n * 10 + (unsigned)(*s - '0');
	}
	switch (*s) {
	case 'k': case 'K': mul = 1ULL << 10; s++; break;
	case 'm': case 'M': mul = 1ULL << 20; s++; break;
	case 'g': case 'G': mul = 1ULL << 30; s++; break;
	case 't': case 'T': mul = 1ULL << 40; s++; break;
	}
	if (*s)
		return -EINVAL;
	if (n && mul > SIZE_MAX / n)
		return -ERANGE;
	*v = (size_t)(n * mul);
	return 0;
}

int _pmvp_parse_huge(const char *s, int *v)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "auto"))
		*v = _PMVP_HUGE_AUTO;
	else if (!strcmp(s, "always"))
		*v = _PMVP_HUGE_ALWAYS;
	else if (!strcmp(s, "never"))
		*v = _PMVP_HUGE_NEVER;
	else
		return -EINVAL;
	return 0;
}

/* Seconds with up to three decimals, at most a day. */
int _pmvp_parse_interval(const char *s, unsigned *ms)
{
	unsigned long sec = 0, frac = 0, scale = 1000;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	for (; *s >= '0' && *s <= '9'; s++)
		if ((sec = sec * 10 + (unsigned)(*s - '0')) > 86400)
			return -ERANGE;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -EINVAL;
		for (; *s >= '0' && *s <= '9'; s++)
			if (scale > 1) {
				scale /= 10;
				frac += (unsigned long)(*s - '0') * scale;
			}
	}
	if (*s)
		return -EINVAL;
	*ms = (unsigned)(sec * 1000 + frac);
	return 0;
}

int _pmvp_parse_policy(const char *s)
{
	if (s && (!strcmp(s, "auto") || !strcmp(s, "track") || !strcmp(s, "off")))
		return 0;
	return -EINVAL;
}

static void refuse(struct _pmvp_config *c, const char *var, const char *val, const char *why)
{
	if (!c->error[0])
		snprintf(c->error, sizeof(c->error), "%s=%s: %s", var, val, why);
}

void _pmvp_config_from_env(struct _pmvp_config *c)
{
	const char *v;
	int n;

	memset(c, 0, sizeof(*c));
	c->enabled = true;
	c->min_size = _PMVP_MIN_SIZE_DEFAULT;
	c->huge = _PMVP_HUGE_AUTO;
	c->stats_interval = 1000;
	v = getenv("PAGEMOVE_RUN");
	if (v && !strcmp(v, "0"))
		c->enabled = false;
	v = getenv("PAGEMOVE_TIERS");
	n = pmv_tiers_parse(v && *v ? v : "mem", c->tiers, PMV_MAX_TIERS, c->tier_buf,
			    sizeof(c->tier_buf));
	if (n < 0) {
		refuse(c, "PAGEMOVE_TIERS", v, pmv_errmsg());
		c->enabled = false;
	} else {
		c->ntiers = (unsigned)n;
	}
	if ((v = getenv("PAGEMOVE_RUN_MIN_SIZE")) && *v) {
		size_t s;

		if (_pmvp_parse_size(v, &s) || s < 4096)
			refuse(c, "PAGEMOVE_RUN_MIN_SIZE", v, "not a size of at least 4K");
		else
			c->min_size = s;
	}
	if ((v = getenv("PAGEMOVE_RUN_HUGE")) && *v && _pmvp_parse_huge(v, &c->huge))
		refuse(c, "PAGEMOVE_RUN_HUGE", v, "not auto, always or never");
	/*
	 * auto with a far tier: 4 KB pages. A far tier evicts and faults back
	 * whole pages, and a program's hot data is spread over its heap: a
	 * 2 MB page with one hot 4 KB piece in it cannot stay out, and every
	 * access to another piece brings 2 MB back and sends 2 MB out. redis
	 * under mem:28M,lz4 with hot keys spread over 100 MB: 50000 GETs in
	 * 2.1 s with 4 KB pages, not done in 120 s with 2 MB pages. `always`
	 * still gives 2 MB pages.
	 */
	if (c->huge == _PMVP_HUGE_AUTO)
		for (unsigned i = 0; i < c->ntiers; i++)
			if (c->tiers[i].kind != PMV_TIER_MEM)
				c->huge = _PMVP_HUGE_NEVER;
	if ((v = getenv("PAGEMOVE_RUN_STATS_INTERVAL")) && *v &&
	    _pmvp_parse_interval(v, &c->stats_interval))
		refuse(c, "PAGEMOVE_RUN_STATS_INTERVAL", v, "not a number of seconds");
	v = getenv("PAGEMOVE_RUN_ALLOW_USER_MODE");
	c->allow_user_mode = v && *v && strcmp(v, "0");
	v = getenv("PAGEMOVE_RUN_STATS_DIR");
	if (!v || !*v)
		v = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(c->stats_dir, sizeof(c->stats_dir), "%s", v);
}
