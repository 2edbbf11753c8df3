/* SPDX-License-Identifier: Apache-2.0 */
/* A real HTTP server for the broker's HTTP client tests: libevent's evhttp
 * on 127.0.0.1 and a free port, on the test's loop. Included (not linked)
 * by each test file. */
#ifndef PARLEY_TESTS_HTTP_FIXTURE_H
#define PARLEY_TESTS_HTTP_FIXTURE_H

#include <arpa/inet.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* Serves every request with cb on base; *port gets the bound port. */
static struct evhttp *
http_serve(struct event_base *b, void (*cb)(struct evhttp_request *, void *),
    int *port)
{
	struct evhttp *h = evhttp_new(b);
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);

	ASSERT_TRUE(h != NULL);
	evhttp_set_allowed_methods(
	    h, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(h, cb, NULL);
	bs = evhttp_bind_socket_with_handle(h, "127.0.0.1", 0);
	ASSERT_TRUE(bs != NULL);
	ASSERT_OK(getsockname(
	    evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl));
	*port = ntohs(sa.sin_port);
	return h;
}

#endif
