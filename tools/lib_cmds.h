/* SPDX-License-Identifier: MIT */
/* Subcommands that run on libpagemove's managed memory in this process. */
#ifndef LIB_CMDS_H
#define LIB_CMDS_H

int cmd_demo(int argc, char **argv);
int cmd_run(int argc, char **argv);

#endif
