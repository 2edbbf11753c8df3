/* SPDX-License-Identifier: Apache-2.0 */
/* `parley`: serve a node, mint a token, or steer a running node. */
#include "broker/cli.h"
#include "broker/config.h"
#include "broker/node.h"
#include "common/log.h"

#include <stdio.h>
#include <string.h>

static void
usage(void)
{
	printf("usage:\n"
	       "  parley serve [flags]        run a node in the foreground\n"
	       "  parley token --user ID [--ttl SECONDS]\n"
	       "  parley members|leader|stats|sync|drain|leave [--admin "
	       "HOST:PORT] [--json]\n\n");
	brk_config_usage();
}

static int
set_log_level(const char *s)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
		{ "error", PL_LOG_ERR },
		{ "warn", PL_LOG_WARN },
		{ "notice", PL_LOG_NOTICE },
		{ "info", PL_LOG_INFO },
		{ "debug", PL_LOG_DEBUG },
	};
	size_t i;

	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (strcmp(s, levels[i].name) == 0) {
			pl_log_level = levels[i].level;
			return 0;
		}
	}
	return -1;
}

static int
serve(int argc, char **argv)
{
	brk_config cfg;
	brk_node *n = NULL;
	char err[512] = "";
	int rc;

	if (argc > 0 &&
	    (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
		usage();
		return 0;
	}
	if (brk_config_load(&cfg, argc, argv, err, sizeof(err)) != 0) {
		fprintf(stderr, "parley serve: %s\n", err);
		brk_config_fini(&cfg);
		return 2;
	}
	if (set_log_level(cfg.log_level) != 0) {
		fprintf(stderr,
		    "parley serve: --log-level: unknown level \"%s\"\n",
		    cfg.log_level);
		brk_config_fini(&cfg);
		return 2;
	}
	if (brk_node_create(&n, &cfg, err, sizeof(err)) != 0) {
		LOG_ERR("BRK-STARTFAIL", "cannot start: %s", err);
		brk_node_destroy(n);
		brk_config_fini(&cfg);
		return 1;
	}
	rc = brk_node_run(n);
	brk_node_destroy(n);
	brk_config_fini(&cfg);
	LOG_NOTICE("BRK-EXIT", "stopped");
	return rc;
}

int
main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (strcmp(cmd, "serve") == 0) {
		return serve(argc - 2, argv + 2);
	}
	if (strcmp(cmd, "token") == 0) {
		return brk_cli_token(argc - 2, argv + 2);
	}
	if (strcmp(cmd, "members") == 0 || strcmp(cmd, "leader") == 0 ||
	    strcmp(cmd, "stats") == 0 || strcmp(cmd, "sync") == 0 ||
	    strcmp(cmd, "drain") == 0 || strcmp(cmd, "leave") == 0) {
		return brk_cli_admin(cmd, argc - 2, argv + 2);
	}
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 ||
	    strcmp(cmd, "help") == 0) {
		usage();
		return 0;
	}
	fprintf(stderr, "parley: unknown command \"%s\" (try parley --help)\n",
	    cmd);
	return 2;
}
