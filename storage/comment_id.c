/* SPDX-License-Identifier: Apache-2.0 */
/* Comment id minting and parsing; the layout is documented in comment_id.h. */
#include "storage/comment_id.h"

#include <inttypes.h>
#include <stdio.h>

#include "common/err.h"

#define MS_MAX ((int64_t)0xffffffffffff)
#define COUNTER_MAX 0xffffu

uint32_t
sto_comment_id_node_hash(const char *node)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)node; *p; p++) {
		h ^= *p;
		h *= 16777619u;
	}
	return (h);
}

void
sto_comment_id_gen_init(sto_comment_id_gen *g, const char *node,
    int64_t last_ms, uint32_t last_counter)
{
	g->last_ms = last_ms;
	g->counter = last_counter;
	g->node_hash = sto_comment_id_node_hash(node);
}

void
sto_comment_id_format(char out[STO_COMMENT_ID_LEN + 1], int64_t ms,
    uint32_t node_hash, uint32_t counter)
{
	snprintf(out, STO_COMMENT_ID_LEN + 1, "%012" PRIx64 "%08" PRIx32 "%04x",
	    (uint64_t)ms & (uint64_t)MS_MAX, node_hash, counter & COUNTER_MAX);
}

void
sto_comment_id_next(sto_comment_id_gen *g, int64_t now_ms,
    char out[STO_COMMENT_ID_LEN + 1], int64_t *ms_out)
{
	if (now_ms < 0) {
		now_ms = 0;
	}
	if (now_ms > g->last_ms) {
		g->last_ms = now_ms;
		g->counter = 0;
	} else if (g->counter < COUNTER_MAX) {
		g->counter++;
	} else {
		/* 65,536 ids in one ms: borrow the next ms rather than wrap. */
		g->last_ms++;
		g->counter = 0;
	}
	sto_comment_id_format(out, g->last_ms, g->node_hash, g->counter);
	if (ms_out != NULL) {
		*ms_out = g->last_ms;
	}
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9') {
		return (c - '0');
	}
	if (c >= 'a' && c <= 'f') {
		return (c - 'a' + 10);
	}
	return (-1);
}

bool
sto_comment_id_valid(const char *id)
{
	if (id == NULL) {
		return (false);
	}
	for (int i = 0; i < STO_COMMENT_ID_LEN; i++) {
		if (hexval(id[i]) < 0) {
			return (false);
		}
	}
	return (id[STO_COMMENT_ID_LEN] == '\0');
}

static uint64_t
hexnum(const char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++) {
		v = (v << 4) | (uint64_t)hexval(p[i]);
	}
	return (v);
}

int
sto_comment_id_parse(
    const char *id, int64_t *ms, uint32_t *node_hash, uint32_t *counter)
{
	if (!sto_comment_id_valid(id)) {
		return (PL_EINVAL);
	}
	if (ms != NULL) {
		*ms = (int64_t)hexnum(id, 12);
	}
	if (node_hash != NULL) {
		*node_hash = (uint32_t)hexnum(id + 12, 8);
	}
	if (counter != NULL) {
		*counter = (uint32_t)hexnum(id + 20, 4);
	}
	return (PL_OK);
}
