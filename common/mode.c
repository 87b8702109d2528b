/* SPDX-License-Identifier: MIT */
/* The userfaultfd mode of a context, in words; see mode.h. */
#include <stdio.h>
#include <string.h>

#include "mode.h"

const char *mode_name(const struct pmv_ctx_stats *cs)
{
	return cs->mode == PMV_MODE_FULL ? "full" : "user-mode-only";
}

const char *mode_why_key(const struct pmv_ctx_stats *cs)
{
	switch (cs->mode_why) {
	case PMV_MODE_WHY_DEVICE:	return "device";
	case PMV_MODE_WHY_SYSCALL:	return "syscall";
	case PMV_MODE_WHY_ASKED:	return "asked";
	case PMV_MODE_WHY_DENIED:	return "denied";
	default:			return "unknown";
	}
}

const char *mode_explain(const struct pmv_ctx_stats *cs, char *buf, size_t len)
{
	static const char cost[] = "the tiering policy cannot sample pages, so it moves no hot "
				   "page in";
	static const char how[] = "for full mode without root: read-write access to "
				  "/dev/userfaultfd for the user or a group, CAP_SYS_PTRACE, or "
				  "sysctl vm.unprivileged_userfaultfd=1 (README)";

	switch (cs->mode_why) {
	case PMV_MODE_WHY_DEVICE:
		snprintf(buf, len, "userfaultfd: full mode, from /dev/userfaultfd");
		break;
	case PMV_MODE_WHY_SYSCALL:
		snprintf(buf, len, "userfaultfd: full mode, from userfaultfd(2) (CAP_SYS_PTRACE "
			 "or vm.unprivileged_userfaultfd=1)");
		break;
	case PMV_MODE_WHY_ASKED:
		snprintf(buf, len, "userfaultfd: user-mode-only, as PMV_CTX_USER_MODE_ONLY asked: "
			 "%s", cost);
		break;
	case PMV_MODE_WHY_DENIED:
		snprintf(buf, len, "userfaultfd: user-mode-only, because /dev/userfaultfd: %s, and "
			 "userfaultfd(2) refused kernel-mode faults: %s; %s",
			 strerror(cs->mode_errno), cost, how);
		break;
	default:
		snprintf(buf, len, "userfaultfd: %s mode (the library does not say why)%s%s",
			 mode_name(cs), cs->mode == PMV_MODE_FULL ? "" : ": ",
			 cs->mode == PMV_MODE_FULL ? "" : cost);
	}
	return buf;
}
