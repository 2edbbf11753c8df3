/* SPDX-License-Identifier: Apache-2.0 */
#include "common/sbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
pl_sbuf_add(pl_sbuf *b, const void *s, size_t n)
{
	if (b->oom) {
		return;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 128;
		char *np;
		while (cap < b->len + n + 1) {
			cap *= 2;
		}
		np = realloc(b->p, cap);
		if (np == NULL) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
pl_sbuf_str(pl_sbuf *b, const char *s)
{
	pl_sbuf_add(b, s, strlen(s));
}

/* UTF-8 passes through unchanged (the input was valid when it entered the
 * node); quotes, backslashes and control characters are escaped. */
void
pl_sbuf_json_strn(pl_sbuf *b, const char *s, size_t n)
{
	const char *run = s, *end = s + n;

	pl_sbuf_add(b, "\"", 1);
	for (; s < end; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];
		if (c >= 0x20 && c != '"' && c != '\\') {
			continue;
		}
		pl_sbuf_add(b, run, (size_t)(s - run));
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			pl_sbuf_add(b, esc, 2);
		} else {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			pl_sbuf_add(b, esc, 6);
		}
		run = s + 1;
	}
	pl_sbuf_add(b, run, (size_t)(s - run));
	pl_sbuf_add(b, "\"", 1);
}

void
pl_sbuf_json_str(pl_sbuf *b, const char *s)
{
	pl_sbuf_json_strn(b, s, strlen(s));
}

char *
pl_sbuf_take(pl_sbuf *b, size_t *len)
{
	char *p = b->p;

	if (b->oom) {
		free(b->p);
		p = NULL;
	} else if (p == NULL) {
		p = calloc(1, 1);
	}
	if (len) {
		*len = p ? b->len : 0;
	}
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = 0;
	return p;
}

void
pl_sbuf_free(pl_sbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = 0;
}

char *
pl_memdup_z(const void *p, size_t n)
{
	char *d = malloc(n + 1);

	if (d != NULL) {
		memcpy(d, p, n);
		d[n] = '\0';
	}
	return d;
}
