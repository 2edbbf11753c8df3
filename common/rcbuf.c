/* SPDX-License-Identifier: Apache-2.0 */
#include "common/rcbuf.h"

#include <stdlib.h>

static uint64_t next_seq;

pl_rcbuf *
pl_rcbuf_new(size_t len)
{
	pl_rcbuf *b = malloc(sizeof(*b) + len);

	if (b == NULL) {
		return NULL;
	}
	b->refs = 1;
	b->queued = 0;
	b->seq = ++next_seq;
	b->len = len;
	b->data = b->inline_data;
	b->adopted = 0;
	return b;
}

pl_rcbuf *
pl_rcbuf_adopt(char *p, size_t len)
{
	pl_rcbuf *b = malloc(sizeof(*b));

	if (b == NULL) {
		free(p);
		return NULL;
	}
	b->refs = 1;
	b->queued = 0;
	b->seq = ++next_seq;
	b->len = len;
	b->data = p;
	b->adopted = 1;
	return b;
}

void
pl_rcbuf_ref(pl_rcbuf *b)
{
	b->refs++;
}

void
pl_rcbuf_unref(pl_rcbuf *b)
{
	if (b == NULL || --b->refs > 0) {
		return;
	}
	if (b->adopted) {
		free(b->data);
	}
	free(b);
}
