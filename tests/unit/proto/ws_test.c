/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 6455 section 5 frame reader and writer, rule by rule, plus the strict
 * UTF-8 validator the reader uses for text and close reasons. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "../test.h"
#include "proto/utf8.h"
#include "proto/ws.h"

#define FIN 0x80
#define LIMIT 4096

static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* Length encodings a client may choose. */
enum { LEN_MIN, LEN_16, LEN_64 };

/* Appends a client frame with first byte b0, masked with `key` or not. */
static void
put_frame_ex(struct evbuffer *b, uint8_t b0, bool masked, int form,
    const void *data, size_t len)
{
	uint8_t h[14];
	size_t hl = 2, i;
	uint8_t *p = malloc(len + 1);

	h[0] = b0;
	if (form == LEN_MIN && len < 126) {
		h[1] = (uint8_t)len;
	} else if (form != LEN_64 && len <= 0xffff) {
		h[1] = 126;
		h[2] = (uint8_t)(len >> 8);
		h[3] = (uint8_t)len;
		hl = 4;
	} else {
		h[1] = 127;
		for (i = 0; i < 8; i++) {
			h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
		}
		hl = 10;
	}
	if (masked) {
		h[1] |= 0x80;
		memcpy(h + hl, key, 4);
		hl += 4;
	}
	for (i = 0; i < len; i++) {
		p[i] = ((const uint8_t *)data)[i] ^ (masked ? key[i & 3] : 0);
	}
	evbuffer_add(b, h, hl);
	evbuffer_add(b, p, len);
	free(p);
}

static void
put_frame(struct evbuffer *b, uint8_t b0, const void *data, size_t len)
{
	put_frame_ex(b, b0, true, LEN_MIN, data, len);
}

static void
put_str(struct evbuffer *b, uint8_t b0, const char *s)
{
	put_frame(b, b0, s, strlen(s));
}

static void
put_close(struct evbuffer *b, unsigned code, const char *reason)
{
	uint8_t p[125];
	size_t n = strlen(reason);

	p[0] = (uint8_t)(code >> 8);
	p[1] = (uint8_t)code;
	memcpy(p + 2, reason, n);
	put_frame(b, FIN | PRO_WS_CLOSE, p, 2 + n);
}

/* Reads everything in `in` with a fresh reader: the first result that is
 * not 1 is returned, with the last message kept in *msg (caller frees). */
static int
read_one(const void *bytes, size_t n, pro_ws_msg *msg)
{
	struct evbuffer *in = evbuffer_new();
	pro_ws_reader r;
	int rc;

	pro_ws_reader_init(&r, LIMIT);
	evbuffer_add(in, bytes, n);
	rc = pro_ws_read(&r, in, msg);
	pro_ws_reader_fini(&r);
	evbuffer_free(in);
	return rc;
}

/* Expects `in` (consumed by a fresh reader) to fail with `code`. */
static void
expect_fail(struct evbuffer *in, uint16_t code)
{
	pro_ws_reader r;
	pro_ws_msg m;
	int rc;

	pro_ws_reader_init(&r, LIMIT);
	while ((rc = pro_ws_read(&r, in, &m)) == 1) {
		free(m.data);
	}
	pro_ws_reader_fini(&r);
	ASSERT_EQ(rc, -1);
	ASSERT_EQ(m.close_code, code);
	ASSERT_TRUE(m.reason != NULL && m.reason[0] != '\0');
	ASSERT_TRUE(m.data == NULL);
	evbuffer_drain(in, evbuffer_get_length(in));
}

static void
test_rfc_masked_hello(void)
{
	/* RFC 6455 5.7: a single-frame masked text message "Hello". */
	static const uint8_t f[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
		0x9f, 0x4d, 0x51, 0x58 };
	pro_ws_msg m;

	ASSERT_EQ(read_one(f, sizeof(f), &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_TEXT);
	ASSERT_EQ(m.len, 5);
	ASSERT_STREQ(m.data, "Hello");
	free(m.data);
}

static void
test_unmasked_frame_rejected(void)
{
	/* RFC 5.7's unmasked "Hello": fine from a server, not from a client. */
	static const uint8_t f[] = { 0x81, 0x05, 'H', 'e', 'l', 'l', 'o' };
	pro_ws_msg m;

	ASSERT_EQ(read_one(f, 2, &m), -1);
	ASSERT_EQ(m.close_code, PRO_WS_CLOSE_PROTOCOL);
	ASSERT_EQ(read_one(f, sizeof(f), &m), -1);
	ASSERT_EQ(m.close_code, PRO_WS_CLOSE_PROTOCOL);
}

static void
test_rsv_bits_rejected(void)
{
	struct evbuffer *in = evbuffer_new();
	uint8_t rsv;

	for (rsv = 0x10; rsv <= 0x70; rsv += 0x10) {
		put_str(in, FIN | rsv | PRO_WS_TEXT, "x");
		expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
		put_frame(in, FIN | rsv | PRO_WS_PING, "", 0);
		expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	}
	/* Fails on the first byte, before the rest of the header. */
	evbuffer_add(in, "\xc1", 1);
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	evbuffer_free(in);
}

static void
test_unknown_opcodes_rejected(void)
{
	static const uint8_t bad[] = { 3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf };
	struct evbuffer *in = evbuffer_new();
	size_t i;

	for (i = 0; i < sizeof(bad); i++) {
		put_str(in, FIN | bad[i], "x");
		expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
		put_str(in, bad[i], "x");
		expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	}
	evbuffer_free(in);
}

static void
test_control_frame_max_125(void)
{
	struct evbuffer *in = evbuffer_new();
	char p[126];
	pro_ws_reader r;
	pro_ws_msg m;

	memset(p, 'p', sizeof(p));
	pro_ws_reader_init(&r, LIMIT);
	put_frame(in, FIN | PRO_WS_PING, p, 125);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_PING);
	ASSERT_EQ(m.len, 125);
	free(m.data);
	pro_ws_reader_fini(&r);
	put_frame(in, FIN | PRO_WS_PING, p, 126);
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	put_frame(in, FIN | PRO_WS_PONG, p, 126);
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	put_frame_ex(in, FIN | PRO_WS_CLOSE, true, LEN_64, p, 126);
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	evbuffer_free(in);
}

static void
test_control_frame_fragmented(void)
{
	struct evbuffer *in = evbuffer_new();

	put_str(in, PRO_WS_PING, "a");
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	put_str(in, PRO_WS_PONG, "a");
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	put_frame(in, PRO_WS_CLOSE, "", 0);
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	evbuffer_free(in);
}

static void
test_continuation_without_start(void)
{
	struct evbuffer *in = evbuffer_new();

	put_str(in, FIN | PRO_WS_CONT, "x");
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	put_str(in, PRO_WS_CONT, "x");
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	/* Also after a complete message. */
	put_str(in, FIN | PRO_WS_TEXT, "done");
	put_str(in, FIN | PRO_WS_CONT, "x");
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	evbuffer_free(in);
}

static void
test_new_message_inside_fragmented(void)
{
	struct evbuffer *in = evbuffer_new();

	put_str(in, PRO_WS_TEXT, "a");
	put_str(in, FIN | PRO_WS_TEXT, "b");
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	put_str(in, PRO_WS_BINARY, "a");
	put_str(in, PRO_WS_TEXT, "b");
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	evbuffer_free(in);
}

static void
roundtrip_len(size_t len, int form)
{
	struct evbuffer *in = evbuffer_new();
	char *p = malloc(len);
	pro_ws_reader r;
	pro_ws_msg m;
	size_t i;

	for (i = 0; i < len; i++) {
		p[i] = (char)('a' + i % 26);
	}
	pro_ws_reader_init(&r, 1 << 20);
	put_frame_ex(in, FIN | PRO_WS_TEXT, true, form, p, len);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.len, len);
	ASSERT_MEMEQ(m.data, p, len);
	ASSERT_EQ(m.data[len], '\0');
	ASSERT_EQ(evbuffer_get_length(in), 0);
	free(m.data);
	free(p);
	pro_ws_reader_fini(&r);
	evbuffer_free(in);
}

static void
test_length_16bit(void)
{
	roundtrip_len(126, LEN_MIN);
	roundtrip_len(1000, LEN_MIN);
	roundtrip_len(65535, LEN_MIN);
	roundtrip_len(5, LEN_16); /* non-minimal: accepted */
}

static void
test_length_64bit(void)
{
	roundtrip_len(65536, LEN_MIN);
	roundtrip_len(200000, LEN_MIN);
	roundtrip_len(0, LEN_64); /* non-minimal: accepted */
	roundtrip_len(300, LEN_64);
}

static void
test_length_64bit_msb_rejected(void)
{
	static const uint8_t h[] = { 0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1 };
	pro_ws_msg m;

	ASSERT_EQ(read_one(h, sizeof(h), &m), -1);
	ASSERT_EQ(m.close_code, PRO_WS_CLOSE_PROTOCOL);
}

static void
test_size_limit_1009_before_allocation(void)
{
	/* Headers alone announcing 1 GiB and 2^62 bytes: refused at once, with
	 * no payload sent, so nothing can have been allocated for it. */
	static const uint8_t h1[] = { 0x82, 0xff, 0, 0, 0, 0, 0x40, 0, 0, 0 };
	static const uint8_t h2[] = { 0x81, 0xff, 0x40, 0, 0, 0, 0, 0, 0, 0 };
	struct evbuffer *in = evbuffer_new();
	char p[LIMIT + 1];
	pro_ws_reader r;
	pro_ws_msg m;

	ASSERT_EQ(read_one(h1, sizeof(h1), &m), -1);
	ASSERT_EQ(m.close_code, PRO_WS_CLOSE_TOO_BIG);
	ASSERT_EQ(read_one(h2, sizeof(h2), &m), -1);
	ASSERT_EQ(m.close_code, PRO_WS_CLOSE_TOO_BIG);
	memset(p, 'a', sizeof(p));
	/* Exactly the limit passes, one more byte does not. */
	pro_ws_reader_init(&r, LIMIT);
	put_frame(in, FIN | PRO_WS_BINARY, p, LIMIT);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.len, LIMIT);
	free(m.data);
	pro_ws_reader_fini(&r);
	put_frame(in, FIN | PRO_WS_BINARY, p, LIMIT + 1);
	expect_fail(in, PRO_WS_CLOSE_TOO_BIG);
	/* Fragments add up: the fragment header that crosses it fails. */
	put_frame(in, PRO_WS_TEXT, p, LIMIT - 10);
	put_frame(in, PRO_WS_CONT, p, 10);
	evbuffer_add(in, "\x80\x8b", 2); /* FIN CONT, 11 bytes: header only */
	expect_fail(in, PRO_WS_CLOSE_TOO_BIG);
	evbuffer_free(in);
}

static void
test_utf8_text_valid_and_invalid(void)
{
	static const char *good[] = { "", "plain", "κόσμε", "\xf0\x9f\x98\x80",
		"\xef\xbf\xbf", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf" };
	static const char *bad[] = {
		"\xc0\xaf",         /* overlong '/' */
		"\xe0\x80\xaf",     /* overlong, 3 bytes */
		"\xf0\x80\x80\xaf", /* overlong, 4 bytes */
		"\xed\xa0\x80",     /* surrogate U+D800 */
		"\xed\xbf\xbf",     /* surrogate U+DFFF */
		"\xf4\x90\x80\x80", /* U+110000 */
		"\xf5\x80\x80\x80", "\xff", "\x80",
		"ab\xce", /* truncated end */
	};
	struct evbuffer *in = evbuffer_new();
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		pro_ws_msg m;
		uint8_t f[64];

		put_str(in, FIN | PRO_WS_TEXT, good[i]);
		size_t n = evbuffer_remove(in, f, sizeof(f));
		ASSERT_EQ(read_one(f, n, &m), 1);
		ASSERT_STREQ(m.data, good[i]);
		free(m.data);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_str(in, FIN | PRO_WS_TEXT, bad[i]);
		expect_fail(in, PRO_WS_CLOSE_BAD_DATA);
		/* The same bytes are fine in a binary message. */
		pro_ws_msg m;
		uint8_t f[64];
		put_str(in, FIN | PRO_WS_BINARY, bad[i]);
		size_t n = evbuffer_remove(in, f, sizeof(f));
		ASSERT_EQ(read_one(f, n, &m), 1);
		free(m.data);
	}
	evbuffer_free(in);
}

static void
test_utf8_split_across_fragments(void)
{
	/* "κόσμε" cut inside characters, with a ping in between. */
	static const char s[] = "κόσμε";
	struct evbuffer *in = evbuffer_new();
	pro_ws_reader r;
	pro_ws_msg m;

	pro_ws_reader_init(&r, LIMIT);
	put_frame(in, PRO_WS_TEXT, s, 1);
	put_frame(in, PRO_WS_CONT, s + 1, 4);
	put_frame(in, FIN | PRO_WS_PING, "", 0);
	put_frame(in, FIN | PRO_WS_CONT, s + 5, sizeof(s) - 6);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_PING);
	free(m.data);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_TEXT);
	ASSERT_STREQ(m.data, s);
	free(m.data);
	/* A message that ends inside a character is invalid. */
	put_frame(in, PRO_WS_TEXT, "ab", 2);
	put_frame(in, FIN | PRO_WS_CONT, s, 1);
	ASSERT_EQ(pro_ws_read(&r, in, &m), -1);
	ASSERT_EQ(m.close_code, PRO_WS_CLOSE_BAD_DATA);
	pro_ws_reader_fini(&r);
	/* Fail fast: the bad fragment fails before the message ends (the
	 * final fragment is never sent). */
	put_frame(in, PRO_WS_TEXT, "\xce", 1);
	put_frame(in, PRO_WS_CONT, "\x41", 1);
	expect_fail(in, PRO_WS_CLOSE_BAD_DATA);
	evbuffer_free(in);
}

/* Feeds `all` one byte at a time; returns the result of the first read
 * that is not 0 and how many bytes had been fed then. */
static int
feed_bytewise(pro_ws_reader *r, const uint8_t *all, size_t n, size_t *fed,
    struct evbuffer *in, pro_ws_msg *m)
{
	int rc = 0;

	for (*fed = 0; *fed < n && rc == 0;) {
		evbuffer_add(in, all + (*fed)++, 1);
		rc = pro_ws_read(r, in, m);
	}
	return rc;
}

static void
test_utf8_bytewise_fail_fast(void)
{
	/* One 20-byte text frame whose 8th payload byte is invalid: the error
	 * comes as soon as that byte arrives, mid-frame. */
	struct evbuffer *src = evbuffer_new(), *in = evbuffer_new();
	const char *s = "valid\xce\xbaX then more text";
	uint8_t all[64];
	size_t n, fed;
	pro_ws_reader r;
	pro_ws_msg m;

	put_frame(src, FIN | PRO_WS_TEXT, s, 20);
	n = evbuffer_remove(src, all, sizeof(all));
	pro_ws_reader_init(&r, LIMIT);
	ASSERT_EQ(feed_bytewise(&r, all, n, &fed, in, &m), 1);
	ASSERT_EQ(fed, n);
	ASSERT_EQ(m.len, 20);
	free(m.data);
	pro_ws_reader_fini(&r);
	all[6 + 7] ^= 0xa7; /* 'X' (0x58) becomes 0xff, never valid */
	pro_ws_reader_init(&r, LIMIT);
	ASSERT_EQ(feed_bytewise(&r, all, n, &fed, in, &m), -1);
	ASSERT_EQ(m.close_code, PRO_WS_CLOSE_BAD_DATA);
	ASSERT_EQ(fed, 6 + 8);
	pro_ws_reader_fini(&r);
	evbuffer_free(src);
	evbuffer_free(in);
}

static void
test_utf8_bytewise_across_fragments(void)
{
	/* A 4-byte character cut over three fragments, read a byte at a
	 * time; then the same with its last byte made invalid. */
	static const char e[] = "\xf0\x9f\x98\x80";
	struct evbuffer *src = evbuffer_new(), *in = evbuffer_new();
	uint8_t all[64];
	size_t n, fed;
	pro_ws_reader r;
	pro_ws_msg m;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		put_frame(src, PRO_WS_TEXT, e, 1);
		put_frame(src, PRO_WS_CONT, e + 1, 2);
		put_frame(src, FIN | PRO_WS_CONT, pass ? "\x20" : e + 3, 1);
		n = evbuffer_remove(src, all, sizeof(all));
		pro_ws_reader_init(&r, LIMIT);
		if (pass == 0) {
			ASSERT_EQ(feed_bytewise(&r, all, n, &fed, in, &m), 1);
			ASSERT_STREQ(m.data, e);
			free(m.data);
		} else {
			ASSERT_EQ(feed_bytewise(&r, all, n, &fed, in, &m), -1);
			ASSERT_EQ(m.close_code, PRO_WS_CLOSE_BAD_DATA);
			ASSERT_EQ(fed, n); /* the bad byte is the last one */
		}
		ASSERT_EQ(fed, n);
		pro_ws_reader_fini(&r);
		evbuffer_drain(in, evbuffer_get_length(in));
	}
	evbuffer_free(src);
	evbuffer_free(in);
}

static void
test_close_frames(void)
{
	static const unsigned ok[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009,
		1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999 };
	static const unsigned bad[] = { 0, 1, 999, 1004, 1005, 1006, 1015, 1016,
		1100, 2000, 2999, 5000, 65535 };
	struct evbuffer *in = evbuffer_new();
	pro_ws_reader r;
	pro_ws_msg m;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		pro_ws_reader_init(&r, LIMIT);
		put_close(in, ok[i], "bye κ");
		ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
		ASSERT_EQ(m.opcode, PRO_WS_CLOSE);
		ASSERT_EQ(m.close_code, ok[i]);
		ASSERT_STREQ(m.data, "bye κ");
		free(m.data);
		pro_ws_reader_fini(&r);
		ASSERT_TRUE(pro_ws_close_code_valid(ok[i]));
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_close(in, bad[i], "");
		expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
		ASSERT_TRUE(!pro_ws_close_code_valid(bad[i]));
	}
	/* Empty payload: no status (1005). */
	pro_ws_reader_init(&r, LIMIT);
	put_frame(in, FIN | PRO_WS_CLOSE, "", 0);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.close_code, PRO_WS_CLOSE_NO_STATUS);
	ASSERT_EQ(m.len, 0);
	free(m.data);
	pro_ws_reader_fini(&r);
	/* A 1-byte payload cannot hold a code. */
	put_frame(in, FIN | PRO_WS_CLOSE, "\x03", 1);
	expect_fail(in, PRO_WS_CLOSE_PROTOCOL);
	/* The reason must be UTF-8. */
	put_close(in, 1000, "\xed\xa0\x80");
	expect_fail(in, PRO_WS_CLOSE_BAD_DATA);
	put_close(in, 1000, "ab\xce");
	expect_fail(in, PRO_WS_CLOSE_BAD_DATA);
	evbuffer_free(in);
}

static void
test_ping_pong(void)
{
	struct evbuffer *in = evbuffer_new();
	pro_ws_reader r;
	pro_ws_msg m;

	pro_ws_reader_init(&r, LIMIT);
	put_frame(in, FIN | PRO_WS_PING, "\x00\xffp", 3);
	put_frame(in, FIN | PRO_WS_PING, "", 0);
	put_str(in, FIN | PRO_WS_PONG, "pong");
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_PING);
	ASSERT_EQ(m.len, 3);
	ASSERT_MEMEQ(m.data, "\x00\xffp", 3); /* payload is not text */
	free(m.data);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_PING);
	ASSERT_EQ(m.len, 0);
	ASSERT_STREQ(m.data, "");
	free(m.data);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_PONG);
	ASSERT_STREQ(m.data, "pong");
	free(m.data);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 0);
	pro_ws_reader_fini(&r);
	evbuffer_free(in);
}

static void
test_interleaved_control_frames(void)
{
	struct evbuffer *in = evbuffer_new();
	pro_ws_reader r;
	pro_ws_msg m;

	pro_ws_reader_init(&r, LIMIT);
	put_str(in, PRO_WS_TEXT, "Hel");
	put_str(in, FIN | PRO_WS_PING, "1");
	put_str(in, PRO_WS_CONT, "lo");
	put_str(in, FIN | PRO_WS_PONG, "2");
	put_str(in, PRO_WS_CONT, "");
	put_str(in, FIN | PRO_WS_CONT, " world");
	put_str(in, FIN | PRO_WS_BINARY, "next");
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_PING);
	ASSERT_STREQ(m.data, "1");
	free(m.data);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_PONG);
	free(m.data);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_TEXT);
	ASSERT_STREQ(m.data, "Hello world");
	ASSERT_EQ(m.len, 11);
	free(m.data);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_BINARY);
	free(m.data);
	ASSERT_TRUE(r.frag == NULL); /* the assembly buffer is gone */
	/* A close inside a fragmented message is fine too. */
	put_str(in, PRO_WS_BINARY, "x");
	put_close(in, 1001, "");
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.opcode, PRO_WS_CLOSE);
	ASSERT_EQ(m.close_code, 1001);
	free(m.data);
	pro_ws_reader_fini(&r); /* frees the half-built message */
	evbuffer_free(in);
}

static void
test_partial_frames_bytewise(void)
{
	struct evbuffer *src = evbuffer_new(), *in = evbuffer_new();
	static uint8_t all[80000];
	char big[70000];
	size_t n, i, got = 0;
	pro_ws_reader r;
	pro_ws_msg m;

	memset(big, 'b', sizeof(big));
	put_str(src, FIN | PRO_WS_TEXT, "one");
	put_str(src, PRO_WS_BINARY, "t");
	put_str(src, FIN | PRO_WS_PING, "p");
	put_str(src, FIN | PRO_WS_CONT, "wo");
	put_frame(src, FIN | PRO_WS_BINARY, big, 300);
	put_frame(src, FIN | PRO_WS_TEXT, big, sizeof(big));
	put_close(src, 1000, "end");
	n = evbuffer_remove(src, all, sizeof(all));
	pro_ws_reader_init(&r, 1 << 20);
	for (i = 0; i < n; i++) {
		int rc;

		evbuffer_add(in, all + i, 1);
		rc = pro_ws_read(&r, in, &m);
		ASSERT_TRUE(rc == 0 || rc == 1);
		if (rc == 0) {
			continue;
		}
		got++;
		if (got == 1) {
			ASSERT_STREQ(m.data, "one");
		} else if (got == 2) {
			ASSERT_EQ(m.opcode, PRO_WS_PING);
		} else if (got == 3) {
			ASSERT_EQ(m.opcode, PRO_WS_BINARY);
			ASSERT_STREQ(m.data, "two");
		} else if (got == 4) {
			ASSERT_EQ(m.len, 300);
		} else if (got == 5) {
			ASSERT_EQ(m.len, sizeof(big));
			ASSERT_MEMEQ(m.data, big, sizeof(big));
		} else {
			ASSERT_EQ(m.opcode, PRO_WS_CLOSE);
			ASSERT_STREQ(m.data, "end");
			ASSERT_EQ(i, n - 1);
		}
		ASSERT_EQ(evbuffer_get_length(in), 0);
		free(m.data);
	}
	ASSERT_EQ(got, 6);
	pro_ws_reader_fini(&r);
	evbuffer_free(src);
	evbuffer_free(in);
}

static void
test_partial_frame_not_copied(void)
{
	/* While a frame is incomplete it stays in `in` and the reader
	 * allocates nothing. */
	struct evbuffer *src = evbuffer_new(), *in = evbuffer_new();
	char p[1000];
	pro_ws_reader r;
	pro_ws_msg m;

	memset(p, 'z', sizeof(p));
	put_frame(src, FIN | PRO_WS_TEXT, p, sizeof(p));
	pro_ws_reader_init(&r, LIMIT);
	evbuffer_remove_buffer(src, in, 500);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 0);
	ASSERT_EQ(evbuffer_get_length(in), 500);
	ASSERT_TRUE(r.frag == NULL && m.data == NULL);
	evbuffer_add_buffer(in, src);
	ASSERT_EQ(pro_ws_read(&r, in, &m), 1);
	ASSERT_EQ(m.len, sizeof(p));
	free(m.data);
	pro_ws_reader_fini(&r);
	ASSERT_TRUE(sizeof(pro_ws_reader) <= 32);
	evbuffer_free(src);
	evbuffer_free(in);
}

static void
test_failure_is_sticky(void)
{
	struct evbuffer *in = evbuffer_new();
	pro_ws_reader r;
	pro_ws_msg m;

	pro_ws_reader_init(&r, LIMIT);
	put_str(in, PRO_WS_TEXT, "a");
	put_str(in, FIN | 0x3, "x");
	put_str(in, FIN | PRO_WS_TEXT, "fine");
	ASSERT_EQ(pro_ws_read(&r, in, &m), -1);
	ASSERT_EQ(m.close_code, PRO_WS_CLOSE_PROTOCOL);
	ASSERT_TRUE(r.frag == NULL);
	ASSERT_EQ(pro_ws_read(&r, in, &m), -1);
	ASSERT_EQ(m.close_code, PRO_WS_CLOSE_PROTOCOL);
	pro_ws_reader_fini(&r);
	evbuffer_free(in);
}

static void
test_writer_frames(void)
{
	static const size_t lens[] = { 0, 125, 126, 65535, 65536, 70000 };
	static const size_t hlen[] = { 2, 2, 4, 4, 10, 10 };
	struct evbuffer *out = evbuffer_new();
	char *p = calloc(1, 70000);
	uint8_t h[10];
	size_t i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		ASSERT_EQ(
		    pro_ws_frame_header(h, PRO_WS_TEXT, lens[i]), hlen[i]);
		ASSERT_EQ(h[0], 0x81);
		ASSERT_OK(pro_ws_write_frame(out, PRO_WS_BINARY, p, lens[i]));
		ASSERT_EQ(evbuffer_get_length(out), hlen[i] + lens[i]);
		evbuffer_drain(out, evbuffer_get_length(out));
	}
	pro_ws_frame_header(h, PRO_WS_BINARY, 65536);
	ASSERT_MEMEQ(h, "\x82\x7f\0\0\0\0\0\x01\0\0", 10);
	pro_ws_frame_header(h, PRO_WS_PONG, 300);
	ASSERT_MEMEQ(h, "\x8a\x7e\x01\x2c", 4);
	ASSERT_OK(pro_ws_write_frame(out, PRO_WS_TEXT, "Hello", 5));
	ASSERT_EQ(evbuffer_get_length(out), 7);
	ASSERT_MEMEQ(
	    evbuffer_pullup(out, -1), "\x81\x05Hello", 7); /* RFC 5.7 */
	free(p);
	evbuffer_free(out);
}

static void
test_writer_close(void)
{
	struct evbuffer *out = evbuffer_new();
	char reason[200];
	uint8_t *b;
	size_t i;

	ASSERT_OK(pro_ws_write_close(out, 1000, "bye"));
	ASSERT_EQ(evbuffer_get_length(out), 7);
	ASSERT_MEMEQ(evbuffer_pullup(out, -1),
	    "\x88\x05\x03\xe8"
	    "bye",
	    7);
	evbuffer_drain(out, 7);
	ASSERT_OK(pro_ws_write_close(out, PRO_WS_CLOSE_NO_STATUS, "x"));
	ASSERT_MEMEQ(evbuffer_pullup(out, -1), "\x88\x00", 2);
	evbuffer_drain(out, 2);
	/* 2-byte characters: 123 would cut one in half, so 122 are kept. */
	for (i = 0; i + 1 < sizeof(reason); i += 2) {
		memcpy(reason + i, "\xce\xba", 2);
	}
	reason[sizeof(reason) - 1] = '\0';
	ASSERT_OK(pro_ws_write_close(out, 1009, reason));
	b = evbuffer_pullup(out, -1);
	ASSERT_EQ(b[1], 2 + 122);
	ASSERT_TRUE(pro_utf8_valid(b + 4, 122));
	evbuffer_free(out);
}

static void
test_utf8_validator(void)
{
	static const char *s[] = { "a\xc2\x80z", "\xdf\xbf", "\xe0\xa0\x80",
		"\xe1\x80\x80", "\xec\xbf\xbf", "\xee\x80\x80",
		"\xf0\x90\x80\x80", "\xf3\xbf\xbf\xbf", "\xf4\x80\x80\x80",
		"0123456789abcdef\xc3\xa9" };
	static const char *x[] = { "\xc1\xbf", "\xe0\x9f\xbf", "\xed\xa0\x80",
		"\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xc2\x41", "\xc2",
		"0123456789abcde\xfe", "\xe1\x80\xc0" };
	size_t i, j;

	for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		uint8_t st = PRO_UTF8_ACCEPT;

		ASSERT_TRUE(pro_utf8_valid(s[i], strlen(s[i])));
		for (j = 0; s[i][j] != '\0'; j++) {
			ASSERT_OK(pro_utf8_feed(&st, s[i] + j, 1));
		}
		ASSERT_TRUE(pro_utf8_complete(st));
	}
	for (i = 0; i < sizeof(x) / sizeof(x[0]); i++) {
		uint8_t st = PRO_UTF8_ACCEPT;
		int rc = 0;

		ASSERT_TRUE(!pro_utf8_valid(x[i], strlen(x[i])));
		for (j = 0; x[i][j] != '\0' && rc == 0; j++) {
			rc = pro_utf8_feed(&st, x[i] + j, 1);
		}
		ASSERT_TRUE(rc == -1 || !pro_utf8_complete(st));
	}
	/* Rejection is sticky. */
	{
		uint8_t st = PRO_UTF8_ACCEPT;

		ASSERT_EQ(pro_utf8_feed(&st, "\xff", 1), -1);
		ASSERT_EQ(pro_utf8_feed(&st, "a", 1), -1);
	}
}

TEST_LIST{
	TEST_ENTRY(test_rfc_masked_hello),
	TEST_ENTRY(test_unmasked_frame_rejected),
	TEST_ENTRY(test_rsv_bits_rejected),
	TEST_ENTRY(test_unknown_opcodes_rejected),
	TEST_ENTRY(test_control_frame_max_125),
	TEST_ENTRY(test_control_frame_fragmented),
	TEST_ENTRY(test_continuation_without_start),
	TEST_ENTRY(test_new_message_inside_fragmented),
	TEST_ENTRY(test_length_16bit),
	TEST_ENTRY(test_length_64bit),
	TEST_ENTRY(test_length_64bit_msb_rejected),
	TEST_ENTRY(test_size_limit_1009_before_allocation),
	TEST_ENTRY(test_utf8_text_valid_and_invalid),
	TEST_ENTRY(test_utf8_split_across_fragments),
	TEST_ENTRY(test_utf8_bytewise_fail_fast),
	TEST_ENTRY(test_utf8_bytewise_across_fragments),
	TEST_ENTRY(test_close_frames),
	TEST_ENTRY(test_ping_pong),
	TEST_ENTRY(test_interleaved_control_frames),
	TEST_ENTRY(test_partial_frames_bytewise),
	TEST_ENTRY(test_partial_frame_not_copied),
	TEST_ENTRY(test_failure_is_sticky),
	TEST_ENTRY(test_writer_frames),
	TEST_ENTRY(test_writer_close),
	TEST_ENTRY(test_utf8_validator),
};

TEST_MAIN()
