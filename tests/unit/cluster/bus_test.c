/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for cluster/bus over real NNG TCP sockets on 127.0.0.1: delivery
 * both ways, the eventfd wake-up, dialer reconciliation, pipe ownership,
 * size limits, garbage on the port, and which dialers hold a connection. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster/bus.h"
#include "common/err.h"
#include "tests/unit/test.h"

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static clu_bus *
open_bus(size_t recv_max)
{
	clu_bus_opts o = { "tcp://127.0.0.1:0", recv_max, 50, 200, 1024, 200 };
	clu_bus *b = NULL;

	ASSERT_OK(clu_bus_create(&b, &o));
	ASSERT_TRUE(clu_bus_port(b) > 0);
	return b;
}

static void
url_of(const clu_bus *b, char *out, size_t n)
{
	snprintf(out, n, "tcp://127.0.0.1:%d", clu_bus_port(b));
}

/* Waits on the bus fd for a message (the way the broker's loop would). */
static clu_bus_msg *
wait_msg(clu_bus *b, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		struct pollfd p = { clu_bus_fd(b), POLLIN, 0 };
		clu_bus_msg *m;
		uint64_t t = now_ms();

		clu_bus_clear_fd(b);
		if ((m = clu_bus_recv(b)) != NULL) {
			return m;
		}
		if (t >= end) {
			return NULL;
		}
		poll(&p, 1, (int)(end - t));
	}
}

/* Sends until the peer gets one (the dialer connects in the background). */
static clu_bus_msg *
send_until(clu_bus *from, clu_bus *to, const char *text)
{
	for (int i = 0; i < 100; i++) {
		clu_bus_msg *m;

		ASSERT_OK(clu_bus_send(from, text, strlen(text)));
		if ((m = wait_msg(to, 50)) != NULL) {
			return m;
		}
	}
	return NULL;
}

static void
drain(clu_bus *b)
{
	clu_bus_msg *m;

	while ((m = wait_msg(b, 100)) != NULL) {
		clu_bus_msg_free(m);
	}
}

static void
both_ways(void)
{
	clu_bus *a = open_bus(1 << 20), *b = open_bus(1 << 20);
	char url[64];
	clu_bus_msg *m;

	url_of(b, url, sizeof(url));
	ASSERT_OK(clu_bus_dial(a, url));
	ASSERT_TRUE(clu_bus_dialing(a, url));
	ASSERT_EQ(clu_bus_dialer_count(a), 1);
	m = send_until(a, b, "hello");
	ASSERT_TRUE(m != NULL);
	ASSERT_EQ(clu_bus_msg_len(m), 5);
	ASSERT_MEMEQ(clu_bus_msg_data(m), "hello", 5);
	ASSERT_NE(clu_bus_msg_pipe(m), 0);
	/* b accepted this pipe: it is not one of b's dialers. */
	ASSERT_TRUE(clu_bus_pipe_dial_url(b, clu_bus_msg_pipe(m)) == NULL);
	clu_bus_msg_free(m);
	drain(b);

	m = send_until(b, a, "back");
	ASSERT_TRUE(m != NULL);
	ASSERT_MEMEQ(clu_bus_msg_data(m), "back", 4);
	/* a's dialer made the pipe b answered on. */
	ASSERT_STREQ(clu_bus_pipe_dial_url(a, clu_bus_msg_pipe(m)), url);
	clu_bus_msg_free(m);

	/* Order is kept on one connection. A burst may lose messages (NNG
	 * 1.5's bus0 queues 16 per connection and drops the rest, which is
	 * why the cluster batches envelopes into frames), but never reorders. */
	drain(a);
	for (int i = 0; i < 200; i++) {
		char t[16];
		snprintf(t, sizeof(t), "%d", i);
		ASSERT_OK(clu_bus_send(a, t, strlen(t)));
	}
	{
		int got = 0, last = -1;
		while ((m = wait_msg(b, 300)) != NULL) {
			char t[16];
			int v;
			snprintf(t, sizeof(t), "%.*s", (int)clu_bus_msg_len(m),
			    (const char *)clu_bus_msg_data(m));
			v = atoi(t);
			ASSERT_TRUE(v > last);
			last = v;
			got++;
			clu_bus_msg_free(m);
		}
		fprintf(stderr, "  burst of 200: %d arrived in order\n", got);
		ASSERT_TRUE(got >= 16);
	}
	ASSERT_EQ(clu_bus_queue_dropped(b), 0);
	clu_bus_destroy(a);
	clu_bus_destroy(b);
}

static void
reconcile(void)
{
	clu_bus *a = open_bus(1 << 20), *b = open_bus(1 << 20);
	char url[64];
	clu_bus_msg *m;

	url_of(b, url, sizeof(url));
	clu_bus_dial_begin(a);
	ASSERT_OK(clu_bus_dial(a, url));
	ASSERT_OK(clu_bus_dial(a, url)); /* one dialer per URL */
	ASSERT_OK(clu_bus_dial(a, "tcp://127.0.0.1:1"));
	ASSERT_EQ(clu_bus_dial(a, "bogus://x"), PL_EINVAL);
	ASSERT_EQ(clu_bus_dial(a, "bogus://x"), PL_EINVAL); /* remembered */
	clu_bus_dial_end(a);
	ASSERT_EQ(clu_bus_dialer_count(a), 2);
	ASSERT_TRUE(!clu_bus_dialing(a, "bogus://x"));
	m = send_until(a, b, "x");
	ASSERT_TRUE(m != NULL);
	clu_bus_msg_free(m);

	/* Dropping the URL from the wanted set retires its dialer (bus.c
	 * says why it is not closed at once): no longer dialing, while the
	 * connection its peer keeps up stays. */
	clu_bus_dial_begin(a);
	ASSERT_OK(clu_bus_dial(a, "tcp://127.0.0.1:1"));
	clu_bus_dial_end(a);
	ASSERT_EQ(clu_bus_dialer_count(a), 1);
	ASSERT_EQ(clu_bus_retired_count(a), 1);
	ASSERT_TRUE(!clu_bus_dialing(a, url));
	drain(b);
	m = send_until(a, b, "still up");
	ASSERT_TRUE(m != NULL);
	clu_bus_msg_free(m);
	/* An unwanted dialer that never connected is retired too (it may be
	 * in the middle of a handshake); wanting its URL again brings a new
	 * dialer, since the retired one may not redial for an hour. */
	clu_bus_dial_begin(a);
	clu_bus_dial_end(a);
	ASSERT_EQ(clu_bus_dialer_count(a), 0);
	ASSERT_EQ(clu_bus_retired_count(a), 2);
	ASSERT_OK(clu_bus_dial(a, "tcp://127.0.0.1:1"));
	ASSERT_EQ(clu_bus_dialer_count(a), 1);
	ASSERT_TRUE(clu_bus_dialing(a, "tcp://127.0.0.1:1"));

	/* Once its peer is gone, the retired dialer is closed after
	 * retire_ms (200 here); the peer coming back is not dialled. */
	clu_bus_destroy(b);
	{
		uint64_t end = now_ms() + 3000;
		clu_bus_opts o = { NULL, 1 << 20, 50, 200, 1024, 200 };

		while (clu_bus_retired_count(a) > 0 && now_ms() < end) {
			usleep(20 * 1000);
			clu_bus_dial_sweep(a);
		}
		ASSERT_EQ(clu_bus_retired_count(a), 0);
		o.listen_url = url;
		ASSERT_OK(clu_bus_create(&b, &o));
	}
	usleep(300 * 1000);
	ASSERT_OK(clu_bus_send(a, "y", 1));
	ASSERT_TRUE(wait_msg(b, 300) == NULL);
	clu_bus_destroy(a);
	clu_bus_destroy(b);
}

/* A closed pipe is redialled by its dialer. */
static void
pipe_close_redials(void)
{
	clu_bus *a = open_bus(1 << 20), *b = open_bus(1 << 20);
	char url[64];
	clu_bus_msg *m;
	uint32_t first;

	url_of(b, url, sizeof(url));
	ASSERT_OK(clu_bus_dial(a, url));
	m = send_until(a, b, "one");
	ASSERT_TRUE(m != NULL);
	first = clu_bus_msg_pipe(m);
	clu_bus_msg_free(m);
	clu_bus_pipe_close(b, first);
	usleep(50 * 1000);
	drain(b);
	m = send_until(a, b, "two");
	ASSERT_TRUE(m != NULL);
	ASSERT_NE(clu_bus_msg_pipe(m), first);
	clu_bus_msg_free(m);
	clu_bus_destroy(a);
	clu_bus_destroy(b);
}

/* Oversized messages and raw garbage never reach the queue, and the bus
 * keeps working afterwards. */
static void
limits_and_garbage(void)
{
	clu_bus *a = open_bus(1 << 20), *b = open_bus(4096);
	static const char junk[] =
	    "GET / HTTP/1.1\r\nHost: x\r\n\r\n\x00\xff\x01";
	struct sockaddr_in sa;
	char url[64], *big;
	clu_bus_msg *m;
	int fd;

	url_of(b, url, sizeof(url));
	ASSERT_OK(clu_bus_dial(a, url));
	m = send_until(a, b, "ok");
	ASSERT_TRUE(m != NULL);
	clu_bus_msg_free(m);
	drain(b);
	big = calloc(1, 8192);
	ASSERT_OK(clu_bus_send(a, big, 8192));
	free(big);
	ASSERT_TRUE(wait_msg(b, 300) == NULL);

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)clu_bus_port(b));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT_TRUE(fd >= 0);
	ASSERT_OK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)));
	ASSERT_EQ(write(fd, junk, sizeof(junk)), (long)sizeof(junk));
	usleep(100 * 1000);
	close(fd);

	/* The dialer reconnects after the oversize drop; traffic flows. */
	m = send_until(a, b, "still");
	ASSERT_TRUE(m != NULL);
	ASSERT_MEMEQ(clu_bus_msg_data(m), "still", 5);
	clu_bus_msg_free(m);
	clu_bus_destroy(a);
	clu_bus_destroy(b);
}

static void
listen_conflict(void)
{
	clu_bus *a = open_bus(1 << 20), *b = NULL;
	clu_bus_opts o = { NULL, 1 << 20, 50, 200, 16, 0 };
	char url[64];

	url_of(a, url, sizeof(url));
	o.listen_url = url;
	ASSERT_EQ(clu_bus_create(&b, &o), PL_EIO);
	o.listen_url = "nonsense";
	ASSERT_EQ(clu_bus_create(&b, &o), PL_EINVAL);
	ASSERT_TRUE(b == NULL);
	clu_bus_destroy(a);
	clu_bus_destroy(NULL);
}

/* Waits (on the fd, like the loop) until connected(a, url) == want. */
static bool
wait_connected(clu_bus *a, const char *url, bool want, int timeout_ms)
{
	uint64_t end = now_ms() + (uint64_t)timeout_ms;

	while (clu_bus_connected(a, url) != want) {
		struct pollfd p = { clu_bus_fd(a), POLLIN, 0 };
		uint64_t t = now_ms();

		if (t >= end) {
			return false;
		}
		poll(&p, 1, (int)(end - t));
		clu_bus_clear_fd(a);
	}
	return true;
}

/* The bus tells a dialer that holds a connection from one still trying,
 * and wakes the loop when that changes; connections the peer made to us do
 * not count as ours. Dialers still open at destroy are closed with it. */
static void
connection_tracking(void)
{
	clu_bus *a = open_bus(1 << 20), *b = open_bus(1 << 20);
	char url_b[64], url_a[64];
	clu_bus_msg *m;

	url_of(b, url_b, sizeof(url_b));
	url_of(a, url_a, sizeof(url_a));
	ASSERT_TRUE(!clu_bus_take_pipe_change(a));
	ASSERT_OK(clu_bus_dial(a, "tcp://127.0.0.1:1")); /* nobody there */
	ASSERT_OK(clu_bus_dial(a, url_b));
	ASSERT_TRUE(wait_connected(a, url_b, true, 3000));
	ASSERT_TRUE(clu_bus_take_pipe_change(a));
	ASSERT_TRUE(!clu_bus_take_pipe_change(a));
	ASSERT_TRUE(!clu_bus_connected(a, "tcp://127.0.0.1:1"));
	ASSERT_TRUE(!clu_bus_connected(a, "tcp://127.0.0.1:2")); /* no dialer */
	m = send_until(b, a, "hi");
	ASSERT_TRUE(m != NULL);
	clu_bus_msg_free(m);
	/* b has a's connection but no dialer of its own. */
	ASSERT_TRUE(!clu_bus_connected(b, url_a));

	/* The peer going away is noticed; its coming back too. */
	{
		clu_bus_opts o = { NULL, 1 << 20, 50, 200, 1024, 200 };

		clu_bus_destroy(b);
		ASSERT_TRUE(wait_connected(a, url_b, false, 3000));
		ASSERT_TRUE(clu_bus_take_pipe_change(a));
		o.listen_url = url_b;
		ASSERT_OK(clu_bus_create(&b, &o));
	}
	ASSERT_TRUE(wait_connected(a, url_b, true, 5000));

	/* Dropped by reconciliation: retired, so not ours to count any
	 * more; wanted again while still connected, it is revived as it is. */
	clu_bus_dial_begin(a);
	clu_bus_dial_end(a);
	ASSERT_TRUE(!clu_bus_connected(a, url_b));
	ASSERT_EQ(clu_bus_dialer_count(a), 0);
	ASSERT_EQ(clu_bus_retired_count(a), 2);
	ASSERT_OK(clu_bus_dial(a, url_b));
	ASSERT_TRUE(clu_bus_connected(a, url_b));
	ASSERT_EQ(clu_bus_retired_count(a), 1);
	/* Open and retired dialers (connected or retrying) go with destroy;
	 * LeakSanitizer checks that nothing of them stays behind. */
	clu_bus_destroy(a);
	clu_bus_destroy(b);
}

TEST_LIST{
	TEST_ENTRY(both_ways),
	TEST_ENTRY(reconcile),
	TEST_ENTRY(pipe_close_redials),
	TEST_ENTRY(limits_and_garbage),
	TEST_ENTRY(listen_conflict),
	TEST_ENTRY(connection_tracking),
};

TEST_MAIN()
