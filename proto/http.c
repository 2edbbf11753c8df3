/* SPDX-License-Identifier: Apache-2.0 */
/* HTTP/1.1 request heads parsed in place on libevent evbuffers, with the
 * strict line rules a listener facing the internet needs, and the plain
 * responses written back before a close. */
#include "common/sbuf.h"
#include "proto/http.h"

#include <stddef.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "common/err.h"

/* ---- Small string helpers ---- */

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* a[0..an) equals the string b, ASCII case-insensitively. */
static bool
ieq(const char *a, size_t an, const char *b)
{
	size_t i;

	for (i = 0; i < an; i++) {
		if (b[i] == '\0' ||
		    lower((unsigned char)a[i]) != lower((unsigned char)b[i])) {
			return false;
		}
	}
	return b[i] == '\0';
}

static bool
is_tchar(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') ||
	    (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

/* ---- HTTP request parsing ---- */

/* The headers kept; the others are skipped. */
static const struct {
	const char *name;
	size_t off;
	bool list;
} known[] = {
	{ "host", offsetof(pro_http_req, host), false },
	{ "upgrade", offsetof(pro_http_req, upgrade), true },
	{ "connection", offsetof(pro_http_req, connection), true },
	{ "sec-websocket-key", offsetof(pro_http_req, ws_key), false },
	{ "sec-websocket-version", offsetof(pro_http_req, ws_version), false },
	{ "origin", offsetof(pro_http_req, origin), false },
	{ "sec-websocket-protocol", offsetof(pro_http_req, ws_protocol), true },
	{ "authorization", offsetof(pro_http_req, authorization), false },
	{ "content-type", offsetof(pro_http_req, content_type), false },
};

static int
store_header(char **slot, bool list, const char *v, size_t vn)
{
	size_t old;
	char *s;

	if (*slot == NULL) {
		*slot = pl_memdup_z(v, vn);
		return *slot != NULL ? 0 : 400;
	}
	if (!list) {
		return 400; /* a single-valued header sent twice is ambiguous */
	}
	old = strlen(*slot);
	s = realloc(*slot, old + 2 + vn + 1);
	if (s == NULL) {
		return 400;
	}
	memcpy(s + old, ", ", 2);
	memcpy(s + old + 2, v, vn);
	s[old + 2 + vn] = '\0';
	*slot = s;
	return 0;
}

static int
parse_request_line(const char *p, size_t n, pro_http_req *req)
{
	const char *t, *q;
	size_t i = 0, tb, pn;

	while (i < n && is_tchar((unsigned char)p[i])) {
		i++;
	}
	if (i == 0 || i == n || p[i] != ' ') {
		return 400;
	}
	req->method = pl_memdup_z(p, i);
	tb = ++i;
	while (i < n && p[i] > 0x20 && p[i] < 0x7f) {
		i++;
	}
	if (i == tb || i == n || p[i] != ' ') {
		return 400;
	}
	req->target = pl_memdup_z(p + tb, i - tb);
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 || p[i + 5] < '0' ||
	    p[i + 5] > '9' || p[i + 6] != '.' || p[i + 7] < '0' ||
	    p[i + 7] > '9') {
		return 400;
	}
	if (p[i + 5] != '1') {
		return 505;
	}
	req->version_minor = p[i + 7] - '0';
	if (req->method == NULL || req->target == NULL) {
		return 400;
	}
	/* Absolute-form ("http://host/path?q"): the path starts after the
	 * authority; other forms keep the whole target as the path. */
	t = req->target;
	if (strncasecmp(t, "http://", 7) == 0) {
		t += 7 + strcspn(t + 7, "/?");
	} else if (strncasecmp(t, "https://", 8) == 0) {
		t += 8 + strcspn(t + 8, "/?");
	}
	q = strchr(t, '?');
	if (q != NULL) {
		req->query = strdup(q + 1);
		if (req->query == NULL) {
			return 400;
		}
	}
	pn = q != NULL ? (size_t)(q - t) : strlen(t);
	req->path = pn != 0 ? pl_memdup_z(t, pn) : strdup("/");
	return req->path != NULL ? 0 : 400;
}

static int
parse_header_line(const char *p, size_t n, pro_http_req *req)
{
	size_t i = 0, vb, ve, k;

	while (i < n && is_tchar((unsigned char)p[i])) {
		i++;
	}
	/* No name, obs-fold, or whitespace before the colon: all malformed. */
	if (i == 0 || i == n || p[i] != ':') {
		return 400;
	}
	for (k = i + 1; k < n; k++) {
		unsigned char c = (unsigned char)p[k];

		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			return 400;
		}
	}
	vb = i + 1;
	while (vb < n && (p[vb] == ' ' || p[vb] == '\t')) {
		vb++;
	}
	ve = n;
	while (ve > vb && (p[ve - 1] == ' ' || p[ve - 1] == '\t')) {
		ve--;
	}
	for (k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
		if (ieq(p, i, known[k].name)) {
			char **slot = (char **)((char *)req + known[k].off);

			return store_header(
			    slot, known[k].list, p + vb, ve - vb);
		}
	}
	if (ieq(p, i, "content-length")) {
		uint64_t v = 0;

		/* A second Content-Length is how requests get smuggled. */
		if (req->has_length) {
			return 400;
		}
		for (k = vb; k < ve; k++) {
			if (p[k] < '0' || p[k] > '9' || v > UINT64_MAX / 20) {
				return 400;
			}
			v = v * 10 + (uint64_t)(p[k] - '0');
			req->has_body = req->has_body || p[k] != '0';
		}
		req->has_length = true;
		req->content_length = v;
		return ve > vb ? 0 : 400;
	}
	if (ieq(p, i, "transfer-encoding")) {
		req->has_body = true;
		req->has_te = true;
	}
	return 0;
}

/* Parses the head p[0..n), which ends with the empty line's CRLF. */
static int
parse_head(const char *p, size_t n, pro_http_req *req)
{
	const char *end = p + n - 2, *line = p;
	bool first = true;
	size_t i;

	/* Every CR must start a CRLF and every LF end one, so that lines can be
	 * split on CRLF alone. */
	for (i = 0; i < n; i++) {
		if ((p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n')) ||
		    (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) ||
		    p[i] == '\0') {
			return 400;
		}
	}
	while (line < end) {
		const char *eol = memchr(line, '\r', (size_t)(end - line));
		int st;

		st = first ? parse_request_line(line, (size_t)(eol - line), req)
			   : parse_header_line(line, (size_t)(eol - line), req);
		if (st != 0) {
			return st;
		}
		first = false;
		line = eol + 2;
	}
	return first ? 400 : 0;
}

/* A line ended by a bare LF can never complete a head (lines must end in
 * CRLF): finding one in the first `limit` bytes lets the request be
 * refused at once rather than at the handshake deadline. */
static bool
has_bare_lf(struct evbuffer *in, size_t limit)
{
	struct evbuffer_ptr p = evbuffer_search(in, "\n", 1, NULL);

	while (p.pos >= 0 && (size_t)p.pos < limit) {
		struct evbuffer_ptr q;
		char prev;

		if (p.pos == 0) {
			return true;
		}
		evbuffer_ptr_set(in, &q, (size_t)p.pos - 1, EVBUFFER_PTR_SET);
		if (evbuffer_copyout_from(in, &q, &prev, 1) != 1 ||
		    prev != '\r') {
			return true;
		}
		if (evbuffer_ptr_set(in, &p, 1, EVBUFFER_PTR_ADD) != 0) {
			break;
		}
		p = evbuffer_search(in, "\n", 1, &p);
	}
	return false;
}

int
pro_http_parse(struct evbuffer *in, pro_http_req *req, int *status)
{
	size_t len = evbuffer_get_length(in), n, i;
	struct evbuffer_ptr lim, found;
	unsigned char lead[16];
	unsigned char *p;
	int st;

	memset(req, 0, sizeof(*req));
	*status = 0;
	/* Reject a stream that cannot be HTTP (TLS, binary junk) at once
	 * instead of waiting for 8 KiB. */
	n = evbuffer_copyout(in, lead, sizeof(lead));
	for (i = 0; i < n && lead[i] != ' '; i++) {
		if (!is_tchar(lead[i])) {
			*status = 400;
			return -1;
		}
	}
	if (len > PRO_HTTP_MAX_HEADER) {
		evbuffer_ptr_set(
		    in, &lim, PRO_HTTP_MAX_HEADER, EVBUFFER_PTR_SET);
	}
	found = evbuffer_search_range(
	    in, "\r\n\r\n", 4, NULL, len > PRO_HTTP_MAX_HEADER ? &lim : NULL);
	if (found.pos < 0) {
		if (has_bare_lf(in, PRO_HTTP_MAX_HEADER)) {
			*status = 400;
			return -1;
		}
		if (len >= PRO_HTTP_MAX_HEADER) {
			*status = 431;
			return -1;
		}
		return 0;
	}
	n = (size_t)found.pos + 4;
	p = evbuffer_pullup(in, (ev_ssize_t)n);
	st = p != NULL ? parse_head((const char *)p, n, req) : 400;
	if (st != 0) {
		pro_http_req_free(req);
		*status = st;
		return -1;
	}
	evbuffer_drain(in, n);
	return 1;
}

void
pro_http_req_free(pro_http_req *req)
{
	size_t k;

	free(req->method);
	free(req->target);
	free(req->path);
	free(req->query);
	for (k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
		free(*(char **)((char *)req + known[k].off));
	}
	memset(req, 0, sizeof(*req));
}

bool
pro_http_list_has(const char *list, const char *token)
{
	const char *p = list;

	if (list == NULL) {
		return false;
	}
	while (*p != '\0') {
		const char *b, *e;

		while (*p == ' ' || *p == '\t' || *p == ',') {
			p++;
		}
		b = p;
		while (*p != '\0' && *p != ',') {
			p++;
		}
		e = p;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t')) {
			e--;
		}
		if (e > b && ieq(b, (size_t)(e - b), token)) {
			return true;
		}
	}
	return false;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	c = lower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes the next character of s[*i..n) ('+' is a space, %XX a byte; a
 * malformed escape stays literal) and advances *i. */
static int
pct_next(const char *s, size_t n, size_t *i)
{
	int c = (unsigned char)s[*i];

	if (c == '+') {
		c = ' ';
	} else if (c == '%' && *i + 2 < n &&
	    hexval((unsigned char)s[*i + 1]) >= 0 &&
	    hexval((unsigned char)s[*i + 2]) >= 0) {
		c = hexval((unsigned char)s[*i + 1]) * 16 +
		    hexval((unsigned char)s[*i + 2]);
		*i += 2;
	}
	(*i)++;
	return c;
}

char *
pro_http_query_get(const char *query, const char *name)
{
	const char *p = query;

	if (query == NULL || name == NULL || name[0] == '\0') {
		return NULL;
	}
	for (;;) {
		size_t pn = strcspn(p, "&"), kn, i = 0, j = 0;
		const char *eq = memchr(p, '=', pn);
		bool match = true;

		kn = eq != NULL ? (size_t)(eq - p) : pn;
		while (i < kn && match) {
			match = name[j] != '\0' &&
			    pct_next(p, kn, &i) == (unsigned char)name[j];
			j++;
		}
		if (match && name[j] == '\0') {
			const char *v = eq != NULL ? eq + 1 : p + pn;
			size_t vn = (size_t)(p + pn - v), o = 0;
			char *out = malloc(vn + 1);

			if (out == NULL) {
				return NULL;
			}
			for (i = 0; i < vn;) {
				out[o] = (char)pct_next(v, vn, &i);
				if (out[o++] == '\0') {
					free(out);
					return NULL;
				}
			}
			out[o] = '\0';
			return out;
		}
		if (p[pn] == '\0') {
			return NULL;
		}
		p += pn + 1;
	}
}

/* ---- HTTP responses ---- */

const char *
pro_http_reason(int status)
{
	switch (status) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return status < 200 ? "Informational"
	    : status < 300  ? "Success"
	    : status < 400  ? "Redirection"
	    : status < 500  ? "Client Error"
			    : "Server Error";
}

int
pro_http_write_response(struct evbuffer *out, int status,
    const char *extra_headers, const char *content_type, const char *body)
{
	/* One printf, so a failure appends nothing. */
	if (evbuffer_add_printf(out,
		"HTTP/1.1 %d %s\r\n%s%s%s%s"
		"Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		status, pro_http_reason(status),
		extra_headers != NULL ? extra_headers : "",
		content_type != NULL ? "Content-Type: " : "",
		content_type != NULL ? content_type : "",
		content_type != NULL ? "\r\n" : "",
		body != NULL ? strlen(body) : 0,
		body != NULL ? body : "") < 0) {
		return PL_ENOMEM;
	}
	return PL_OK;
}
