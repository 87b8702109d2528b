/* SPDX-License-Identifier: MIT */
/* Subcommands that run on libpagemove's managed memory in this process. */
#ifndef PMV_TOOLS_LIB_CMDS_H
#define PMV_TOOLS_LIB_CMDS_H

int pmv_cmd_demo(int argc, char **argv);
int pmv_cmd_bench(int argc, char **argv);	/* bench/bench.c */

#endif
