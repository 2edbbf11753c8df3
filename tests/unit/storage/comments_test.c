/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for storage/comments against real LMDB files in a temp dir:
 * put/get, queries at page edges, videos kept apart, id and seq continuity
 * across reopen, close flushing, and that group commit batches and
 * completes only from poll. Map growth, damaged directories, replicas and
 * origin walks are in comments_recovery_test.c. */
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "storage/comments.h"
#include "tests/unit/test.h"

#include "tests/unit/storage/store_fixture.h"

static void
test_put_get(void)
{
	sto_comments *s;
	sto_comment_list *l;
	sto_assigned a;

	setup();
	s = open_store("n1", NULL);
	append(s, "v1", "alice", "hello \xc3\xa9", &a);
	ASSERT_TRUE(sto_comment_id_valid(a.id));
	ASSERT_EQ(a.seq, 1);
	wait_done(s, 1);
	ASSERT_EQ(R.status[0], PL_OK);
	ASSERT_STREQ(R.id[0], a.id);
	ASSERT_OK(sto_comments_get(s, "v1", a.id, &l));
	ASSERT_EQ(l->count, 1);
	ASSERT_STREQ(l->items[0].id, a.id);
	ASSERT_STREQ(l->items[0].video_id, "v1");
	ASSERT_STREQ(l->items[0].user_id, "alice");
	ASSERT_STREQ(l->items[0].content, "hello \xc3\xa9");
	ASSERT_STREQ(l->items[0].origin, "n1");
	ASSERT_EQ(l->items[0].inserted_at, a.inserted_at);
	ASSERT_EQ(l->items[0].seq, 1);
	sto_comment_list_free(l);
	ASSERT_EQ(sto_comments_get(s, "v2", a.id, &l), PL_ENOTFOUND);
	ASSERT_TRUE(l == NULL);
	ASSERT_EQ(sto_comments_get(s, "v1", "bad", &l), PL_EINVAL);
	sto_comments_close(s);
	teardown();
}

static void
test_invalid_input(void)
{
	sto_comments *s;
	sto_comment_list *l;
	sto_comment_in in = { "v", "u", "x" };
	char *big = malloc(STO_CONTENT_MAX + 2);

	setup();
	s = open_store("n1", NULL);
	in.video_id = NULL;
	ASSERT_EQ(sto_comments_append(s, &in, on_done, NULL, NULL), PL_EINVAL);
	in.video_id = "";
	ASSERT_EQ(sto_comments_append(s, &in, on_done, NULL, NULL), PL_EINVAL);
	in.video_id = "v";
	memset(big, 'x', STO_CONTENT_MAX + 1);
	big[STO_CONTENT_MAX + 1] = '\0';
	in.content = big;
	ASSERT_EQ(sto_comments_append(s, &in, on_done, NULL, NULL), PL_ETOOBIG);
	big[STO_CONTENT_MAX] = '\0';
	ASSERT_OK(sto_comments_append(s, &in, on_done, NULL, NULL));
	wait_done(s, 1);
	ASSERT_EQ(R.status[0], PL_OK);
	ASSERT_OK(sto_comments_latest(s, "v", 1, &l));
	ASSERT_EQ(strlen(l->items[0].content), STO_CONTENT_MAX);
	sto_comment_list_free(l);
	ASSERT_EQ(sto_comments_latest(s, "v", 0, &l), PL_EINVAL);
	ASSERT_EQ(sto_comments_latest(s, "v", STO_QUERY_LIMIT_MAX + 1, &l),
	    PL_EINVAL);
	free(big);
	sto_comments_close(s);
	teardown();
}

static void
expect_range(
    sto_comment_list *l, const sto_assigned *ids, int from, int n, bool more)
{
	ASSERT_EQ(l->count, n);
	ASSERT_EQ(l->has_more, more);
	for (int i = 0; i < n; i++) {
		ASSERT_STREQ(l->items[i].id, ids[from + i].id);
	}
}

static void
test_latest_edges(void)
{
	sto_comments *s;
	sto_comment_list *l;
	sto_assigned ids[11];

	setup();
	s = open_store("n1", NULL);
	ASSERT_OK(sto_comments_latest(s, "v", 10, &l));
	expect_range(l, ids, 0, 0, false);
	sto_comment_list_free(l);
	fill(s, "v", 10, ids);
	ASSERT_OK(sto_comments_latest(s, "v", 10, &l));
	expect_range(l, ids, 0, 10, false);
	ASSERT_STREQ(l->items[0].content, "c0");
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_latest(s, "v", 9, &l));
	expect_range(l, ids, 1, 9, true);
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_latest(s, "v", 11, &l));
	expect_range(l, ids, 0, 10, false);
	sto_comment_list_free(l);
	fill(s, "v", 1, &ids[10]);
	ASSERT_OK(sto_comments_latest(s, "v", 10, &l));
	expect_range(l, ids, 1, 10, true);
	sto_comment_list_free(l);
	sto_comments_close(s);
	teardown();
}

static void
test_before_edges(void)
{
	sto_comments *s;
	sto_comment_list *l;
	sto_assigned ids[10];

	setup();
	s = open_store("n1", NULL);
	ASSERT_OK(
	    sto_comments_before(s, "v", "ffffffffffffffffffffffff", 5, &l));
	expect_range(l, ids, 0, 0, false);
	sto_comment_list_free(l);
	fill(s, "v", 10, ids);
	ASSERT_OK(sto_comments_before(s, "v", ids[0].id, 5, &l));
	expect_range(l, ids, 0, 0, false);
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_before(s, "v", ids[5].id, 5, &l));
	expect_range(l, ids, 0, 5, false);
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_before(s, "v", ids[6].id, 5, &l));
	expect_range(l, ids, 1, 5, true);
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_before(s, "v", ids[5].id, 4, &l));
	expect_range(l, ids, 1, 4, true);
	sto_comment_list_free(l);
	/* An id that is not stored (above all): same as latest. */
	ASSERT_OK(
	    sto_comments_before(s, "v", "ffffffffffffffffffffffff", 3, &l));
	expect_range(l, ids, 7, 3, true);
	sto_comment_list_free(l);
	/* An id below all. */
	ASSERT_OK(
	    sto_comments_before(s, "v", "000000000000000000000000", 3, &l));
	expect_range(l, ids, 0, 0, false);
	sto_comment_list_free(l);
	sto_comments_close(s);
	teardown();
}

static void
test_after_edges(void)
{
	sto_comments *s;
	sto_comment_list *l;
	sto_assigned ids[10];

	setup();
	s = open_store("n1", NULL);
	ASSERT_OK(
	    sto_comments_after(s, "v", "000000000000000000000000", 5, &l));
	expect_range(l, ids, 0, 0, false);
	sto_comment_list_free(l);
	fill(s, "v", 10, ids);
	ASSERT_OK(sto_comments_after(s, "v", ids[9].id, 5, &l));
	expect_range(l, ids, 0, 0, false);
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_after(s, "v", ids[4].id, 5, &l));
	expect_range(l, ids, 5, 5, false);
	sto_comment_list_free(l);
	ASSERT_OK(sto_comments_after(s, "v", ids[3].id, 5, &l));
	expect_range(l, ids, 4, 5, true);
	sto_comment_list_free(l);
	ASSERT_OK(
	    sto_comments_after(s, "v", "000000000000000000000000", 3, &l));
	expect_range(l, ids, 0, 3, true);
	sto_comment_list_free(l);
	ASSERT_OK(
	    sto_comments_after(s, "v", "ffffffffffffffffffffffff", 3, &l));
	expect_range(l, ids, 0, 0, false);
	sto_comment_list_free(l);
	sto_comments_close(s);
	teardown();
}

static void
test_videos_do_not_leak(void)
{
	/* Names that share prefixes and sort next to each other. */
	const char *videos[] = { "v", "v1", "v10", "v1x", "w", "u" };
	enum { NV = 6, PER = 30 };
	sto_assigned ids[NV][PER];
	sto_comments *s;
	sto_comment_list *l;

	setup();
	s = open_store("n1", NULL);
	for (int i = 0; i < PER; i++) {
		for (int v = 0; v < NV; v++) {
			append(s, videos[v], "u", videos[v], &ids[v][i]);
		}
	}
	wait_done(s, NV * PER);
	for (int v = 0; v < NV; v++) {
		ASSERT_OK(sto_comments_latest(s, videos[v], 100, &l));
		expect_range(l, ids[v], 0, PER, false);
		for (int i = 0; i < PER; i++) {
			ASSERT_STREQ(l->items[i].video_id, videos[v]);
			ASSERT_STREQ(l->items[i].content, videos[v]);
		}
		sto_comment_list_free(l);
		ASSERT_OK(
		    sto_comments_before(s, videos[v], ids[v][0].id, 100, &l));
		expect_range(l, ids[v], 0, 0, false);
		sto_comment_list_free(l);
		ASSERT_OK(sto_comments_after(
		    s, videos[v], ids[v][PER - 1].id, 100, &l));
		expect_range(l, ids[v], 0, 0, false);
		sto_comment_list_free(l);
		ASSERT_OK(
		    sto_comments_after(s, videos[v], ids[v][10].id, 100, &l));
		expect_range(l, ids[v], 11, PER - 11, false);
		sto_comment_list_free(l);
	}
	ASSERT_OK(sto_comments_latest(s, "v0", 100, &l));
	ASSERT_EQ(l->count, 0);
	sto_comment_list_free(l);
	sto_comments_close(s);
	teardown();
}

static int64_t fake_now;

static int64_t
fake_clock(void *arg)
{
	(void)arg;
	return (fake_now);
}

static void
test_ids_strictly_increasing(void)
{
	sto_comments_opts o = { .clock_ms = fake_clock };
	sto_comments *s;
	sto_assigned a, prev;
	sto_comment_in in = { "v", "u", "x" };

	setup();
	fake_now = 1000000;
	s = open_store("n1", &o);
	ASSERT_OK(sto_comments_append(s, &in, on_done, NULL, &prev));
	for (int i = 1; i < 3000; i++) {
		/* The clock jumps back now and then. */
		fake_now += (i % 7 == 0) ? -50 : (i % 3 == 0);
		ASSERT_OK(sto_comments_append(s, &in, on_done, NULL, &a));
		ASSERT_TRUE(strcmp(prev.id, a.id) < 0);
		ASSERT_EQ(a.seq, prev.seq + 1);
		ASSERT_TRUE(a.inserted_at >= prev.inserted_at);
		prev = a;
	}
	wait_done(s, 3000);
	for (int i = 1; i < 3000; i++) {
		ASSERT_TRUE(strcmp(R.id[i - 1], R.id[i]) < 0);
	}
	sto_comments_close(s);
	teardown();
}

static void
test_reopen_continues(void)
{
	sto_comments_opts o = { .clock_ms = fake_clock };
	sto_comments *s;
	sto_comment_list *l;
	sto_assigned ids[5], a;
	uint64_t max;

	setup();
	fake_now = 5000000;
	s = open_store("n1", &o);
	fill(s, "v", 5, ids);
	sto_comments_close(s);
	/* The clock stepped back across the restart. */
	fake_now = 4000000;
	s = open_store("n1", &o);
	ASSERT_OK(sto_comments_origin_max(s, "n1", &max));
	ASSERT_EQ(max, 5);
	append(s, "v", "u", "after", &a);
	ASSERT_EQ(a.seq, 6);
	ASSERT_TRUE(strcmp(ids[4].id, a.id) < 0);
	wait_done(s, 6);
	ASSERT_OK(sto_comments_latest(s, "v", 10, &l));
	ASSERT_EQ(l->count, 6);
	ASSERT_STREQ(l->items[5].id, a.id);
	sto_comment_list_free(l);
	sto_comments_close(s);
	teardown();
}

static void
test_close_flushes(void)
{
	sto_comments *s;
	sto_comment_list *l;

	setup();
	s = open_store("n1", NULL);
	for (int i = 0; i < 200; i++) {
		append(s, "v", "u", "x", NULL);
	}
	sto_comments_close(s);
	/* Every completion ran from close, in order, with PL_OK. */
	ASSERT_EQ(R.n, 200);
	for (int i = 0; i < 200; i++) {
		ASSERT_EQ(R.status[i], PL_OK);
		ASSERT_EQ(R.arg[i], i);
	}
	s = open_store("n1", NULL);
	ASSERT_OK(sto_comments_latest(s, "v", 1000, &l));
	ASSERT_EQ(l->count, 200);
	sto_comment_list_free(l);
	sto_comments_close(s);
	teardown();
}

static void
test_group_commit_batches(void)
{
	sto_comments_stats st;
	sto_comments *s;

	setup();
	s = open_store("n1", NULL);
	for (int i = 0; i < 1000; i++) {
		append(s, i % 2 ? "a" : "b", "u", "batched", NULL);
	}
	wait_done(s, 1000);
	for (int i = 0; i < 1000; i++) {
		ASSERT_EQ(R.status[i], PL_OK);
		ASSERT_EQ(R.arg[i], i); /* append order */
		ASSERT_EQ(R.seq[i], (uint64_t)i + 1);
	}
	sto_comments_stats_get(s, &st);
	fprintf(stderr, "  1000 appends: %llu commits, avg batch %.1f\n",
	    (unsigned long long)st.commits, st.avg_batch);
	ASSERT_EQ(st.appends, 1000);
	ASSERT_EQ(st.committed_ops, 1000);
	ASSERT_TRUE(st.commits < 100);
	ASSERT_EQ(st.fsyncs, st.commits);
	ASSERT_TRUE(st.avg_batch > 10.0);
	ASSERT_EQ(st.queued, 0);
	sto_comments_close(s);
	teardown();
}

static void
test_completions_only_from_poll(void)
{
	sto_comments_stats st;
	sto_comments *s;
	struct pollfd pfd;

	setup();
	s = open_store("n1", NULL);
	for (int i = 0; i < 50; i++) {
		append(s, "v", "u", "x", NULL);
	}
	for (int i = 0; i < 2000; i++) {
		sto_comments_stats_get(s, &st);
		if (st.committed_ops == 50) {
			break;
		}
		usleep(5000);
	}
	ASSERT_EQ(st.committed_ops, 50);
	usleep(20000);
	ASSERT_EQ(R.n, 0);
	pfd.fd = sto_comments_notify_fd(s);
	pfd.events = POLLIN;
	ASSERT_EQ(poll(&pfd, 1, 0), 1);
	sto_comments_poll(s);
	ASSERT_EQ(R.n, 50);
	ASSERT_EQ(R.off_thread, 0);
	/* Drained: nothing more to read, a spurious poll is harmless. */
	ASSERT_EQ(poll(&pfd, 1, 0), 0);
	sto_comments_poll(s);
	ASSERT_EQ(R.n, 50);
	sto_comments_close(s);
	teardown();
}

TEST_LIST{
	TEST_ENTRY(test_put_get),
	TEST_ENTRY(test_invalid_input),
	TEST_ENTRY(test_latest_edges),
	TEST_ENTRY(test_before_edges),
	TEST_ENTRY(test_after_edges),
	TEST_ENTRY(test_videos_do_not_leak),
	TEST_ENTRY(test_ids_strictly_increasing),
	TEST_ENTRY(test_reopen_continues),
	TEST_ENTRY(test_close_flushes),
	TEST_ENTRY(test_group_commit_batches),
	TEST_ENTRY(test_completions_only_from_poll),
};

TEST_MAIN()
