/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 6455 server side on libevent evbuffers: the upgrade request parser, the
 * handshake, and a frame reader that keeps incomplete frames in the caller's
 * input buffer instead of copying them into a per-connection buffer. */
#include "proto/ws.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "proto/utf8.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

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
	    (c >= '0' && c <= '9') || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static char *
dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
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
};

static int
store_header(char **slot, bool list, const char *v, size_t vn)
{
	size_t old;
	char *s;

	if (*slot == NULL) {
		*slot = dupn(v, vn);
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
	req->method = dupn(p, i);
	tb = ++i;
	while (i < n && p[i] > 0x20 && p[i] < 0x7f) {
		i++;
	}
	if (i == tb || i == n || p[i] != ' ') {
		return 400;
	}
	req->target = dupn(p + tb, i - tb);
	i++;
	if (n - i != 8 || memcmp(p + i, "HTTP/", 5) != 0 ||
	    p[i + 5] < '0' || p[i + 5] > '9' || p[i + 6] != '.' ||
	    p[i + 7] < '0' || p[i + 7] > '9') {
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
	req->path = pn != 0 ? dupn(t, pn) : strdup("/");
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

			return store_header(slot, known[k].list, p + vb, ve - vb);
		}
	}
	if (ieq(p, i, "content-length")) {
		for (k = vb; k < ve; k++) {
			if (p[k] < '0' || p[k] > '9') {
				return 400;
			}
			req->has_body = req->has_body || p[k] != '0';
		}
		return ve > vb ? 0 : 400;
	}
	if (ieq(p, i, "transfer-encoding")) {
		req->has_body = true;
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
		evbuffer_ptr_set(in, &lim, PRO_HTTP_MAX_HEADER, EVBUFFER_PTR_SET);
	}
	found = evbuffer_search_range(in, "\r\n\r\n", 4, NULL,
	    len > PRO_HTTP_MAX_HEADER ? &lim : NULL);
	if (found.pos < 0) {
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
			match = name[j] != '\0' && pct_next(p, kn, &i) == (unsigned char)name[j];
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

/* ---- HTTP responses and the handshake ---- */

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
	case 413: return "Content Too Large";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	}
	return status < 200 ? "Informational" : status < 300 ? "Success"
	    : status < 400 ? "Redirection" : status < 500 ? "Client Error"
	    : "Server Error";
}

int
pro_http_write_response(struct evbuffer *out, int status,
    const char *extra_headers, const char *content_type, const char *body)
{
	/* One printf, so a failure appends nothing. */
	if (evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n%s%s%s%s"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	    status, pro_http_reason(status),
	    extra_headers != NULL ? extra_headers : "",
	    content_type != NULL ? "Content-Type: " : "",
	    content_type != NULL ? content_type : "",
	    content_type != NULL ? "\r\n" : "",
	    body != NULL ? strlen(body) : 0, body != NULL ? body : "") < 0) {
		return PL_ENOMEM;
	}
	return PL_OK;
}

static bool
is_b64(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* base64 of 16 bytes: 22 alphabet characters and "==". */
static bool
key_valid(const char *k)
{
	size_t i;

	if (k == NULL || strlen(k) != 24 || k[22] != '=' || k[23] != '=') {
		return false;
	}
	for (i = 0; i < 22; i++) {
		if (!is_b64((unsigned char)k[i])) {
			return false;
		}
	}
	return true;
}

int
pro_ws_check_upgrade(const pro_http_req *req)
{
	if (req->method == NULL || strcmp(req->method, "GET") != 0) {
		return 405;
	}
	if (req->version_minor < 1 || req->has_body || req->host == NULL ||
	    !pro_http_list_has(req->upgrade, "websocket") ||
	    !pro_http_list_has(req->connection, "upgrade") ||
	    req->ws_version == NULL) {
		return 400;
	}
	if (strcmp(req->ws_version, "13") != 0) {
		return 426;
	}
	return key_valid(req->ws_key) ? 0 : 400;
}

int
pro_ws_accept_key(const char *key, char out[29])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int ok;

	ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, key, strlen(key)) == 1 &&
	    EVP_DigestUpdate(ctx, WS_GUID, sizeof(WS_GUID) - 1) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
	EVP_MD_CTX_free(ctx);
	out[0] = '\0';
	if (!ok) {
		return PL_ENOMEM;
	}
	EVP_EncodeBlock((unsigned char *)out, md, 20);
	return PL_OK;
}

int
pro_ws_write_accept(struct evbuffer *out, const pro_http_req *req,
    const char *protocol)
{
	char acc[29];
	bool p = protocol != NULL;

	if (req->ws_key == NULL || (p && strpbrk(protocol, "\r\n") != NULL)) {
		return PL_EINVAL;
	}
	if (pro_ws_accept_key(req->ws_key, acc) != PL_OK) {
		return PL_ENOMEM;
	}
	if (evbuffer_add_printf(out, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n", acc,
	    p ? "Sec-WebSocket-Protocol: " : "", p ? protocol : "",
	    p ? "\r\n" : "") < 0) {
		return PL_ENOMEM;
	}
	return PL_OK;
}

int
pro_ws_write_refusal(struct evbuffer *out, int status)
{
	char body[64];
	const char *extra = NULL;

	if (status == 426) {
		extra = "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
	} else if (status == 405) {
		extra = "Allow: GET\r\n";
	}
	snprintf(body, sizeof(body), "%s\n", pro_http_reason(status));
	return pro_http_write_response(out, status, extra, "text/plain", body);
}

/* ---- Frame reader ---- */

/* A parsed frame header. */
typedef struct frame {
	uint8_t fin;
	uint8_t opcode;
	uint8_t mask[4];
	size_t hdr_len;
	uint64_t len;
} frame;

void
pro_ws_reader_init(pro_ws_reader *r, size_t max_message_bytes)
{
	memset(r, 0, sizeof(*r));
	r->max_bytes = max_message_bytes != 0 ? max_message_bytes : SIZE_MAX / 2;
}

void
pro_ws_reader_fini(pro_ws_reader *r)
{
	if (r->frag != NULL) {
		evbuffer_free(r->frag);
	}
	memset(r, 0, sizeof(*r));
}

static int
fail(pro_ws_reader *r, pro_ws_msg *msg, uint16_t code, const char *why)
{
	if (r->frag != NULL) {
		evbuffer_free(r->frag);
		r->frag = NULL;
	}
	r->fail_code = code;
	free(msg->data);
	memset(msg, 0, sizeof(*msg));
	msg->close_code = code;
	msg->reason = why;
	return -1;
}

/* XORs p[0..n) with the key, p[0] being payload byte `off` of its frame. */
static void
unmask(uint8_t *p, size_t n, const uint8_t key[4], uint64_t off)
{
	uint8_t k[8];
	uint64_t kw, w;
	size_t i;

	for (i = 0; i < 8; i++) {
		k[i] = key[(off + i) & 3];
	}
	memcpy(&kw, k, 8);
	for (i = 0; i + 8 <= n; i += 8) {
		memcpy(&w, p + i, 8);
		w ^= kw;
		memcpy(p + i, &w, 8);
	}
	for (; i < n; i++) {
		p[i] ^= k[i & 7];
	}
}

/* Parses as much of the header h[0..n) as is there, failing as soon as a
 * byte breaks a rule. Returns 1 with *f filled, 0 if incomplete, or 1002 /
 * 1009 with *why set. */
static int
parse_frame_header(const pro_ws_reader *r, const uint8_t *h, size_t n,
    frame *f, const char **why)
{
	size_t ext, i, prior;

	if (n < 1) {
		return 0;
	}
	f->fin = h[0] >> 7;
	f->opcode = h[0] & 0x0f;
	if ((h[0] & 0x70) != 0) {
		*why = "reserved bits set without an extension";
		return PRO_WS_CLOSE_PROTOCOL;
	}
	switch (f->opcode) {
	case PRO_WS_CONT:
		if (r->frag_opcode == 0) {
			*why = "continuation frame without a message";
			return PRO_WS_CLOSE_PROTOCOL;
		}
		break;
	case PRO_WS_TEXT:
	case PRO_WS_BINARY:
		if (r->frag_opcode != 0) {
			*why = "new message inside a fragmented message";
			return PRO_WS_CLOSE_PROTOCOL;
		}
		break;
	case PRO_WS_CLOSE:
	case PRO_WS_PING:
	case PRO_WS_PONG:
		if (!f->fin) {
			*why = "fragmented control frame";
			return PRO_WS_CLOSE_PROTOCOL;
		}
		break;
	default:
		*why = "unknown opcode";
		return PRO_WS_CLOSE_PROTOCOL;
	}
	if (n < 2) {
		return 0;
	}
	if ((h[1] & 0x80) == 0) {
		*why = "client frame not masked";
		return PRO_WS_CLOSE_PROTOCOL;
	}
	f->len = h[1] & 0x7f;
	if ((f->opcode & 0x8) != 0 && f->len > PRO_WS_MAX_CONTROL) {
		*why = "control frame longer than 125 bytes";
		return PRO_WS_CLOSE_PROTOCOL;
	}
	ext = f->len == 126 ? 2 : f->len == 127 ? 8 : 0;
	if (n < 2 + ext) {
		return 0;
	}
	if (ext != 0) {
		f->len = 0;
		for (i = 0; i < ext; i++) {
			f->len = f->len << 8 | h[2 + i];
		}
		if (f->len >> 63 != 0) {
			*why = "frame length with the most significant bit set";
			return PRO_WS_CLOSE_PROTOCOL;
		}
	}
	/* The limit is checked on the announced length, before any byte of
	 * the payload is buffered or allocated. */
	prior = r->frag != NULL ? evbuffer_get_length(r->frag) : 0;
	if ((f->opcode & 0x8) == 0 && f->len > r->max_bytes - prior) {
		*why = "message too big";
		return PRO_WS_CLOSE_TOO_BIG;
	}
	f->hdr_len = 2 + ext + 4;
	if (n < f->hdr_len) {
		return 0;
	}
	memcpy(f->mask, h + 2 + ext, 4);
	return 1;
}

static bool
is_text(const pro_ws_reader *r, const frame *f)
{
	return f->opcode == PRO_WS_TEXT ||
	    (f->opcode == PRO_WS_CONT && r->frag_opcode == PRO_WS_TEXT);
}

/* Validates the part of an incomplete text frame that has arrived, so bad
 * UTF-8 fails fast without copying the frame out of `in`. */
static int
check_partial(pro_ws_reader *r, struct evbuffer *in, const frame *f)
{
	size_t have = evbuffer_get_length(in) - f->hdr_len;
	struct evbuffer_ptr pos;
	uint8_t tmp[256];

	if (have <= r->checked ||
	    evbuffer_ptr_set(in, &pos, f->hdr_len + r->checked,
	    EVBUFFER_PTR_SET) != 0) {
		return 0;
	}
	while (r->checked < have) {
		size_t n = have - r->checked < sizeof(tmp) ?
		    have - r->checked : sizeof(tmp);

		if (evbuffer_copyout_from(in, &pos, tmp, n) != (ev_ssize_t)n) {
			return 0;
		}
		unmask(tmp, n, f->mask, r->checked);
		if (pro_utf8_feed(&r->utf8, tmp, n) != 0) {
			return -1;
		}
		r->checked += n;
		evbuffer_ptr_set(in, &pos, n, EVBUFFER_PTR_ADD);
	}
	return 0;
}

/* Moves the complete frame's payload from `in` to dst, unmasked, and checks
 * the text not yet checked. Returns 0 or -1 for invalid UTF-8. */
static int
take_payload(pro_ws_reader *r, struct evbuffer *in, const frame *f,
    uint8_t *dst)
{
	uint64_t checked = r->checked;

	r->checked = 0;
	evbuffer_drain(in, f->hdr_len);
	evbuffer_remove(in, dst, (size_t)f->len);
	unmask(dst, (size_t)f->len, f->mask, 0);
	if (is_text(r, f) && pro_utf8_feed(&r->utf8, dst + checked,
	    (size_t)(f->len - checked)) != 0) {
		return -1;
	}
	return 0;
}

static int
read_control(pro_ws_reader *r, struct evbuffer *in, const frame *f,
    pro_ws_msg *msg)
{
	uint8_t buf[PRO_WS_MAX_CONTROL];
	const uint8_t *body = buf;
	size_t n = (size_t)f->len;

	take_payload(r, in, f, buf);
	msg->opcode = f->opcode;
	if (f->opcode == PRO_WS_CLOSE) {
		msg->close_code = PRO_WS_CLOSE_NO_STATUS;
		if (n == 1) {
			return fail(r, msg, PRO_WS_CLOSE_PROTOCOL,
			    "close frame with a 1-byte payload");
		}
		if (n >= 2) {
			msg->close_code = (uint16_t)(buf[0] << 8 | buf[1]);
			body += 2;
			n -= 2;
			if (!pro_ws_close_code_valid(msg->close_code)) {
				return fail(r, msg, PRO_WS_CLOSE_PROTOCOL,
				    "invalid close code");
			}
			if (!pro_utf8_valid(body, n)) {
				return fail(r, msg, PRO_WS_CLOSE_BAD_DATA,
				    "invalid UTF-8 in close reason");
			}
		}
	}
	msg->data = dupn((const char *)body, n);
	if (msg->data == NULL) {
		return fail(r, msg, PRO_WS_CLOSE_INTERNAL, "out of memory");
	}
	msg->len = n;
	return 1;
}

/* Adds a complete non-final fragment to r->frag. */
static int
read_fragment(pro_ws_reader *r, struct evbuffer *in, const frame *f,
    pro_ws_msg *msg)
{
	struct evbuffer_iovec v;

	if (r->frag_opcode == 0) {
		r->frag_opcode = f->opcode;
	}
	if (f->len == 0) {
		evbuffer_drain(in, f->hdr_len);
		return 0;
	}
	if ((r->frag == NULL && (r->frag = evbuffer_new()) == NULL) ||
	    evbuffer_reserve_space(r->frag, (ev_ssize_t)f->len, &v, 1) != 1) {
		return fail(r, msg, PRO_WS_CLOSE_INTERNAL, "out of memory");
	}
	if (take_payload(r, in, f, v.iov_base) != 0) {
		return fail(r, msg, PRO_WS_CLOSE_BAD_DATA,
		    "invalid UTF-8 in text message");
	}
	v.iov_len = (size_t)f->len;
	evbuffer_commit_space(r->frag, &v, 1);
	return 0;
}

/* Builds the message from the fragments so far plus this final frame. */
static int
read_final(pro_ws_reader *r, struct evbuffer *in, const frame *f,
    pro_ws_msg *msg)
{
	size_t prior = r->frag != NULL ? evbuffer_get_length(r->frag) : 0;
	size_t total = prior + (size_t)f->len;
	bool text = is_text(r, f);

	msg->data = malloc(total + 1);
	if (msg->data == NULL) {
		return fail(r, msg, PRO_WS_CLOSE_INTERNAL, "out of memory");
	}
	if (prior != 0) {
		evbuffer_remove(r->frag, msg->data, prior);
	}
	if (take_payload(r, in, f, (uint8_t *)msg->data + prior) != 0 ||
	    (text && !pro_utf8_complete(r->utf8))) {
		return fail(r, msg, PRO_WS_CLOSE_BAD_DATA,
		    "invalid UTF-8 in text message");
	}
	msg->data[total] = '\0';
	msg->len = total;
	msg->opcode = f->opcode == PRO_WS_CONT ? r->frag_opcode : f->opcode;
	if (r->frag != NULL) {
		evbuffer_free(r->frag);
		r->frag = NULL;
	}
	r->frag_opcode = 0;
	r->utf8 = PRO_UTF8_ACCEPT;
	return 1;
}

int
pro_ws_read(pro_ws_reader *r, struct evbuffer *in, pro_ws_msg *msg)
{
	memset(msg, 0, sizeof(*msg));
	if (r->fail_code != 0) {
		return fail(r, msg, r->fail_code, "connection already failed");
	}
	for (;;) {
		uint8_t h[14];
		size_t avail = evbuffer_get_length(in);
		size_t n = avail < sizeof(h) ? avail : sizeof(h);
		const char *why = NULL;
		frame f;
		int rc;

		memset(&f, 0, sizeof(f));
		evbuffer_copyout(in, h, n);
		rc = parse_frame_header(r, h, n, &f, &why);
		if (rc == 0) {
			return 0;
		}
		if (rc != 1) {
			return fail(r, msg, (uint16_t)rc, why);
		}
		if (avail - f.hdr_len < f.len) {
			if (is_text(r, &f) && check_partial(r, in, &f) != 0) {
				return fail(r, msg, PRO_WS_CLOSE_BAD_DATA,
				    "invalid UTF-8 in text message");
			}
			return 0;
		}
		if ((f.opcode & 0x8) != 0) {
			return read_control(r, in, &f, msg);
		}
		if (f.fin) {
			return read_final(r, in, &f, msg);
		}
		if (read_fragment(r, in, &f, msg) != 0) {
			return -1;
		}
	}
}

bool
pro_ws_close_code_valid(unsigned code)
{
	return (code >= 1000 && code <= 1003) ||
	    (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

/* ---- Frame writer ---- */

size_t
pro_ws_frame_header(uint8_t hdr[10], int opcode, size_t len)
{
	size_t i;

	hdr[0] = (uint8_t)(0x80 | (opcode & 0x0f));
	if (len < 126) {
		hdr[1] = (uint8_t)len;
		return 2;
	}
	if (len <= 0xffff) {
		hdr[1] = 126;
		hdr[2] = (uint8_t)(len >> 8);
		hdr[3] = (uint8_t)len;
		return 4;
	}
	hdr[1] = 127;
	for (i = 0; i < 8; i++) {
		hdr[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	}
	return 10;
}

int
pro_ws_write_frame(struct evbuffer *out, int opcode, const void *data,
    size_t len)
{
	uint8_t hdr[10];
	size_t hl = pro_ws_frame_header(hdr, opcode, len);

	/* Expanding first makes the two adds infallible: a header without its
	 * payload would corrupt the stream. */
	if (evbuffer_expand(out, hl + len) != 0 ||
	    evbuffer_add(out, hdr, hl) != 0 ||
	    (len != 0 && evbuffer_add(out, data, len) != 0)) {
		return PL_ENOMEM;
	}
	return PL_OK;
}

int
pro_ws_write_close(struct evbuffer *out, uint16_t code, const char *reason)
{
	uint8_t p[2 + PRO_WS_MAX_REASON];
	size_t n = reason != NULL ? strlen(reason) : 0;

	if (code == 0 || code == PRO_WS_CLOSE_NO_STATUS) {
		return pro_ws_write_frame(out, PRO_WS_CLOSE, NULL, 0);
	}
	if (n > PRO_WS_MAX_REASON) {
		n = PRO_WS_MAX_REASON;
		/* Back off to a character boundary: the peer fails the
		 * connection on a truncated character. */
		while (n > 0 && ((unsigned char)reason[n] & 0xc0) == 0x80) {
			n--;
		}
	}
	p[0] = (uint8_t)(code >> 8);
	p[1] = (uint8_t)code;
	if (n != 0) {
		memcpy(p + 2, reason, n);
	}
	return pro_ws_write_frame(out, PRO_WS_CLOSE, p, 2 + n);
}
