/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for cluster/seeds: --join parsing, the derived advertise URL, the
 * URLs that reach ourselves, and DNS seeds resolved on the helper thread and
 * dialled into a real bus. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster/seeds.h"
#include "common/err.h"
#include "tests/unit/test.h"

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static clu_bus *
open_bus(void)
{
	clu_bus_opts o = { "tcp://127.0.0.1:0", 1 << 20, 50, 200, 64, 0 };
	clu_bus *b = NULL;

	ASSERT_OK(clu_bus_create(&b, &o));
	return b;
}

static void
parse_join(void)
{
	char **urls, **dns;
	size_t nu, nd;

	ASSERT_OK(
	    clu_seeds_parse_join(" tcp://a:1 ,, dns:svc.local:4002,"
				 "tcp://a:1,\ttcp://b:2\t, dns:svc.local:4002",
		&urls, &nu, &dns, &nd));
	ASSERT_EQ(nu, 2);
	ASSERT_STREQ(urls[0], "tcp://a:1");
	ASSERT_STREQ(urls[1], "tcp://b:2");
	ASSERT_EQ(nd, 1);
	ASSERT_STREQ(dns[0], "svc.local:4002");
	clu_seeds_strv_free(urls, nu);
	clu_seeds_strv_free(dns, nd);

	ASSERT_OK(clu_seeds_parse_join(NULL, &urls, &nu, &dns, &nd));
	ASSERT_TRUE(urls == NULL && dns == NULL && nu == 0 && nd == 0);
	ASSERT_OK(clu_seeds_parse_join(" , ", &urls, &nu, &dns, &nd));
	ASSERT_EQ(nu + nd, 0);

	static const char *const bad[] = { "127.0.0.1:4002", "dns:nohostport",
		"dns::4002", "dns:host:", "tcp://a:1,bogus" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_EQ(clu_seeds_parse_join(bad[i], &urls, &nu, &dns, &nd),
		    PL_EINVAL);
		ASSERT_TRUE(urls == NULL && dns == NULL && nu == 0 && nd == 0);
	}
	{
		char longer[400];

		memset(longer, 'x', sizeof(longer) - 1);
		longer[sizeof(longer) - 1] = '\0';
		memcpy(longer, "tcp://", 6);
		ASSERT_EQ(clu_seeds_parse_join(longer, &urls, &nu, &dns, &nd),
		    PL_EINVAL);
	}
}

static void
derive_advertise(void)
{
	char host[256], want[320], *s;

	s = clu_seeds_derive_advertise("tcp://10.1.2.3:0", 4711);
	ASSERT_STREQ(s, "tcp://10.1.2.3:4711");
	free(s);
	s = clu_seeds_derive_advertise("tcp://node-a:4002", 0);
	ASSERT_STREQ(s, "tcp://node-a:4002");
	free(s);
	s = clu_seeds_derive_advertise("ipc:///tmp/x", 5);
	ASSERT_STREQ(s, "ipc:///tmp/x");
	free(s);
	/* Any interface: the hostname stands in. */
	ASSERT_OK(gethostname(host, sizeof(host)));
	host[sizeof(host) - 1] = '\0';
	snprintf(want, sizeof(want), "tcp://%s:4002", host);
	s = clu_seeds_derive_advertise("tcp://0.0.0.0:4002", 4002);
	ASSERT_STREQ(s, want);
	free(s);
	s = clu_seeds_derive_advertise("tcp://[::]:4002", 4002);
	ASSERT_STREQ(s, want);
	free(s);
	s = clu_seeds_derive_advertise("tcp://*:4002", -1);
	ASSERT_STREQ(s, want);
	free(s);
}

/* Seed URLs are dialled except those that reach ourselves. */
static void
self_urls(void)
{
	clu_bus *b = open_bus();
	clu_seeds *s;

	ASSERT_EQ(clu_seeds_create(&s, "nonsense", "tcp://me:1", clu_bus_fd(b)),
	    PL_EINVAL);
	ASSERT_OK(clu_seeds_create(&s,
	    "tcp://me:1, tcp://127.0.0.1:1, "
	    "tcp://127.0.0.2:1",
	    "tcp://me:1", clu_bus_fd(b)));
	ASSERT_TRUE(clu_seeds_configured(s));
	ASSERT_TRUE(clu_seeds_is_self(s, "tcp://me:1"));
	ASSERT_TRUE(!clu_seeds_is_self(s, "tcp://127.0.0.2:1"));
	ASSERT_TRUE(clu_seeds_add_self(s, "tcp://127.0.0.2:1"));
	ASSERT_TRUE(!clu_seeds_add_self(s, "tcp://127.0.0.2:1"));
	ASSERT_TRUE(!clu_seeds_add_self(s, "tcp://me:1"));
	ASSERT_TRUE(clu_seeds_is_self(s, "tcp://127.0.0.2:1"));
	/* No DNS names: resolving is a no-op with nothing to take. */
	ASSERT_OK(clu_seeds_resolve(s));
	ASSERT_TRUE(!clu_seeds_take_resolved(s));
	clu_bus_dial_begin(b);
	clu_seeds_dial(s, b);
	clu_bus_dial_end(b);
	ASSERT_EQ(clu_bus_dialer_count(b), 1);
	ASSERT_TRUE(clu_bus_dialing(b, "tcp://127.0.0.1:1"));
	clu_seeds_destroy(s);

	ASSERT_OK(clu_seeds_create(&s, NULL, "tcp://me:1", clu_bus_fd(b)));
	ASSERT_TRUE(!clu_seeds_configured(s));
	clu_seeds_destroy(s);
	clu_seeds_destroy(NULL);
	clu_bus_destroy(b);
}

/* dns: seeds resolve on the helper thread, wake the bus fd, and their
 * addresses are dialled; names that do not resolve contribute nothing. */
static void
dns_seeds(void)
{
	clu_bus *b = open_bus();
	clu_seeds *s;
	uint64_t end = now_ms() + 10000;
	bool got = false;

	ASSERT_OK(clu_seeds_create(&s,
	    "dns:localhost:4555, "
	    "dns:no-such-host.invalid:1",
	    "tcp://me:1", clu_bus_fd(b)));
	ASSERT_OK(clu_seeds_resolve(s));
	ASSERT_EQ(clu_seeds_resolve(s), PL_EAGAIN); /* one lookup at a time */
	while (!got && now_ms() < end) {
		struct pollfd p = { clu_bus_fd(b), POLLIN, 0 };

		poll(&p, 1, 100);
		clu_bus_clear_fd(b);
		got = clu_seeds_take_resolved(s);
	}
	ASSERT_TRUE(got);
	ASSERT_TRUE(!clu_seeds_take_resolved(s));
	clu_bus_dial_begin(b);
	clu_seeds_dial(s, b);
	clu_bus_dial_end(b);
	ASSERT_TRUE(clu_bus_dialing(b, "tcp://127.0.0.1:4555"));
	ASSERT_TRUE(clu_bus_dialer_count(b) >= 1); /* ::1 too, when known */

	/* A lookup still running at destroy finishes on its own. */
	ASSERT_OK(clu_seeds_resolve(s));
	clu_seeds_destroy(s);
	clu_bus_destroy(b);
	usleep(200 * 1000);
}

TEST_LIST{
	TEST_ENTRY(parse_join),
	TEST_ENTRY(derive_advertise),
	TEST_ENTRY(self_urls),
	TEST_ENTRY(dns_seeds),
};

TEST_MAIN()
