/* SPDX-License-Identifier: Apache-2.0 */
/* `parley`: serve a node, mint a token, or steer a running node. */
#include "broker/cli.h"
#include "broker/config.h"
#include "broker/node.h"
#include "common/log.h"
#include "common/version.h"

#include <stdio.h>
#include <string.h>

static void
usage(void)
{
	printf("usage:\n"
	       "  parley serve [flags]        run a node in the foreground\n"
	       "  parley token --user ID [--ttl SECONDS] [--jwt-secret-file "
	       "FILE | --data DIR]\n"
	       "  parley members|leader|stats|sync [--json]\n"
	       "  parley sync --parked | --retry-parked\n"
	       "  parley drain [--wait] | leave | log-level [LEVEL] | backup "
	       "--out FILE\n"
	       "  parley --version\n\n"
	       "Admin commands take --admin HOST:PORT (PARLEY_ADMIN) and "
	       "--admin-token-file FILE\n"
	       "(PARLEY_ADMIN_TOKEN_FILE); `parley COMMAND --help` describes "
	       "each.\n\n");
	brk_config_usage();
}

static void
serve_usage(void)
{
	printf("usage: parley serve [flags]\n\n"
	       "Runs a node in the foreground. SIGTERM or SIGINT drains it, "
	       "SIGHUP reopens\nthe log file and reloads the secret files, "
	       "SIGUSR1/SIGUSR2 are ignored.\n\n");
	brk_config_usage();
}

static int
is_help(const char *s)
{
	return strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0;
}

static int
serve(int argc, char **argv)
{
	brk_config cfg;
	brk_node *n = NULL;
	char err[512] = "";
	int rc, level;

	if (argc > 0 && is_help(argv[0])) {
		serve_usage();
		return 0;
	}
	if (brk_config_load(&cfg, argc, argv, err, sizeof(err)) != 0) {
		fprintf(stderr, "parley serve: %s\n", err);
		brk_config_fini(&cfg);
		return 2;
	}
	if ((level = pl_log_level_parse(cfg.log_level)) < 0) {
		fprintf(stderr,
		    "parley serve: --log-level: unknown level \"%s\" (error, "
		    "warn, notice, info or debug)\n",
		    cfg.log_level);
		brk_config_fini(&cfg);
		return 2;
	}
	pl_log_set_level(level);
	if (pl_log_set_format(cfg.log_format) != 0) {
		fprintf(stderr,
		    "parley serve: --log-format: unknown format \"%s\" (text, "
		    "json or logfmt)\n",
		    cfg.log_format);
		brk_config_fini(&cfg);
		return 2;
	}
	if (cfg.log_file && pl_log_open(cfg.log_file, err, sizeof(err)) != 0) {
		fprintf(stderr, "parley serve: --log-file: %s\n", err);
		brk_config_fini(&cfg);
		return 2;
	}
	if (brk_node_create(&n, &cfg, err, sizeof(err)) != 0) {
		LOG_ERR("BRK-STARTFAIL", "cannot start: %s", err);
		if (cfg.log_file) {
			/* The reason must reach whoever started us too. */
			fprintf(
			    stderr, "parley serve: cannot start: %s\n", err);
		}
		pl_log_close();
		brk_config_fini(&cfg);
		return 1;
	}
	rc = brk_node_run(n);
	brk_node_destroy(n);
	LOG_NOTICE("BRK-EXIT", "stopped");
	pl_log_close();
	brk_config_fini(&cfg);
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
	if (brk_cli_is_admin(cmd)) {
		return brk_cli_admin(cmd, argc - 2, argv + 2);
	}
	if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-V") == 0 ||
	    strcmp(cmd, "version") == 0) {
		printf("parley %s (git %s)\n", PARLEY_VERSION,
		    PARLEY_GIT_DESCRIBE);
		return 0;
	}
	if (is_help(cmd) || strcmp(cmd, "help") == 0) {
		if (argc > 2 && strcmp(argv[2], "serve") == 0) {
			serve_usage();
		} else if (argc > 2 && brk_cli_is_admin(argv[2])) {
			brk_cli_admin_usage(argv[2]);
		} else if (argc > 2 && strcmp(argv[2], "token") == 0) {
			char *h[] = { "--help" };
			return brk_cli_token(1, h);
		} else {
			usage();
		}
		return 0;
	}
	fprintf(stderr, "parley: unknown command \"%s\" (try parley --help)\n",
	    cmd);
	return 2;
}
