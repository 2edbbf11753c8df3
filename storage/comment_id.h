/* SPDX-License-Identifier: Apache-2.0 */
/* Comment ids: fixed-width strings, unique across a cluster without any
 * coordination and sorted by creation time, so that LMDB's byte order on
 * `video_id \0 comment_id` keys is the order in which comments were made.
 *
 * Layout (24 lowercase hex digits, no separators):
 *
 *     mmmmmmmmmmmm hhhhhhhh cccc
 *     |            |        `-- 16-bit counter within that millisecond
 *     |            `-- 32-bit FNV-1a hash of the origin node name
 *     `-- 48-bit unix milliseconds (good until the year 10889)
 *
 * Lowercase hex sorts like the number it spells, so string order equals
 * (ms, node, counter) order: strictly increasing on one node, and ordered by
 * time (to the clock skew) across nodes. Two nodes collide only if their
 * names hash alike AND they mint the same counter in the same millisecond.
 * An id is a string, never a number, so JavaScript clients keep it exact. */
#ifndef PARLEY_STORAGE_COMMENT_ID_H
#define PARLEY_STORAGE_COMMENT_ID_H

#include <stdbool.h>
#include <stdint.h>

#define STO_COMMENT_ID_LEN 24

/* Per-node generator state. Embed it; it needs no cleanup. Not thread-safe:
 * one thread mints ids (the event loop). */
typedef struct sto_comment_id_gen {
	int64_t last_ms;    /* ms of the last id minted (or restored) */
	uint32_t counter;   /* counter of the last id within last_ms */
	uint32_t node_hash; /* sto_comment_id_node_hash(node) */
} sto_comment_id_gen;

/* 32-bit FNV-1a of a node name, as embedded in ids. */
uint32_t sto_comment_id_node_hash(const char *node);

/* Initializes *g for node (borrowed, only hashed). last_ms/last_counter are
 * the state of the last id this node minted (restored from storage), or
 * last_ms = -1 when none was ever minted. */
void sto_comment_id_gen_init(sto_comment_id_gen *g, const char *node,
    int64_t last_ms, uint32_t last_counter);

/* Mints the next id into out (NUL-terminated) using now_ms as the clock.
 * The id's ms is max(last_ms, now_ms), so ids stay strictly increasing when
 * the clock steps back; when the counter of one millisecond is exhausted the
 * ms moves one ahead. *ms_out (may be NULL) receives the ms in the id, which
 * callers use as inserted_at. */
void sto_comment_id_next(sto_comment_id_gen *g, int64_t now_ms,
    char out[STO_COMMENT_ID_LEN + 1], int64_t *ms_out);

/* Formats an id from its parts into out (NUL-terminated). */
void sto_comment_id_format(char out[STO_COMMENT_ID_LEN + 1], int64_t ms,
    uint32_t node_hash, uint32_t counter);

/* True when id is exactly STO_COMMENT_ID_LEN lowercase hex digits. */
bool sto_comment_id_valid(const char *id);

/* Splits a valid id into its parts (any out pointer may be NULL).
 * Returns PL_OK, or PL_EINVAL when id is not valid. */
int sto_comment_id_parse(
    const char *id, int64_t *ms, uint32_t *node_hash, uint32_t *counter);

#endif
