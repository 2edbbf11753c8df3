/* SPDX-License-Identifier: Apache-2.0 */
/* Flags, their PARLEY_* twins and defaults: a flag wins over the
 * environment, bad values and unknown flags are refused with a message. */
#include "broker/config.h"

#include "common/err.h"
#include "tests/unit/test.h"

#include <stdlib.h>

static void
defaults(void)
{
	brk_config c;
	char err[256];

	unsetenv("PARLEY_LISTEN");
	unsetenv("PARLEY_MAX_DEVICES");
	ASSERT_OK(brk_config_load(&c, 0, NULL, err, sizeof(err)));
	ASSERT_STREQ(c.listen, "0.0.0.0:4000");
	ASSERT_STREQ(c.admin, "127.0.0.1:4001");
	ASSERT_STREQ(c.cluster_listen, "tcp://0.0.0.0:4002");
	ASSERT_STREQ(c.data, "./data");
	ASSERT_STREQ(c.rate_limit, "30/60");
	ASSERT_TRUE(c.join == NULL && c.jwt_secret == NULL);
	ASSERT_EQ(c.max_devices, 1);
	ASSERT_EQ(c.max_comment_bytes, 2000);
	ASSERT_EQ(c.max_message_bytes, 1048576);
	ASSERT_EQ(c.max_channels, 100);
	ASSERT_EQ(c.idle_timeout, 60);
	brk_config_fini(&c);
}

static void
env_then_flag(void)
{
	brk_config c;
	char err[256];
	char *argv[] = { "--max-devices", "3", "--data=/tmp/x" };

	setenv("PARLEY_MAX_DEVICES", "5", 1);
	setenv("PARLEY_LISTEN", "127.0.0.9:1", 1);
	ASSERT_OK(brk_config_load(&c, 3, argv, err, sizeof(err)));
	ASSERT_EQ(c.max_devices, 3);
	ASSERT_STREQ(c.listen, "127.0.0.9:1");
	ASSERT_STREQ(c.data, "/tmp/x");
	brk_config_fini(&c);
	unsetenv("PARLEY_MAX_DEVICES");
	unsetenv("PARLEY_LISTEN");
}

static void
refused(void)
{
	brk_config c;
	char err[256];
	char *unknown[] = { "--nope", "1" };
	char *bad[] = { "--max-devices", "zero" };
	char *range[] = { "--max-devices", "0" };
	char *missing[] = { "--listen" };
	char *positional[] = { "serve" };

	ASSERT_EQ(brk_config_load(&c, 2, unknown, err, sizeof(err)), PL_EINVAL);
	ASSERT_TRUE(strstr(err, "--nope") != NULL);
	brk_config_fini(&c);
	ASSERT_EQ(brk_config_load(&c, 2, bad, err, sizeof(err)), PL_EINVAL);
	ASSERT_TRUE(strstr(err, "max-devices") != NULL);
	brk_config_fini(&c);
	ASSERT_EQ(brk_config_load(&c, 2, range, err, sizeof(err)), PL_EINVAL);
	brk_config_fini(&c);
	ASSERT_EQ(brk_config_load(&c, 1, missing, err, sizeof(err)), PL_EINVAL);
	brk_config_fini(&c);
	ASSERT_EQ(
	    brk_config_load(&c, 1, positional, err, sizeof(err)), PL_EINVAL);
	brk_config_fini(&c);
	setenv("PARLEY_IDLE_TIMEOUT", "-4", 1);
	ASSERT_EQ(brk_config_load(&c, 0, NULL, err, sizeof(err)), PL_EINVAL);
	brk_config_fini(&c);
	unsetenv("PARLEY_IDLE_TIMEOUT");
}

static void
hostport(void)
{
	char h[64];
	int p;

	ASSERT_OK(
	    brk_config_split_hostport("127.0.0.1:4000", h, sizeof(h), &p));
	ASSERT_STREQ(h, "127.0.0.1");
	ASSERT_EQ(p, 4000);
	ASSERT_OK(brk_config_split_hostport("[::1]:9", h, sizeof(h), &p));
	ASSERT_STREQ(h, "::1");
	ASSERT_EQ(p, 9);
	ASSERT_EQ(
	    brk_config_split_hostport("nope", h, sizeof(h), &p), PL_EINVAL);
	ASSERT_EQ(
	    brk_config_split_hostport("h:70000", h, sizeof(h), &p), PL_EINVAL);
	ASSERT_EQ(brk_config_split_hostport("h:", h, sizeof(h), &p), PL_EINVAL);
}

/* Secrets given on the command line (visible in ps) are told apart from
 * the same flags set through the environment. */
static void
argv_or_env(void)
{
	brk_config c;
	char err[256];
	char *argv[] = { "--jwt-secret=s", "--log-format", "json",
		"--metrics-auth" };

	setenv("PARLEY_FIREBASE_AUTH", "from-env", 1);
	setenv("PARLEY_ADMIN_TOKEN_FILE", "/run/tok", 1);
	ASSERT_OK(brk_config_load(&c, 4, argv, err, sizeof(err)));
	ASSERT_TRUE(brk_config_in_argv(&c, "jwt-secret"));
	ASSERT_TRUE(!brk_config_in_argv(&c, "firebase-auth"));
	ASSERT_TRUE(!brk_config_in_argv(&c, "no-such-flag"));
	ASSERT_STREQ(c.firebase_auth, "from-env");
	ASSERT_STREQ(c.admin_token_file, "/run/tok");
	ASSERT_STREQ(c.log_format, "json");
	ASSERT_EQ(c.metrics_auth, 1);
	ASSERT_TRUE(c.log_file == NULL && c.jwt_secret_file == NULL);
	brk_config_fini(&c);
	unsetenv("PARLEY_FIREBASE_AUTH");
	unsetenv("PARLEY_ADMIN_TOKEN_FILE");
}

TEST_LIST{
	TEST_ENTRY(defaults),
	TEST_ENTRY(argv_or_env),
	TEST_ENTRY(env_then_flag),
	TEST_ENTRY(refused),
	TEST_ENTRY(hostport),
};
TEST_MAIN()
