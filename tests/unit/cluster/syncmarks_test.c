/* SPDX-License-Identifier: Apache-2.0 */
/* The Firebase sync state service with several clusters in one process on
 * real NNG sockets: marks raised on one node reach every other and merge by
 * max (never lowered); a node that joins late, or comes back from a
 * partition, gets everything at once; parked entries merge by their gen;
 * the leader is reported; a full parked table forgets DONE entries first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/syncmarks.h"
#include "common/clock.h"
#include "common/err.h"
#include "tests/unit/cluster/harness.h"
#include "tests/unit/test.h"

#define N 4

typedef struct node {
	clu_syncmarks *s;
	int marks_heard, parked_heard;
	char leader[PRO_WIRE_NAME_MAX + 1];
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
	char name[16];

	memset(&nodes[i], 0, sizeof(nodes[i]));
	snprintf(name, sizeof(name), "s%d", i);
	th_opts(&o, name, join);
	o.reconnect_max_ms = 300;
	ASSERT_OK(th_start(i, &o));
	ASSERT_OK(clu_syncmarks_create(&nodes[i].s, th[i].c));
	clu_syncmarks_set_listener(nodes[i].s, &l);
}

static void
stop_all(void)
{
	for (int i = 0; i < N; i++) {
		if (th[i].c != NULL) {
			th_stop(i, true);
			clu_syncmarks_destroy(nodes[i].s);
			nodes[i].s = NULL;
		}
	}
}

static void
run_once(void)
{
	th_run_once(10);
}

/* A member is alive once any peer vouches for it, before the bus has a
 * pipe to it: a change sent then misses it, and the whole state that
 * follows within CLU_SYNCMARKS_FULL_MS is what the service promises. */
#define SPREAD_MS (CLU_SYNCMARKS_FULL_MS + 2000)

static uint64_t want_synced, want_sent;
static const char *want_origin;

static bool
all_have_marks(void)
{
	for (int i = 0; i < N; i++) {
		uint64_t sy, se;
		if (th[i].c == NULL) {
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
	start(1, th_address(0));
	start(2, th_address(0));
	ASSERT_TRUE(th_run_until(th_all_alive, 10000));
}

static void
marks_reach_everyone_and_merge_by_max(void)
{
	three();
	ASSERT_OK(clu_syncmarks_raise(nodes[0].s, "n1", 10, 20, true));
	want_origin = "n1";
	want_synced = 10;
	want_sent = 20;
	ASSERT_TRUE(th_run_until(all_have_marks, SPREAD_MS));
	ASSERT_TRUE(nodes[1].marks_heard >= 1);
	/* A lower raise elsewhere lowers nothing, anywhere. */
	ASSERT_OK(clu_syncmarks_raise(nodes[2].s, "n1", 5, 25, true));
	want_sent = 25;
	ASSERT_TRUE(th_run_until(all_have_marks, SPREAD_MS));
	/* Marks never lower: synced stays 10 on every node. */
	ASSERT_TRUE(all_have_marks());
	/* Sent is never below synced. */
	ASSERT_OK(clu_syncmarks_raise(nodes[1].s, "n1", 30, 0, true));
	want_synced = want_sent = 30;
	ASSERT_TRUE(th_run_until(all_have_marks, SPREAD_MS));
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
	start(3, th_address(1));
	want_origin = "n2~ab";
	want_synced = 8;
	want_sent = 9;
	/* Well before the periodic full state (CLU_SYNCMARKS_FULL_MS). */
	ASSERT_TRUE(th_run_until(all_have_marks, 3000));
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
		if (th[i].c == NULL) {
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
	ASSERT_TRUE(th_run_until(all_in_state, SPREAD_MS));
	p.gen = 2;
	p.state = PRO_SYNC_RETRY;
	ASSERT_OK(clu_syncmarks_put_parked(nodes[2].s, &p, true));
	want_state = PRO_SYNC_RETRY;
	ASSERT_TRUE(th_run_until(all_in_state, SPREAD_MS));
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
		if (th[i].c != NULL &&
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
	ASSERT_TRUE(th_run_until(leaders_agree, 5000));
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
		ASSERT_OK(clu_cluster_set_blocked(th[0].c, th[i].name, true));
		ASSERT_OK(clu_cluster_set_blocked(th[i].c, th[0].name, true));
	}
	th_run_until(th_all_alive, 2000); /* let the sides split */
	ASSERT_OK(clu_syncmarks_raise(nodes[0].s, "left", 11, 11, true));
	ASSERT_OK(clu_syncmarks_raise(nodes[1].s, "right", 22, 22, true));
	for (int i = 0; i < 50; i++) {
		run_once();
	}
	ASSERT_TRUE(!both_sides_merged());
	for (int i = 1; i < 3; i++) {
		clu_cluster_set_blocked(th[0].c, th[i].name, false);
		clu_cluster_set_blocked(th[i].c, th[0].name, false);
	}
	ASSERT_TRUE(th_run_until(both_sides_merged, 8000));
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
