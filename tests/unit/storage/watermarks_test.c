/* SPDX-License-Identifier: Apache-2.0 */
/* Named watermarks listed by prefix (sto_comments_watermarks): only the
 * names with the prefix, in name order, with their committed values,
 * across a reopen; nothing else in the meta database leaks in. */
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "storage/comments.h"
#include "tests/unit/test.h"

#include "tests/unit/storage/store_fixture.h"

static int wm_done;

static void
on_wm(void *arg, int status)
{
	(void)arg;
	ASSERT_OK(status);
	wm_done++;
}

static char listed[16][STO_WATERMARK_NAME_MAX + 1];
static uint64_t values[16];
static int nlisted;

static void
collect(void *arg, const char *name, uint64_t v)
{
	(void)arg;
	if (nlisted < 16) {
		snprintf(listed[nlisted], sizeof(listed[0]), "%s", name);
		values[nlisted] = v;
	}
	nlisted++;
}

static void
set_all(sto_comments *s)
{
	static const char *names[] = { "fbs:n2", "fbs:n1", "fbx:n1", "fbp:7:n1",
		"fb", "other" };
	struct pollfd p = { .fd = sto_comments_notify_fd(s), .events = POLLIN };

	wm_done = 0;
	for (int i = 0; i < 6; i++) {
		ASSERT_OK(sto_comments_set_watermark(
		    s, names[i], (uint64_t)(i + 1) * 10, on_wm, NULL));
	}
	for (int i = 0; wm_done < 6 && i < 2000; i++) {
		poll(&p, 1, 10);
		sto_comments_poll(s);
	}
	ASSERT_EQ(wm_done, 6);
}

static void
lists_by_prefix_in_order(void)
{
	sto_comments *s;

	setup();
	s = open_store("n1", NULL);
	fill(s, "v", 3, NULL); /* comments and high-water marks beside */
	set_all(s);
	nlisted = 0;
	ASSERT_OK(sto_comments_watermarks(s, "fbs:", collect, NULL));
	ASSERT_EQ(nlisted, 2);
	ASSERT_STREQ(listed[0], "fbs:n1");
	ASSERT_EQ(values[0], 20);
	ASSERT_STREQ(listed[1], "fbs:n2");
	ASSERT_EQ(values[1], 10);
	nlisted = 0;
	ASSERT_OK(sto_comments_watermarks(s, "fb", collect, NULL));
	ASSERT_EQ(nlisted, 5);
	ASSERT_STREQ(listed[0], "fb");
	nlisted = 0;
	ASSERT_OK(sto_comments_watermarks(s, "", collect, NULL));
	ASSERT_EQ(nlisted, 6); /* every watermark, nothing else */
	nlisted = 0;
	ASSERT_OK(sto_comments_watermarks(s, "zz", collect, NULL));
	ASSERT_EQ(nlisted, 0);
	sto_comments_close(s);
	/* Durable: the same after a reopen. */
	s = open_store("n1", NULL);
	nlisted = 0;
	ASSERT_OK(sto_comments_watermarks(s, "fbp:", collect, NULL));
	ASSERT_EQ(nlisted, 1);
	ASSERT_STREQ(listed[0], "fbp:7:n1");
	ASSERT_EQ(values[0], 40);
	ASSERT_EQ(sto_comments_watermarks(s, NULL, collect, NULL), PL_EINVAL);
	sto_comments_close(s);
	teardown();
}

TEST_LIST{
	TEST_ENTRY(lists_by_prefix_in_order),
};
TEST_MAIN()
