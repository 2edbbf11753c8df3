/* SPDX-License-Identifier: Apache-2.0 */
/* Rate-limit counts one node tells the others (msgpack), so that a user's
 * actions count against --rate-limit cluster-wide:
 *   [version, window_ms, [[action, user, window, count], ...]]
 * where count is the sender's own total of (action, user) in window (its
 * wall clock / window_ms). The decoder checks every type and bound; strings
 * borrow from the input. */
#ifndef PARLEY_PROTO_RATECOUNT_H
#define PARLEY_PROTO_RATECOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/wire.h"

#define PRO_RATECOUNT_VERSION 1
#define PRO_RATECOUNT_ACTION_MAX 64
#define PRO_RATECOUNT_USER_MAX 256
#define PRO_RATECOUNT_MAX 4096 /* entries per message */

typedef struct pro_ratecount {
	pro_wire_str action, user;
	uint64_t window;
	uint32_t count;
} pro_ratecount;

typedef struct pro_ratecount_msg {
	uint32_t window_ms;
	const pro_ratecount *items;
	size_t n;
	void *zone_; /* private */
} pro_ratecount_msg;

/* Appends one message. Returns PL_OK, PL_EINVAL (an empty or over-long
 * string, one with NUL, too many items), PL_ENOMEM. */
int pro_ratecount_encode(pro_wire_buf *out, uint32_t window_ms,
    const pro_ratecount *items, size_t n);

/* Decodes exactly one message. Returns PL_OK (release it), PL_EPROTO,
 * PL_ENOTFOUND (a newer version), PL_ENOMEM. */
int pro_ratecount_decode(const void *buf, size_t len, pro_ratecount_msg *out);
void pro_ratecount_release(pro_ratecount_msg *m);

#endif
