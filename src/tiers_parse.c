/* SPDX-License-Identifier: MIT */
/*
 * The text form of a tier list (pmv_tiers_parse, pagemove.h): what the
 * CLI and PAGEMOVE_TIERS take. "mem@0:512M,lz4:1G,file@/var/tmp:8G".
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"

struct span {
	const char *s;
	size_t len;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n';
}

/* A decimal count with an optional K/M/G/T suffix (powers of 1024). */
static int parse_size(struct span v, uint64_t *out)
{
	uint64_t x = 0, mul = 1;
	size_t n = v.len, i;

	if (n && strchr("kKmMgGtT", v.s[n - 1])) {
		switch (v.s[n - 1] | 0x20) {
		case 'k': mul = 1ULL << 10; break;
		case 'm': mul = 1ULL << 20; break;
		case 'g': mul = 1ULL << 30; break;
		case 't': mul = 1ULL << 40; break;
		}
		n--;
	}
	if (!n)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (v.s[i] < '0' || v.s[i] > '9')
			return -EINVAL;
		if (x > (UINT64_MAX - (uint64_t)(v.s[i] - '0')) / 10)
			return -ERANGE;
		x = x * 10 + (uint64_t)(v.s[i] - '0');
	}
	if (x > SIZE_MAX / mul)
		return -ERANGE;
	*out = x * mul;
	return 0;
}

/* A decimal int, with a sign only if `sign`. */
static int parse_int(struct span v, bool sign, int *out)
{
	long long x = 0;
	size_t i = 0;
	bool neg = false;

	if (sign && v.len && (v.s[0] == '-' || v.s[0] == '+'))
		neg = v.s[i++] == '-';
	if (i == v.len)
		return -EINVAL;
	for (; i < v.len; i++) {
		if (v.s[i] < '0' || v.s[i] > '9')
			return -EINVAL;
		x = x * 10 + (v.s[i] - '0');
		if (x > INT_MAX)
			return -ERANGE;
	}
	*out = (int)(neg ? -x : x);
	return 0;
}

static int kind_of(struct span k)
{
	for (int i = 0; i < PMV_TIER_KIND_NR; i++) {
		const char *name = _pmv_tier_kind_name(i);

		if (strlen(name) == k.len && !memcmp(name, k.s, k.len))
			return i;
	}
	return -1;
}

/*
 * One tier, tok = KIND[@WHERE][:CAPACITY], into *tc; its name ("KIND" or
 * "KIND@WHERE") goes to buf at *used. Errors set the message.
 */
static int parse_one(struct span tok, unsigned idx, struct pmv_tier_config *tc,
		     char *buf, size_t buflen, size_t *used)
{
	const char *at = memchr(tok.s, '@', tok.len);
	const char *colon = memchr(tok.s, ':', tok.len);
	const char *end = tok.s + tok.len;
	struct span kind, where = { NULL, 0 }, cap = { NULL, 0 };
	size_t namelen;
	int ret, tl = (int)tok.len;
	char *name;

	if (at && colon && colon < at)
		at = NULL;	/* an '@' in the capacity: a bad capacity, said below */
	kind.s = tok.s;
	kind.len = (size_t)((at ? at : colon ? colon : end) - tok.s);
	if (at) {
		where.s = at + 1;
		where.len = (size_t)((colon ? colon : end) - where.s);
	}
	if (colon) {
		cap.s = colon + 1;
		cap.len = (size_t)(end - cap.s);
	}
	memset(tc, 0, sizeof(*tc));
	tc->node = PMV_NODE_ANY;
	tc->kind = kind_of(kind);
	if (tc->kind < 0)
		return _pmv_set_errmsg(-EINVAL, "pmv_tiers_parse: tier %u '%.*s': unknown kind "
				       "'%.*s' (mem, lz4, zstd or file)", idx, tl, tok.s,
				       (int)kind.len, kind.s);
	if (at && !where.len)
		return _pmv_set_errmsg(-EINVAL, "pmv_tiers_parse: tier %u '%.*s': nothing after '@'",
				       idx, tl, tok.s);
	if (colon) {
		uint64_t c = 0;

		ret = parse_size(cap, &c);
		if (ret)
			return _pmv_set_errmsg(ret, "pmv_tiers_parse: tier %u '%.*s': capacity "
					       "'%.*s' is %s", idx, tl, tok.s, (int)cap.len, cap.s,
					       ret == -ERANGE ? "too large" :
					       "not a number with an optional K, M, G or T");
		if (!c)
			return _pmv_set_errmsg(-EINVAL, "pmv_tiers_parse: tier %u '%.*s': capacity 0 "
					       "(leave it out for an unlimited tier)", idx, tl, tok.s);
		tc->capacity = (size_t)c;
	}
	switch (tc->kind) {
	case PMV_TIER_MEM:
		if (where.len && (ret = parse_int(where, false, &tc->node)))
			return _pmv_set_errmsg(ret, "pmv_tiers_parse: tier %u '%.*s': node '%.*s' "
					       "is %s", idx, tl, tok.s, (int)where.len, where.s,
					       ret == -ERANGE ? "too large" : "not a number");
		break;
	case PMV_TIER_LZ4:
		if (where.len)
			return _pmv_set_errmsg(-EINVAL, "pmv_tiers_parse: tier %u '%.*s': lz4 takes "
					       "no '@'", idx, tl, tok.s);
		break;
	case PMV_TIER_ZSTD:
		if (where.len && (ret = parse_int(where, true, &tc->level)))
			return _pmv_set_errmsg(ret, "pmv_tiers_parse: tier %u '%.*s': zstd level "
					       "'%.*s' is %s", idx, tl, tok.s, (int)where.len,
					       where.s, ret == -ERANGE ? "too large" : "not a number");
		break;
	case PMV_TIER_FILE:
		if (!where.len)
			return _pmv_set_errmsg(-EINVAL, "pmv_tiers_parse: tier %u '%.*s': file needs "
					       "@DIRECTORY or @DEVICE", idx, tl, tok.s);
		break;
	}
	/* the name, KIND[@WHERE]; a file tier's path is its tail */
	namelen = (size_t)((colon ? colon : end) - tok.s);
	if (buflen - *used < namelen + 1)
		return _pmv_set_errmsg(-ENOBUFS, "pmv_tiers_parse: tier %u '%.*s': no room for its "
				       "name in a buffer of %zu bytes (strlen(text) + 1 is enough)",
				       idx, tl, tok.s, buflen);
	name = buf + *used;
	memcpy(name, tok.s, namelen);
	name[namelen] = 0;
	*used += namelen + 1;
	tc->name = name;
	if (tc->kind == PMV_TIER_FILE)
		tc->path = name + (where.s - tok.s);
	return 0;
}

PMV_API int pmv_tiers_parse(const char *text, struct pmv_tier_config *tiers, unsigned max,
			    char *buf, size_t buflen)
{
	struct span toks[PMV_MAX_TIERS];
	unsigned n = 0, limit = max < PMV_MAX_TIERS ? max : PMV_MAX_TIERS, bad;
	size_t used = 0;
	const char *p = text;
	char why[160];
	int ret;

	if (!text || (!tiers && max) || (!buf && buflen))
		return _pmv_set_errmsg(-EINVAL, "pmv_tiers_parse: NULL text, tiers or buf");
	for (;;) {
		const char *end = strchr(p, ',');
		struct span tok;

		if (!end)
			end = p + strlen(p);
		while (p < end && is_blank(*p))
			p++;
		tok.s = p;
		while (end > p && is_blank(end[-1]))
			end--;
		tok.len = (size_t)(end - p);
		if (!tok.len)
			return _pmv_set_errmsg(-EINVAL, "pmv_tiers_parse: tier %u is empty in '%s'",
					       n, text);
		if (n >= limit)
			return _pmv_set_errmsg(-E2BIG, "pmv_tiers_parse: more than %u tiers in '%s'",
					       limit, text);
		ret = parse_one(tok, n, &tiers[n], buf, buflen, &used);
		if (ret)
			return ret;
		toks[n++] = tok;
		p = end;
		while (*p && *p != ',')
			p++;	/* the blanks trimmed above */
		if (!*p)
			break;
		p++;
	}
	if (_pmv_tiers_check(tiers, n, &bad, why, sizeof(why)))
		return _pmv_set_errmsg(-EINVAL, "pmv_tiers_parse: tier %u '%.*s': %s", bad,
				       (int)toks[bad].len, toks[bad].s, why);
	return (int)n;
}
