/* SPDX-License-Identifier: Apache-2.0 */
/* broker/fetch against a real HTTP server (libevent's evhttp) on the same
 * loop: methods, headers and bodies arrive as sent; answers, statuses and
 * Retry-After come back; a server that never answers times out; a closed
 * port fails without an answer; a cancelled request never calls back;
 * answers are cut at max_answer; many requests at once all complete; a
 * name is resolved without blocking. */
#include "broker/fetch.h"
#include "common/err.h"
#include "tests/unit/test.h"

#include "tests/unit/broker/http_fixture.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static struct event_base *base;
static struct evhttp *http;
static int port;
static brk_fetch *f;
static struct evhttp_request *held; /* a request left unanswered */
static char seen_method[16], seen_body[256], seen_hdr[128];

typedef struct result {
	int calls;
	int err;
	long status;
	char body[70000];
	size_t body_len;
	long retry_after;
} result;

static void
serve(struct evhttp_request *req, void *arg)
{
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct evbuffer *out = evbuffer_new();
	const char *h;
	size_t n = evbuffer_get_length(in);

	(void)arg;
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET:
		snprintf(seen_method, sizeof(seen_method), "GET");
		break;
	case EVHTTP_REQ_PATCH:
		snprintf(seen_method, sizeof(seen_method), "PATCH");
		break;
	case EVHTTP_REQ_POST:
		snprintf(seen_method, sizeof(seen_method), "POST");
		break;
	default: snprintf(seen_method, sizeof(seen_method), "other"); break;
	}
	n = n < sizeof(seen_body) - 1 ? n : sizeof(seen_body) - 1;
	evbuffer_copyout(in, seen_body, n);
	seen_body[n] = '\0';
	h = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Test");
	snprintf(seen_hdr, sizeof(seen_hdr), "%s", h ? h : "");
	if (strcmp(uri, "/hang") == 0) {
		held = req;
		evbuffer_free(out);
		return;
	}
	if (strcmp(uri, "/busy") == 0) {
		evhttp_add_header(
		    evhttp_request_get_output_headers(req), "Retry-After", "7");
		evbuffer_add_printf(out, "{\"error\":\"busy\"}");
		evhttp_send_reply(req, 503, "Busy", out);
	} else if (strcmp(uri, "/big") == 0) {
		for (int i = 0; i < 10000; i++) {
			evbuffer_add(out, "0123456789", 10);
		}
		evhttp_send_reply(req, 200, "OK", out);
	} else {
		evbuffer_add_printf(out, "echo %s %s", seen_method, seen_body);
		evhttp_send_reply(
		    req, strcmp(uri, "/missing") == 0 ? 404 : 200, "OK", out);
	}
	evbuffer_free(out);
}

static void
setup(void)
{
	brk_fetch_opts o = { 0 };
	char err[256];

	base = event_base_new();
	http = http_serve(base, serve, &port);
	o.base = base;
	ASSERT_OK(brk_fetch_create(&f, &o, err, sizeof(err)));
	held = NULL;
}

static void
teardown(void)
{
	brk_fetch_destroy(f);
	f = NULL;
	evhttp_free(http);
	event_base_free(base);
}

static void
on_result(void *arg, const brk_fetch_resp *r)
{
	result *x = arg;

	x->calls++;
	x->err = r->err;
	x->status = r->status;
	x->body_len = r->body_len < sizeof(x->body) - 1 ? r->body_len
							: sizeof(x->body) - 1;
	memcpy(x->body, r->body, x->body_len);
	x->body[x->body_len] = '\0';
	x->retry_after = r->retry_after_s;
	ASSERT_EQ(r->body[r->body_len], '\0');
}

/* Runs the loop until done() or ms pass. */
static void
run(result *x, int want_calls, int ms)
{
	struct timeval tv = { 0, 10000 };
	int waited = 0;

	while (x->calls < want_calls && waited < ms) {
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
		waited += 10;
	}
}

static void
start(result *x, const char *method, const char *path, const char *body,
    long timeout_ms, size_t max_answer)
{
	char url[128];
	const char *hdrs[] = { "X-Test: yes", "Content-Type: application/json",
		NULL };
	brk_fetch_req req = { 0 };

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	req.method = method;
	req.url = url;
	req.headers = hdrs;
	req.body = body;
	req.body_len = body ? strlen(body) : 0;
	req.timeout_ms = timeout_ms;
	req.max_answer = max_answer;
	ASSERT_OK(brk_fetch_start(f, &req, on_result, x, NULL));
}

static void
requests_and_answers(void)
{
	static result x;

	setup();
	memset(&x, 0, sizeof(x));
	start(&x, "PATCH", "/comments.json?print=silent", "{\"a/b\":1}", 0, 0);
	run(&x, 1, 5000);
	ASSERT_EQ(x.calls, 1);
	ASSERT_EQ(x.err, PL_OK);
	ASSERT_EQ(x.status, 200);
	ASSERT_STREQ(seen_method, "PATCH");
	ASSERT_STREQ(seen_body, "{\"a/b\":1}");
	ASSERT_STREQ(seen_hdr, "yes");
	ASSERT_STREQ(x.body, "echo PATCH {\"a/b\":1}");
	ASSERT_EQ(x.retry_after, -1);
	memset(&x, 0, sizeof(x));
	start(&x, "GET", "/missing", NULL, 0, 0);
	run(&x, 1, 5000);
	ASSERT_EQ(x.status, 404);
	ASSERT_STREQ(seen_method, "GET");
	memset(&x, 0, sizeof(x));
	start(&x, "POST", "/busy", "x", 0, 0);
	run(&x, 1, 5000);
	ASSERT_EQ(x.err, PL_OK);
	ASSERT_EQ(x.status, 503);
	ASSERT_EQ(x.retry_after, 7);
	ASSERT_STREQ(x.body, "{\"error\":\"busy\"}");
	ASSERT_EQ(brk_fetch_active(f), 0);
	teardown();
}

static void
answers_are_cut_at_max(void)
{
	static result x;

	setup();
	memset(&x, 0, sizeof(x));
	start(&x, "GET", "/big", NULL, 0, 1000);
	run(&x, 1, 5000);
	ASSERT_EQ(x.err, PL_OK);
	ASSERT_EQ(x.status, 200);
	ASSERT_EQ(x.body_len, 1000);
	teardown();
}

static void
a_silent_server_times_out(void)
{
	static result x;

	setup();
	memset(&x, 0, sizeof(x));
	start(&x, "PATCH", "/hang", "{}", 300, 0);
	run(&x, 1, 5000);
	ASSERT_EQ(x.calls, 1);
	ASSERT_EQ(x.err, PL_EAGAIN);
	ASSERT_EQ(x.status, 0);
	ASSERT_TRUE(held != NULL);
	teardown();
}

static void
a_closed_port_fails_without_an_answer(void)
{
	static result x;
	brk_fetch_req req = { 0 };
	char url[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);

	setup();
	/* A port that was free a moment ago and has no listener. */
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	getsockname(fd, (struct sockaddr *)&sa, &sl);
	close(fd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", ntohs(sa.sin_port));
	req.method = "GET";
	req.url = url;
	memset(&x, 0, sizeof(x));
	ASSERT_OK(brk_fetch_start(f, &req, on_result, &x, NULL));
	run(&x, 1, 5000);
	ASSERT_EQ(x.calls, 1);
	ASSERT_EQ(x.err, PL_EIO);
	ASSERT_EQ(x.status, 0);
	teardown();
}

static void
a_cancelled_request_never_calls_back(void)
{
	static result x, y;
	brk_fetch_req req = { 0 };
	brk_fetch_job *job;
	char url[64];

	setup();
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hang", port);
	req.method = "GET";
	req.url = url;
	memset(&x, 0, sizeof(x));
	ASSERT_OK(brk_fetch_start(f, &req, on_result, &x, &job));
	while (held == NULL) {
		event_base_loop(base, EVLOOP_ONCE);
	}
	brk_fetch_cancel(job);
	ASSERT_EQ(brk_fetch_active(f), 0);
	memset(&y, 0, sizeof(y));
	start(&y, "GET", "/after", NULL, 0, 0);
	run(&y, 1, 5000);
	ASSERT_EQ(y.status, 200);
	ASSERT_EQ(x.calls, 0);
	teardown();
}

static void
many_at_once(void)
{
	static result x[50];
	int done;

	setup();
	memset(x, 0, sizeof(x));
	for (int i = 0; i < 50; i++) {
		start(&x[i], "PATCH", "/many", "{}", 0, 0);
	}
	ASSERT_EQ(brk_fetch_active(f), 50);
	for (int k = 0; k < 1000; k++) {
		done = 0;
		for (int i = 0; i < 50; i++) {
			done += x[i].calls;
		}
		if (done == 50) {
			break;
		}
		event_base_loop(base, EVLOOP_ONCE);
	}
	for (int i = 0; i < 50; i++) {
		ASSERT_EQ(x[i].calls, 1);
		ASSERT_EQ(x[i].status, 200);
	}
	ASSERT_EQ(brk_fetch_active(f), 0);
	teardown();
}

static void
names_resolve_off_the_loop(void)
{
	static result x;
	brk_fetch_req req = { 0 };
	char url[64];

	setup();
	snprintf(url, sizeof(url), "http://localhost:%d/named", port);
	req.method = "GET";
	req.url = url;
	memset(&x, 0, sizeof(x));
	ASSERT_OK(brk_fetch_start(f, &req, on_result, &x, NULL));
	run(&x, 1, 5000);
	/* localhost may resolve to ::1 first, where nothing listens; curl
	 * then tries 127.0.0.1. */
	ASSERT_EQ(x.status, 200);
	teardown();
}

TEST_LIST{
	TEST_ENTRY(requests_and_answers),
	TEST_ENTRY(answers_are_cut_at_max),
	TEST_ENTRY(a_silent_server_times_out),
	TEST_ENTRY(a_closed_port_fails_without_an_answer),
	TEST_ENTRY(a_cancelled_request_never_calls_back),
	TEST_ENTRY(many_at_once),
	TEST_ENTRY(names_resolve_off_the_loop),
};
TEST_MAIN()
