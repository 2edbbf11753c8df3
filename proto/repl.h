/* SPDX-License-Identifier: Apache-2.0 */
/* Comment replication messages between nodes (msgpack), carried as app
 * messages of the cluster bus or as requests and replies of its addressed
 * path. Every message is one array [version, type, ...]:
 *
 *   VEC      [1, 1, [[origin, cw, hw], ...]]   this node's sequence vector:
 *            per origin, cw = every seq up to it is stored here or exists
 *            nowhere, hw = the highest seq stored here
 *   COMMENTS [1, 2, origin, ack, [comment, ...]]  live copies after the
 *            origin's durable commit; ack: the origin waits for an ACK
 *   ACK      [1, 3, origin, [seq, ...]]         durable here (to the origin)
 *   PULL     [1, 4, origin, after, limit]       "your comments of origin
 *            with seq > after" (an addressed request)
 *   CHUNK    [1, 5, origin, through, more, [comment, ...]]  its reply: every
 *            comment the responder holds in (after, through], in seq order
 *
 * where comment = [seq, id, video_id, user_id, content, inserted_at].
 * The decoder checks every type and bound before anything is used, so no
 * peer input crashes a node; strings borrow from the input buffer. */
#ifndef PARLEY_PROTO_REPL_H
#define PARLEY_PROTO_REPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define PRO_REPL_VERSION 1
#define PRO_REPL_ORIGIN_MAX                                                    \
	100                        /* bytes, printable ASCII (a
                                   * watermark name holds "cw:" + it) */
#define PRO_REPL_ID_LEN 24         /* comment ids: lowercase hex */
#define PRO_REPL_VIDEO_MAX 256     /* bytes, no NUL */
#define PRO_REPL_USER_MAX 256      /* bytes, no NUL */
#define PRO_REPL_CONTENT_MAX 65536 /* bytes, no NUL */
#define PRO_REPL_BATCH_MAX 4096    /* comments or seqs in one message */
#define PRO_REPL_VEC_MAX 8192      /* origins in one vector */

typedef enum pro_repl_type {
	PRO_REPL_VEC = 1,
	PRO_REPL_COMMENTS = 2,
	PRO_REPL_ACK = 3,
	PRO_REPL_PULL = 4,
	PRO_REPL_CHUNK = 5,
} pro_repl_type;

typedef struct pro_repl_comment {
	uint64_t seq; /* >= 1 */
	pro_wire_str id;
	pro_wire_str video_id;
	pro_wire_str user_id;
	pro_wire_str content;
	int64_t inserted_at; /* unix ms, >= 0 */
} pro_repl_comment;

typedef struct pro_repl_mark {
	pro_wire_str origin;
	uint64_t cw; /* contiguous: all up to it held, or existing nowhere */
	uint64_t hw; /* highest held */
} pro_repl_mark;

/* A decoded message: the fields of its type are set, the others zero.
 * Strings borrow from the input buffer, arrays from the message: valid until
 * pro_repl_msg_release() and while the input lives. */
typedef struct pro_repl_msg {
	pro_repl_type type;
	pro_wire_str origin; /* COMMENTS, ACK, PULL, CHUNK */
	uint64_t after;      /* PULL */
	uint64_t limit;      /* PULL: 1..PRO_REPL_BATCH_MAX */
	uint64_t through;    /* CHUNK */
	bool flag;           /* COMMENTS: ack wanted; CHUNK: more follow */
	const pro_repl_mark *marks; /* VEC */
	size_t nmarks;
	const pro_repl_comment *comments; /* COMMENTS, CHUNK */
	size_t ncomments;
	const uint64_t *seqs; /* ACK */
	size_t nseqs;
	void *zone_; /* private */
} pro_repl_msg;

/* Encoders append one message to out. Returns PL_OK, PL_EINVAL (a field
 * over its limit, a malformed origin or id, too many items), PL_ENOMEM; on
 * error out is left as it was. */
int
pro_repl_encode_vec(pro_wire_buf *out, const pro_repl_mark *marks, size_t n);
int pro_repl_encode_comments(pro_wire_buf *out, pro_wire_str origin, bool ack,
    const pro_repl_comment *c, size_t n);
int pro_repl_encode_ack(
    pro_wire_buf *out, pro_wire_str origin, const uint64_t *seqs, size_t n);
int pro_repl_encode_pull(
    pro_wire_buf *out, pro_wire_str origin, uint64_t after, uint64_t limit);
int pro_repl_encode_chunk(pro_wire_buf *out, pro_wire_str origin,
    uint64_t through, bool more, const pro_repl_comment *c, size_t n);

/* Decodes buf[0..len), which must hold exactly one message. On PL_OK release
 * *out with pro_repl_msg_release(). Errors: PL_EPROTO (malformed, wrong
 * types, over a limit, trailing bytes), PL_ENOTFOUND (a newer version or an
 * unknown type: skip it), PL_ENOMEM. */
int pro_repl_decode(const void *buf, size_t len, pro_repl_msg *out);
void pro_repl_msg_release(pro_repl_msg *m);

/* True when s is a valid origin name (1..PRO_REPL_ORIGIN_MAX bytes of
 * printable ASCII, no space). */
bool pro_repl_origin_ok(pro_wire_str s);

#endif
