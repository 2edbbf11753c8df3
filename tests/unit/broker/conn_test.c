/* SPDX-License-Identifier: Apache-2.0 */
/* Sockets and the router without a node: the test builds the loop, the
 * flags, the counters, a router with one channel module of its own and
 * the conn list with its hooks, and links none of broker/node.c, storage
 * or the cluster. Real WebSocket clients over socketpairs: upgrade, join,
 * events, refusals while the node would be draining, /readyz and the
 * counters a node exports. */
#include "broker/auth.h"
#include "broker/config.h"
#include "broker/conn.h"
#include "broker/router.h"
#include "common/log.h"
#include "common/metrics.h"
#include "tests/unit/broker/node_harness.h"
#include "tests/unit/test.h"

#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the parts a node would own ---- */

static struct event_base *base;
static struct event *flush_ev;
static brk_config cfg;
static pl_metrics *metrics;
static brk_router *router;
static brk_node_stats stats;
static brk_conn_list conns;
static const uint8_t secret[] = "conn-test-secret";
static const brk_key key = { secret, sizeof(secret) - 1, NULL };
static int accepting = 1, draining, terminated;

static void
want_flush(void *arg)
{
	(void)arg;
	event_active(flush_ev, EV_TIMEOUT, 0);
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	brk_conn_flush_all(arg);
}

static const struct brk_key *
keys(void *arg, size_t *count)
{
	(void)arg;
	*count = 1;
	return &key;
}

static int
is_accepting(void *arg)
{
	(void)arg;
	return accepting;
}

static int
is_draining(void *arg)
{
	(void)arg;
	return draining;
}

static const char *
readyz(void *arg, int *status)
{
	(void)arg;
	*status = accepting ? 200 : 503;
	return accepting ? "ready\n" : "draining\n";
}

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
	brk_router_broadcast(router, brk_channel_topic(ch), "said", said,
	    strlen(said));
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
	char err[256];
	char *argv[] = { "--max-channels", "2", "--log-level", "error" };
	brk_conn_env env;

	pl_log_level = PL_LOG_ERR;
	signal(SIGPIPE, SIG_IGN); /* as the node does: peers vanish */
	memset(&stats, 0, sizeof(stats));
	memset(&conns, 0, sizeof(conns));
	accepting = 1;
	draining = terminated = 0;
	ASSERT_OK(brk_config_load(&cfg, 4, argv, err, sizeof(err)));
	ASSERT_TRUE((base = event_base_new()) != NULL);
	ASSERT_TRUE(
	    (flush_ev = event_new(base, -1, 0, on_flush, &conns)) != NULL);
	ASSERT_OK(pl_metrics_create(&metrics));
	ASSERT_OK(brk_router_create(&router, metrics, 2));
	ASSERT_OK(brk_router_register(router, &room_ops, NULL));
	env = (brk_conn_env){ base, &cfg, &stats, router, want_flush, keys,
		is_accepting, is_draining, readyz, NULL };
	ASSERT_OK(brk_conn_list_init(&conns, &env));
	nh_attach(base, &conns, &key);
}

static void
stop(void)
{
	brk_conn_close_all(&conns, 1001, "bye");
	nh_pump();
	brk_conn_free_all(&conns);
	brk_conn_list_fini(&conns);
	brk_router_destroy(router);
	pl_metrics_destroy(metrics);
	event_free(flush_ev);
	event_base_free(base);
	brk_config_fini(&cfg);
}

/* A plain HTTP request on a new socket; returns the status code and leaves
 * the body (up to cap bytes) in body. */
static int
http(const char *request, char *body, size_t cap)
{
	int sv[2], status = 0;
	char head[2048];
	size_t len = 0, n = 0;

	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
	ASSERT_OK(brk_conn_accept(&conns, sv[0], NULL, 0));
	ASSERT_EQ(write(sv[1], request, strlen(request)),
	    (ssize_t)strlen(request));
	nh_pump();
	while (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0) {
		ASSERT_OK(nh_read(sv[1], head + len, 1));
		ASSERT_TRUE(++len < sizeof(head));
	}
	head[len] = '\0';
	ASSERT_EQ(sscanf(head, "HTTP/1.1 %d", &status), 1);
	while (n + 1 < cap && nh_read(sv[1], body + n, 1) == 0) {
		n++;
	}
	body[n] = '\0';
	close(sv[1]);
	return status;
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
	ASSERT_EQ(brk_router_channel_count(router), 2);
	/* A socket that goes away ends its channels. */
	close(b);
	for (int i = 0; i < 50 && terminated == 0; i++) {
		nh_pump();
		usleep(1000);
	}
	ASSERT_EQ(terminated, 1);
	ASSERT_EQ(brk_router_channel_count(router), 1);
	ASSERT_EQ(stats.upgrades, 2);
	ASSERT_EQ(stats.accepted, 2);
	ASSERT_TRUE(stats.frames_in >= 4);
	ASSERT_TRUE(stats.bytes_out > 0);
	close(a);
	stop();
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
	stop();
}

static void
hooks_decide_upgrades_and_readyz(void)
{
	char body[256];

	start();
	ASSERT_EQ(http("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", body,
		      sizeof(body)),
	    200);
	ASSERT_TRUE(strstr(body, "ready") != NULL);
	/* The node would be draining: upgrades are refused, and counted
	 * under that reason; /readyz says so; /healthz still answers. */
	accepting = 0;
	draining = 1;
	ASSERT_EQ(http("GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: "
		       "t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		       "Sec-WebSocket-Version: 13\r\n\r\n",
		      body, sizeof(body)),
	    503);
	ASSERT_EQ(stats.refused_by[BRK_REFUSE_DRAINING], 1);
	ASSERT_EQ(http("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n", body,
		      sizeof(body)),
	    503);
	ASSERT_TRUE(strstr(body, "draining") != NULL);
	ASSERT_EQ(http("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", body,
		      sizeof(body)),
	    200);
	ASSERT_EQ(stats.upgrades, 0);
	stop();
}

TEST_LIST{
	TEST_ENTRY(join_echo_broadcast_leave),
	TEST_ENTRY(refused_joins_and_limits),
	TEST_ENTRY(hooks_decide_upgrades_and_readyz),
};

TEST_MAIN()
