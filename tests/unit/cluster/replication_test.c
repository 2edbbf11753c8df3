/* SPDX-License-Identifier: Apache-2.0 */
/* cluster/replication driven through three in-process nodes, each with its
 * own real cluster (NNG on loopback) and real LMDB store: live copies, a
 * partition's catch-up by pulls, a wiped store refilled, acknowledgements
 * with --ack-replicas 2 and their timeout. */
#include "cluster/replication.h"

#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "tests/unit/test.h"

#define N 3

typedef struct tnode {
	char name[16], origin[40], dir[64];
	clu_cluster *c;
	sto_comments *s;
	clu_replication *r;
	uint64_t last_tick;
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
	clu_cluster_opts_init(&o);
	o.node_name = t->name;
	o.listen_url = "tcp://127.0.0.1:0";
	o.direct_listen_url = "tcp://127.0.0.1:0";
	o.join = i > 0 ? clu_cluster_self_address(nodes[0].c) : NULL;
	o.heartbeat_ms = 150;
	o.suspect_after_ms = 500;
	o.dead_after_ms = 700;
	o.reconnect_min_ms = 50;
	o.reconnect_max_ms = 500;
	ASSERT_OK(clu_cluster_create(&t->c, &o));
	ro.cluster = t->c;
	ro.store = t->s;
	ro.origin = t->origin;
	ro.node = t->name;
	ro.ack_replicas = ack;
	ro.ack_timeout_ms = 1500;
	ro.vector_ms = 300;
	ro.pull_limit = 7; /* many small chunks */
	ro.catchup_timeout_ms = 30000;
	ASSERT_OK(clu_replication_create(&t->r, &ro));
	t->last_tick = 0;
}

static void
stop(int i, bool wipe)
{
	tnode *t = &nodes[i];

	/* As the node does: the store first, so its last completions still
	 * reach the service and the cluster. */
	sto_comments_close(t->s);
	clu_cluster_destroy(t->c, false);
	clu_replication_destroy(t->r);
	t->c = NULL;
	if (wipe) {
		nftw(t->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	}
}

static void
run_once(int wait_ms)
{
	struct pollfd p[2 * N];
	int n = 0;
	uint64_t now;

	for (int i = 0; i < N; i++) {
		if (nodes[i].c != NULL) {
			p[n++] = (struct pollfd){ clu_cluster_fd(nodes[i].c),
				POLLIN, 0 };
			p[n++] =
			    (struct pollfd){ sto_comments_notify_fd(nodes[i].s),
				    POLLIN, 0 };
		}
	}
	poll(p, (nfds_t)n, wait_ms);
	now = pl_mono_ms();
	for (int i = 0; i < N; i++) {
		tnode *t = &nodes[i];

		if (t->c == NULL) {
			continue;
		}
		sto_comments_poll(t->s);
		clu_cluster_poll(t->c, now);
		if (now - t->last_tick >= CLU_CLUSTER_TICK_MS) {
			clu_cluster_tick(t->c, now);
			t->last_tick = now;
		}
	}
}

static bool
run_until(bool (*cond)(void), int timeout_ms)
{
	uint64_t end = pl_mono_ms() + (uint64_t)timeout_ms;

	while (pl_mono_ms() < end) {
		if (cond()) {
			return true;
		}
		run_once(10);
	}
	return cond();
}

static void
run_for(int ms)
{
	uint64_t end = pl_mono_ms() + (uint64_t)ms;

	while (pl_mono_ms() < end) {
		run_once(10);
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
		if (nodes[i].c != NULL && count_on(i, want_video) != want_v) {
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

		clu_cluster_stats_get(nodes[i].c, &st);
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
		if (nodes[i].c != NULL) {
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
	ASSERT_TRUE(run_until(all_alive, 10000));

	/* Live copies. */
	post(0, "v", 20);
	post(1, "v", 20);
	want_video = "v";
	want_v = 40;
	ASSERT_TRUE(run_until(all_have, 5000));
	assert_same("v");
	clu_replication_stats_get(nodes[2].r, &st);
	ASSERT_EQ(st.live_in, 40);
	ASSERT_EQ(st.conflicts, 0);

	/* n3 cut off: what n1 posts meanwhile comes to it by pulls, in
	 * chunks of 7, from whichever peer is ahead. */
	ASSERT_OK(clu_cluster_set_blocked(nodes[2].c, "n1", true));
	ASSERT_OK(clu_cluster_set_blocked(nodes[2].c, "n2", true));
	post(0, "w", 50);
	want_video = "w";
	run_for(800);
	ASSERT_EQ(count_on(2, "w"), 0);
	ASSERT_EQ(count_on(1, "w"), 50);
	ASSERT_OK(clu_cluster_set_blocked(nodes[2].c, "n1", false));
	ASSERT_OK(clu_cluster_set_blocked(nodes[2].c, "n2", false));
	want_v = 50;
	ASSERT_TRUE(run_until(all_have, 10000));
	assert_same("w");
	clu_replication_stats_get(nodes[2].r, &st);
	ASSERT_TRUE(st.pulls >= 50 / 7);
	ASSERT_TRUE(st.catchup_comments >= 50);

	/* n2 loses its disk and comes back as a new origin: it refills from
	 * the others, then its new comments reach them. */
	stop(1, true);
	start(1, 1, 2, false);
	ASSERT_TRUE(run_until(all_alive, 10000));
	want_video = "v";
	want_v = 40;
	ASSERT_TRUE(run_until(all_have, 10000));
	post(1, "v", 5);
	want_v = 45;
	ASSERT_TRUE(run_until(all_have, 5000));
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
	ASSERT_TRUE(run_until(all_alive, 10000));
	ASSERT_TRUE(clu_replication_can_ack(nodes[0].r));
	post(0, "a", 10);
	ASSERT_TRUE(run_until(acked_both, 5000));
	ASSERT_EQ(nodes[0].ack_status, PL_OK);

	/* Nobody can hold it: the acknowledgement times out, never a false
	 * ok. */
	ASSERT_OK(clu_cluster_set_blocked(nodes[0].c, "n2", true));
	ASSERT_OK(clu_cluster_set_blocked(nodes[0].c, "n3", true));
	nodes[0].acked = 0;
	post(0, "a", 1);
	ASSERT_TRUE(run_until(acked_once, 5000));
	ASSERT_EQ(nodes[0].ack_status, PL_EAGAIN);
	stop_all();
}

TEST_LIST{
	TEST_ENTRY(test_live_partition_and_wipe),
	TEST_ENTRY(test_acks),
};
TEST_MAIN()
