/* SPDX-License-Identifier: MIT */
/* pagemove: the command-line tool. One subcommand per file. */
#include <stdio.h>
#include <string.h>

#include "pagemove.h"
#include "cli.h"
#include "lib_cmds.h"
#include "../bench/bench.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} cmds[] = {
	{ "bench", cmd_bench, "measure migration and exchange against memcpy, in one run" },
	{ "demo", cmd_demo, "move a running workload's pages between two tiers and verify them" },
	{ "migrate", cmd_migrate, "move another process's pages between NUMA nodes" },
	{ "run", cmd_run, "run a program with its large anonymous memory managed" },
	{ "stat", cmd_stat, "show a process's memory per mapping and NUMA node" },
	{ "top", cmd_top, "refresh the tiers and migrations of processes under pagemove run" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: pagemove COMMAND [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(f, "  %-9s %s\n", cmds[i].name, cmds[i].help);
	fprintf(f, "  %-9s %s\n", "version", "print the library version");
	fprintf(f, "\n'pagemove COMMAND --help' describes each command, its options and its\n"
		"exit statuses.\n\noptions:\n  -h, --help     show this help\n"
		"  --version      the same as 'pagemove version'\n\n"
		"exit status: that of the command; 2 for no command or an unknown one.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
		if (argc > 2) {
			for (int i = 2; i < argc; i++)
				fprintf(stderr, "pagemove %s: unexpected argument '%s'\n",
					argv[1], argv[i]);
			return 2;
		}
		printf("pagemove %s\n", pmv_version());
		return 0;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "pagemove: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
