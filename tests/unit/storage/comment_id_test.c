/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for storage/comment_id: layout, ordering, clock steps back,
 * counter exhaustion within one millisecond. */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/comment_id.h"
#include "tests/unit/test.h"

static void
test_format_parse_roundtrip(void)
{
	char id[STO_COMMENT_ID_LEN + 1];
	int64_t ms;
	uint32_t h, c;

	sto_comment_id_format(id, 1700000000123LL, 0xdeadbeef, 0x1234);
	ASSERT_EQ(strlen(id), STO_COMMENT_ID_LEN);
	ASSERT_STREQ(id, "018bcfe5687bdeadbeef1234");
	ASSERT_TRUE(sto_comment_id_valid(id));
	ASSERT_OK(sto_comment_id_parse(id, &ms, &h, &c));
	ASSERT_EQ(ms, 1700000000123LL);
	ASSERT_EQ(h, 0xdeadbeef);
	ASSERT_EQ(c, 0x1234);
}

static void
test_valid_rejects(void)
{
	ASSERT_TRUE(!sto_comment_id_valid(NULL));
	ASSERT_TRUE(!sto_comment_id_valid(""));
	ASSERT_TRUE(!sto_comment_id_valid("018bcfe5687bdeadbeef123"));
	ASSERT_TRUE(!sto_comment_id_valid("018bcfe5687bdeadbeef12345"));
	ASSERT_TRUE(!sto_comment_id_valid("018BCFE5687BDEADBEEF1234"));
	ASSERT_TRUE(!sto_comment_id_valid("018bcfe5687bdeadbeef12g4"));
	ASSERT_EQ(sto_comment_id_parse("nope", NULL, NULL, NULL), PL_EINVAL);
}

static void
test_strictly_increasing_with_clock_back(void)
{
	sto_comment_id_gen g;
	char prev[STO_COMMENT_ID_LEN + 1] = "", id[STO_COMMENT_ID_LEN + 1];
	int64_t clock[] = { 1000, 1000, 1001, 999, 500, 1001, 1002, 0, -5,
		2000 };
	int64_t ms, last_ms = 0;

	sto_comment_id_gen_init(&g, "n1", -1, 0);
	for (size_t i = 0; i < sizeof(clock) / sizeof(clock[0]); i++) {
		sto_comment_id_next(&g, clock[i], id, &ms);
		ASSERT_TRUE(strcmp(prev, id) < 0);
		ASSERT_TRUE(ms >= last_ms);
		last_ms = ms;
		memcpy(prev, id, sizeof(id));
	}
	ASSERT_EQ(ms, 2000);
}

static void
test_counter_exhaustion_borrows_next_ms(void)
{
	sto_comment_id_gen g;
	char prev[STO_COMMENT_ID_LEN + 1], id[STO_COMMENT_ID_LEN + 1];
	int64_t ms;
	uint32_t c;

	sto_comment_id_gen_init(&g, "n1", -1, 0);
	sto_comment_id_next(&g, 5000, prev, &ms);
	for (int i = 0; i < 70000; i++) {
		sto_comment_id_next(&g, 5000, id, &ms);
		ASSERT_TRUE(strcmp(prev, id) < 0);
		memcpy(prev, id, sizeof(id));
	}
	ASSERT_EQ(ms, 5001);
	ASSERT_OK(sto_comment_id_parse(id, NULL, NULL, &c));
	ASSERT_EQ(c, 70000 - 65536);
}

static void
test_restored_state_continues(void)
{
	sto_comment_id_gen g;
	char id[STO_COMMENT_ID_LEN + 1];
	int64_t ms;
	uint32_t c;

	/* Restored from storage: last id was (9000, 7); clock now says 10. */
	sto_comment_id_gen_init(&g, "n1", 9000, 7);
	sto_comment_id_next(&g, 10, id, &ms);
	ASSERT_OK(sto_comment_id_parse(id, &ms, NULL, &c));
	ASSERT_EQ(ms, 9000);
	ASSERT_EQ(c, 8);
}

static void
test_nodes_differ(void)
{
	sto_comment_id_gen a, b;
	char ia[STO_COMMENT_ID_LEN + 1], ib[STO_COMMENT_ID_LEN + 1];

	ASSERT_NE(
	    sto_comment_id_node_hash("n1"), sto_comment_id_node_hash("n2"));
	sto_comment_id_gen_init(&a, "n1", -1, 0);
	sto_comment_id_gen_init(&b, "n2", -1, 0);
	sto_comment_id_next(&a, 42, ia, NULL);
	sto_comment_id_next(&b, 42, ib, NULL);
	ASSERT_TRUE(strcmp(ia, ib) != 0);
	/* Same ms: only the node part differs, time order is kept. */
	ASSERT_MEMEQ(ia, ib, 12);
	sto_comment_id_next(&a, 43, ia, NULL);
	ASSERT_TRUE(strcmp(ib, ia) < 0);
}

TEST_LIST{
	TEST_ENTRY(test_format_parse_roundtrip),
	TEST_ENTRY(test_valid_rejects),
	TEST_ENTRY(test_strictly_increasing_with_clock_back),
	TEST_ENTRY(test_counter_exhaustion_borrows_next_ms),
	TEST_ENTRY(test_restored_state_continues),
	TEST_ENTRY(test_nodes_differ),
};

TEST_MAIN()
