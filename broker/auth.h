/* SPDX-License-Identifier: Apache-2.0 */
/* Client authentication: HS256 JWTs carrying `sub` (user id) and `exp`, as
 * the WebSocket upgrade and `parley token` use them, checked against one or
 * several keys (secrets.h loads them). */
#ifndef PARLEY_BROKER_AUTH_H
#define PARLEY_BROKER_AUTH_H

#include <stddef.h>
#include <stdint.h>

/* Longest token accepted; longer ones are refused before any decoding. */
#define BRK_AUTH_TOKEN_MAX 8192
/* Longest `sub` accepted, in bytes of UTF-8. */
#define BRK_AUTH_SUB_MAX 256
/* Longest key id (`kid` header). */
#define BRK_AUTH_KID_MAX 64

/* One HS256 key; kid is NULL for a key without an id. Borrowed. */
typedef struct brk_key {
	const uint8_t *secret;
	size_t len;
	const char *kid;
} brk_key;

/* Verifies an HS256 JWT against `secret` at time `now` (unix seconds).
 * The header must be a JSON object with "alg" exactly "HS256" ("typ", if
 * present, "JWT"; "crit" refused); the signature is compared in constant
 * time; the payload must hold a non-empty string `sub` (<= BRK_AUTH_SUB_MAX
 * bytes, no control characters) and a numeric `exp` > now; a numeric `nbf`,
 * if present, must be <= now. Base64url must be unpadded and canonical.
 * secret/token: borrowed. user_out: on PL_OK receives the `sub` as a
 * NUL-terminated string; caller frees. why: may be NULL; on PL_EAUTH
 * receives a static reason: "malformed", "too_long", "bad_signature",
 * "alg_not_allowed", "missing_sub" (absent or empty), "bad_sub" (not a
 * string, too long, control characters), "missing_exp", "expired",
 * "not_yet_valid", "unknown_kid".
 * Returns PL_OK, PL_EAUTH (refused), PL_EINVAL (NULL args or empty secret),
 * PL_ENOMEM. Thread-safe. */
int brk_auth_verify(const uint8_t *secret, size_t secret_len, const char *token,
    int64_t now, char **user_out, const char **why);

/* Like brk_auth_verify against several keys. A header "kid" (a string of
 * 1..BRK_AUTH_KID_MAX bytes) that names a key selects that key alone; a kid
 * no key carries is checked against the keys without an id ("unknown_kid"
 * when there are none); a token without kid is checked against every key. */
int brk_auth_verify_keys(const brk_key *keys, size_t nkeys, const char *token,
    int64_t now, char **user_out, const char **why);

/* Mints an HS256 JWT {"sub": user, "exp": exp} with header
 * {"alg":"HS256","typ":"JWT"}. secret/user: borrowed; `user` must be a valid
 * `sub` as brk_auth_verify defines it. Returns a NUL-terminated token the
 * caller frees, or NULL on invalid arguments or out of memory. */
char *
brk_auth_mint(const uint8_t *secret, size_t len, const char *user, int64_t exp);
/* Same with key's secret, and its kid in the header when it has one. */
char *brk_auth_mint_key(const brk_key *key, const char *user, int64_t exp);

#endif
