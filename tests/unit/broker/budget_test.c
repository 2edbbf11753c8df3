/* SPDX-License-Identifier: Apache-2.0 */
/* The node-wide output budget (--max-queued-bytes) on a real node with
 * socketpair clients: a broadcast frame shared by stalled subscribers is
 * counted once; when the queued total passes the budget the reader furthest
 * behind is closed first, one that fell behind later survives, and a
 * reading subscriber gets every message. */
#include "broker/conn.h"
#include "broker/node.h"
#include "broker/router.h"
#include "tests/unit/broker/node_harness.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define TOPIC "comments:budget"
#define BUDGET (1u << 20)

/* A client's count of "new_comment" messages; the tail of the last read is
 * kept so that a name cut between two reads still counts. */
typedef struct reader {
	int fd;
	long messages;
	char buf[65536 + 16];
	size_t keep;
} reader;

/* Reads what the client has without waiting. Returns -1 once the peer has
 * closed. */
static int
drain(reader *rd)
{
	static const char needle[] = "\"new_comment\"";
	const size_t nl = sizeof(needle) - 1;
	ssize_t r;

	while ((r = read(rd->fd, rd->buf + rd->keep, 65536)) > 0) {
		size_t n = rd->keep + (size_t)r;
		char *p = rd->buf;

		while ((p = memmem(p, (size_t)(rd->buf + n - p), needle, nl))) {
			rd->messages++;
			p += nl;
		}
		rd->keep = n < nl - 1 ? n : nl - 1;
		memmove(rd->buf, rd->buf + n - rd->keep, rd->keep);
	}
	return r == 0 ? -1 : 0;
}

static void
join(int fd)
{
	json_t *m;

	nh_send(fd, "[\"1\",\"1\",\"" TOPIC "\",\"phx_join\",{}]");
	m = nh_expect(fd, TOPIC, "phx_reply", "ok");
	json_decref(m);
}

static void
broadcast(const char *payload)
{
	brk_router_local_broadcast(brk_node_router(nh_node), TOPIC,
	    "new_comment", payload, strlen(payload));
	nh_pump();
	ASSERT_TRUE(brk_node_conns(nh_node)->out.bytes <= BUDGET);
}

static void
slowest_closed_first(void)
{
	const char *flags[] = { "--max-queued-bytes", "1048576",
		"--max-out-bytes", "1073741824", "--max-sockets-per-user",
		"0" };
	brk_node_stats *st;
	char payload[1100];
	static reader h, a, b;
	int i;

	nh_start_flags(flags, 6);
	st = brk_node_stats_of(nh_node);
	h.fd = nh_client("healthy", "2.0.0");
	a.fd = nh_client("early", "2.0.0");
	b.fd = nh_client("late", "2.0.0");
	join(h.fd);
	join(a.fd);
	join(b.fd);
	/* Let the presence diffs of the joins go out, then start clean. */
	for (i = 0; i < 20; i++) {
		usleep(10000);
		nh_pump();
	}
	drain(&h);
	drain(&a);
	drain(&b);
	h.messages = a.messages = b.messages = 0;
	snprintf(payload, sizeof(payload), "{\"content\":\"%01000d\"}", 7);
	/* "early" stops reading at once; "late" reads for a while. */
	for (i = 0; i < 600; i++) {
		broadcast(payload);
		ASSERT_OK(drain(&h));
		ASSERT_OK(drain(&b));
	}
	ASSERT_EQ(st->budget_closed, 0);
	for (i = 0; i < 800; i++) {
		broadcast(payload);
		ASSERT_OK(drain(&h));
	}
	/* Closing "early" released what only it still held: "late" is
	 * behind by less than the budget and stays. */
	ASSERT_EQ(st->budget_closed, 1);
	ASSERT_TRUE(brk_node_conns(nh_node)->out.bytes <= BUDGET * 9 / 10);
	ASSERT_EQ(h.messages, 1400);
	for (i = 0; i < 200 && drain(&a) == 0; i++) {
		nh_pump();
		usleep(1000);
	}
	ASSERT_TRUE(i < 200); /* "early" was closed */
	ASSERT_TRUE(a.messages < 1400);
	for (i = 0; i < 50; i++) {
		nh_pump();
		ASSERT_OK(drain(&b));
	}
	broadcast(payload);
	for (i = 0; i < 50 && b.messages < 1401; i++) {
		nh_pump();
		ASSERT_OK(drain(&b));
	}
	ASSERT_EQ(b.messages, 1401); /* "late" caught up and still receives */
	close(h.fd);
	close(a.fd);
	close(b.fd);
	nh_pump();
	nh_stop();
}

TEST_LIST{
	TEST_ENTRY(slowest_closed_first),
};

TEST_MAIN()
