/* SPDX-License-Identifier: Apache-2.0 */
/* Unicode White_Space detection: every code point is checked against the
 * property's list, and strings mixing them with other text. */
#include "proto/utf8.h"

#include "tests/unit/test.h"

#include <stdint.h>

static size_t
encode(uint32_t cp, unsigned char *o)
{
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | cp >> 6);
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | cp >> 12);
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | cp >> 18);
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* PropList.txt, White_Space. */
static int
is_white_space(uint32_t cp)
{
	return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 ||
	    cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	    cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
	    cp == 0x3000;
}

static void
every_code_point(void)
{
	unsigned char b[8];

	for (uint32_t cp = 0; cp <= 0x10ffff; cp++) {
		size_t n;

		if (cp >= 0xd800 && cp <= 0xdfff) {
			continue;
		}
		n = encode(cp, b);
		ASSERT_TRUE(pro_utf8_valid(b, n));
		if (pro_utf8_blank(b, n) != is_white_space(cp)) {
			TEST_FAIL_("U+%04X: blank %d", (unsigned)cp,
			    pro_utf8_blank(b, n));
		}
	}
}

static void
strings(void)
{
	static const char *const blank[] = { "", " ", "\t\r\n", "\xc2\xa0",
		" \xc2\xa0 \xe3\x80\x80\xe2\x80\xaf\xe2\x80\x8a\xc2\x85" };
	static const char *const text[] = { "a", " a ", "\xc2\xa0x",
		"\xe2\x80\x8b", /* U+200B ZERO WIDTH SPACE: not White_Space */
		"\xef\xbb\xbf", /* U+FEFF */
		"\xc2\xa0\xe2\x80\x8b" };

	for (size_t i = 0; i < sizeof(blank) / sizeof(blank[0]); i++) {
		ASSERT_TRUE(pro_utf8_blank(blank[i], strlen(blank[i])));
	}
	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
		ASSERT_TRUE(!pro_utf8_blank(text[i], strlen(text[i])));
	}
}

TEST_LIST{
	TEST_ENTRY(every_code_point),
	TEST_ENTRY(strings),
};

TEST_MAIN()
