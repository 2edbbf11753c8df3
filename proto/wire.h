/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster wire envelope: every message between nodes is one msgpack array
 * [version, kind, sender, incarnation, start_id, seq, dest, skip, body...],
 * and one transport frame carries one or more envelopes back to back (a
 * burst becomes one frame). Encoders append to a growable buffer; the
 * decoder checks every type and bounds every count before anything is
 * allocated, so no peer input crashes a node. */
#ifndef PARLEY_PROTO_WIRE_H
#define PARLEY_PROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bumped when the envelope changes incompatibly; newer versions are skipped. */
#define PRO_WIRE_VERSION 1

#define PRO_WIRE_NAME_MAX 64     /* node names, bytes */
#define PRO_WIRE_ADDR_MAX 255    /* advertised bus URLs, bytes */
#define PRO_WIRE_TOPIC_MAX 512   /* broadcast topic, bytes */
#define PRO_WIRE_EVENT_MAX 128   /* broadcast event, bytes */
#define PRO_WIRE_SKIP_MAX 16     /* names in the skip list */
#define PRO_WIRE_DIGEST_MAX 1024 /* members in one digest */

typedef enum pro_wire_kind {
	PRO_WIRE_PING = 1,      /* heartbeat carrying the sender's digest */
	PRO_WIRE_PING_ACK = 2,  /* digest sent in reply to a newcomer's ping */
	PRO_WIRE_LEAVE = 3,     /* graceful leave of the sender */
	PRO_WIRE_BROADCAST = 4, /* cross-node channel broadcast */
	PRO_WIRE_APP = 5,       /* opaque message of another subsystem */
} pro_wire_kind;

/* Member status as carried in digests; the order is the precedence at equal
 * incarnation (left beats dead beats suspect beats alive). */
typedef enum pro_wire_status {
	PRO_WIRE_ALIVE = 0,
	PRO_WIRE_SUSPECT = 1,
	PRO_WIRE_DEAD = 2,
	PRO_WIRE_LEFT = 3,
} pro_wire_status;

/* Why a well-formed message was not decoded further. */
typedef enum pro_wire_skip {
	PRO_WIRE_SKIP_NONE = 0,    /* fully decoded */
	PRO_WIRE_SKIP_VERSION = 1, /* newer version: only `version` is set */
	PRO_WIRE_SKIP_KIND = 2, /* unknown kind: header is set, body is not */
} pro_wire_skip;

/* A byte string; not NUL-terminated. A NULL ptr means "absent" (msgpack nil)
 * where a field allows it. */
typedef struct pro_wire_str {
	const char *ptr;
	size_t len;
} pro_wire_str;

/* Common header of every message. */
typedef struct pro_wire_hdr {
	pro_wire_str sender;  /* node name, 1..PRO_WIRE_NAME_MAX bytes */
	uint64_t incarnation; /* sender's SWIM incarnation */
	uint64_t start_id; /* sender process start (unix ms); new per restart */
	uint64_t seq;      /* per-sender message counter, for duplicates */
	pro_wire_str dest; /* receiver name, or ptr NULL for everyone */
	const pro_wire_str
	    *skip; /* names that must drop this message (fault hook) */
	size_t n_skip;
} pro_wire_hdr;

/* One member in a digest. */
typedef struct pro_wire_member {
	pro_wire_str name;
	pro_wire_str addr; /* advertised bus URL, may be empty */
	uint8_t status;    /* pro_wire_status */
	uint64_t incarnation;
	uint64_t start_id;
	pro_wire_str direct; /* its addressed-path URL, may be empty (a sixth
	                      * element older nodes do not send) */
} pro_wire_member;

/* A decoded message. Strings borrow from the decoded input buffer and arrays
 * from the message's zone: valid until pro_wire_msg_release() and while the
 * input buffer lives. */
typedef struct pro_wire_msg {
	uint64_t version;
	uint64_t kind;
	pro_wire_skip skip;
	pro_wire_hdr hdr;
	union {
		struct {
			const pro_wire_member *members;
			size_t n;
		} digest; /* PING, PING_ACK */
		struct {
			pro_wire_str topic;
			pro_wire_str event;
			pro_wire_str payload; /* JSON text */
			pro_wire_str publisher;
			uint64_t
			    seq; /* per-publisher broadcast sequence, from 1 */
		} broadcast;
		struct {
			uint32_t app_kind;
			pro_wire_str bytes;
		} app;
	} u;
	void *zone_; /* private */
} pro_wire_msg;

/* A growable output buffer. Zero-initialise (or pro_wire_buf_init) first. */
typedef struct pro_wire_buf {
	char *data;
	size_t len;
	size_t cap;
} pro_wire_buf;

void pro_wire_buf_init(pro_wire_buf *b);
/* Frees the buffer's memory and zeroes it. */
void pro_wire_buf_free(pro_wire_buf *b);

/* Builds a pro_wire_str from a C string (NULL gives an absent string). */
pro_wire_str pro_wire_cstr(const char *s);

/* Encoders. Each appends one envelope to `out` (set out->len = 0 to start a
 * new frame). `h->seq`, `h->dest`, `h->skip` are written as given.
 * Returns PL_OK, PL_EINVAL (a field over its limit or a bad kind/status),
 * PL_ENOMEM. On error `out` is left as it was. */
int pro_wire_encode_digest(pro_wire_buf *out, pro_wire_kind kind,
    const pro_wire_hdr *h, const pro_wire_member *members, size_t n);
int pro_wire_encode_leave(pro_wire_buf *out, const pro_wire_hdr *h);
int pro_wire_encode_broadcast(pro_wire_buf *out, const pro_wire_hdr *h,
    pro_wire_str topic, pro_wire_str event, const void *payload, size_t len,
    pro_wire_str publisher, uint64_t seq);
int pro_wire_encode_app(pro_wire_buf *out, const pro_wire_hdr *h,
    uint32_t app_kind, const void *bytes, size_t len);

/* Decodes the first envelope of buf[0..len); *used gets its length, so a
 * frame is walked by advancing buf by *used until len is exhausted. On
 * PL_OK `out` is filled (see out->skip for versions and kinds this build
 * does not know) and must be released with pro_wire_msg_release(). Errors:
 * PL_EPROTO (malformed, truncated, wrong types, over a limit), PL_ENOMEM;
 * on error nothing needs releasing and the rest of the frame cannot be
 * trusted. */
int
pro_wire_decode(const void *buf, size_t len, size_t *used, pro_wire_msg *out);

/* Frees what pro_wire_decode() allocated; safe on a zeroed struct. */
void pro_wire_msg_release(pro_wire_msg *m);

/* The addressed path (a request to one node, its reply) has its own two
 * envelopes: request [version, sender, app_kind, bytes] and reply
 * [version, status, bytes], where status is a pl_err (0: bytes is the
 * service's answer). Encoders append to out and return PL_OK, PL_EINVAL (bad
 * sender), PL_ENOMEM. Decoders take exactly one envelope and return PL_OK,
 * PL_EPROTO (malformed, trailing bytes, newer version); the strings borrow
 * from buf. */
int pro_wire_encode_request(pro_wire_buf *out, pro_wire_str sender,
    uint32_t app_kind, const void *bytes, size_t len);
int pro_wire_decode_request(const void *buf, size_t len, pro_wire_str *sender,
    uint32_t *app_kind, pro_wire_str *bytes);
int pro_wire_encode_reply(
    pro_wire_buf *out, uint32_t status, const void *bytes, size_t len);
int pro_wire_decode_reply(
    const void *buf, size_t len, uint32_t *status, pro_wire_str *bytes);

/* Static text for a kind ("ping", ...), "unknown" otherwise. */
const char *pro_wire_kind_name(uint64_t kind);

#endif
