/* SPDX-License-Identifier: Apache-2.0 */
/* Output queues over real sockets: a frame shared by many queues is counted
 * once in the node's account, partial writes resume mid-frame in order, and
 * the account returns to zero once everything is written or dropped. */
#include "broker/outq.h"

#include "common/err.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void
pair(int sv[2])
{
	int small = 4096;

	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_OK(fcntl(sv[0], F_SETFL, O_NONBLOCK));
	ASSERT_OK(
	    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)));
}

static void
shared_frame_counted_once(void)
{
	enum { Q = 100 };
	brk_outq_account a = { 0 };
	static brk_outq *q[Q];
	brk_frame *f = brk_frame_text("hello, all of you", 17);
	size_t one;

	ASSERT_TRUE(f != NULL);
	ASSERT_OK(brk_outq_push(&q[0], &a, f, 0, f->len));
	one = a.bytes;
	ASSERT_TRUE(one >= f->len);
	for (int i = 1; i < Q; i++) {
		ASSERT_OK(brk_outq_push(&q[i], &a, f, 0, f->len));
	}
	/* Ninety-nine more queues cost their pointer arrays, not the frame. */
	ASSERT_EQ(a.bytes, one + (Q - 1) * (one - sizeof(*f) - f->len));
	ASSERT_EQ(f->refs, Q + 1);
	ASSERT_EQ(f->queued, Q);
	ASSERT_EQ(brk_outq_bytes(q[7]), f->len);
	ASSERT_EQ(brk_outq_oldest(q[7]), f->seq);
	brk_frame_unref(f);
	for (int i = 0; i < Q; i++) {
		brk_outq_clear(&q[i], &a);
		ASSERT_TRUE(q[i] == NULL);
	}
	ASSERT_EQ(a.bytes, 0);
	ASSERT_EQ(brk_outq_bytes(NULL), 0);
	ASSERT_EQ(brk_outq_oldest(NULL), UINT64_MAX);
}

static void
partial_writes_in_order(void)
{
	enum { N = 200, LEN = 1000 };
	brk_outq_account a = { 0 };
	brk_outq *q = NULL;
	char *want = malloc(N * (LEN + 4)), *got = malloc(N * (LEN + 4));
	size_t wl = 0, gl = 0, sent = 0;
	uint64_t first = 0;
	int sv[2];

	pair(sv);
	for (int i = 0; i < N; i++) {
		brk_frame *f = pl_rcbuf_new(LEN);

		ASSERT_TRUE(f != NULL);
		memset(f->data, 'a' + i % 26, LEN);
		memcpy(want + wl, f->data, LEN);
		wl += LEN;
		if (i == 0) {
			first = f->seq;
		}
		ASSERT_OK(brk_outq_push(&q, &a, f, 0, f->len));
		brk_frame_unref(f);
	}
	ASSERT_EQ(brk_outq_bytes(q), wl);
	/* The peer reads slowly: every write stops where the socket is full,
	 * often in the middle of a frame. */
	while (q != NULL) {
		ssize_t w = brk_outq_write(&q, &a, sv[0]), r;

		ASSERT_TRUE(w > 0 || (w < 0 && errno == EAGAIN));
		sent += w > 0 ? (size_t)w : 0;
		ASSERT_EQ(brk_outq_bytes(q), wl - sent);
		if (q != NULL) {
			ASSERT_TRUE(brk_outq_oldest(q) >= first);
		}
		r = read(sv[1], got + gl, 777);
		ASSERT_TRUE(r > 0);
		gl += (size_t)r;
	}
	while (gl < wl) {
		ssize_t r = read(sv[1], got + gl, wl - gl);
		ASSERT_TRUE(r > 0);
		gl += (size_t)r;
	}
	ASSERT_EQ(gl, wl);
	ASSERT_TRUE(memcmp(got, want, wl) == 0);
	ASSERT_EQ(a.bytes, 0);
	close(sv[0]);
	close(sv[1]);
	free(want);
	free(got);
}

static void
frame_from_evbuffer_and_budget(void)
{
	struct evbuffer *b = evbuffer_new();
	brk_frame *f = brk_frame_text("", 0);

	ASSERT_TRUE(f != NULL);
	ASSERT_EQ(f->len, 2); /* an empty text frame is its header */
	brk_frame_unref(f);
	evbuffer_add_printf(b, "HTTP/1.1 %d %s\r\n\r\n", 200, "OK");
	f = brk_frame_take(b);
	ASSERT_TRUE(f != NULL);
	ASSERT_EQ(evbuffer_get_length(b), 0);
	ASSERT_EQ(f->len, 19);
	ASSERT_TRUE(memcmp(f->data, "HTTP/1.1 200 OK\r\n\r\n", 19) == 0);
	brk_frame_unref(f);
	evbuffer_free(b);
	ASSERT_TRUE(brk_outq_default_budget() >= (64u << 20));
}

static void
pieces_of_one_block(void)
{
	brk_outq_account a = { 0 };
	brk_outq *q = NULL;
	pl_rcbuf *b = pl_rcbuf_new(8);
	char got[16];
	int sv[2];

	pair(sv);
	memcpy(b->data, "abcdefgh", 8);
	ASSERT_OK(brk_outq_push(&q, &a, b, 2, 3));
	ASSERT_OK(brk_outq_push(&q, &a, b, 0, 2));
	ASSERT_OK(brk_outq_push(&q, &a, b, 7, 0)); /* empty: nothing queued */
	ASSERT_EQ(b->queued, 2);
	ASSERT_EQ(brk_outq_bytes(q), 5);
	pl_rcbuf_unref(b);
	ASSERT_EQ(brk_outq_write(&q, &a, sv[0]), 5);
	ASSERT_TRUE(q == NULL);
	ASSERT_EQ(a.bytes, 0);
	ASSERT_EQ(read(sv[1], got, sizeof(got)), 5);
	ASSERT_TRUE(memcmp(got, "cdeab", 5) == 0);
	close(sv[0]);
	close(sv[1]);
}

TEST_LIST{
	TEST_ENTRY(shared_frame_counted_once),
	TEST_ENTRY(partial_writes_in_order),
	TEST_ENTRY(pieces_of_one_block),
	TEST_ENTRY(frame_from_evbuffer_and_budget),
};

TEST_MAIN()
