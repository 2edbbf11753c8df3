/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for broker/auth: HS256 verification against hand-built tokens
 * (good, expired, forged, wrong algorithm, malformed in many ways), minting
 * round trips, and key selection by `kid` among several keys. */
#include <dirent.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "broker/auth.h"
#include "common/base64.h"
#include "common/err.h"
#include "tests/unit/test.h"

static const uint8_t SECRET[] = "test-secret-0123456789";
#define SLEN (sizeof(SECRET) - 1)
#define NOW 1700000000

static void *
xmalloc(size_t n)
{
	void *p = malloc(n);
	if (p == NULL) {
		abort();
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	char *p = strdup(s);
	if (p == NULL) {
		abort();
	}
	return p;
}

/* ---- helpers: an independent encoder/signer so tests do not trust the
 * module's own ---- */

static char *
b64(const void *data, size_t n)
{
	static const char t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const uint8_t *p = data;
	char *out = xmalloc(n * 4 / 3 + 4);
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | p[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = t[(acc >> bits) & 63];
		}
	}
	if (bits > 0) {
		out[o++] = t[(acc << (6 - bits)) & 63];
	}
	out[o] = '\0';
	return out;
}

/* header.payload.signature with the signature made by `md` over the
 * encoded header and payload. */
static char *
make_token_md(const EVP_MD *md, const uint8_t *key, size_t klen,
    const char *hdr, const char *payload)
{
	char *h = b64(hdr, strlen(hdr));
	char *p = b64(payload, strlen(payload));
	size_t n = strlen(h) + strlen(p) + 2;
	char *signing = xmalloc(n);
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *s, *tok;

	snprintf(signing, n, "%s.%s", h, p);
	HMAC(md, key, (int)klen, (const uint8_t *)signing, strlen(signing), mac,
	    &maclen);
	s = b64(mac, maclen);
	n = strlen(signing) + strlen(s) + 2;
	tok = xmalloc(n);
	snprintf(tok, n, "%s.%s", signing, s);
	free(h);
	free(p);
	free(s);
	free(signing);
	return tok;
}

static char *
make_token(const char *hdr, const char *payload)
{
	return make_token_md(EVP_sha256(), SECRET, SLEN, hdr, payload);
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* Asserts that `tok` is refused with reason `want`, then frees it. */
static void
expect_refused(char *tok, const char *want)
{
	char *user = (char *)"sentinel";
	const char *why = NULL;
	char shown[96];
	int rc = brk_auth_verify(SECRET, SLEN, tok, NOW, &user, &why);

	snprintf(shown, sizeof(shown), "%s", tok);
	free(tok);
	ASSERT_EQ(rc, PL_EAUTH);
	ASSERT_TRUE(user == NULL);
	if (why == NULL || strcmp(why, want) != 0) {
		TEST_FAIL_("token %s: reason %s, want %s", shown,
		    why ? why : "(null)", want);
	}
}

static void
expect_user(char *tok, const char *want)
{
	char *user = NULL;
	const char *why = "unset";
	int rc = brk_auth_verify(SECRET, SLEN, tok, NOW, &user, &why);

	free(tok);
	if (rc != PL_OK) {
		TEST_FAIL_("verify refused: %s", why ? why : "(null)");
	}
	ASSERT_TRUE(why == NULL);
	ASSERT_STREQ(user, want);
	free(user);
}

/* ---- verify ---- */

static void
test_valid(void)
{
	expect_user(make_token(HS256, "{\"sub\":\"alice\",\"exp\":1700000060}"),
	    "alice");
	/* typ may be absent; extra claims are fine; nbf in the past is fine. */
	expect_user(
	    make_token("{\"alg\":\"HS256\"}",
		"{\"sub\":\"bob\",\"exp\":1700000001,\"nbf\":1700000000,"
		"\"iat\":1,\"x\":[1,2]}"),
	    "bob");
	/* exp as a real number; UTF-8 user id. */
	expect_user(make_token(HS256, "{\"sub\":\"z\\u00e9\",\"exp\":1.8e9}"),
	    "z\xc3\xa9");
	/* Longest allowed sub. */
	char payload[400];
	char sub[BRK_AUTH_SUB_MAX + 1];
	memset(sub, 'u', BRK_AUTH_SUB_MAX);
	sub[BRK_AUTH_SUB_MAX] = '\0';
	snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"exp\":%d}", sub,
	    NOW + 1);
	expect_user(make_token(HS256, payload), sub);
}

static void
test_expired(void)
{
	expect_refused(
	    make_token(HS256, "{\"sub\":\"a\",\"exp\":1699999999}"), "expired");
	/* exp == now is already expired. */
	expect_refused(
	    make_token(HS256, "{\"sub\":\"a\",\"exp\":1700000000}"), "expired");
	expect_refused(
	    make_token(HS256, "{\"sub\":\"a\",\"exp\":1.6e9}"), "expired");
	expect_refused(
	    make_token(
		HS256, "{\"sub\":\"a\",\"exp\":1700000060,\"nbf\":1700000001}"),
	    "not_yet_valid");
	expect_refused(make_token(HS256,
			   "{\"sub\":\"a\",\"exp\":1700000060,\"nbf\":\"0\"}"),
	    "malformed");
}

static void
test_exp_missing(void)
{
	expect_refused(make_token(HS256, "{\"sub\":\"a\"}"), "missing_exp");
	expect_refused(
	    make_token(HS256, "{\"sub\":\"a\",\"exp\":\"1800000000\"}"),
	    "malformed");
	expect_refused(
	    make_token(HS256, "{\"sub\":\"a\",\"exp\":null}"), "malformed");
}

static void
test_bad_signature(void)
{
	const char *pl = "{\"sub\":\"a\",\"exp\":1800000000}";
	const uint8_t other[] = "another-secret";

	expect_refused(
	    make_token_md(EVP_sha256(), other, sizeof(other) - 1, HS256, pl),
	    "bad_signature");

	/* A signature of the wrong length decodes fine but cannot match. */
	char *tok = make_token(HS256, pl);
	char *dot = strrchr(tok, '.');
	strcpy(dot + 1, "AAAA");
	expect_refused(tok, "bad_signature");

	/* Empty signature. */
	tok = make_token(HS256, pl);
	strrchr(tok, '.')[1] = '\0';
	expect_refused(tok, "bad_signature");

	/* Flip one bit of the MAC (first char of the signature). */
	tok = make_token(HS256, pl);
	dot = strrchr(tok, '.');
	dot[1] = dot[1] == 'A' ? 'B' : 'A';
	expect_refused(tok, "bad_signature");
}

static void
test_wrong_alg(void)
{
	const char *pl = "{\"sub\":\"a\",\"exp\":1800000000}";
	char *tok;

	/* alg none with an empty signature, the classic forgery. */
	char *h = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}", 26);
	char *p = b64(pl, strlen(pl));
	size_t n = strlen(h) + strlen(p) + 3;
	tok = xmalloc(n);
	snprintf(tok, n, "%s.%s.", h, p);
	free(h);
	free(p);
	expect_refused(tok, "alg_not_allowed");

	expect_refused(make_token("{\"alg\":\"none\"}", pl), "alg_not_allowed");
	/* Validly signed with HMAC-SHA512 under the same secret. */
	expect_refused(make_token_md(EVP_sha512(), SECRET, SLEN,
			   "{\"alg\":\"HS512\",\"typ\":\"JWT\"}", pl),
	    "alg_not_allowed");
	expect_refused(make_token("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", pl),
	    "alg_not_allowed");
	expect_refused(make_token("{\"typ\":\"JWT\"}", pl), "alg_not_allowed");
	expect_refused(
	    make_token("{\"alg\":\"hs256\"}", pl), "alg_not_allowed");
	expect_refused(make_token("{\"alg\":null}", pl), "alg_not_allowed");
	/* jansson refuses \u0000 outright. */
	expect_refused(
	    make_token("{\"alg\":\"HS256\\u0000\"}", pl), "malformed");
	/* Other header trouble. */
	expect_refused(
	    make_token("{\"alg\":\"HS256\",\"typ\":\"JWE\"}", pl), "malformed");
	expect_refused(make_token("{\"alg\":\"HS256\",\"crit\":[\"b64\"]}", pl),
	    "malformed");
	expect_refused(make_token("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", pl),
	    "malformed");
}

static void
test_garbage(void)
{
	const char *pl = "{\"sub\":\"a\",\"exp\":1800000000}";
	char *good = make_token(HS256, pl);
	char *user = NULL;
	const char *why = NULL;
	size_t n;

	expect_refused(xstrdup(""), "malformed");
	expect_refused(xstrdup("notatoken"), "malformed");
	expect_refused(xstrdup("abc.def"), "malformed");
	expect_refused(xstrdup(".."), "malformed");
	/* Four parts: a valid token with one more segment. */
	n = strlen(good) + 8;
	char *four = xmalloc(n);
	strcpy(four, good);
	strcat(four, ".AAAA");
	expect_refused(four, "malformed");
	/* Characters outside base64url (standard alphabet, spaces). */
	char *bad = xstrdup(good);
	bad[3] = '+';
	expect_refused(bad, "malformed");
	bad = xstrdup(good);
	bad[3] = ' ';
	expect_refused(bad, "malformed");
	/* Header or payload not JSON; payload a JSON array or a string. */
	expect_refused(make_token("hello", pl), "malformed");
	expect_refused(make_token(HS256, "{\"sub\":\"a\",\"exp\":1800000000"),
	    "malformed");
	expect_refused(make_token(HS256, "[\"a\",1800000000]"), "malformed");
	expect_refused(make_token(HS256, "\"a\""), "malformed");
	expect_refused(make_token("[]", pl), "malformed");
	/* Duplicate claims are refused rather than resolved either way. */
	expect_refused(make_token(HS256,
			   "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1800000000}"),
	    "malformed");
	/* sub problems. */
	expect_refused(
	    make_token(HS256, "{\"sub\":42,\"exp\":1800000000}"), "bad_sub");
	expect_refused(
	    make_token(HS256, "{\"sub\":[\"a\"],\"exp\":1800000000}"),
	    "bad_sub");
	expect_refused(make_token(HS256, "{\"sub\":\"\",\"exp\":1800000000}"),
	    "missing_sub");
	expect_refused(
	    make_token(HS256, "{\"exp\":1800000000}"), "missing_sub");
	expect_refused(
	    make_token(HS256, "{\"sub\":\"a\\nb\",\"exp\":1800000000}"),
	    "bad_sub");
	expect_refused(
	    make_token(HS256, "{\"sub\":\"a\\u0000b\",\"exp\":1800000000}"),
	    "malformed");
	char payload[400];
	char sub[BRK_AUTH_SUB_MAX + 2];
	memset(sub, 'u', BRK_AUTH_SUB_MAX + 1);
	sub[BRK_AUTH_SUB_MAX + 1] = '\0';
	snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"exp\":%d}", sub,
	    NOW + 1);
	expect_refused(make_token(HS256, payload), "bad_sub");

	/* Oversize tokens are refused before decoding. */
	char *big = xmalloc(BRK_AUTH_TOKEN_MAX + 2);
	memset(big, 'A', BRK_AUTH_TOKEN_MAX + 1);
	big[BRK_AUTH_TOKEN_MAX + 1] = '\0';
	expect_refused(big, "too_long");

	/* Bad arguments are not authentication failures. */
	ASSERT_EQ(
	    brk_auth_verify(SECRET, 0, good, NOW, &user, &why), PL_EINVAL);
	ASSERT_EQ(
	    brk_auth_verify(NULL, SLEN, good, NOW, &user, &why), PL_EINVAL);
	ASSERT_EQ(
	    brk_auth_verify(SECRET, SLEN, NULL, NOW, &user, &why), PL_EINVAL);
	/* why is optional. */
	ASSERT_EQ(
	    brk_auth_verify(SECRET, SLEN, "x", NOW, &user, NULL), PL_EAUTH);
	free(good);
}

static void
test_padding(void)
{
	/* A payload whose length is not a multiple of 3 so '=' would be
	 * emitted by a padding encoder. */
	const char *pl = "{\"sub\":\"ab\",\"exp\":1800000000}";
	char *good = make_token(HS256, pl);
	char *h, *p, *s, *tok;
	size_t n;

	ASSERT_TRUE(strlen(pl) % 3 != 0);
	h = xstrdup(good);
	p = strchr(h, '.');
	*p++ = '\0';
	s = strchr(p, '.');
	*s++ = '\0';
	n = strlen(good) + 8;
	tok = xmalloc(n);

	snprintf(tok, n, "%s.%s=.%s", h, p, s);
	expect_refused(xstrdup(tok), "malformed");
	snprintf(tok, n, "%s.%s.%s=", h, p, s);
	expect_refused(xstrdup(tok), "malformed");
	snprintf(tok, n, "%s=.%s.%s", h, p, s);
	expect_refused(xstrdup(tok), "malformed");

	/* Non-canonical trailing bits in the signature: the 43rd character
	 * carries 4 data bits and 2 that must be zero. */
	snprintf(tok, n, "%s", good);
	char *last = tok + strlen(tok) - 1;
	const char *alpha =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	int v = (int)(strchr(alpha, *last) - alpha);
	ASSERT_EQ(v & 3, 0);
	*last = alpha[v | 1];
	expect_refused(xstrdup(tok), "malformed");

	free(tok);
	free(h);
	expect_user(good, "ab");
}

static void
test_tampered_payload(void)
{
	char *good =
	    make_token(HS256, "{\"sub\":\"alice\",\"exp\":1800000000}");
	char *evil =
	    make_token(HS256, "{\"sub\":\"admin\",\"exp\":1800000000}");
	char *gsig = strrchr(good, '.');
	char *edot = strrchr(evil, '.');
	size_t n = (size_t)(edot - evil) + strlen(gsig) + 1;
	char *tok = xmalloc(n);

	/* evil's header and payload with good's signature. */
	memcpy(tok, evil, (size_t)(edot - evil));
	strcpy(tok + (edot - evil), gsig);
	expect_refused(tok, "bad_signature");

	/* Extending the expiry of a valid token. */
	free(evil);
	evil = make_token(HS256, "{\"sub\":\"alice\",\"exp\":1900000000}");
	edot = strrchr(evil, '.');
	n = (size_t)(edot - evil) + strlen(gsig) + 1;
	tok = xmalloc(n);
	memcpy(tok, evil, (size_t)(edot - evil));
	strcpy(tok + (edot - evil), gsig);
	expect_refused(tok, "bad_signature");
	free(evil);
	free(good);
}

static void
test_mint_round_trip(void)
{
	char *tok = brk_auth_mint(SECRET, SLEN, "user-42", NOW + 3600);
	char *user = NULL;
	const char *why = NULL;

	ASSERT_TRUE(tok != NULL);
	/* Same bytes as the independent signer produces. */
	char *ref =
	    make_token(HS256, "{\"sub\":\"user-42\",\"exp\":1700003600}");
	ASSERT_STREQ(tok, ref);
	free(ref);
	ASSERT_OK(brk_auth_verify(SECRET, SLEN, tok, NOW, &user, &why));
	ASSERT_STREQ(user, "user-42");
	free(user);
	ASSERT_EQ(brk_auth_verify(SECRET, SLEN, tok, NOW + 3600, &user, &why),
	    PL_EAUTH);
	ASSERT_STREQ(why, "expired");
	ASSERT_EQ(
	    brk_auth_verify((const uint8_t *)"x", 1, tok, NOW, &user, &why),
	    PL_EAUTH);
	ASSERT_STREQ(why, "bad_signature");
	free(tok);

	/* JSON escaping of awkward but legal ids. */
	tok = brk_auth_mint(SECRET, SLEN, "a\"b\\c/d \xe2\x82\xac", NOW + 1);
	ASSERT_TRUE(tok != NULL);
	expect_user(tok, "a\"b\\c/d \xe2\x82\xac");

	/* Ids verify would refuse are not minted. */
	ASSERT_TRUE(brk_auth_mint(SECRET, SLEN, "", NOW + 1) == NULL);
	ASSERT_TRUE(brk_auth_mint(SECRET, SLEN, "a\tb", NOW + 1) == NULL);
	ASSERT_TRUE(brk_auth_mint(SECRET, SLEN, NULL, NOW + 1) == NULL);
	ASSERT_TRUE(brk_auth_mint(SECRET, 0, "a", NOW + 1) == NULL);
	ASSERT_TRUE(brk_auth_mint(SECRET, SLEN, "\xff", NOW + 1) == NULL);
}

/* ---- several keys, kid ---- */

static int
verify_ring(const brk_key *keys, size_t n, char *tok, const char **why)
{
	char *user = NULL;
	int rc = brk_auth_verify_keys(keys, n, tok, NOW, &user, why);

	free(user);
	free(tok);
	return rc;
}

static void
test_kid(void)
{
	static const uint8_t A[] = "secret-a", B[] = "secret-b";
	const char *pl = "{\"sub\":\"u\",\"exp\":1800000000}";
	brk_key two[] = { { A, 8, "ka" }, { B, 8, NULL } };
	brk_key plain[] = { { A, 8, NULL }, { B, 8, NULL } };
	const char *why;
	char *tok;

	/* Without kid, every key is tried: both secrets verify. */
	ASSERT_OK(verify_ring(
	    plain, 2, make_token_md(EVP_sha256(), A, 8, HS256, pl), &why));
	ASSERT_OK(verify_ring(
	    plain, 2, make_token_md(EVP_sha256(), B, 8, HS256, pl), &why));
	ASSERT_EQ(
	    verify_ring(plain, 2,
		make_token_md(EVP_sha256(), SECRET, SLEN, HS256, pl), &why),
	    PL_EAUTH);
	ASSERT_STREQ(why, "bad_signature");

	/* A kid naming a key selects it alone. */
	ASSERT_OK(verify_ring(two, 2,
	    make_token_md(
		EVP_sha256(), A, 8, "{\"alg\":\"HS256\",\"kid\":\"ka\"}", pl),
	    &why));
	ASSERT_EQ(verify_ring(two, 2,
		      make_token_md(EVP_sha256(), B, 8,
			  "{\"alg\":\"HS256\",\"kid\":\"ka\"}", pl),
		      &why),
	    PL_EAUTH);
	ASSERT_STREQ(why, "bad_signature");
	/* An unknown kid falls back to the keys without an id... */
	ASSERT_OK(verify_ring(two, 2,
	    make_token_md(EVP_sha256(), B, 8,
		"{\"alg\":\"HS256\",\"kid\":\"other\"}", pl),
	    &why));
	/* ...and is refused as such when every key has one. */
	ASSERT_EQ(verify_ring(two, 1,
		      make_token_md(EVP_sha256(), A, 8,
			  "{\"alg\":\"HS256\",\"kid\":\"other\"}", pl),
		      &why),
	    PL_EAUTH);
	ASSERT_STREQ(why, "unknown_kid");
	/* A kid that is not a short string makes the header malformed. */
	ASSERT_EQ(verify_ring(two, 2,
		      make_token_md(EVP_sha256(), A, 8,
			  "{\"alg\":\"HS256\",\"kid\":7}", pl),
		      &why),
	    PL_EAUTH);
	ASSERT_STREQ(why, "malformed");

	/* Minting with a key that has an id puts it in the header. */
	tok = brk_auth_mint_key(&two[0], "u", NOW + 60);
	ASSERT_TRUE(tok != NULL);
	{
		char *dot = strchr(tok, '.');
		uint8_t hdr[128];
		size_t hl = 0;
		ASSERT_TRUE(dot &&
		    pl_b64url_decode(tok, (size_t)(dot - tok), hdr, &hl));
		hdr[hl] = '\0';
		ASSERT_STREQ((char *)hdr,
		    "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"ka\"}");
	}
	ASSERT_OK(verify_ring(two, 2, tok, &why));
}

TEST_LIST{
	TEST_ENTRY(test_valid),
	TEST_ENTRY(test_expired),
	TEST_ENTRY(test_exp_missing),
	TEST_ENTRY(test_bad_signature),
	TEST_ENTRY(test_wrong_alg),
	TEST_ENTRY(test_garbage),
	TEST_ENTRY(test_padding),
	TEST_ENTRY(test_tampered_payload),
	TEST_ENTRY(test_mint_round_trip),
	TEST_ENTRY(test_kid),
};
TEST_MAIN()
