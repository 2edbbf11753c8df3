/* SPDX-License-Identifier: Apache-2.0 */
/* Comment storage in one LMDB environment: durable appends through a
 * group-commit writer thread, synchronous history queries per video, and a
 * per-origin sequence index for replication and anti-entropy.
 *
 * Layout (named databases in <dir>/data.mdb):
 *   comments  `video_id \0 comment_id` -> value (version byte + fields), so a
 *             video's history is one contiguous, time-ordered key range;
 *   origin    `origin \0 seq (8 bytes big-endian)` -> the comments key, so
 *             "what do you have from node N after seq S" is one cursor walk;
 *   meta      format version, the id generator state, per-origin high-water
 *             marks (`hw \0 origin`), named watermarks (`wm \0 name`).
 *
 * Threads. Every function here is called from ONE thread, the event loop
 * ("loop thread"). The store owns one writer thread which runs all write
 * transactions. Appends return at once with their id and seq assigned;
 * the writer commits everything queued in ONE write transaction and one
 * durable sync, then signals sto_comments_notify_fd(); the loop calls
 * sto_comments_poll(), which runs the completion callbacks on the loop
 * thread, in append order. Callbacks never run on the writer thread.
 *
 * Durability. The environment keeps LMDB's default sync-on-commit: a commit
 * flushes the data pages, then writes the meta page synchronously. That is
 * two flushes per commit but in the order LMDB's crash safety relies on;
 * MDB_NOSYNC + mdb_env_sync() after commit would be one flush, but its pages
 * may reach the disk in any order, so a power loss mid-flush could leave a
 * meta page pointing at unwritten data. Group commit amortizes the flushes
 * over the whole batch, which is where the win is. A completion with status
 * PL_OK means the comment is on disk.
 *
 * Ids and seqs are assigned at append time and continue after reopen from
 * the last committed state. An id or seq whose append never completed (a
 * crash before commit, or a failed batch) may be handed out again after a
 * restart, so never send a comment beyond this node before its completion
 * reports PL_OK. The map grows by doubling when a write hits MDB_MAP_FULL;
 * readers and the resize are coordinated by an rwlock, so queries may wait
 * briefly for a resize. One process may open a directory only once. */
#ifndef PARLEY_STORAGE_COMMENTS_H
#define PARLEY_STORAGE_COMMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/comment_id.h"

#define STO_VIDEO_ID_MAX 256 /* bytes, excluding NUL */
#define STO_USER_ID_MAX 256
#define STO_ORIGIN_MAX 128
#define STO_WATERMARK_NAME_MAX 128
#define STO_CONTENT_MAX 65536
#define STO_QUERY_LIMIT_MAX 10000

typedef struct sto_comments sto_comments;
struct pl_metric;

typedef struct sto_comments_opts {
	const char *node;   /* required: this node's name, the origin of
	                        * local comments (borrowed during open) */
	size_t map_size;    /* initial map size in bytes; 0 = 64 MiB. An
	                        * existing larger file keeps its size. */
	size_t map_max;     /* growth stops here (writes then fail with
	                        * PL_EFULL); 0 = no limit */
	unsigned batch_max; /* most operations per write transaction;
	                        * 0 = 1024; 1 = one txn and sync per comment */
	unsigned queue_max; /* most queued, uncommitted operations before
	                        * appends fail with PL_EAGAIN; 0 = 65536 */
	int64_t (*clock_ms)(void *arg); /* unix ms; NULL = CLOCK_REALTIME */
	void *clock_arg;
	struct pl_metric *commit_seconds; /* optional histogram (borrowed,
	                        * must outlive the store): each commit's
	                        * write + sync time, observed on the writer */
} sto_comments_opts;

/* A stored comment. In results, strings are NUL-terminated and live in the
 * result's single allocation; in callbacks they are borrowed for the call. */
typedef struct sto_comment {
	char id[STO_COMMENT_ID_LEN + 1];
	const char *video_id;
	const char *user_id;
	const char *content;
	const char *origin;  /* node that accepted the comment */
	int64_t inserted_at; /* unix ms */
	uint64_t seq;        /* per-origin sequence, from 1, no gaps unless a
	                        * batch failed */
} sto_comment;

/* A new local comment (all strings borrowed during the call, copied). */
typedef struct sto_comment_in {
	const char *video_id;
	const char *user_id;
	const char *content;
} sto_comment_in;

/* What an append assigned, known before it is durable. */
typedef struct sto_assigned {
	char id[STO_COMMENT_ID_LEN + 1];
	uint64_t seq;
	int64_t inserted_at; /* the id's ms: unix ms, never going back */
} sto_assigned;

/* A query result: items oldest first. has_more: for latest/before, older
 * comments exist; for after/origin_after, newer ones exist. */
typedef struct sto_comment_list {
	sto_comment *items;
	size_t count;
	bool has_more;
} sto_comment_list;

/* One entry of the per-origin sequence vector. */
typedef struct sto_origin_seq {
	const char *origin;
	uint64_t seq; /* highest seq stored from origin */
} sto_origin_seq;

typedef struct sto_origin_vec {
	sto_origin_seq *items;
	size_t count;
} sto_origin_vec;

/* Counters for /metrics; snapshot, safe to read any time. */
typedef struct sto_comments_stats {
	uint64_t appends;       /* local appends accepted */
	uint64_t replicas;      /* replica puts accepted */
	uint64_t commits;       /* write transactions committed */
	uint64_t fsyncs;        /* durable syncs (one per commit) */
	uint64_t committed_ops; /* operations made durable (incl. duplicates) */
	uint64_t failed_ops;    /* operations completed with an error */
	uint64_t map_grows;     /* map resizes */
	uint64_t map_size;      /* current map size in bytes */
	uint64_t max_batch;     /* largest batch committed */
	uint64_t queued;        /* operations queued, not yet committed */
	double avg_batch;       /* committed_ops / commits */
} sto_comments_stats;

/* Completion of an append or a replica put, run on the loop thread from
 * sto_comments_poll() (or sto_comments_close()). status: PL_OK when durable;
 * for a replica, PL_EEXIST when it was already stored (nothing written, not
 * a failure); PL_EPROTO when another comment holds its origin+seq;
 * PL_EFULL/PL_EIO/PL_ECORRUPT when the batch failed. c is borrowed for the
 * call. A callback must not call sto_comments_close(). */
typedef void (*sto_append_cb)(void *arg, int status, const sto_comment *c);

/* Completion of a watermark set, same rules as sto_append_cb. */
typedef void (*sto_done_cb)(void *arg, int status);

/* Opens (creating dir and the environment if missing) and starts the writer
 * thread. opts->node is required. Stale reader slots left by a killed
 * process are cleared. On error writes a message into errbuf (may be NULL)
 * and returns PL_EINVAL (bad options), PL_ECORRUPT (not a readable LMDB
 * file, or an unknown format version), PL_EIO (directory or file
 * unusable), PL_ENOMEM. Close with sto_comments_close. */
int sto_comments_open(sto_comments **out, const char *dir,
    const sto_comments_opts *opts, char *errbuf, size_t errlen);

/* Commits every queued operation, joins the writer thread, runs the
 * remaining completion callbacks from within this call (with their real
 * status, normally PL_OK), and frees everything. Appends from those
 * callbacks fail with PL_ECLOSED. s may be NULL. */
void sto_comments_close(sto_comments *s);

/* Queues a new local comment. Assigns id, seq and inserted_at at once into
 * *assigned (may be NULL). cb (may be NULL) runs later from poll with the
 * stored comment. Returns PL_OK, or without calling cb: PL_EINVAL (missing
 * or invalid field), PL_ETOOBIG (a field over its STO_*_MAX), PL_EAGAIN
 * (queue_max reached), PL_ENOMEM, PL_ECLOSED. */
int sto_comments_append(sto_comments *s, const sto_comment_in *c,
    sto_append_cb cb, void *arg, sto_assigned *assigned);

/* Queues a comment received from another node, keeping its id, origin,
 * seq and inserted_at. Idempotent: a comment already stored with the same
 * bytes completes with PL_EEXIST and changes nothing; one whose id or
 * origin+seq is held by different bytes completes with PL_EPROTO (the stored
 * comment is kept: a conflict, for the caller to log and count). If origin is this node (its own comments
 * coming back after data loss), the local seq skips past c->seq. Returns as
 * sto_comments_append. */
int sto_comments_put_replica(
    sto_comments *s, const sto_comment *c, sto_append_cb cb, void *arg);

/* Queues setting the named watermark (e.g. a sync cursor) to value, in the
 * same group commit. Read it back with sto_comments_watermark. */
int sto_comments_set_watermark(sto_comments *s, const char *name,
    uint64_t value, sto_done_cb cb, void *arg);

/* Reads a named watermark; *value = 0 when never set. Returns PL_OK,
 * PL_EINVAL, PL_EIO. */
int sto_comments_watermark(sto_comments *s, const char *name, uint64_t *value);

/* Calls fn for every named watermark whose name begins with prefix ("" for
 * all), in name order, with its committed value; name is borrowed for the
 * call, and fn must not call the store. Returns PL_OK, PL_EINVAL, PL_EIO,
 * PL_ECORRUPT. */
int sto_comments_watermarks(sto_comments *s, const char *prefix,
    void (*fn)(void *arg, const char *name, uint64_t value), void *arg);

/* Non-blocking fd that becomes readable when completions are ready; watch it
 * for reading on the loop and call sto_comments_poll. Owned by the store. */
int sto_comments_notify_fd(sto_comments *s);

/* Drains the notify fd and runs every ready completion callback, in append
 * order. Callbacks may append again. Safe to call when nothing is ready. */
void sto_comments_poll(sto_comments *s);

/* Snapshot of the counters. */
void sto_comments_stats_get(sto_comments *s, sto_comments_stats *out);

/* Queries. All read committed data only (a comment is visible once its
 * completion is ready), run a read transaction on the calling thread, and
 * on PL_OK set *out to a list the caller frees with sto_comment_list_free.
 * limit: 1..STO_QUERY_LIMIT_MAX. Errors: PL_EINVAL, PL_ENOMEM, PL_ECORRUPT
 * (a stored value is unreadable), PL_EIO. */

/* The comment video_id/id; PL_ENOTFOUND when absent. count is 1. */
int sto_comments_get(sto_comments *s, const char *video_id, const char *id,
    sto_comment_list **out);

/* The latest `limit` comments of a video; has_more: older ones exist. */
int sto_comments_latest(sto_comments *s, const char *video_id, size_t limit,
    sto_comment_list **out);

/* The `limit` comments just before id (exclusive; id need not exist);
 * has_more: still older ones exist. */
int sto_comments_before(sto_comments *s, const char *video_id,
    const char *before_id, size_t limit, sto_comment_list **out);

/* The first `limit` comments after id (exclusive; id need not exist);
 * has_more: more comments follow. */
int sto_comments_after(sto_comments *s, const char *video_id,
    const char *after_id, size_t limit, sto_comment_list **out);

/* Highest seq stored from origin, 0 when none. Returns PL_OK, PL_EINVAL,
 * PL_EIO. */
int sto_comments_origin_max(sto_comments *s, const char *origin, uint64_t *seq);

/* Up to `limit` comments from origin with seq > after_seq, in seq order;
 * has_more: more follow. */
int sto_comments_origin_after(sto_comments *s, const char *origin,
    uint64_t after_seq, size_t limit, sto_comment_list **out);

/* Every origin with its highest stored seq (the sequence vector peers
 * exchange), sorted by origin. Caller frees with sto_origin_vec_free. */
int sto_comments_origin_vector(sto_comments *s, sto_origin_vec **out);

/* Frees a query result (one allocation); NULL is fine. */
void sto_comment_list_free(sto_comment_list *l);

/* Frees an origin vector; NULL is fine. */
void sto_origin_vec_free(sto_origin_vec *v);

#endif
