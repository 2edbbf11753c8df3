/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster-wide rate-limit counts with several clusters in one process on
 * real NNG sockets, each with a small counting table standing in for the
 * broker's limiter: a node's changed counts reach every other node; a node
 * of another window length is ignored and counted; a joiner gets every
 * count of the window, even when the first send after it turned alive
 * missed it. */
#include <stdio.h>
#include <string.h>

#include "cluster/ratesync.h"
#include "common/err.h"
#include "tests/unit/cluster/harness.h"
#include "tests/unit/test.h"

#define N 4
#define USERS 4
#define WINDOW 7 /* the window number every count here belongs to */

/* One node's limiter: its own count per user, and what it heard. */
typedef struct limiter {
	unsigned own[USERS];
	bool changed[USERS];
	unsigned heard[N][USERS]; /* [from][user] */
	int touches;
} limiter;

typedef struct rnode {
	clu_ratesync *s;
	limiter l;
} rnode;

static rnode nodes[N];

static void
collect(void *arg, clu_ratesync_emit_fn emit, void *ctx)
{
	limiter *l = arg;
	char user[8];

	for (int u = 0; u < USERS; u++) {
		if (l->changed[u]) {
			snprintf(user, sizeof(user), "u%d", u);
			emit(ctx, "comment", user, WINDOW, l->own[u]);
			l->changed[u] = false;
		}
	}
}

static void
touch_all(void *arg)
{
	limiter *l = arg;

	l->touches++;
	for (int u = 0; u < USERS; u++) {
		l->changed[u] = l->own[u] > 0;
	}
}

static void
merge(void *arg, const char *from, const char *action, const char *user,
    uint64_t window, unsigned count)
{
	limiter *l = arg;
	int f = from[0] == 'r' ? from[1] - '0' : -1;
	int u = user[0] == 'u' ? user[1] - '0' : -1;

	if (f >= 0 && f < N && u >= 0 && u < USERS && window == WINDOW &&
	    strcmp(action, "comment") == 0) {
		l->heard[f][u] = count;
	}
}

static void
start(int i, const char *join, uint32_t window_ms)
{
	clu_cluster_opts o;
	char name[16];
	clu_ratesync_ops ops = { collect, touch_all, merge, &nodes[i].l };

	memset(&nodes[i], 0, sizeof(nodes[i]));
	snprintf(name, sizeof(name), "r%d", i);
	th_opts(&o, name, join);
	ASSERT_OK(th_start(i, &o));
	ASSERT_OK(clu_ratesync_create(&nodes[i].s, th[i].c, window_ms, &ops));
}

static void
stop_all(void)
{
	for (int i = 0; i < N; i++) {
		if (th[i].c != NULL) {
			th_stop(i, true);
			clu_ratesync_destroy(nodes[i].s);
			nodes[i].s = NULL;
		}
	}
}

static void
count(int i, int user, unsigned n)
{
	nodes[i].l.own[user] = n;
	nodes[i].l.changed[user] = true;
	clu_ratesync_flush(nodes[i].s);
}

static int want_from, want_user;
static unsigned want_count;

/* Every running node but the counting one heard want_count. */
static bool
all_heard(void)
{
	for (int i = 0; i < N; i++) {
		if (i != want_from && th[i].c != NULL &&
		    nodes[i].l.heard[want_from][want_user] != want_count) {
			return false;
		}
	}
	return true;
}

static void
expect_heard(int from, int user, unsigned n, int timeout_ms)
{
	want_from = from;
	want_user = user;
	want_count = n;
	ASSERT_TRUE(th_run_until(all_heard, timeout_ms));
}

/* n nodes of one window, all alive, the bus with its pipes. */
static void
form(int n)
{
	start(0, NULL, 60000);
	for (int i = 1; i < n; i++) {
		start(i, th_address(0), 60000);
	}
	ASSERT_TRUE(th_run_until(th_all_alive, 10000));
	th_run_for(300);
}

static void
counts_reach_every_node(void)
{
	clu_ratesync_stats st;

	form(3);
	count(0, 1, 3);
	expect_heard(0, 1, 3, 2000);
	count(0, 1, 4);
	count(2, 0, 9);
	expect_heard(0, 1, 4, 2000);
	expect_heard(2, 0, 9, 2000);
	/* What was not counted was not heard. */
	ASSERT_EQ(nodes[1].l.heard[0][0], 0);
	clu_ratesync_stats_get(nodes[1].s, &st);
	ASSERT_TRUE(st.received >= 3);
	ASSERT_EQ(st.refused, 0);
	stop_all();
}

static void
another_window_is_ignored(void)
{
	clu_ratesync_stats st;

	start(0, NULL, 60000);
	start(1, th_address(0), 30000);
	ASSERT_TRUE(th_run_until(th_all_alive, 10000));
	th_run_for(300);
	count(1, 2, 5);
	th_run_for(500);
	ASSERT_EQ(nodes[0].l.heard[1][2], 0);
	clu_ratesync_stats_get(nodes[0].s, &st);
	ASSERT_TRUE(st.refused >= 1);
	stop_all();
}

static bool
r0_sees_r2_alive(void)
{
	return clu_cluster_member_status(th[0].c, "r2") == CLU_ALIVE;
}

static void
joiner_gets_counts_it_missed(void)
{
	clu_ratesync_stats st;

	form(2);
	count(0, 3, 6);
	expect_heard(0, 3, 6, 2000);
	/* r2 hears nothing from r0 while r0 learns it is alive, as when the
	 * bus has no pipe to it yet: r0's send at that moment is lost. */
	start(2, th_address(1), 60000);
	ASSERT_OK(clu_cluster_set_blocked(th[2].c, "r0", true));
	ASSERT_TRUE(th_run_until(r0_sees_r2_alive, 10000));
	ASSERT_TRUE(nodes[0].l.touches >= 1);
	th_run_for(200);
	ASSERT_EQ(nodes[2].l.heard[0][3], 0);
	ASSERT_OK(clu_cluster_set_blocked(th[2].c, "r0", false));
	/* The repeat 1 s after r2 turned alive brings it. */
	expect_heard(0, 3, 6, 3000);
	clu_ratesync_stats_get(nodes[0].s, &st);
	ASSERT_TRUE(st.resends >= 1);
	stop_all();
}

TEST_LIST{
	TEST_ENTRY(counts_reach_every_node),
	TEST_ENTRY(another_window_is_ignored),
	TEST_ENTRY(joiner_gets_counts_it_missed),
};

TEST_MAIN()
