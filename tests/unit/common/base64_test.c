/* SPDX-License-Identifier: Apache-2.0 */
/* common/base64: RFC 4648 test vectors in both alphabets, and the strictness
 * that gives every byte string one encoding. */
#include "common/base64.h"

#include "tests/unit/test.h"

static void
test_url_vectors(void)
{
	static const char *in[] = { "", "f", "fo", "foo", "foob", "fooba",
		"foobar" };
	static const char *want[] = { "", "Zg", "Zm8", "Zm9v", "Zm9vYg",
		"Zm9vYmE", "Zm9vYmFy" };
	char out[16];
	uint8_t back[16];
	size_t n, blen;

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		n = pl_b64url_encode(
		    (const uint8_t *)in[i], strlen(in[i]), out);
		ASSERT_EQ(n, pl_b64_encoded_len(strlen(in[i])));
		out[n] = '\0';
		ASSERT_STREQ(out, want[i]);
		ASSERT_TRUE(pl_b64url_decode(out, n, back, &blen));
		ASSERT_EQ(blen, strlen(in[i]));
		ASSERT_MEMEQ(back, in[i], blen);
	}
}

static void
test_url_alphabet(void)
{
	const uint8_t bytes[] = { 0xfb, 0xff, 0xbf };
	char out[8];
	uint8_t back[8];
	size_t n = pl_b64url_encode(bytes, 3, out), blen;

	out[n] = '\0';
	ASSERT_STREQ(out, "-_-_");
	ASSERT_TRUE(pl_b64url_decode("-_-_", 4, back, &blen));
	ASSERT_MEMEQ(back, bytes, 3);
	ASSERT_TRUE(!pl_b64url_decode("+/+/", 4, back, &blen));
}

static void
test_url_strict(void)
{
	uint8_t back[8];
	size_t blen;

	ASSERT_TRUE(!pl_b64url_decode("Zg==", 4, back, &blen)); /* padding */
	ASSERT_TRUE(!pl_b64url_decode("Zh", 2, back, &blen));   /* stray bits */
	ASSERT_TRUE(!pl_b64url_decode("Zm9vY", 5, back, &blen)); /* length */
	ASSERT_TRUE(!pl_b64url_decode("Zm 9", 4, back, &blen));
}

static void
test_std_padding_optional(void)
{
	uint8_t back[8];
	size_t blen;

	ASSERT_TRUE(pl_b64_decode("Zm8=", 4, back, &blen));
	ASSERT_EQ(blen, 2);
	ASSERT_TRUE(pl_b64_decode("Zm8", 3, back, &blen));
	ASSERT_EQ(blen, 2);
	ASSERT_MEMEQ(back, "fo", 2);
	ASSERT_TRUE(pl_b64_decode("+/+/", 4, back, &blen));
	ASSERT_EQ(back[0], 0xfb);
	ASSERT_TRUE(!pl_b64_decode("Zm8==", 5, back, &blen));
	ASSERT_TRUE(!pl_b64_decode("Z===", 4, back, &blen));
	ASSERT_TRUE(!pl_b64_decode("-_-_", 4, back, &blen));
}

TEST_LIST{
	TEST_ENTRY(test_url_vectors),
	TEST_ENTRY(test_url_alphabet),
	TEST_ENTRY(test_url_strict),
	TEST_ENTRY(test_std_padding_optional),
};
TEST_MAIN()
