/* SPDX-License-Identifier: Apache-2.0 */
/* The Firebase sync state service with several clusters in one process on
 * real NNG sockets: marks raised on one node reach every other and merge by
 * max (never lowered); a node that joins late, or comes back from a
 * partition, gets everything at once; parked entries merge by their gen;
 * the leader is reported; a full parked table forgets DONE entries first. */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/cluster.h"
#include "cluster/syncmarks.h"
#include "common/clock.h"
#include "common/err.h"
#include "tests/unit/test.h"

#define N 4

typedef struct node {
	clu_cluster *c;
	clu_syncmarks *s;
	char name[16];
	int marks_heard, parked_heard;
	char leader[PRO_WIRE_NAME_MAX + 1];
	uint64_t last_tick;
} node;

static node nodes[N];

static void
heard_marks(void *arg, const char *origin, uint64_t synced, uint64_t sent)
{
	node *nd = arg;

	(void)origin;
	(void)synced;
	(void)sent;
	nd->marks_heard++;
}

static void
heard_parked(void *arg, const pro_sync_parked *p)
{
	node *nd = arg;

	(void)p;
	nd->parked_heard++;
}

static void
heard_leader(void *arg, const char *leader)
{
	node *nd = arg;

	snprintf(nd->leader, sizeof(nd->leader), "%s", leader ? leader : "");
}

static void
start(int i, const char *join)
{
	clu_cluster_opts o;
	clu_syncmarks_listener l = { heard_marks, heard_parked, heard_leader,
		&nodes[i] };
	node *nd = &nodes[i];

	memset(nd, 0, sizeof(*nd));
	snprintf(nd->name, sizeof(nd->name), "s%d", i);
	clu_cluster_opts_init(&o);
	o.node_name = nd->name;
	o.listen_url = "tcp://127.0.0.1:0";
	o.join = join;
	o.heartbeat_ms = 150;
	o.suspect_after_ms = 500;
	o.dead_after_ms = 700;
	o.reconnect_min_ms = 50;
	o.reconnect_max_ms = 300;
	ASSERT_OK(clu_cluster_create(&nd->c, &o));
	ASSERT_OK(clu_syncmarks_create(&nd->s, nd->c));
	clu_syncmarks_set_listener(nd->s, &l);
}

static void
stop_all(void)
{
	for (int i = 0; i < N; i++) {
		if (nodes[i].c != NULL) {
			clu_cluster_destroy(nodes[i].c, true);
			clu_syncmarks_destroy(nodes[i].s);
			nodes[i].c = NULL;
			nodes[i].s = NULL;
		}
	}
}

static void
run_once(void)
{
	struct pollfd p[N];
	int idx[N], n = 0;
	uint64_t t;

	for (int i = 0; i < N; i++) {
		if (nodes[i].c != NULL) {
			p[n].fd = clu_cluster_fd(nodes[i].c);
			p[n].events = POLLIN;
			p[n].revents = 0;
			idx[n++] = i;
		}
	}
	poll(p, (nfds_t)n, 10);
	t = pl_mono_ms();
	for (int k = 0; k < n; k++) {
		node *nd = &nodes[idx[k]];
		if (p[k].revents & POLLIN) {
			clu_cluster_poll(nd->c, t);
		}
		if (t - nd->last_tick >= CLU_CLUSTER_TICK_MS) {
			clu_cluster_tick(nd->c, t);
			nd->last_tick = t;
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
		run_once();
	}
	return cond();
}

static char seed[64];

static const char *
seed_of(int i)
{
	const char *url = clu_cluster_self_address(nodes[i].c);

	snprintf(seed, sizeof(seed), "%s", url);
	return seed;
}

/* A member is alive once any peer vouches for it, before the bus has a
 * pipe to it: a change sent then misses it, and the whole state that
 * follows within CLU_SYNCMARKS_FULL_MS is what the service promises. */
#define SPREAD_MS (CLU_SYNCMARKS_FULL_MS + 2000)

static bool
all_alive(void)
{
	for (int i = 0; i < N; i++) {
		for (int j = 0; nodes[i].c && j < N; j++) {
			if (nodes[j].c != NULL &&
			    clu_cluster_member_status(
				nodes[i].c, nodes[j].name) != CLU_ALIVE) {
				return false;
			}
		}
	}
	return true;
}

static uint64_t want_synced, want_sent;
static const char *want_origin;

static bool
all_have_marks(void)
{
	for (int i = 0; i < N; i++) {
		uint64_t sy, se;
		if (nodes[i].c == NULL) {
			continue;
		}
		clu_syncmarks_get(nodes[i].s, want_origin, &sy, &se);
		if (sy != want_synced || se != want_sent) {
			return false;
		}
	}
	return true;
}

static void
three(void)
{
	start(0, NULL);
	start(1, seed_of(0));
	start(2, seed_of(0));
	ASSERT_TRUE(run_until(all_alive, 10000));
}

static void
marks_reach_everyone_and_merge_by_max(void)
{
	three();
	ASSERT_OK(clu_syncmarks_raise(nodes[0].s, "n1", 10, 20, true));
	want_origin = "n1";
	want_synced = 10;
	want_sent = 20;
	ASSERT_TRUE(run_until(all_have_marks, SPREAD_MS));
	ASSERT_TRUE(nodes[1].marks_heard >= 1);
	/* A lower raise elsewhere lowers nothing, anywhere. */
	ASSERT_OK(clu_syncmarks_raise(nodes[2].s, "n1", 5, 25, true));
	want_sent = 25;
	ASSERT_TRUE(run_until(all_have_marks, SPREAD_MS));
	/* Marks never lower: synced stays 10 on every node. */
	ASSERT_TRUE(all_have_marks());
	/* Sent is never below synced. */
	ASSERT_OK(clu_syncmarks_raise(nodes[1].s, "n1", 30, 0, true));
	want_synced = want_sent = 30;
	ASSERT_TRUE(run_until(all_have_marks, SPREAD_MS));
	ASSERT_EQ(clu_syncmarks_raise(nodes[1].s, "", 1, 1, true), PL_EINVAL);
	stop_all();
}

static void
late_joiner_gets_everything_at_once(void)
{
	pro_sync_parked p = { "n1", 7, 1, PRO_SYNC_PARKED, 400, "bad" };
	uint64_t t0;

	three();
	ASSERT_OK(clu_syncmarks_raise(nodes[0].s, "n1", 3, 4, true));
	ASSERT_OK(clu_syncmarks_raise(nodes[0].s, "n2~ab", 8, 9, true));
	ASSERT_OK(clu_syncmarks_put_parked(nodes[0].s, &p, true));
	for (int i = 0; i < 20; i++) {
		run_once();
	}
	t0 = pl_mono_ms();
	start(3, seed_of(1));
	want_origin = "n2~ab";
	want_synced = 8;
	want_sent = 9;
	/* Well before the periodic full state (CLU_SYNCMARKS_FULL_MS). */
	ASSERT_TRUE(run_until(all_have_marks, 3000));
	ASSERT_TRUE(pl_mono_ms() - t0 < CLU_SYNCMARKS_FULL_MS);
	ASSERT_TRUE(clu_syncmarks_parked(nodes[3].s, "n1", 7) != NULL);
	ASSERT_STREQ(clu_syncmarks_parked(nodes[3].s, "n1", 7)->reason, "bad");
	stop_all();
}

static uint32_t want_state;

static bool
all_in_state(void)
{
	for (int i = 0; i < N; i++) {
		const pro_sync_parked *e;
		if (nodes[i].c == NULL) {
			continue;
		}
		e = clu_syncmarks_parked(nodes[i].s, "n1", 7);
		if (e == NULL || e->state != want_state) {
			return false;
		}
	}
	return true;
}

static void
parked_entries_merge_by_gen(void)
{
	pro_sync_parked p = { "n1", 7, 1, PRO_SYNC_PARKED, 400, "bad" };

	three();
	ASSERT_OK(clu_syncmarks_put_parked(nodes[0].s, &p, true));
	want_state = PRO_SYNC_PARKED;
	ASSERT_TRUE(run_until(all_in_state, SPREAD_MS));
	p.gen = 2;
	p.state = PRO_SYNC_RETRY;
	ASSERT_OK(clu_syncmarks_put_parked(nodes[2].s, &p, true));
	want_state = PRO_SYNC_RETRY;
	ASSERT_TRUE(run_until(all_in_state, SPREAD_MS));
	/* A stale change (lower gen) changes nothing. */
	p.gen = 1;
	p.state = PRO_SYNC_PARKED;
	ASSERT_EQ(clu_syncmarks_put_parked(nodes[1].s, &p, true), PL_EEXIST);
	for (int i = 0; i < 30; i++) {
		run_once();
	}
	ASSERT_TRUE(all_in_state());
	ASSERT_EQ(
	    clu_syncmarks_parked_each(nodes[1].s, PRO_SYNC_RETRY, NULL, NULL),
	    1);
	ASSERT_EQ(
	    clu_syncmarks_parked_each(nodes[1].s, PRO_SYNC_PARKED, NULL, NULL),
	    0);
	stop_all();
}

static bool
leaders_agree(void)
{
	for (int i = 0; i < N; i++) {
		if (nodes[i].c != NULL &&
		    (strcmp(nodes[i].leader, "s0") != 0 ||
			clu_syncmarks_leader(nodes[i].s) == NULL ||
			strcmp(clu_syncmarks_leader(nodes[i].s), "s0") != 0)) {
			return false;
		}
	}
	return true;
}

static void
the_leader_is_reported(void)
{
	three();
	ASSERT_TRUE(run_until(leaders_agree, 5000));
	stop_all();
}

static bool
both_sides_merged(void)
{
	uint64_t a, b, x;

	for (int i = 0; i < 3; i++) {
		clu_syncmarks_get(nodes[i].s, "left", &a, &x);
		clu_syncmarks_get(nodes[i].s, "right", &b, &x);
		if (a != 11 || b != 22) {
			return false;
		}
	}
	return true;
}

static void
a_healed_partition_merges_both_sides(void)
{
	three();
	for (int i = 1; i < 3; i++) {
		ASSERT_OK(
		    clu_cluster_set_blocked(nodes[0].c, nodes[i].name, true));
		ASSERT_OK(
		    clu_cluster_set_blocked(nodes[i].c, nodes[0].name, true));
	}
	run_until(all_alive, 2000); /* let the sides split */
	ASSERT_OK(clu_syncmarks_raise(nodes[0].s, "left", 11, 11, true));
	ASSERT_OK(clu_syncmarks_raise(nodes[1].s, "right", 22, 22, true));
	for (int i = 0; i < 50; i++) {
		run_once();
	}
	ASSERT_TRUE(!both_sides_merged());
	for (int i = 1; i < 3; i++) {
		clu_cluster_set_blocked(nodes[0].c, nodes[i].name, false);
		clu_cluster_set_blocked(nodes[i].c, nodes[0].name, false);
	}
	ASSERT_TRUE(run_until(both_sides_merged, 8000));
	stop_all();
}

static void
a_full_table_forgets_done_entries_first(void)
{
	pro_sync_parked p = { "n1", 1, 1, PRO_SYNC_DONE, 0, "" };

	start(0, NULL);
	for (uint64_t q = 1; q <= CLU_SYNCMARKS_PARKED_MAX; q++) {
		p.seq = q;
		p.state = q == 1 ? PRO_SYNC_DONE : PRO_SYNC_PARKED;
		ASSERT_OK(clu_syncmarks_put_parked(nodes[0].s, &p, false));
	}
	p.seq = CLU_SYNCMARKS_PARKED_MAX + 1;
	ASSERT_OK(clu_syncmarks_put_parked(nodes[0].s, &p, false));
	ASSERT_TRUE(clu_syncmarks_parked(nodes[0].s, "n1", 1) == NULL);
	p.seq++;
	ASSERT_EQ(clu_syncmarks_put_parked(nodes[0].s, &p, false), PL_EFULL);
	stop_all();
}

TEST_LIST{
	TEST_ENTRY(marks_reach_everyone_and_merge_by_max),
	TEST_ENTRY(late_joiner_gets_everything_at_once),
	TEST_ENTRY(parked_entries_merge_by_gen),
	TEST_ENTRY(the_leader_is_reported),
	TEST_ENTRY(a_healed_partition_merges_both_sides),
	TEST_ENTRY(a_full_table_forgets_done_entries_first),
};
TEST_MAIN()
