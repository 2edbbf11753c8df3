/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for cluster/filter: malformed messages counted per connection
 * within a window (cut-off verdicts, expiry, a full table) and the fault
 * hook's block list in both directions, on an explicit clock. */
#include <stdio.h>
#include <string.h>

#include "cluster/filter.h"
#include "common/err.h"
#include "tests/unit/test.h"

static pro_wire_hdr
hdr(const char *sender, pro_wire_str *skip, size_t n_skip)
{
	pro_wire_hdr h;

	memset(&h, 0, sizeof(h));
	h.sender = pro_wire_cstr(sender);
	h.skip = skip;
	h.n_skip = n_skip;
	return h;
}

static void
malformed_limits(void)
{
	clu_filter *f;

	ASSERT_OK(clu_filter_create(&f, 3, 1000));
	/* Over the limit within the window: cut off, and counted afresh. */
	for (int i = 0; i < 3; i++) {
		ASSERT_TRUE(!clu_filter_malformed(f, 7, 100 + (uint64_t)i));
	}
	ASSERT_TRUE(clu_filter_malformed(f, 7, 200));
	ASSERT_TRUE(!clu_filter_malformed(f, 7, 210));
	/* Connections are counted apart. */
	ASSERT_TRUE(!clu_filter_malformed(f, 8, 210));
	/* A window that passed starts the count again... */
	ASSERT_TRUE(!clu_filter_malformed(f, 9, 300));
	ASSERT_TRUE(!clu_filter_malformed(f, 9, 310));
	ASSERT_TRUE(!clu_filter_malformed(f, 9, 320));
	ASSERT_TRUE(!clu_filter_malformed(f, 9, 1400));
	ASSERT_TRUE(!clu_filter_malformed(f, 9, 1410));
	/* ...and so does expiry. */
	clu_filter_expire(f, 5000);
	for (int i = 0; i < 3; i++) {
		ASSERT_TRUE(!clu_filter_malformed(f, 9, 5001));
	}
	ASSERT_TRUE(clu_filter_malformed(f, 9, 5002));
	/* More connections than the table holds: still works. */
	for (uint32_t p = 1000; p < 1400; p++) {
		ASSERT_TRUE(!clu_filter_malformed(f, p, 6000));
	}
	clu_filter_destroy(f);
	clu_filter_destroy(NULL);
}

static void
fault_hook(void)
{
	clu_filter *f;
	pro_wire_str skip[PRO_WIRE_SKIP_MAX], me = pro_wire_cstr("n1");
	pro_wire_hdr h;
	char name[16];

	ASSERT_OK(clu_filter_create(&f, 10, 10000));
	ASSERT_EQ(clu_filter_skip(f, skip), 0);
	h = hdr("n2", NULL, 0);
	ASSERT_TRUE(!clu_filter_drops(f, &h, "n1"));
	ASSERT_OK(clu_filter_block(f, "n2", true));
	ASSERT_OK(clu_filter_block(f, "n2", true)); /* once is enough */
	ASSERT_TRUE(clu_filter_drops(f, &h, "n1"));
	ASSERT_EQ(clu_filter_skip(f, skip), 1);
	ASSERT_TRUE(skip[0].len == 2 && memcmp(skip[0].ptr, "n2", 2) == 0);
	/* The other direction: a sender that tells us to skip its message. */
	h = hdr("n3", &me, 1);
	ASSERT_TRUE(clu_filter_drops(f, &h, "n1"));
	ASSERT_TRUE(!clu_filter_drops(f, &h, "n4"));
	ASSERT_OK(clu_filter_block(f, "n2", false));
	ASSERT_OK(clu_filter_block(f, "n2", false));
	h = hdr("n2", NULL, 0);
	ASSERT_TRUE(!clu_filter_drops(f, &h, "n1"));
	for (int i = 0; i < PRO_WIRE_SKIP_MAX; i++) {
		snprintf(name, sizeof(name), "x%d", i);
		ASSERT_OK(clu_filter_block(f, name, true));
	}
	ASSERT_EQ(clu_filter_block(f, "one-more", true), PL_EFULL);
	ASSERT_EQ(clu_filter_skip(f, skip), PRO_WIRE_SKIP_MAX);
	clu_filter_destroy(f);
}

TEST_LIST{
	TEST_ENTRY(malformed_limits),
	TEST_ENTRY(fault_hook),
};

TEST_MAIN()
