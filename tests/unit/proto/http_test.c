/* SPDX-License-Identifier: Apache-2.0 */
/* The HTTP/1.1 upgrade request parser, the RFC 6455 opening handshake checks
 * and the responses written for them. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "../test.h"
#include "common/err.h"
#include "proto/http.h"
#include "proto/ws.h"

#define UPGRADE_REQ                                                            \
	"GET /socket/websocket?vsn=2.0.0&token=abc HTTP/1.1\r\n"               \
	"Host: server.example.com\r\n"                                         \
	"Upgrade: websocket\r\n"                                               \
	"Connection: Upgrade\r\n"                                              \
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"                      \
	"Origin: http://example.com\r\n"                                       \
	"Sec-WebSocket-Protocol: chat, superchat\r\n"                          \
	"Sec-WebSocket-Version: 13\r\n"                                        \
	"\r\n"

/* Parses `text` alone; returns pro_http_parse's result. */
static int
parse_str(const char *text, pro_http_req *req, int *status)
{
	struct evbuffer *in = evbuffer_new();
	int rc;

	evbuffer_add(in, text, strlen(text));
	rc = pro_http_parse(in, req, status);
	evbuffer_free(in);
	return rc;
}

/* The check_upgrade verdict for a request head, which must parse. */
static int
verdict(const char *text)
{
	pro_http_req req;
	int st, v;

	if (parse_str(text, &req, &st) != 1) {
		return -1;
	}
	v = pro_ws_check_upgrade(&req);
	pro_http_req_free(&req);
	return v;
}

static void
test_complete_request(void)
{
	struct evbuffer *in = evbuffer_new();
	pro_http_req req;
	int st = -1;

	evbuffer_add(in, UPGRADE_REQ "\x81\x80", strlen(UPGRADE_REQ) + 2);
	ASSERT_EQ(pro_http_parse(in, &req, &st), 1);
	ASSERT_EQ(st, 0);
	ASSERT_EQ(evbuffer_get_length(in), 2); /* the frame after it stays */
	ASSERT_STREQ(req.method, "GET");
	ASSERT_STREQ(req.target, "/socket/websocket?vsn=2.0.0&token=abc");
	ASSERT_STREQ(req.path, "/socket/websocket");
	ASSERT_STREQ(req.query, "vsn=2.0.0&token=abc");
	ASSERT_EQ(req.version_minor, 1);
	ASSERT_STREQ(req.host, "server.example.com");
	ASSERT_STREQ(req.upgrade, "websocket");
	ASSERT_STREQ(req.connection, "Upgrade");
	ASSERT_STREQ(req.ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
	ASSERT_STREQ(req.ws_version, "13");
	ASSERT_STREQ(req.origin, "http://example.com");
	ASSERT_STREQ(req.ws_protocol, "chat, superchat");
	ASSERT_TRUE(!req.has_body);
	ASSERT_EQ(pro_ws_check_upgrade(&req), 0);
	pro_http_req_free(&req);
	ASSERT_TRUE(req.method == NULL);
	pro_http_req_free(&req); /* twice is harmless */
	/* No query, no headers of interest. */
	ASSERT_EQ(parse_str("GET / HTTP/1.0\r\nX-A: b\r\n\r\n", &req, &st), 1);
	ASSERT_STREQ(req.path, "/");
	ASSERT_TRUE(req.query == NULL && req.host == NULL);
	ASSERT_EQ(req.version_minor, 0);
	pro_http_req_free(&req);
	/* Absolute-form target. */
	ASSERT_EQ(
	    parse_str("GET http://h:4000/s/w?x=1 HTTP/1.1\r\n\r\n", &req, &st),
	    1);
	ASSERT_STREQ(req.path, "/s/w");
	ASSERT_STREQ(req.query, "x=1");
	pro_http_req_free(&req);
	ASSERT_EQ(parse_str("GET HTTPS://h?y HTTP/1.1\r\n\r\n", &req, &st), 1);
	ASSERT_STREQ(req.path, "/");
	ASSERT_STREQ(req.query, "y");
	pro_http_req_free(&req);
	evbuffer_free(in);
}

static void
test_incomplete_request(void)
{
	const char *text = UPGRADE_REQ;
	size_t n = strlen(text), i;
	struct evbuffer *in = evbuffer_new();
	pro_http_req req;
	int st;

	/* One byte at a time: 0 until the last byte, `in` untouched. */
	for (i = 0; i < n; i++) {
		evbuffer_add(in, text + i, 1);
		if (i + 1 < n) {
			ASSERT_EQ(pro_http_parse(in, &req, &st), 0);
			ASSERT_EQ(evbuffer_get_length(in), i + 1);
		}
	}
	ASSERT_EQ(pro_http_parse(in, &req, &st), 1);
	ASSERT_EQ(evbuffer_get_length(in), 0);
	ASSERT_STREQ(req.ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
	pro_http_req_free(&req);
	ASSERT_EQ(pro_http_parse(in, &req, &st), 0); /* empty */
	evbuffer_free(in);
}

/* A bare LF can never end a line: refused as soon as it arrives, not when
 * the handshake deadline passes (issue 12). */
static void
test_bare_lf_refused_at_once(void)
{
	static const char *bad[] = { "GET /healthz HTTP/1.1\n",
		"GET /healthz HTTP/1.1\r\nHost: x\n", "\n",
		"GET /healthz HTTP/1.1\r\nHost: x\r\n\n" };
	pro_http_req req;
	int st;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ASSERT_EQ(parse_str(bad[i], &req, &st), -1);
		ASSERT_EQ(st, 400);
	}
	/* CRLF lines still wait for the rest. */
	ASSERT_EQ(
	    parse_str("GET /healthz HTTP/1.1\r\nHost: x\r\n", &req, &st), 0);
}

static void
test_malformed_requests(void)
{
	static const char *bad[] = {
		"GET /\r\n\r\n", /* no version */
		"GET / HTTP/1\r\n\r\n",
		"GET / HTTP/1.1x\r\n\r\n",
		"GET / http/1.1\r\n\r\n",
		"GET  / HTTP/1.1\r\n\r\n", /* two spaces */
		"GET / HTTP/1.1 \r\n\r\n",
		"G(T / HTTP/1.1\r\n\r\n",               /* bad method char */
		"\r\n\r\n",                             /* empty line */
		"GET /\x01 HTTP/1.1\r\n\r\n",           /* CTL in target */
		"GET / HTTP/1.1\r\nHost : x\r\n\r\n",   /* space before ':' */
		"GET / HTTP/1.1\r\nHost\r\n\r\n",       /* no colon */
		"GET / HTTP/1.1\r\n: x\r\n\r\n",        /* empty name */
		"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", /* obs-fold */
		"GET / HTTP/1.1\nHost: x\r\n\r\n",      /* bare LF */
		"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",    /* bare CR */
		"GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n",   /* DEL in value */
		"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
		"GET / HTTP/1.1\r\nSec-WebSocket-Key: a\r\n"
		"Sec-WebSocket-Key: b\r\n\r\n",
		"GET / HTTP/1.1\r\nSec-WebSocket-Version: 13\r\n"
		"Sec-WebSocket-Version: 8\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
	};
	pro_http_req req;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = 0;

		if (parse_str(bad[i], &req, &st) != -1 || st != 400) {
			TEST_FAIL_("case %zu not refused with 400: %d", i, st);
		}
		ASSERT_TRUE(req.method == NULL); /* nothing left to free */
	}
	/* A NUL byte inside the head. */
	{
		struct evbuffer *in = evbuffer_new();
		int st = 0;

		evbuffer_add(in, "GET / HTTP/1.1\r\nA: \0\r\n\r\n", 25);
		ASSERT_EQ(pro_http_parse(in, &req, &st), -1);
		ASSERT_EQ(st, 400);
		/* Not HTTP at all (a TLS ClientHello): refused at once. */
		evbuffer_drain(in, 25);
		evbuffer_add(in, "\x16\x03\x01\x02", 4);
		ASSERT_EQ(pro_http_parse(in, &req, &st), -1);
		ASSERT_EQ(st, 400);
		evbuffer_free(in);
	}
}

static void
test_bad_version_505(void)
{
	pro_http_req req;
	int st = 0;

	ASSERT_EQ(parse_str("GET / HTTP/2.0\r\n\r\n", &req, &st), -1);
	ASSERT_EQ(st, 505);
	ASSERT_EQ(parse_str("GET / HTTP/0.9\r\n\r\n", &req, &st), -1);
	ASSERT_EQ(st, 505);
}

static void
test_header_too_large_431(void)
{
	static char head[PRO_HTTP_MAX_HEADER + 64];
	const char *start = "GET / HTTP/1.1\r\nX-Pad: ";
	struct evbuffer *in = evbuffer_new();
	pro_http_req req;
	size_t len;
	int st = 0;

	/* Exactly the limit, final CRLFCRLF included: accepted. */
	memset(head, 'a', sizeof(head));
	memcpy(head, start, strlen(start));
	memcpy(head + PRO_HTTP_MAX_HEADER - 4, "\r\n\r\n", 4);
	evbuffer_add(in, head, PRO_HTTP_MAX_HEADER);
	ASSERT_EQ(pro_http_parse(in, &req, &st), 1);
	pro_http_req_free(&req);
	/* One byte more: 431. */
	memcpy(head + PRO_HTTP_MAX_HEADER - 4, "aaaa", 4);
	memcpy(head + PRO_HTTP_MAX_HEADER - 3, "\r\n\r\n", 4);
	evbuffer_add(in, head, PRO_HTTP_MAX_HEADER + 1);
	ASSERT_EQ(pro_http_parse(in, &req, &st), -1);
	ASSERT_EQ(st, 431);
	evbuffer_drain(in, evbuffer_get_length(in));
	/* No end in sight after 8 KiB: 431 without waiting for more. */
	len = PRO_HTTP_MAX_HEADER + 10;
	memset(head + strlen(start), 'a', len - strlen(start));
	evbuffer_add(in, head, len);
	ASSERT_EQ(pro_http_parse(in, &req, &st), -1);
	ASSERT_EQ(st, 431);
	evbuffer_free(in);
}

static void
test_case_insensitive_headers(void)
{
	pro_http_req req;
	int st;

	ASSERT_EQ(
	    parse_str("GET /x HTTP/1.1\r\nhOsT: h\r\nUPGRADE: WebSocket\r\n"
		      "CONNECTION: UPGRADE\r\nsec-websocket-key: "
		      "dGhlIHNhbXBsZSBub25jZQ==\r\n"
		      "SEC-WEBSOCKET-VERSION:13\r\norigin:   o  \r\n\r\n",
		&req, &st),
	    1);
	ASSERT_STREQ(req.host, "h");
	ASSERT_STREQ(req.ws_version, "13");
	ASSERT_STREQ(req.origin, "o"); /* surrounding whitespace trimmed */
	ASSERT_EQ(pro_ws_check_upgrade(&req), 0);
	pro_http_req_free(&req);
}

static void
test_connection_token_list(void)
{
	pro_http_req req;
	int st;

	ASSERT_EQ(
	    verdict("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		    "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: "
		    "13\r\n"
		    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
	    0);
	/* Repeated list headers are joined. */
	ASSERT_EQ(parse_str("GET / HTTP/1.1\r\nConnection: keep-alive\r\n"
			    "Connection: upgrade\r\nUpgrade: h2c\r\nUpgrade: "
			    "websocket\r\n\r\n",
		      &req, &st),
	    1);
	ASSERT_STREQ(req.connection, "keep-alive, upgrade");
	ASSERT_TRUE(pro_http_list_has(req.connection, "Upgrade"));
	ASSERT_TRUE(pro_http_list_has(req.upgrade, "websocket"));
	pro_http_req_free(&req);
	ASSERT_TRUE(pro_http_list_has(" a ,\tb,,c ", "b"));
	ASSERT_TRUE(pro_http_list_has("a,c", "c"));
	ASSERT_TRUE(
	    !pro_http_list_has("upgrade-insecure, keep-alive", "upgrade"));
	ASSERT_TRUE(!pro_http_list_has("", "upgrade"));
	ASSERT_TRUE(!pro_http_list_has(NULL, "upgrade"));
	/* Without the upgrade token the handshake is refused. */
	ASSERT_EQ(
	    verdict("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
		    "Connection: keep-alive\r\nSec-WebSocket-Version: 13\r\n"
		    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
	    400);
}

static void
test_upgrade_checks(void)
{
#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define V13 "Sec-WebSocket-Version: 13\r\n"
#define UPG "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	struct evbuffer *out = evbuffer_new();
	char *text;

	ASSERT_EQ(
	    verdict("POST / HTTP/1.1\r\nHost: h\r\n" UPG V13 KEY "\r\n"), 405);
	ASSERT_EQ(
	    verdict("get / HTTP/1.1\r\nHost: h\r\n" UPG V13 KEY "\r\n"), 405);
	ASSERT_EQ(
	    verdict("GET / HTTP/1.0\r\nHost: h\r\n" UPG V13 KEY "\r\n"), 400);
	ASSERT_EQ(verdict("GET / HTTP/1.1\r\n" UPG V13 KEY "\r\n"), 400);
	ASSERT_EQ(
	    verdict(
		"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n" V13 KEY
		"\r\n"),
	    400);
	ASSERT_EQ(verdict("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n"
			  "Connection: Upgrade\r\n" V13 KEY "\r\n"),
	    400);
	ASSERT_EQ(verdict("GET / HTTP/1.1\r\nHost: h\r\n" UPG KEY "\r\n"), 400);
	ASSERT_EQ(verdict("GET / HTTP/1.1\r\nHost: h\r\n" UPG V13 KEY
			  "Content-Length: 5\r\n\r\n"),
	    400);
	ASSERT_EQ(verdict("GET / HTTP/1.1\r\nHost: h\r\n" UPG V13 KEY
			  "Transfer-Encoding: chunked\r\n\r\n"),
	    400);
	ASSERT_EQ(verdict("GET / HTTP/1.1\r\nHost: h\r\n" UPG V13 KEY
			  "Content-Length: 0\r\n\r\n"),
	    0);
	/* Version 8 (an older draft): 426 with the version we speak. */
	ASSERT_EQ(verdict("GET / HTTP/1.1\r\nHost: h\r\n" UPG KEY
			  "Sec-WebSocket-Version: 8\r\n\r\n"),
	    426);
	ASSERT_OK(pro_ws_write_refusal(out, 426));
	evbuffer_add(out, "", 1);
	text = (char *)evbuffer_pullup(out, -1);
	ASSERT_TRUE(
	    strncmp(text, "HTTP/1.1 426 Upgrade Required\r\n", 31) == 0);
	ASSERT_TRUE(strstr(text, "\r\nSec-WebSocket-Version: 13\r\n") != NULL);
	ASSERT_TRUE(strstr(text, "\r\nConnection: close\r\n") != NULL);
	evbuffer_drain(out, evbuffer_get_length(out));
	ASSERT_OK(pro_ws_write_refusal(out, 405));
	evbuffer_add(out, "", 1);
	ASSERT_TRUE(
	    strstr((char *)evbuffer_pullup(out, -1), "\r\nAllow: GET\r\n"));
	evbuffer_free(out);
}

static void
test_key_validation(void)
{
	static const char *bad[] = {
		"",
		"dGhlIHNhbXBsZSBub25jZQ=",  /* 23 chars */
		"dGhlIHNhbXBsZSBub25jZQ",   /* no padding */
		"dGhlIHNhbXBsZSBub25jZQAA", /* 24 chars: 18 bytes */
		"dGhlIHNhbXBsZSBub25jZQA=", /* 17 bytes */
		"AAAAAAAAAAAAAAAAAAAA",     /* 15 bytes */
		"dGhlIHNhbXBsZSBub25jZ*==", /* not base64 */
		"dGhlIHNhbXBsZSBub25jZQ===",
		"dGhlIHNhbXBsZSBub2 5jZQ==",
	};
	char text[512];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
		    "GET / HTTP/1.1\r\nHost: h\r\n" UPG V13
		    "Sec-WebSocket-Key: %s\r\n\r\n",
		    bad[i]);
		if (verdict(text) != 400) {
			TEST_FAIL_("key \"%s\" accepted", bad[i]);
		}
	}
	ASSERT_EQ(verdict("GET / HTTP/1.1\r\nHost: h\r\n" UPG V13 "\r\n"), 400);
	ASSERT_EQ(
	    verdict("GET / HTTP/1.1\r\nHost: h\r\n" UPG V13
		    "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n"),
	    0);
}

static void
test_accept_key_rfc_example(void)
{
	struct evbuffer *out = evbuffer_new();
	pro_http_req req;
	char acc[29];
	int st;

	/* RFC 6455 section 1.3. */
	ASSERT_OK(pro_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", acc));
	ASSERT_STREQ(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
	ASSERT_EQ(parse_str(UPGRADE_REQ, &req, &st), 1);
	ASSERT_OK(pro_ws_write_accept(out, &req, "chat"));
	evbuffer_add(out, "", 1);
	ASSERT_STREQ((char *)evbuffer_pullup(out, -1),
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
	    "Sec-WebSocket-Protocol: chat\r\n\r\n");
	evbuffer_drain(out, evbuffer_get_length(out));
	ASSERT_OK(pro_ws_write_accept(out, &req, NULL));
	ASSERT_TRUE(
	    evbuffer_search(out, "Sec-WebSocket-Protocol", 22, NULL).pos < 0);
	ASSERT_EQ(pro_ws_write_accept(out, &req, "x\r\nEvil: 1"), PL_EINVAL);
	pro_http_req_free(&req);
	evbuffer_free(out);
}

static void
test_query_decoding(void)
{
	const char *q = "vsn=2.0.0&token=a%2Bb%20c+d&flag&to%6Ben=second"
			"&nul=a%00b&raw=%zz%4&empty=&dup=1&dup=2";
	char *v;

#define QEQ(name, want)                                                        \
	do {                                                                   \
		v = pro_http_query_get(q, name);                               \
		ASSERT_STREQ(v, want);                                         \
		free(v);                                                       \
	} while (0)
	QEQ("vsn", "2.0.0");
	QEQ("token", "a+b c d"); /* first occurrence wins */
	QEQ("flag", "");
	QEQ("raw", "%zz%4"); /* malformed escapes stay literal */
	QEQ("empty", "");
	QEQ("dup", "1");
	ASSERT_TRUE(pro_http_query_get(q, "nul") == NULL);
	ASSERT_TRUE(pro_http_query_get(q, "missing") == NULL);
	ASSERT_TRUE(pro_http_query_get(q, "to") == NULL);
	ASSERT_TRUE(pro_http_query_get(q, "") == NULL);
	ASSERT_TRUE(pro_http_query_get(NULL, "vsn") == NULL);
	ASSERT_TRUE(pro_http_query_get("", "vsn") == NULL);
	ASSERT_TRUE(pro_http_query_get("=x", "") == NULL);
	v = pro_http_query_get("x=%C3%A9t%c3%a9", "x");
	ASSERT_STREQ(v, "\xc3\xa9t\xc3\xa9");
	free(v);
	v = pro_http_query_get("a+b=1", "a b");
	ASSERT_STREQ(v, "1");
	free(v);
}

static void
test_write_response(void)
{
	struct evbuffer *out = evbuffer_new();

	ASSERT_OK(pro_http_write_response(
	    out, 403, "X-Why: token\r\n", "text/plain", "forbidden\n"));
	ASSERT_OK(pro_http_write_response(out, 204, NULL, NULL, NULL));
	evbuffer_add(out, "", 1);
	ASSERT_STREQ((char *)evbuffer_pullup(out, -1),
	    "HTTP/1.1 403 Forbidden\r\nX-Why: token\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 10\r\n"
	    "Connection: close\r\n\r\nforbidden\n"
	    "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n");
	ASSERT_STREQ(pro_http_reason(431), "Request Header Fields Too Large");
	ASSERT_STREQ(pro_http_reason(418), "Client Error");
	evbuffer_free(out);
}

TEST_LIST{
	TEST_ENTRY(test_complete_request),
	TEST_ENTRY(test_incomplete_request),
	TEST_ENTRY(test_malformed_requests),
	TEST_ENTRY(test_bare_lf_refused_at_once),
	TEST_ENTRY(test_bad_version_505),
	TEST_ENTRY(test_header_too_large_431),
	TEST_ENTRY(test_case_insensitive_headers),
	TEST_ENTRY(test_connection_token_list),
	TEST_ENTRY(test_upgrade_checks),
	TEST_ENTRY(test_key_validation),
	TEST_ENTRY(test_accept_key_rfc_example),
	TEST_ENTRY(test_query_decoding),
	TEST_ENTRY(test_write_response),
};

TEST_MAIN()
