/* SPDX-License-Identifier: Apache-2.0 */
/* HS256 JWT verification and minting for client tokens against a set of
 * keys (see secrets.h for where they come from). Verification is
 * deliberately strict: one algorithm, canonical unpadded base64url,
 * duplicate JSON keys refused, size capped before any work. */
#include "broker/auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "common/base64.h"
#include "common/err.h"
#include "common/log.h"

#define SIG_LEN 32     /* HMAC-SHA256 output */
#define SIG_B64_LEN 43 /* its unpadded base64url length */

/* base64url of {"alg":"HS256","typ":"JWT"}, the only header we mint. */
static const char mint_header[] = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/* ---- JWT ---- */

static bool
hmac_sha256(const uint8_t *key, size_t keylen, const char *data, size_t n,
    uint8_t out[SIG_LEN])
{
	unsigned int mdlen = 0;

	if (keylen > INT32_MAX) {
		return false;
	}
	if (HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)data, n,
		out, &mdlen) == NULL ||
	    mdlen != SIG_LEN) {
		return false;
	}
	return true;
}

/* A valid `sub`: non-empty, bounded, no control characters (which would
 * end up in logs and topic names) and no embedded NUL. */
static bool
sub_ok(const char *s, size_t n)
{
	if (n == 0 || n > BRK_AUTH_SUB_MAX) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f) {
			return false;
		}
	}
	return true;
}

/* Parses decoded bytes as a JSON object; NULL if they are not one.
 * Duplicate keys are refused so no two parsers can disagree on a claim. */
static json_t *
parse_object(const uint8_t *buf, size_t len)
{
	json_t *j =
	    json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, NULL);

	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static bool
header_alg_ok(json_t *hdr)
{
	json_t *alg = json_object_get(hdr, "alg");

	return json_is_string(alg) && json_string_length(alg) == 5 &&
	    memcmp(json_string_value(alg), "HS256", 5) == 0;
}

static bool
header_rest_ok(json_t *hdr)
{
	json_t *typ = json_object_get(hdr, "typ");
	json_t *kid = json_object_get(hdr, "kid");

	if (kid != NULL &&
	    (!json_is_string(kid) || json_string_length(kid) == 0 ||
		json_string_length(kid) > BRK_AUTH_KID_MAX)) {
		return false;
	}
	/* "crit" names extensions the verifier must understand; we know none. */
	if (json_object_get(hdr, "crit") != NULL) {
		return false;
	}
	if (typ == NULL) {
		return true;
	}
	return json_is_string(typ) && json_string_length(typ) == 3 &&
	    strcasecmp(json_string_value(typ), "JWT") == 0;
}

/* Compares a JSON number with `now`: <0, 0, >0 as the number is below,
 * equal to or above it. */
static int
cmp_number(json_t *num, int64_t now)
{
	if (json_is_integer(num)) {
		json_int_t v = json_integer_value(num);
		return v < now ? -1 : (v > now ? 1 : 0);
	}
	double d = json_real_value(num);
	double n = (double)now;
	return d < n ? -1 : (d > n ? 1 : 0);
}

static bool
kid_is(const brk_key *k, const char *kid)
{
	return k->kid != NULL && strcmp(k->kid, kid) == 0;
}

/* Checks the MAC of the token's first len bytes against the keys a kid
 * selects: the key with that kid; else (no kid, or one no key carries) every
 * key without a kid, or every key when the token has none. Returns PL_OK,
 * PL_EAUTH with *reason set, PL_ENOMEM. */
static int
check_mac(const brk_key *keys, size_t nkeys, const char *kid, const char *token,
    size_t len, const uint8_t sig[SIG_LEN], const char **reason)
{
	uint8_t mac[SIG_LEN];
	bool by_kid = false, tried = false;
	size_t i;

	for (i = 0; kid != NULL && i < nkeys; i++) {
		by_kid |= kid_is(&keys[i], kid);
	}
	for (i = 0; i < nkeys; i++) {
		if (kid != NULL &&
		    (by_kid ? !kid_is(&keys[i], kid) : keys[i].kid != NULL)) {
			continue;
		}
		tried = true;
		if (!hmac_sha256(
			keys[i].secret, keys[i].len, token, len, mac)) {
			return PL_ENOMEM;
		}
		if (CRYPTO_memcmp(mac, sig, SIG_LEN) == 0) {
			return PL_OK;
		}
	}
	*reason = tried ? "bad_signature" : "unknown_kid";
	return PL_EAUTH;
}

int
brk_auth_verify(const uint8_t *secret, size_t secret_len, const char *token,
    int64_t now, char **user_out, const char **why)
{
	brk_key k = { secret, secret_len, NULL };

	return brk_auth_verify_keys(&k, 1, token, now, user_out, why);
}

int
brk_auth_verify_keys(const brk_key *keys, size_t nkeys, const char *token,
    int64_t now, char **user_out, const char **why)
{
	const char *reason = "malformed";
	const char *d1, *d2;
	size_t tlen, hlen, plen, slen, len = 0, siglen = 0;
	uint8_t *buf = NULL, *sig;
	json_t *hdr = NULL, *pl = NULL, *sub, *exp, *nbf;
	int rc = PL_EAUTH;

	if (why != NULL) {
		*why = NULL;
	}
	if (user_out != NULL) {
		*user_out = NULL;
	}
	if (keys == NULL || nkeys == 0 || token == NULL || user_out == NULL) {
		return PL_EINVAL;
	}
	for (size_t i = 0; i < nkeys; i++) {
		if (keys[i].secret == NULL || keys[i].len == 0) {
			return PL_EINVAL;
		}
	}
	tlen = strnlen(token, BRK_AUTH_TOKEN_MAX + 1);
	if (tlen > BRK_AUTH_TOKEN_MAX) {
		reason = "too_long";
		goto fail;
	}
	d1 = memchr(token, '.', tlen);
	if (d1 == NULL) {
		goto fail;
	}
	d2 = memchr(d1 + 1, '.', tlen - (size_t)(d1 + 1 - token));
	if (d2 == NULL ||
	    memchr(d2 + 1, '.', tlen - (size_t)(d2 + 1 - token))) {
		goto fail;
	}
	hlen = (size_t)(d1 - token);
	plen = (size_t)(d2 - d1 - 1);
	slen = tlen - (size_t)(d2 + 1 - token);

	/* The decoded segments together are shorter than the token. */
	buf = malloc(tlen + 8);
	if (buf == NULL) {
		rc = PL_ENOMEM;
		goto fail;
	}
	if (hlen == 0 || !pl_b64url_decode(token, hlen, buf, &len)) {
		goto fail;
	}
	hdr = parse_object(buf, len);
	if (hdr == NULL || !header_rest_ok(hdr)) {
		goto fail;
	}
	if (!header_alg_ok(hdr)) {
		reason = "alg_not_allowed";
		goto fail;
	}
	/* Decode (but do not parse) the payload now so encoding errors are
	 * reported as such; only a signed payload gets parsed. */
	if (plen == 0 || !pl_b64url_decode(d1 + 1, plen, buf, &len)) {
		goto fail;
	}
	sig = buf + len;
	if (!pl_b64url_decode(d2 + 1, slen, sig, &siglen)) {
		goto fail;
	}
	if (siglen != SIG_LEN) {
		reason = "bad_signature";
		goto fail;
	}
	rc = check_mac(keys, nkeys,
	    json_string_value(json_object_get(hdr, "kid")), token,
	    (size_t)(d2 - token), sig, &reason);
	if (rc != PL_OK) {
		goto fail;
	}
	rc = PL_EAUTH;
	pl = parse_object(buf, len);
	if (pl == NULL) {
		goto fail;
	}
	sub = json_object_get(pl, "sub");
	if (sub == NULL ||
	    (json_is_string(sub) && json_string_length(sub) == 0)) {
		reason = "missing_sub";
		goto fail;
	}
	if (!json_is_string(sub) ||
	    !sub_ok(json_string_value(sub), json_string_length(sub))) {
		reason = "bad_sub";
		goto fail;
	}
	exp = json_object_get(pl, "exp");
	if (exp == NULL) {
		reason = "missing_exp";
		goto fail;
	}
	if (!json_is_number(exp)) {
		goto fail;
	}
	if (cmp_number(exp, now) <= 0) {
		reason = "expired";
		goto fail;
	}
	nbf = json_object_get(pl, "nbf");
	if (nbf != NULL) {
		if (!json_is_number(nbf)) {
			goto fail;
		}
		if (cmp_number(nbf, now) > 0) {
			reason = "not_yet_valid";
			goto fail;
		}
	}
	*user_out = strndup(json_string_value(sub), json_string_length(sub));
	if (*user_out == NULL) {
		rc = PL_ENOMEM;
		goto fail;
	}
	rc = PL_OK;
	reason = NULL;

fail:
	if (why != NULL && rc == PL_EAUTH) {
		*why = reason;
	}
	json_decref(pl);
	json_decref(hdr);
	free(buf);
	return rc;
}

char *
brk_auth_mint(const uint8_t *secret, size_t len, const char *user, int64_t exp)
{
	brk_key k = { secret, len, NULL };

	return brk_auth_mint_key(&k, user, exp);
}

char *
brk_auth_mint_key(const brk_key *key, const char *user, int64_t exp)
{
	json_t *pl = NULL;
	char *pjson = NULL, *tok = NULL, *hdr = NULL;
	size_t hb, pjlen, pb, o;
	uint8_t mac[SIG_LEN];

	if (key == NULL || key->secret == NULL || key->len == 0 ||
	    user == NULL || !sub_ok(user, strlen(user))) {
		return NULL;
	}
	if (key->kid != NULL) {
		/* The kid (checked printable when the keyring was parsed)
		 * goes in a header of our own making. */
		json_t *h = json_pack("{s:s, s:s, s:s}", "alg", "HS256", "typ",
		    "JWT", "kid", key->kid);
		char *hj = h ? json_dumps(h, JSON_COMPACT) : NULL;
		json_decref(h);
		if (hj == NULL) {
			return NULL;
		}
		hdr = malloc(pl_b64_encoded_len(strlen(hj)) + 1);
		if (hdr == NULL) {
			free(hj);
			return NULL;
		}
		hdr[pl_b64url_encode((const uint8_t *)hj, strlen(hj), hdr)] =
		    '\0';
		free(hj);
	}
	hb = hdr ? strlen(hdr) : sizeof(mint_header) - 1;
	pl = json_pack("{s:s, s:I}", "sub", user, "exp", (json_int_t)exp);
	if (pl == NULL) {
		goto fail;
	}
	pjson = json_dumps(pl, JSON_COMPACT);
	if (pjson == NULL) {
		goto fail;
	}
	pjlen = strlen(pjson);
	pb = pl_b64_encoded_len(pjlen);
	tok = malloc(hb + 1 + pb + 1 + SIG_B64_LEN + 1);
	if (tok == NULL) {
		goto fail;
	}
	memcpy(tok, hdr ? hdr : mint_header, hb);
	o = hb;
	tok[o++] = '.';
	o += pl_b64url_encode((const uint8_t *)pjson, pjlen, tok + o);
	if (!hmac_sha256(key->secret, key->len, tok, o, mac)) {
		free(tok);
		tok = NULL;
		goto fail;
	}
	tok[o++] = '.';
	o += pl_b64url_encode(mac, SIG_LEN, tok + o);
	tok[o] = '\0';

fail:
	free(hdr);
	free(pjson);
	json_decref(pl);
	return tok;
}
