/* SPDX-License-Identifier: Apache-2.0 */
/* Per-key counters with a cap: counting up to the cap and no further,
 * release freeing a key at zero, many keys through bucket growth. */
#include "broker/tally.h"

#include "common/err.h"
#include "tests/unit/test.h"

#include <stdio.h>

static void
cap_and_release(void)
{
	brk_tally *t;
	brk_tally_entry *e[4], *x;

	ASSERT_OK(brk_tally_create(&t));
	for (int i = 0; i < 3; i++) {
		ASSERT_OK(brk_tally_take(t, "alice", 5, 3, &e[i]));
	}
	ASSERT_EQ(brk_tally_take(t, "alice", 5, 3, &x), PL_ELIMIT);
	ASSERT_TRUE(x == NULL);
	/* Another key, and the same key without a cap. */
	ASSERT_OK(brk_tally_take(t, "alicf", 5, 3, &e[3]));
	ASSERT_OK(brk_tally_take(t, "alice", 5, 0, &x));
	ASSERT_EQ(brk_tally_count(t, "alice", 5), 4);
	brk_tally_release(t, x);
	ASSERT_EQ(brk_tally_count(t, "alice", 5), 3);
	ASSERT_EQ(brk_tally_keys(t), 2);
	brk_tally_release(t, e[0]);
	ASSERT_OK(brk_tally_take(t, "alice", 5, 3, &e[0]));
	for (int i = 0; i < 3; i++) {
		brk_tally_release(t, e[i]);
	}
	ASSERT_EQ(brk_tally_count(t, "alice", 5), 0);
	ASSERT_EQ(brk_tally_keys(t), 1);
	brk_tally_release(t, e[3]);
	ASSERT_EQ(brk_tally_keys(t), 0);
	/* Binary keys: a prefix is another key. */
	ASSERT_OK(brk_tally_take(t, "\0\1\2", 3, 1, &e[0]));
	ASSERT_OK(brk_tally_take(t, "\0\1", 2, 1, &e[1]));
	ASSERT_EQ(brk_tally_take(t, "\0\1\2", 3, 1, &x), PL_ELIMIT);
	brk_tally_destroy(t); /* with entries still counted */
}

static void
many_keys(void)
{
	enum { N = 20000 };
	static brk_tally_entry *e[N];
	brk_tally *t;
	char k[32];

	ASSERT_OK(brk_tally_create(&t));
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "user-%d", i);
		ASSERT_OK(brk_tally_take(t, k, strlen(k), 2, &e[i]));
	}
	ASSERT_EQ(brk_tally_keys(t), N);
	for (int i = 0; i < N; i++) {
		snprintf(k, sizeof(k), "user-%d", i);
		ASSERT_EQ(brk_tally_count(t, k, strlen(k)), 1);
	}
	for (int i = 0; i < N; i += 2) {
		brk_tally_release(t, e[i]);
	}
	ASSERT_EQ(brk_tally_keys(t), N / 2);
	ASSERT_EQ(brk_tally_count(t, "user-1", 6), 1);
	ASSERT_EQ(brk_tally_count(t, "user-0", 6), 0);
	for (int i = 1; i < N; i += 2) {
		brk_tally_release(t, e[i]);
	}
	ASSERT_EQ(brk_tally_keys(t), 0);
	brk_tally_destroy(t);
}

TEST_LIST{
	TEST_ENTRY(cap_and_release),
	TEST_ENTRY(many_keys),
};

TEST_MAIN()
