/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for cluster/ackwait: a publish answers ok once `need` nodes hold
 * it (a peer counted once however often it acks), times out on the given
 * clock, and is closed on destroy; callbacks may add waiters. */
#include <stdlib.h>

#include "cluster/ackwait.h"
#include "common/err.h"
#include "tests/unit/test.h"

typedef struct outcome {
	int calls;
	int status;
} outcome;

static void
record(void *arg, int status)
{
	outcome *o = arg;

	o->calls++;
	o->status = status;
}

static void
needs_distinct_peers(void)
{
	clu_ackwait *a;
	outcome o = { 0 };
	uint64_t seq = 7;

	ASSERT_OK(clu_ackwait_create(&a, 3, 1000));
	ASSERT_OK(clu_ackwait_add(a, seq, 0, record, &o));
	/* The same peer twice is one node. */
	ASSERT_EQ(clu_ackwait_ack(a, 1, &seq, 1), 0);
	ASSERT_EQ(clu_ackwait_ack(a, 1, &seq, 1), 0);
	ASSERT_EQ(o.calls, 0);
	/* A peer index out of range is no node at all. */
	ASSERT_EQ(clu_ackwait_ack(a, CLU_ACKWAIT_PEERS, &seq, 1), 0);
	ASSERT_EQ(clu_ackwait_ack(a, 2, &seq, 1), 1);
	ASSERT_EQ(o.calls, 1);
	ASSERT_EQ(o.status, PL_OK);
	ASSERT_EQ(clu_ackwait_pending(a), 0);
	/* A late ack of a finished seq changes nothing. */
	ASSERT_EQ(clu_ackwait_ack(a, 3, &seq, 1), 0);
	ASSERT_EQ(o.calls, 1);
	clu_ackwait_destroy(a);
}

static void
acks_pick_their_seq(void)
{
	clu_ackwait *a;
	outcome o[3] = { { 0 } };
	uint64_t seqs[] = { 30, 10 };

	ASSERT_OK(clu_ackwait_create(&a, 2, 1000));
	/* Added out of order, still found. */
	ASSERT_OK(clu_ackwait_add(a, 20, 0, record, &o[1]));
	ASSERT_OK(clu_ackwait_add(a, 10, 0, record, &o[0]));
	ASSERT_OK(clu_ackwait_add(a, 30, 0, record, &o[2]));
	ASSERT_EQ(clu_ackwait_add(a, 20, 0, record, &o[1]), PL_EINVAL);
	ASSERT_EQ(clu_ackwait_ack(a, 0, seqs, 2), 2);
	ASSERT_EQ(o[0].calls, 1);
	ASSERT_EQ(o[1].calls, 0);
	ASSERT_EQ(o[2].calls, 1);
	ASSERT_EQ(clu_ackwait_pending(a), 1);
	clu_ackwait_destroy(a);
	/* What was still waiting is closed, once. */
	ASSERT_EQ(o[1].calls, 1);
	ASSERT_EQ(o[1].status, PL_ECLOSED);
	ASSERT_EQ(o[0].status, PL_OK);
}

static void
times_out_on_its_clock(void)
{
	clu_ackwait *a;
	outcome early = { 0 }, late = { 0 };

	ASSERT_OK(clu_ackwait_create(&a, 2, 500));
	ASSERT_OK(clu_ackwait_add(a, 1, 1000, record, &early));
	ASSERT_OK(clu_ackwait_add(a, 2, 1200, record, &late));
	ASSERT_EQ(clu_ackwait_expire(a, 1499), 0);
	ASSERT_EQ(clu_ackwait_expire(a, 1500), 1);
	ASSERT_EQ(early.status, PL_EAGAIN);
	ASSERT_EQ(late.calls, 0);
	ASSERT_EQ(clu_ackwait_pending(a), 1);
	ASSERT_EQ(clu_ackwait_expire(a, 1700), 1);
	ASSERT_EQ(late.status, PL_EAGAIN);
	ASSERT_EQ(clu_ackwait_pending(a), 0);
	clu_ackwait_destroy(a);
}

/* A client answered from a callback may publish again at once: the table
 * grows (and moves) under the pass. */
typedef struct chain {
	clu_ackwait *a;
	outcome more[200];
	outcome second;
	int calls;
} chain;

static void
publish_more(void *arg, int status)
{
	chain *c = arg;

	(void)status;
	c->calls++;
	for (int i = 0; i < 200; i++) {
		if (clu_ackwait_add(c->a, 1000 + (uint64_t)i, 0, record,
			&c->more[i]) != PL_OK) {
			abort();
		}
	}
}

static void
callbacks_may_add(void)
{
	chain c = { 0 };
	uint64_t seqs[] = { 1, 2 };

	ASSERT_OK(clu_ackwait_create(&c.a, 2, 100));
	ASSERT_OK(clu_ackwait_add(c.a, 1, 0, publish_more, &c));
	ASSERT_OK(clu_ackwait_add(c.a, 2, 0, record, &c.second));
	ASSERT_EQ(clu_ackwait_ack(c.a, 5, seqs, 2), 2);
	ASSERT_EQ(c.calls, 1);
	ASSERT_EQ(c.second.status, PL_OK);
	ASSERT_EQ(clu_ackwait_pending(c.a), 200);
	ASSERT_EQ(clu_ackwait_expire(c.a, 100), 200);
	ASSERT_EQ(c.more[199].status, PL_EAGAIN);
	clu_ackwait_destroy(c.a);
}

static void
refuses_bad_arguments(void)
{
	clu_ackwait *a = (clu_ackwait *)&a;

	ASSERT_EQ(clu_ackwait_create(&a, 1, 1000), PL_EINVAL);
	ASSERT_TRUE(a == NULL);
	ASSERT_EQ(clu_ackwait_create(&a, 2, 0), PL_EINVAL);
	ASSERT_TRUE(a == NULL);
	ASSERT_OK(clu_ackwait_create(&a, 2, 10));
	ASSERT_EQ(clu_ackwait_add(a, 1, 0, NULL, NULL), PL_EINVAL);
	ASSERT_EQ(clu_ackwait_pending(a), 0);
	clu_ackwait_destroy(a);
}

TEST_LIST{
	TEST_ENTRY(needs_distinct_peers),
	TEST_ENTRY(acks_pick_their_seq),
	TEST_ENTRY(times_out_on_its_clock),
	TEST_ENTRY(callbacks_may_add),
	TEST_ENTRY(refuses_bad_arguments),
};

TEST_MAIN()
