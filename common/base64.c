/* SPDX-License-Identifier: Apache-2.0 */
/* Base64 (RFC 4648 sections 4 and 5) for short strings: tokens and headers. */
#include "common/base64.h"

static const char url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
pl_b64_encoded_len(size_t n)
{
	return (n / 3) * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

size_t
pl_b64url_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = ((uint32_t)in[i] << 16) |
		    ((uint32_t)in[i + 1] << 8) | in[i + 2];
		out[o++] = url_chars[(v >> 18) & 63];
		out[o++] = url_chars[(v >> 12) & 63];
		out[o++] = url_chars[(v >> 6) & 63];
		out[o++] = url_chars[v & 63];
	}
	if (n - i >= 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (n - i == 2) {
			v |= (uint32_t)in[i + 1] << 8;
		}
		out[o++] = url_chars[(v >> 18) & 63];
		out[o++] = url_chars[(v >> 12) & 63];
		if (n - i == 2) {
			out[o++] = url_chars[(v >> 6) & 63];
		}
	}
	return o;
}

/* The value of c in the alphabet whose characters 62 and 63 are c62, c63. */
static int
val(char c, char c62, char c63)
{
	if (c >= 'A' && c <= 'Z') {
		return c - 'A';
	}
	if (c >= 'a' && c <= 'z') {
		return c - 'a' + 26;
	}
	if (c >= '0' && c <= '9') {
		return c - '0' + 52;
	}
	if (c == c62) {
		return 62;
	}
	if (c == c63) {
		return 63;
	}
	return -1;
}

static bool
decode(
    const char *s, size_t n, uint8_t *out, size_t *outlen, char c62, char c63)
{
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	if (n % 4 == 1) {
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		int v = val(s[i], c62, c63);

		if (v < 0) {
			return false;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0) {
		return false;
	}
	*outlen = o;
	return true;
}

bool
pl_b64url_decode(const char *s, size_t n, uint8_t *out, size_t *outlen)
{
	return decode(s, n, out, outlen, '-', '_');
}

bool
pl_b64_decode(const char *s, size_t n, uint8_t *out, size_t *outlen)
{
	size_t pad = 0;

	while (pad < 2 && n > 0 && s[n - 1] == '=') {
		n--;
		pad++;
	}
	if (pad > 0 && (n + pad) % 4 != 0) {
		return false;
	}
	return decode(s, n, out, outlen, '+', '/');
}
