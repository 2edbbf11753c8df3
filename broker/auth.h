/* SPDX-License-Identifier: Apache-2.0 */
/* Client authentication: HS256 JWTs carrying `sub` (user id) and `exp`, as
 * the WebSocket upgrade and `parley token` use them, plus loading (or
 * generating once) the shared secret from the data directory. */
#ifndef PARLEY_BROKER_AUTH_H
#define PARLEY_BROKER_AUTH_H

#include <stddef.h>
#include <stdint.h>

/* Longest token accepted; longer ones are refused before any decoding. */
#define BRK_AUTH_TOKEN_MAX 8192
/* Longest `sub` accepted, in bytes of UTF-8. */
#define BRK_AUTH_SUB_MAX 256

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
 * "not_yet_valid".
 * Returns PL_OK, PL_EAUTH (refused), PL_EINVAL (NULL args or empty secret),
 * PL_ENOMEM. Thread-safe. */
int brk_auth_verify(const uint8_t *secret, size_t secret_len, const char *token,
    int64_t now, char **user_out, const char **why);

/* Mints an HS256 JWT {"sub": user, "exp": exp} with header
 * {"alg":"HS256","typ":"JWT"}. secret/user: borrowed; `user` must be a valid
 * `sub` as brk_auth_verify defines it. Returns a NUL-terminated token the
 * caller frees, or NULL on invalid arguments or out of memory. */
char *
brk_auth_mint(const uint8_t *secret, size_t len, const char *user, int64_t exp);

/* Resolves the HS256 secret. If flag_value (from --jwt-secret or
 * PARLEY_JWT_SECRET; the caller picks) is non-NULL and non-empty, its bytes
 * are the secret. Otherwise <data_dir>/jwt_secret is read (trailing
 * whitespace ignored); if absent, 32 random bytes are generated and written
 * there hex-encoded with mode 0600 (data_dir created with mode 0700 if
 * missing), atomically and without clobbering a file another process created
 * meanwhile; the hex text is then the secret, so `serve` and `token` agree.
 * flag_value/data_dir: borrowed. secret/len: on PL_OK receive a malloc'ed
 * buffer the caller frees (not NUL-terminated). err: on failure receives a
 * message (may be NULL if errlen is 0).
 * Returns PL_OK, PL_EINVAL (empty or oversize file, bad args), PL_EIO,
 * PL_ENOMEM. */
int brk_auth_load_secret(const char *flag_value, const char *data_dir,
    uint8_t **secret, size_t *len, char *err, size_t errlen);

#endif
