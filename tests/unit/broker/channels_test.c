/* SPDX-License-Identifier: Apache-2.0 */
/* The comments and presence channels without a node: the parts of
 * parts_harness.c, a real LMDB store in a temp dir, the presence hub, the
 * rate limiter and the channel modules, as the node wires them; no
 * node.c, cluster or admin API. Real WebSocket clients: history at join,
 * a durable comment acknowledged and broadcast, paging, every refusal of
 * a comment with its reason and counter, and the device limit. */
#include "broker/channels.h"
#include "broker/presence.h"
#include "broker/ratelimit.h"
#include "common/clock.h"
#include "storage/comments.h"
#include "tests/unit/broker/node_harness.h"
#include "tests/unit/broker/parts_harness.h"
#include "tests/unit/test.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static sto_comments *store;
static struct event *store_ev;
static brk_presence *presence;
static brk_ratelimit *limiter;
static brk_channels *channels;

static void
on_store(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sto_comments_poll(arg);
}

static void
start(void)
{
	char *argv[] = { "--max-channels", "4", "--rate-limit", "3/60",
		"--max-devices", "2", "--max-comment-bytes", "20" };
	sto_comments_opts so = { 0 };
	brk_presence_env pe = { 0 };
	brk_channels_deps d;
	char err[256];

	ph_start(8, argv);
	nh_skip_presence = 1;
	snprintf(dir, sizeof(dir), "/tmp/parley-channels-XXXXXX");
	ASSERT_TRUE(mkdtemp(dir) != NULL);
	so.node = "t~00000001";
	ASSERT_OK(sto_comments_open(&store, dir, &so, err, sizeof(err)));
	ASSERT_TRUE(
	    (store_ev = event_new(ph.base, sto_comments_notify_fd(store),
		 EV_READ | EV_PERSIST, on_store, store)) != NULL);
	ASSERT_OK(event_add(store_ev, NULL));
	pe.base = ph.base;
	pe.node = "t";
	pe.vsn = pl_wall_ns() / 1000;
	pe.tick_ms = ph.cfg.presence_tick_ms;
	pe.max_devices = ph.cfg.max_devices;
	brk_channels_presence_env(&pe, ph.router);
	ASSERT_OK(brk_presence_create(&presence, &pe));
	ASSERT_OK(brk_ratelimit_create(&limiter, 3, 60000));
	d = (brk_channels_deps){ ph.router, store, presence, limiter, &ph.stats,
		ph.cfg.max_comment_bytes, ph.cfg.max_devices, 1 };
	ASSERT_OK(brk_channels_create(&channels, &d));
}

static void
stop(void)
{
	char cmd[128];

	/* The node's order: sockets, then the store (its last completions
	 * still find the router), the hub, the router, the modules. */
	ph_close_sockets();
	event_free(store_ev);
	sto_comments_close(store);
	brk_presence_destroy(presence);
	ph_stop();
	brk_channels_destroy(channels);
	brk_ratelimit_destroy(limiter);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ASSERT_OK(system(cmd));
}

static json_t *
response(json_t *m)
{
	return json_object_get(json_array_get(m, 4), "response");
}

/* The next reply on topic; a new_comment broadcast met on the way leaves
 * its id in seen ("" when none). */
static json_t *
reply_of(int fd, const char *topic, char *seen)
{
	json_t *m;

	seen[0] = '\0';
	for (;;) {
		const char *ev;

		m = nh_recv(fd);
		ASSERT_TRUE(json_is_array(m));
		ASSERT_STREQ(json_string_value(json_array_get(m, 2)), topic);
		ev = json_string_value(json_array_get(m, 3));
		if (strcmp(ev, "phx_reply") == 0) {
			return m;
		}
		if (strcmp(ev, "new_comment") == 0) {
			snprintf(seen, 64, "%s",
			    json_string_value(
				json_object_get(json_array_get(m, 4), "id")));
		}
		json_decref(m);
	}
}

static void
comments_are_durable_broadcast_and_paged(void)
{
	int a, b, c;
	json_t *m, *list;
	char id[64], msg[256], seen[64];

	start();
	a = nh_client("alice", "2.0.0");
	b = nh_client("bob", "2.0.0");
	nh_send(a, "[\"1\",\"1\",\"comments:v1\",\"phx_join\",{}]");
	m = nh_expect(a, "comments:v1", "phx_reply", "ok");
	ASSERT_EQ(json_array_size(json_object_get(response(m), "comments")), 0);
	ASSERT_TRUE(json_is_false(json_object_get(response(m), "has_more")));
	json_decref(m);
	/* Her own presence is in her first state. */
	m = nh_expect(a, "comments:v1", "presence_state", NULL);
	ASSERT_TRUE(json_object_get(json_array_get(m, 4), "alice") != NULL);
	json_decref(m);
	nh_send(b, "[\"1\",\"1\",\"comments:v1\",\"phx_join\",{}]");
	json_decref(nh_expect(b, "comments:v1", "phx_reply", "ok"));

	nh_send(a,
	    "[\"1\",\"2\",\"comments:v1\",\"new_comment\","
	    "{\"content\":\"hello\"}]");
	/* Alice gets her reply and, like every subscriber, the broadcast
	 * (in either order). */
	m = reply_of(a, "comments:v1", seen);
	ASSERT_STREQ(
	    json_string_value(json_object_get(json_array_get(m, 4), "status")),
	    "ok");
	snprintf(id, sizeof(id), "%s",
	    json_string_value(json_object_get(response(m), "id")));
	json_decref(m);
	ASSERT_TRUE(id[0] != '\0');
	if (seen[0] == '\0') {
		m = nh_expect(a, "comments:v1", "new_comment", NULL);
		snprintf(seen, sizeof(seen), "%s",
		    json_string_value(
			json_object_get(json_array_get(m, 4), "id")));
		json_decref(m);
	}
	ASSERT_STREQ(seen, id);
	ASSERT_EQ(ph.stats.comments_ok, 1);
	/* Bob sees it live, as stored. */
	m = nh_expect(b, "comments:v1", "new_comment", NULL);
	ASSERT_STREQ(
	    json_string_value(json_object_get(json_array_get(m, 4), "id")), id);
	ASSERT_STREQ(
	    json_string_value(json_object_get(json_array_get(m, 4), "user_id")),
	    "alice");
	ASSERT_STREQ(
	    json_string_value(json_object_get(json_array_get(m, 4), "content")),
	    "hello");
	json_decref(m);

	/* A later joiner gets it as history; paging before it is empty. */
	c = nh_client("carol", "2.0.0");
	nh_send(c, "[\"1\",\"1\",\"comments:v1\",\"phx_join\",{}]");
	m = nh_expect(c, "comments:v1", "phx_reply", "ok");
	list = json_object_get(response(m), "comments");
	ASSERT_EQ(json_array_size(list), 1);
	ASSERT_STREQ(
	    json_string_value(json_object_get(json_array_get(list, 0), "id")),
	    id);
	json_decref(m);
	snprintf(msg, sizeof(msg),
	    "[\"1\",\"2\",\"comments:v1\",\"list_comments\","
	    "{\"before\":\"%s\"}]",
	    id);
	nh_send(c, msg);
	m = nh_expect(c, "comments:v1", "phx_reply", "ok");
	ASSERT_EQ(json_array_size(json_object_get(response(m), "comments")), 0);
	json_decref(m);
	nh_send(c,
	    "[\"1\",\"3\",\"comments:v1\",\"list_comments\","
	    "{\"limit\":\"ten\"}]");
	m = nh_expect(c, "comments:v1", "phx_reply", "error");
	ASSERT_STREQ(nh_reason(m), "invalid_params");
	json_decref(m);
	close(a);
	close(b);
	close(c);
	stop();
}

/* Pushes content (JSON text) and returns the error reason, or "ok". */
static char *
post(int fd, const char *content)
{
	static char reason[64];
	char msg[512], seen[64];
	json_t *m;

	snprintf(msg, sizeof(msg),
	    "[\"1\",\"9\",\"comments:v2\",\"new_comment\",{\"content\":%s}]",
	    content);
	nh_send(fd, msg);
	/* Its own broadcast may come first (an accepted comment). */
	m = reply_of(fd, "comments:v2", seen);
	snprintf(reason, sizeof(reason), "%s",
	    strcmp(json_string_value(
		       json_object_get(json_array_get(m, 4), "status")),
		"ok") == 0
		? "ok"
		: nh_reason(m));
	json_decref(m);
	return reason;
}

static void
every_refusal_has_its_reason(void)
{
	int a;

	start();
	a = nh_client("dave", "2.0.0");
	nh_send(a, "[\"1\",\"1\",\"comments:v2\",\"phx_join\",{}]");
	json_decref(nh_expect(a, "comments:v2", "phx_reply", "ok"));
	ASSERT_STREQ(post(a, "\" \\u00a0\\t\""), "invalid_content");
	ASSERT_STREQ(post(a, "42"), "invalid_content");
	ASSERT_STREQ(post(a, "\"a\\ud800b\""), "invalid_content");
	ASSERT_STREQ(post(a, "\"123456789012345678901\""), "content_too_long");
	ASSERT_EQ(ph.stats.comments_refused_by[BRK_CREFUSE_INVALID], 3);
	ASSERT_EQ(ph.stats.comments_refused_by[BRK_CREFUSE_TOO_LONG], 1);
	/* Refused comments spend none of --rate-limit 3/60. */
	ASSERT_STREQ(post(a, "\"one\""), "ok");
	ASSERT_STREQ(post(a, "\"two\""), "ok");
	ASSERT_STREQ(post(a, "\"three\""), "ok");
	ASSERT_STREQ(post(a, "\"four\""), "rate_limit_exceeded");
	ASSERT_EQ(ph.stats.comments_refused_by[BRK_CREFUSE_RATE_LIMIT], 1);
	ASSERT_EQ(ph.stats.comments_ok, 3);
	/* The socket and its channel carry on. */
	nh_send(a, "[\"1\",\"7\",\"comments:v2\",\"nope\",{}]");
	json_t *m = nh_expect(a, "comments:v2", "phx_reply", "error");
	ASSERT_STREQ(nh_reason(m), "unknown_event");
	json_decref(m);
	close(a);
	stop();
}

static void
device_limit_per_user(void)
{
	int d[3], x;
	json_t *m;
	char msg[128];

	start();
	for (int i = 0; i < 3; i++) {
		d[i] = nh_client("erin", "2.0.0");
		snprintf(msg, sizeof(msg),
		    "[\"1\",\"1\",\"presence:erin\",\"phx_join\","
		    "{\"device_id\":\"d%d\"}]",
		    i);
		nh_send(d[i], msg);
		m = nh_expect(
		    d[i], "presence:erin", "phx_reply", i < 2 ? "ok" : "error");
		if (i == 2) {
			ASSERT_STREQ(nh_reason(m), "device_limit_reached");
		}
		json_decref(m);
	}
	/* Someone else's presence topic is not joined. */
	x = nh_client("frank", "2.0.0");
	nh_send(x,
	    "[\"1\",\"1\",\"presence:erin\",\"phx_join\","
	    "{\"device_id\":\"f\"}]");
	m = nh_expect(x, "presence:erin", "phx_reply", "error");
	ASSERT_STREQ(nh_reason(m), "unauthorized");
	json_decref(m);
	for (int i = 0; i < 3; i++) {
		close(d[i]);
	}
	close(x);
	stop();
}

TEST_LIST{
	TEST_ENTRY(comments_are_durable_broadcast_and_paged),
	TEST_ENTRY(every_refusal_has_its_reason),
	TEST_ENTRY(device_limit_per_user),
};

TEST_MAIN()
