/* SPDX-License-Identifier: Apache-2.0 */
/* The tiny test harness every C unit test uses: ASSERT_* print both operands
 * with file:line and fail the current case; each test file ends with a
 * TEST_LIST table and TEST_MAIN(). A case that fails stops at once; the
 * runner goes on with the next case and exits non-zero if any failed.
 * Usage: ./test [case-name] runs one case. */
#ifndef PARLEY_TESTS_TEST_H
#define PARLEY_TESTS_TEST_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

extern jmp_buf test_jmp;
extern int test_failed;

#define TEST_FAIL_(...)                                                        \
	do {                                                                   \
		fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);              \
		fprintf(stderr, __VA_ARGS__);                                  \
		fputc('\n', stderr);                                           \
		test_failed = 1;                                               \
		longjmp(test_jmp, 1);                                          \
	} while (0)

#define ASSERT_TRUE(x)                                                         \
	do {                                                                   \
		if (!(x)) {                                                    \
			TEST_FAIL_("ASSERT_TRUE(%s)", #x);                     \
		}                                                              \
	} while (0)
#define ASSERT_EQ(a, b)                                                        \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		if (a_ != b_) {                                                \
			TEST_FAIL_("ASSERT_EQ(%s, %s): %lld != %lld", #a, #b,  \
			    a_, b_);                                           \
		}                                                              \
	} while (0)
#define ASSERT_NE(a, b)                                                        \
	do {                                                                   \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		if (a_ == b_) {                                                \
			TEST_FAIL_(                                            \
			    "ASSERT_NE(%s, %s): both %lld", #a, #b, a_);       \
		}                                                              \
	} while (0)
#define ASSERT_OK(x)                                                           \
	do {                                                                   \
		long long r_ = (long long)(x);                                 \
		if (r_ != 0) {                                                 \
			TEST_FAIL_("ASSERT_OK(%s): returned %lld", #x, r_);    \
		}                                                              \
	} while (0)
#define ASSERT_STREQ(a, b)                                                     \
	do {                                                                   \
		const char *a_ = (a), *b_ = (b);                               \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {         \
			TEST_FAIL_("ASSERT_STREQ(%s, %s): \"%s\" != \"%s\"",   \
			    #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");   \
		}                                                              \
	} while (0)
#define ASSERT_MEMEQ(a, b, n)                                                  \
	do {                                                                   \
		if (memcmp((a), (b), (n)) != 0) {                              \
			TEST_FAIL_("ASSERT_MEMEQ(%s, %s, %s)", #a, #b, #n);    \
		}                                                              \
	} while (0)

typedef struct test_case {
	const char *name;
	void (*fn)(void);
} test_case;
#define TEST_LIST static const test_case test_cases[] =
/* clang-format off */
#define TEST_ENTRY(fn) { #fn, fn }
/* clang-format on */

#define TEST_MAIN()                                                            \
	jmp_buf test_jmp;                                                      \
	int test_failed;                                                       \
	int main(int argc, char **argv)                                        \
	{                                                                      \
		volatile int failed = 0, passed = 0;                           \
		for (volatile size_t i = 0;                                    \
		     i < sizeof(test_cases) / sizeof(test_cases[0]); i++) {    \
			if (argc > 1 &&                                        \
			    strcmp(argv[1], test_cases[i].name) != 0) {        \
				continue;                                      \
			}                                                      \
			test_failed = 0;                                       \
			if (setjmp(test_jmp) == 0) {                           \
				test_cases[i].fn();                            \
			}                                                      \
			if (test_failed) {                                     \
				failed++;                                      \
				fprintf(                                       \
				    stderr, "FAIL %s\n", test_cases[i].name);  \
			} else {                                               \
				passed++;                                      \
				fprintf(                                       \
				    stderr, "ok   %s\n", test_cases[i].name);  \
			}                                                      \
		}                                                              \
		fprintf(stderr, "%d passed, %d failed\n", passed, failed);     \
		return failed ? 1 : 0;                                         \
	}

#endif
