/* SPDX-License-Identifier: Apache-2.0 */
/* A growable byte string for building wire text (JSON envelopes, presence
 * payloads) without a DOM: appends never fail loudly; an allocation failure
 * is remembered and reported once by pl_sbuf_take. */
#ifndef PARLEY_COMMON_SBUF_H
#define PARLEY_COMMON_SBUF_H

#include <stddef.h>

typedef struct pl_sbuf {
	char *p; /* NUL-terminated once anything was appended */
	size_t len, cap;
	int oom;
} pl_sbuf;

#define PL_SBUF_INIT                                                           \
	{                                                                      \
		NULL, 0, 0, 0                                                  \
	}

void pl_sbuf_add(pl_sbuf *b, const void *s, size_t n);
void pl_sbuf_str(pl_sbuf *b, const char *s);
/* Appends s as a JSON string literal (quotes and escapes included). */
void pl_sbuf_json_str(pl_sbuf *b, const char *s);
/* The same for n bytes that may hold NUL (escaped as \u0000). */
void pl_sbuf_json_strn(pl_sbuf *b, const char *s, size_t n);
/* Hands the text to the caller (free() it) with its length; NULL after an
 * allocation failure (the buffer is then freed). Resets b. */
char *pl_sbuf_take(pl_sbuf *b, size_t *len);
void pl_sbuf_free(pl_sbuf *b);

/* A malloc'ed copy of n bytes plus a terminating NUL (the bytes may hold
 * NUL themselves); NULL on allocation failure. Caller frees. */
char *pl_memdup_z(const void *p, size_t n);

#endif
