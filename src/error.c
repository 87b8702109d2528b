/* SPDX-License-Identifier: MIT */
/*
 * Error text: the calling thread's last message (pmv_errmsg) and the
 * library's wording of each errno (pmv_strerror). Every layer sets the
 * message; this file calls nothing of the library's.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static __thread char errmsg[256];

int _pmv_set_errmsg(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	return err;
}

PMV_API const char *pmv_errmsg(void)
{
	return errmsg;
}

PMV_API const char *pmv_strerror(int err)
{
	if (err >= 0)
		return "success";	/* a status >= 0 is a tier */
	if (err == INT_MIN)
		return "unknown error";	/* it has no negation */
	switch (-err) {
	case EFAULT: return "not in a managed region";
	case ENOENT: return "page never touched";
	case EBUSY: return "page in use, could not be moved";
	case ENOMEM: return "target tier full or out of pool pages";
	case EACCES: return "page shared with another process";
	case EINVAL: return "invalid argument or no such tier";
	case EIO: return "page not on its tier's node, or not all pages moved";
	case ECHILD: return "context belongs to the parent process";
	case ENODEV: return "NUMA node missing or without memory";
	case EOPNOTSUPP: return "kernel lacks a required userfaultfd feature";
	case EPERM: return "userfaultfd not permitted";
	case E2BIG: return "too many pages";
	case ENOSPC: return "far tier full";
	case EMSGSIZE: return "page does not compress below 3/4 of its size";
	case EAGAIN: return "page busy now, not waited for";
	default: return strerror(-err);
	}
}

void _pmv_clear_errmsg(void)
{
	errmsg[0] = 0;
}
