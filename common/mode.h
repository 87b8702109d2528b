/* SPDX-License-Identifier: MIT */
/*
 * What the demo and the benches say about a context's userfaultfd mode
 * (pmv_ctx_stats.mode, mode_why, mode_errno): in user-mode-only mode the
 * tiering policy cannot sample, and every figure about it means nothing.
 */
#ifndef MODE_H
#define MODE_H

#include <stddef.h>

#include "pagemove.h"

/* "full" or "user-mode-only" */
const char *mode_name(const struct pmv_ctx_stats *cs);

/* For JSON: "device", "syscall", "asked", "denied" or "unknown". */
const char *mode_why_key(const struct pmv_ctx_stats *cs);

/*
 * One sentence: the mode and why, and in user-mode-only mode what it
 * costs and how to get full mode. Returns buf.
 */
const char *mode_explain(const struct pmv_ctx_stats *cs, char *buf, size_t len);

#endif /* MODE_H */
