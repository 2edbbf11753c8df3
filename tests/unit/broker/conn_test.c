/* SPDX-License-Identifier: Apache-2.0 */
/* Sockets and the router without a node (parts_harness.c builds the loop,
 * the flags, the counters, a router and the socket list with its hooks),
 * with one channel module of the test's own; links none of broker/node.c,
 * storage or the cluster. Real WebSocket clients over socketpairs: upgrade,
 * join, events, refusals while the node would be draining, /readyz and the
 * counters a node exports. */
#include "broker/router.h"
#include "tests/unit/broker/node_harness.h"
#include "tests/unit/broker/parts_harness.h"
#include "tests/unit/test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int terminated;

/* ---- a channel module: room:<name> ---- */

static int
room_join(brk_channel *ch, json_t *params, char **reply, const char **reason)
{
	(void)ch;
	if (json_is_true(json_object_get(params, "deny"))) {
		*reason = "denied";
		return -1;
	}
	*reply = strdup("{\"welcome\":true}");
	return 0;
}

static void
room_in(brk_channel *ch, const char *event, json_t *payload, brk_reply *r)
{
	static const char said[] = "{\"by\":\"someone\"}";
	char *text;

	if (strcmp(event, "echo") != 0) {
		brk_reply_error(r, "unknown event");
		return;
	}
	text = json_dumps(payload, JSON_COMPACT);
	brk_reply_ok(r, text);
	free(text);
	brk_router_broadcast(
	    ph.router, brk_channel_topic(ch), "said", said, strlen(said));
}

static void
room_terminate(brk_channel *ch)
{
	(void)ch;
	terminated++;
}

static const brk_channel_ops room_ops = {
	.prefix = "room:",
	.join = room_join,
	.handle_in = room_in,
	.terminate = room_terminate,
};

static void
start(void)
{
	char *argv[] = { "--max-channels", "2" };

	terminated = 0;
	ph_start(2, argv);
	ASSERT_OK(brk_router_register(ph.router, &room_ops, NULL));
}

/* ---- tests ---- */

static void
join_echo_broadcast_leave(void)
{
	int a, b;
	json_t *m;

	start();
	a = nh_client("alice", "2.0.0");
	b = nh_client("bob", "2.0.0");
	nh_send(a, "[\"1\",\"1\",\"room:x\",\"phx_join\",{}]");
	m = nh_expect(a, "room:x", "phx_reply", "ok");
	ASSERT_TRUE(json_is_true(json_object_get(
	    json_object_get(json_array_get(m, 4), "response"), "welcome")));
	json_decref(m);
	nh_send(b, "[\"1\",\"1\",\"room:x\",\"phx_join\",{}]");
	json_decref(nh_expect(b, "room:x", "phx_reply", "ok"));
	/* An event is answered with its ref, and the broadcast it makes
	 * reaches both members of the topic. */
	nh_send(a, "[\"1\",\"2\",\"room:x\",\"echo\",{\"n\":42}]");
	m = nh_expect(a, "room:x", "phx_reply", "ok");
	ASSERT_STREQ(json_string_value(json_array_get(m, 1)), "2");
	ASSERT_EQ(json_integer_value(json_object_get(
		      json_object_get(json_array_get(m, 4), "response"), "n")),
	    42);
	json_decref(m);
	json_decref(nh_expect(a, "room:x", "said", NULL));
	json_decref(nh_expect(b, "room:x", "said", NULL));
	nh_send(a, "[\"1\",\"3\",\"room:x\",\"nope\",{}]");
	m = nh_expect(a, "room:x", "phx_reply", "error");
	ASSERT_STREQ(nh_reason(m), "unknown event");
	json_decref(m);
	ASSERT_EQ(brk_router_channel_count(ph.router), 2);
	/* A socket that goes away ends its channels. */
	close(b);
	for (int i = 0; i < 50 && terminated == 0; i++) {
		nh_pump();
		usleep(1000);
	}
	ASSERT_EQ(terminated, 1);
	ASSERT_EQ(brk_router_channel_count(ph.router), 1);
	ASSERT_EQ(ph.stats.upgrades, 2);
	ASSERT_EQ(ph.stats.accepted, 2);
	ASSERT_TRUE(ph.stats.frames_in >= 4);
	ASSERT_TRUE(ph.stats.bytes_out > 0);
	close(a);
	ph_stop();
}

static void
refused_joins_and_limits(void)
{
	int a;
	json_t *m;

	start();
	a = nh_client("carol", "2.0.0");
	nh_send(a, "[\"1\",\"1\",\"room:y\",\"phx_join\",{\"deny\":true}]");
	m = nh_expect(a, "room:y", "phx_reply", "error");
	ASSERT_STREQ(nh_reason(m), "denied");
	json_decref(m);
	nh_send(a, "[\"2\",\"2\",\"hall:y\",\"phx_join\",{}]");
	m = nh_expect(a, "hall:y", "phx_reply", "error");
	ASSERT_STREQ(nh_reason(m), "unmatched topic");
	json_decref(m);
	/* --max-channels 2, as the router was built. */
	nh_send(a, "[\"3\",\"3\",\"room:1\",\"phx_join\",{}]");
	json_decref(nh_expect(a, "room:1", "phx_reply", "ok"));
	nh_send(a, "[\"4\",\"4\",\"room:2\",\"phx_join\",{}]");
	json_decref(nh_expect(a, "room:2", "phx_reply", "ok"));
	nh_send(a, "[\"5\",\"5\",\"room:3\",\"phx_join\",{}]");
	m = nh_expect(a, "room:3", "phx_reply", "error");
	ASSERT_TRUE(nh_reason(m) != NULL);
	json_decref(m);
	close(a);
	ph_stop();
}

static void
hooks_decide_upgrades_and_readyz(void)
{
	char body[256];

	start();
	ASSERT_EQ(ph_http("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", body,
		      sizeof(body)),
	    200);
	ASSERT_TRUE(strstr(body, "ready") != NULL);
	/* The node would be draining: upgrades are refused, and counted
	 * under that reason; /readyz says so; /healthz still answers. */
	ph.accepting = 0;
	ph.draining = 1;
	ASSERT_EQ(ph_http("GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: "
			  "t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Version: 13\r\n\r\n",
		      body, sizeof(body)),
	    503);
	ASSERT_EQ(ph.stats.refused_by[BRK_REFUSE_DRAINING], 1);
	ASSERT_EQ(ph_http("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", body,
		      sizeof(body)),
	    503);
	ASSERT_TRUE(strstr(body, "draining") != NULL);
	ASSERT_EQ(ph_http("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", body,
		      sizeof(body)),
	    200);
	ASSERT_EQ(ph.stats.upgrades, 0);
	ph_stop();
}

TEST_LIST{
	TEST_ENTRY(join_echo_broadcast_leave),
	TEST_ENTRY(refused_joins_and_limits),
	TEST_ENTRY(hooks_decide_upgrades_and_readyz),
};

TEST_MAIN()
