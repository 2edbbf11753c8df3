/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 in the two alphabets the node meets: url-safe without padding (JWT
 * segments, our own tokens, Google's assertions) and standard (phoenix.js
 * sends its authToken subprotocol as btoa() with the '=' stripped).
 * Decoders are strict, so every byte string has exactly one encoding. */
#ifndef PARLEY_COMMON_BASE64_H
#define PARLEY_COMMON_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the unpadded encoding of n bytes (no NUL). */
size_t pl_b64_encoded_len(size_t n);

/* Writes the unpadded base64url encoding of in[0..n) to out (no NUL) and
 * returns its length, pl_b64_encoded_len(n). */
size_t pl_b64url_encode(const uint8_t *in, size_t n, char *out);

/* Decodes unpadded base64url s[0..n) into out, which must hold n * 3 / 4 + 2
 * bytes; *outlen gets the decoded length. Refuses padding, characters outside
 * the alphabet, impossible lengths and non-zero trailing bits. */
bool pl_b64url_decode(const char *s, size_t n, uint8_t *out, size_t *outlen);

/* The same for the standard alphabet (+ and /), padding optional: "=" may
 * end the input only as far as the length needs it. */
bool pl_b64_decode(const char *s, size_t n, uint8_t *out, size_t *outlen);

#endif
