/* SPDX-License-Identifier: Apache-2.0 */
/* The JWT keyring: the HS256 secrets a node verifies client tokens with,
 * the first of which signs (`parley token`), so a secret can be rotated
 * without refusing the tokens already out. Where it comes from: a flag or
 * its environment twin (one secret), a file (--jwt-secret-file, several),
 * or <data>/jwt_secret, which `serve` generates once when nothing else is
 * given. A keyed fingerprint of the signing secret lets nodes compare
 * secrets without revealing them.
 *
 * File format, one entry a line (blank lines and lines starting with # are
 * skipped, surrounding white space trimmed):
 *     SECRET             a secret without a key id
 *     kid=ID SECRET      a secret with key id ID (tokens whose header
 *                        carries "kid": "ID" are checked against it only)
 */
#ifndef PARLEY_BROKER_SECRETS_H
#define PARLEY_BROKER_SECRETS_H

#include "broker/auth.h"

#include <stdbool.h>
#include <stddef.h>

#define BRK_KEYRING_MAX 16       /* secrets in one keyring */
#define BRK_SECRET_FILE_MAX 8192 /* bytes of a secrets file */
#define BRK_FINGERPRINT_LEN 16   /* hex characters */

typedef struct brk_keyring brk_keyring;

/* Parses the file format above from text (len bytes, need not be
 * NUL-terminated). origin names the source in messages. Returns PL_OK;
 * PL_EINVAL (no secret, more than BRK_KEYRING_MAX, a malformed or
 * duplicate kid); PL_ENOMEM. */
int brk_keyring_parse(const char *text, size_t len, const char *origin,
    brk_keyring **out, char *err, size_t errlen);
void brk_keyring_destroy(brk_keyring *k);

/* The keys, signing key first; borrowed until destroy. */
const brk_key *brk_keyring_keys(const brk_keyring *k, size_t *n);
/* Where it was loaded from ("--jwt-secret", a path); borrowed. */
const char *brk_keyring_origin(const brk_keyring *k);

/* HMAC-SHA256 of a fixed label keyed with the signing secret, as 16 hex
 * characters and a NUL: equal secrets give equal fingerprints, and the
 * fingerprint tells nothing about the secret. */
void brk_keyring_fingerprint(
    const brk_keyring *k, char out[BRK_FINGERPRINT_LEN + 1]);

/* Where to look, in this order: value (a single secret: --jwt-secret or
 * PARLEY_JWT_SECRET), file (--jwt-secret-file), <data_dir>/jwt_secret.
 * Giving both value and file is an error. With create, a missing
 * <data_dir>/jwt_secret is generated: 32 random bytes written hex-encoded
 * with mode 0600 (data_dir created 0700 if missing), atomically and
 * without clobbering a file another process created meanwhile. Without
 * create nothing is ever written or created, and finding no secret is an
 * error that says where to put one. */
typedef struct brk_secret_src {
	const char *value;
	const char *file;
	const char *data_dir;
	bool create;
} brk_secret_src;

/* Returns PL_OK and *out; PL_ENOTFOUND (no secret, without create);
 * PL_EINVAL; PL_EIO; PL_ENOMEM, with a message in err. */
int brk_keyring_load(
    const brk_secret_src *src, brk_keyring **out, char *err, size_t errlen);

#endif
