/* SPDX-License-Identifier: Apache-2.0 */
/* The presence hub through a real node: presence_state and presence_diff
 * shapes, coalescing into one diff per tick, a remote replica merged in,
 * and a remote node flapping dead and alive inside one tick. */
#include "broker/node.h"
#include "broker/presence.h"
#include "cluster/presence.h"
#include "tests/unit/broker/node_harness.h"
#include "tests/unit/test.h"

#include <string.h>
#include <unistd.h>

static int
join_comments(const char *user, const char *topic)
{
	int fd = nh_client(user, "2.0.0");
	char msg[256];

	snprintf(
	    msg, sizeof(msg), "[\"1\",\"1\",\"%s\",\"phx_join\",{}]", topic);
	nh_send(fd, msg);
	json_decref(nh_expect(fd, topic, "phx_reply", "ok"));
	return fd;
}

/* The next presence_diff on fd, skipping nothing else. */
static json_t *
next_diff(int fd, const char *topic)
{
	json_t *m = nh_expect(fd, topic, "presence_diff", NULL);
	json_t *p = json_incref(json_array_get(m, 4));

	ASSERT_TRUE(json_is_object(json_object_get(p, "joins")));
	ASSERT_TRUE(json_is_object(json_object_get(p, "leaves")));
	json_decref(m);
	return p;
}

static size_t
metas(json_t *side, const char *key)
{
	return json_array_size(
	    json_object_get(json_object_get(side, key), "metas"));
}

static void
state_and_coalesced_diff(void)
{
	int a, b1, b2;
	size_t bob = 0;
	json_t *m, *st, *d;

	nh_start("100");
	a = join_comments("alice", "comments:p");
	m = nh_expect(a, "comments:p", "presence_state", NULL);
	st = json_array_get(m, 4);
	ASSERT_EQ(metas(st, "alice"), 1);
	ASSERT_TRUE(json_is_integer(json_object_get(
	    json_array_get(
		json_object_get(json_object_get(st, "alice"), "metas"), 0),
	    "online_at")));
	ASSERT_EQ(
	    strlen(json_string_value(json_object_get(
		json_array_get(
		    json_object_get(json_object_get(st, "alice"), "metas"), 0),
		"phx_ref"))),
	    16);
	json_decref(m);
	/* Alice's own join arrives in the first diff. */
	d = next_diff(a, "comments:p");
	ASSERT_EQ(metas(json_object_get(d, "joins"), "alice"), 1);
	json_decref(d);
	/* Bob on two sockets: one key with two metas, each with its ref. */
	b1 = join_comments("bob", "comments:p");
	b2 = join_comments("bob", "comments:p");
	while (bob < 2) {
		d = next_diff(a, "comments:p");
		ASSERT_EQ(metas(json_object_get(d, "leaves"), "bob"), 0);
		bob += metas(json_object_get(d, "joins"), "bob");
		json_decref(d);
	}
	ASSERT_EQ(bob, 2);
	/* One of them leaves: a leave of exactly one meta. */
	close(b2);
	d = next_diff(a, "comments:p");
	ASSERT_EQ(metas(json_object_get(d, "leaves"), "bob"), 1);
	json_decref(d);
	close(b1);
	close(a);
	nh_stop();
}

static void
remote_flap_within_tick(void)
{
	clu_presence *remote = NULL;
	pro_presence_msg *delta = NULL;
	clu_presence *local;
	char ref[CLU_PRESENCE_REF_LEN + 1];
	json_t *d;
	int a;

	nh_start("100");
	local = brk_presence_crdt(brk_node_presence(nh_node));
	a = join_comments("alice", "comments:f");
	json_decref(nh_expect(a, "comments:f", "presence_state", NULL));
	json_decref(next_diff(a, "comments:f"));
	/* A second node, n9, tracks carol; its delta merges here. */
	ASSERT_OK(clu_presence_create(&remote, "n9", 42, NULL, NULL));
	ASSERT_OK(clu_presence_join(
	    remote, 7, "comments:f", "carol", "{\"online_at\":1}", 15, ref));
	ASSERT_OK(clu_presence_take_delta(remote, &delta));
	ASSERT_OK(clu_presence_replica_up(local, "n9", 42));
	ASSERT_OK(clu_presence_merge(local, delta));
	d = next_diff(a, "comments:f");
	ASSERT_EQ(metas(json_object_get(d, "joins"), "carol"), 1);
	json_decref(d);
	/* n9 is declared dead and comes back within one tick: carol must
	 * not be reported as a leave (phoenix.js applies joins first). */
	ASSERT_OK(clu_presence_replica_down(local, "n9"));
	ASSERT_OK(clu_presence_replica_up(local, "n9", 42));
	d = next_diff(a, "comments:f");
	ASSERT_EQ(metas(json_object_get(d, "leaves"), "carol"), 0);
	ASSERT_EQ(metas(json_object_get(d, "joins"), "carol"), 1);
	json_decref(d);
	/* And a real departure is a leave. */
	ASSERT_OK(clu_presence_replica_permdown(local, "n9"));
	d = next_diff(a, "comments:f");
	ASSERT_EQ(metas(json_object_get(d, "leaves"), "carol"), 1);
	ASSERT_EQ(metas(json_object_get(d, "joins"), "carol"), 0);
	json_decref(d);
	pro_presence_msg_destroy(delta);
	clu_presence_destroy(remote);
	close(a);
	nh_stop();
}

TEST_LIST{
	TEST_ENTRY(state_and_coalesced_diff),
	TEST_ENTRY(remote_flap_within_tick),
};
TEST_MAIN()
