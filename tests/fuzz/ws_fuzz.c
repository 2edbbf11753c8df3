/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target for proto/ws: each input is a client's byte stream, parsed
 * as an HTTP upgrade request and then fed as frames (what follows a complete
 * head, else the whole input), in chunk sizes derived from the input, to
 * pro_ws_read until it fails or runs dry. The UTF-8 validator is also checked
 * against a slow reference decoder. Any abort or sanitizer report is a bug. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "proto/utf8.h"
#include "proto/http.h"
#include "proto/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Deterministic per input, so a crash replays exactly. */
static uint32_t
next_rand(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Decodes code points the slow way: the oracle for pro_utf8_feed. */
static bool
ref_utf8(const uint8_t *s, size_t n)
{
	size_t i = 0, j, k;

	while (i < n) {
		uint32_t c = s[i], min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1, c &= 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, c &= 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, c &= 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i - 1 < k) {
			return false;
		}
		for (j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80) {
				return false;
			}
			c = c << 6 | (s[i + j] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
			return false;
		}
		i += k + 1;
	}
	return true;
}

static void
fuzz_utf8(const uint8_t *data, size_t size, uint32_t *seed)
{
	uint8_t st = PRO_UTF8_ACCEPT;
	bool ok = true, want = ref_utf8(data, size);
	size_t off = 0;

	if (pro_utf8_valid(data, size) != want) {
		abort();
	}
	while (off < size && ok) {
		size_t n = 1 + next_rand(seed) % 16;

		n = n < size - off ? n : size - off;
		ok = pro_utf8_feed(&st, data + off, n) == 0;
		off += n;
	}
	if ((ok && pro_utf8_complete(st)) != want) {
		abort();
	}
}

/* Prefixes picked by the input's first byte, so that every input need not
 * rediscover a valid handshake before the frame reader is reached. */
static const char *const prefixes[4] = {
	"GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: h\r\n"
	"Upgrade: websocket\r\nConnection: Upgrade\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Sec-WebSocket-Version: 13\r\n\r\n",
	"GET /socket/websocket?",
	"GET / HTTP/1.1\r\n",
	"",
};

/* Parses the stream's HTTP head; returns in *rest (caller frees) the bytes
 * left for the frame reader: what follows a complete head, else the input. */
static void
fuzz_http(const uint8_t *data, size_t size, uint8_t **rest, size_t *rest_len)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	const char *prefix = prefixes[size != 0 ? data[0] & 3 : 3];
	size_t cut;
	char *q = malloc(size + 1), *v;
	pro_http_req req;
	int st = 0, rc;

	if (in == NULL || out == NULL || q == NULL) {
		abort();
	}
	if (size != 0) {
		data++;
		size--;
	}
	cut = size != 0 ? data[0] % (size + 1) : 0;
	evbuffer_add(in, prefix, strlen(prefix));
	evbuffer_add(in, data, cut);
	rc = pro_http_parse(in, &req, &st);
	if (rc == 0) {
		evbuffer_add(in, data + cut, size - cut);
		cut = size;
		rc = pro_http_parse(in, &req, &st);
	}
	if (rc == 1) {
		rc = pro_ws_check_upgrade(&req);
		if (rc == 0 &&
		    pro_ws_write_accept(out, &req,
			req.ws_protocol &&
				pro_http_list_has(req.ws_protocol, "phoenix")
			    ? "phoenix"
			    : NULL) != 0) {
			abort();
		}
		if (rc != 0 && rc != 400 && rc != 405 && rc != 426) {
			abort();
		}
		if (rc != 0) {
			pro_ws_write_refusal(out, rc);
		}
		v = pro_http_query_get(req.query, "vsn");
		free(v);
		v = pro_http_query_get(req.query, "token");
		free(v);
		pro_http_req_free(&req);
		/* The connection goes on with what followed the head. */
		evbuffer_add(in, data + cut, size - cut);
		*rest_len = evbuffer_get_length(in);
		*rest = malloc(*rest_len + 1);
		if (*rest == NULL) {
			abort();
		}
		evbuffer_remove(in, *rest, *rest_len);
	} else {
		if (rc == -1 && st != 400 && st != 431 && st != 505) {
			abort();
		}
		if (rc == -1) {
			pro_ws_write_refusal(out, st);
		}
		*rest_len = size;
		*rest = malloc(size + 1);
		if (*rest == NULL) {
			abort();
		}
		memcpy(*rest, data, size);
	}
	/* The raw bytes as a query string too. */
	memcpy(q, data, size);
	q[size] = '\0';
	v = pro_http_query_get(q, "a");
	if (v != NULL && strlen(v) > size) {
		abort();
	}
	free(v);
	free(q);
	evbuffer_free(in);
	evbuffer_free(out);
}

static void
check_msg(const pro_ws_msg *m)
{
	if (m->data == NULL || m->data[m->len] != '\0') {
		abort();
	}
	switch (m->opcode) {
	case PRO_WS_TEXT:
		if (!ref_utf8((const uint8_t *)m->data, m->len)) {
			abort();
		}
		break;
	case PRO_WS_CLOSE:
		if ((m->close_code != PRO_WS_CLOSE_NO_STATUS &&
			!pro_ws_close_code_valid(m->close_code)) ||
		    !ref_utf8((const uint8_t *)m->data, m->len) ||
		    m->len > 123) {
			abort();
		}
		break;
	case PRO_WS_PING:
	case PRO_WS_PONG:
		if (m->len > PRO_WS_MAX_CONTROL) {
			abort();
		}
		break;
	case PRO_WS_BINARY: break;
	default: abort();
	}
}

static void
fuzz_frames(const uint8_t *data, size_t size, uint32_t *seed)
{
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	size_t off = 0;
	pro_ws_reader r;

	if (in == NULL || out == NULL) {
		abort();
	}
	pro_ws_reader_init(&r, 1 + next_rand(seed) % 100000);
	while (off < size) {
		size_t n =
		    next_rand(seed) % 8 == 0 ? size : 1 + next_rand(seed) % 32;
		pro_ws_msg m;
		int rc;

		n = n < size - off ? n : size - off;
		evbuffer_add(in, data + off, n);
		off += n;
		while ((rc = pro_ws_read(&r, in, &m)) == 1) {
			check_msg(&m);
			if (pro_ws_write_frame(out,
				m.opcode == PRO_WS_PING ? PRO_WS_PONG
							: m.opcode,
				m.data, m.len) != 0) {
				abort();
			}
			free(m.data);
		}
		if (rc == -1) {
			if (m.data != NULL || m.reason == NULL ||
			    (m.close_code != 1002 && m.close_code != 1007 &&
				m.close_code != 1009 && m.close_code != 1011)) {
				abort();
			}
			pro_ws_write_close(out, m.close_code, m.reason);
			break;
		}
		evbuffer_drain(out, evbuffer_get_length(out));
	}
	pro_ws_reader_fini(&r);
	evbuffer_free(in);
	evbuffer_free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t seed = 2166136261u;
	uint8_t *rest;
	size_t i, rest_len;

	for (i = 0; i < size && i < 64; i++) {
		seed = (seed ^ data[i]) * 16777619u;
	}
	seed |= 1; /* xorshift must not start at 0 */
	fuzz_utf8(data, size, &seed);
	fuzz_http(data, size, &rest, &rest_len);
	fuzz_frames(rest, rest_len, &seed);
	free(rest);
	return 0;
}
