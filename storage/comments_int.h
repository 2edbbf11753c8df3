/* SPDX-License-Identifier: Apache-2.0 */
/* Private to storage/comments*.c: the store's struct, shared by the writer
 * side (comments.c) and the read side (comments_read.c), and the key/value
 * codec (comments_codec.c). Nothing outside storage/ includes this. */
#ifndef PARLEY_STORAGE_COMMENTS_INT_H
#define PARLEY_STORAGE_COMMENTS_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/comment_id.h"
#include "storage/comments.h"

#define STO_FORMAT_VERSION 1 /* meta "v": layout of keys and DBs */
#define STO_VALUE_VERSION 1  /* first byte of every comments value */
#define STO_VALUE_HDR 25     /* ver, inserted_at, seq, 3 lengths */

/* Longest keys we build; all well under LMDB's 511-byte key limit. */
#define STO_CKEY_MAX (STO_VIDEO_ID_MAX + 1 + STO_COMMENT_ID_LEN)
#define STO_OKEY_MAX (STO_ORIGIN_MAX + 1 + 8)
#define STO_MKEY_MAX (3 + STO_WATERMARK_NAME_MAX)

typedef struct sto_op sto_op;

struct sto_comments {
	MDB_env *env;
	MDB_dbi db_comments;
	MDB_dbi db_origin;
	MDB_dbi db_meta;
	/* Readers hold it shared for the life of a read txn; the writer takes
	 * it exclusively to resize the map (LMDB wants no live txn then). */
	pthread_rwlock_t maplock;

	pthread_mutex_t mu; /* guards the fields down to `st` */
	pthread_cond_t cv;  /* writer waits here for work */
	sto_op *pend_head;  /* queued for the writer */
	sto_op **pend_tail;
	size_t pend_count;
	size_t inflight;   /* taken by the writer, not yet done */
	sto_op *done_head; /* completed, waiting for poll */
	sto_op **done_tail;
	bool closing;
	sto_comments_stats st;
	/* A backup's read txn and a map resize exclude each other (LMDB
	 * resizes only with no txn open); both wait on backup_cv, so neither
	 * holds the maplock while waiting and loop readers never stall. */
	pthread_cond_t backup_cv;
	unsigned backups; /* backups holding a read txn */
	bool growing;     /* the writer is resizing the map */

	pthread_t writer;
	int efd;         /* eventfd: writer -> loop */
	size_t map_size; /* writer thread (and open) */
	size_t map_max;
	unsigned batch_max;
	unsigned queue_max;
	sto_op **batch; /* writer's scratch, batch_max entries */
	struct pl_metric *commit_seconds;

	/* Loop thread only. */
	bool closed;
	sto_comment_id_gen idgen;
	uint64_t next_seq;
	char *node;
	int64_t (*clock_ms)(void *arg);
	void *clock_arg;
};

/* A comment decoded from LMDB, pointing into the txn's pages (valid until
 * the txn ends); spans are not NUL-terminated. */
typedef struct sto_span {
	const char *p;
	size_t n;
} sto_span;

typedef struct sto_comment_view {
	sto_span video_id;
	sto_span id;
	sto_span user_id;
	sto_span content;
	sto_span origin;
	int64_t inserted_at;
	uint64_t seq;
} sto_comment_view;

/* Translates an MDB_* code or errno into a pl_err. */
int sto_comments_err(int rc);

/* Builds `video \0 id` into buf (STO_CKEY_MAX); returns its length. */
size_t
sto_comments_ckey(char *buf, const char *video, size_t vlen, const char *id);

/* Builds `origin \0 seq(BE)` into buf (STO_OKEY_MAX); returns its length. */
size_t
sto_comments_okey(char *buf, const char *origin, size_t olen, uint64_t seq);

/* Builds `prefix \0 name` (prefix "hw" or "wm") into buf (STO_MKEY_MAX). */
size_t
sto_comments_mkey(char *buf, const char *prefix, const char *name, size_t nlen);

void sto_comments_put_u64(uint8_t *p, uint64_t v);
uint64_t sto_comments_get_u64(const uint8_t *p);

/* Reads the u64 at meta key `prefix \0 name` into *v (0 when absent).
 * Returns an MDB code (MDB_CORRUPTED for a malformed value). */
int sto_comments_meta_get_u64(MDB_txn *txn, MDB_dbi db, const char *prefix,
    const char *name, uint64_t *v);

/* Writes v at meta key `prefix \0 name[0..nlen)`. Returns an MDB code. */
int sto_comments_meta_put_u64(MDB_txn *txn, MDB_dbi db, const char *prefix,
    const char *name, size_t nlen, uint64_t v);

/* Size of the encoded value of c, and its encoding into dst. */
size_t sto_comments_value_size(const sto_comment *c);
void sto_comments_value_encode(uint8_t *dst, const sto_comment *c);

/* Decodes a comments key and value. Returns PL_OK or PL_ECORRUPT. */
int sto_comments_view_decode(
    const MDB_val *key, const MDB_val *val, sto_comment_view *v);

#endif
