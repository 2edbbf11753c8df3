/* SPDX-License-Identifier: Apache-2.0 */
/* cluster/replication driven through three in-process nodes, each with its
 * own real cluster (NNG on loopback) and real LMDB store: live copies, a
 * partition's catch-up by pulls, a wiped store refilled, acknowledgements
 * with --ack-replicas 2 and their timeout. */
#include "cluster/replication.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "tests/unit/cluster/harness.h"
#include "tests/unit/test.h"

#define N 3

typedef struct tnode {
	char name[16], origin[40], dir[64];
	sto_comments *s;
	clu_replication *r;
	int acked, ack_status;
} tnode;

static tnode nodes[N];

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static void
open_store(tnode *t, int gen)
{
	sto_comments_opts so = { 0 };
	char err[256];
	char name[sizeof(t->name)];

	memcpy(name, t->name, sizeof(name));
	snprintf(t->origin, sizeof(t->origin), "%s~%08x", name, gen);
	so.node = t->origin;
	ASSERT_OK(sto_comments_open(&t->s, t->dir, &so, err, sizeof(err)));
}

static void
poll_store(void *arg)
{
	tnode *t = arg;

	sto_comments_poll(t->s);
}

static void
start(int i, uint32_t ack, int gen, bool fresh_dir)
{
	tnode *t = &nodes[i];
	clu_cluster_opts o;
	clu_replication_opts ro = { 0 };

	snprintf(t->name, sizeof(t->name), "n%d", i + 1);
	if (fresh_dir) {
		snprintf(t->dir, sizeof(t->dir), "/tmp/parley-repl-XXXXXX");
		ASSERT_TRUE(mkdtemp(t->dir) != NULL);
	}
	open_store(t, gen);
	th_opts(&o, t->name, i > 0 ? th_address(0) : NULL);
	o.direct_listen_url = "tcp://127.0.0.1:0";
	ASSERT_OK(th_start(i, &o));
	th[i].fd = sto_comments_notify_fd(t->s);
	th[i].poll = poll_store;
	th[i].arg = t;
	ro.cluster = th[i].c;
	ro.store = t->s;
	ro.origin = t->origin;
	ro.node = t->name;
	ro.ack_replicas = ack;
	ro.ack_timeout_ms = 1500;
	ro.vector_ms = 300;
	ro.pull_limit = 7; /* many small chunks */
	ro.catchup_timeout_ms = 30000;
	ASSERT_OK(clu_replication_create(&t->r, &ro));
}

static void
stop(int i, bool wipe)
{
	tnode *t = &nodes[i];

	/* As the node does: the store first, so its last completions still
	 * reach the service and the cluster. */
	sto_comments_close(t->s);
	th_stop(i, false);
	clu_replication_destroy(t->r);
	if (wipe) {
		nftw(t->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	}
}

static void
on_acked(void *arg, int status)
{
	tnode *t = arg;

	t->acked++;
	t->ack_status = status;
}

static int published;

/* The broker's part: once a local comment is durable, publish it. */
static void
on_local(void *arg, int status, const sto_comment *c)
{
	tnode *t = arg;

	if (status == PL_OK) {
		published++;
		clu_replication_publish(t->r, c, on_acked, t);
	}
}

static void
post(int i, const char *video, int count)
{
	for (int k = 0; k < count; k++) {
		char text[32];
		sto_comment_in in = { video, "u", text };

		snprintf(text, sizeof(text), "%s %d", nodes[i].name, k);
		ASSERT_OK(sto_comments_append(
		    nodes[i].s, &in, on_local, &nodes[i], NULL));
	}
}

static size_t
count_on(int i, const char *video)
{
	sto_comment_list *l = NULL;
	size_t n;

	if (sto_comments_latest(nodes[i].s, video, 1000, &l) != PL_OK) {
		return 0;
	}
	n = l->count;
	sto_comment_list_free(l);
	return n;
}

static size_t want_v;
static const char *want_video;

static bool
all_have(void)
{
	for (int i = 0; i < N; i++) {
		if (th[i].c != NULL && count_on(i, want_video) != want_v) {
			return false;
		}
	}
	return true;
}

static bool
all_alive(void)
{
	for (int i = 0; i < N; i++) {
		clu_cluster_stats st;

		clu_cluster_stats_get(th[i].c, &st);
		if (st.members_alive != N ||
		    !clu_replication_caught_up(nodes[i].r)) {
			return false;
		}
	}
	return true;
}

/* Every node's ids of video, in order, are the same. */
static void
assert_same(const char *video)
{
	sto_comment_list *a = NULL, *b = NULL;

	ASSERT_OK(sto_comments_latest(nodes[0].s, video, 1000, &a));
	for (int i = 1; i < N; i++) {
		ASSERT_OK(sto_comments_latest(nodes[i].s, video, 1000, &b));
		ASSERT_EQ(b->count, a->count);
		for (size_t k = 0; k < a->count; k++) {
			ASSERT_STREQ(b->items[k].id, a->items[k].id);
			ASSERT_STREQ(b->items[k].content, a->items[k].content);
		}
		sto_comment_list_free(b);
	}
	sto_comment_list_free(a);
}

static void
stop_all(void)
{
	for (int i = N - 1; i >= 0; i--) {
		if (th[i].c != NULL) {
			stop(i, true);
		}
	}
}

static void
test_live_partition_and_wipe(void)
{
	clu_replication_stats st;

	memset(nodes, 0, sizeof(nodes));
	for (int i = 0; i < N; i++) {
		start(i, 1, 1, true);
	}
	ASSERT_TRUE(th_run_until(all_alive, 10000));
	/* A member is alive once any peer vouches for it, maybe before the
	 * bus has a pipe to it; a live copy sent then would come by a pull
	 * instead, and this part counts live copies. */
	th_run_for(500);

	/* Live copies. */
	post(0, "v", 20);
	post(1, "v", 20);
	want_video = "v";
	want_v = 40;
	ASSERT_TRUE(th_run_until(all_have, 5000));
	assert_same("v");
	clu_replication_stats_get(nodes[2].r, &st);
	ASSERT_EQ(st.live_in, 40);
	ASSERT_EQ(st.conflicts, 0);

	/* n3 cut off: what n1 posts meanwhile comes to it by pulls, in
	 * chunks of 7, from whichever peer is ahead. */
	ASSERT_OK(clu_cluster_set_blocked(th[2].c, "n1", true));
	ASSERT_OK(clu_cluster_set_blocked(th[2].c, "n2", true));
	post(0, "w", 50);
	want_video = "w";
	th_run_for(800);
	ASSERT_EQ(count_on(2, "w"), 0);
	ASSERT_EQ(count_on(1, "w"), 50);
	ASSERT_OK(clu_cluster_set_blocked(th[2].c, "n1", false));
	ASSERT_OK(clu_cluster_set_blocked(th[2].c, "n2", false));
	want_v = 50;
	ASSERT_TRUE(th_run_until(all_have, 10000));
	assert_same("w");
	clu_replication_stats_get(nodes[2].r, &st);
	ASSERT_TRUE(st.pulls >= 50 / 7);
	ASSERT_TRUE(st.catchup_comments >= 50);

	/* n2 loses its disk and comes back as a new origin: it refills from
	 * the others, then its new comments reach them. */
	stop(1, true);
	start(1, 1, 2, false);
	ASSERT_TRUE(th_run_until(all_alive, 10000));
	want_video = "v";
	want_v = 40;
	ASSERT_TRUE(th_run_until(all_have, 10000));
	post(1, "v", 5);
	want_v = 45;
	ASSERT_TRUE(th_run_until(all_have, 5000));
	assert_same("v");
	for (int i = 0; i < N; i++) {
		clu_replication_stats_get(nodes[i].r, &st);
		ASSERT_EQ(st.conflicts, 0);
		ASSERT_EQ(st.malformed, 0);
	}
	stop_all();
}

static bool
acked_both(void)
{
	return nodes[0].acked == 10;
}

static bool
acked_once(void)
{
	return nodes[0].acked >= 1;
}

static void
test_acks(void)
{
	memset(nodes, 0, sizeof(nodes));
	published = 0;
	for (int i = 0; i < N; i++) {
		start(i, 2, 1, true);
	}
	ASSERT_TRUE(th_run_until(all_alive, 10000));
	ASSERT_TRUE(clu_replication_can_ack(nodes[0].r));
	post(0, "a", 10);
	ASSERT_TRUE(th_run_until(acked_both, 5000));
	ASSERT_EQ(nodes[0].ack_status, PL_OK);

	/* Nobody can hold it: the acknowledgement times out, never a false
	 * ok. */
	ASSERT_OK(clu_cluster_set_blocked(th[0].c, "n2", true));
	ASSERT_OK(clu_cluster_set_blocked(th[0].c, "n3", true));
	nodes[0].acked = 0;
	post(0, "a", 1);
	ASSERT_TRUE(th_run_until(acked_once, 5000));
	ASSERT_EQ(nodes[0].ack_status, PL_EAGAIN);
	stop_all();
}

TEST_LIST{
	TEST_ENTRY(test_live_partition_and_wipe),
	TEST_ENTRY(test_acks),
};
TEST_MAIN()
