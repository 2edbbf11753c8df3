/* SPDX-License-Identifier: Apache-2.0 */
/* Phoenix V1/V2 serializers: round trips, ref types, binary pushes, and
 * malformed input refused with a reason. */
#include "proto/phx.h"

#include "common/err.h"
#include "tests/unit/test.h"

#include <stdlib.h>

static void
decode_ok(int vsn, const char *s, pro_phx_msg *m)
{
	const char *why = NULL;

	ASSERT_OK(pro_phx_decode(vsn, 0, s, strlen(s), m, &why));
}

static void
refuse(int vsn, const char *s)
{
	pro_phx_msg m;
	const char *why = NULL;

	ASSERT_EQ(pro_phx_decode(vsn, 0, s, strlen(s), &m, &why), PL_EINVAL);
	ASSERT_TRUE(why != NULL && *why);
	pro_phx_msg_clear(&m);
}

static void
v2_decode(void)
{
	pro_phx_msg m;

	decode_ok(
	    2, "[\"1\",\"2\",\"comments:v\",\"phx_join\",{\"limit\":3}]", &m);
	ASSERT_STREQ(json_string_value(m.join_ref), "1");
	ASSERT_STREQ(json_string_value(m.ref), "2");
	ASSERT_STREQ(m.topic, "comments:v");
	ASSERT_STREQ(m.event, "phx_join");
	ASSERT_EQ(json_integer_value(json_object_get(m.payload, "limit")), 3);
	pro_phx_msg_clear(&m);
}

static void
v2_refs_keep_type(void)
{
	pro_phx_msg m;
	size_t len;
	char *s;

	decode_ok(2, "[null,7,\"phoenix\",\"heartbeat\",{}]", &m);
	ASSERT_TRUE(json_is_null(m.join_ref));
	ASSERT_TRUE(json_is_integer(m.ref));
	s = pro_phx_encode_reply(
	    2, m.join_ref, m.ref, m.topic, "ok", NULL, &len);
	ASSERT_STREQ(s,
	    "[null,7,\"phoenix\",\"phx_reply\",{\"status\":\"ok\",\"response\":"
	    "{}}]");
	ASSERT_EQ(len, strlen(s));
	free(s);
	pro_phx_msg_clear(&m);
}

static void
v2_extra_elements_and_any_ref(void)
{
	pro_phx_msg m;

	decode_ok(
	    2, "[{\"a\":1},1.5,\"phoenix\",\"heartbeat\",{},\"extra\",1]", &m);
	ASSERT_TRUE(json_is_object(m.join_ref));
	ASSERT_TRUE(json_is_real(m.ref));
	ASSERT_STREQ(m.event, "heartbeat");
	pro_phx_msg_clear(&m);
}

static void
v1_decode_and_encode(void)
{
	pro_phx_msg m;
	size_t len;
	char *s;

	decode_ok(1,
	    "{\"topic\":\"t:1\",\"event\":\"e\",\"payload\":{\"a\":1},\"ref\":"
	    "\"5\"}",
	    &m);
	ASSERT_TRUE(json_is_null(m.join_ref));
	ASSERT_STREQ(json_string_value(m.ref), "5");
	s = pro_phx_encode(
	    1, m.join_ref, NULL, m.topic, "new", "{\"x\":true}", 10, &len);
	ASSERT_STREQ(s,
	    "{\"topic\":\"t:1\",\"event\":\"new\",\"payload\":{\"x\":true},"
	    "\"ref\":null}");
	free(s);
	pro_phx_msg_clear(&m);
}

static void
encode_escapes_strings(void)
{
	size_t len;
	char *s = pro_phx_encode(2, NULL, NULL, "a\"b\n", "ev", "{}", 2, &len);
	json_t *v = json_loads(s, 0, NULL);

	ASSERT_TRUE(json_is_array(v));
	ASSERT_STREQ(json_string_value(json_array_get(v, 2)), "a\"b\n");
	json_decref(v);
	free(s);
}

static void
round_trip_v2(void)
{
	json_t *jr = json_string("3"), *ref = json_integer(9);
	pro_phx_msg m;
	size_t len;
	char *s = pro_phx_encode(2, jr, ref, "comments:x", "new_comment",
	    "{\"content\":\"h\\u00e9\"}", 21, &len);

	decode_ok(2, s, &m);
	ASSERT_TRUE(json_equal(m.join_ref, jr));
	ASSERT_TRUE(json_equal(m.ref, ref));
	ASSERT_STREQ(json_string_value(json_object_get(m.payload, "content")),
	    "h\xc3\xa9");
	pro_phx_msg_clear(&m);
	free(s);
	json_decref(jr);
	json_decref(ref);
}

static void
binary_push(void)
{
	const char frame[] = "\x00\x01\x01\x03\x02"
			     "12"
			     "t:x"
			     "ev"
			     "\xff\x00payload";
	size_t len = sizeof(frame) - 1;
	pro_phx_msg m;
	const char *why;

	ASSERT_OK(pro_phx_decode(2, 1, frame, len, &m, &why));
	ASSERT_STREQ(json_string_value(m.join_ref), "1");
	ASSERT_STREQ(json_string_value(m.ref), "2");
	ASSERT_STREQ(m.topic, "t:x");
	ASSERT_STREQ(m.event, "ev");
	ASSERT_TRUE(m.payload == NULL);
	ASSERT_EQ(m.bin_len, 9);
	pro_phx_msg_clear(&m);
	/* Truncated header, reply kind, and binary on V1 are refused. */
	ASSERT_EQ(pro_phx_decode(2, 1, frame, 7, &m, &why), PL_EINVAL);
	pro_phx_msg_clear(&m);
	ASSERT_EQ(pro_phx_decode(2, 1, "\x01\x00\x00\x00\x00", 5, &m, &why),
	    PL_EINVAL);
	pro_phx_msg_clear(&m);
	ASSERT_EQ(pro_phx_decode(1, 1, frame, len, &m, &why), PL_EINVAL);
	pro_phx_msg_clear(&m);
}

static void
malformed(void)
{
	refuse(2, "");
	refuse(2, "[");
	refuse(2, "null");
	refuse(2, "{\"topic\":\"t\"}");
	refuse(2, "[1,2,3,4]");
	refuse(2, "[null,null,5,\"e\",{}]");
	refuse(2, "[null,null,\"t\",null,{}]");
	refuse(2, "[null,null,\"t\",\"e\",{}] trailing");
	refuse(1, "[null,null,\"t\",\"e\",{}]");
	refuse(1, "{\"event\":\"e\"}");
	refuse(1, "{\"topic\":1,\"event\":\"e\"}");
	refuse(2, "[null,null,\"t\\u0000x\",\"e\",{}]");
}

/* The reply to m (status, empty response) must be exactly want. */
static void
reply_is(int vsn, const pro_phx_msg *m, const char *status, const char *want)
{
	size_t len;
	char *s = pro_phx_encode_reply(
	    vsn, m->join_ref, m->ref, m->topic, status, NULL, &len);

	ASSERT_STREQ(s, want);
	ASSERT_EQ(len, strlen(s));
	free(s);
}

/* Valid JSON jansson cannot hold decodes: refs echo as sent, topic and
 * event stay strings, bad payload values become [] for their field to
 * refuse (issue 12: these closed the socket with 1007). */
static void
valid_json_jansson_refuses(void)
{
	pro_phx_msg m, m2;

	decode_ok(2,
	    "[99999999999999999999,1e999,\"comments:v\",\"new_comment\","
	    "{\"content\":\"a\\ud800b\",\"limit\":99999999999999999999}]",
	    &m);
	ASSERT_STREQ(m.topic, "comments:v");
	ASSERT_TRUE(json_is_array(json_object_get(m.payload, "content")));
	ASSERT_TRUE(json_is_array(json_object_get(m.payload, "limit")));
	reply_is(2, &m, "error",
	    "[99999999999999999999,1e999,\"comments:v\",\"phx_reply\","
	    "{\"status\":\"error\",\"response\":{}}]");
	/* The same raw join_ref compares equal (stale join_ref checks). */
	decode_ok(
	    2, "[99999999999999999999,\"2\",\"t\",\"e\",{\"x\":1e999}]", &m2);
	ASSERT_TRUE(json_equal(m.join_ref, m2.join_ref));
	pro_phx_msg_clear(&m2);
	pro_phx_msg_clear(&m);
	/* A lone surrogate in topic or event: still strings, lossy. */
	decode_ok(2, "[null,\"1\",\"comments:\\udc00\",\"e\\ud800\",{}]", &m);
	ASSERT_STREQ(m.topic, "comments:\xef\xbf\xbd");
	ASSERT_STREQ(m.event, "e\xef\xbf\xbd");
	pro_phx_msg_clear(&m);
	/* V1: by key. */
	decode_ok(1,
	    "{\"topic\":\"phoenix\",\"event\":\"heartbeat\",\"payload\":"
	    "{\"n\":-1e400},\"ref\":123456789012345678901234567890}",
	    &m);
	reply_is(1, &m, "ok",
	    "{\"topic\":\"phoenix\",\"event\":\"phx_reply\",\"payload\":"
	    "{\"status\":\"ok\",\"response\":{}},\"ref\":"
	    "123456789012345678901234567890}");
	pro_phx_msg_clear(&m);
	/* Still refused: not JSON at all, or a topic that is no string. */
	refuse(2, "[null,1e999,\"t\",\"e\",{}");
	refuse(2, "[null,\"1\",1e999,\"e\",{}]");
}

/* A client cannot make us emit its text verbatim: a ref that looks like a
 * kept raw ref is echoed as the string it was. */
static void
raw_mark_in_client_ref(void)
{
	const char *cases[] = { "[\"\\u0000json:5\",\"\\u0000json:]]\",\"t\","
				"\"e\",{}]",
		"[\"\\u0000json:5\",\"\\u0000json:]]\",\"t\",\"e\",{\"x\":"
		"1e999}]" };

	for (size_t i = 0; i < 2; i++) {
		pro_phx_msg m;

		decode_ok(2, cases[i], &m);
		reply_is(2, &m, "ok",
		    "[\"\\u0000json:5\",\"\\u0000json:]]\",\"t\",\"phx_reply\","
		    "{\"status\":\"ok\",\"response\":{}}]");
		pro_phx_msg_clear(&m);
	}
}

/* Found by phx_fuzz: a forged mark with white space before a number that
 * jansson refuses must still be echoed as the string it was. */
static void
raw_mark_with_white_space(void)
{
	pro_phx_msg m;

	decode_ok(1,
	    "{\"topic\":\"t0\",\"event\":\"e\",\"ref\":\"\\u0000json: "
	    "9e999\"}",
	    &m);
	reply_is(1, &m, "ok",
	    "{\"topic\":\"t0\",\"event\":\"phx_reply\",\"payload\":"
	    "{\"status\":\"ok\",\"response\":{}},\"ref\":\"\\u0000json: "
	    "9e999\"}");
	pro_phx_msg_clear(&m);
}

static void
vsn_parse(void)
{
	ASSERT_EQ(pro_phx_parse_vsn(NULL), PRO_PHX_V1);
	ASSERT_EQ(pro_phx_parse_vsn("1.0.0"), PRO_PHX_V1);
	ASSERT_EQ(pro_phx_parse_vsn("2.0.0"), PRO_PHX_V2);
	ASSERT_EQ(pro_phx_parse_vsn("3.0.0"), 0);
	ASSERT_EQ(pro_phx_parse_vsn(""), 0);
}

/* A payload sent in pieces around the envelope is the same message as
 * one encoded whole, in both versions. */
static void
envelope_around_payload(void)
{
	const char *payload = "{\"alice\":{\"metas\":[]}}";
	json_t *jr = json_string("3");
	int vsn;

	for (vsn = PRO_PHX_V1; vsn <= PRO_PHX_V2; vsn++) {
		size_t at = 0, len = 0, wl = 0;
		char *env = pro_phx_envelope(
		    vsn, jr, NULL, "comments:v", "presence_state", &at, &len);
		char *whole = pro_phx_encode(vsn, jr, NULL, "comments:v",
		    "presence_state", payload, strlen(payload), &wl);
		char joined[256];
		ASSERT_TRUE(env != NULL && whole != NULL);
		ASSERT_TRUE(at <= len);
		ASSERT_EQ(len + strlen(payload), wl);
		snprintf(joined, sizeof(joined), "%.*s%s%s", (int)at, env,
		    payload, env + at);
		ASSERT_STREQ(joined, whole);
		free(env);
		free(whole);
	}
	json_decref(jr);
}

TEST_LIST{
	TEST_ENTRY(v2_decode),
	TEST_ENTRY(v2_refs_keep_type),
	TEST_ENTRY(v2_extra_elements_and_any_ref),
	TEST_ENTRY(v1_decode_and_encode),
	TEST_ENTRY(encode_escapes_strings),
	TEST_ENTRY(round_trip_v2),
	TEST_ENTRY(binary_push),
	TEST_ENTRY(malformed),
	TEST_ENTRY(valid_json_jansson_refuses),
	TEST_ENTRY(raw_mark_in_client_ref),
	TEST_ENTRY(raw_mark_with_white_space),
	TEST_ENTRY(vsn_parse),
	TEST_ENTRY(envelope_around_payload),
};
TEST_MAIN()
