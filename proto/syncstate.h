/* SPDX-License-Identifier: Apache-2.0 */
/* The Firebase sync state nodes replicate (cluster/syncmarks), as msgpack:
 *
 *   marks   [version, [[origin, synced, sent], ...]]
 *           per comment origin: every seq <= synced is in Firebase (or
 *           parked), and some leader has sent every seq <= sent;
 *   parked  [version, [[origin, seq, gen, state, status, reason], ...]]
 *           comments Firebase refused with a 4xx, by (origin, seq); gen
 *           orders the entry's changes (the highest wins).
 *
 * Decoders check every type and bound before they call back, ignore
 * trailing elements of the outer array and of each entry (a later version
 * may append fields), and refuse other versions. */
#ifndef PARLEY_PROTO_SYNCSTATE_H
#define PARLEY_PROTO_SYNCSTATE_H

#include <stddef.h>
#include <stdint.h>

#define PRO_SYNC_VERSION 1
#define PRO_SYNC_MAX_BYTES (4u << 20) /* largest message accepted */
#define PRO_SYNC_MAX_ENTRIES 65536
#define PRO_SYNC_ORIGIN_MAX 128 /* bytes, as storage's STO_ORIGIN_MAX */
#define PRO_SYNC_REASON_MAX 255 /* bytes */

typedef struct pro_sync_mark {
	const char *origin; /* NUL-terminated, 1..PRO_SYNC_ORIGIN_MAX bytes */
	uint64_t synced, sent;
} pro_sync_mark;

/* What became of a parked comment; values travel on the wire. */
typedef enum pro_sync_pstate {
	PRO_SYNC_PARKED = 1, /* refused; waits for an operator */
	PRO_SYNC_RETRY = 2,  /* an operator asked the leader to send it again */
	PRO_SYNC_DONE = 3,   /* written on a later try */
} pro_sync_pstate;

typedef struct pro_sync_parked {
	const char *origin; /* as above */
	uint64_t seq;       /* >= 1 */
	uint64_t gen;       /* >= 1; the highest gen of an entry wins */
	uint32_t state;     /* pro_sync_pstate */
	uint32_t status;    /* HTTP status of the refusal (0 if none) */
	const char *reason; /* Firebase's answer, 0..PRO_SYNC_REASON_MAX
	                     * bytes, NUL-terminated */
} pro_sync_parked;

/* Encode n entries into a malloc'ed buffer (*buf, *len; caller frees).
 * Returns PL_OK, PL_EINVAL (a field out of bounds), PL_ENOMEM. */
int pro_sync_marks_encode(
    const pro_sync_mark *v, size_t n, char **buf, size_t *len);
int pro_sync_parked_encode(
    const pro_sync_parked *v, size_t n, char **buf, size_t *len);

/* Check the whole message, then call fn for each entry (strings borrowed
 * for the call). Returns PL_OK; PL_EPROTO (malformed, other version, a
 * field out of bounds: fn was not called); PL_ETOOBIG; PL_ENOMEM. */
int pro_sync_marks_decode(const void *buf, size_t len,
    void (*fn)(void *arg, const pro_sync_mark *m), void *arg);
int pro_sync_parked_decode(const void *buf, size_t len,
    void (*fn)(void *arg, const pro_sync_parked *p), void *arg);

#endif
