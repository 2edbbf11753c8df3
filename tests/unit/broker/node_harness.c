/* SPDX-License-Identifier: Apache-2.0 */
/* A real node in the test process for the broker tests; its clients are
 * those of ws_harness.c. */
#include "tests/unit/broker/node_harness.h"

#include "broker/config.h"
#include "broker/node.h"
#include "common/log.h"
#include "tests/unit/test.h"

#include <stdlib.h>

static brk_config cfg;
brk_node *nh_node;
static char dir[64];

void
nh_start(const char *max_channels)
{
	const char *extra[] = { "--max-channels", max_channels };

	nh_start_flags(extra, 2);
}

void
nh_start_flags(const char *const *extra, int nextra)
{
	char err[256];
	size_t nkeys;
	const char *base[] = { "--listen", "127.0.0.1:0", "--admin",
		"127.0.0.1:0", "--cluster-listen", "tcp://127.0.0.1:0",
		"--data", dir, "--jwt-secret", "router-secret", "--log-level",
		"error", "--node-name", "rt" };
	int nb = (int)(sizeof(base) / sizeof(base[0]));
	char *argv[64];

	ASSERT_TRUE(nb + nextra <= 64);
	for (int i = 0; i < nb; i++) {
		argv[i] = (char *)base[i];
	}
	for (int i = 0; i < nextra; i++) {
		argv[nb + i] = (char *)extra[i];
	}
	pl_log_level = PL_LOG_WARN;
	strcpy(dir, "/tmp/parley-router-XXXXXX");
	ASSERT_TRUE(mkdtemp(dir) != NULL);
	ASSERT_OK(brk_config_load(&cfg, nb + nextra, argv, err, sizeof(err)));
	ASSERT_OK(brk_node_create(&nh_node, &cfg, err, sizeof(err)));
	nh_attach(brk_node_base(nh_node), brk_node_conns(nh_node),
	    brk_node_keys(nh_node, &nkeys));
}

void
nh_stop(void)
{
	char cmd[128];

	brk_node_destroy(nh_node);
	brk_config_fini(&cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ASSERT_OK(system(cmd));
}
