/* SPDX-License-Identifier: Apache-2.0 */
/* Strict incremental UTF-8 validator: a hand-written state machine whose
 * whole state fits in one byte (continuation bytes still expected, plus the
 * narrowed range of the next byte after E0, ED, F0 and F4). */
#include "proto/utf8.h"

#include <string.h>

/* The state byte is need | range << 2: need = continuation bytes still
 * expected (0-3), range = index into these tables for the next byte. The
 * narrowed ranges are what rules out overlongs (E0, F0), surrogates (ED) and
 * code points above U+10FFFF (F4). */
static const uint8_t range_lo[5] = { 0x80, 0xa0, 0x80, 0x90, 0x80 };
static const uint8_t range_hi[5] = { 0xbf, 0xbf, 0x9f, 0xbf, 0x8f };

int
pro_utf8_feed(uint8_t *state, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	const uint8_t *end = p + n;
	unsigned need, range;

	if (*state == PRO_UTF8_REJECT) {
		return -1;
	}
	need = *state & 3u;
	range = *state >> 2;
	while (p < end) {
		uint8_t c;

		if (need == 0) {
			/* Skip ASCII eight bytes at a time: most text is ASCII. */
			while (end - p >= 8) {
				uint64_t w;

				memcpy(&w, p, 8);
				if (w & 0x8080808080808080ull) {
					break;
				}
				p += 8;
			}
			if (p == end) {
				break;
			}
			c = *p++;
			if (c < 0x80) {
				continue;
			}
			if (c < 0xc2) {
				goto bad; /* stray continuation, or overlong C0/C1 */
			} else if (c < 0xe0) {
				need = 1;
				range = 0;
			} else if (c < 0xf0) {
				need = 2;
				range = c == 0xe0 ? 1 : c == 0xed ? 2 : 0;
			} else if (c < 0xf5) {
				need = 3;
				range = c == 0xf0 ? 3 : c == 0xf4 ? 4 : 0;
			} else {
				goto bad;
			}
			continue;
		}
		c = *p++;
		if (c < range_lo[range] || c > range_hi[range]) {
			goto bad;
		}
		range = 0;
		need--;
	}
	*state = (uint8_t)(need | range << 2);
	return 0;
bad:
	*state = PRO_UTF8_REJECT;
	return -1;
}

bool
pro_utf8_valid(const void *p, size_t n)
{
	uint8_t st = PRO_UTF8_ACCEPT;

	return pro_utf8_feed(&st, p, n) == 0 && pro_utf8_complete(st);
}

/* Bytes of the Unicode White_Space character (PropList.txt) at p[0..n), or
 * 0: U+0009..000D, 0020, 0085, 00A0, 1680, 2000..200A, 2028, 2029, 202F,
 * 205F, 3000. */
static size_t
white_space_at(const unsigned char *p, size_t n)
{
	if (p[0] == ' ' || (p[0] >= 0x09 && p[0] <= 0x0d)) {
		return 1;
	}
	if (n >= 2 && p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0)) {
		return 2;
	}
	if (n < 3) {
		return 0;
	}
	if ((p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80) ||
	    (p[0] == 0xe2 && p[1] == 0x80 &&
		(p[2] <= 0x8a || p[2] == 0xa8 || p[2] == 0xa9 ||
		    p[2] == 0xaf)) ||
	    (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f) ||
	    (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80)) {
		return 3;
	}
	return 0;
}

bool
pro_utf8_blank(const void *p, size_t n)
{
	const unsigned char *s = p;
	size_t i = 0, w;

	while (i < n && (w = white_space_at(s + i, n - i)) > 0) {
		i += w;
	}
	return i == n;
}
