/* SPDX-License-Identifier: Apache-2.0 */
/* proto/repl: every message round-trips; hostile input (truncated, wrong
 * types, bad ids, over a limit, trailing bytes) is refused without a crash;
 * newer versions and unknown types are told apart from garbage. */
#include "proto/repl.h"

#include <msgpack.h>
#include <stdlib.h>

#include "common/err.h"
#include "tests/unit/test.h"

static pro_repl_comment
comment(uint64_t seq, const char *id, const char *content)
{
	pro_repl_comment c = { seq, pro_wire_cstr(id), pro_wire_cstr("video-1"),
		pro_wire_cstr("alice"), pro_wire_cstr(content),
		1733400000000 + (int64_t)seq };
	return c;
}

static bool
str_is(pro_wire_str s, const char *c)
{
	return s.len == strlen(c) && memcmp(s.ptr, c, s.len) == 0;
}

static void
test_comments_round_trip(void)
{
	pro_repl_comment in[2] = {
		comment(7, "0193a1b2c3d4e5f600112233", "hello"),
		comment(8, "0193a1b2c3d4e5f600112234", "ünïcode \"quoted\""),
	};
	pro_wire_buf b;
	pro_repl_msg m;

	pro_wire_buf_init(&b);
	ASSERT_OK(
	    pro_repl_encode_comments(&b, pro_wire_cstr("n1~abc"), true, in, 2));
	ASSERT_OK(pro_repl_decode(b.data, b.len, &m));
	ASSERT_EQ(m.type, PRO_REPL_COMMENTS);
	ASSERT_TRUE(str_is(m.origin, "n1~abc"));
	ASSERT_TRUE(m.flag);
	ASSERT_EQ(m.ncomments, 2);
	ASSERT_EQ(m.comments[1].seq, 8);
	ASSERT_TRUE(str_is(m.comments[1].id, "0193a1b2c3d4e5f600112234"));
	ASSERT_TRUE(str_is(m.comments[1].content, "ünïcode \"quoted\""));
	ASSERT_TRUE(str_is(m.comments[0].user_id, "alice"));
	ASSERT_EQ(m.comments[0].inserted_at, 1733400000007);
	pro_repl_msg_release(&m);
	pro_wire_buf_free(&b);
}

static void
test_other_round_trips(void)
{
	pro_repl_mark marks[2] = { { pro_wire_cstr("n1~a"), 5, 9 },
		{ pro_wire_cstr("n2~b"), 0, 0 } };
	uint64_t seqs[3] = { 1, 2, 40 };
	pro_repl_comment c = comment(3, "0193a1b2c3d4e5f600112233", "x");
	pro_wire_buf b;
	pro_repl_msg m;

	pro_wire_buf_init(&b);
	ASSERT_OK(pro_repl_encode_vec(&b, marks, 2));
	ASSERT_OK(pro_repl_decode(b.data, b.len, &m));
	ASSERT_EQ(m.type, PRO_REPL_VEC);
	ASSERT_EQ(m.nmarks, 2);
	ASSERT_TRUE(str_is(m.marks[0].origin, "n1~a"));
	ASSERT_EQ(m.marks[0].cw, 5);
	ASSERT_EQ(m.marks[0].hw, 9);
	pro_repl_msg_release(&m);

	b.len = 0;
	ASSERT_OK(pro_repl_encode_ack(&b, pro_wire_cstr("n1~a"), seqs, 3));
	ASSERT_OK(pro_repl_decode(b.data, b.len, &m));
	ASSERT_EQ(m.type, PRO_REPL_ACK);
	ASSERT_EQ(m.nseqs, 3);
	ASSERT_EQ(m.seqs[2], 40);
	pro_repl_msg_release(&m);

	b.len = 0;
	ASSERT_OK(pro_repl_encode_pull(&b, pro_wire_cstr("n1~a"), 17, 500));
	ASSERT_OK(pro_repl_decode(b.data, b.len, &m));
	ASSERT_EQ(m.type, PRO_REPL_PULL);
	ASSERT_EQ(m.after, 17);
	ASSERT_EQ(m.limit, 500);
	pro_repl_msg_release(&m);

	b.len = 0;
	ASSERT_OK(
	    pro_repl_encode_chunk(&b, pro_wire_cstr("n1~a"), 3, true, &c, 1));
	ASSERT_OK(pro_repl_decode(b.data, b.len, &m));
	ASSERT_EQ(m.type, PRO_REPL_CHUNK);
	ASSERT_EQ(m.through, 3);
	ASSERT_TRUE(m.flag);
	ASSERT_EQ(m.ncomments, 1);
	pro_repl_msg_release(&m);

	/* An empty chunk: nothing held beyond `after`. */
	b.len = 0;
	ASSERT_OK(pro_repl_encode_chunk(
	    &b, pro_wire_cstr("n1~a"), 9, false, NULL, 0));
	ASSERT_OK(pro_repl_decode(b.data, b.len, &m));
	ASSERT_EQ(m.ncomments, 0);
	ASSERT_TRUE(!m.flag);
	pro_repl_msg_release(&m);
	pro_wire_buf_free(&b);
}

static void
test_encoder_refuses(void)
{
	pro_repl_comment c = comment(1, "0193a1b2c3d4e5f600112233", "x");
	pro_repl_mark bad = { pro_wire_cstr("n1"), 9, 5 };
	pro_wire_buf b;

	pro_wire_buf_init(&b);
	ASSERT_EQ(pro_repl_encode_comments(
		      &b, pro_wire_cstr("has space"), false, &c, 1),
	    PL_EINVAL);
	c.id = pro_wire_cstr("0193A1B2C3D4E5F600112233"); /* upper case */
	ASSERT_EQ(
	    pro_repl_encode_comments(&b, pro_wire_cstr("n1"), false, &c, 1),
	    PL_EINVAL);
	c = comment(0, "0193a1b2c3d4e5f600112233", "x"); /* seq 0 */
	ASSERT_EQ(
	    pro_repl_encode_chunk(&b, pro_wire_cstr("n1"), 1, false, &c, 1),
	    PL_EINVAL);
	c = comment(1, "0193a1b2c3d4e5f600112233", "");
	ASSERT_EQ(
	    pro_repl_encode_comments(&b, pro_wire_cstr("n1"), false, &c, 1),
	    PL_EINVAL);
	ASSERT_EQ(pro_repl_encode_vec(&b, &bad, 1), PL_EINVAL); /* cw > hw */
	ASSERT_EQ(
	    pro_repl_encode_pull(&b, pro_wire_cstr("n1"), 0, 0), PL_EINVAL);
	ASSERT_EQ(pro_repl_encode_pull(
		      &b, pro_wire_cstr("n1"), 0, PRO_REPL_BATCH_MAX + 1),
	    PL_EINVAL);
	ASSERT_EQ(b.len, 0);
	pro_wire_buf_free(&b);
}

/* Every prefix of a valid message, and the message with a byte appended,
 * is refused. */
static void
test_truncated_and_trailing(void)
{
	pro_repl_comment c[3] = {
		comment(1, "0193a1b2c3d4e5f600112233", "one"),
		comment(2, "0193a1b2c3d4e5f600112234", "two"),
		comment(3, "0193a1b2c3d4e5f600112235", "three"),
	};
	pro_wire_buf b;
	pro_repl_msg m;

	pro_wire_buf_init(&b);
	ASSERT_OK(
	    pro_repl_encode_chunk(&b, pro_wire_cstr("n1"), 3, false, c, 3));
	for (size_t n = 0; n < b.len; n++) {
		ASSERT_EQ(pro_repl_decode(b.data, n, &m), PL_EPROTO);
	}
	ASSERT_OK(pro_repl_decode(b.data, b.len, &m));
	pro_repl_msg_release(&m);
	char *more = malloc(b.len + 1);
	ASSERT_TRUE(more != NULL);
	memcpy(more, b.data, b.len);
	more[b.len] = '\xc0';
	ASSERT_EQ(pro_repl_decode(more, b.len + 1, &m), PL_EPROTO);
	free(more);
	pro_wire_buf_free(&b);
}

/* Packs [version, type, ...] with a custom body for hostile cases. */
static size_t
pack(char *out, size_t cap, void (*body)(msgpack_packer *pk))
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t n;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	body(&pk);
	n = sb.size < cap ? sb.size : 0;
	memcpy(out, sb.data, n);
	msgpack_sbuffer_destroy(&sb);
	return n;
}

static void
newer_version(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 3);
	msgpack_pack_uint64(pk, PRO_REPL_VERSION + 1);
	msgpack_pack_uint64(pk, 99);
	msgpack_pack_str(pk, 3);
	msgpack_pack_str_body(pk, "???", 3);
}

static void
unknown_type(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 2);
	msgpack_pack_uint64(pk, PRO_REPL_VERSION);
	msgpack_pack_uint64(pk, 77);
}

static void
seq_as_string(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint64(pk, PRO_REPL_VERSION);
	msgpack_pack_uint64(pk, PRO_REPL_ACK);
	msgpack_pack_str(pk, 2);
	msgpack_pack_str_body(pk, "n1", 2);
	msgpack_pack_array(pk, 1);
	msgpack_pack_str(pk, 1);
	msgpack_pack_str_body(pk, "1", 1);
}

static void
huge_count(msgpack_packer *pk)
{
	/* Claims 2^31 comments in a few bytes: refused before allocation. */
	msgpack_pack_array(pk, 5);
	msgpack_pack_uint64(pk, PRO_REPL_VERSION);
	msgpack_pack_uint64(pk, PRO_REPL_COMMENTS);
	msgpack_pack_str(pk, 2);
	msgpack_pack_str_body(pk, "n1", 2);
	msgpack_pack_true(pk);
	msgpack_pack_array(pk, 0x7fffffff);
}

static void
nul_in_content(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 5);
	msgpack_pack_uint64(pk, PRO_REPL_VERSION);
	msgpack_pack_uint64(pk, PRO_REPL_COMMENTS);
	msgpack_pack_str(pk, 2);
	msgpack_pack_str_body(pk, "n1", 2);
	msgpack_pack_false(pk);
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 6);
	msgpack_pack_uint64(pk, 1);
	msgpack_pack_str(pk, 24);
	msgpack_pack_str_body(pk, "0193a1b2c3d4e5f600112233", 24);
	msgpack_pack_str(pk, 1);
	msgpack_pack_str_body(pk, "v", 1);
	msgpack_pack_str(pk, 1);
	msgpack_pack_str_body(pk, "u", 1);
	msgpack_pack_str(pk, 3);
	msgpack_pack_str_body(pk, "a\0b", 3);
	msgpack_pack_uint64(pk, 1);
}

static void
test_hostile(void)
{
	char buf[256];
	pro_repl_msg m;
	size_t n;

	n = pack(buf, sizeof(buf), newer_version);
	ASSERT_EQ(pro_repl_decode(buf, n, &m), PL_ENOTFOUND);
	n = pack(buf, sizeof(buf), unknown_type);
	ASSERT_EQ(pro_repl_decode(buf, n, &m), PL_ENOTFOUND);
	n = pack(buf, sizeof(buf), seq_as_string);
	ASSERT_EQ(pro_repl_decode(buf, n, &m), PL_EPROTO);
	n = pack(buf, sizeof(buf), huge_count);
	ASSERT_EQ(pro_repl_decode(buf, n, &m), PL_EPROTO);
	n = pack(buf, sizeof(buf), nul_in_content);
	ASSERT_EQ(pro_repl_decode(buf, n, &m), PL_EPROTO);
	ASSERT_EQ(pro_repl_decode("\x92\x01", 2, &m), PL_EPROTO);
	ASSERT_EQ(pro_repl_decode(NULL, 0, &m), PL_EPROTO);
	ASSERT_TRUE(m.zone_ == NULL);
}

/* The largest batch fits within the decoder's bounds. */
static void
test_full_batch(void)
{
	pro_repl_comment *c = calloc(PRO_REPL_BATCH_MAX, sizeof(*c));
	char(*ids)[PRO_REPL_ID_LEN + 1] =
	    calloc(PRO_REPL_BATCH_MAX, sizeof(*ids));
	pro_wire_buf b;
	pro_repl_msg m;

	ASSERT_TRUE(c != NULL && ids != NULL);
	for (size_t i = 0; i < PRO_REPL_BATCH_MAX; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%024zx", i);
		c[i] = comment(i + 1, ids[i], "content");
	}
	pro_wire_buf_init(&b);
	ASSERT_OK(pro_repl_encode_chunk(&b, pro_wire_cstr("n1"),
	    PRO_REPL_BATCH_MAX, true, c, PRO_REPL_BATCH_MAX));
	ASSERT_OK(pro_repl_decode(b.data, b.len, &m));
	ASSERT_EQ(m.ncomments, PRO_REPL_BATCH_MAX);
	ASSERT_EQ(m.comments[PRO_REPL_BATCH_MAX - 1].seq, PRO_REPL_BATCH_MAX);
	pro_repl_msg_release(&m);
	ASSERT_EQ(pro_repl_encode_chunk(&b, pro_wire_cstr("n1"), 1, true, c,
		      PRO_REPL_BATCH_MAX + 1),
	    PL_EINVAL);
	pro_wire_buf_free(&b);
	free(ids);
	free(c);
}

TEST_LIST{
	TEST_ENTRY(test_comments_round_trip),
	TEST_ENTRY(test_other_round_trips),
	TEST_ENTRY(test_encoder_refuses),
	TEST_ENTRY(test_truncated_and_trailing),
	TEST_ENTRY(test_hostile),
	TEST_ENTRY(test_full_batch),
};
TEST_MAIN()
