/* SPDX-License-Identifier: Apache-2.0 */
/* Strict, incremental UTF-8 validation (RFC 3629): overlong forms, UTF-16
 * surrogates and code points above U+10FFFF are rejected. The state is one
 * byte, so a WebSocket reader can carry it across fragments and reads. */
#ifndef PARLEY_PROTO_UTF8_H
#define PARLEY_PROTO_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Initial state, and the state after a complete character. */
#define PRO_UTF8_ACCEPT 0
/* Sticky state after invalid input. */
#define PRO_UTF8_REJECT 0xff

/* Feeds n bytes of p to the validator whose state is *state (start it at
 * PRO_UTF8_ACCEPT). Returns 0 while everything fed so far is a valid prefix
 * of UTF-8 (it may end inside a character), -1 at the first byte that makes
 * it invalid; *state is then PRO_UTF8_REJECT and every later call fails. */
int pro_utf8_feed(uint8_t *state, const void *p, size_t n);

/* True when the bytes fed so far end on a character boundary (and were all
 * valid): the end of a text message must satisfy this. */
static inline bool
pro_utf8_complete(uint8_t state)
{
	return state == PRO_UTF8_ACCEPT;
}

/* True when p[0..n) is complete, valid UTF-8. */
bool pro_utf8_valid(const void *p, size_t n);

/* True when valid UTF-8 p[0..n) holds nothing but Unicode White_Space
 * characters (U+0020, U+00A0, U+3000, ...), or nothing at all. */
bool pro_utf8_blank(const void *p, size_t n);

#endif
