/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 6455 server side on libevent evbuffers: the handshake, and a frame
 * reader that keeps incomplete frames in the caller's input buffer instead of
 * copying them into a per-connection buffer. */
#include "common/sbuf.h"
#include "proto/ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "proto/utf8.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- Handshake ---- */

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
pro_ws_write_accept(
    struct evbuffer *out, const pro_http_req *req, const char *protocol)
{
	char acc[29];
	bool p = protocol != NULL;

	if (req->ws_key == NULL || (p && strpbrk(protocol, "\r\n") != NULL)) {
		return PL_EINVAL;
	}
	if (pro_ws_accept_key(req->ws_key, acc) != PL_OK) {
		return PL_ENOMEM;
	}
	if (evbuffer_add_printf(out,
		"HTTP/1.1 101 Switching Protocols\r\n"
		"Upgrade: websocket\r\nConnection: Upgrade\r\n"
		"Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
		acc, p ? "Sec-WebSocket-Protocol: " : "", p ? protocol : "",
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
	r->max_bytes =
	    max_message_bytes != 0 ? max_message_bytes : SIZE_MAX / 2;
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
parse_frame_header(const pro_ws_reader *r, const uint8_t *h, size_t n, frame *f,
    const char **why)
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
	default: *why = "unknown opcode"; return PRO_WS_CLOSE_PROTOCOL;
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
	    evbuffer_ptr_set(
		in, &pos, f->hdr_len + r->checked, EVBUFFER_PTR_SET) != 0) {
		return 0;
	}
	while (r->checked < have) {
		size_t n = have - r->checked < sizeof(tmp) ? have - r->checked
							   : sizeof(tmp);

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
take_payload(
    pro_ws_reader *r, struct evbuffer *in, const frame *f, uint8_t *dst)
{
	uint64_t checked = r->checked;

	r->checked = 0;
	evbuffer_drain(in, f->hdr_len);
	evbuffer_remove(in, dst, (size_t)f->len);
	unmask(dst, (size_t)f->len, f->mask, 0);
	if (is_text(r, f) &&
	    pro_utf8_feed(
		&r->utf8, dst + checked, (size_t)(f->len - checked)) != 0) {
		return -1;
	}
	return 0;
}

static int
read_control(
    pro_ws_reader *r, struct evbuffer *in, const frame *f, pro_ws_msg *msg)
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
	msg->data = pl_memdup_z((const char *)body, n);
	if (msg->data == NULL) {
		return fail(r, msg, PRO_WS_CLOSE_INTERNAL, "out of memory");
	}
	msg->len = n;
	return 1;
}

/* Adds a complete non-final fragment to r->frag. */
static int
read_fragment(
    pro_ws_reader *r, struct evbuffer *in, const frame *f, pro_ws_msg *msg)
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
read_final(
    pro_ws_reader *r, struct evbuffer *in, const frame *f, pro_ws_msg *msg)
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
pro_ws_write_frame(
    struct evbuffer *out, int opcode, const void *data, size_t len)
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
