/* SPDX-License-Identifier: MIT */
/* libpagemove-preload.so: its settings are common/runcfg.h's. */
#ifndef PRELOAD_H
#define PRELOAD_H

#include "../common/runcfg.h"

#endif
