/* SPDX-License-Identifier: Apache-2.0 */
/* Firebase keys and multi-path bodies: every byte Firebase refuses in a key
 * is percent-encoded, '%' too, nothing else; decoding gives the id back
 * for every id (forbidden bytes, UTF-8, invalid UTF-8, the longest id) and
 * refuses keys no id encodes to; a body is valid JSON whose paths and
 * fields are what was given, whatever the content holds. */
#include "common/err.h"
#include "common/sbuf.h"
#include "proto/firebase.h"
#include "tests/unit/test.h"

#include <jansson.h>
#include <stdlib.h>

/* What Firebase refuses in a key. */
static bool
firebase_refuses(const char *k, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)k[i];
		if (c < 0x20 || c == 0x7f || strchr(".$#[]/", c) != NULL) {
			return true;
		}
	}
	return n == 0 || n > 768;
}

static void
check_round_trip(const char *id, size_t n)
{
	char key[PRO_FB_KEY_MAX(300) + 1], back[PRO_FB_KEY_MAX(300) + 1];
	size_t kl = pro_fb_key_encode(id, n, key), bl = 0;

	ASSERT_EQ(kl, strlen(key));
	ASSERT_TRUE(!firebase_refuses(key, kl));
	ASSERT_TRUE(pro_fb_key_decode(key, kl, back, &bl));
	ASSERT_EQ(bl, n);
	ASSERT_MEMEQ(back, id, n);
}

static void
encodes_what_firebase_refuses(void)
{
	char key[64];

	pro_fb_key_encode("video-42_A:b", 12, key);
	ASSERT_STREQ(key, "video-42_A:b"); /* ordinary ids unchanged */
	pro_fb_key_encode("a.b$c#d[e]f/g%h", 15, key);
	ASSERT_STREQ(key, "a%2Eb%24c%23d%5Be%5Df%2Fg%25h");
	pro_fb_key_encode("t\tn\n\x7f", 5, key);
	ASSERT_STREQ(key, "t%09n%0A%7F");
	pro_fb_key_encode("caf\xc3\xa9 \xe2\x9c\x93", 9, key);
	ASSERT_STREQ(key, "caf\xc3\xa9 \xe2\x9c\x93"); /* UTF-8 kept */
	/* Not UTF-8: every high byte escaped, so the key is JSON-safe. */
	pro_fb_key_encode("a\xff\xc3\xa9", 4, key);
	ASSERT_STREQ(key, "a%FF%C3%A9");
}

static void
round_trips(void)
{
	char every[256], longest[256];

	for (int i = 1; i < 256; i++) {
		every[i - 1] = (char)i;
	}
	check_round_trip(every, 255); /* every byte but NUL, not UTF-8 */
	for (int c = 1; c < 256; c++) {
		char one[2] = { (char)c, 0 };
		check_round_trip(one, 1);
	}
	memset(longest, '/', sizeof(longest));
	check_round_trip(longest, sizeof(longest));
	ASSERT_EQ(pro_fb_key_encode(longest, 256, (char[769]){ 0 }), 768);
	check_round_trip("50%off", 6);
	check_round_trip("%2E", 3);
	check_round_trip("\xe2\x9c\x93.\xe2\x9c\x93", 7);
}

static void
decode_refuses_foreign_keys(void)
{
	static const char *bad[] = {
		"a.b",         /* a byte that must have been escaped */
		"a%2",         /* cut escape */
		"a%",          /* cut escape */
		"a%zz",        /* not hex */
		"a%2e",        /* lower case: not ours */
		"a%41",        /* 'A' needs no escape */
		"%C3%A9",      /* valid UTF-8 escaped */
		"\xc3\xa9%FF", /* raw and escaped high bytes mixed */
		"\xff",        /* raw invalid UTF-8 */
	};
	char out[64];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pro_fb_key_decode(bad[i], strlen(bad[i]), out, &n)) {
			TEST_FAIL_("decoded \"%s\"", bad[i]);
		}
	}
}

static void
bodies_are_json_with_the_fields(void)
{
	pro_fb_comment c[3] = {
		{ "v1", "0190c5d2a1b2c3d4e5f60001", "alice", "hello",
		    1700000000123 },
		{ "a.b/c", "0190c5d2a1b2c3d4e5f60002", "bob",
		    "quote \" backslash \\ nl \n ctl \x01 \xe2\x9c\x93",
		    1700000000124 },
		{ "say \"hi\"\\", "0190c5d2a1b2c3d4e5f60003", "u\"3", "x", 5 },
	};
	pl_sbuf b = PL_SBUF_INIT;
	json_error_t je;
	json_t *v, *e;
	char *text;
	size_t len;

	for (int i = 0; i < 3; i++) {
		pro_fb_body_add(&b, &c[i], i == 0);
	}
	pro_fb_body_end(&b);
	text = pl_sbuf_take(&b, &len);
	v = json_loadb(text, len, 0, &je);
	if (v == NULL) {
		TEST_FAIL_("not JSON: %s: %s", je.text, text);
	}
	ASSERT_EQ(json_object_size(v), 3);
	e = json_object_get(v, "v1/0190c5d2a1b2c3d4e5f60001");
	ASSERT_STREQ(json_string_value(json_object_get(e, "user_id")), "alice");
	ASSERT_STREQ(json_string_value(json_object_get(e, "content")), "hello");
	ASSERT_EQ(json_integer_value(json_object_get(e, "inserted_at")),
	    1700000000123);
	ASSERT_EQ(json_object_size(e), 3);
	e = json_object_get(v, "a%2Eb%2Fc/0190c5d2a1b2c3d4e5f60002");
	ASSERT_STREQ(
	    json_string_value(json_object_get(e, "content")), c[1].content);
	e = json_object_get(v, "say \"hi\"\\/0190c5d2a1b2c3d4e5f60003");
	ASSERT_STREQ(json_string_value(json_object_get(e, "user_id")), "u\"3");
	json_decref(v);
	free(text);
}

TEST_LIST{
	TEST_ENTRY(encodes_what_firebase_refuses),
	TEST_ENTRY(round_trips),
	TEST_ENTRY(decode_refuses_foreign_keys),
	TEST_ENTRY(bodies_are_json_with_the_fields),
};
TEST_MAIN()
