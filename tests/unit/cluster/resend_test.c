/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for cluster/resend: after a member turns alive, the whole state is
 * due again 1 s and 5 s later, once each; a newer event restarts the
 * series; nothing is due without an event. */
#include "cluster/resend.h"
#include "tests/unit/test.h"

static void
two_repeats_then_quiet(void)
{
	clu_resend r = { 0 };

	ASSERT_TRUE(!clu_resend_due(&r, 10000));
	clu_resend_member_alive(&r);
	ASSERT_TRUE(!clu_resend_due(&r, 10999));
	ASSERT_TRUE(clu_resend_due(&r, 11000));
	ASSERT_TRUE(!clu_resend_due(&r, 11100));
	ASSERT_TRUE(!clu_resend_due(&r, 14999));
	ASSERT_TRUE(clu_resend_due(&r, 15050));
	for (uint64_t t = 15100; t < 60000; t += 100) {
		ASSERT_TRUE(!clu_resend_due(&r, t));
	}
}

static void
a_newer_member_restarts_the_series(void)
{
	clu_resend r = { 0 };

	ASSERT_TRUE(!clu_resend_due(&r, 1000));
	clu_resend_member_alive(&r);
	ASSERT_TRUE(clu_resend_due(&r, 2000));
	/* Another member turns alive between the repeats. */
	ASSERT_TRUE(!clu_resend_due(&r, 3000));
	clu_resend_member_alive(&r);
	ASSERT_TRUE(!clu_resend_due(&r, 3500));
	ASSERT_TRUE(clu_resend_due(&r, 4000));
	ASSERT_TRUE(!clu_resend_due(&r, 7000));
	ASSERT_TRUE(clu_resend_due(&r, 8000));
	ASSERT_TRUE(!clu_resend_due(&r, 20000));
}

static void
an_event_before_the_first_tick(void)
{
	clu_resend r = { 0 };

	clu_resend_member_alive(&r);
	/* Counted from the first tick, not from a clock of zero. */
	ASSERT_TRUE(!clu_resend_due(&r, 500000));
	ASSERT_TRUE(clu_resend_due(&r, 501000));
}

TEST_LIST{
	TEST_ENTRY(two_repeats_then_quiet),
	TEST_ENTRY(a_newer_member_restarts_the_series),
	TEST_ENTRY(an_event_before_the_first_tick),
};

TEST_MAIN()
