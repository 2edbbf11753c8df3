/* SPDX-License-Identifier: Apache-2.0 */
/* Wire image and msgpack codec of the presence CRDT messages nodes exchange:
 * a delta (heartbeat), a full state (transfer) and a clocks vector. The image
 * is a plain struct that cluster/presence builds and merges; this module owns
 * its memory and the byte format, and rejects malformed input before it
 * allocates anything proportional to a declared count. */
#ifndef PARLEY_PROTO_PRESENCE_CODEC_H
#define PARLEY_PROTO_PRESENCE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Format version, the first element of every encoded message. Decoders
 * reject other versions; extra trailing array elements are ignored so that
 * a later version can append fields. */
#define PRO_PRESENCE_VERSION 1

#define PRO_PRESENCE_REF_BYTES 12          /* phx_ref before base64url */
#define PRO_PRESENCE_MAX_BYTES (64u << 20) /* largest encoded message */
#define PRO_PRESENCE_MAX_REPLICAS 4096
#define PRO_PRESENCE_MAX_TOPICS (1u << 20)
#define PRO_PRESENCE_MAX_ENTRIES (1u << 22)
#define PRO_PRESENCE_MAX_DOTS (1u << 22) /* per replica */
#define PRO_PRESENCE_MAX_NAME 255        /* node name bytes */
#define PRO_PRESENCE_MAX_TOPIC 1024      /* topic bytes */
#define PRO_PRESENCE_MAX_KEY 1024        /* presence key bytes */
#define PRO_PRESENCE_MAX_META 65536      /* meta JSON bytes */

typedef enum pro_presence_kind {
	PRO_PRESENCE_DELTA = 1,  /* changes since the sender's last heartbeat */
	PRO_PRESENCE_STATE = 2,  /* everything the sender knows */
	PRO_PRESENCE_CLOCKS = 3, /* per-replica contiguous clocks only */
} pro_presence_kind;

/* One replica named in a message, with the causal context the message
 * covers for it: clocks in (lo, hi] plus the listed dots. A dot the message
 * covers but holds no entry for means "observed and removed". */
typedef struct pro_presence_replica {
	const char *name;     /* node name, NUL-terminated, 1..MAX_NAME bytes */
	uint64_t vsn;         /* incarnation chosen at node start */
	uint64_t lo, hi;      /* covered interval (lo, hi]; lo <= hi */
	const uint64_t *dots; /* strictly ascending, each >= 1 */
	size_t ndots;
} pro_presence_replica;

/* One presence entry, identified by its tag (replica, clock). */
typedef struct pro_presence_entry {
	uint32_t replica; /* index into msg->replicas */
	uint32_t topic;   /* index into msg->topics */
	uint64_t clock;   /* >= 1 */
	uint64_t owner;   /* the owner node's channel handle; opaque */
	const char *key;  /* NUL-terminated, 1..MAX_KEY bytes */
	const char *meta; /* JSON text, meta_len bytes plus a NUL */
	size_t meta_len;
	uint8_t ref[PRO_PRESENCE_REF_BYTES];      /* phx_ref, raw */
	uint8_t prev_ref[PRO_PRESENCE_REF_BYTES]; /* phx_ref_prev, raw */
	bool has_prev; /* entry came from an update */
} pro_presence_entry;

/* A decoded or built message. Fields are read-only for users; fill it only
 * through the pro_presence_msg_add_* functions. */
typedef struct pro_presence_msg {
	pro_presence_kind kind;
	uint32_t sender; /* index into replicas */
	pro_presence_replica *replicas;
	size_t nreplicas;
	const char **topics; /* NUL-terminated topic names */
	size_t ntopics;
	pro_presence_entry *entries;
	size_t nentries;
	/* private */
	struct pro_presence_blk *arena;
	size_t cap_replicas, cap_topics, cap_entries;
} pro_presence_msg;

/* Creates an empty message of the given kind.
 * Returns PL_OK and sets *out (caller frees with pro_presence_msg_destroy),
 * PL_EINVAL for an unknown kind, PL_ENOMEM. */
int pro_presence_msg_create(pro_presence_msg **out, pro_presence_kind kind);

/* Frees a message and everything it points to. NULL is a no-op. */
void pro_presence_msg_destroy(pro_presence_msg *m);

/* Appends a replica. name and dots are copied; dots need not be sorted
 * (they are sorted and deduplicated here). *idx (may be NULL) receives its
 * index. Returns PL_OK, PL_EINVAL (bad name, lo > hi, zero dot),
 * PL_ETOOBIG (over a MAX_* limit), PL_ENOMEM. */
int pro_presence_msg_add_replica(pro_presence_msg *m, const char *name,
    uint64_t vsn, uint64_t lo, uint64_t hi, const uint64_t *dots, size_t ndots,
    uint32_t *idx);

/* Appends a topic name (copied); *idx receives its index. Returns PL_OK,
 * PL_EINVAL (empty or too long), PL_ETOOBIG, PL_ENOMEM. */
int pro_presence_msg_add_topic(
    pro_presence_msg *m, const char *topic, uint32_t *idx);

/* Appends an entry; e->key and e->meta are copied, e->replica and e->topic
 * must index what was already added. Returns PL_OK, PL_EINVAL, PL_ETOOBIG,
 * PL_ENOMEM. */
int
pro_presence_msg_add_entry(pro_presence_msg *m, const pro_presence_entry *e);

/* Encodes a message into msgpack. On PL_OK *out is a malloc'd buffer of
 * *len bytes that the caller frees with free(). Errors: PL_EINVAL (message
 * inconsistent), PL_ENOMEM. */
int pro_presence_encode(const pro_presence_msg *m, char **out, size_t *len);

/* Decodes bytes (borrowed; not kept) into a new message that the caller
 * frees with pro_presence_msg_destroy. Every count, index, length and type
 * is checked; trailing bytes are an error. Errors: PL_EPROTO (malformed or
 * wrong version), PL_ETOOBIG (over a MAX_* limit), PL_ENOMEM. Never crashes
 * on arbitrary input. */
int pro_presence_decode(const void *buf, size_t len, pro_presence_msg **out);

#endif
