/* SPDX-License-Identifier: Apache-2.0 */
/* The client side of the broker test harness (see node_harness.h): real
 * WebSocket clients over socketpairs handed to a conn list as accepted
 * sockets, with the loop pumped while they wait. Needs no node, so a test
 * of sockets and a router alone links it without broker/node.c. */
#include "tests/unit/broker/node_harness.h"

#include "broker/auth.h"
#include "broker/conn.h"
#include "tests/unit/test.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* What the client side drives: the node's, or parts a test built. */
static struct event_base *base_of;
static brk_conn_list *conns_of;
static const brk_key *key_of;

void
nh_attach(struct event_base *base, brk_conn_list *conns, const brk_key *key)
{
	base_of = base;
	conns_of = conns;
	key_of = key;
}

void
nh_pump(void)
{
	int i;

	for (i = 0; i < 5; i++) {
		event_base_loop(base_of, EVLOOP_NONBLOCK);
	}
}

/* Reads exactly n bytes, pumping the loop while waiting (2 s at most). */
int
nh_read(int fd, void *buf, size_t n)
{
	size_t got = 0;
	int spins = 0;

	while (got < n && spins < 2000) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0) {
			return -1;
		}
		nh_pump();
		if (errno == EAGAIN) {
			struct timespec ts = { 0, 1000000 };
			nanosleep(&ts, NULL);
			spins++;
		}
	}
	return got == n ? 0 : -1;
}

int
nh_client(const char *user, const char *vsn)
{
	int sv[2];
	char req[1024], resp[4096];
	size_t len = 0;
	char *tok = brk_auth_mint_key(key_of, user, (int64_t)time(NULL) + 60);

	/* Non-blocking, as the node's listener accepts its sockets. */
	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
	ASSERT_OK(brk_conn_accept(conns_of, sv[0], NULL, 0));
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	snprintf(req, sizeof(req),
	    "GET /socket/websocket?vsn=%s&token=%s "
	    "HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: "
	    "Upgrade\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	    "Sec-WebSocket-Version: 13\r\n\r\n",
	    vsn, tok);
	free(tok);
	ASSERT_EQ(write(sv[1], req, strlen(req)), (ssize_t)strlen(req));
	while (len < 4 || memcmp(resp + len - 4, "\r\n\r\n", 4) != 0) {
		ASSERT_OK(nh_read(sv[1], resp + len, 1));
		len++;
		ASSERT_TRUE(len < sizeof(resp));
	}
	ASSERT_TRUE(strncmp(resp, "HTTP/1.1 101", 12) == 0);
	return sv[1];
}

void
nh_send(int fd, const char *s)
{
	size_t n = strlen(s), i, h = 0;
	unsigned char *f = malloc(n + 14);
	const unsigned char mask[4] = { 1, 2, 3, 4 };

	f[h++] = 0x81;
	if (n < 126) {
		f[h++] = 0x80 | (unsigned char)n;
	} else {
		f[h++] = 0x80 | 126;
		f[h++] = (unsigned char)(n >> 8);
		f[h++] = (unsigned char)n;
	}
	memcpy(f + h, mask, 4);
	h += 4;
	for (i = 0; i < n; i++) {
		f[h + i] = (unsigned char)s[i] ^ mask[i % 4];
	}
	ASSERT_EQ(write(fd, f, h + n), (ssize_t)(h + n));
	free(f);
	nh_pump();
}

/* Next text message as JSON (caller decrefs), NULL if none within 2 s. */
json_t *
nh_recv(int fd)
{
	unsigned char hdr[2], ext[8];
	size_t len;
	char *buf;
	json_t *v;

	if (nh_read(fd, hdr, 2) != 0) {
		return NULL;
	}
	len = hdr[1] & 0x7f;
	if (len == 126) {
		ASSERT_OK(nh_read(fd, ext, 2));
		len = ((size_t)ext[0] << 8) | ext[1];
	} else if (len == 127) {
		ASSERT_OK(nh_read(fd, ext, 8));
		len = ((size_t)ext[6] << 8) | ext[7];
	}
	buf = malloc(len + 1);
	ASSERT_OK(nh_read(fd, buf, len));
	buf[len] = '\0';
	v = json_loads(buf, 0, NULL);
	free(buf);
	return v;
}

int nh_skip_presence;

static int
is_presence(const char *ev)
{
	return strcmp(ev, "presence_diff") == 0 ||
	    strcmp(ev, "presence_state") == 0;
}

/* Asserts the next message's event (and status for replies); returns it. */
json_t *
nh_expect(int fd, const char *topic, const char *event, const char *status)
{
	json_t *m = nh_recv(fd);

	/* Presence arrives on its own tick: a test that does not look for it
	 * may pass it by. */
	while (nh_skip_presence && json_is_array(m) &&
	    strcmp(json_string_value(json_array_get(m, 3)), event) != 0 &&
	    is_presence(json_string_value(json_array_get(m, 3)))) {
		json_decref(m);
		m = nh_recv(fd);
	}
	ASSERT_TRUE(json_is_array(m));
	ASSERT_STREQ(json_string_value(json_array_get(m, 2)), topic);
	ASSERT_STREQ(json_string_value(json_array_get(m, 3)), event);
	if (status) {
		ASSERT_STREQ(json_string_value(json_object_get(
				 json_array_get(m, 4), "status")),
		    status);
	}
	return m;
}

const char *
nh_reason(json_t *m)
{
	return json_string_value(json_object_get(
	    json_object_get(json_array_get(m, 4), "response"), "reason"));
}
