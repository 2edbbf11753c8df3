/* SPDX-License-Identifier: Apache-2.0 */
/* The parts of a node without one (see parts_harness.h). */
#include "tests/unit/broker/parts_harness.h"

#include "broker/auth.h"
#include "common/log.h"
#include "tests/unit/broker/node_harness.h"
#include "tests/unit/test.h"

#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

ph_parts ph;
static struct event *flush_ev;
static const uint8_t secret[] = "parts-test-secret";
static const brk_key key = { secret, sizeof(secret) - 1, NULL };

static void
want_flush(void *arg)
{
	(void)arg;
	event_active(flush_ev, EV_TIMEOUT, 0);
}

static void
on_flush(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	brk_conn_flush_all(arg);
}

static const struct brk_key *
keys(void *arg, size_t *count)
{
	(void)arg;
	*count = 1;
	return &key;
}

static int
accepting(void *arg)
{
	(void)arg;
	return ph.accepting;
}

static int
draining(void *arg)
{
	(void)arg;
	return ph.draining;
}

static const char *
readyz(void *arg, int *status)
{
	(void)arg;
	*status = ph.accepting ? 200 : 503;
	return ph.accepting ? "ready\n" : "draining\n";
}

void
ph_start(int argc, char **argv)
{
	char err[256];
	brk_conn_env env;

	pl_log_level = PL_LOG_ERR;
	signal(SIGPIPE, SIG_IGN); /* as the node does: peers vanish */
	memset(&ph, 0, sizeof(ph));
	ph.accepting = 1;
	ASSERT_OK(brk_config_load(&ph.cfg, argc, argv, err, sizeof(err)));
	ASSERT_TRUE((ph.base = event_base_new()) != NULL);
	ASSERT_TRUE((flush_ev = event_new(
			 ph.base, -1, 0, on_flush, &ph.conns)) != NULL);
	ASSERT_OK(pl_metrics_create(&ph.metrics));
	ASSERT_OK(brk_router_create(
	    &ph.router, ph.metrics, (uint32_t)ph.cfg.max_channels));
	env = (brk_conn_env){ ph.base, &ph.cfg, &ph.stats, ph.router,
		want_flush, keys, accepting, draining, readyz, NULL };
	ASSERT_OK(brk_conn_list_init(&ph.conns, &env));
	nh_attach(ph.base, &ph.conns, &key);
}

void
ph_close_sockets(void)
{
	if (ph.sockets_closed) {
		return;
	}
	ph.sockets_closed = 1;
	brk_conn_close_all(&ph.conns, 1001, "bye");
	nh_pump();
	brk_conn_free_all(&ph.conns);
	brk_conn_list_fini(&ph.conns);
}

void
ph_stop(void)
{
	ph_close_sockets();
	brk_router_destroy(ph.router);
	pl_metrics_destroy(ph.metrics);
	event_free(flush_ev);
	event_base_free(ph.base);
	brk_config_fini(&ph.cfg);
}

int
ph_http(const char *request, char *body, size_t cap)
{
	int sv[2], status = 0;
	char head[2048];
	size_t len = 0, n = 0;

	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
	ASSERT_OK(brk_conn_accept(&ph.conns, sv[0], NULL, 0));
	ASSERT_EQ(
	    write(sv[1], request, strlen(request)), (ssize_t)strlen(request));
	nh_pump();
	while (len < 4 || memcmp(head + len - 4, "\r\n\r\n", 4) != 0) {
		ASSERT_OK(nh_read(sv[1], head + len, 1));
		ASSERT_TRUE(++len < sizeof(head));
	}
	head[len] = '\0';
	ASSERT_EQ(sscanf(head, "HTTP/1.1 %d", &status), 1);
	while (n + 1 < cap && nh_read(sv[1], body + n, 1) == 0) {
		n++;
	}
	body[n] = '\0';
	close(sv[1]);
	return status;
}
