/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for proto/wire: round trips of every kind, and that truncated,
 * mutated, random and hostile input is rejected without crashing. */
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proto/wire.h"
#include "tests/unit/test.h"

static size_t used_;

static pro_wire_hdr
hdr(const char *sender)
{
	pro_wire_hdr h;

	memset(&h, 0, sizeof(h));
	h.sender = pro_wire_cstr(sender);
	h.incarnation = 1700000000123ull;
	h.start_id = 1700000000000ull;
	h.seq = 42;
	return h;
}

static bool
str_is(pro_wire_str s, const char *c)
{
	return s.ptr != NULL && s.len == strlen(c) &&
	    memcmp(s.ptr, c, s.len) == 0;
}

static void
roundtrip_digest(void)
{
	pro_wire_member in[3] = {
		{ pro_wire_cstr("n1"), pro_wire_cstr("tcp://10.0.0.1:4002"),
		    PRO_WIRE_ALIVE, 5, 100,
		    pro_wire_cstr("tcp://10.0.0.1:4003") },
		{ pro_wire_cstr("n2"), pro_wire_cstr(""), PRO_WIRE_SUSPECT, 6,
		    200, pro_wire_cstr("") },
		{ pro_wire_cstr("n3"), pro_wire_cstr("tcp://[::1]:4002"),
		    PRO_WIRE_LEFT, UINT64_MAX, 300, pro_wire_cstr("") },
	};
	pro_wire_str skip[2] = { pro_wire_cstr("n7"), pro_wire_cstr("n8") };
	pro_wire_hdr h = hdr("n1");
	pro_wire_buf b;
	pro_wire_msg m;

	h.dest = pro_wire_cstr("n2");
	h.skip = skip;
	h.n_skip = 2;
	pro_wire_buf_init(&b);
	ASSERT_OK(pro_wire_encode_digest(&b, PRO_WIRE_PING_ACK, &h, in, 3));
	ASSERT_OK(pro_wire_decode(b.data, b.len, &used_, &m));
	ASSERT_EQ(used_, b.len);
	ASSERT_EQ(m.version, PRO_WIRE_VERSION);
	ASSERT_EQ(m.kind, PRO_WIRE_PING_ACK);
	ASSERT_EQ(m.skip, PRO_WIRE_SKIP_NONE);
	ASSERT_TRUE(str_is(m.hdr.sender, "n1"));
	ASSERT_EQ(m.hdr.incarnation, 1700000000123ull);
	ASSERT_EQ(m.hdr.start_id, 1700000000000ull);
	ASSERT_EQ(m.hdr.seq, 42);
	ASSERT_TRUE(str_is(m.hdr.dest, "n2"));
	ASSERT_EQ(m.hdr.n_skip, 2);
	ASSERT_TRUE(str_is(m.hdr.skip[1], "n8"));
	ASSERT_EQ(m.u.digest.n, 3);
	ASSERT_TRUE(str_is(m.u.digest.members[0].addr, "tcp://10.0.0.1:4002"));
	ASSERT_TRUE(str_is(m.u.digest.members[1].addr, ""));
	ASSERT_TRUE(
	    str_is(m.u.digest.members[0].direct, "tcp://10.0.0.1:4003"));
	ASSERT_TRUE(str_is(m.u.digest.members[1].direct, ""));
	ASSERT_EQ(m.u.digest.members[1].status, PRO_WIRE_SUSPECT);
	ASSERT_EQ(m.u.digest.members[2].incarnation, UINT64_MAX);
	ASSERT_EQ(m.u.digest.members[2].start_id, 300);
	ASSERT_EQ(m.u.digest.members[2].status, PRO_WIRE_LEFT);
	pro_wire_msg_release(&m);

	/* An empty digest and a nil destination. */
	h.dest = pro_wire_cstr(NULL);
	h.n_skip = 0;
	b.len = 0;
	ASSERT_OK(pro_wire_encode_digest(&b, PRO_WIRE_PING, &h, NULL, 0));
	ASSERT_OK(pro_wire_decode(b.data, b.len, &used_, &m));
	ASSERT_EQ(m.kind, PRO_WIRE_PING);
	ASSERT_TRUE(m.hdr.dest.ptr == NULL);
	ASSERT_EQ(m.u.digest.n, 0);
	pro_wire_msg_release(&m);
	pro_wire_buf_free(&b);
}

static void
roundtrip_others(void)
{
	pro_wire_hdr h = hdr("node-a");
	const char payload[] = "{\"body\":\"hi\",\"id\":1}";
	unsigned char bytes[300];
	pro_wire_buf b;
	pro_wire_msg m;

	for (size_t i = 0; i < sizeof(bytes); i++) {
		bytes[i] = (unsigned char)i;
	}
	pro_wire_buf_init(&b);
	ASSERT_OK(pro_wire_encode_leave(&b, &h));
	ASSERT_OK(pro_wire_decode(b.data, b.len, &used_, &m));
	ASSERT_EQ(m.kind, PRO_WIRE_LEAVE);
	ASSERT_TRUE(str_is(m.hdr.sender, "node-a"));
	pro_wire_msg_release(&m);

	b.len = 0;
	ASSERT_OK(pro_wire_encode_broadcast(&b, &h, pro_wire_cstr("video:42"),
	    pro_wire_cstr("new_comment"), payload, strlen(payload),
	    pro_wire_cstr("node-a"), 7));
	ASSERT_OK(pro_wire_decode(b.data, b.len, &used_, &m));
	ASSERT_EQ(m.kind, PRO_WIRE_BROADCAST);
	ASSERT_TRUE(str_is(m.u.broadcast.topic, "video:42"));
	ASSERT_TRUE(str_is(m.u.broadcast.event, "new_comment"));
	ASSERT_TRUE(str_is(m.u.broadcast.payload, payload));
	ASSERT_TRUE(str_is(m.u.broadcast.publisher, "node-a"));
	ASSERT_EQ(m.u.broadcast.seq, 7);
	pro_wire_msg_release(&m);

	b.len = 0;
	ASSERT_OK(pro_wire_encode_app(&b, &h, 3, bytes, sizeof(bytes)));
	ASSERT_OK(pro_wire_decode(b.data, b.len, &used_, &m));
	ASSERT_EQ(m.kind, PRO_WIRE_APP);
	ASSERT_EQ(m.u.app.app_kind, 3);
	ASSERT_EQ(m.u.app.bytes.len, sizeof(bytes));
	ASSERT_MEMEQ(m.u.app.bytes.ptr, bytes, sizeof(bytes));
	pro_wire_msg_release(&m);

	/* Empty payloads are fine. */
	b.len = 0;
	ASSERT_OK(pro_wire_encode_app(&b, &h, 0, NULL, 0));
	ASSERT_OK(pro_wire_decode(b.data, b.len, &used_, &m));
	ASSERT_EQ(m.u.app.bytes.len, 0);
	pro_wire_msg_release(&m);
	pro_wire_buf_free(&b);
}

/* Several envelopes appended into one frame decode one after another. */
static void
frame(void)
{
	pro_wire_hdr h = hdr("n1");
	pro_wire_buf b;
	pro_wire_msg m;
	size_t off = 0;
	int n = 0;

	pro_wire_buf_init(&b);
	for (uint64_t i = 1; i <= 100; i++) {
		h.seq = i;
		ASSERT_OK(pro_wire_encode_broadcast(&b, &h, pro_wire_cstr("t"),
		    pro_wire_cstr("e"), "{}", 2, pro_wire_cstr("n1"), i));
	}
	ASSERT_OK(pro_wire_encode_leave(&b, &h));
	while (off < b.len) {
		ASSERT_OK(
		    pro_wire_decode(b.data + off, b.len - off, &used_, &m));
		n++;
		if (n <= 100) {
			ASSERT_EQ(m.kind, PRO_WIRE_BROADCAST);
			ASSERT_EQ(m.u.broadcast.seq, (uint64_t)n);
		} else {
			ASSERT_EQ(m.kind, PRO_WIRE_LEAVE);
		}
		pro_wire_msg_release(&m);
		off += used_;
	}
	ASSERT_EQ(n, 101);
	ASSERT_EQ(off, b.len);
	pro_wire_buf_free(&b);
}

static void
encode_limits(void)
{
	char longname[PRO_WIRE_NAME_MAX + 2];
	char topic[PRO_WIRE_TOPIC_MAX + 2];
	pro_wire_hdr h = hdr("n1");
	pro_wire_member bad = { pro_wire_cstr("x"), pro_wire_cstr(""), 4, 1, 1,
		pro_wire_cstr("") };
	pro_wire_buf b;

	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	memset(topic, 't', sizeof(topic) - 1);
	topic[sizeof(topic) - 1] = '\0';
	pro_wire_buf_init(&b);
	ASSERT_EQ(
	    pro_wire_encode_digest(&b, PRO_WIRE_PING, &h, &bad, 1), PL_EINVAL);
	ASSERT_EQ(
	    pro_wire_encode_digest(&b, PRO_WIRE_LEAVE, &h, NULL, 0), PL_EINVAL);
	h.sender = pro_wire_cstr(longname);
	ASSERT_EQ(pro_wire_encode_leave(&b, &h), PL_EINVAL);
	h.sender = pro_wire_cstr("has space");
	ASSERT_EQ(pro_wire_encode_leave(&b, &h), PL_EINVAL);
	h.sender = pro_wire_cstr("n1");
	ASSERT_EQ(pro_wire_encode_broadcast(&b, &h, pro_wire_cstr(topic),
		      pro_wire_cstr("e"), "{}", 2, pro_wire_cstr("n1"), 1),
	    PL_EINVAL);
	h.n_skip = PRO_WIRE_SKIP_MAX + 1;
	ASSERT_EQ(pro_wire_encode_leave(&b, &h), PL_EINVAL);
	ASSERT_EQ(b.len, 0); /* failed encoders leave the buffer alone */
	pro_wire_buf_free(&b);
}

/* Every strict prefix of a valid message is rejected. */
static void
truncated(void)
{
	pro_wire_member mem[2] = {
		{ pro_wire_cstr("n1"), pro_wire_cstr("tcp://a:1"), 0, 1, 1,
		    pro_wire_cstr("tcp://a:2") },
		{ pro_wire_cstr("n2"), pro_wire_cstr("tcp://b:1"), 2, 9, 9,
		    pro_wire_cstr("") },
	};
	pro_wire_hdr h = hdr("n1");
	pro_wire_buf b;
	pro_wire_msg m;

	pro_wire_buf_init(&b);
	ASSERT_OK(pro_wire_encode_digest(&b, PRO_WIRE_PING, &h, mem, 2));
	for (size_t n = 0; n < b.len; n++) {
		ASSERT_EQ(pro_wire_decode(b.data, n, &used_, &m), PL_EPROTO);
	}
	b.len = 0;
	ASSERT_OK(pro_wire_encode_broadcast(&b, &h, pro_wire_cstr("t"),
	    pro_wire_cstr("e"), "{\"a\":1}", 7, pro_wire_cstr("n1"), 1));
	for (size_t n = 0; n < b.len; n++) {
		ASSERT_EQ(pro_wire_decode(b.data, n, &used_, &m), PL_EPROTO);
	}
	/* Bytes after an envelope belong to the next one in the frame. */
	{
		char *x = malloc(b.len + 1);
		memcpy(x, b.data, b.len);
		x[b.len] = 0x01;
		ASSERT_OK(pro_wire_decode(x, b.len + 1, &used_, &m));
		ASSERT_EQ(used_, b.len);
		pro_wire_msg_release(&m);
		ASSERT_EQ(pro_wire_decode(x + used_, 1, &used_, &m), PL_EPROTO);
		free(x);
	}
	pro_wire_buf_free(&b);
}

static uint64_t rng = 88172645463325252ull;

static uint64_t
xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Random bytes and randomly mutated valid messages never crash; whatever
 * decodes has fields within their limits. */
static void
random_input(void)
{
	pro_wire_member mem[2] = {
		{ pro_wire_cstr("n1"), pro_wire_cstr("tcp://a:1"), 0, 1, 1,
		    pro_wire_cstr("tcp://a:2") },
		{ pro_wire_cstr("n2"), pro_wire_cstr("tcp://b:1"), 2, 9, 9,
		    pro_wire_cstr("") },
	};
	pro_wire_hdr h = hdr("n1");
	unsigned char buf[512];
	pro_wire_buf b;
	pro_wire_msg m;
	int ok = 0;

	for (int i = 0; i < 100000; i++) {
		size_t n = xorshift() % sizeof(buf);
		for (size_t j = 0; j < n; j++) {
			buf[j] = (unsigned char)xorshift();
		}
		if (n > 0 && (i & 1)) {
			buf[0] = 0x90 | (unsigned char)(xorshift() % 16);
		}
		if (pro_wire_decode(buf, n, &used_, &m) == PL_OK) {
			pro_wire_msg_release(&m);
		}
	}
	pro_wire_buf_init(&b);
	ASSERT_OK(pro_wire_encode_digest(&b, PRO_WIRE_PING, &h, mem, 2));
	for (int i = 0; i < 100000; i++) {
		char *x = malloc(b.len);
		int flips = 1 + (int)(xorshift() % 3);

		memcpy(x, b.data, b.len);
		for (int k = 0; k < flips; k++) {
			x[xorshift() % b.len] = (char)xorshift();
		}
		if (pro_wire_decode(x, b.len, &used_, &m) == PL_OK) {
			ok++;
			ASSERT_TRUE(m.skip != PRO_WIRE_SKIP_NONE ||
			    (m.hdr.sender.len >= 1 &&
				m.hdr.sender.len <= PRO_WIRE_NAME_MAX));
			if (m.skip == PRO_WIRE_SKIP_NONE &&
			    (m.kind == PRO_WIRE_PING ||
				m.kind == PRO_WIRE_PING_ACK)) {
				ASSERT_TRUE(
				    m.u.digest.n <= PRO_WIRE_DIGEST_MAX);
				for (size_t k = 0; k < m.u.digest.n; k++) {
					ASSERT_TRUE(
					    m.u.digest.members[k].status <=
					    PRO_WIRE_LEFT);
				}
			}
			pro_wire_msg_release(&m);
		}
		free(x);
	}
	ASSERT_TRUE(ok > 0); /* some mutations (e.g. in a number) stay valid */
	pro_wire_buf_free(&b);
}

/* Container counts far larger than the input are refused before msgpack-c
 * could allocate for them; so is deep nesting. */
static void
hostile_counts(void)
{
	static const unsigned char arr32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff,
		0x01 };
	static const unsigned char map32[] = { 0xdf, 0x7f, 0xff, 0xff, 0xff,
		0x01, 0x01 };
	static const unsigned char str32[] = { 0xdb, 0xff, 0xff, 0xff, 0xf0,
		'a' };
	static const unsigned char bin32[] = { 0xc6, 0x7f, 0xff, 0xff, 0xff };
	static const unsigned char never[] = { 0xc1 };
	unsigned char deep[200];
	pro_wire_msg m;

	ASSERT_EQ(pro_wire_decode(arr32, sizeof(arr32), &used_, &m), PL_EPROTO);
	ASSERT_EQ(pro_wire_decode(map32, sizeof(map32), &used_, &m), PL_EPROTO);
	ASSERT_EQ(pro_wire_decode(str32, sizeof(str32), &used_, &m), PL_EPROTO);
	ASSERT_EQ(pro_wire_decode(bin32, sizeof(bin32), &used_, &m), PL_EPROTO);
	ASSERT_EQ(pro_wire_decode(never, sizeof(never), &used_, &m), PL_EPROTO);
	ASSERT_EQ(pro_wire_decode(NULL, 0, &used_, &m), PL_EPROTO);
	memset(deep, 0x91, sizeof(deep));
	deep[sizeof(deep) - 1] = 0x01;
	ASSERT_EQ(pro_wire_decode(deep, sizeof(deep), &used_, &m), PL_EPROTO);
}

/* Builds [version, kind, "n1", 1, 1, 1, nil, [], extra...] by hand. */
static void
pack_hdr(msgpack_packer *pk, uint64_t version, uint64_t kind, size_t body)
{
	msgpack_pack_array(pk, 8 + body);
	msgpack_pack_uint64(pk, version);
	msgpack_pack_uint64(pk, kind);
	msgpack_pack_str(pk, 2);
	msgpack_pack_str_body(pk, "n1", 2);
	msgpack_pack_uint64(pk, 1);
	msgpack_pack_uint64(pk, 1);
	msgpack_pack_uint64(pk, 1);
	msgpack_pack_nil(pk);
	msgpack_pack_array(pk, 0);
}

static void
versions_and_kinds(void)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	pro_wire_msg m;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

	/* A newer version is skipped whatever follows. */
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint64(&pk, PRO_WIRE_VERSION + 1);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_map(&pk, 0);
	ASSERT_OK(pro_wire_decode(sb.data, sb.size, &used_, &m));
	ASSERT_EQ(m.skip, PRO_WIRE_SKIP_VERSION);
	pro_wire_msg_release(&m);

	/* An unknown kind keeps its header. */
	msgpack_sbuffer_clear(&sb);
	pack_hdr(&pk, PRO_WIRE_VERSION, 99, 1);
	msgpack_pack_true(&pk);
	ASSERT_OK(pro_wire_decode(sb.data, sb.size, &used_, &m));
	ASSERT_EQ(m.skip, PRO_WIRE_SKIP_KIND);
	ASSERT_EQ(m.kind, 99);
	ASSERT_TRUE(str_is(m.hdr.sender, "n1"));
	pro_wire_msg_release(&m);

	/* Extra trailing fields in a known kind are tolerated. */
	msgpack_sbuffer_clear(&sb);
	pack_hdr(&pk, PRO_WIRE_VERSION, PRO_WIRE_LEAVE, 2);
	msgpack_pack_uint64(&pk, 5);
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "x", 1);
	ASSERT_OK(pro_wire_decode(sb.data, sb.size, &used_, &m));
	ASSERT_EQ(m.kind, PRO_WIRE_LEAVE);
	pro_wire_msg_release(&m);

	/* Version 0, a missing body, wrong types: malformed. */
	msgpack_sbuffer_clear(&sb);
	pack_hdr(&pk, 0, PRO_WIRE_LEAVE, 0);
	ASSERT_EQ(pro_wire_decode(sb.data, sb.size, &used_, &m), PL_EPROTO);
	msgpack_sbuffer_clear(&sb);
	pack_hdr(&pk, PRO_WIRE_VERSION, PRO_WIRE_BROADCAST, 0);
	ASSERT_EQ(pro_wire_decode(sb.data, sb.size, &used_, &m), PL_EPROTO);
	msgpack_sbuffer_clear(&sb);
	pack_hdr(&pk, PRO_WIRE_VERSION, PRO_WIRE_PING, 1);
	msgpack_pack_array(&pk, 1);
	msgpack_pack_array(&pk, 5);
	msgpack_pack_str(&pk, 2);
	msgpack_pack_str_body(&pk, "n2", 2);
	msgpack_pack_str(&pk, 0);
	msgpack_pack_uint64(&pk, 9); /* status out of range */
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, 1);
	ASSERT_EQ(pro_wire_decode(sb.data, sb.size, &used_, &m), PL_EPROTO);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_array(&pk, 8);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_uint64(&pk, 1);
	msgpack_pack_int64(&pk, -5); /* sender must be a string */
	for (int i = 0; i < 5; i++) {
		msgpack_pack_uint64(&pk, 1);
	}
	ASSERT_EQ(pro_wire_decode(sb.data, sb.size, &used_, &m), PL_EPROTO);
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 0);
	ASSERT_EQ(pro_wire_decode(sb.data, sb.size, &used_, &m), PL_EPROTO);
	msgpack_sbuffer_destroy(&sb);
}

TEST_LIST{
	TEST_ENTRY(roundtrip_digest),
	TEST_ENTRY(roundtrip_others),
	TEST_ENTRY(frame),
	TEST_ENTRY(encode_limits),
	TEST_ENTRY(truncated),
	TEST_ENTRY(random_input),
	TEST_ENTRY(hostile_counts),
	TEST_ENTRY(versions_and_kinds),
};

TEST_MAIN()
